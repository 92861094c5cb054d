"""One monitoring run end to end: read the baseline, stream the window's captures, check, write the outputs.

Shared by the CLI (``python -m monitoring analyze``) and the container entrypoint (the Model Monitor
bring-your-own-container contract), so both produce the same files.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from monitoring.analysis import CaptureCounts, Evaluation, WindowAnalyzer, evaluate
from monitoring.baseline import CONSTRAINTS_FILE, STATISTICS_FILE, write_json
from monitoring.capture import CaptureSource, TimeWindow, iter_lines, window_files
from monitoring.constraints import Constraints, parse_constraints
from monitoring.statistics import DatasetProfile, FeatureStatistics, parse_statistics

VIOLATIONS_FILE = "constraint_violations.json"
"""Model Monitor's spelling, which Studio and the SDK read."""


@dataclass
class RunResult:
    """Everything a run produced, for the metrics, the report and the status message."""

    baseline: list[FeatureStatistics]
    constraints: Constraints
    profile: DatasetProfile
    counts: CaptureCounts
    evaluation: Evaluation
    window: TimeWindow
    files_read: int
    source: str
    statistics: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The status line for /opt/ml/output/message."""
        skipped = sum(self.counts.skipped.values())
        extra = (
            f" {skipped} records and {self.counts.rows_wrong_column_count} rows skipped as unreadable."
            if skipped or self.counts.rows_wrong_column_count
            else ""
        )
        if self.evaluation.violations:
            kinds = sorted({v.constraint_check_type for v in self.evaluation.violations})
            return (
                f"CompletedWithViolations: {len(self.evaluation.violations)} violations ({', '.join(kinds)}) "
                f"in {self.counts.rows_analyzed} rows.{extra}"
            )
        if self.evaluation.no_data:
            return (
                f"Completed: no data in the window ({self.counts.records_in_window} records in the window, "
                f"{self.counts.rows_analyzed} rows analyzed); nothing to compare.{extra}"
            )
        return f"Completed: no violations in {self.counts.rows_analyzed} rows.{extra}"


def read_json_file(path: pathlib.Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{what} file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} file {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} file {str(path)!r} must hold a JSON object")
    return doc


def load_baseline(
    statistics_path: pathlib.Path, constraints_path: pathlib.Path
) -> tuple[list[FeatureStatistics], Constraints]:
    baseline = parse_statistics(read_json_file(statistics_path, "baseline statistics"), str(statistics_path))
    constraints = parse_constraints(read_json_file(constraints_path, "baseline constraints"))
    return baseline, constraints


def analyze(
    source: CaptureSource,
    statistics_path: pathlib.Path,
    constraints_path: pathlib.Path,
    window: TimeWindow,
    capture_index: str = "endpointInput",
) -> RunResult:
    """Stream the window's capture files through the analyzer and evaluate the checks."""
    baseline, constraints = load_baseline(statistics_path, constraints_path)
    analyzer = WindowAnalyzer(baseline, window=window, capture_index=capture_index)
    files = window_files(source, window)
    analyzer.add_lines(iter_lines(source, files))
    profile = analyzer.finish()
    evaluation = evaluate(baseline, constraints, profile, analyzer.counts)
    return RunResult(
        baseline=baseline,
        constraints=constraints,
        profile=profile,
        counts=analyzer.counts,
        evaluation=evaluation,
        window=window,
        files_read=len(files),
        source=source.description,
        statistics=profile.to_json(),
    )


def merged_result(
    partials: list[dict[str, Any]], statistics_path: pathlib.Path, constraints_path: pathlib.Path, source: str
) -> RunResult:
    """The run result of a window analyzed in shards: the partials merged, then checked as one."""
    from monitoring.shards import merge_partials, partials_window

    baseline, constraints = load_baseline(statistics_path, constraints_path)
    profile, counts, files = merge_partials(partials, [(f.name, f.inferred_type) for f in baseline])
    evaluation = evaluate(baseline, constraints, profile, counts)
    return RunResult(
        baseline=baseline,
        constraints=constraints,
        profile=profile,
        counts=counts,
        evaluation=evaluation,
        window=partials_window(partials),
        files_read=files,
        source=f"{source} ({len(partials)} shards)",
        statistics=profile.to_json(),
    )


def write_results(result: RunResult, output_dir: pathlib.Path) -> None:
    """statistics.json and constraint_violations.json in Model Monitor's format."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / STATISTICS_FILE, result.statistics)
    write_json(output_dir / VIOLATIONS_FILE, {"violations": [v.to_json() for v in result.evaluation.violations]})


def default_baseline_paths(baseline_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    return baseline_dir / STATISTICS_FILE, baseline_dir / CONSTRAINTS_FILE


def metric_timestamp(window: TimeWindow) -> dt.datetime:
    """Metrics are stamped with the window's end (the hour they describe), or now for an open window."""
    return window.end or dt.datetime.now(dt.UTC)
