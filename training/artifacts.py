"""Writing the model directory per docs/model-contract.md: ONNX graphs, manifest, evaluation and baseline."""

from __future__ import annotations

import json
import logging
import math
import platform
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd

from monitoring import quality_metrics
from monitoring.baseline import write_baseline
from monitoring.quality import write_quality_baseline
from training.data import FeatureSchema, TrainingData
from training.edge import write_edge_bundle
from training.errors import TrainingInputError
from training.evaluation import classification_metrics, regression_metrics
from training.hyperparameters import Hyperparameters
from training.model_files import (
    BASELINE_DIR,
    CATEGORICAL_INPUT,
    EVALUATION_FILE,
    FP32_FILE,
    INT8_FILE,
    MANIFEST_FILE,
    NUMERIC_INPUT,
    OUTPUT,
    PREDICTIONS_BASELINE_DIR,
    PREDICTIONS_OUTPUT,
)

if TYPE_CHECKING:  # torch and the trainer are imported where used: `python -m training package` runs without them
    from training.trainer import TrainResult

LOG = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
PARITY_TOLERANCE = 1e-4
"""Largest allowed |ONNX - PyTorch| on the validation split: of a probability, or for regression of a prediction
divided by the target's standard deviation (the standardised units the network computes in)."""


class ExportParityError(Exception):
    """The exported graph does not compute what the trained PyTorch model computes."""


def _finite(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (e.g. AUC of a one-class validation split) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite(value), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def manifest_features(schema: FeatureSchema) -> list[dict[str, Any]]:
    """The manifest's `features`, in request order, each with where it goes in the graph's inputs."""
    features: list[dict[str, Any]] = []
    for name in schema.features:
        if name in schema.numeric:
            i = schema.numeric.index(name)
            features.append(
                {
                    "name": name,
                    "type": "numeric",
                    "input": NUMERIC_INPUT,
                    "index": i,
                    "mean": schema.means[i],
                    "std": schema.stds[i],
                }
            )
        else:
            i = schema.categorical.index(name)
            features.append(
                {
                    "name": name,
                    "type": "categorical",
                    "input": CATEGORICAL_INPUT,
                    "index": i,
                    "categories": list(schema.categories[i]),
                }
            )
    return features


def build_manifest(data: TrainingData, hp: Hyperparameters, metrics: dict[str, float]) -> dict[str, Any]:
    """The manifest: how to feed the graph and read its output."""
    import torch

    schema = data.schema
    features = manifest_features(schema)
    inputs: dict[str, Any] = {NUMERIC_INPUT: {"dtype": "float32", "shape": [None, len(schema.numeric)]}}
    if schema.categorical:
        inputs[CATEGORICAL_INPUT] = {"dtype": "string", "shape": [None, len(schema.categorical)]}
    task_fields: dict[str, Any]
    if schema.regression:
        # No classes: the graph answers one number per row, in the target's units.
        task_fields = {
            "task": "regression",
            "target": schema.target,
            "features": features,
            "inputs": inputs,
            "outputs": {(PREDICTIONS_OUTPUT if schema.regression else OUTPUT): {"dtype": "float32", "shape": [None]}},
        }
    else:
        task_fields = {
            "task": "binary_classification" if len(schema.classes) == 2 else "multiclass_classification",
            "target": schema.target,
            "features": features,
            "classes": list(schema.classes),
            "inputs": inputs,
            "outputs": {
                (PREDICTIONS_OUTPUT if schema.regression else OUTPUT): {
                    "dtype": "float32",
                    "shape": [None, len(schema.classes)],
                }
            },
        }
    return {
        "format_version": 1,
        **task_fields,
        "unknown_category_policy": "map-to-unknown",
        "files": {"fp32": FP32_FILE, "int8": INT8_FILE},
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
        "data_fingerprint": data.fingerprint,
        "metrics": metrics,
        "hyperparameters": hp.as_json(),
    }


def prepare_model_directory(data: TrainingData, out_dir: Path) -> None:
    """Before training: drop a previous run's manifest (its presence means "complete") and write the drift
    baseline, which depends on the data only, so a stop request leaves only the export to do in its grace
    period. The baseline describes the training features this process read (all of them on one process;
    its share of the files or rows with several)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    baseline = out_dir / BASELINE_DIR
    baseline.mkdir(parents=True, exist_ok=True)
    write_baseline(data.train_features, baseline)


def write_evaluation_baseline(
    probabilities: np.ndarray,
    data: TrainingData,
    baseline_dir: Path,
    *,
    positive_label: str = "",
    sensitive_feature: str = "",
) -> None:
    """The model-quality baseline (`baseline/model_quality/{statistics,constraints}.json`; for regression also
    the prediction distribution, `baseline/predictions/`) and, with a sensitive feature, the bias baseline
    (`baseline/model_bias/constraints.json`), from the validation split as the exported model scores it: what
    the stack's quality and bias monitors compare each window with (components/monitoring.py reads them beside
    the drift baseline). Labels and predictions are the class names the server answers with; for two classes the
    score is the probability of the positive class."""
    assert data.validation is not None
    if data.schema.regression:
        if sensitive_feature:
            raise TrainingInputError(
                f"hyperparameter 'sensitive_feature' ({sensitive_feature!r}): a bias baseline needs a classification "
                f"task, this run is a regression; allowed: empty"
            )
        assert data.validation.targets is not None
        write_quality_baseline(
            [float(v) for v in data.validation.targets],
            [float(v) for v in probabilities],
            baseline_dir,
            problem_type=quality_metrics.REGRESSION,
        )
        predictions_dir = baseline_dir / PREDICTIONS_BASELINE_DIR
        predictions_dir.mkdir(parents=True, exist_ok=True)
        write_baseline(pd.DataFrame({PREDICTION_COLUMN: probabilities.astype(np.float64)}), predictions_dir)
        return
    classes = data.schema.classes
    binary = len(classes) == 2
    positive = positive_label or classes[-1 if binary else 0]
    if positive not in classes:
        raise TrainingInputError(
            f"hyperparameter 'positive_label' (the stack's mlplatform:monitorPositiveLabel): {positive!r} is not a "
            f"class of the data; allowed: {', '.join(classes)}"
        )
    groups = None
    if sensitive_feature:
        if sensitive_feature in data.schema.categorical:
            groups = data.validation.categorical[:, data.schema.categorical.index(sensitive_feature)].tolist()
        elif sensitive_feature in data.schema.numeric:
            groups = [f"{v:g}" for v in data.validation.numeric[:, data.schema.numeric.index(sensitive_feature)]]
        else:
            # A column of the ground truth, not a feature: its groups are unknown at training time.
            LOG.warning(
                "sensitive feature %r is not a feature of the data; no bias baseline written", sensitive_feature
            )
    predicted = probabilities.argmax(axis=1)
    write_quality_baseline(
        [classes[int(i)] for i in data.validation.labels],
        [classes[int(i)] for i in predicted],
        baseline_dir,
        problem_type=quality_metrics.BINARY if binary else quality_metrics.MULTICLASS,
        scores=[float(p) for p in probabilities[:, classes.index(positive)]] if binary else None,
        positive_label=positive,
        groups=groups,
        sensitive=sensitive_feature if groups is not None else None,
    )


def score(predictions: np.ndarray, data: TrainingData) -> dict[str, float]:
    """The validation figures of a graph's output: auc, accuracy, log_loss, or for regression rmse, mae, r2."""
    validation = data.validation
    assert validation is not None
    if data.schema.regression:
        assert validation.targets is not None
        return regression_metrics(predictions, validation.targets)
    return classification_metrics(predictions, validation.labels)


def write_model_directory(data: TrainingData, hp: Hyperparameters, result: TrainResult, out_dir: Path) -> None:
    """Export, verify and describe the trained model; raises ExportParityError if ONNX and PyTorch differ."""
    import torch

    from training.export import export_onnx, onnx_probabilities, quantize_int8
    from training.pruning import finetune, graph_latency_ms, hidden_widths, prune_model, pruning_facts
    from training.trainer import predict_probabilities, to_device

    out_dir.mkdir(parents=True, exist_ok=True)
    if result.model is None or data.validation is None:
        raise RuntimeError("write_model_directory needs trained weights and the validation split")
    model = result.model.cpu().eval()
    validation = data.validation
    unpruned: tuple[list[int], dict[str, float], dict[str, Any]] | None = None
    if hp.prune_fraction > 0:
        # The unpruned graph's figures first, measured the same way as the pruned one's below.
        with tempfile.TemporaryDirectory() as scratch:
            unpruned_path = Path(scratch) / FP32_FILE
            export_onnx(model, data.schema, data.train, unpruned_path)
            unpruned = (
                hidden_widths(model),
                score(onnx_probabilities(unpruned_path, validation), data),
                graph_latency_ms(unpruned_path, validation),
            )
        model = finetune(prune_model(model, hp.prune_fraction), data, hp, hp.prune_finetune_epochs)
        LOG.info("pruned hidden widths %s -> %s", unpruned[0], hidden_widths(model))
    torch_probabilities = predict_probabilities(model, to_device(validation, torch.device("cpu")))

    fp32_path, int8_path = out_dir / FP32_FILE, out_dir / INT8_FILE
    export_onnx(model, data.schema, data.train, fp32_path)
    fp32_probabilities = onnx_probabilities(fp32_path, validation)
    scale = data.schema.target_std if data.schema.regression else 1.0
    parity = float(np.max(np.abs(fp32_probabilities - torch_probabilities))) / scale
    LOG.info("max abs difference PyTorch vs onnxruntime on %d validation rows: %.3g", len(validation), parity)
    if not parity <= PARITY_TOLERANCE:
        raise ExportParityError(
            f"exported ONNX graph differs from the PyTorch model by {parity:.3g} "
            f"(max abs {'prediction difference / target std' if scale != 1.0 else 'probability difference'} on the "
            f"validation split; allowed <= {PARITY_TOLERANCE:g})"
        )
    quantize_int8(fp32_path, int8_path)
    int8_probabilities = onnx_probabilities(int8_path, validation)

    fp32, int8 = (score(p, data) for p in (fp32_probabilities, int8_probabilities))
    metrics = {f"val_{name}": value for name, value in fp32.items()}
    manifest = build_manifest(data, hp, metrics)
    edge = write_edge_bundle(out_dir, _finite(manifest))
    edge["metric_delta_vs_fp32"] = {name: int8[name] - fp32[name] for name in fp32}
    evaluation = {
        "validation_rows": len(validation),
        "fp32": fp32,
        "int8": int8,
        "int8_minus_fp32": {name: int8[name] - fp32[name] for name in fp32},
        "parity": {
            "max_abs_diff_torch_vs_onnxruntime": parity,
            "tolerance": PARITY_TOLERANCE,
            "max_abs_diff_int8_vs_fp32": float(np.max(np.abs(int8_probabilities - fp32_probabilities))) / scale,
            "units": "target std" if data.schema.regression else "probability",
        },
        "edge": edge,
        **(
            {
                "pruning": pruning_facts(
                    hp=hp,
                    widths_before=unpruned[0],
                    widths_after=hidden_widths(model),
                    unpruned=unpruned[1],
                    pruned=fp32,
                    latency_unpruned=unpruned[2],
                    latency_pruned=graph_latency_ms(fp32_path, validation),
                )
            }
            if unpruned is not None
            else {}
        ),
        "training": {
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "processes": result.world_size,
            "stopped_by_signal": result.stop,
            "host_seconds": {k: round(float(v), 4) for k, v in result.timings.items()},
            "history": result.history,
        },
    }
    _write_json(out_dir / EVALUATION_FILE, evaluation)
    write_evaluation_baseline(
        fp32_probabilities,
        data,
        out_dir / BASELINE_DIR,
        positive_label=hp.positive_label,
        sensitive_feature=hp.sensitive_feature,
    )
    if not (out_dir / BASELINE_DIR / "statistics.json").is_file():
        prepare_model_directory(data, out_dir)
    # The manifest is written last: its presence says the directory is complete.
    _write_json(out_dir / MANIFEST_FILE, manifest)
