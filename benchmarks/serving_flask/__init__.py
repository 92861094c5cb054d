"""Benchmark competitor (b): Flask behind gunicorn (gevent) behind nginx, SageMaker's sklearn/XGBoost topology."""
