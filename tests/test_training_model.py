"""Trained models: the model directory per docs/model-contract.md, ONNX parity, int8, unknown categories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from training.__main__ import main
from training.demo import split_frame, synthetic_frame, write_demo_data, write_layout
from training.layout import MLRoot

CONTRACT_KEYS = {
    "format_version",
    "task",
    "target",
    "features",
    "classes",
    "inputs",
    "outputs",
    "unknown_category_policy",
    "files",
    "versions",
    "data_fingerprint",
    "metrics",
    "hyperparameters",
}


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    """A multiclass model with numeric and categorical features, trained once for this module."""
    ml = MLRoot(tmp_path_factory.mktemp("synthetic"))
    frame = synthetic_frame(3000, numeric=5, categorical=3, classes=3, seed=7)
    train, validation = split_frame(frame, seed=7)
    write_layout(
        ml, train, validation, {"epochs": "8", "batch_size": "128", "hidden_units": "64,32", "num_threads": "1"}
    )
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    return ml


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _probabilities(session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(session.run(["probabilities"], feed)[0])


def _inputs(frame: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """Build the graph's inputs from a frame the way a client would, following the manifest."""
    numeric = [f["name"] for f in manifest["features"] if f["input"] == "numeric"]
    categorical = [f["name"] for f in manifest["features"] if f["input"] == "categorical"]
    feed = {"numeric": frame[numeric].to_numpy(dtype=np.float32)}
    if categorical:
        feed["categorical"] = frame[categorical].astype(str).to_numpy(dtype=object)
    return feed


def test_model_directory_holds_the_contract_files(synthetic_model: MLRoot) -> None:
    model = synthetic_model.model
    for name in ("model.onnx", "model.int8.onnx", "manifest.json", "evaluation.json"):
        assert (model / name).is_file(), name
    statistics = _json(model / "baseline" / "statistics.json")
    constraints = _json(model / "baseline" / "constraints.json")
    names = [f["name"] for f in statistics["features"]]
    assert set(names) == {"num_0", "num_1", "num_2", "num_3", "num_4", "cat_0", "cat_1", "cat_2"}
    assert "label" not in {f["name"] for f in constraints["features"]}
    assert statistics["dataset"]["item_count"] == 2400


def test_model_directory_holds_the_model_quality_baseline_the_monitor_reads(synthetic_model: MLRoot) -> None:
    """The stack's model-quality job (Model Monitor or ours) reads baseline/model_quality/constraints.json
    beside the drift baseline (components/monitoring.py sibling_uri); a model without it fails every run."""
    from training.model_files import COMPLETE_MODEL_FILES

    model = synthetic_model.model
    for name in COMPLETE_MODEL_FILES:
        assert (model / name).is_file(), name
    statistics = _json(model / "baseline" / "model_quality" / "statistics.json")
    constraints = _json(model / "baseline" / "model_quality" / "constraints.json")
    evaluation = _json(model / "evaluation.json")
    kind = "binary" if len(_json(model / "manifest.json")["classes"]) == 2 else "multiclass"
    metrics = statistics[f"{kind}_classification_metrics"]
    # The same validation split scored by the same exported graph as evaluation.json.
    assert metrics["accuracy"]["value"] == pytest.approx(evaluation["fp32"]["accuracy"], abs=1e-9)
    assert statistics["dataset"]["item_count"] == evaluation["validation_rows"]
    assert "accuracy" in constraints[f"{kind}_classification_constraints"]


def test_manifest_describes_features_classes_and_io(synthetic_model: MLRoot) -> None:
    manifest = _json(synthetic_model.model / "manifest.json")
    assert set(manifest) == CONTRACT_KEYS
    train = pd.read_csv(synthetic_model.channel("train") / "train.csv", dtype=str, keep_default_na=False)
    assert manifest["format_version"] == 1
    assert manifest["task"] == "multiclass_classification"
    assert manifest["target"] == "label"
    assert [f["name"] for f in manifest["features"]] == [c for c in train.columns if c != "label"]
    numeric = [f for f in manifest["features"] if f["type"] == "numeric"]
    categorical = [f for f in manifest["features"] if f["type"] == "categorical"]
    assert [f["index"] for f in numeric] == [0, 1, 2, 3, 4]
    assert [f["index"] for f in categorical] == [0, 1, 2]
    assert all(f["input"] == "numeric" for f in numeric)
    assert all(f["input"] == "categorical" for f in categorical)
    for feature in numeric:
        values = train[feature["name"]].astype(float)
        assert feature["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert feature["std"] == pytest.approx(values.std(ddof=0), rel=1e-9)
    for feature in categorical:
        assert feature["categories"] == sorted(train[feature["name"]].unique())
    assert manifest["classes"] == ["0", "1", "2"]
    assert manifest["inputs"] == {
        "numeric": {"dtype": "float32", "shape": [None, 5]},
        "categorical": {"dtype": "string", "shape": [None, 3]},
    }
    assert manifest["outputs"] == {"probabilities": {"dtype": "float32", "shape": [None, 3]}}
    assert manifest["unknown_category_policy"] == "map-to-unknown"
    assert manifest["files"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert set(manifest["versions"]) == {"torch", "onnx", "onnxruntime", "python"}
    assert manifest["versions"]["onnxruntime"] == ort.__version__
    assert manifest["hyperparameters"]["epochs"] == 8
    assert manifest["hyperparameters"]["hidden_units"] == [64, 32]
    assert set(manifest["metrics"]) == {"val_auc", "val_accuracy", "val_log_loss"}


def test_data_fingerprint_is_the_sha256_over_each_files_path_size_and_sha256(synthetic_model: MLRoot) -> None:
    """Per-file digests, so the fingerprint is the same whichever process read which file."""
    digest = hashlib.sha256()
    for channel in ("train", "validation"):
        raw = (synthetic_model.channel(channel) / f"{channel}.csv").read_bytes()
        digest.update(f"{channel}/{channel}.csv\0{len(raw)}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
    assert _json(synthetic_model.model / "manifest.json")["data_fingerprint"] == digest.hexdigest()


def test_onnx_matches_pytorch_and_int8_delta_is_recorded(synthetic_model: MLRoot) -> None:
    evaluation = _json(synthetic_model.model / "evaluation.json")
    manifest = _json(synthetic_model.model / "manifest.json")
    assert 0 <= evaluation["parity"]["max_abs_diff_torch_vs_onnxruntime"] <= 1e-4
    assert evaluation["validation_rows"] == 600
    for name in ("auc", "accuracy", "log_loss"):
        delta = evaluation["int8"][name] - evaluation["fp32"][name]
        assert evaluation["int8_minus_fp32"][name] == pytest.approx(delta, abs=1e-12)
    assert abs(evaluation["int8_minus_fp32"]["accuracy"]) < 0.05
    assert evaluation["fp32"]["auc"] > 0.85
    assert manifest["metrics"]["val_auc"] == evaluation["fp32"]["auc"]


def test_graph_scores_raw_rows_as_the_manifest_describes(synthetic_model: MLRoot) -> None:
    manifest = _json(synthetic_model.model / "manifest.json")
    validation = pd.read_csv(synthetic_model.channel("validation") / "validation.csv", dtype=str)
    feed = _inputs(validation, manifest)
    for name in ("model.onnx", "model.int8.onnx"):
        probabilities = _probabilities(_session(synthetic_model.model / name), feed)
        assert probabilities.dtype == np.float32
        assert probabilities.shape == (600, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        predicted = np.array(manifest["classes"])[probabilities.argmax(axis=1)]
        accuracy = float((predicted == validation["label"].to_numpy()).mean())
        evaluation = _json(synthetic_model.model / "evaluation.json")
        key = "fp32" if name == "model.onnx" else "int8"
        assert accuracy == pytest.approx(evaluation[key]["accuracy"], abs=1e-9)


def test_unknown_category_is_answered_as_the_reserved_unknown_index(synthetic_model: MLRoot) -> None:
    manifest = _json(synthetic_model.model / "manifest.json")
    validation = pd.read_csv(synthetic_model.channel("validation") / "validation.csv", dtype=str).head(5)
    session = _session(synthetic_model.model / "model.onnx")
    feed = _inputs(validation, manifest)
    known = _probabilities(session, feed)
    unseen_a, unseen_b = feed["categorical"].copy(), feed["categorical"].copy()
    unseen_a[:, 2] = "never-seen"
    unseen_b[:, 2] = "also-new"
    answer_a = _probabilities(session, {**feed, "categorical": unseen_a})
    answer_b = _probabilities(session, {**feed, "categorical": unseen_b})
    np.testing.assert_allclose(answer_a.sum(axis=1), 1.0, atol=1e-5)
    # Two different unseen strings land on the same index, which is not any known category's.
    np.testing.assert_array_equal(answer_a, answer_b)
    assert not np.allclose(answer_a, known)


def test_string_to_index_step_is_label_encoders_in_the_graph(synthetic_model: MLRoot) -> None:
    graph = onnx.load(str(synthetic_model.model / "model.onnx")).graph
    encoders = [n for n in graph.node if n.op_type == "LabelEncoder" and n.domain == "ai.onnx.ml"]
    assert len(encoders) == 3
    for node in encoders:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["default_int64"] == 0
        assert list(attributes["values_int64s"]) == list(range(1, len(attributes["keys_strings"]) + 1))
    inputs = {i.name: i.type.tensor_type for i in graph.input}
    assert set(inputs) == {"numeric", "categorical"}
    assert inputs["categorical"].elem_type == onnx.TensorProto.STRING
    assert inputs["numeric"].elem_type == onnx.TensorProto.FLOAT


def test_int8_graph_holds_int8_weights(synthetic_model: MLRoot) -> None:
    quantized = onnx.load(str(synthetic_model.model / "model.int8.onnx")).graph
    int8_weights = [t for t in quantized.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3  # the three Linear layers of a 64,32 MLP


def test_demo_data_trains_to_the_acceptance_auc(tmp_path: Path) -> None:
    ml = MLRoot(tmp_path)
    write_demo_data(ml)
    hyperparameters = _json(ml.hyperparameters)
    assert all(isinstance(v, str) for v in hyperparameters.values())
    assert _json(ml.resource_config) == {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
        "network_interface_name": "eth0",
    }
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    manifest = _json(ml.model / "manifest.json")
    assert manifest["task"] == "binary_classification"
    assert manifest["classes"] == ["benign", "malignant"]
    assert len(manifest["features"]) == 30
    assert "categorical" not in manifest["inputs"]
    assert manifest["metrics"]["val_auc"] >= 0.97
    validation = pd.read_csv(ml.channel("validation") / "validation.csv")
    assert len(validation) == 114
    assert validation["label"].value_counts().to_dict() == {"benign": 72, "malignant": 42}


def test_parquet_channels_train_with_inferred_column_types(tmp_path: Path) -> None:
    ml = MLRoot(tmp_path)
    frame = synthetic_frame(600, numeric=3, categorical=1, seed=5)
    frame["label"] = frame["label"].astype(int)  # Parquet keeps the integer type; classes become its text
    frame["count"] = np.arange(len(frame)) % 7
    train, validation = split_frame(frame, seed=5)
    hyperparameters = {"epochs": "2", "hidden_units": "16", "num_threads": "1", "categorical_columns": "count"}
    write_layout(ml, train, validation, hyperparameters)
    for channel, part in (("train", train), ("validation", validation)):
        (ml.channel(channel) / f"{channel}.csv").unlink()
        half = len(part) // 2
        part.iloc[:half].to_parquet(ml.channel(channel) / "part-0.parquet")
        part.iloc[half:].to_parquet(ml.channel(channel) / "part-1.parquet")
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    manifest = _json(ml.model / "manifest.json")
    types = {f["name"]: f["type"] for f in manifest["features"]}
    assert types == {
        "num_0": "numeric",
        "num_1": "numeric",
        "num_2": "numeric",
        "cat_0": "categorical",
        "count": "categorical",
    }
    assert manifest["classes"] == ["0", "1"]
    counts = next(f for f in manifest["features"] if f["name"] == "count")
    assert counts["categories"] == ["0", "1", "2", "3", "4", "5", "6"]
    assert _json(ml.model / "evaluation.json")["validation_rows"] == 120


def test_patience_stops_training_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    ml = MLRoot(tmp_path)
    train, validation = split_frame(synthetic_frame(400, numeric=4, categorical=1, seed=9), seed=9)
    hyperparameters = {
        "epochs": "200",
        "patience": "2",
        "validation_interval": "1",
        "learning_rate": "0.05",
        "batch_size": "32",
        "hidden_units": "128,128",
        "dropout": "0",
        "num_threads": "1",
    }
    write_layout(ml, train, validation, hyperparameters)
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    training = _json(ml.model / "evaluation.json")["training"]
    assert training["stopped_early"] is True
    assert training["epochs_run"] < 200
    losses = [epoch["val_loss"] for epoch in training["history"]]
    assert training["best_epoch"] == 1 + losses.index(min(losses))
    assert training["epochs_run"] == training["best_epoch"] + 2
    # The model directory holds the best epoch's weights, not the last epoch's.
    assert _json(ml.model / "manifest.json")["metrics"]["val_log_loss"] == pytest.approx(min(losses), abs=1e-5)


def _split_data(classes: tuple[str, ...]) -> Any:
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    n = 200
    labels = rng.integers(0, len(classes), n)
    schema = SimpleNamespace(classes=classes, categorical=("site",), numeric=("x",), regression=False)
    validation = SimpleNamespace(
        labels=labels,
        categorical=np.array([["north" if i % 2 else "south"] for i in range(n)], dtype=object),
        numeric=rng.normal(size=(n, 1)).astype(np.float32),
    )
    probabilities = np.clip(np.eye(len(classes))[labels] * 0.7 + rng.uniform(0, 0.3, (n, len(classes))), 0, 1)
    return SimpleNamespace(schema=schema, validation=validation), probabilities / probabilities.sum(1, keepdims=True)


def test_the_bias_baseline_compares_the_groups_of_the_sensitive_feature(tmp_path: Path) -> None:
    """The bias monitor reads baseline/model_bias/constraints.json (Clarify's layout) for the groups of
    mlplatform:monitorSensitiveAttribute; the training run is the only place that sees labels and features."""
    from training.artifacts import write_evaluation_baseline

    data, probabilities = _split_data(("benign", "malignant"))
    write_evaluation_baseline(probabilities, data, tmp_path, positive_label="malignant", sensitive_feature="site")
    bias = _json(tmp_path / "model_bias" / "constraints.json")
    assert "north" in json.dumps(bias) and "south" in json.dumps(bias)
    assert (tmp_path / "model_quality" / "constraints.json").is_file()


def test_a_positive_label_that_is_no_class_names_the_stack_key(tmp_path: Path) -> None:
    from training.artifacts import write_evaluation_baseline
    from training.errors import TrainingInputError

    data, probabilities = _split_data(("benign", "malignant"))
    with pytest.raises(TrainingInputError, match=r"mlplatform:monitorPositiveLabel.*allowed: benign, malignant"):
        write_evaluation_baseline(probabilities, data, tmp_path, positive_label="1")


def test_a_ground_truth_column_as_sensitive_attribute_writes_no_bias_baseline(tmp_path: Path) -> None:
    from training.artifacts import write_evaluation_baseline

    data, probabilities = _split_data(("0", "1"))
    write_evaluation_baseline(probabilities, data, tmp_path, sensitive_feature="region_from_labels")
    assert not (tmp_path / "model_bias").exists()
    assert (tmp_path / "model_quality" / "statistics.json").is_file()
