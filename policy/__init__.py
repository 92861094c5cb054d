"""Policy as code for ML infrastructure: rules as plain functions (rules.py) and the Pulumi pack (__main__.py)."""
