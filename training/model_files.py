"""The files a finished training run leaves in its model directory (docs/model-contract.md).

Torch-free: the stack's training check (components/training_check.py) imports these names to decide whether a
job's output is a complete model, and the trainer writes them (training/artifacts.py).
"""

from __future__ import annotations

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
OUTPUT = "probabilities"
"""The graph's input and output names (docs/model-contract.md), here so torch-free code can use them."""
PREDICTIONS_OUTPUT = "predictions"
"""A regressor's output: float32 [N], the predictions in the target's units."""

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
MANIFEST_FILE = "manifest.json"
"""Written last: its presence says the directory is complete."""
EVALUATION_FILE = "evaluation.json"
EDGE_DIR = "edge"
"""The edge bundle's files (training/edge.py): graph, manifest, score.py, README.md, SHA256SUMS."""
EDGE_ARCHIVE = "edge.tar.gz"
"""The same bundle packed deterministically; the stack exports its URI as `edgeBundleUri`."""
BASELINE_DIR = "baseline"
BASELINE_STATISTICS = f"{BASELINE_DIR}/statistics.json"
BASELINE_CONSTRAINTS = f"{BASELINE_DIR}/constraints.json"
QUALITY_BASELINE_CONSTRAINTS = f"{BASELINE_DIR}/model_quality/constraints.json"
"""The model-quality baseline from the validation split (monitoring/quality.py `write_quality_baseline`)."""

PREDICTIONS_BASELINE_DIR = "predictions"
"""Regression models: `baseline/predictions/{statistics,constraints}.json`, the distribution of the model's
predictions on the validation split (one numeric column `prediction`), what the monitor compares the captured
answers with (`monitoring.job.analyze` with capture index endpointOutput)."""

COMPLETE_MODEL_FILES: tuple[str, ...] = (
    MANIFEST_FILE,
    FP32_FILE,
    BASELINE_STATISTICS,
    BASELINE_CONSTRAINTS,
    QUALITY_BASELINE_CONSTRAINTS,
    EDGE_ARCHIVE,
)
"""A model directory serving and monitoring can use holds at least these."""
