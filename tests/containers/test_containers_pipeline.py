"""The images run the way SageMaker runs them: train on a SageMaker-shaped /opt/ml, serve the trained model on
loopback, then monitor the captured traffic with the bring-your-own-container environment.

Each container is started with the image's own ENTRYPOINT (read from the image config, since `buildah run`
ignores it) followed by the command SageMaker passes, so the entrypoint's handling of `train`/`serve` is proven.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitoring import metrics_contract
from tests.containers.helpers import (
    BUILD_DIR,
    LOG_DIR,
    Captured,
    ProjectImages,
    csv_body,
    feature_rows,
    json_body,
    lay_out_training,
    remove_tree,
    scratch_dir,
    write_capture,
)
from tools import image_checks, images

MODEL_FILES = (
    "model.onnx",
    "model.int8.onnx",
    "manifest.json",
    "evaluation.json",
    "baseline/statistics.json",
    "baseline/constraints.json",
)
ENDPOINT = "mlplatform-dev"
VARIANT = "AllTraffic"
DRIFT_FACTOR = 5.0  # the first feature of the drifted traffic is this many times its real value


def image_or_fail(project_images: ProjectImages, name: str) -> str:
    try:
        return project_images.get(name).tag
    except images.ImageToolError as error:
        pytest.fail(str(error), pytrace=False)


@dataclass
class Training:
    ml_root: Path
    exit_code: int
    output: str

    @property
    def model(self) -> Path:
        return self.ml_root / "model"


@pytest.fixture(scope="module")
def training(project_images: ProjectImages) -> Iterator[Training]:
    tag = image_or_fail(project_images, "training")
    ml_root = scratch_dir("mlp-train-")
    try:
        lay_out_training(ml_root)
        entrypoint = images.image_config(tag).entrypoint or []
        result = images.run_in_container(tag, [*entrypoint, "train"], volumes=[f"{ml_root}:/opt/ml"], timeout=900)
        output = result.stdout + result.stderr
        (LOG_DIR / "training-run.log").write_text(output)
        yield Training(ml_root, result.returncode, output)
    finally:
        remove_tree(ml_root)


def trained(training: Training) -> Training:
    if training.exit_code != 0:
        failure = training.ml_root / "output" / "failure"
        reason = failure.read_text() if failure.is_file() else "(no /opt/ml/output/failure)"
        pytest.fail(f"training exited with {training.exit_code}: {reason}\n{training.output[-3000:]}", pytrace=False)
    return training


def test_training_container_writes_the_model_directory(training: Training) -> None:
    model = trained(training).model
    for name in MODEL_FILES:
        assert (model / name).is_file(), (
            f"{name} missing from /opt/ml/model: {sorted(p.name for p in model.rglob('*'))}"
        )
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["files"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert manifest["hyperparameters"]["epochs"] == 3  # hyperparameters.json reached the container
    assert len(manifest["features"]) == 30
    evaluation = json.loads((model / "evaluation.json").read_text())
    assert evaluation, "evaluation.json is empty"
    statistics = json.loads((model / "baseline" / "statistics.json").read_text())
    assert len(statistics["features"]) == 30
    assert statistics["dataset"]["item_count"] > 0
    constraints = json.loads((model / "baseline" / "constraints.json").read_text())
    assert len(constraints["features"]) == 30
    assert not (training.ml_root / "output" / "failure").exists()


@dataclass
class Serving:
    report: image_checks.ServingReport
    captured: list[Captured]
    normal_rows: int
    drifted_rows: int
    when: dt.datetime


def serving_requests(rows: list[list[str]]) -> tuple[list[image_checks.Request], list[list[str]]]:
    drifted = [[str(float(row[0]) * DRIFT_FACTOR), *row[1:]] for row in rows]
    requests = [
        image_checks.Request("csv", csv_body(rows), "text/csv"),
        image_checks.Request("json", json_body(rows[:5]), "application/json"),
        image_checks.Request("drifted csv", csv_body(drifted), "text/csv"),
        image_checks.Request(
            "non-numeric csv", b"not-a-number" + b",1" * (len(rows[0]) - 1) + b"\n", "text/csv", "client-error"
        ),
        image_checks.Request("too few columns", b"1,2,3\n", "text/csv", "client-error"),
    ]
    return requests, drifted


@pytest.fixture(scope="module")
def serving(project_images: ProjectImages, training: Training) -> Serving:
    tag = image_or_fail(project_images, "serving")
    model = trained(training).model
    manifest: dict[str, Any] = json.loads((model / "manifest.json").read_text())
    rows = feature_rows(training.ml_root, manifest)
    requests, _ = serving_requests(rows)
    when = dt.datetime.now(dt.UTC).replace(microsecond=0)
    report = image_checks.check_serving(tag, model, requests, log_path=LOG_DIR / "serving-run.log")
    (BUILD_DIR / "serving-check.json").write_text(json.dumps(image_checks.as_json(report), indent=2) + "\n")
    captured = [
        Captured(r.content_type, r.body, report.answers[r.name].content_type, report.answers[r.name].body)
        for r in requests
        if r.expect == "ok" and r.name in report.answers and report.answers[r.name].status == 200
    ]
    return Serving(report, captured, normal_rows=len(rows) + 5, drifted_rows=len(rows), when=when)


def test_serving_container_keeps_the_hosting_contract(serving: Serving) -> None:
    report = serving.report
    assert report.problems == [], report.log
    assert report.ready_s is not None
    assert report.sigterm_exit_s is not None
    assert report.sigterm_exit_s < image_checks.SIGTERM_GRACE_S


def predictions(answer: image_checks.HttpAnswer) -> list[list[float]]:
    """Class probabilities per row, from a JSON (`{"classes", "predictions": [{label, probabilities}]}`) or
    CSV (one row of probabilities per line) answer."""
    if "json" in answer.content_type:
        body = json.loads(answer.body)
        assert len(body["classes"]) == 2
        for row in body["predictions"]:
            assert row["label"] == body["classes"][max(range(2), key=lambda i: row["probabilities"][i])]
        return [row["probabilities"] for row in body["predictions"]]
    return [[float(v) for v in line.split(",")] for line in answer.body.decode().splitlines() if line.strip()]


def test_serving_container_answers_csv_and_json_with_probabilities(serving: Serving) -> None:
    answers = serving.report.answers
    assert answers["csv"].status == 200
    assert answers["json"].status == 200
    csv_rows = predictions(answers["csv"])
    json_rows = predictions(answers["json"])
    assert len(csv_rows) == serving.drifted_rows  # every validation row, in one request
    assert len(json_rows) == 5
    for row in csv_rows + json_rows:
        assert len(row) == 2
        assert abs(sum(row) - 1.0) < 1e-4
    # The same rows through both codecs give the same probabilities.
    for left, right in zip(csv_rows[:5], json_rows, strict=True):
        assert left == pytest.approx(right, abs=1e-6)


def test_serving_container_rejects_bad_requests_with_4xx(serving: Serving) -> None:
    for name in ("non-numeric csv", "too few columns"):
        answer = serving.report.answers[name]
        assert 400 <= answer.status < 500, (name, answer.status, answer.body[:300])
        assert json.loads(answer.body)["error"], answer.body[:300]


@dataclass
class Monitoring:
    exit_code: int
    output: str
    result_dir: Path
    opt_ml_output: Path


@pytest.fixture(scope="module")
def monitoring_run(project_images: ProjectImages, training: Training, serving: Serving) -> Iterator[Monitoring]:
    tag = image_or_fail(project_images, "monitoring")
    model = trained(training).model
    if not serving.captured:
        pytest.fail(f"no successful serving answers to capture: {serving.report.problems}", pytrace=False)
    work = scratch_dir("mlp-monitor-")
    try:
        capture, result, output = work / "capture", work / "result", work / "output"
        for folder in (capture, result, output):
            folder.mkdir(mode=0o777)
        write_capture(capture, ENDPOINT, VARIANT, serving.when, serving.captured)
        start = serving.when.replace(minute=0, second=0)
        env = {
            "dataset_format": json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput"]}}),
            "dataset_source": "/opt/ml/processing/input/endpoint",
            "output_path": "/opt/ml/processing/resultdata",
            "publish_cloudwatch_metrics": "Enabled",
            "sagemaker_endpoint_name": ENDPOINT,
            "sagemaker_monitoring_schedule_name": "mlplatform-dev-drift",
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_time": (start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json",
            "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
        }
        volumes = [
            f"{capture}:/opt/ml/processing/input/endpoint:ro",
            f"{model / 'baseline' / 'statistics.json'}:/opt/ml/processing/baseline/stats/statistics.json:ro",
            f"{model / 'baseline' / 'constraints.json'}:/opt/ml/processing/baseline/constraints/constraints.json:ro",
            f"{result}:/opt/ml/processing/resultdata",
            f"{output}:/opt/ml/output",
        ]
        entrypoint = images.image_config(tag).entrypoint or []
        proc = images.run_in_container(tag, entrypoint, volumes=volumes, env=env, timeout=600)
        text = proc.stdout + proc.stderr
        (LOG_DIR / "monitoring-run.log").write_text(text)
        yield Monitoring(proc.returncode, text, result, output)
    finally:
        remove_tree(work)


def test_monitoring_container_finds_the_drifted_feature(monitoring_run: Monitoring, training: Training) -> None:
    assert monitoring_run.exit_code == 0, monitoring_run.output[-3000:]
    violations = json.loads((monitoring_run.result_dir / "constraint_violations.json").read_text())["violations"]
    first = json.loads((training.model / "manifest.json").read_text())["features"][0]["name"]
    drift = [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
    assert first in [v["feature_name"] for v in drift], violations
    statistics = json.loads((monitoring_run.result_dir / "statistics.json").read_text())
    assert len(statistics["features"]) == 30


def test_monitoring_container_writes_the_message_and_metrics_files(
    monitoring_run: Monitoring, training: Training, serving: Serving
) -> None:
    assert monitoring_run.exit_code == 0, monitoring_run.output[-3000:]
    message = (monitoring_run.opt_ml_output / "message").read_text()
    assert message.startswith("CompletedWithViolations: "), message
    lines = (monitoring_run.opt_ml_output / "metrics" / "cloudwatch" / "cloudwatch_metrics.jsonl").read_text()
    metrics = [json.loads(line) for line in lines.splitlines() if line.strip()]
    by_name = {m["MetricName"]: m for m in metrics}
    first = json.loads((training.model / "manifest.json").read_text())["features"][0]["name"]
    drift = by_name[metrics_contract.feature_baseline_drift_metric(first)]
    assert drift["Value"] > 0.1
    assert by_name[metrics_contract.feature_non_null_metric(first)]["Value"] == 1.0
    dimensions = {d["Name"]: d["Value"] for d in drift["Dimensions"]}
    assert dimensions[metrics_contract.ENDPOINT_DIMENSION] == ENDPOINT
