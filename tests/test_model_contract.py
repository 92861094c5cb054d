"""docs/model-contract.md from both sides: the training code writes a model directory, the serving code reads it.

A real model is trained on synthetic rows with numeric and categorical features (the training container's
`train` command), then loaded by the serving code (`serving.model.LoadedModel`) and fed the validation rows as a
client would send them (`serving.codec.decode_csv`: features in the manifest's request order, raw values). The
served answer must be the training side's own evaluation, so neither side can change the contract alone.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.codec import decode_csv
from serving.contract import validate_manifest
from serving.model import PRECISIONS, LoadedModel, Precision, read_manifest
from training.__main__ import main
from training.demo import split_frame, synthetic_frame, write_layout
from training.layout import MLRoot


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    ml = MLRoot(tmp_path_factory.mktemp("contract"))
    frame = synthetic_frame(1500, numeric=4, categorical=2, classes=3, seed=11)
    train, validation = split_frame(frame, seed=11)
    write_layout(ml, train, validation, {"epochs": "4", "batch_size": "128", "hidden_units": "32", "num_threads": "1"})
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    return ml


def _request_body(rows: pd.DataFrame, feature_names: tuple[str, ...]) -> bytes:
    """The validation rows as a client's text/csv request: no header, features in request order."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows[list(feature_names)].itertuples(index=False))
    return out.getvalue().encode()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_served_model_answers_what_training_evaluated(trained: MLRoot, precision: Precision) -> None:
    model_dir = trained.model
    manifest = read_manifest(model_dir)
    written = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    # The serving side reads the features in the order the training side wrote them.
    assert manifest.feature_names == tuple(f["name"] for f in written["features"])
    validation = pd.read_csv(trained.channel("validation") / "validation.csv", dtype=str)
    batch = decode_csv(_request_body(validation, manifest.feature_names), manifest)
    probabilities = LoadedModel(model_dir, precision).predict(batch)
    assert probabilities.shape == (len(validation), len(written["classes"]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    predicted = np.array(written["classes"])[probabilities.argmax(axis=1)]
    accuracy = float((predicted == validation["label"].to_numpy()).mean())
    evaluation = json.loads((model_dir / "evaluation.json").read_text(encoding="utf-8"))
    assert accuracy == pytest.approx(evaluation[precision]["accuracy"], abs=1e-9)
    assert accuracy > 1 / len(written["classes"])  # the model learned something: a swap of classes would show


def test_baseline_files_are_written_beside_the_model(trained: MLRoot) -> None:
    statistics = json.loads((trained.model / "baseline" / "statistics.json").read_text(encoding="utf-8"))
    constraints = json.loads((trained.model / "baseline" / "constraints.json").read_text(encoding="utf-8"))
    names = set(read_manifest(trained.model).feature_names)
    assert {f["name"] for f in statistics["features"]} >= names
    assert {f["name"] for f in constraints["features"]} >= names
    assert statistics["dataset"]["item_count"] > 0


def test_model_directory_without_manifest_is_refused_naming_the_contract(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"docs/model-contract\.md"):
        read_manifest(tmp_path)


def test_trained_manifest_passes_the_versioned_contract(trained: MLRoot) -> None:
    """The trainer's manifest states every field serving/contract.py reads (none left to defaults)."""
    written = json.loads((trained.model / "manifest.json").read_text(encoding="utf-8"))
    contract = validate_manifest(written)
    assert {"task", "inputs", "outputs", "unknown_category_policy"} <= set(written)
    assert (contract.format_version, contract.task, contract.output) == (
        1,
        "multiclass_classification",
        "probabilities",
    )
    assert (contract.n_numeric, contract.n_categorical, contract.unknown_category_policy) == (4, 2, "map-to-unknown")
    assert contract.files == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
