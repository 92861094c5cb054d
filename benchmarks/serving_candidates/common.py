"""The app every candidate stack serves: our routes and codecs with the model from BENCH_MODEL_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from serving.app import InferenceApp
from serving.metrics import SharedMetrics
from serving.model import LoadedModel


def load_app() -> InferenceApp:
    metrics = SharedMetrics(1)
    metrics.bind(0)
    app = InferenceApp(metrics)
    app.set_model(LoadedModel(Path(os.environ["BENCH_MODEL_DIR"]), "fp32"))
    return app
