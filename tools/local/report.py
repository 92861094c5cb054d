"""build/local/report.html: one self-contained page with the lifecycle's figures and both phases' drift reports.

The monitor writes one report per run (`report.html` in its output_path, inline SVG, no external assets).
This page puts a summary first (model metrics, replay latency, violations per phase, the dev plan) and then
each phase's report body, its element ids prefixed with the phase so both can live on one page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
_ID = re.compile(r'\bid="([^"]*)"')
_HREF = re.compile(r'href="#([^"]*)"')
_HEADING = re.compile(r"<(/?)h([1-5])\b", re.IGNORECASE)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def phase_body(report_html: str, phase: str) -> str:
    """The body of one monitor report, ids made unique per phase and headings moved one level down."""
    match = _BODY.search(report_html)
    body = match.group(1) if match else report_html
    body = _ID.sub(lambda m: f'id="{phase}-{m.group(1)}"', body)
    body = _HREF.sub(lambda m: f'href="#{phase}-{m.group(1)}"', body)
    return _HEADING.sub(lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}", body)


def report_style(report_html: str) -> str:
    match = _STYLE.search(report_html)
    return match.group(1) if match else ""


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(
    summary: Mapping[str, Any], phase_reports: Mapping[str, Path], quality_reports: Mapping[str, Path] | None = None
) -> str:
    """The combined page; `phase_reports` maps each phase to the monitor's report.html for it, and
    `quality_reports` each ground-truth scenario to the model-quality report."""
    texts = {phase: path.read_text(encoding="utf-8") for phase, path in phase_reports.items()}
    quality_texts = {s: p.read_text(encoding="utf-8") for s, p in (quality_reports or {}).items()}
    style = report_style(next(iter(texts.values()), ""))
    model = summary.get("model", {})
    evaluation = model.get("evaluation", {})
    regression = model.get("task") == "regression"
    # A regression model is judged by RMSE, MAE and R2 (its manifest's task), a classifier by AUC, accuracy, log loss.
    keys = ("rmse", "mae", "r2") if regression else ("auc", "accuracy", "log_loss")
    heads = ["RMSE", "MAE", "R2"] if regression else ["AUC", "accuracy", "log loss"]
    metric_rows = [
        [precision, *(f"{m.get(k, float('nan')):.4f}" for k in keys)]
        for precision, m in evaluation.items()
        if isinstance(m, dict) and keys[0] in m
    ]
    replay = summary.get("replay", {}).get("phases", {})
    replay_rows = [
        [
            phase,
            r["requests"],
            r["errors"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
            r["throughput_rps"],
            ", ".join(f"{k}: {v}" for k, v in r["predicted_labels"].items()),
        ]
        for phase, r in replay.items()
    ]
    monitor = summary.get("monitor", {})
    violation_rows = [
        [
            phase,
            m["violation_count"],
            ", ".join(m["violated_features"]) or "none",
            ", ".join(m["expected_features"]) or "none",
            "yes" if m["as_expected"] else "NO",
        ]
        for phase, m in monitor.items()
    ]
    quality = summary.get("quality", {})
    quality_rows = [
        [
            scenario,
            q["labeled"],
            ", ".join(f"{k} {v}" for k, v in q["metrics"].items()),
            ", ".join(q["quality_violations"]) or "none",
            ", ".join(q["bias_violations"]) or "none",
            "yes" if q["as_expected"] else "NO",
        ]
        for scenario, q in quality.items()
        if isinstance(q, dict)
    ]
    quality_sections = "".join(
        f'<section class="phase" id="quality-{_esc(s)}"><h2>Ground truth: {_esc(s)}</h2>'
        f"{phase_body(text, 'quality-' + s)}</section>"
        for s, text in quality_texts.items()
    )
    lifecycle = summary.get("lifecycle", {})
    gate = lifecycle.get("gate") or {}
    gate_rows = [
        [
            c["check"],
            "n/a" if c["value"] is None else f"{c['value']:.4f}",
            c["limit"],
            "yes" if c["passed"] else "NO",
        ]
        for c in gate.get("checks", [])
    ]
    champion = gate.get("champion")
    comparison_rows: list[list[object]] = [
        [name, *(f"{m[k]:.4f}" if m and m.get(k) is not None else "-" for k in keys)]
        for name, m in (("candidate", gate.get("candidate")), (f"champion v{gate.get('champion_version')}", champion))
        if m
    ]
    registered = lifecycle.get("register") or {}
    register_text = (
        f"registered as version {registered.get('version')} ({registered.get('status')}); approve with "
        f"<code>{_esc(registered.get('approve'))}</code>"
        if registered.get("registered")
        else f"not registered: {_esc(registered.get('why', 'the step did not run'))}"
    )
    run_id = gate.get("mlflow_run_id")
    tracking_text = (
        f" Experiment tracking: MLflow run <code>{_esc(run_id)}</code> in <code>build/local/mlruns</code>."
        if run_id and run_id != "none"
        else " Experiment tracking: no run recorded (see the evaluate log)."
        if run_id == "none"
        else ""
    )
    lifecycle_section = (
        f"""<h2>Lifecycle: validate, train, evaluate, gate, register</h2>
<p>Validation: {_esc((lifecycle.get("validation") or {}).get("rows", "?"))} rows passed. Gate decision:
<strong>{_esc(gate.get("decision", "?"))}</strong>{"; " + _esc(gate["note"]) if gate.get("note") else ""}.
The candidate is {register_text}.{tracking_text}</p>
{_table(["model (same held-out rows)", *heads], comparison_rows)}
{_table(["gate check", "value", "limit", "passed"], gate_rows)}"""
        if gate
        else ""
    )
    plan = summary.get("plan", {})
    plan_items = "".join(f"<li>{n} <code>{_esc(t)}</code></li>" for t, n in plan.get("by_type", {}).items())
    shift = summary.get("replay", {}).get("shift", {})
    quality_text = (
        "Labels uploaded in Model Monitor's ground-truth format for the normal phase's captures: the true targets "
        "(also the baseline) and concept drift (every 5th target moved by 3 standard deviations; inputs unchanged, "
        "so the drift monitor stays quiet). Regression: RMSE, MAE and R2; no bias metrics."
        if regression
        else "Labels uploaded in Model Monitor's ground-truth format for the normal phase's captures, with a site per "
        "row: the true labels (also the baseline), concept drift (every 5th label of each site flipped; inputs "
        "unchanged, so the drift monitor stays quiet) and bias (every 4th label of site b flipped)."
    )
    sections = "".join(
        f'<section class="phase" id="phase-{_esc(phase)}"><h2>Phase {_esc(phase)}</h2>'
        f"{phase_body(text, phase)}</section>"
        for phase, text in texts.items()
    )
    nav = " | ".join(f'<a href="#phase-{_esc(p)}">{_esc(p)}</a>' for p in texts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlplatform local lifecycle</title>
<style>
{style}
section.phase {{ border-top: 3px solid #888; margin-top: 2em; }}
ul.plan {{ columns: 3; font-size: 0.85em; }}
</style></head><body>
<h1>mlplatform: local lifecycle ({_esc(summary.get("mode", ""))})</h1>
<p>Phases: {nav}. Model {_esc(model.get("dir", ""))}, trained on {_esc(model.get("device", "?"))}
for {_esc(model.get("epochs_run", "?"))} epochs (best {_esc(model.get("best_epoch", "?"))}).</p>
<h2>Model (validation split)</h2>
{_table(["graph", *heads], metric_rows)}
{lifecycle_section}
<h2>Replay</h2>
<p>Drifted phase: +{_esc(shift.get("std", ""))} training std on {_esc(", ".join(shift.get("features", [])))}.</p>
{_table(["phase", "requests", "errors", "p50 ms", "p99 ms", "requests/s", "predicted labels"], replay_rows)}
<h2>Drift monitor</h2>
{_table(["phase", "violations", "features with violations", "expected", "as expected"], violation_rows)}
<h2>Model quality and bias (ground truth joined with the normal phase)</h2>
<p>{_esc(quality_text)}</p>
{_table(["labels", "labeled", "metrics", "quality violations", "bias violations", "as expected"], quality_rows)}
<p>What <code>pulumi up</code> would create: <a href="#plan">plan of the {_esc(plan.get("stack", ""))} stack</a>
({_esc(plan.get("resources", ""))} resources).</p>
{sections}
{quality_sections}
<h2 id="plan">Plan of the {_esc(plan.get("stack", ""))} stack ({_esc(plan.get("resources", ""))} resources)</h2>
<ul class="plan">{plan_items}</ul>
</body></html>
"""
