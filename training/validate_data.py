"""The pipeline's first step: check new training data before any training is paid for.

Two kinds of checks, each violation naming the file, the row (1-based data row; CSV line = row + 1) where
there is one, the column and the check:

- schema and rows, always: every file has the target column and the same header; the target is never empty;
  and, with the champion's baseline, every baseline feature is present, no column is new, and each numeric
  feature's cells are numbers (complete, finite) in every row.
- statistics, with the champion's baseline (`baseline/statistics.json` and `constraints.json` of the model
  now approved): the new `train` channel is profiled with the monitor's own accumulators
  (`monitoring.statistics`) and checked with the monitor's own checks (`monitoring.analysis.evaluate`):
  data type, completeness, category set, and distribution distance per feature, with the drift threshold
  of the constraints unless `max_drift_distance` overrides it.

`validate` returns a report (written as JSON by the command line); `passed` is false when any violation was
found, and the run stops there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from monitoring.analysis import CaptureCounts, evaluate
from monitoring.baseline import CONSTRAINTS_FILE, STATISTICS_FILE
from monitoring.constraints import parse_constraints
from monitoring.statistics import NUMERIC_TYPES, DatasetProfile, FeatureStatistics, parse_statistics
from training.data import _read_file, channel_files
from training.errors import TrainingInputError
from training.layout import MLRoot

REPORT_FILE = "validation.json"
MAX_LISTED_ROWS = 5
"""Rows listed per (file, column, check); the count covers all of them."""


@dataclass(frozen=True)
class DataViolation:
    """One failed check: which check, on which feature, where, and what was found."""

    check: str
    feature: str
    description: str
    file: str | None = None
    """`channel/path` of the file, where the check is about one file."""
    rows: tuple[int, ...] = ()
    """1-based data rows (the first MAX_LISTED_ROWS), where the check is about rows."""
    row_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "feature": self.feature,
            "file": self.file,
            "rows": list(self.rows),
            "row_count": self.row_count,
            "description": self.description,
        }

    def line(self) -> str:
        where = f"{self.file}: " if self.file else ""
        rows = f" (rows {', '.join(map(str, self.rows))}{' ...' if self.row_count > len(self.rows) else ''})"
        return f"{where}column {self.feature!r}: {self.check}: {self.description}{rows if self.rows else ''}"


@dataclass
class ValidationReport:
    """What was checked and what failed; `passed` decides whether the run goes on."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    baseline: str | None = None
    drift_threshold: float | None = None
    violations: list[DataViolation] = field(default_factory=list)
    distances: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "files": self.files,
            "rows": self.rows,
            "baseline": self.baseline,
            "drift_threshold": self.drift_threshold,
            "violations": [v.to_json() for v in self.violations],
            "distances": {k: (v if v is None or math.isfinite(v) else None) for k, v in self.distances.items()},
        }

    def summary(self) -> str:
        if self.passed:
            return f"{self.rows} rows in {len(self.files)} file(s) passed every check"
        shown = "; ".join(v.line() for v in self.violations[:5])
        more = f" (and {len(self.violations) - 5} more)" if len(self.violations) > 5 else ""
        return f"{len(self.violations)} violation(s): {shown}{more}"


@dataclass(frozen=True)
class Baseline:
    """The champion's baseline: what its training data looked like."""

    source: str
    statistics: list[FeatureStatistics]
    constraints_doc: dict[str, Any]


def read_baseline(directory: Path) -> Baseline:
    """`statistics.json` and `constraints.json` of a model's `baseline/` folder; errors name the file."""
    docs: list[dict[str, Any]] = []
    for name in (STATISTICS_FILE, CONSTRAINTS_FILE):
        path = directory / name
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrainingInputError(f"baseline file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrainingInputError(f"baseline file {path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise TrainingInputError(f"baseline file {path} does not hold a JSON object")
        docs.append(doc)
    try:
        statistics = parse_statistics(docs[0], str(directory / STATISTICS_FILE))
        parse_constraints(docs[1])
    except ValueError as exc:
        raise TrainingInputError(f"baseline {directory}: {exc}") from None
    if not statistics:
        raise TrainingInputError(f"baseline file {directory / STATISTICS_FILE} lists no feature")
    return Baseline(str(directory), statistics, docs[1])


def _rows(mask: np.ndarray) -> tuple[tuple[int, ...], int]:
    positions = np.flatnonzero(mask)
    return tuple(int(p) + 1 for p in positions[:MAX_LISTED_ROWS]), int(positions.size)


def _numeric_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(not a number, missing) masks of one column as read (numbers, or text where any cell is not one)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return np.isinf(values), missing
    text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    missing = (text == "").to_numpy()
    parsed = cast(pd.Series, pd.to_numeric(text.where(~missing, None), errors="coerce")).to_numpy(dtype=np.float64)
    bad = ~missing & ~np.isfinite(parsed)
    return bad, missing


def _file_checks(
    name: str, frame: pd.DataFrame, target: str, baseline: Baseline | None, header: list[str] | None
) -> list[DataViolation]:
    violations: list[DataViolation] = []
    columns = [str(c) for c in frame.columns]
    if header is not None and columns != header:
        violations.append(
            DataViolation(
                "header_check",
                target,
                f"columns {columns[:20]} differ from the first file's {header[:20]}; all files need the same header",
                name,
            )
        )
    if target not in columns:
        violations.append(
            DataViolation(
                "missing_target_check",
                target,
                f"the target column is absent; the file's columns are {columns[:20]} "
                f"(the 'target' hyperparameter names the label column)",
                name,
            )
        )
    else:
        labels = frame[target].astype(object).where(frame[target].notna(), "").astype(str).str.strip()
        rows, count = _rows((labels == "").to_numpy())
        if count:
            violations.append(
                DataViolation("missing_label_check", target, f"{count} row(s) have an empty label", name, rows, count)
            )
    if baseline is None:
        return violations
    expected = [f.name for f in baseline.statistics]
    features = [c for c in columns if c != target]
    for missing in [n for n in expected if n not in features]:
        violations.append(
            DataViolation(
                "missing_column_check",
                missing,
                "the champion's baseline has this feature and the file does not; the served model's requests "
                "would no longer match",
                name,
            )
        )
    for extra in [n for n in features if n not in expected]:
        violations.append(
            DataViolation(
                "extra_column_check",
                extra,
                f"the file has a feature the champion's baseline does not (baseline features: {expected[:20]}); "
                "a new feature changes the request format and needs a new baseline",
                name,
            )
        )
    for feature in baseline.statistics:
        if feature.inferred_type not in NUMERIC_TYPES or feature.name not in columns:
            continue
        bad, missing = _numeric_cells(cast(pd.Series, frame[feature.name]))
        rows, count = _rows(bad)
        if count:
            violations.append(
                DataViolation(
                    "data_type_check",
                    feature.name,
                    f"{count} cell(s) are not finite numbers (baseline type {feature.inferred_type})",
                    name,
                    rows,
                    count,
                )
            )
        rows, count = _rows(missing)
        if count:
            violations.append(
                DataViolation(
                    "completeness_check",
                    feature.name,
                    f"{count} cell(s) are empty; numeric features must be complete (the model does not impute)",
                    name,
                    rows,
                    count,
                )
            )
    return violations


def validate(
    ml: MLRoot,
    target: str,
    baseline_dir: Path | None,
    *,
    max_drift_distance: float | None = None,
    channels: Sequence[str] = ("train",),
) -> ValidationReport:
    """Check the channels' files (and, with a baseline, the `train` channel's statistics); never raises for
    bad data, only for a channel that cannot be listed or a baseline that cannot be read."""
    if max_drift_distance is not None and not 0.0 <= max_drift_distance <= 1.0:
        raise TrainingInputError(f"max_drift_distance {max_drift_distance!r}: allowed a number in [0, 1]")
    baseline = read_baseline(baseline_dir) if baseline_dir is not None else None
    report = ValidationReport(baseline=baseline.source if baseline else None)
    train_frames: list[pd.DataFrame] = []
    # String features of the baseline are read as text, so "007" stays a category and is not the number 7.
    statistics = baseline.statistics if baseline else []
    text_columns = tuple(f.name for f in statistics if f.inferred_type not in NUMERIC_TYPES)
    for channel in channels:
        header: list[str] | None = None
        directory = ml.channel(channel)
        for path in channel_files(ml, channel):
            name = f"{channel}/{path.relative_to(directory).as_posix()}"
            try:
                frame = _read_file(channel, path.relative_to(directory).as_posix(), path.read_bytes(), text_columns)
            except TrainingInputError as exc:
                report.violations.append(DataViolation("read_check", "*", str(exc), name))
                continue
            report.files.append(name)
            report.rows += len(frame)
            report.violations.extend(_file_checks(name, frame, target, baseline, header))
            header = header or [str(c) for c in frame.columns]
            if channel == "train":
                train_frames.append(frame)
    if baseline is None or not train_frames or not report.passed:
        # Statistics of data whose rows or columns are already wrong would only repeat those findings.
        return report
    _statistics_checks(report, baseline, pd.concat(train_frames, ignore_index=True), max_drift_distance)
    return report


def _statistics_checks(
    report: ValidationReport, baseline: Baseline, frame: pd.DataFrame, max_drift_distance: float | None
) -> None:
    constraints = parse_constraints(baseline.constraints_doc)
    if max_drift_distance is not None:
        config = dataclasses.replace(
            constraints.config,
            comparison_threshold=max_drift_distance,
            categorical_comparison_threshold=max_drift_distance,
        )
        constraints = dataclasses.replace(constraints, config=config)
    report.drift_threshold = constraints.config.comparison_threshold
    names = [f.name for f in baseline.statistics]
    profile = DatasetProfile.for_features([(f.name, f.inferred_type) for f in baseline.statistics])
    profile.ingest_frame(cast(pd.DataFrame, frame[names]))
    counts = CaptureCounts(rows_seen=len(frame), rows_analyzed=len(frame))
    counts.column_counts[len(names)] = len(frame)
    result = evaluate(baseline.statistics, constraints, profile, counts)
    report.distances = {name: c.distance for name, c in result.comparisons.items()}
    for v in result.violations:
        report.violations.append(DataViolation(v.constraint_check_type, v.feature_name, v.description, "train"))


def write_report(report: ValidationReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
