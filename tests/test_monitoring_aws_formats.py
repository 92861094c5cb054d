"""Files written by AWS (tests/data/aws/README.md says where each comes from) are read by our monitor and give
the same checks; our metric definitions reproduce AWS's figures from AWS's own confusion matrix."""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import numpy as np
import pytest

from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.job import analyze
from monitoring.quality import QualityConstraint, quality_violations, suggest_quality_constraints
from monitoring.quality_metrics import binary_scalars, metric_values

DATA = pathlib.Path(__file__).parent / "data" / "aws"
HOUR = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def aws_quality() -> dict:
    return json.loads((DATA / "model_quality_binary_statistics.json").read_text())


def test_our_binary_metrics_reproduce_aws_figures_from_its_confusion_matrix(aws_quality: dict) -> None:
    """AWS's confusion matrix {actual: {predicted: n}} = {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}."""
    section = aws_quality["binary_classification_metrics"]
    actual, predicted = [], []
    for a, row in section["confusion_matrix"].items():
        for p, n in row.items():
            actual += [a == "1"] * n
            predicted += [p == "1"] * n
    ours = binary_scalars(np.array(actual), np.array(predicted), None)
    theirs = metric_values(section)
    for name in (
        "accuracy", "precision", "recall", "f0_5", "f1", "f2", "false_positive_rate", "false_negative_rate",
        "true_negative_rate", "true_positive_rate", "precision_best_constant_classifier",
        "recall_best_constant_classifier", "accuracy_best_constant_classifier",
        "f0_5_best_constant_classifier", "f1_best_constant_classifier",
        "f2_best_constant_classifier",
    ):  # fmt: skip
        assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name


def test_awss_model_quality_statistics_are_read_and_checked(aws_quality: dict) -> None:
    values = metric_values(aws_quality["binary_classification_metrics"])
    assert (values["auc"], values["accuracy"], values["accuracy_best_constant_classifier"]) == (1.0, 0.5, 0.25)
    violations = quality_violations(
        aws_quality,
        "BinaryClassification",
        [
            QualityConstraint("accuracy", 0.9, "LessThanThreshold"),
            QualityConstraint("recall", 0.9, "LessThanThreshold"),
        ],
    )
    assert violations == [
        {
            "constraint_check_type": "LessThanThreshold",
            "description": "Metric accuracy with 0.5 was LessThanThreshold '0.9'",
            "metric_name": "accuracy",
        }
    ]
    suggested = suggest_quality_constraints(aws_quality, "BinaryClassification")["binary_classification_constraints"]
    assert suggested["accuracy"] == {"threshold": 0.45, "comparison_operator": "LessThanThreshold"}
    assert suggested["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"


def test_the_sdks_data_quality_files_are_read_and_give_the_same_checks(tmp_path: pathlib.Path) -> None:
    """The SDK's statistics hold one String feature `message` with one category; its constraints allow only
    that value (domain) and use older distribution keys, which we read with the documented defaults."""
    value = "preproc-not-YET-supported-for-csv-json"
    rows = [[value]] * 90 + [["something-else"]] * 10
    records = [capture_record([r], HOUR + dt.timedelta(seconds=i)) for i, r in enumerate(rows)]
    write_capture_file(tmp_path / "capture", records, HOUR, endpoint="ep", name="c.jsonl")
    result = analyze(
        LocalSource(tmp_path / "capture"),
        DATA / "sdk_statistics.json",
        DATA / "sdk_constraints.json",
        TimeWindow(HOUR, HOUR + dt.timedelta(hours=1)),
    )
    kinds = {(v.feature_name, v.constraint_check_type) for v in result.evaluation.violations}
    assert ("message", "categorical_values_check") in kinds
    # comparison_threshold 1.0: an L-infinity distance of at most 1 never exceeds it.
    assert ("message", "baseline_drift_check") not in kinds
    # L-infinity of the shares is 0.1; the documented default method (Robust) subtracts 1.8*sqrt(518/41800).
    assert result.evaluation.comparisons["message"].method == "LInfinity (Robust)"
    assert result.evaluation.comparisons["message"].distance == 0.0
