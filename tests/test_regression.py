"""Regression end to end: `task` detection, training to a raw-unit `predictions` graph, serving over HTTP, the
prediction-distribution and model-quality monitors, and the gate's regression checks.

Model Monitor's regression figures are `regression_metrics` `mae`, `mse`, `rmse`, `r2` with problem type
`Regression` (AWS developer guide, "Model quality metrics and Amazon CloudWatch monitoring",
model-monitor-model-quality-metrics, section "Regression metrics"); the quality monitor here writes that section.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.ground_truth import ground_truth_record, write_ground_truth_file
from monitoring.job import analyze
from monitoring.quality import QualityConfig, analyze_quality, load_quality_baseline
from serving.model import LoadedModel, read_manifest
from tests.serving_server_process import ServerProcess
from training.artifacts import PREDICTIONS_BASELINE_DIR, write_model_directory
from training.data import REGRESSION_MIN_DISTINCT, detect_task, load_training_data
from training.demo import regression_frame, split_frame, synthetic_frame, write_layout
from training.errors import TrainingInputError
from training.export import onnx_probabilities
from training.gate import GateThresholds, decide, evaluate_models
from training.hyperparameters import Hyperparameters, parse_hyperparameters
from training.layout import MLRoot
from training.runtime import StopFlag, WorkerIdentity
from training.trainer import predict_probabilities, to_device, train

HOUR = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
WINDOW = TimeWindow(HOUR, HOUR + dt.timedelta(hours=1))
HP = {"epochs": "40", "batch_size": "64", "hidden_units": "32,32", "num_threads": "1", "dropout": "0"}


def _layout(root: Path, frame: pd.DataFrame, hyperparameters: dict[str, str], *, seed: int = 3) -> MLRoot:
    ml = MLRoot(root)
    train_part, validation = split_frame(frame, seed=seed, stratify=False)
    write_layout(ml, train_part, validation, hyperparameters)
    return ml


def _train(ml: MLRoot, hp: Hyperparameters) -> tuple[Any, Any]:
    data = load_training_data(ml, hp.target, hp.max_categories, task=hp.task, seed=hp.seed)
    result = train(data, hp, ml, identity=WorkerIdentity(host="algo-1"), device=torch.device("cpu"), stop=StopFlag())
    write_model_directory(data, hp, result, ml.model)
    return data, result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[MLRoot, Any, Any]:
    """A regression model on synthetic rows with numeric and categorical features, `task` left at auto."""
    ml = _layout(tmp_path_factory.mktemp("regression"), regression_frame(1500, numeric=5, categorical=2, seed=3), HP)
    hp = parse_hyperparameters(HP)
    assert hp.task == "auto"
    data, result = _train(ml, hp)
    return ml, data, result


def test_auto_task_trains_a_regressor_whose_graph_answers_in_target_units(trained: tuple[MLRoot, Any, Any]) -> None:
    ml, data, result = trained
    manifest = json.loads((ml.model / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "regression"
    assert "classes" not in manifest
    assert manifest["outputs"] == {"predictions": {"dtype": "float32", "shape": [None]}}
    assert set(manifest["metrics"]) == {"val_rmse", "val_mae", "val_r2"}
    evaluation = json.loads((ml.model / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["fp32"]["r2"] > 0.8  # the model learned the relation, not just the mean
    assert evaluation["int8_minus_fp32"]["rmse"] == pytest.approx(
        evaluation["int8"]["rmse"] - evaluation["fp32"]["rmse"]
    )
    # The exported graph computes what the PyTorch model computes, in the target's units (mean about 200).
    onnx_predictions = onnx_probabilities(ml.model / "model.onnx", data.validation)
    torch_predictions = predict_probabilities(result.model, to_device(data.validation, torch.device("cpu")))
    assert onnx_predictions.shape == (len(data.validation),)
    np.testing.assert_allclose(onnx_predictions, torch_predictions, rtol=0, atol=1e-3)
    targets = data.validation.targets
    assert abs(float(onnx_predictions.mean()) - float(targets.mean())) < 0.2 * float(targets.std())
    rmse = math.sqrt(float(np.mean((onnx_predictions.astype(np.float64) - targets) ** 2)))
    assert rmse == pytest.approx(evaluation["fp32"]["rmse"], rel=1e-6)
    assert rmse < 0.5 * float(targets.std())


def _csv_body(frame: pd.DataFrame, names: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(frame[list(names)].itertuples(index=False))
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def server(trained: tuple[MLRoot, Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    ml = trained[0]
    process = ServerProcess(ml.model, tmp_path_factory.mktemp("log") / "server.log", workers=1)
    try:
        process.wait_until(200)
        yield process
    finally:
        process.terminate()


def test_server_answers_raw_unit_predictions_in_every_response_type(
    trained: tuple[MLRoot, Any, Any], server: ServerProcess
) -> None:
    ml, _, _ = trained
    manifest = read_manifest(ml.model)
    validation = pd.read_csv(ml.channel("validation") / "validation.csv", dtype=str)
    body = _csv_body(validation, manifest.feature_names)
    status, headers, answer = server.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200, answer
    assert headers["content-type"].startswith("application/json")
    predictions = np.array(json.loads(answer)["predictions"], dtype=np.float64)
    assert list(json.loads(answer)) == ["predictions"]
    evaluation = json.loads((ml.model / "evaluation.json").read_text(encoding="utf-8"))
    targets = validation["label"].astype(float).to_numpy()
    rmse = math.sqrt(float(np.mean((predictions - targets) ** 2)))
    assert rmse == pytest.approx(evaluation["fp32"]["rmse"], rel=1e-5)

    status, headers, answer = server.request(
        "POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert status == 200 and headers["content-type"].startswith("text/csv")
    lines = answer.decode().splitlines()
    assert len(lines) == len(validation) and all("," not in line for line in lines)
    np.testing.assert_allclose([float(v) for v in lines], predictions, rtol=1e-6)

    status, _, answer = server.request(
        "POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "application/jsonlines"}
    )
    assert status == 200
    rows = [json.loads(line) for line in answer.decode().splitlines()]
    np.testing.assert_allclose([r["prediction"] for r in rows], predictions, rtol=1e-6)


def test_server_names_unknown_categories_beside_a_regression_answer(
    trained: tuple[MLRoot, Any, Any], server: ServerProcess
) -> None:
    manifest = read_manifest(trained[0].model)
    validation = pd.read_csv(trained[0].channel("validation") / "validation.csv", dtype=str).head(2)
    validation.loc[1, "cat_0"] = "never-seen"
    body = _csv_body(validation, manifest.feature_names)
    status, _, answer = server.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200
    doc = json.loads(answer)
    assert len(doc["predictions"]) == 2
    assert doc["unknown_categories"] == [[], ["cat_0"]]


def _captures(root: Path, features: pd.DataFrame, predictions: np.ndarray, ids: list[str]) -> None:
    """One capture record per row as the serving container answers text/csv: one number per line."""
    records = [
        capture_record([list(row)], HOUR + dt.timedelta(seconds=i), output=f"{float(p):.6g}\n", event_id=ids[i])
        for i, (row, p) in enumerate(zip(features.itertuples(index=False), predictions, strict=True))
    ]
    write_capture_file(root, records, HOUR, endpoint="ep", variant="AllTraffic", name="capture.jsonl")


def test_monitor_flags_a_shifted_prediction_distribution_and_not_a_normal_one(
    trained: tuple[MLRoot, Any, Any], tmp_path: Path
) -> None:
    ml, data, _ = trained
    baseline = ml.model / "baseline" / PREDICTIONS_BASELINE_DIR
    predictions = LoadedModel(ml.model, "fp32").predict(_batch(ml, data))
    features = pd.read_csv(ml.channel("validation") / "validation.csv").drop(columns=["label"])
    ids = [f"e{i}" for i in range(len(features))]
    results = {}
    for phase, shift in (("normal", 0.0), ("shifted", 2.0 * data.schema.target_std)):
        _captures(tmp_path / phase, features, predictions + shift, ids)
        run = analyze(
            LocalSource(tmp_path / phase),
            baseline / "statistics.json",
            baseline / "constraints.json",
            WINDOW,
            capture_index="endpointOutput",
        )
        results[phase] = {(v.feature_name, v.constraint_check_type) for v in run.evaluation.violations}
        assert run.counts.rows_analyzed == len(features)
    assert results["normal"] == set()
    assert results["shifted"] == {("prediction", "baseline_drift_check")}


def _batch(ml: MLRoot, data: Any) -> Any:
    from serving.codec import decode_csv

    manifest = read_manifest(ml.model)
    validation = pd.read_csv(ml.channel("validation") / "validation.csv", dtype=str)
    return decode_csv(_csv_body(validation, manifest.feature_names), manifest)


def test_model_quality_with_ground_truth_computes_rmse_and_flags_worse_predictions(
    trained: tuple[MLRoot, Any, Any], tmp_path: Path
) -> None:
    ml, data, _ = trained
    predictions = LoadedModel(ml.model, "fp32").predict(_batch(ml, data)).astype(np.float64)
    features = pd.read_csv(ml.channel("validation") / "validation.csv").drop(columns=["label"])
    targets = data.validation.targets.astype(np.float64)
    ids = [f"e{i}" for i in range(len(features))]
    write_ground_truth_file(
        tmp_path / "gt",
        [ground_truth_record(i, float(v)) for i, v in zip(ids, targets, strict=True)],
        HOUR + dt.timedelta(hours=2),
    )
    baseline = load_quality_baseline(ml.model / "baseline", want_bias=False)
    assert baseline.problem_type == "Regression"
    config = QualityConfig(problem_type="Regression", inference_attribute="0", probability_attribute=None)
    found = {}
    for phase, noise in (("same", 0.0), ("worse", 1.5 * data.schema.target_std)):
        worse = predictions + noise * np.where(np.arange(len(predictions)) % 2, 1.0, -1.0)
        _captures(tmp_path / phase, features, worse, ids)
        result = analyze_quality(
            LocalSource(tmp_path / phase), LocalSource(tmp_path / "gt"), baseline, WINDOW, config, None, HOUR
        )
        section = result.statistics["regression_metrics"]
        expected_rmse = math.sqrt(float(np.mean((np.array([float(f"{p:.6g}") for p in worse]) - targets) ** 2)))
        assert section["rmse"]["value"] == pytest.approx(expected_rmse, rel=1e-6)
        assert set(section) >= {"mae", "mse", "rmse", "r2"}
        found[phase] = {v["metric_name"] for v in result.all_violations}
    assert found["same"] == set()
    assert {"rmse", "mae", "r2"} <= found["worse"]


def test_gate_refuses_a_worse_regression_candidate_and_passes_an_equal_one(
    trained: tuple[MLRoot, Any, Any], tmp_path: Path
) -> None:
    ml, _, _ = trained
    weak = _layout(tmp_path / "weak", regression_frame(1500, numeric=5, categorical=2, seed=3), {**HP, "epochs": "2"})
    _train(weak, parse_hyperparameters({**HP, "epochs": "2"}))
    held_out = pd.read_csv(ml.channel("validation") / "validation.csv")
    worse = decide(evaluate_models(weak.model, ml.model, held_out), GateThresholds())
    assert worse["decision"] == "fail"
    assert {"rmse_increase", "mae_increase", "r2_drop"} <= set(worse["failed_checks"])
    rmse_check = next(c for c in worse["checks"] if c["check"] == "rmse_increase")
    candidate, champion = worse["evaluation"]["candidate"], worse["evaluation"]["champion"]
    assert rmse_check["value"] == pytest.approx((candidate["rmse"] - champion["rmse"]) / champion["rmse"])
    same = decide(evaluate_models(ml.model, ml.model, held_out), GateThresholds())
    assert same["decision"] == "pass", same["failed_checks"]
    assert {c["check"] for c in same["checks"]} == {"min_r2", "rmse_increase", "mae_increase", "r2_drop"}
    # A classification champion is not comparable with a regression candidate.
    classifier = MLRoot(tmp_path / "classifier")
    write_layout(classifier, *split_frame(synthetic_frame(300, numeric=5, categorical=0, seed=1), seed=1), HP)
    from training.__main__ import main

    assert main(["train", "--ml-root", str(classifier.root)]) == 0
    with pytest.raises(TrainingInputError, match="candidate is a regression model but the champion"):
        evaluate_models(ml.model, classifier.model, held_out)


@pytest.mark.parametrize(
    ("requested", "non_number", "distinct", "expected"),
    [
        ("auto", None, REGRESSION_MIN_DISTINCT + 1, "regression"),
        ("auto", None, REGRESSION_MIN_DISTINCT, "classification"),
        ("auto", "cat", 500, "classification"),
        ("classification", None, 500, "classification"),
        ("regression", None, 2, "regression"),
    ],
)
def test_task_detection_follows_the_target_column(
    requested: str, non_number: str | None, distinct: int, expected: str
) -> None:
    assert detect_task(requested, "y", non_number, distinct) == expected


def test_task_hyperparameter_names_the_allowed_values() -> None:
    with pytest.raises(TrainingInputError, match=r"hyperparameter 'task': 'ranking' is not allowed; allowed: auto, "):
        parse_hyperparameters({"task": "ranking"})


def _frame_with_target(values: list[Any]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=len(values)), "label": values})


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (
            ["a", "b"] * 40,
            "regression",
            r"hyperparameter 'task': 'regression' needs a numeric target, but target column 'label' in channel "
            r"'train' has the value '[ab]', which is not a finite number",
        ),
        ([5.0] * 80, "regression", r"target column 'label' is constant in channel 'train' \(every value 5\)"),
        (["1"] * 80, "auto", r"target column 'label' has a single class \['1'\]"),
    ],
)
def test_bad_regression_targets_are_named(tmp_path: Path, values: list[Any], task: str, message: str) -> None:
    ml = _layout(tmp_path, _frame_with_target(values), {})
    with pytest.raises(TrainingInputError, match=message):
        load_training_data(ml, "label", 10, task=task)


def test_a_non_number_in_the_validation_target_is_named(tmp_path: Path) -> None:
    ml = MLRoot(tmp_path)
    train_part = _frame_with_target([float(i) for i in range(60)])
    validation = _frame_with_target([1.5, "n/a", 2.5])
    write_layout(ml, train_part, validation, {})
    with pytest.raises(TrainingInputError, match=r"channel 'validation': target column 'label' has the value 'n/a'"):
        load_training_data(ml, "label", 10, task="auto")


def test_integer_class_codes_stay_classification_under_auto(tmp_path: Path) -> None:
    ml = _layout(tmp_path, _frame_with_target([0, 1, 2] * 30), {})
    data = load_training_data(ml, "label", 10, task="auto")
    assert (data.schema.task, data.schema.classes) == ("classification", ("0", "1", "2"))


@pytest.mark.slow
def test_make_local_regression_reports_regression_metrics_and_prediction_drift(tmp_path: Path) -> None:
    """`make local TASK=regression` (`python -m tools.local --task regression`), reduced like
    tests/test_local_lifecycle.py: the diabetes demo trained, gated, served, replayed, monitored."""
    import subprocess
    import sys

    out = tmp_path / "local"
    args = ["--task", "regression", "--epochs", "40", "--rows", "40", "--workers", "1", "--concurrency", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.local", "--out", str(out), *args],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["model"]["task"] == "regression"
    fp32 = summary["model"]["evaluation"]["fp32"]
    assert set(fp32) == {"rmse", "mae", "r2"} and fp32["r2"] > 0.2
    assert summary["lifecycle"]["gate"]["decision"] == "pass"
    assert set(summary["lifecycle"]["gate"]["candidate"]) >= {"rmse", "mae", "r2"}
    monitor = summary["monitor"]
    assert monitor["drifted"]["violated_features"] == ["bmi", "s5"]
    assert monitor["normal-predictions"]["violated_features"] == []
    assert monitor["drifted-predictions"]["violated_features"] == ["prediction"]
    assert summary["quality"]["true"]["quality_violations"] == []
    assert "rmse" in summary["quality"]["concept"]["quality_violations"]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<th>RMSE</th>" in report and "AUC" not in report
    assert "fp32 RMSE" in proc.stdout


def _stack_plan(changes: dict[str, str], drop: tuple[str, ...] = ()) -> Any:
    from tools.example_outputs import example_stack_outputs
    from tools.plan import run_program
    from tools.preflight import preflight

    root = Path(__file__).resolve().parent.parent
    values = {k: v for k, v in preflight("dev", root).values.items() if k not in drop}
    values.update(changes)
    return run_program("dev", values, stack_outputs=example_stack_outputs())


def test_a_regression_stack_trains_a_regression_model_and_parses_its_metrics() -> None:
    """`mlplatform:monitorProblemType: Regression` is the model's task: the training job gets `task: regression`
    and the regression epoch line's metric regexes (CreateTrainingJob AlgorithmSpecification.MetricDefinitions);
    the default stack's job keeps the classification ones and no `task` key."""
    from training.metrics import REGRESSION_LINE_FIELDS

    job_type = "aws:sagemaker/trainingJob:TrainingJob"
    regression = _stack_plan(
        {"mlplatform:monitorProblemType": "Regression", "mlplatform:monitorQualityAlarmMetric": "rmse"},
        drop=("mlplatform:monitorSensitiveAttribute",),
    ).one(job_type)["inputs"]
    assert regression["hyperParameters"]["task"] == "regression"
    names = [m["name"] for m in regression["algorithmSpecification"]["metricDefinitions"]]
    assert names == list(REGRESSION_LINE_FIELDS)
    default = _stack_plan({}).one(job_type)["inputs"]
    assert "task" not in default["hyperParameters"]
    assert "val_rmse" not in [m["name"] for m in default["algorithmSpecification"]["metricDefinitions"]]


def test_a_regression_stack_refuses_a_classification_quality_alarm_metric() -> None:
    from components.settings import MonitoringSettings

    with pytest.raises(ValueError, match=r"mlplatform:monitorQualityAlarmMetric: 'accuracy' is not a metric of a "):
        MonitoringSettings(quality=True, problem_type="Regression")
    assert MonitoringSettings(quality=True, problem_type="Regression", quality_alarm_metric="r2").problem_type


def test_client_reads_a_regression_answer_in_json_and_csv() -> None:
    from client.endpoint import ClientError, decode_predictions

    json_answer = decode_predictions(b'{"predictions":[151.25,87.5]}', "application/json")
    assert [p.value for p in json_answer] == [151.25, 87.5]
    assert json_answer[0].probabilities == {}
    csv_answer = decode_predictions(b"151.25\n87.5\n", "text/csv")
    assert [p.value for p in csv_answer] == [151.25, 87.5]
    classifier = decode_predictions(b"1,0.1,0.9\n", "text/csv")
    assert classifier[0].value is None and classifier[0].label == "1"
    with pytest.raises(ClientError, match="must be a number"):
        decode_predictions(b'{"predictions":["x"]}', "application/json")


def test_the_cli_offers_every_demo_task_without_importing_scikit_learn() -> None:
    """training/__main__.py spells the demo tasks itself so its parser does not import scikit-learn's datasets."""
    from training.__main__ import DEMO_TASKS
    from training.demo import TASKS

    assert DEMO_TASKS == TASKS
