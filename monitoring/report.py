"""A self-contained HTML report of one monitoring run (inline SVG, no external assets or scripts).

Per feature: baseline vs current distribution over the baseline's buckets (or top categories), the drift
distance against its threshold; then the violations table and what was skipped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from monitoring.analysis import FeatureComparison
from monitoring.bias import GroupRates
from monitoring.job import RunResult
from monitoring.kll import KLLSketch
from monitoring.quality import QualityResult
from monitoring.statistics import (
    N_BUCKETS,
    FeatureAccumulator,
    FeatureStatistics,
    NumericAccumulator,
    StringAccumulator,
)

WIDTH = 420
HEIGHT = 150
BASE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#f58518"
MAX_CATEGORIES = 12


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _bars_svg(labels: Sequence[str], base: Sequence[float], current: Sequence[float], title: str) -> str:
    """Grouped bars of two share vectors (each sums to 1 or is empty), with a legend."""
    n = max(len(labels), 1)
    top = max([*base, *current, 1e-12])
    plot_h = HEIGHT - 40
    slot = (WIDTH - 20) / n
    bar_w = max(slot / 2 - 2, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{_esc(title)}" class="plot">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
    ]
    for i, label in enumerate(labels):
        x = 10 + i * slot
        for j, (values, colour) in enumerate(((base, BASE_COLOUR), (current, CURRENT_COLOUR))):
            if i < len(values):
                h = plot_h * values[i] / top
                parts.append(
                    f'<rect x="{x + j * (bar_w + 1):.1f}" y="{10 + plot_h - h:.1f}" width="{bar_w:.1f}" '
                    f'height="{h:.1f}" fill="{colour}"><title>{_esc(label)}: {values[i]:.3f}</title></rect>'
                )
        if n <= MAX_CATEGORIES:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 18}" font-size="9" text-anchor="middle">'
                f"{_esc(label[:10])}</text>"
            )
    parts.append(
        f'<rect x="10" y="{HEIGHT - 10}" width="8" height="8" fill="{BASE_COLOUR}"/>'
        f'<text x="22" y="{HEIGHT - 2}" font-size="10">baseline</text>'
        f'<rect x="80" y="{HEIGHT - 10}" width="8" height="8" fill="{CURRENT_COLOUR}"/>'
        f'<text x="92" y="{HEIGHT - 2}" font-size="10">current</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _distance_svg(comparison: FeatureComparison) -> str:
    """A horizontal gauge of the distance (or p-value) with the threshold marked."""
    value = comparison.distance or 0.0
    scale = max(1.0, value, comparison.threshold)
    w = WIDTH - 20
    colour = "#d62728" if comparison.drifted else "#2ca02c"
    tx = 10 + w * comparison.threshold / scale
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="34" class="gauge">'
        f'<rect x="10" y="8" width="{w}" height="12" fill="#eee"/>'
        f'<rect x="10" y="8" width="{w * value / scale:.1f}" height="12" fill="{colour}"/>'
        f'<line x1="{tx:.1f}" y1="4" x2="{tx:.1f}" y2="24" stroke="#000" stroke-width="2"/>'
        f'<text x="10" y="32" font-size="10">{_esc(comparison.method)}: {value:.4f} '
        f"(threshold {comparison.threshold})</text></svg>"
    )


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [float(c) / total for c in counts] if total > 0 else []


def _sketch_bucket_counts(sketch: KLLSketch | None, edges: np.ndarray) -> np.ndarray:
    if sketch is None or sketch.count == 0:
        return np.zeros(len(edges) - 1)
    ranks = sketch.rank(edges)
    counts = np.diff(ranks)
    counts[0] += ranks[0]
    return counts


def _feature_plot(base: FeatureStatistics, acc: FeatureAccumulator) -> str:
    if isinstance(acc, NumericAccumulator):
        stats = base.raw.get("numerical_statistics", {})
        lo = stats.get("min")
        hi = stats.get("max")
        if lo is None or hi is None:
            if not acc.n_numbers:
                return "<p>No numbers on either side.</p>"
            lo, hi = acc.minimum, acc.maximum
        lo = min(float(lo), acc.minimum) if acc.n_numbers else float(lo)
        hi = max(float(hi), acc.maximum) if acc.n_numbers else float(hi)
        edges = np.linspace(lo, hi, N_BUCKETS + 1)
        labels = [f"{edges[i]:.3g}" for i in range(N_BUCKETS)]
        return _bars_svg(
            labels,
            _shares(_sketch_bucket_counts(base.sketch, edges)),
            _shares(_sketch_bucket_counts(acc.sketch, edges)),
            f"{base.name} distribution",
        )
    if isinstance(acc, StringAccumulator):
        base_counts = dict(base.categories or {})
        merged = {**{k: 0 for k in acc.counts}, **base_counts}
        top = sorted(merged, key=lambda v: -(base_counts.get(v, 0) + acc.counts.get(v, 0)))[:MAX_CATEGORIES]
        base_total = sum(base_counts.values()) or 1
        cur_total = sum(acc.counts.values()) or 1
        return _bars_svg(
            top,
            [base_counts.get(v, 0) / base_total for v in top],
            [acc.counts.get(v, 0) / cur_total for v in top],
            f"{base.name} categories",
        )
    return ""


def render_report(result: RunResult) -> str:
    """The report as one HTML string."""
    ev = result.evaluation
    counts = result.counts
    window = (
        f"{result.window.start.isoformat() if result.window.start else 'open'} to "
        f"{result.window.end.isoformat() if result.window.end else 'open'}"
    )
    rows = "".join(
        f"<tr><td>{_esc(v.feature_name)}</td><td>{_esc(v.constraint_check_type)}</td><td>{_esc(v.description)}</td></tr>"
        for v in ev.violations
    )
    skipped = "".join(f"<li>{_esc(reason)}: {n}</li>" for reason, n in sorted(counts.skipped.items()))
    sections = []
    for base, acc in zip(result.baseline, result.profile.features, strict=True):
        comparison = ev.comparisons.get(base.name)
        total = acc.num_present + acc.num_missing
        completeness = f"{acc.num_present / total:.4f}" if total else "n/a"
        drift = _distance_svg(comparison) if comparison else "<p>Not compared.</p>"
        status = "drifted" if comparison and comparison.drifted else "ok"
        sections.append(
            f'<section class="feature {status}" id="feature-{_esc(base.name)}"><h3>{_esc(base.name)} '
            f"<small>({_esc(base.inferred_type)}, completeness {completeness}, "
            f"{acc.num_present} present)</small></h3>{_feature_plot(base, acc)}{drift}</section>"
        )
    verdict = "violations found" if ev.violations else ("no data" if ev.no_data else "no violations")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {_esc(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
section.feature {{ display: inline-block; vertical-align: top; margin: 0 1em 1em 0; }}
section.drifted h3 {{ color: #d62728; }}
</style></head><body>
<h1>Drift report: {_esc(verdict)}</h1>
<p>{_esc(result.message)}</p>
<h2>Window</h2>
<ul><li>window: {_esc(window)}</li><li>source: {_esc(result.source)} ({result.files_read} files)</li>
<li>lines read: {counts.lines_read}; records in window: {counts.records_in_window};
records outside window: {counts.records_outside_window}</li>
<li>rows seen: {counts.rows_seen}; rows analyzed: {counts.rows_analyzed};
rows with the wrong number of columns (skipped): {counts.rows_wrong_column_count}</li>
<li>records skipped as corrupt or undecodable: {sum(counts.skipped.values())}<ul>{skipped}</ul></li></ul>
<h2>Violations ({len(ev.violations)})</h2>
<table><thead><tr><th>feature</th><th>check</th><th>description</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Features</h2>
{"".join(sections)}
</body></html>
"""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return _esc(value)


def _group_bars(rates: Sequence[GroupRates], metric: str) -> str:
    """Horizontal bars of one bias metric per group (negative to the left of the axis)."""
    if not rates:
        return ""
    row_h = 18
    height = row_h * len(rates) + 20
    mid = WIDTH / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="{_esc(metric)} per group" class="plot">',
        f'<line x1="{mid}" y1="0" x2="{mid}" y2="{height - 14}" stroke="#000"/>',
    ]
    for i, r in enumerate(rates):
        value = r.metrics.get(metric, float("nan"))
        if not math.isfinite(value):
            continue
        w = (WIDTH / 2 - 60) * max(-1.0, min(1.0, value))
        x = mid if w >= 0 else mid + w
        parts.append(
            f'<rect x="{x:.1f}" y="{i * row_h + 2}" width="{abs(w):.1f}" height="{row_h - 4}" fill="{CURRENT_COLOUR}">'
            f"<title>{_esc(r.group)}: {value:.4f}</title></rect>"
            f'<text x="2" y="{i * row_h + 13}" font-size="10">{_esc(r.group[:12])}</text>'
        )
    parts.append(f'<text x="{mid - 40}" y="{height - 2}" font-size="10">{_esc(metric)} (-1 .. 1)</text></svg>')
    return "".join(parts)


def render_quality_report(result: QualityResult) -> str:
    """The model-quality (and bias) report of one window as one HTML string."""
    c = result.counts
    window = (
        f"{result.window.start.isoformat() if result.window.start else 'open'} to "
        f"{result.window.end.isoformat() if result.window.end else 'open'}"
    )
    metrics = "".join(
        f"<tr><td>{_esc(name)}</td><td>{_cell(value)}</td></tr>" for name, value in sorted(result.metric_values.items())
    )
    violations = "".join(
        f"<tr><td>{_esc(v.get('metric_name', ''))}</td><td>{_esc(v.get('facet_value', ''))}</td>"
        f"<td>{_esc(v['constraint_check_type'])}</td><td>{_esc(v['description'])}</td></tr>"
        for v in result.all_violations
    )
    gt = c.ground_truth
    bias = ""
    if result.sensitive is not None:
        rows = "".join(
            f"<tr><td>{_esc(r.group)}</td><td>{r.rows}</td><td>{_cell(r.positive_prediction_rate)}</td>"
            f"<td>{_cell(r.true_positive_rate)}</td><td>{_cell(r.false_positive_rate)}</td>"
            f"<td>{_cell(r.error_rate)}</td><td>{_cell(r.metrics['DPPL'])}</td><td>{_cell(r.metrics['RD'])}</td>"
            f"<td>{_cell(r.metrics['AD'])}</td></tr>"
            for r in result.bias_rates
        )
        bias = (
            f'<h2 id="bias">Bias by {_esc(result.sensitive)}</h2>'
            "<p>DPPL: positive-prediction rate of the other rows minus the group's (demographic parity "
            "difference); RD: their recall minus the group's (equal opportunity difference); AD: accuracy.</p>"
            "<table><thead><tr><th>group</th><th>rows</th><th>positive rate</th><th>TPR</th><th>FPR</th>"
            "<th>error rate</th><th>DPPL</th><th>RD</th><th>AD</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f"{_group_bars(result.bias_rates, 'DPPL')}{_group_bars(result.bias_rates, 'RD')}"
        )
    verdict = "violations found" if result.all_violations else ("no labels" if not c.labeled else "no violations")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Model quality report: {_esc(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
</style></head><body>
<h1>Model quality report: {_esc(verdict)}</h1>
<p>{_esc(result.message)}</p>
<h2>Window and labels</h2>
<ul><li>window: {_esc(window)}; problem type {_esc(result.problem_type)}</li>
<li>capture: {_esc(result.source)}; ground truth: {_esc(result.ground_truth_source)}; label deadline:
{_esc(result.deadline.isoformat() if result.deadline else "none")}</li>
<li>predictions in the window: {c.predictions}; labeled: {c.labeled}; unlabeled (missing, not guessed):
{c.unlabeled}; labels after the deadline (late, not used): {c.late_labels}</li>
<li>ground-truth lines: {gt.lines_read}; duplicates: {gt.duplicates} ({gt.conflicting_duplicates} conflicting);
unreadable: {sum(gt.skipped.values())}; capture records skipped: {sum(c.skipped.values())}</li></ul>
<h2>Metrics</h2>
<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{metrics}</tbody></table>
<h2>Violations ({len(result.all_violations)})</h2>
<table><thead><tr><th>metric</th><th>group</th><th>check</th><th>description</th></tr></thead>
<tbody>{violations}</tbody></table>
{bias}
</body></html>
"""
