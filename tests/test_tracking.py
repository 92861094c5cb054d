"""Experiment tracking (training/tracking.py): a real MLflow file store, written by the pipeline's evaluate step.

What is modelled: mlflow's `MlflowClient` (mlflow/tracking/client.py: get_experiment_by_name, create_run,
log_batch, log_artifacts, log_dict, set_terminated) over its file store (mlflow/store/tracking/file_store.py,
FileStore), as installed from `mlflow-skinny` — no fake. An unreachable server is a real refused connection to a
local port, through mlflow's REST store (mlflow/utils/rest_utils.py, http_request with
MLFLOW_HTTP_REQUEST_MAX_RETRIES retries). The run id's home in the model package is CreateModelPackage's
CustomerMetadataProperties (botocore sagemaker model: CustomerMetadataMap, values 1-256 characters).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import botocore.session
import pytest

from tests.lifecycle_fixtures import held_out, write_logistic_model
from training.__main__ import main
from training.demo import breast_cancer_frame, split_frame, write_layout
from training.layout import MLRoot
from training.tracking import NO_RUN, RUN_ID_KEY, TrackingTarget, record_run, run_content

EPOCHS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    """A short real training of the demo data (3 epochs, validated every epoch)."""
    ml = MLRoot(tmp_path_factory.mktemp("ml"))
    train, validation = split_frame(breast_cancer_frame(), seed=3)
    write_layout(
        ml,
        train,
        validation,
        {
            "epochs": str(EPOCHS),
            "batch_size": "64",
            "hidden_units": "16",
            "num_threads": "1",
            "patience": "0",
            "validation_interval": "1",
        },
    )
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    return ml


def _store(tmp_path: Path) -> TrackingTarget:
    return TrackingTarget((tmp_path / "mlruns").as_uri(), "mlplatform-test")


def test_a_run_records_params_per_epoch_metrics_evaluation_and_artifacts(trained: MLRoot, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    target = _store(tmp_path)
    record = {"decision": "pass", "champion_compared": False, "checks": [{"check": "min_auc", "value": 0.97}]}
    run_id = record_run(target, trained.model, run_name="pipelines-abc-Train", gate_record=record)
    assert run_id is not None
    client = MlflowClient(tracking_uri=target.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "pipelines-abc-Train"
    manifest = json.loads((trained.model / "manifest.json").read_text())
    assert run.data.params["epochs"] == str(manifest["hyperparameters"]["epochs"]) == str(EPOCHS)
    assert set(run.data.params) == set(manifest["hyperparameters"])
    history = client.get_metric_history(run_id, "val_auc")
    evaluation = json.loads((trained.model / "evaluation.json").read_text())
    expected = [(int(h["epoch"]), h["val_auc"]) for h in evaluation["training"]["history"]]
    assert [m.step for m in history] == [step for step, _ in expected] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([value for _, value in expected])
    assert len(history) == EPOCHS
    assert run.data.metrics["fp32_auc"] == pytest.approx(evaluation["fp32"]["auc"])
    assert run.data.metrics["gate_min_auc"] == pytest.approx(0.97)
    assert run.data.tags["mlplatform.gate_decision"] == "pass"
    files = {f.path for f in client.list_artifacts(run_id, "model")}
    assert {"model/manifest.json", "model/evaluation.json"} <= files
    assert "gate.json" in {f.path for f in client.list_artifacts(run_id)}
    # A second run lands in the same experiment.
    assert record_run(target, trained.model) != run_id
    experiment = client.get_experiment_by_name("mlplatform-test")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_tracking_off_is_a_no_op_and_the_record_says_none(tmp_path: Path) -> None:
    assert TrackingTarget.from_env({}) is None
    assert TrackingTarget.from_env({"MLFLOW_TRACKING_URI": "  "}) is None
    assert TrackingTarget.from_env({"MLFLOW_TRACKING_URI": "file:///x"}) == TrackingTarget("file:///x", "mlplatform")
    assert record_run(None, tmp_path) is None
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataValue")
    assert shape.metadata["min"] <= len(NO_RUN) <= shape.metadata["max"]


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connecting is refused


def test_unreachable_tracking_server_does_not_fail_the_evaluate_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The evaluate command with MLFLOW_TRACKING_URI at a port nothing listens on: the gate record is written
    with its decision, the run id is `none`, and the log says tracking failed."""
    rows = held_out()
    ml = MLRoot(tmp_path / "ml")
    ml.channel("validation").mkdir(parents=True)
    rows.to_csv(ml.channel("validation") / "validation.csv", index=False)
    candidate = write_logistic_model(tmp_path / "candidate", (4.0, 0.0, 0.0))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_refused_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    record_path = tmp_path / "gate.json"
    with caplog.at_level(logging.WARNING, logger="training"):
        code = main(
            ["evaluate", "--ml-root", str(ml.root), "--candidate", str(candidate), "--record", str(record_path)]
        )
    assert code == 0
    record = json.loads(record_path.read_text())
    assert record["decision"] == "pass"
    assert record[RUN_ID_KEY] == NO_RUN
    assert any("experiment tracking at http://127.0.0.1" in r.getMessage() for r in caplog.records)


def test_evaluate_step_records_the_run_id_it_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    rows = held_out()
    ml = MLRoot(tmp_path / "ml")
    ml.channel("validation").mkdir(parents=True)
    rows.to_csv(ml.channel("validation") / "validation.csv", index=False)
    candidate = write_logistic_model(tmp_path / "candidate", (4.0, 0.0, 0.0))
    target = _store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", target.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", target.experiment)
    record_path = tmp_path / "gate.json"
    argv = ["evaluate", "--ml-root", str(ml.root), "--candidate", str(candidate), "--record", str(record_path)]
    assert main([*argv, "--run-name", "job-1"]) == 0
    record = json.loads(record_path.read_text())
    run = MlflowClient(tracking_uri=target.uri).get_run(record[RUN_ID_KEY])
    assert run.info.run_name == "job-1"
    assert run.data.tags["mlplatform.gate_decision"] == record["decision"]
    assert run.data.metrics["gate_candidate_auc"] == pytest.approx(record["evaluation"]["candidate"]["auc"])


def test_run_content_skips_values_mlflow_cannot_store(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"hyperparameters": {"epochs": 2, "hidden": [8, 4]}}))
    history = [{"epoch": 1, "val_auc": 0.9, "val_loss": float("nan")}, {"epoch": 2, "val_auc": 0.95}]
    (tmp_path / "evaluation.json").write_text(json.dumps({"training": {"history": history}, "fp32": {"auc": None}}))
    content = run_content(tmp_path)
    assert content.params == {"epochs": "2", "hidden": "[8, 4]"}
    assert content.epochs == [(1, {"val_auc": 0.9}), (2, {"val_auc": 0.95})]
    assert content.evaluation == {}
