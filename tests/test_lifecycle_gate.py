"""The evaluation gate (training/gate.py) and the local registry (tools/local/registry.py).

The models are logistic graphs with hand-chosen weights (tests/lifecycle_fixtures.py), so which one is better,
worse or unfair is known without training. The registry's approval statuses are the ModelApprovalStatus enum
of botocore's sagemaker service model (checked below against the installed model), and its record carries
the members DescribeModelPackage returns.
"""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import numpy as np
import pandas as pd
import pytest

from tests.lifecycle_fixtures import held_out, write_logistic_model
from tools.local.registry import APPROVED, PENDING, STATUSES, Registry, RegistryError
from training.errors import TrainingInputError
from training.gate import FAIL, PASS, GateThresholds, decide, evaluate_models, fairness, read_record, write_record

GOOD = (4.0, 0.0, 0.0)
WORSE = (1.0, 0.0, 1.5)  # leans on noise: lower AUC and accuracy than GOOD on the same rows
BIASED = (4.0, 3.0, 0.0)  # the site proxy pushes site b towards the positive class


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return held_out()


def _gate(tmp_path: Path, rows: pd.DataFrame, candidate: tuple[float, ...], champion: tuple[float, ...] | None, **kw):
    cand = write_logistic_model(tmp_path / "candidate", candidate)
    champ = write_logistic_model(tmp_path / "champion", champion) if champion is not None else None
    evaluation = evaluate_models(cand, champ, rows, **kw)
    return decide(evaluation, GateThresholds())


def test_candidate_worse_than_champion_fails_the_gate_naming_the_metrics(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, WORSE, GOOD)
    assert record["decision"] == FAIL
    assert {"auc_drop", "accuracy_drop"} <= set(record["failed_checks"])
    auc = next(c for c in record["checks"] if c["check"] == "auc_drop")
    ev = record["evaluation"]
    assert auc["value"] == pytest.approx(ev["champion"]["auc"] - ev["candidate"]["auc"])
    assert auc["value"] > GateThresholds().max_auc_drop


def test_candidate_worse_than_champion_is_not_registered(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, WORSE, GOOD)
    registry = Registry(tmp_path / "registry", "g")
    with pytest.raises(RegistryError, match=r"gate decided 'fail' \(.*auc_drop"):
        registry.register(tmp_path / "candidate", record, image="img", lineage={})
    assert registry.versions() == []


def test_candidate_as_good_as_champion_passes_and_registers_pending(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, GOOD, WORSE)
    assert record["decision"] == PASS, record["failed_checks"]
    assert record["champion_compared"] is True
    registry = Registry(tmp_path / "registry", "g")
    package = registry.register(
        tmp_path / "candidate", record, image="serving@sha256:abc", lineage={"data_fingerprint": "f1"}
    )
    assert package["ModelPackageVersion"] == 1
    assert package["ModelApprovalStatus"] == PENDING
    assert package["CustomerMetadataProperties"]["data_fingerprint"] == "f1"
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == "serving@sha256:abc"
    assert (registry.model_dir(1) / "manifest.json").is_file()
    assert registry.latest_approved() is None  # pending is not a champion


def test_missing_champion_is_held_to_floors_and_says_so(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, WORSE, None)
    assert record["decision"] == PASS
    assert record["champion_compared"] is False
    assert "no approved champion" in record["note"]
    assert not any(c["check"].endswith("_drop") for c in record["checks"])
    inverted = _gate(tmp_path / "inverted", rows, (-4.0, 0.0, 0.0), None)  # ranks every row the wrong way
    assert inverted["decision"] == FAIL
    assert {"min_auc", "min_accuracy"} <= set(inverted["failed_checks"])
    strict = decide(record["evaluation"], GateThresholds(min_auc=record["evaluation"]["candidate"]["auc"] + 0.01))
    assert strict["failed_checks"] == ["min_auc"]


def test_fairness_violation_blocks_registration(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, BIASED, None, sensitive_attribute="site", positive_class="1")
    assert record["decision"] == FAIL
    assert "demographic_parity" in record["failed_checks"]
    fair = record["evaluation"]["fairness"]
    assert fair["groups"]["b"]["positive_prediction_rate"] > fair["groups"]["a"]["positive_prediction_rate"]
    with pytest.raises(RegistryError, match="demographic_parity"):
        Registry(tmp_path / "registry", "g").register(tmp_path / "candidate", record, image="i", lineage={})
    fair_model = _gate(tmp_path / "fair", rows, GOOD, None, sensitive_attribute="site", positive_class="1")
    assert fair_model["decision"] == PASS, fair_model["failed_checks"]


def test_fairness_differences_match_a_hand_count() -> None:
    predicted = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    actual = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
    groups = pd.Series(["a", "a", "a", "a", "b", "b", "b", "b"])
    result = fairness(predicted, actual, groups, "site")
    # a: predicts positive for 2 of 4 (0.5), true positives 1 of 2 (0.5); b: 1 of 4 (0.25), 1 of 2 (0.5)
    assert result["demographic_parity_difference"] == pytest.approx(0.25)
    assert result["equal_opportunity_difference"] == pytest.approx(0.0)
    assert result["groups"]["b"]["accuracy"] == pytest.approx(3 / 4)


def test_unknown_sensitive_attribute_is_refused_naming_the_columns(tmp_path: Path, rows: pd.DataFrame) -> None:
    cand = write_logistic_model(tmp_path / "c", GOOD)
    with pytest.raises(TrainingInputError, match=r"sensitive attribute 'gender' is not a column.*'signal'"):
        evaluate_models(cand, None, rows, sensitive_attribute="gender")


def test_thresholds_outside_zero_to_one_are_refused_by_name() -> None:
    with pytest.raises(TrainingInputError, match=r"max_auc_drop is 1\.5; allowed: a number in \[0, 1\]"):
        GateThresholds(max_auc_drop=1.5)


def test_gate_record_round_trips_and_a_missing_one_is_never_a_pass(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, GOOD, GOOD)
    write_record(record, tmp_path / "gate.json")
    assert read_record(tmp_path / "gate.json")["decision"] == PASS
    with pytest.raises(TrainingInputError, match="does not exist"):
        read_record(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text(json.dumps({"decision": "maybe"}))
    with pytest.raises(TrainingInputError, match="no 'decision'"):
        read_record(tmp_path / "bad.json")


def test_approved_version_becomes_the_champion_and_rejected_does_not(tmp_path: Path, rows: pd.DataFrame) -> None:
    record = _gate(tmp_path, rows, GOOD, None)
    registry = Registry(tmp_path / "registry", "g")
    for _ in range(3):
        registry.register(tmp_path / "candidate", record, image="i", lineage={})
    registry.set_status(1, APPROVED)
    registry.set_status(2, APPROVED)
    registry.set_status(3, "Rejected")
    champion = registry.latest_approved()
    assert champion is not None
    assert champion["ModelPackageVersion"] == 2
    with pytest.raises(RegistryError, match="allowed: PendingManualApproval, Approved, Rejected"):
        registry.set_status(1, "approved")
    with pytest.raises(RegistryError, match=r"has no version 9; it has \[1, 2, 3\]"):
        registry.set_status(9, APPROVED)


def test_registry_statuses_are_the_sagemaker_api_enum() -> None:
    """botocore's sagemaker service-2.json, shape ModelApprovalStatus (the enum CreateModelPackage and
    UpdateModelPackage accept); the local registry uses exactly these spellings."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(STATUSES) == set(model.shape_for("ModelApprovalStatus").enum)
