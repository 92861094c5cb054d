"""The model-lifecycle stages of `make local`: validate -> (training) -> evaluate -> gate -> register.

The same steps the stack's SageMaker pipeline runs (components/pipeline.py), in the training image's code
(`python -m training validate|evaluate`) with the same folder contract, and the local registry
(tools/local/registry.py) in place of the model package group:

- the champion is the latest *Approved* version of the local registry (none on a first run); its model
  directory is copied to `ml/champion/` so both steps see it under the ml root, as a processing job would;
- `validate` checks the new `train` channel (and, with a champion, against its baseline) and stops the run
  on a violation, naming the file, row, column and check;
- `evaluate` scores candidate and champion on the same held-out rows and writes `ml/output/gate.json`; it
  records the candidate's MLflow run (parameters, per-epoch metrics, evaluation, files) in the local file
  store `build/local/mlruns/` (kept between runs; `mlflow ui --backend-store-uri build/local/mlruns`);
- `gate` reads the decision; `register` adds a PendingManualApproval version only when it is `pass`.
  Approving it (`python -m tools.local.registry approve --version N`) makes it the next run's champion.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tools.local.registry import Registry, RegistryError
from tools.local.runners import REPO, Runner

CHAMPION_DIR = "champion"
VALIDATION_REPORT = "output/validation.json"
GATE_RECORD = "output/gate.json"
CONTAINER_ML = "/opt/ml"


class StepFailed(Exception):
    """A lifecycle step stopped the run; the message says which check and where."""


def champion(registry: Registry, ml: Path) -> dict[str, Any] | None:
    """Copy the latest approved version's model directory to `ml/champion/`; None when nothing is approved."""
    target = ml / CHAMPION_DIR
    shutil.rmtree(target, ignore_errors=True)
    record = registry.latest_approved()
    if record is None:
        return None
    version = int(record["ModelPackageVersion"])
    shutil.copytree(registry.model_dir(version), target)
    return {"version": version, "group": registry.group, "dir": str(target)}


def _read(path: Path) -> dict[str, Any]:
    """A step's JSON output (read here without importing the training code: with --containers this
    interpreter need not have torch)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StepFailed(f"{path} was not written or is not JSON: {exc}") from None


def validate(runner: Runner, ml: Path, champion_info: dict[str, Any] | None, target: str, log: Path) -> dict[str, Any]:
    args = [
        "validate",
        "--ml-root",
        CONTAINER_ML,
        "--target",
        target,
        "--report",
        f"{CONTAINER_ML}/{VALIDATION_REPORT}",
    ]
    if champion_info is not None:
        args += ["--baseline", f"{CONTAINER_ML}/{CHAMPION_DIR}/baseline"]
    code = runner.training_step(args, ml, log)
    if code not in (0, 1):
        raise StepFailed(f"the validate step exited with status {code} (log {log})")
    report = _read(ml / VALIDATION_REPORT)
    if code == 1 or not report.get("passed"):
        shown = "; ".join(
            f"{v['file'] or ''} column {v['feature']!r}: {v['check']}"
            + (f" rows {v['rows']}" if v.get("rows") else "")
            + f" ({v['description']})"
            for v in report.get("violations", [])[:5]
        )
        raise StepFailed(f"the training data failed validation: {shown} (report {ml / VALIDATION_REPORT})")
    return report


def evaluate(
    runner: Runner,
    ml: Path,
    champion_info: dict[str, Any] | None,
    log: Path,
    *,
    tracking_dir: Path | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """The evaluate step; with `tracking_dir` it also records the candidate's MLflow run in that file store
    (the record's `mlflow_run_id`; `none` when tracking failed, which never fails the step)."""
    args = ["evaluate", "--ml-root", CONTAINER_ML, "--candidate", f"{CONTAINER_ML}/model"]
    args += ["--record", f"{CONTAINER_ML}/{GATE_RECORD}"]
    if champion_info is not None:
        args += ["--champion", f"{CONTAINER_ML}/{CHAMPION_DIR}"]
    if run_name is not None:
        args += ["--run-name", run_name]
    code = runner.training_step(args, ml, log, tracking_dir=tracking_dir)
    if code != 0:
        raise StepFailed(f"the evaluate step exited with status {code} (log {log})")
    record = _read(ml / GATE_RECORD)
    if record.get("decision") not in ("pass", "fail"):
        raise StepFailed(f"{ml / GATE_RECORD} has no decision 'pass' or 'fail' (log {log})")
    return record


def gate_summary(record: dict[str, Any], champion_info: dict[str, Any] | None) -> dict[str, Any]:
    ev = record["evaluation"]
    regression = "rmse" in ev["candidate"]
    keys = ("rmse", "mae", "r2") if regression else ("auc", "accuracy", "log_loss")
    keys += ("latency_ms_single_row",)
    return {
        "decision": record["decision"],
        "failed_checks": record["failed_checks"],
        "champion_version": champion_info["version"] if champion_info else None,
        "note": record.get("note"),
        "candidate": {k: ev["candidate"].get(k) for k in keys},
        "champion": {k: ev["champion"].get(k) for k in keys} if ev.get("champion") else None,
        "mlflow_run_id": record.get("mlflow_run_id"),
        "checks": [{k: c[k] for k in ("check", "passed", "value", "limit")} for c in record["checks"]],
    }


def _code_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def register(registry: Registry, ml: Path, record: dict[str, Any], image: str) -> dict[str, Any]:
    """Register the candidate when the gate passed; otherwise say why it was not."""
    if record["decision"] != "pass":
        return {"registered": False, "why": f"gate failed: {', '.join(record['failed_checks'])}"}
    manifest = _read(ml / "model" / "manifest.json")
    lineage = {
        "data_fingerprint": str(manifest.get("data_fingerprint", "")),
        "code_revision": _code_revision(),
        "hyperparameters": json.dumps(manifest.get("hyperparameters", {}), sort_keys=True)[:256],
    }
    if record.get("mlflow_run_id"):
        lineage["mlflow_run_id"] = str(record["mlflow_run_id"])  # as the pipeline's Register step records it
    try:
        package = registry.register(ml / "model", record, image=image, lineage=lineage, gate_path=ml / GATE_RECORD)
    except RegistryError as exc:
        raise StepFailed(str(exc)) from None
    return {
        "registered": True,
        "group": package["ModelPackageGroupName"],
        "version": package["ModelPackageVersion"],
        "status": package["ModelApprovalStatus"],
        "mlflow_run_id": package["CustomerMetadataProperties"].get("mlflow_run_id"),
        "approve": f"python -m tools.local.registry approve --version {package['ModelPackageVersion']}",
    }
