"""Structured pruning (training/pruning.py): hidden layers really get narrower in the exported graph, the pruned
model stays close to the unpruned one on the demo data, evaluation.json records the figures, bad settings are
named, and the gate refuses a candidate whose pruning cost more than its threshold.

`torch.nn.utils.prune` would only mask weights at full shape (PyTorch docs, torch.nn.utils.prune.custom_from_mask:
it adds a buffer name+'_mask' and keeps the original parameter as name+'_orig'), which is why these tests look at
the initializer shapes of the exported graph, not at zeros.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from onnx import numpy_helper

from training.__main__ import main
from training.demo import breast_cancer_frame, diabetes_frame, split_frame, write_layout
from training.errors import TrainingInputError
from training.gate import GateThresholds, decide, evaluate_models
from training.hyperparameters import parse_hyperparameters
from training.layout import MLRoot
from training.model import TabularClassifier
from training.pruning import hidden_widths, prune_model, unit_importance

HP = {"epochs": "30", "batch_size": "64", "hidden_units": "64,48", "num_threads": "1", "seed": "3"}


def _train(root: Path, extra: dict[str, str], *, regression: bool = False) -> MLRoot:
    ml = MLRoot(root)
    frame = diabetes_frame() if regression else breast_cancer_frame()
    train, validation = split_frame(frame, seed=3, stratify=not regression)
    hp = {**HP, **extra, **({"task": "regression"} if regression else {})}
    write_layout(ml, train, validation, hp)
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    return ml


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    """The breast cancer demo model with half of every hidden layer pruned."""
    return _train(tmp_path_factory.mktemp("pruned"), {"prune_fraction": "0.5", "prune_finetune_epochs": "3"})


def _evaluation(ml: MLRoot) -> dict[str, Any]:
    return json.loads((ml.model / "evaluation.json").read_text(encoding="utf-8"))


def _matrix_shapes(path: Path) -> list[tuple[int, ...]]:
    model = onnx.load(str(path))
    return sorted(tuple(numpy_helper.to_array(t).shape) for t in model.graph.initializer if len(t.dims) == 2)


def test_pruning_shrinks_the_hidden_widths_of_the_exported_graph(pruned: MLRoot) -> None:
    facts = _evaluation(pruned)["pruning"]
    assert facts["widths_before"] == [64, 48]
    assert facts["widths_after"] == [32, 24]
    inputs = len(breast_cancer_frame().columns) - 1
    # The three weight matrices of input->32->24->2, in whichever orientation the exporter stores them.
    assert {frozenset(s) for s in _matrix_shapes(pruned.model / "model.onnx")} == {
        frozenset((inputs, 32)),
        frozenset((32, 24)),
        frozenset((24, 2)),
    }


def test_pruned_model_stays_within_tolerance_and_the_figures_are_recorded(pruned: MLRoot) -> None:
    evaluation = _evaluation(pruned)
    facts = evaluation["pruning"]
    assert facts["pruned"] == evaluation["fp32"]
    assert facts["unpruned"]["auc"] > 0.95
    assert facts["pruned_minus_unpruned"]["auc"] >= -0.02
    assert facts["pruned_minus_unpruned"]["accuracy"] >= -0.03
    latency = facts["latency"]
    assert latency["unpruned_ms"] > 0 and latency["pruned_ms"] > 0
    assert latency["speedup"] == pytest.approx(latency["unpruned_ms"] / latency["pruned_ms"])
    manifest = json.loads((pruned.model / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["hyperparameters"]["prune_fraction"] == 0.5


def test_regression_pruning_records_rmse_against_the_unpruned_model(tmp_path: Path) -> None:
    ml = _train(tmp_path, {"prune_fraction": "0.25", "epochs": "20"}, regression=True)
    facts = _evaluation(ml)["pruning"]
    assert facts["widths_after"] == [48, 36]
    assert set(facts["pruned_minus_unpruned"]) == {"rmse", "mae", "r2"}
    assert facts["pruned"]["rmse"] <= facts["unpruned"]["rmse"] * 1.1


def test_no_pruning_by_default_leaves_no_pruning_record(tmp_path: Path) -> None:
    ml = _train(tmp_path, {"epochs": "2"})
    assert "pruning" not in _evaluation(ml)


def test_the_least_important_units_are_the_ones_removed() -> None:
    torch.manual_seed(0)
    model = TabularClassifier(
        means=[0.0] * 4, stds=[1.0] * 4, cardinalities=[], embedding_dim=2, hidden_units=[4], dropout=0.0, n_classes=2
    )
    layer, head = model.body[0], model.head
    assert isinstance(layer, torch.nn.Linear)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0] * 4, [0.1] * 4, [2.0] * 4, [0.5] * 4]))
        head.weight.fill_(1.0)
    assert unit_importance(layer, head).argsort().tolist() == [1, 3, 0, 2]
    smaller = prune_model(model, 0.5)
    assert hidden_widths(smaller) == [2]
    kept = smaller.body[0]
    assert isinstance(kept, torch.nn.Linear)
    assert kept.weight[:, 0].tolist() == [1.0, 2.0]  # units 0 and 2 kept, in their order
    assert smaller.head.weight.shape == (2, 2)


@pytest.mark.parametrize("value", ["1", "1.0", "-0.1", "nan", "half"])
def test_a_bad_prune_fraction_is_named(value: str) -> None:
    with pytest.raises(TrainingInputError, match=r"hyperparameter 'prune_fraction'.*allowed: a number in \[0, 1\)"):
        parse_hyperparameters({"prune_fraction": value})


def test_gate_refuses_a_candidate_whose_pruning_cost_more_than_the_threshold(pruned: MLRoot) -> None:
    held_out = split_frame(breast_cancer_frame(), seed=3)[1]
    evaluation = evaluate_models(pruned.model, None, held_out)
    facts = _evaluation(pruned)["pruning"]
    assert evaluation["candidate"]["pruning"]["accuracy_drop"] == pytest.approx(
        -facts["pruned_minus_unpruned"]["accuracy"]
    )
    drop = evaluation["candidate"]["pruning"]["accuracy_drop"]
    passing = decide(evaluation, GateThresholds(max_pruning_accuracy_drop=max(drop, 0.0) + 0.01))
    check = next(c for c in passing["checks"] if c["check"] == "pruning_accuracy_drop")
    assert check["passed"] is True
    # A made-up larger drop, beyond the threshold.
    evaluation["candidate"]["pruning"]["accuracy_drop"] = 0.05
    refused = decide(evaluation, GateThresholds(max_pruning_accuracy_drop=0.02))
    assert refused["decision"] == "fail"
    assert "pruning_accuracy_drop" in refused["failed_checks"]
