"""Model quality (and bias drift) of one window: join captured predictions with late-arriving ground truth,
compute the task's metrics, compare them with the baseline the evaluation produced.

The join follows Model Monitor's merge (model-monitor-model-quality-merge): a capture record's
``eventMetadata.inferenceId`` when present, else its ``eventId``, matches the ground truth's
``eventMetadata.eventId``. Nothing is guessed: a prediction without a label is counted as unlabeled and left
out of the metrics; a label uploaded after the window's deadline is counted as late and left out too (a
rerun gives the same answer); duplicates and unreadable lines are counted.

Baseline files (``MODEL_DIR/baseline/``): ``model_quality/statistics.json`` and ``model_quality/constraints.json``
in Model Monitor's model-quality layout, and with a sensitive attribute ``model_bias/constraints.json`` (see
``monitoring.bias``). ``write_quality_baseline`` writes them from the evaluation's labels and predictions.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import pathlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring import bias as bias_mod
from monitoring import quality_metrics as qm
from monitoring.baseline import write_json
from monitoring.capture import (
    CaptureError,
    CaptureSource,
    TimeWindow,
    csv_rows,
    decode_payload,
    inference_time_text,
    iter_lines,
    json_rows,
    parse_record,
    window_files,
)
from monitoring.ground_truth import (
    GroundTruthCounts,
    Label,
    ground_truth_files,
    read_ground_truth,
)

QUALITY_DIR = "model_quality"
BIAS_DIR = "model_bias"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
BIAS_FILE = "bias_metrics.json"
COMPARISON_OPERATORS = (
    "LessThanThreshold",
    "GreaterThanThreshold",
    "LessThanOrEqualToThreshold",
    "GreaterThanOrEqualToThreshold",
)
DEFAULT_TOLERANCE = 0.05
"""How far a classification metric may fall below its baseline value before it is a violation (absolute)."""
DEFAULT_REGRESSION_TOLERANCE = 0.2
"""How far an error metric may grow above its baseline value, relative (20%)."""
CONSTRAINED = {
    qm.BINARY: ("accuracy", "recall", "precision", "f1", "auc", "false_positive_rate", "false_negative_rate"),
    qm.MULTICLASS: ("accuracy", "weighted_recall", "weighted_precision", "weighted_f1"),
    qm.REGRESSION: ("mae", "rmse", "r2"),
}
"""Metrics the suggested constraints cover (the rest are reported only)."""
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class QualityConfig:
    """How to read predictions and labels: SageMaker's ModelQualityJobInput attributes and the problem type."""

    problem_type: str = qm.BINARY
    inference_attribute: str = "0"
    """CSV answers: the column holding the predicted label (0-based); JSON answers: a path such as ``label``."""
    probability_attribute: str | None = "2"
    """Column (or path) of the positive class's probability (binary AUC); None: no AUC."""
    positive_label: str = "1"
    sensitive: str | None = None
    """Sensitive attribute for bias: a feature of the request, or a column of the ground truth's JSON data."""
    feature_names: tuple[str, ...] = ()
    """The request's columns in order (from the data baseline), to find a sensitive feature."""
    label_name: str = "label"

    def __post_init__(self) -> None:
        if self.problem_type not in qm.PROBLEM_TYPES:
            raise ValueError(f"problem type {self.problem_type!r}: allowed {', '.join(qm.PROBLEM_TYPES)}")
        if not self.inference_attribute.strip():
            raise ValueError("inference attribute must name the prediction's column or path")


def normalize_label(text: str) -> str:
    """Labels compare as text, with numbers in one spelling: ``1``, ``1.0`` and `` 1 `` are the same label."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def resolve(doc: Any, path: str) -> Any:
    """A value of a decoded answer: a CSV row (list) by column index, or a JSON document by ``a.b[0]`` path."""
    if isinstance(doc, list) and path.isdigit():
        return doc[int(path)]
    current = doc
    if isinstance(current, dict) and isinstance(current.get("predictions"), list) and len(current["predictions"]) == 1:
        # {"predictions": [{...}]}: one row's answer, the path is relative to it.
        first = current["predictions"][0]
        if path.split(".", maxsplit=1)[0].split("[", maxsplit=1)[0] not in current:
            current = first
    for name, index in _PATH_PART.findall(path):
        current = current[name] if name else current[int(index)]
    return current


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float | None
    group: str | None


@dataclass
class JoinCounts:
    """What happened to every capture record and every prediction of the window."""

    lines_read: int = 0
    records_in_window: int = 0
    records_outside_window: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Capture records skipped, by reason (corrupt_line, unreadable_prediction, multi_row_record, ...)."""
    predictions: int = 0
    labeled: int = 0
    unlabeled: int = 0
    """Predictions with no label by the deadline: missing, not guessed."""
    late_labels: int = 0
    """Predictions whose label came after the deadline (not used)."""
    unreadable_labels: int = 0
    """Labels that matched a prediction but do not parse for the problem type (a regression label not a number)."""
    missing_sensitive: int = 0
    """Labeled predictions without a value of the sensitive attribute (left out of the bias figures)."""
    ground_truth: GroundTruthCounts = field(default_factory=GroundTruthCounts)

    def to_json(self) -> dict[str, Any]:
        return {
            "lines_read": self.lines_read,
            "records_in_window": self.records_in_window,
            "records_outside_window": self.records_outside_window,
            "records_skipped": dict(self.skipped),
            "predictions": self.predictions,
            "labeled": self.labeled,
            "unlabeled": self.unlabeled,
            "late_labels": self.late_labels,
            "unreadable_labels": self.unreadable_labels,
            "missing_sensitive": self.missing_sensitive,
            "ground_truth": self.ground_truth.to_json(),
        }


def _csv_cells(text: str) -> list[str]:
    rows = csv_rows(text)
    if len(rows) != 1:
        raise CaptureError("multi_row_record", f"{len(rows)} rows in one record; model quality joins one row per id")
    return next(csv.reader([rows[0]]))


def _decoded(record: dict[str, Any], index: str) -> Any:
    payload = decode_payload(record, index)
    if payload.csv_text is not None:
        return _csv_cells(payload.csv_text)
    doc = payload.json_doc
    if isinstance(doc, dict) and "instances" in doc:
        rows = json_rows(doc)
        if len(rows) != 1:
            raise CaptureError("multi_row_record", f"{len(rows)} rows in one record")
        return rows[0]
    return doc


def record_id(record: dict[str, Any]) -> str | None:
    """The join key: inferenceId when the caller set one, else the eventId SageMaker generated."""
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict):
        return None
    for key in ("inferenceId", "eventId"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def collect_predictions(
    lines: Iterable[bytes], window: TimeWindow, config: QualityConfig, counts: JoinCounts
) -> dict[str, Prediction]:
    """Predictions of the window's capture records by join key."""
    out: dict[str, Prediction] = {}
    feature_index = config.feature_names.index(config.sensitive) if config.sensitive in config.feature_names else None
    for line in lines:
        if not line.strip():
            continue
        counts.lines_read += 1
        try:
            record = parse_record(line)
            when = inference_time_text(record)
            if when is not None:
                try:
                    inside = window.contains_text(when)
                except ValueError:
                    raise CaptureError("corrupt_line", "eventMetadata.inferenceTime is not an ISO-8601 time") from None
                if not inside:
                    counts.records_outside_window += 1
                    continue
            key = record_id(record)
            if key is None:
                raise CaptureError("missing_event_id", "eventMetadata has neither inferenceId nor eventId")
            answer = _decoded(record, "endpointOutput")
            try:
                label = normalize_label(str(resolve(answer, config.inference_attribute)))
                score = None
                if config.probability_attribute is not None and config.problem_type == qm.BINARY:
                    score = float(resolve(answer, config.probability_attribute))
                    if not math.isfinite(score):
                        raise ValueError("not finite")
            except (KeyError, IndexError, TypeError, ValueError):
                raise CaptureError(
                    "unreadable_prediction",
                    f"the answer has no {config.inference_attribute!r}/{config.probability_attribute!r}",
                ) from None
            group = None
            if feature_index is not None:
                request = _decoded(record, "endpointInput")
                try:
                    cell = request[config.sensitive] if isinstance(request, dict) else request[feature_index]
                    group = normalize_label(str(cell)) if cell is not None and str(cell) != "" else None
                except (KeyError, IndexError, TypeError):
                    group = None
        except CaptureError as err:
            counts.skipped[err.reason] += 1
            continue
        counts.records_in_window += 1
        if key in out:
            counts.skipped["duplicate_event_id"] += 1
        out[key] = Prediction(label, score, group)
    counts.predictions = len(out)
    return out


@dataclass
class Joined:
    actual: list[str]
    predicted: list[str]
    scores: list[float | None]
    groups: list[str | None]


def join(
    predictions: Mapping[str, Prediction],
    labels: Mapping[str, Label],
    late: Mapping[str, Label],
    config: QualityConfig,
    counts: JoinCounts,
) -> Joined:
    joined = Joined([], [], [], [])
    for key, pred in predictions.items():
        label = labels.get(key)
        if label is None:
            counts.unlabeled += 1
            if key in late:
                counts.late_labels += 1
            continue
        value = normalize_label(label.value)
        if config.problem_type == qm.REGRESSION:
            try:
                if not math.isfinite(float(value)) or not math.isfinite(float(pred.label)):
                    raise ValueError
            except ValueError:
                counts.unreadable_labels += 1
                continue
        group = pred.group
        if config.sensitive is not None and group is None:
            extra = label.extra.get(config.sensitive)
            group = normalize_label(extra) if extra not in (None, "") else None
        counts.labeled += 1
        joined.actual.append(value)
        joined.predicted.append(pred.label)
        joined.scores.append(pred.score)
        joined.groups.append(group)
    return joined


def quality_statistics(joined: Joined, config: QualityConfig, evaluation_time: dt.datetime) -> dict[str, Any]:
    """Model Monitor's model-quality statistics.json of the joined rows."""
    n = len(joined.actual)
    doc: dict[str, Any] = {
        "version": 0.0,
        "dataset": {"item_count": n, "evaluation_time": evaluation_time.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
    }
    if n == 0:
        return doc
    if config.problem_type == qm.BINARY:
        scores = joined.scores
        have_scores = all(s is not None for s in scores)
        score_array = np.array(scores, dtype=np.float64) if have_scores else None
        doc[qm.SECTION[qm.BINARY]] = qm.binary_metrics(
            joined.actual, joined.predicted, config.positive_label, score_array
        )
    elif config.problem_type == qm.MULTICLASS:
        doc[qm.SECTION[qm.MULTICLASS]] = qm.multiclass_metrics(joined.actual, joined.predicted)
    else:
        doc[qm.SECTION[qm.REGRESSION]] = qm.regression_metrics(
            np.array([float(v) for v in joined.actual]), np.array([float(v) for v in joined.predicted])
        )
    return doc


def suggest_quality_constraints(
    statistics: Mapping[str, Any], problem_type: str, tolerance: float | None = None
) -> dict[str, Any]:
    """Thresholds from the baseline's metrics: a classification metric may fall ``tolerance`` (absolute) below
    its baseline, an error rate rise as much; a regression error may grow by ``tolerance`` (relative) and R2
    fall by it. Model Monitor's own suggestion is the baseline value itself, which flags every small dip."""
    section = statistics.get(qm.SECTION[problem_type])
    if not isinstance(section, dict):
        raise ValueError(f"baseline statistics have no {qm.SECTION[problem_type]} section for {problem_type}")
    values = qm.metric_values(section)
    slack = (
        tolerance
        if tolerance is not None
        else (DEFAULT_REGRESSION_TOLERANCE if problem_type == qm.REGRESSION else DEFAULT_TOLERANCE)
    )
    constraints: dict[str, Any] = {}
    for name in CONSTRAINED[problem_type]:
        value = values.get(name, math.nan)
        if not math.isfinite(value):
            continue
        if problem_type == qm.REGRESSION and name != "r2":
            threshold, operator = value * (1 + slack), "GreaterThanThreshold"
        elif name in qm.LOWER_IS_BETTER:
            threshold, operator = min(1.0, value + slack), "GreaterThanThreshold"
        else:
            threshold, operator = value - slack, "LessThanThreshold"
        constraints[name] = {"threshold": round(threshold, 6), "comparison_operator": operator}
    return {"version": 0.0, qm.CONSTRAINTS_SECTION[problem_type]: constraints}


@dataclass(frozen=True)
class QualityConstraint:
    metric: str
    threshold: float
    operator: str


def parse_quality_constraints(doc: Mapping[str, Any], source: str) -> tuple[str, list[QualityConstraint]]:
    """(problem type, constraints) of a model-quality constraints.json (ours or Model Monitor's)."""
    found = [(p, doc[s]) for p, s in qm.CONSTRAINTS_SECTION.items() if isinstance(doc.get(s), dict)]
    if len(found) != 1:
        raise ValueError(
            f"{source}: expected exactly one of {', '.join(qm.CONSTRAINTS_SECTION.values())} at the top level"
        )
    problem_type, section = found[0]
    out: list[QualityConstraint] = []
    for metric, entry in section.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: {metric} must be an object with threshold and comparison_operator")
        operator = entry.get("comparison_operator")
        threshold = entry.get("threshold")
        if operator not in COMPARISON_OPERATORS:
            raise ValueError(f"{source}: {metric}.comparison_operator is {operator!r}; allowed {COMPARISON_OPERATORS}")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"{source}: {metric}.threshold is {threshold!r}; allowed: a number")
        out.append(QualityConstraint(metric, float(threshold), operator))
    return problem_type, out


def _breaks(value: float, c: QualityConstraint) -> bool:
    if c.operator == "LessThanThreshold":
        return value < c.threshold
    if c.operator == "GreaterThanThreshold":
        return value > c.threshold
    if c.operator == "LessThanOrEqualToThreshold":
        return value <= c.threshold
    return value >= c.threshold


def quality_violations(
    statistics: Mapping[str, Any], problem_type: str, constraints: Sequence[QualityConstraint]
) -> list[dict[str, str]]:
    """Model Monitor's model-quality violations: one per metric whose value meets its comparison operator."""
    section = statistics.get(qm.SECTION[problem_type])
    if not isinstance(section, dict):
        return []
    values = qm.metric_values(section)
    out = []
    for c in constraints:
        value = values.get(c.metric)
        if value is None or not math.isfinite(value):
            continue
        if _breaks(value, c):
            out.append(
                {
                    "constraint_check_type": c.operator,
                    "description": f"Metric {c.metric} with {value:.6g} was {c.operator} '{c.threshold:g}'",
                    "metric_name": c.metric,
                }
            )
    return out


# --- the baseline ----------------------------------------------------------------------------------------


def write_quality_baseline(
    actual: Sequence[Any],
    predicted: Sequence[Any],
    out_dir: pathlib.Path,
    *,
    problem_type: str = qm.BINARY,
    scores: Sequence[float] | None = None,
    positive_label: str = "1",
    groups: Sequence[Any] | None = None,
    sensitive: str | None = None,
    tolerance: float | None = None,
    bias_tolerance: float = bias_mod.DEFAULT_TOLERANCE,
    evaluation_time: dt.datetime | None = None,
) -> None:
    """Write ``out_dir/model_quality/{statistics,constraints}.json`` (and ``model_bias/constraints.json`` with
    groups) from the evaluation's labels and predictions: the baseline each monitoring window is compared with."""
    if len(actual) != len(predicted) or (scores is not None and len(scores) != len(actual)):
        raise ValueError("baseline: labels, predictions and scores must have one entry per row")
    if not actual:
        raise ValueError("baseline: no rows to compute a model-quality baseline from")
    config = QualityConfig(problem_type=problem_type, positive_label=normalize_label(str(positive_label)))
    joined = Joined(
        [normalize_label(str(a)) for a in actual],
        [normalize_label(str(p)) for p in predicted],
        list(scores) if scores is not None else [None] * len(actual),
        [None if g is None else normalize_label(str(g)) for g in groups]
        if groups is not None
        else [None] * len(actual),
    )
    when = evaluation_time or dt.datetime.now(dt.UTC)
    stats = quality_statistics(joined, config, when)
    quality_dir = out_dir / QUALITY_DIR
    quality_dir.mkdir(parents=True, exist_ok=True)
    write_json(quality_dir / STATISTICS_FILE, stats)
    write_json(quality_dir / CONSTRAINTS_FILE, suggest_quality_constraints(stats, problem_type, tolerance))
    if groups is not None:
        if sensitive is None:
            raise ValueError("baseline: groups need the sensitive attribute's name")
        if problem_type == qm.REGRESSION:
            raise ValueError("bias metrics need a classification problem (positive predictions and recall)")
        rates = _rates_of(joined, config.positive_label)
        bias_dir = out_dir / BIAS_DIR
        bias_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            bias_dir / CONSTRAINTS_FILE,
            bias_mod.suggest_bias_constraints(
                sensitive, config.label_name, config.positive_label, rates, bias_tolerance
            ),
        )


def _rates_of(joined: Joined, positive_label: str) -> list[bias_mod.GroupRates]:
    rows = [i for i, g in enumerate(joined.groups) if g is not None]
    actual = np.array([joined.actual[i] == positive_label for i in rows], dtype=bool)
    predicted = np.array([joined.predicted[i] == positive_label for i in rows], dtype=bool)
    return bias_mod.group_rates([str(joined.groups[i]) for i in rows], actual, predicted)


# --- one run ---------------------------------------------------------------------------------------------


@dataclass
class QualityResult:
    problem_type: str
    statistics: dict[str, Any]
    violations: list[dict[str, str]]
    bias_violations: list[dict[str, str]]
    bias: dict[str, Any] | None
    bias_rates: list[bias_mod.GroupRates]
    counts: JoinCounts
    window: TimeWindow
    deadline: dt.datetime | None
    sensitive: str | None
    source: str
    ground_truth_source: str

    @property
    def all_violations(self) -> list[dict[str, str]]:
        return [*self.violations, *self.bias_violations]

    @property
    def metric_values(self) -> dict[str, float]:
        section = self.statistics.get(qm.SECTION[self.problem_type])
        return qm.metric_values(section) if isinstance(section, dict) else {}

    @property
    def message(self) -> str:
        c = self.counts
        labels = (
            f"{c.labeled} of {c.predictions} predictions labeled ({c.unlabeled} unlabeled, {c.late_labels} with "
            f"late labels)"
        )
        if self.all_violations:
            kinds = sorted({v["metric_name"] for v in self.all_violations})
            return f"CompletedWithViolations: {len(self.all_violations)} violations ({', '.join(kinds)}); {labels}."
        if c.labeled == 0:
            return f"Completed: no labeled predictions in the window; nothing to compare; {labels}."
        return f"Completed: no violations; {labels}."


@dataclass(frozen=True)
class QualityBaseline:
    problem_type: str
    constraints: list[QualityConstraint]
    bias: bias_mod.BiasBaseline | None


def load_quality_baseline(baseline_dir: pathlib.Path, want_bias: bool) -> QualityBaseline:
    from monitoring.job import read_json_file

    path = baseline_dir / QUALITY_DIR / CONSTRAINTS_FILE
    problem_type, constraints = parse_quality_constraints(read_json_file(path, "model-quality constraints"), str(path))
    bias = None
    if want_bias:
        bias_path = baseline_dir / BIAS_DIR / CONSTRAINTS_FILE
        bias = bias_mod.parse_bias_constraints(read_json_file(bias_path, "bias baseline"), str(bias_path))
    return QualityBaseline(problem_type, constraints, bias)


def analyze_quality(
    capture: CaptureSource,
    ground_truth: CaptureSource,
    baseline: QualityBaseline,
    window: TimeWindow,
    config: QualityConfig,
    deadline: dt.datetime | None,
    evaluation_time: dt.datetime | None = None,
) -> QualityResult:
    """Join the window's predictions with the labels uploaded before ``deadline``; compute and check."""
    if config.problem_type != baseline.problem_type:
        raise ValueError(
            f"problem type {config.problem_type} does not match the baseline's constraints ({baseline.problem_type})"
        )
    if config.sensitive is not None and baseline.bias is not None and baseline.bias.attribute != config.sensitive:
        raise ValueError(
            f"sensitive attribute {config.sensitive!r} differs from the bias baseline's ({baseline.bias.attribute!r})"
        )
    counts = JoinCounts()
    predictions = collect_predictions(iter_lines(capture, window_files(capture, window)), window, config, counts)
    files = ground_truth_files(ground_truth, window.start)
    labels, late = read_ground_truth(ground_truth, files, deadline, counts.ground_truth)
    joined = join(predictions, labels, late, config, counts)
    stats = quality_statistics(joined, config, evaluation_time or dt.datetime.now(dt.UTC))
    stats["mlplatform_counts"] = counts.to_json()
    violations = quality_violations(stats, baseline.problem_type, baseline.constraints) if joined.actual else []
    bias_doc = None
    bias_violations: list[dict[str, str]] = []
    rates: list[bias_mod.GroupRates] = []
    if config.sensitive is not None and joined.actual:
        counts.missing_sensitive = sum(1 for g in joined.groups if g is None)
        rates = _rates_of(joined, config.positive_label)
        bias_doc = bias_mod.bias_report(config.sensitive, config.label_name, config.positive_label, rates)
        if baseline.bias is not None:
            bias_violations = bias_mod.bias_violations(baseline.bias, rates)
        stats["mlplatform_counts"] = counts.to_json()
    return QualityResult(
        problem_type=config.problem_type,
        statistics=stats,
        violations=violations,
        bias_violations=bias_violations,
        bias=bias_doc,
        bias_rates=rates,
        counts=counts,
        window=window,
        deadline=deadline,
        sensitive=config.sensitive,
        source=capture.description,
        ground_truth_source=ground_truth.description,
    )


def write_quality_results(result: QualityResult, output_dir: pathlib.Path) -> None:
    """statistics.json, constraint_violations.json (quality and bias) and, with bias, bias_metrics.json."""
    from monitoring.job import VIOLATIONS_FILE

    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / STATISTICS_FILE, result.statistics)
    write_json(output_dir / VIOLATIONS_FILE, {"violations": result.all_violations})
    if result.bias is not None:
        write_json(output_dir / BIAS_FILE, result.bias)


def feature_names_of(statistics_path: pathlib.Path) -> tuple[str, ...]:
    """Feature names, in request order, from the data baseline's statistics.json (for a sensitive feature)."""
    if not statistics_path.is_file():
        return ()
    doc = json.loads(statistics_path.read_text(encoding="utf-8"))
    return tuple(str(f.get("name")) for f in doc.get("features", []) if isinstance(f, dict))
