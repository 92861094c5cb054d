"""Analysis of one monitoring window: stream capture records into statistics, then check them against the baseline.

``WindowAnalyzer`` turns capture lines into rows and rows into the same accumulators the baseline used,
batch by batch (memory stays bounded); ``evaluate`` produces Model Monitor's violations and the per-feature
comparisons that feed the metrics and the report.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from monitoring.capture import (
    CaptureError,
    TimeWindow,
    csv_field_count,
    csv_rows,
    decode_payload,
    inference_time_text,
    json_rows,
    loads_json,
    parse_record,
)
from monitoring.constraints import Constraints, FeatureConstraint, MonitoringConfig
from monitoring.distance import chi_squared_p_value, linf_categorical, linf_sketches, robust
from monitoring.statistics import (
    FRACTIONAL,
    INTEGRAL,
    NUMERIC_TYPES,
    DatasetProfile,
    FeatureAccumulator,
    FeatureStatistics,
    NumericAccumulator,
    StringAccumulator,
)

DEFAULT_BATCH_ROWS = 8_192
"""Rows parsed per batch. Measured on 30 features: 8k rows costs no more CPU than 64k (per-batch overhead
is small next to parsing) and keeps the peak about 100 MiB lower."""
MAX_LISTED_VALUES = 10


@dataclass
class CaptureCounts:
    """What happened to every line and row of the window; reported so that skipped data is visible."""

    lines_read: int = 0
    records_in_window: int = 0
    records_outside_window: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Records (lines) skipped, by reason: corrupt_line, missing_capture_index, undecodable_payload."""
    rows_seen: int = 0
    rows_analyzed: int = 0
    rows_wrong_column_count: int = 0
    column_counts: Counter[int] = field(default_factory=Counter)
    """Rows by number of columns (positional rows only)."""
    named_rows: int = 0
    names_seen: Counter[str] = field(default_factory=Counter)
    """For rows sent as objects: how many rows carried each name."""

    def to_json(self) -> dict[str, Any]:
        return {
            "lines_read": self.lines_read,
            "records_in_window": self.records_in_window,
            "records_outside_window": self.records_outside_window,
            "records_skipped": dict(self.skipped),
            "rows_seen": self.rows_seen,
            "rows_analyzed": self.rows_analyzed,
            "rows_wrong_column_count": self.rows_wrong_column_count,
            "column_counts": {str(k): v for k, v in sorted(self.column_counts.items())},
        }


class WindowAnalyzer:
    """Streams capture lines of one window into a DatasetProfile shaped like the baseline."""

    def __init__(
        self,
        baseline: Sequence[FeatureStatistics],
        window: TimeWindow | None = None,
        capture_index: str = "endpointInput",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        if not baseline:
            raise ValueError("baseline statistics list no features")
        self.baseline = list(baseline)
        self.names = [f.name for f in baseline]
        self._index = {name: i for i, name in enumerate(self.names)}
        self.window = window or TimeWindow()
        self.capture_index = capture_index
        self.batch_rows = batch_rows
        self.profile = DatasetProfile.for_features([(f.name, f.inferred_type) for f in baseline])
        self.counts = CaptureCounts()
        self._csv_batch: list[str] = []
        self._cell_batch: list[list[Any]] = []
        # String features keep their text ("007" is a category, not 7); number columns are parsed by pandas.
        self._csv_dtypes: dict[int, Any] = {
            i: object for i, f in enumerate(baseline) if f.inferred_type not in NUMERIC_TYPES
        }

    @property
    def n_features(self) -> int:
        return len(self.names)

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """Add capture lines. The common record (one CSV payload with an inferenceTime) takes an inlined
        path, because per-record Python overhead dominates a large window; every other shape goes through
        the general decoder."""
        loads = loads_json
        index = self.capture_index
        window = self.window
        n = self.n_features
        counts = self.counts
        batch = self._csv_batch
        limit = self.batch_rows
        lines_read = outside = in_window = 0
        bounds = window.text_bounds
        low, high = bounds if bounds is not None else (None, None)
        ok_rows = wrong_rows = 0
        try:
            for line in lines:
                lines_read += 1
                data = when = ""
                try:
                    record = loads(line)
                    part = record["captureData"][index]
                    data = part["data"]
                    when = record["eventMetadata"]["inferenceTime"]
                    fast = part["encoding"] == "CSV" and type(data) is str and type(when) is str
                except Exception:  # any shape the fast path does not expect: classify it below
                    fast = False
                if fast and "\n" in data:
                    # Many clients end a one-row CSV body with a newline; that is still one row.
                    stripped = data.rstrip("\r\n")
                    if "\n" not in stripped:
                        data = stripped
                if not fast or "\n" in data or '"' in data or not data.strip():
                    lines_read -= 1
                    self.add_line(line)
                    continue
                if bounds is not None and len(when) >= 20 and when[-1] == "Z" and when[19] in ".Z" and when[10] == "T":
                    # Canonical UTC text: compare as strings (see TimeWindow.contains_text).
                    key = when[:19]
                    inside = (low is None or key >= low) and (high is None or key < high)
                else:
                    try:
                        inside = window.contains_text(when)
                    except ValueError:
                        counts.skipped["corrupt_line"] += 1
                        continue
                if not inside:
                    outside += 1
                    continue
                in_window += 1
                if data.count(",") + 1 == n:
                    ok_rows += 1
                    batch.append(data)
                    if len(batch) >= limit:
                        self._flush_csv()
                        batch = self._csv_batch
                else:
                    wrong_rows += 1
                    counts.column_counts[data.count(",") + 1] += 1
        finally:
            counts.lines_read += lines_read
            counts.records_outside_window += outside
            counts.records_in_window += in_window
            counts.rows_seen += ok_rows + wrong_rows
            counts.rows_wrong_column_count += wrong_rows
            counts.column_counts[n] += ok_rows
            if counts.column_counts[n] == 0:
                del counts.column_counts[n]

    def add_line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.counts.lines_read += 1
        try:
            record = parse_record(line)
            text = inference_time_text(record)
            if text is not None:
                try:
                    inside = self.window.contains_text(text)
                except ValueError:
                    raise CaptureError("corrupt_line", "eventMetadata.inferenceTime is not an ISO-8601 time") from None
                if not inside:
                    self.counts.records_outside_window += 1
                    return
            payload = decode_payload(record, self.capture_index)
            if payload.csv_text is not None:
                self._add_csv(payload.csv_text)
            else:
                self._add_json_rows(json_rows(payload.json_doc))
        except CaptureError as err:
            self.counts.skipped[err.reason] += 1
            return
        self.counts.records_in_window += 1

    def _add_csv(self, text: str) -> None:
        n = self.n_features
        for row in csv_rows(text):
            self.counts.rows_seen += 1
            fields = csv_field_count(row)
            self.counts.column_counts[fields] += 1
            if fields != n:
                self.counts.rows_wrong_column_count += 1
                continue
            self._csv_batch.append(row)
        if len(self._csv_batch) >= self.batch_rows:
            self._flush_csv()

    def _add_json_rows(self, rows: list[Any]) -> None:
        n = self.n_features
        for row in rows:
            self.counts.rows_seen += 1
            if isinstance(row, dict) and isinstance(row.get("features"), list):
                row = row["features"]
            if isinstance(row, list):
                self.counts.column_counts[len(row)] += 1
                if len(row) != n:
                    self.counts.rows_wrong_column_count += 1
                    continue
                self._cell_batch.append([_cell(v) for v in row])
            elif isinstance(row, dict):
                self.counts.named_rows += 1
                self.counts.names_seen.update(row.keys())
                self._cell_batch.append([_cell(row.get(name)) for name in self.names])
            else:
                self.counts.column_counts[1] += 1
                if n != 1:
                    self.counts.rows_wrong_column_count += 1
                    continue
                self._cell_batch.append([_cell(row)])
        if len(self._cell_batch) >= self.batch_rows:
            self._flush_cells()

    def _flush_csv(self) -> None:
        if not self._csv_batch:
            return
        options: dict[str, Any] = {
            "header": None,
            "names": list(range(self.n_features)),
            "dtype": self._csv_dtypes,
            # Only an empty cell is missing (as in Model Monitor's CSV reader): "NA" may be a category.
            "keep_default_na": False,
            "na_values": [""],
            "skip_blank_lines": False,
            "engine": "c",
        }
        frame = pd.read_csv(io.StringIO("\n".join(self._csv_batch)), **options)
        self._csv_batch = []
        self._ingest(frame)

    def _flush_cells(self) -> None:
        if not self._cell_batch:
            return
        frame = pd.DataFrame(self._cell_batch, dtype=object)
        self._cell_batch = []
        self._ingest(frame)

    def _ingest(self, frame: pd.DataFrame) -> None:
        self.counts.rows_analyzed += len(frame)
        self.profile.ingest_frame(frame)

    def finish(self) -> DatasetProfile:
        """Parse what is still buffered and return the window's profile."""
        self._flush_csv()
        self._flush_cells()
        return self.profile


def _cell(value: Any) -> Any:
    """A JSON value as a cell: numbers and text stay, nested values become their JSON text."""
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str

    def to_json(self) -> dict[str, str]:
        return {
            "feature_name": self.feature_name,
            "constraint_check_type": self.constraint_check_type,
            "description": self.description,
        }


@dataclass(frozen=True)
class FeatureComparison:
    """One feature's drift comparison: what was compared, how, and the outcome."""

    name: str
    kind: str  # "numerical" | "categorical"
    method: str
    distance: float | None
    threshold: float
    drifted: bool
    completeness: float | None


@dataclass
class Evaluation:
    violations: list[Violation]
    comparisons: dict[str, FeatureComparison]
    no_data: bool


def evaluate(
    baseline: Sequence[FeatureStatistics],
    constraints: Constraints,
    profile: DatasetProfile,
    counts: CaptureCounts,
) -> Evaluation:
    """Model Monitor's checks of the window against the baseline statistics and constraints."""
    config = constraints.config
    by_name = {c.name: c for c in constraints.features}
    violations: list[Violation] = []
    if config.evaluate_constraints:
        violations.extend(_column_checks(baseline, counts))
    missing_named = {v.feature_name for v in violations if v.constraint_check_type == "missing_column_check"}
    comparisons: dict[str, FeatureComparison] = {}
    no_data = counts.rows_analyzed == 0
    if no_data:
        return Evaluation(violations, comparisons, no_data=True)
    for base, acc in zip(baseline, profile.features, strict=True):
        if base.name in missing_named:
            continue
        constraint = by_name.get(base.name)
        total = acc.num_present + acc.num_missing
        completeness = acc.num_present / total if total else None
        if config.evaluate_constraints and constraint is not None:
            violations.extend(_feature_checks(constraint, acc, config, completeness))
        comparison = _compare(base, acc, config, constraint, completeness)
        if comparison is not None:
            comparisons[base.name] = comparison
            if comparison.drifted:
                violations.append(
                    Violation(
                        base.name,
                        "baseline_drift_check",
                        _drift_description(comparison),
                    )
                )
    return Evaluation(violations, comparisons, no_data=False)


def _drift_description(c: FeatureComparison) -> str:
    if c.method == "ChiSquared":
        return f"ChiSquared p-value: {c.distance} is below threshold: {c.threshold}"
    return f"Baseline drift distance: {c.distance} exceeds threshold: {c.threshold}"


def _column_checks(baseline: Sequence[FeatureStatistics], counts: CaptureCounts) -> list[Violation]:
    n = len(baseline)
    violations: list[Violation] = []
    if counts.column_counts:
        observed, _ = counts.column_counts.most_common(1)[0]
        if observed < n:
            for feat in baseline[observed:]:
                violations.append(
                    Violation(
                        feat.name,
                        "missing_column_check",
                        "There are missing columns in current dataset. Number of columns in current dataset: "
                        f"{observed}, Number of columns in baseline constraints: {n}",
                    )
                )
        elif observed > n:
            for i in range(n, observed):
                violations.append(
                    Violation(
                        f"_c{i}",
                        "extra_column_check",
                        "There are extra columns in current dataset. Number of columns in current dataset: "
                        f"{observed}, Number of columns in baseline constraints: {n}",
                    )
                )
    if counts.named_rows:
        names = [f.name for f in baseline]
        known = set(names)
        for name in names:
            if counts.names_seen.get(name, 0) == 0:
                violations.append(
                    Violation(
                        name,
                        "missing_column_check",
                        f"There are missing columns in current dataset. Column {name!r} is in the baseline "
                        f"but in none of the {counts.named_rows} rows sent as objects",
                    )
                )
        for name in sorted(set(counts.names_seen) - known):
            violations.append(
                Violation(
                    name,
                    "extra_column_check",
                    f"There are extra columns in current dataset. Column {name!r} is in "
                    f"{counts.names_seen[name]} rows but not in the baseline",
                )
            )
    return violations


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _feature_checks(
    constraint: FeatureConstraint,
    acc: FeatureAccumulator,
    config: MonitoringConfig,
    completeness: float | None,
) -> list[Violation]:
    violations: list[Violation] = []
    expected = constraint.inferred_type
    if expected in (INTEGRAL, FRACTIONAL) and acc.types.total:
        ratio = acc.types.matching(expected) / acc.types.total
        if ratio < config.datatype_check_threshold:
            violations.append(
                Violation(
                    constraint.name,
                    "data_type_check",
                    f"Data type match requirement is not met. Expected data type: {expected}, Expected match: "
                    f"{_pct(config.datatype_check_threshold)}. Observed: Only {_pct(ratio)} of data is {expected}.",
                )
            )
    # A tiny tolerance so that float rounding of the baseline's ratio never flags an identical window.
    if (
        constraint.completeness is not None
        and completeness is not None
        and completeness < constraint.completeness - 1e-9
    ):
        violations.append(
            Violation(
                constraint.name,
                "completeness_check",
                f"Data completeness requirement is not met. Expected: {_pct(constraint.completeness)} of data "
                f"present. Observed: Only {_pct(completeness)} of data is present.",
            )
        )
    if constraint.domains is not None and isinstance(acc, StringAccumulator) and acc.num_present:
        domain = set(constraint.domains)
        unknown = {v: c for v, c in acc.counts.items() if v not in domain}
        ratio = 1.0 - sum(unknown.values()) / acc.num_present
        if ratio < config.domain_content_threshold:
            listed = ", ".join(repr(v) for v in sorted(unknown, key=lambda v: -unknown[v])[:MAX_LISTED_VALUES])
            violations.append(
                Violation(
                    constraint.name,
                    "categorical_values_check",
                    f"Categorical value match requirement is not met. Expected match: "
                    f"{_pct(config.domain_content_threshold)}. Observed: Only {_pct(ratio)} of data is within the "
                    f"baseline domain; values not in it: {listed}",
                )
            )
    return violations


def _compare(
    base: FeatureStatistics,
    acc: FeatureAccumulator,
    config: MonitoringConfig,
    constraint: FeatureConstraint | None,
    completeness: float | None,
) -> FeatureComparison | None:
    if not config.perform_comparison:
        return None
    overrides = constraint.overrides if constraint is not None else {}
    if base.is_numeric and isinstance(acc, NumericAccumulator):
        if base.sketch is None or base.sketch.count == 0 or acc.sketch.count == 0:
            return None
        threshold = float(overrides.get("comparison_threshold", config.comparison_threshold))
        distance = linf_sketches(base.sketch, acc.sketch)
        if config.comparison_method == "Robust":
            distance = robust(distance, base.sketch.count, acc.sketch.count)
        return FeatureComparison(
            base.name, "numerical", config.comparison_method, distance, threshold, distance > threshold, completeness
        )
    if isinstance(acc, StringAccumulator) and base.categories:
        if not acc.counts:
            return None
        threshold = float(overrides.get("categorical_comparison_threshold", config.categorical_comparison_threshold))
        if config.categorical_drift_method == "ChiSquared":
            p_value = chi_squared_p_value(base.categories, acc.counts)
            return FeatureComparison(
                base.name, "categorical", "ChiSquared", p_value, threshold, p_value < threshold, completeness
            )
        distance = linf_categorical(base.categories, acc.counts)
        method = "LInfinity"
        if config.comparison_method == "Robust":
            distance = robust(distance, sum(base.categories.values()), sum(acc.counts.values()))
            method = "LInfinity (Robust)"
        return FeatureComparison(
            base.name, "categorical", method, distance, threshold, distance > threshold, completeness
        )
    return None
