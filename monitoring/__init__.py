"""Drift monitoring: baseline statistics, capture analysis, violations and metrics (Model Monitor formats)."""
