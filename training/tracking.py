"""Experiment tracking: one MLflow run per trained model, with its parameters, per-epoch metrics, evaluation and
files. Optional and never in the way: without a tracking URI it does nothing, and when the tracking server cannot
be reached (or mlflow is missing) it logs a warning and the step goes on without a run.

Everything a run records comes from the model directory the training job wrote (`manifest.json`'s hyperparameters,
`evaluation.json`'s per-epoch history and held-out figures) plus the gate record, so the logging can happen in the
pipeline's Evaluate step: the training job itself runs with network isolation and cannot reach a tracking server.

- SageMaker: `MLFLOW_TRACKING_URI` is the managed tracking server's ARN; AWS's `sagemaker-mlflow` plugin (an entry
  point of mlflow's `tracking_store` group for the `arn` scheme) turns it into the server's URL with SigV4 auth.
- `make local`: a file store (`build/local/mlruns`), browsable with `mlflow ui --backend-store-uri ...`.

mlflow is imported only when a run is recorded (`mlflow-skinny`: the client without the server or the UI).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger("training")

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "mlplatform"
NO_RUN = "none"
"""The run id recorded when no run was made (tracking off or unreachable): a model package's customer metadata
values must be 1 to 256 characters (botocore: sagemaker CustomerMetadataValue)."""
RUN_ID_KEY = "mlflow_run_id"
"""Where the run id goes: the gate record's key, and the model package's customer metadata key."""
# An unreachable server should cost a step seconds, not mlflow's default of 7 retries with exponential backoff.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
_PARAMS_PER_BATCH = 100  # MLflow's LogBatch limit on params per request
_METRICS_PER_BATCH = 1000  # and on metrics
_PARAM_VALUE_LIMIT = 6000


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: a tracking URI (a SageMaker tracking server ARN, an http(s) URL, a file store path) and the
    experiment name."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrackingTarget | None:
        """The target `MLFLOW_TRACKING_URI` (and `MLFLOW_EXPERIMENT_NAME`) name, or None when tracking is off."""
        uri = env.get(TRACKING_URI_ENV, "").strip()
        if not uri:
            return None
        return cls(uri, env.get(EXPERIMENT_ENV, "").strip() or DEFAULT_EXPERIMENT)

    @property
    def is_file_store(self) -> bool:
        """A local folder (`file://...` or a plain path), not a server."""
        return self.uri.startswith("file:") or ("://" not in self.uri and not self.uri.startswith("arn:"))


@dataclass(frozen=True)
class RunContent:
    """What one run records, read from a model directory (and the gate record)."""

    params: dict[str, str]
    epochs: list[tuple[int, dict[str, float]]]
    """(epoch, {metric: value}) in training order: the per-epoch validation lines of the training job."""
    evaluation: dict[str, float]
    """Held-out figures: the exported graph's (`fp32_*`, `int8_*`) and the gate's (`gate_*`)."""
    tags: dict[str, str]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return doc if isinstance(doc, dict) else {}


def run_content(model_dir: Path, gate_record: Mapping[str, Any] | None = None) -> RunContent:
    """Parameters (the hyperparameters the model was trained with), per-epoch metrics, held-out evaluation and
    tags of one trained model directory (docs/model-contract.md) and, when given, its gate record."""
    manifest = _read_json(model_dir / "manifest.json")
    evaluation_doc = _read_json(model_dir / "evaluation.json")
    params = {
        str(k): (v if isinstance(v, str) else json.dumps(v))[:_PARAM_VALUE_LIMIT]
        for k, v in (manifest.get("hyperparameters") or {}).items()
    }
    training = evaluation_doc.get("training") or {}
    epochs: list[tuple[int, dict[str, float]]] = []
    for line in training.get("history") or []:
        step = _number(line.get("epoch"))
        values = {k: v for k, raw in line.items() if k != "epoch" and (v := _number(raw)) is not None}
        if step is not None and values:
            epochs.append((int(step), values))
    evaluation: dict[str, float] = {}
    for kind in ("fp32", "int8"):
        for name, raw in (evaluation_doc.get(kind) or {}).items():
            if (value := _number(raw)) is not None:
                evaluation[f"{kind}_{name}"] = value
    for name in ("best_epoch", "epochs_run"):
        if (value := _number(training.get(name))) is not None:
            evaluation[name] = value
    tags = {"mlplatform.task": str(manifest.get("task", ""))}
    if manifest.get("data_fingerprint"):
        tags["mlplatform.data_fingerprint"] = str(manifest["data_fingerprint"])
    if gate_record is not None:
        tags["mlplatform.gate_decision"] = str(gate_record.get("decision"))
        tags["mlplatform.champion_compared"] = str(bool(gate_record.get("champion_compared")))
        candidate = (gate_record.get("evaluation") or {}).get("candidate") or {}
        for name, raw in candidate.items():
            if (value := _number(raw)) is not None:
                evaluation[f"gate_candidate_{name}"] = value
        champion = (gate_record.get("evaluation") or {}).get("champion") or {}
        for name, raw in champion.items():
            if (value := _number(raw)) is not None:
                evaluation[f"gate_champion_{name}"] = value
        for check in gate_record.get("checks") or []:
            if (value := _number(check.get("value"))) is not None:
                evaluation[f"gate_{check.get('check')}"] = value
    return RunContent(params, epochs, evaluation, {k: v for k, v in tags.items() if v})


def record_run(
    target: TrackingTarget | None,
    model_dir: Path,
    *,
    run_name: str | None = None,
    gate_record: Mapping[str, Any] | None = None,
    artifacts: Sequence[Path] = (),
    tags: Mapping[str, str] | None = None,
) -> str | None:
    """Record one run for the model in `model_dir` and return its id; None when tracking is off or failed.

    Logs the parameters, one metric point per epoch (step = the epoch), the evaluation, the model directory's
    files under `model/`, the gate record as `gate.json` and each of `artifacts` at the run's root. Any failure
    (server unreachable, denied, mlflow missing) is a warning: the run is marked FAILED where it was created,
    and the caller goes on.
    """
    if target is None:
        return None
    run_id: str | None = None
    client: Any = None
    try:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if target.is_file_store:
            # mlflow 3.x keeps the file store in "maintenance mode" and refuses it unless this opt-out is set
            # (mlflow/store/tracking/file_store.py); `make local` wants a plain folder, not a database.
            os.environ.setdefault(_ALLOW_FILE_STORE, "true")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        content = run_content(model_dir, gate_record)
        client = MlflowClient(tracking_uri=target.uri)
        experiment = client.get_experiment_by_name(target.experiment)
        experiment_id = (
            experiment.experiment_id if experiment is not None else client.create_experiment(target.experiment)
        )
        run = client.create_run(experiment_id, run_name=run_name, tags={**content.tags, **dict(tags or {})})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in sorted(content.params.items())]
        for i in range(0, len(params), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[i : i + _PARAMS_PER_BATCH])
        metrics = [
            Metric(name, value, now, epoch) for epoch, values in content.epochs for name, value in values.items()
        ]
        metrics += [Metric(name, value, now, 0) for name, value in sorted(content.evaluation.items())]
        for i in range(0, len(metrics), _METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _METRICS_PER_BATCH])
        client.log_artifacts(run_id, str(model_dir), artifact_path="model")
        if gate_record is not None:
            client.log_dict(run_id, dict(gate_record), "gate.json")
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
        LOG.info("experiment tracking: run %s in experiment %r at %s", run_id, target.experiment, _shown(target.uri))
        return run_id
    except Exception as exc:  # tracking must never fail the step it serves
        LOG.warning(
            "experiment tracking at %s failed, going on without it: %s: %s",
            _shown(target.uri),
            type(exc).__name__,
            " ".join(str(exc).split())[:500],
        )
        if run_id is not None and client is not None:
            with contextlib.suppress(Exception):  # the server that just failed may still be unreachable
                client.set_terminated(run_id, "FAILED")
        return None


def _shown(uri: str) -> str:
    """The URI without credentials (`https://user:secret@host` -> `https://host`)."""
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri
