"""Model quality, concept drift, bias drift and late labels: captures joined with ground truth, as Model Monitor does.

Formats modelled (AWS developer guide):
- model-monitor-model-quality-merge: a ground-truth record is {"groundTruthData": {"data", "encoding"},
  "eventMetadata": {"eventId"}, "eventVersion": "0"}; the capture's inferenceId is the join key when present,
  else its eventId; ground truth lives under the same yyyy/mm/dd/hh path format as the capture.
- model-monitor-model-quality-metrics: binary_classification_metrics with confusion_matrix and
  {value, standard_deviation} per metric.
- model-monitor-model-quality-violations (model quality): violations carry metric_name,
  constraint_check_type (the comparison operator) and description.
- clarify-model-monitor-bias-drift-violations: bias violations carry facet, facet_value, metric_name and
  constraint_check_type "bias_drift_check".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import write_baseline
from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.cli import main as cli_main
from monitoring.ground_truth import (
    GroundTruthCounts,
    ground_truth_record,
    parse_label,
    read_ground_truth,
    write_ground_truth_file,
)
from monitoring.job import analyze, default_baseline_paths
from monitoring.quality import (
    QualityConfig,
    analyze_quality,
    load_quality_baseline,
    write_quality_baseline,
)

HOUR = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)
WINDOW = TimeWindow(HOUR, HOUR + dt.timedelta(hours=1))
FEATURES = ["x1", "x2", "x3", "site"]
GROUPS = ["a", "b", "c", "d"]


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n).round(4),
            "x2": rng.normal(size=n).round(4),
            "x3": rng.normal(size=n).round(4),
            "site": [GROUPS[i % len(GROUPS)] for i in range(n)],
        }
    )


def _model(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The deployed model: positive when x1 > 0; its probability a logistic of x1."""
    score = 1.0 / (1.0 + np.exp(-4.0 * frame["x1"].to_numpy()))
    return (score > 0.5).astype(int), score


def _labels(frame: pd.DataFrame, rng: np.random.Generator, relation: str = "x1") -> np.ndarray:
    """Ground truth: the sign of `relation` with 3% label noise (the model is right ~97% under relation x1)."""
    truth = (frame[relation].to_numpy() > 0).astype(int)
    flip = rng.random(len(frame)) < 0.03
    return np.where(flip, 1 - truth, truth)


def _write_window(root: pathlib.Path, frame: pd.DataFrame, ids: list[str]) -> None:
    predicted, score = _model(frame)
    records = []
    for i, row in enumerate(frame.itertuples(index=False)):
        when = HOUR + dt.timedelta(seconds=i % 3500)
        answer = f"{predicted[i]},{1 - score[i]:.6f},{score[i]:.6f}"
        records.append(capture_record([list(row)], when, output=answer, event_id=ids[i]))
    write_capture_file(root, records, HOUR, endpoint="ep", variant="AllTraffic", name="capture.jsonl")


def _baseline(tmp: pathlib.Path, rng: np.random.Generator, sensitive: bool = True) -> pathlib.Path:
    base = tmp / "model" / "baseline"
    frame = _frame(rng, 4000)
    write_baseline(frame, base)
    predicted, score = _model(frame)
    write_quality_baseline(
        _labels(frame, rng).tolist(),
        predicted.tolist(),
        base,
        scores=score.tolist(),
        groups=frame["site"].tolist() if sensitive else None,
        sensitive="site" if sensitive else None,
    )
    return base


def _ground_truth(root: pathlib.Path, ids: list[str], labels: np.ndarray, uploaded: dt.datetime) -> None:
    write_ground_truth_file(root, [ground_truth_record(i, int(v)) for i, v in zip(ids, labels, strict=True)], uploaded)


def _run(tmp: pathlib.Path, base: pathlib.Path, sensitive: str | None = "site", deadline: dt.datetime | None = None):
    baseline = load_quality_baseline(base, want_bias=sensitive is not None)
    config = QualityConfig(sensitive=sensitive, feature_names=tuple(FEATURES))
    return analyze_quality(
        LocalSource(tmp / "capture"), LocalSource(tmp / "gt"), baseline, WINDOW, config, deadline, HOUR
    )


def test_ground_truth_record_has_model_monitors_layout() -> None:
    assert ground_truth_record("aaaa-bbbb-cccc", 1) == {
        "groundTruthData": {"data": "1", "encoding": "CSV"},
        "eventMetadata": {"eventId": "aaaa-bbbb-cccc"},
        "eventVersion": "0",
    }
    record = ground_truth_record("id-1", 0, {"site": "b"})
    assert record["groundTruthData"]["encoding"] == "JSON"
    assert parse_label(record) == ("id-1", "0", {"site": "b"})


def test_concept_drift_is_flagged_by_model_quality_and_not_by_data_drift(tmp_path: pathlib.Path) -> None:
    """The inputs keep their distribution; the label now follows x2 instead of x1 (concept drift)."""
    rng = np.random.default_rng(7)
    base = _baseline(tmp_path, rng)
    frame = _frame(rng, 2000)
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame, ids)
    _ground_truth(tmp_path / "gt", ids, _labels(frame, rng, relation="x2"), HOUR + dt.timedelta(hours=2))

    quality = _run(tmp_path, base, sensitive=None)
    flagged = {v["metric_name"] for v in quality.violations}
    assert {"accuracy", "auc", "f1"} <= flagged
    assert quality.metric_values["accuracy"] < 0.6
    assert all(v["constraint_check_type"] in ("LessThanThreshold", "GreaterThanThreshold") for v in quality.violations)

    stats, constraints = default_baseline_paths(base)
    drift = analyze(LocalSource(tmp_path / "capture"), stats, constraints, WINDOW)
    assert drift.evaluation.violations == []
    assert drift.counts.rows_analyzed == len(frame)


def test_same_relation_gives_no_quality_violation(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(11)
    base = _baseline(tmp_path, rng)
    frame = _frame(rng, 2000)
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame, ids)
    _ground_truth(tmp_path / "gt", ids, _labels(frame, rng), HOUR + dt.timedelta(hours=2))
    result = _run(tmp_path, base)
    assert result.all_violations == []
    assert result.counts.labeled == 2000
    assert result.statistics["binary_classification_metrics"]["accuracy"]["value"] > 0.9


def test_bias_shift_is_flagged_for_the_group_it_was_planted_in(tmp_path: pathlib.Path) -> None:
    """Site b's negatives are relabelled positive 30% of the time: its recall drops, the other sites' do not."""
    rng = np.random.default_rng(3)
    base = _baseline(tmp_path, rng)
    frame = _frame(rng, 4000)
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame, ids)
    labels = _labels(frame, rng)
    in_b = (frame["site"] == "b").to_numpy()
    relabel = in_b & (labels == 0) & (rng.random(len(frame)) < 0.3)
    labels[relabel] = 1
    _ground_truth(tmp_path / "gt", ids, labels, HOUR + dt.timedelta(hours=2))

    result = _run(tmp_path, base)
    rd = {v["facet_value"] for v in result.bias_violations if v["metric_name"] == "RD"}
    assert rd == {"b"}
    assert all(
        v["facet"] == "site" and v["constraint_check_type"] == "bias_drift_check" for v in result.bias_violations
    )
    assert "DPPL" not in {v["metric_name"] for v in result.bias_violations}  # predictions did not change
    by_group = {r.group: r for r in result.bias_rates}
    assert by_group["b"].true_positive_rate < by_group["a"].true_positive_rate - 0.15


def test_sensitive_column_can_come_from_the_ground_truth(tmp_path: pathlib.Path) -> None:
    """A sensitive attribute that is not a request feature is read from the ground truth's JSON data."""
    rng = np.random.default_rng(5)
    base = tmp_path / "model" / "baseline"
    frame = _frame(rng, 1200)
    write_baseline(frame.drop(columns="site"), base)
    predicted, score = _model(frame)
    write_quality_baseline(
        _labels(frame, rng).tolist(),
        predicted.tolist(),
        base,
        scores=score.tolist(),
        groups=frame["site"].tolist(),
        sensitive="region",
    )
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame.drop(columns="site"), ids)
    labels = _labels(frame, rng)
    records = [
        ground_truth_record(i, int(v), {"region": s}) for i, v, s in zip(ids, labels, frame["site"], strict=True)
    ]
    write_ground_truth_file(tmp_path / "gt", records, HOUR + dt.timedelta(hours=1))
    baseline = load_quality_baseline(base, want_bias=True)
    config = QualityConfig(sensitive="region", feature_names=("x1", "x2", "x3"))
    result = analyze_quality(
        LocalSource(tmp_path / "capture"), LocalSource(tmp_path / "gt"), baseline, WINDOW, config, None, HOUR
    )
    assert sorted(r.group for r in result.bias_rates) == GROUPS
    assert sum(r.rows for r in result.bias_rates) == 1200
    assert result.counts.missing_sensitive == 0


def test_late_and_missing_labels_are_counted_not_guessed(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(9)
    base = _baseline(tmp_path, rng, sensitive=False)
    frame = _frame(rng, 1000)
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame, ids)
    labels = _labels(frame, rng)
    deadline = HOUR + dt.timedelta(hours=3)
    _ground_truth(tmp_path / "gt", ids[:600], labels[:600], HOUR + dt.timedelta(hours=1))  # in time
    _ground_truth(tmp_path / "gt", ids[600:800], labels[600:800], deadline + dt.timedelta(hours=1))  # late
    # ids[800:] never get a label.
    result = _run(tmp_path, base, sensitive=None, deadline=deadline)
    c = result.counts
    assert (c.predictions, c.labeled, c.unlabeled, c.late_labels) == (1000, 600, 400, 200)
    assert c.ground_truth.after_deadline == 200
    assert result.statistics["dataset"]["item_count"] == 600
    assert result.statistics["mlplatform_counts"]["late_labels"] == 200
    assert "600 of 1000 predictions labeled (400 unlabeled, 200 with late labels)" in result.message


def test_inference_id_is_the_join_key_when_the_caller_set_one(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(1)
    base = _baseline(tmp_path, rng, sensitive=False)
    record = capture_record([[0.5, 0.1, 0.2, "a"]], HOUR, output="1,0.2,0.8", event_id="generated", inference_id="mine")
    write_capture_file(tmp_path / "capture", [record], HOUR, endpoint="ep", name="c.jsonl")
    write_ground_truth_file(
        tmp_path / "gt", [ground_truth_record("mine", 1), ground_truth_record("generated", 0)], HOUR
    )
    result = _run(tmp_path, base, sensitive=None)
    assert result.counts.labeled == 1
    assert result.statistics["binary_classification_metrics"]["confusion_matrix"] == {"1": {"1": 1}}


def test_duplicate_and_unreadable_ground_truth_lines_are_counted(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "gt" / "2024" / "05" / "01" / "14"
    folder.mkdir(parents=True)
    lines = [
        json.dumps(ground_truth_record("e1", 1)),
        json.dumps(ground_truth_record("e1", 0)),
        "not json",
        json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {}}),
        json.dumps({"groundTruthData": {"data": "1", "encoding": "XML"}, "eventMetadata": {"eventId": "e2"}}),
    ]
    (folder / "f.jsonl").write_text("\n".join(lines) + "\n")
    counts = GroundTruthCounts()
    source = LocalSource(tmp_path / "gt")
    labels, late = read_ground_truth(source, source.files(""), None, counts)
    assert labels["e1"].value == "0" and late == {}
    assert (counts.labels, counts.duplicates, counts.conflicting_duplicates) == (1, 1, 1)
    assert dict(counts.skipped) == {"corrupt_line": 1, "missing_event_id": 1, "undecodable_label": 1}


def test_cli_quality_writes_statistics_and_violations_naming_metric_and_group(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(3)
    base = _baseline(tmp_path, rng)
    frame = _frame(rng, 4000)
    ids = [f"evt-{i}" for i in range(len(frame))]
    _write_window(tmp_path / "capture", frame, ids)
    labels = _labels(frame, rng, relation="x2")
    _ground_truth(tmp_path / "gt", ids, labels, HOUR + dt.timedelta(hours=1))
    out = tmp_path / "out"
    code = cli_main(
        [
            "quality", "--baseline", str(base), "--capture", str(tmp_path / "capture"),
            "--ground-truth", str(tmp_path / "gt"), "--output", str(out), "--sensitive", "site",
            "--start", "2024-05-01T13:00:00Z", "--end", "2024-05-01T14:00:00Z", "--report", str(out / "report.html"),
        ]
    )  # fmt: skip
    assert code == 0
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["binary_classification_metrics"]["confusion_matrix"].keys() == {"0", "1"}
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert all("metric_name" in v for v in violations)
    assert all("facet_value" in v for v in violations if v["constraint_check_type"] == "bias_drift_check")
    bias = json.loads((out / "bias_metrics.json").read_text())
    assert [f["value_or_threshold"] for f in bias["post_training_bias_metrics"]["facets"]["site"]] == GROUPS
    assert "Bias by site" in (out / "report.html").read_text()


def test_cli_quality_refuses_a_baseline_without_model_quality_files(tmp_path: pathlib.Path, capsys) -> None:
    (tmp_path / "capture").mkdir()
    (tmp_path / "gt").mkdir()
    code = cli_main(
        ["quality", "--baseline", str(tmp_path), "--capture", str(tmp_path / "capture"),
         "--ground-truth", str(tmp_path / "gt"), "--output", str(tmp_path / "o")]
    )  # fmt: skip
    assert code == 2
    assert "model-quality constraints file" in capsys.readouterr().err


def test_cli_ground_truth_writes_the_labels_into_the_upload_hour(tmp_path: pathlib.Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,label,site\nabc,1,b\ndef,0,a\n")
    code = cli_main(
        ["ground-truth", "--labels", str(labels), "--output", str(tmp_path / "gt"), "--extra-column", "site",
         "--uploaded", "2024-05-01T15:20:00Z"]
    )  # fmt: skip
    assert code == 0
    (written,) = (tmp_path / "gt" / "2024" / "05" / "01" / "15").glob("*.jsonl")
    records = [json.loads(line) for line in written.read_text().splitlines()]
    assert [parse_label(r) for r in records] == [("abc", "1", {"site": "b"}), ("def", "0", {"site": "a"})]


def test_cli_ground_truth_names_missing_columns(tmp_path: pathlib.Path, capsys) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,y\n1,0\n")
    assert cli_main(["ground-truth", "--labels", str(labels), "--output", str(tmp_path / "gt")]) == 2
    assert "needs 'inference_id' (or 'event_id') and 'label'" in capsys.readouterr().err


@pytest.mark.parametrize("problem_type", ["Regression", "MulticlassClassification"])
def test_other_problem_types_write_their_sections(tmp_path: pathlib.Path, problem_type: str) -> None:
    rng = np.random.default_rng(0)
    if problem_type == "Regression":
        actual = rng.normal(size=300)
        predicted = actual + rng.normal(scale=0.1, size=300)
    else:
        actual = rng.integers(0, 3, size=300)
        predicted = np.where(rng.random(300) < 0.9, actual, (actual + 1) % 3)
    write_quality_baseline(actual.tolist(), predicted.tolist(), tmp_path, problem_type=problem_type)
    stats = json.loads((tmp_path / "model_quality" / "statistics.json").read_text())
    constraints = json.loads((tmp_path / "model_quality" / "constraints.json").read_text())
    if problem_type == "Regression":
        rmse = stats["regression_metrics"]["rmse"]["value"]
        assert rmse == pytest.approx(math.sqrt(np.mean((predicted - actual) ** 2)))
        assert constraints["regression_constraints"]["rmse"]["comparison_operator"] == "GreaterThanThreshold"
    else:
        assert stats["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(
            float(np.mean(actual == predicted))
        )
        assert "weighted_f1" in constraints["multiclass_classification_constraints"]


def test_bias_metrics_compare_each_group_with_the_other_rows_by_hand() -> None:
    """Clarify's d-vs-a definitions on 6 rows. Group x: predicted positive 2 of 3 (q_d = 2/3), the others 1 of 3
    (q_a = 1/3): DPPL = 1/3 - 2/3 = -1/3. Recall: x finds 2 of its 2 positives (1.0), the others 1 of 2 (0.5):
    RD = 0.5 - 1.0 = -0.5. Accuracy: x 3/3, the others 2/3: AD = -1/3."""
    from monitoring.bias import group_rates

    groups = ["x", "x", "x", "y", "y", "y"]
    actual = np.array([1, 1, 0, 1, 1, 0], dtype=bool)
    predicted = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    x, y = group_rates(groups, actual, predicted)
    assert x.metrics["DPPL"] == pytest.approx(-1 / 3)
    assert x.metrics["RD"] == pytest.approx(-0.5)
    assert x.metrics["AD"] == pytest.approx(-1 / 3)
    assert y.metrics["RD"] == pytest.approx(0.5)
    assert (x.rows, x.positive_prediction_rate, y.true_positive_rate) == (3, pytest.approx(2 / 3), 0.5)
