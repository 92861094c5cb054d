"""The stages of `make local` and the command line of `python -m tools.local` (see tools/local/__init__.py)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from monitoring.capture import TimeWindow, parse_time
from tools.local import model_lifecycle as lifecycle_mod
from tools.local import quality as quality_mod
from tools.local import replay as replay_mod
from tools.local import report as report_mod
from tools.local.registry import Registry
from tools.local.runners import REPO, ContainerRunner, LocalRunner, Runner, RunnerError, port_is_closed, wait_for_ping
from training.model_files import PREDICTIONS_BASELINE_DIR as PREDICTIONS_BASELINE

DEFAULT_OUT = REPO / "build" / "local"
ML_DIR = "ml"
CAPTURE_DIR = "capture"
MONITOR_DIR = "monitor"
QUALITY_DIR = "quality"
LOG_DIR = "logs"
PLAN_DIR = "plan"
REGISTRY_DIR = "registry"  # kept between runs: the approved version is the next run's champion
REGRESSION_REGISTRY_DIR = "registry-regression"  # the regression demo's own: a champion is of the same task
TASKS = ("classification", "regression")
MLRUNS_DIR = "mlruns"  # kept between runs: the MLflow file store of every run's evaluate step
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
GENERATED = (ML_DIR, CAPTURE_DIR, MONITOR_DIR, QUALITY_DIR, LOG_DIR, PLAN_DIR, SUMMARY_FILE, REPORT_FILE, "report.png")

# Modules each part needs in this interpreter, and where they come from (checked before anything runs).
LOCAL_MODULES = {
    "torch": "training/requirements.txt",
    "onnx": "training/requirements.txt",
    "onnxscript": "training/requirements.txt",
    "sklearn": "training/requirements.txt",
    "onnxruntime": "serving/requirements.txt",
    "uvloop": "serving/requirements.txt",
    "httptools": "serving/requirements.txt",
    "orjson": "serving/requirements.txt",
    "pandas": "monitoring/requirements.txt",
    "numpy": "monitoring/requirements.txt",
}
PLAN_MODULES = {"pulumi": "requirements.txt", "pulumi_aws": "requirements.txt", "yaml": "requirements.txt"}

# Model Monitor's container paths (the BYOC contract), mounted from local folders.
PROCESSING = "/opt/ml/processing"
CAPTURE_MOUNT = f"{PROCESSING}/input/endpoint"
BASELINE_MOUNT = f"{PROCESSING}/baseline"
RESULT_MOUNT = f"{PROCESSING}/resultdata"


class StageFailed(Exception):
    """A stage could not complete; `stage` names it, the message says why."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class Options:
    out: Path = DEFAULT_OUT
    epochs: int | None = None
    rows: int | None = None
    seed: int = 42
    workers: int = 2
    concurrency: int = 4
    ping_timeout: float = 120.0
    model_dir: Path | None = None
    containers: bool = False
    stack: str = "dev"
    shift_std: float = replay_mod.SHIFT_STD
    shift_features: tuple[str, ...] = replay_mod.SHIFTED_FEATURES
    task: str = "classification"
    """`regression`: the diabetes demo, RMSE/MAE/R2, and the prediction-distribution monitor."""

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def shifted(self) -> tuple[str, ...]:
        """The drifted phase's features: the regression demo's own unless other features were asked for."""
        if self.regression and self.shift_features == replay_mod.SHIFTED_FEATURES:
            return replay_mod.REGRESSION_SHIFTED_FEATURES
        return self.shift_features


@dataclass
class Progress:
    """One visible line per stage: `[i/n] name: what` then its result and duration."""

    names: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[dict[str, str]]:
        index = self.names.index(name) + 1
        print(f"==> [{index}/{len(self.names)}] {name}: {what}", flush=True)
        note: dict[str, str] = {}
        started = time.monotonic()
        try:
            yield note
        except StageFailed:
            raise
        except KeyboardInterrupt:
            raise
        except (
            RunnerError,
            replay_mod.ReplayError,
            lifecycle_mod.StepFailed,
            ValueError,
            OSError,
            KeyError,
            subprocess.SubprocessError,
        ) as exc:
            raise StageFailed(name, str(exc)) from exc
        except Exception as exc:  # anything else is still this stage's failure, named as such
            raise StageFailed(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.timings[name] = round(time.monotonic() - started, 2)
        print(f"    {note.get('result', 'done')} ({self.timings[name]:.1f} s)", flush=True)


def stage_names(options: Options) -> list[str]:
    names = ["environment"]
    if options.containers:
        names.append("images")
    names += [
        "data",
        "validate",
        "training",
        "evaluate",
        "gate",
        "register",
        "serving",
        "replay",
        "monitor",
        "quality",
        "plan",
        "report",
    ]
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_modules(modules: dict[str, str]) -> dict[str, str]:
    import importlib.util

    return {name: source for name, source in modules.items() if importlib.util.find_spec(name) is None}


def clean_outputs(out: Path) -> None:
    """Remove what an earlier run wrote (never anything else under `out`): checkpoints of an earlier run would
    otherwise be resumed and captures of an earlier run analyzed."""
    for name in GENERATED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {path} does not hold a JSON object")
    return doc


def window_bounds(phase: replay_mod.PhaseResult) -> tuple[str, str]:
    """The monitor's window for a phase: whole seconds around its first and last request."""
    start = phase.started.replace(microsecond=0)
    end = phase.ended.replace(microsecond=0) + dt.timedelta(seconds=1)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_lifecycle(options: Options, runner: Runner) -> dict[str, Any]:
    """Run every stage; returns the summary (also written to summary.json). Raises StageFailed."""
    out = options.out.resolve()
    progress = Progress(stage_names(options))
    summary: dict[str, Any] = {
        "mode": runner.mode,
        "out": _relative(out),
        "started": replay_mod.iso(dt.datetime.now(dt.UTC)),
    }
    started = time.monotonic()
    logs = out / LOG_DIR

    with progress.stage("environment", f"check what the stages need; outputs go to {_relative(out)}") as note:
        needed = dict(PLAN_MODULES) if options.containers else {**LOCAL_MODULES, **PLAN_MODULES}
        missing = missing_modules(needed)
        if missing:
            files = sorted(set(missing.values()))
            raise StageFailed(
                "environment",
                f"{sys.executable} lacks {', '.join(sorted(missing))}; install with: {sys.executable} -m pip install "
                + " ".join(f"-r {f}" for f in files),
            )
        out.mkdir(parents=True, exist_ok=True)
        clean_outputs(out)
        note["result"] = f"python {sys.version.split()[0]} at {sys.executable}"

    if options.containers:
        with progress.stage("images", "build the training, serving and monitoring images with buildah") as note:
            summary["images"] = runner.prepare(logs)
            note["result"] = ", ".join(
                f"{n}: {v['build_seconds']} s" for n, v in summary["images"]["images"].items() if isinstance(v, dict)
            )

    ml = out / ML_DIR
    demo = "diabetes, 80/20 split, task regression" if options.regression else "breast cancer, stratified 80/20 split"
    with progress.stage("data", f"lay out the demo data ({demo}) as SageMaker channels") as note:
        runner.demo_data(ml, options.seed, logs / "data.log", options.task)
        hyperparameters_path = ml / "input" / "config" / "hyperparameters.json"
        hyperparameters = read_json(hyperparameters_path, "hyperparameters")
        if options.epochs is not None:
            hyperparameters["epochs"] = str(options.epochs)
        hyperparameters_path.write_text(json.dumps(hyperparameters, indent=2) + "\n", encoding="utf-8")
        train_rows = _count_rows(ml / "input" / "data" / "train" / "train.csv")
        held_out = _count_rows(ml / "input" / "data" / "validation" / "validation.csv")
        note["result"] = f"{train_rows} training rows, {held_out} held-out rows -> {_relative(ml / 'input')}"
        summary["data"] = {"train_rows": train_rows, "held_out_rows": held_out, "hyperparameters": hyperparameters}

    registry_dir = out / (REGRESSION_REGISTRY_DIR if options.regression else REGISTRY_DIR)
    registry = Registry(registry_dir)
    with progress.stage("validate", "check the new training data (against the approved champion's baseline)") as note:
        champion = lifecycle_mod.champion(registry, ml)
        report = lifecycle_mod.validate(
            runner, ml, champion, str(hyperparameters.get("target", "label")), logs / "validate.log"
        )
        summary["lifecycle"] = {
            "champion": champion,
            "validation": {k: report[k] for k in ("passed", "files", "rows", "baseline", "drift_threshold")},
        }
        against = f"champion version {champion['version']}'s baseline" if champion else "no champion yet"
        note["result"] = f"{report['rows']} rows passed (schema, rows, statistics; {against})"

    with progress.stage(
        "training", f"train ({hyperparameters.get('epochs', '?')} epochs, device auto: GPU when present)"
    ) as note:
        if options.model_dir is not None:
            model_dir = options.model_dir.resolve()
            note["result"] = f"skipped: serving the given model directory {model_dir}"
        else:
            model_dir = ml / "model"
            runner.train(ml, logs / "training.log")
        summary["model"] = model_summary(model_dir, required=options.model_dir is None)
        if options.model_dir is None:
            m = summary["model"]
            note["result"] = (
                f"{metrics_text(m['evaluation'].get('fp32', {}))} on {m['validation_rows']} validation rows; "
                f"{m['epochs_run']} epochs on {m['device']} -> {_relative(model_dir)}"
            )

    if options.model_dir is None:
        with progress.stage("evaluate", "score candidate and champion on the same held-out rows") as note:
            record = lifecycle_mod.evaluate(
                runner, ml, champion, logs / "evaluate.log", tracking_dir=out / MLRUNS_DIR, run_name="make-local"
            )
            gate = lifecycle_mod.gate_summary(record, champion)
            summary["lifecycle"]["gate"] = gate
            versus = (
                f" vs champion {metrics_text(gate['champion'])} (version {champion['version']})"
                if champion and gate["champion"]
                else " (no champion)"
            )
            tracked = gate.get("mlflow_run_id")
            run = f"; MLflow run {tracked} in {_relative(out / MLRUNS_DIR)}" if tracked and tracked != "none" else ""
            note["result"] = f"candidate {metrics_text(gate['candidate'])}{versus}{run}"
        with progress.stage("gate", "the candidate must not be worse than the champion beyond the thresholds") as note:
            failed = ", ".join(gate["failed_checks"])
            note["result"] = (
                f"{gate['decision']}"
                + (f" (failed {failed})" if failed else "")
                + (f"; {gate['note']}" if gate["note"] else "")
            )
        with progress.stage("register", f"register a passing candidate in {_relative(registry_dir)}") as note:
            image = runner.tags.get("serving", "local") if isinstance(runner, ContainerRunner) else "local"
            registered = lifecycle_mod.register(registry, ml, record, image)
            summary["lifecycle"]["register"] = registered
            note["result"] = (
                f"version {registered['version']} {registered['status']}; approve: {registered['approve']}"
                if registered["registered"]
                else f"not registered ({registered['why']})"
            )
    else:
        for name in ("evaluate", "gate", "register"):
            with progress.stage(name, "skipped: --model-dir serves a given model") as note:
                note["result"] = "skipped"

    capture_root = out / CAPTURE_DIR
    port = free_port()
    serving_log = logs / "serving.log"
    summary["serving"] = {"port": port, "workers": options.workers, "stopped": False}
    phases: dict[str, replay_mod.PhaseResult] = {}
    with contextlib.ExitStack() as server_scope:
        with progress.stage(
            "serving", f"serve {_relative(model_dir)} on 127.0.0.1:{port} ({options.workers} workers)"
        ) as note:
            proc = server_scope.enter_context(runner.serve(model_dir, port, options.workers, serving_log))
            ready = wait_for_ping(proc, port, options.ping_timeout, serving_log)
            summary["serving"]["ready_seconds"] = round(ready, 2)
            note["result"] = f"/ping answered 200 after {ready:.1f} s"

        with progress.stage(
            "replay", "held-out rows over HTTP: normal, then drifted; captures like SageMaker's"
        ) as note:
            manifest = replay_mod.read_manifest(model_dir)
            features, target = replay_mod.model_features(manifest)
            rows = replay_mod.held_out_rows(
                ml / "input" / "data" / "validation" / "validation.csv", features, target, options.rows
            )
            traffic = {
                "normal": rows,
                "drifted": replay_mod.shift_rows(rows, features, options.shifted, options.shift_std),
            }
            for phase, phase_rows in traffic.items():
                result = replay_mod.replay_phase(
                    phase, phase_rows, port=port, capture_root=capture_root / phase, concurrency=options.concurrency
                )
                phases[phase] = result
                if result.errors:
                    raise StageFailed(
                        "replay",
                        f"{result.errors} of {result.requests} {phase} requests failed: {result.error_samples}",
                    )
            summary["replay"] = {
                "rows_per_phase": len(rows),
                "concurrency": options.concurrency,
                "shift": {"std": options.shift_std, "features": list(options.shifted)},
                "phases": {p: r.summary() for p, r in phases.items()},
                "overall": overall_latency(list(phases.values())),
            }
            note["result"] = "; ".join(
                f"{p}: {s['requests']} requests, p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms, "
                f"{s['throughput_rps']} req/s"
                for p, s in summary["replay"]["phases"].items()
            )
    # The server's scope has closed: its process group was stopped, also when a stage above failed.
    summary["serving"]["stopped"] = port_is_closed(port)

    with progress.stage(
        "monitor", "the drift monitor over each phase's capture, against the training baseline"
    ) as note:
        summary["monitor"] = {}
        reports: dict[str, Path] = {}
        for phase, result in phases.items():
            expected = sorted(options.shifted) if phase == "drifted" else []
            summary["monitor"][phase], reports[phase] = monitor_phase(
                runner, phase, result, model_dir / "baseline", out / MONITOR_DIR / phase, logs, expected
            )
            if manifest.get("task") == "regression":
                # The shifted features are the ones the target depends on most: the answers move too.
                summary["monitor"][f"{phase}-predictions"] = prediction_monitor(
                    phase, result, model_dir / "baseline", out / MONITOR_DIR / f"{phase}-predictions"
                )
        note["result"] = "; ".join(
            f"{p}: {m['violation_count']} violations ({', '.join(m['violated_features']) or 'none'})"
            for p, m in summary["monitor"].items()
        )

    scenarios = (
        "true, concept drift; RMSE, MAE, R2"
        if options.regression
        else "true, concept drift, bias in site b; model quality and bias"
    )
    with progress.stage("quality", f"ground truth for the normal phase ({scenarios})") as note:
        labels = quality_mod.held_out_labels(ml / "input" / "data" / "validation" / "validation.csv", target)
        start, end = window_bounds(phases["normal"])
        window = TimeWindow(parse_time(start, "start"), parse_time(end, "end"))
        if manifest.get("task") == "regression":
            summary["quality"], quality_reports = quality_mod.run_regression_quality_phase(
                phases["normal"].capture_root, window, labels[: len(rows)], rows, out / QUALITY_DIR
            )
        else:
            summary["quality"], quality_reports = quality_mod.run_quality_phase(
                phases["normal"].capture_root,
                window,
                labels[: len(rows)],
                rows,
                [str(c) for c in manifest.get("classes", ["0", "1"])],
                out / QUALITY_DIR,
            )
        note["result"] = "; ".join(
            f"{s}: quality {', '.join(q['quality_violations']) or 'ok'}, bias {', '.join(q['bias_groups']) or 'ok'}"
            for s, q in summary["quality"].items()
            if isinstance(q, dict)
        )

    with progress.stage("plan", f"offline plan of the {options.stack} stack (what `pulumi up` would create)") as note:
        summary["plan"] = plan_summary(options.stack, out / PLAN_DIR, logs / "plan.log")
        note["result"] = f"{summary['plan']['resources']} resources of {len(summary['plan']['by_type'])} types"

    with progress.stage("report", "one report with both phases; summary.json") as note:
        summary["report"] = _relative(out / REPORT_FILE)
        summary["stage_seconds"] = progress.timings
        summary["total_seconds"] = round(time.monotonic() - started, 1)
        summary["as_expected"] = all(m["as_expected"] for m in summary["monitor"].values()) and all(
            q["as_expected"] for q in summary["quality"].values() if isinstance(q, dict)
        )
        (out / REPORT_FILE).write_text(report_mod.render(summary, reports, quality_reports), encoding="utf-8")
        write_summary(out, summary)
        note["result"] = f"{summary['report']}, {_relative(out / SUMMARY_FILE)}"
    return summary


def _count_rows(csv_path: Path) -> int:
    with csv_path.open(encoding="utf-8") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def model_summary(model_dir: Path, *, required: bool = True) -> dict[str, Any]:
    """The model's figures from evaluation.json; a given model directory (`--model-dir`) may lack one."""
    path = model_dir / "evaluation.json"
    evaluation = read_json(path, "the model's evaluation") if required or path.is_file() else {}
    training = evaluation.get("training", {})
    try:
        task = read_json(model_dir / "manifest.json", "the model's manifest").get("task")
    except ValueError:
        task = None  # a given directory's broken manifest is the serving stage's to report
    return {
        "dir": _relative(model_dir),
        "task": task,
        "evaluation": {k: evaluation[k] for k in ("fp32", "int8", "int8_minus_fp32", "parity") if k in evaluation},
        "validation_rows": evaluation.get("validation_rows"),
        "device": training.get("device"),
        "epochs_run": training.get("epochs_run"),
        "best_epoch": training.get("best_epoch"),
    }


def metrics_text(m: dict[str, Any]) -> str:
    """A model's headline figures: RMSE, MAE, R2 for a regression model, else AUC and accuracy."""
    if "rmse" in m:
        return f"RMSE {m.get('rmse', math.nan):.4f}, MAE {m.get('mae', math.nan):.4f}, R2 {m.get('r2', math.nan):.4f}"
    return f"AUC {m.get('auc', math.nan):.4f}, accuracy {m.get('accuracy', math.nan):.4f}"


def prediction_monitor(phase: str, result: replay_mod.PhaseResult, baseline: Path, output: Path) -> dict[str, Any]:
    """A regression model's answers against the prediction distribution of its validation split
    (`baseline/predictions/`): Model Monitor's drift checks over the captures' endpointOutput."""
    from monitoring.capture import LocalSource
    from monitoring.job import analyze, write_results

    predictions = baseline / PREDICTIONS_BASELINE
    start, end = window_bounds(result)
    run = analyze(
        LocalSource(result.capture_root),
        predictions / "statistics.json",
        predictions / "constraints.json",
        TimeWindow(parse_time(start, "start"), parse_time(end, "end")),
        capture_index="endpointOutput",
    )
    write_results(run, output)
    violated = sorted({v.feature_name for v in run.evaluation.violations})
    expected = ["prediction"] if phase == "drifted" else []
    return {
        "window": {"start": start, "end": end},
        "rows_analyzed": run.counts.rows_analyzed,
        "violation_count": len(run.evaluation.violations),
        "violations": [
            {"feature_name": v.feature_name, "constraint_check_type": v.constraint_check_type}
            for v in run.evaluation.violations
        ],
        "violated_features": violated,
        "expected_features": expected,
        "as_expected": violated == expected,
        "output": _relative(output),
    }


def overall_latency(results: Sequence[replay_mod.PhaseResult]) -> dict[str, Any]:
    latencies = [v for r in results for v in r.latencies_ms]
    seconds = sum(r.seconds for r in results)
    requests = sum(r.requests for r in results)
    return {
        "requests": requests,
        "latency_ms": {
            "p50": round(replay_mod.percentile(latencies, 50), 2),
            "p99": round(replay_mod.percentile(latencies, 99), 2),
        },
        "throughput_rps": round(requests / seconds, 1) if seconds > 0 else None,
    }


def monitor_phase(
    runner: Runner,
    phase: str,
    result: replay_mod.PhaseResult,
    baseline: Path,
    output: Path,
    logs: Path,
    expected: list[str],
) -> tuple[dict[str, Any], Path]:
    """One monitoring job over one phase's capture, as Model Monitor would run it; returns its summary."""
    for name in ("statistics.json", "constraints.json"):
        if not (baseline / name).is_file():
            raise ValueError(f"the model has no baseline {baseline / name}")
    start, end = window_bounds(result)
    output.mkdir(parents=True, exist_ok=True)
    env = {
        "dataset_source": CAPTURE_MOUNT,
        "output_path": RESULT_MOUNT,
        "baseline_statistics": f"{BASELINE_MOUNT}/statistics.json",
        "baseline_constraints": f"{BASELINE_MOUNT}/constraints.json",
        "start_time": start,
        "end_time": end,
        "publish_cloudwatch_metrics": "Disabled",
        "sagemaker_endpoint_name": replay_mod.ENDPOINT_NAME,
        "sagemaker_monitoring_schedule_name": f"{replay_mod.ENDPOINT_NAME}-{phase}",
    }
    opt_ml = output / "opt-ml"
    mounts = {CAPTURE_MOUNT: result.capture_root, BASELINE_MOUNT: baseline, RESULT_MOUNT: output, "/opt/ml": opt_ml}
    results_dir = runner.monitor(env, mounts, logs / f"monitor-{phase}.log")
    violations = read_json(results_dir / "constraint_violations.json", "the monitor's violations").get("violations", [])
    report = results_dir / "report.html"
    if not report.is_file():
        raise ValueError(f"the monitor wrote no report {report}")
    statistics = read_json(results_dir / "statistics.json", "the monitor's statistics")
    violated = sorted({str(v.get("feature_name")) for v in violations})
    return (
        {
            "window": {"start": start, "end": end},
            "rows_analyzed": statistics.get("dataset", {}).get("item_count"),
            "violation_count": len(violations),
            "violations": [
                {"feature_name": v.get("feature_name"), "constraint_check_type": v.get("constraint_check_type")}
                for v in violations
            ],
            "violated_features": violated,
            "expected_features": expected,
            "as_expected": violated == expected,
            "output": _relative(results_dir),
        },
        report,
    )


def plan_summary(stack: str, plan_dir: Path, log_path: Path) -> dict[str, Any]:
    """`python -m tools.plan` in its own process (the Pulumi mock runtime is process-global)."""
    from tools.local.runners import child_env, run_logged

    run_logged(
        [sys.executable, "-m", "tools.plan", "--stack", stack, "--quiet", "--out", str(plan_dir)],
        log_path,
        child_env(),
        "the offline plan",
        300,
    )
    plan = read_json(plan_dir / f"{stack}.json", "the plan")
    resources = plan.get("resources", [])
    by_type = Counter(str(r["type"]) for r in resources)
    return {
        "stack": stack,
        "file": _relative(plan_dir / f"{stack}.json"),
        "resources": len(resources),
        "by_type": dict(sorted(by_type.items(), key=lambda item: (-item[1], item[0]))),
        "outputs": sorted(plan.get("outputs", {})),
    }


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    path = out / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def print_summary(summary: dict[str, Any]) -> None:
    model = summary["model"]
    fp32 = model["evaluation"].get("fp32", {})
    int8 = model["evaluation"].get("int8", {})
    headline = (
        f"fp32 {metrics_text(fp32)}; int8 RMSE {int8.get('rmse', math.nan):.4f}"
        if "rmse" in fp32
        else f"fp32 AUC {fp32.get('auc', math.nan):.4f}, accuracy {fp32.get('accuracy', math.nan):.4f}, "
        f"log loss {fp32.get('log_loss', math.nan):.4f}; int8 AUC {int8.get('auc', math.nan):.4f}"
    )
    lines = [
        f"summary ({summary['out']}/{SUMMARY_FILE}):",
        f"  model    {headline}; {model['epochs_run']} epochs on {model['device']}",
    ]
    lines += lifecycle_lines(summary.get("lifecycle", {}))
    for phase, r in summary["replay"]["phases"].items():
        lines.append(
            f"  replay   {phase}: {r['requests']} requests, p50 {r['latency_ms']['p50']} ms, "
            f"p99 {r['latency_ms']['p99']} ms, {r['throughput_rps']} req/s, predicted {r['predicted_labels']}"
        )
    for phase, m in summary["monitor"].items():
        verdict = "as expected" if m["as_expected"] else f"EXPECTED {', '.join(m['expected_features']) or 'none'}"
        lines.append(
            f"  monitor  {phase}: {m['violation_count']} violations on "
            f"{', '.join(m['violated_features']) or 'no feature'} ({verdict})"
        )
    for scenario, q in summary.get("quality", {}).items():
        if not isinstance(q, dict):
            lines.append(f"  quality  skipped {q}")
            continue
        verdict = "as expected" if q["as_expected"] else "NOT AS EXPECTED"
        lines.append(
            f"  quality  {scenario}: {q['metrics']}, violations {', '.join(q['quality_violations']) or 'none'}; "
            f"bias {', '.join(q['bias_violations']) or 'none'} ({verdict})"
        )
    plan = summary["plan"]
    top = ", ".join(f"{n} {t}" for t, n in list(plan["by_type"].items())[:6])
    lines.append(f"  plan     {plan['stack']}: {plan['resources']} resources ({top}, ...); {plan['file']}")
    state = "stopped" if summary["serving"]["stopped"] else "STILL LISTENING"
    lines.append(f"  server   {state} (port {summary['serving']['port']})")
    lines.append(f"  report   {summary['report']}")
    lines.append(f"  total    {summary['total_seconds']} s")
    print("\n".join(lines), flush=True)


def lifecycle_lines(lifecycle: dict[str, Any]) -> list[str]:
    """validate -> train -> evaluate -> gate -> register, one line each where the step ran."""
    lines: list[str] = []
    validation = lifecycle.get("validation")
    if validation:
        against = lifecycle["champion"]["version"] if lifecycle.get("champion") else None
        lines.append(
            f"  validate {validation['rows']} rows passed"
            + (f" against champion version {against}'s baseline" if against else " (no champion: file checks only)")
        )
    gate = lifecycle.get("gate")
    if gate:
        cand, champ = gate["candidate"], gate["champion"]
        versus = f" vs champion v{gate['champion_version']} {metrics_text(champ)}" if champ else " (no champion)"
        lines.append(f"  evaluate candidate {metrics_text(cand)}{versus}")
        failed = ", ".join(gate["failed_checks"])
        lines.append(f"  gate     {gate['decision']}" + (f" (failed {failed})" if failed else ""))
    registered = lifecycle.get("register")
    if registered:
        lines.append(
            f"  register version {registered['version']} {registered['status']} ({registered['approve']})"
            if registered["registered"]
            else f"  register not registered: {registered['why']}"
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local",
        description="The platform's lifecycle on this machine: data, training, serving, replay, drift monitor, plan.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/local)")
    parser.add_argument(
        "--epochs", type=_positive_int("--epochs", 100_000), help="training epochs (default: the training default, 30)"
    )
    parser.add_argument(
        "--rows",
        type=_positive_int("--rows", 10**9),
        help=f"held-out rows replayed per phase (at least {replay_mod.MIN_ROWS}; default all)",
    )
    parser.add_argument(
        "--seed", type=_positive_int("--seed", 2**32 - 1, low=0), default=42, help="seed of the split and of training"
    )
    parser.add_argument(
        "--workers", type=_positive_int("--workers", 64), default=2, help="serving worker processes (default 2)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int("--concurrency", 64),
        default=4,
        help="parallel replay connections (default 4)",
    )
    parser.add_argument(
        "--ping-timeout", type=_positive_float("--ping-timeout"), default=120.0, help="seconds to wait for /ping 200"
    )
    parser.add_argument(
        "--model-dir", type=Path, help="serve this model directory instead of training one (skips training)"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="classification",
        help="classification (breast cancer demo, default) or regression (diabetes: RMSE, MAE, R2, prediction drift)",
    )
    parser.add_argument("--stack", default="dev", help="stack whose offline plan is summarised (default dev)")
    parser.add_argument(
        "--containers", action="store_true", help="run training, serving and monitoring in the images (buildah)"
    )
    return parser


def _positive_int(flag: str, high: int, low: int = 1) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: expected a whole number {low}..{high}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} {value}: allowed {low}..{high}")
        return value

    return parse


def _positive_float(flag: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: expected a number of seconds > 0") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{flag} {value}: expected a number of seconds > 0")
        return value

    return parse


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (CI cancelling, `timeout`) unwinds like Ctrl-C, so every `finally` stops what this run started.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.model_dir is not None and not args.model_dir.is_dir():
        print(f"local: --model-dir {args.model_dir} is not a directory", file=sys.stderr)
        return 2
    options = Options(
        out=args.out,
        epochs=args.epochs,
        rows=args.rows,
        seed=args.seed,
        workers=args.workers,
        concurrency=args.concurrency,
        ping_timeout=args.ping_timeout,
        model_dir=args.model_dir,
        containers=args.containers,
        stack=args.stack,
        task=args.task,
    )
    runner: Runner = ContainerRunner() if options.containers else LocalRunner()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary = run_lifecycle(options, runner)
    except StageFailed as failure:
        print(f"local: stage '{failure.stage}' failed: {failure}", file=sys.stderr)
        _record_failure(options.out, failure.stage, str(failure))
        return 1
    except KeyboardInterrupt:
        print("local: interrupted; everything this run started has been stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_summary(summary)
    if not summary["as_expected"]:
        wrong = [p for p, m in summary["monitor"].items() if not m["as_expected"]]
        wrong += [f"quality:{s}" for s, q in summary["quality"].items() if isinstance(q, dict) and not q["as_expected"]]
        print(
            f"local: stage 'monitor' failed: the monitor's verdict differs from what the replay planted in {wrong} "
            f"(see {summary['report']})",
            file=sys.stderr,
        )
        return 1
    if not summary["serving"]["stopped"]:
        print(
            f"local: stage 'serving' failed: port {summary['serving']['port']} still answers after stopping",
            file=sys.stderr,
        )
        return 1
    return 0


def _record_failure(out: Path, stage: str, message: str) -> None:
    """summary.json names the failed stage too, so a CI log and a script read the same thing."""
    with contextlib.suppress(OSError):
        out.mkdir(parents=True, exist_ok=True)
        write_summary(
            out, {"failed_stage": stage, "error": message, "finished": replay_mod.iso(dt.datetime.now(dt.UTC))}
        )


if __name__ == "__main__":
    sys.exit(main())
