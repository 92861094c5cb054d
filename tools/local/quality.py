"""The ground-truth phase of `make local`: labels for the normal phase's predictions, then model quality and bias.

The normal phase replayed the held-out split; its captures hold the model's answers, and the split holds the
true labels. Each replayed row gets a `site` (a, b, c, d in turn), a column that only the ground truth carries,
as a sensitive attribute joined from the labels. Three label sets are uploaded in Model Monitor's ground-truth
format, keyed by each capture's eventId:

- `true`: the real labels. They also make the model-quality baseline (the held-out evaluation through the
  served model), so the monitor must report no violation.
- `concept`: every 5th row of each site has its label flipped. The inputs are the normal phase's, so the drift
  monitor sees nothing; model quality must drop (accuracy falls about 0.2, the tolerance is 0.05), and no site
  is worse off than another, so bias must stay quiet.
- `bias`: the first rows of site b labelled with the negative class (one per ten of its rows: three with
  the whole split) become positive: the model (which answered negative) misses them, so b's recall falls
  from 1.0 to about 0.75 and its recall difference (RD, equal opportunity) passes its threshold (baseline
  + 0.1), while each other site's RD moves by about 3/35 (their "rest" holds all other positives), under
  theirs. Exactly site b must be flagged for bias; the overall recall also drops (3 of ~43 positives
  missed), so model quality may flag recall too.

Baseline and windows hold the same rows and predictions, so only the planted changes move the metrics.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitoring import quality_metrics as qm
from monitoring.capture import LocalSource, TimeWindow, iter_lines, window_files
from monitoring.ground_truth import ground_truth_record, write_ground_truth_file
from monitoring.quality import (
    JoinCounts,
    QualityConfig,
    analyze_quality,
    collect_predictions,
    load_quality_baseline,
    write_quality_baseline,
    write_quality_results,
)
from monitoring.report import render_quality_report

SITES = ("a", "b", "c", "d")
SENSITIVE = "site"
SCENARIOS = ("true", "concept", "bias")
MIN_BIAS_ROWS = 100
"""The bias scenario needs about 25 rows per site: with fewer (`--rows 40`), one relabelled row moves every
site's recall difference past the tolerance, so the scenario is skipped and the summary says so."""
MIN_GROUP_ROWS = 10
"""Sites of the held-out split have ~28 rows; judged from 10 up (the default 30 is for production traffic)."""


def held_out_labels(csv_path: Path, target: str) -> list[str]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return [row[target] for row in csv.DictReader(handle)]


def planted(labels: Sequence[str], sites: Sequence[str], scenario: str, classes: Sequence[str]) -> list[str]:
    """The label set of a scenario (see the module docstring)."""
    out = list(labels)
    seen: dict[str, int] = dict.fromkeys(SITES, 0)
    planted_in_b = 0
    # One planted row per 10 of site b's rows: about 3 of 29 with the whole held-out split, 1 of 10 with --rows 40.
    to_plant = max(1, round(sum(1 for s in sites if s == "b") / 10))
    for i, site in enumerate(sites):
        seen[site] += 1
        if scenario == "concept" and seen[site] % 5 == 0:
            out[i] = classes[1] if out[i] == classes[0] else classes[0]
        elif scenario == "bias" and site == "b" and out[i] == classes[0] and planted_in_b < to_plant:
            out[i] = classes[1]
            planted_in_b += 1
    return out


def expected(scenario: str) -> dict[str, Any]:
    return {
        "true": {"quality": False, "bias_groups": []},
        "concept": {"quality": True, "bias_groups": []},
        "bias": {"quality": None, "bias_groups": ["b"]},  # recall drops overall too: either verdict is right
    }[scenario]


def run_quality_phase(
    capture_root: Path,
    window: TimeWindow,
    rows_labels: Sequence[str],
    rows_sent: Sequence[Sequence[str]],
    classes: Sequence[str],
    out: Path,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Upload the three label sets, write the quality baseline, run the quality monitor on each."""
    config = QualityConfig(positive_label=classes[1], sensitive=SENSITIVE)
    counts = JoinCounts()
    source = LocalSource(capture_root)
    predictions = collect_predictions(iter_lines(source, window_files(source, window)), window, config, counts)
    # Captures hold exactly the bytes sent: match each record to its held-out row by its CSV payload.
    row_index = {",".join(r): i for i, r in enumerate(rows_sent)}
    by_event: dict[str, int] = {}
    for line in iter_lines(source, window_files(source, window)):
        record = json.loads(line)
        by_event[record["eventMetadata"]["eventId"]] = row_index[record["captureData"]["endpointInput"]["data"]]
    if set(by_event) != set(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(by_event)} capture records in {capture_root}")
    sites = [SITES[i % len(SITES)] for i in range(len(rows_sent))]
    events = sorted(by_event, key=by_event.get)  # type: ignore[arg-type]

    baseline = out / "baseline"
    write_quality_baseline(
        [rows_labels[by_event[e]] for e in events],
        [predictions[e].label for e in events],
        baseline,
        scores=[float(predictions[e].score or 0.0) for e in events],
        positive_label=classes[1],
        groups=[sites[by_event[e]] for e in events],
        sensitive=SENSITIVE,
    )
    _lower_min_group_rows(baseline / "model_bias" / "constraints.json")
    uploaded = (window.end or dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=5)
    summary: dict[str, Any] = {}
    reports: dict[str, Path] = {}
    loaded = load_quality_baseline(baseline, want_bias=True)
    scenarios = SCENARIOS if len(rows_sent) >= MIN_BIAS_ROWS else tuple(s for s in SCENARIOS if s != "bias")
    if "bias" not in scenarios:
        summary["skipped"] = f"bias scenario: {len(rows_sent)} rows replayed, it needs at least {MIN_BIAS_ROWS}"
    for scenario in scenarios:
        labels = planted(rows_labels, sites, scenario, classes)
        gt_root = out / "ground-truth" / scenario
        write_ground_truth_file(
            gt_root,
            [ground_truth_record(e, labels[by_event[e]], {SENSITIVE: sites[by_event[e]]}) for e in events],
            uploaded,
        )
        result = analyze_quality(source, LocalSource(gt_root), loaded, window, config, None)
        result_dir = out / scenario
        write_quality_results(result, result_dir)
        reports[scenario] = result_dir / "report.html"
        reports[scenario].write_text(render_quality_report(result), encoding="utf-8")
        quality_flagged = sorted({v["metric_name"] for v in result.violations})
        bias_groups = sorted({v["facet_value"] for v in result.bias_violations})
        want = expected(scenario)
        ok = bias_groups == want["bias_groups"] and (
            want["quality"] is None or bool(quality_flagged) == want["quality"]
        )
        summary[scenario] = {
            "labeled": result.counts.labeled,
            "unlabeled": result.counts.unlabeled,
            "late_labels": result.counts.late_labels,
            "metrics": {k: round(v, 4) for k, v in result.metric_values.items() if k in ("accuracy", "auc", "f1")},
            "quality_violations": quality_flagged,
            "bias_violations": [f"{v['metric_name']} {v['facet_value']}" for v in result.bias_violations],
            "bias_groups": bias_groups,
            "expected": want,
            "as_expected": ok,
            "output": str(result_dir),
        }
    return summary, reports


def _lower_min_group_rows(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["monitoring_config"]["min_group_rows"] = MIN_GROUP_ROWS
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


REGRESSION_SCENARIOS = ("true", "concept")
CONCEPT_SHIFT_STD = 3.0
"""Regression `concept` scenario: every 5th label moves by this many standard deviations of the labels, so RMSE
more than doubles (the constraint allows +20%) while the inputs, and so the drift monitor, stay as they were."""


def run_regression_quality_phase(
    capture_root: Path,
    window: TimeWindow,
    rows_labels: Sequence[str],
    rows_sent: Sequence[Sequence[str]],
    out: Path,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The regression model's ground-truth phase: `true` labels (also the baseline: no violation expected) and
    `concept` (every 5th label shifted by CONCEPT_SHIFT_STD label std: RMSE, MAE and R2 must be flagged)."""
    config = QualityConfig(problem_type=qm.REGRESSION, inference_attribute="0", probability_attribute=None)
    counts = JoinCounts()
    source = LocalSource(capture_root)
    predictions = collect_predictions(iter_lines(source, window_files(source, window)), window, config, counts)
    row_index = {",".join(r): i for i, r in enumerate(rows_sent)}
    by_event: dict[str, int] = {}
    for line in iter_lines(source, window_files(source, window)):
        record = json.loads(line)
        by_event[record["eventMetadata"]["eventId"]] = row_index[record["captureData"]["endpointInput"]["data"]]
    if set(by_event) != set(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(by_event)} capture records in {capture_root}")
    events = sorted(by_event, key=by_event.get)  # type: ignore[arg-type]
    true = [float(v) for v in rows_labels]
    mean = sum(true) / len(true)
    std = (sum((v - mean) ** 2 for v in true) / len(true)) ** 0.5
    baseline = out / "baseline"
    write_quality_baseline(
        [true[by_event[e]] for e in events],
        [float(predictions[e].label) for e in events],
        baseline,
        problem_type=qm.REGRESSION,
    )
    uploaded = (window.end or dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=5)
    loaded = load_quality_baseline(baseline, want_bias=False)
    summary: dict[str, Any] = {}
    reports: dict[str, Path] = {}
    for scenario in REGRESSION_SCENARIOS:
        labels = [
            v + (CONCEPT_SHIFT_STD * std if scenario == "concept" and i % 5 == 4 else 0.0) for i, v in enumerate(true)
        ]
        gt_root = out / "ground-truth" / scenario
        write_ground_truth_file(gt_root, [ground_truth_record(e, labels[by_event[e]]) for e in events], uploaded)
        result = analyze_quality(source, LocalSource(gt_root), loaded, window, config, None)
        result_dir = out / scenario
        write_quality_results(result, result_dir)
        reports[scenario] = result_dir / "report.html"
        reports[scenario].write_text(render_quality_report(result), encoding="utf-8")
        flagged = sorted({v["metric_name"] for v in result.violations})
        want = {"quality": scenario == "concept", "bias_groups": []}
        summary[scenario] = {
            "labeled": result.counts.labeled,
            "unlabeled": result.counts.unlabeled,
            "late_labels": result.counts.late_labels,
            "metrics": {k: round(v, 4) for k, v in result.metric_values.items() if k in ("rmse", "mae", "r2")},
            "quality_violations": flagged,
            "bias_violations": [],
            "bias_groups": [],
            "expected": want,
            "as_expected": bool(flagged) == want["quality"],
            "output": str(result_dir),
        }
    return summary, reports
