"""Run outputs: CloudWatch metric lines, PutMetricData, the container contract, the CLI and the HTML report."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
from typing import Any

import boto3
import botocore.session
import numpy as np
import pandas as pd
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from monitoring import metrics_contract as contract
from monitoring.baseline import write_baseline
from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.cli import main as cli_main
from monitoring.entrypoint import main as container_main
from monitoring.entrypoint import parse_dataset_format
from monitoring.job import analyze
from monitoring.metrics import build_metric_data, put_metric_data
from monitoring.report import render_report

T0 = dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)
END = T0 + dt.timedelta(hours=1)


def _frame(seed: int, n: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50.0 + shift * 12, 12.0, n),
            "colour": rng.choice(["red", "green"], n),
        }
    )


@pytest.fixture
def workspace(tmp_path: pathlib.Path) -> pathlib.Path:
    write_baseline(_frame(1, 10_000), tmp_path / "baseline")
    frame = _frame(2, 1_000, shift=1.0)
    records = [
        capture_record(frame.iloc[i : i + 10].values.tolist(), T0 + dt.timedelta(seconds=i))
        for i in range(0, 1_000, 10)
    ]
    write_capture_file(tmp_path / "capture", [*records, "corrupt {"], T0)
    return tmp_path


def _metric_data(workspace: pathlib.Path) -> list[dict[str, Any]]:
    result = analyze(
        LocalSource(workspace / "capture"),
        workspace / "baseline" / "statistics.json",
        workspace / "baseline" / "constraints.json",
        TimeWindow(T0, END),
    )
    return build_metric_data(
        result.profile, result.evaluation, endpoint_name="ep", schedule_name="sched", timestamp=END
    )


def test_metric_lines_are_valid_put_metric_data_for_botocore(workspace: pathlib.Path) -> None:
    data = _metric_data(workspace)
    model = botocore.session.get_session().get_service_model("cloudwatch")
    shape = model.operation_model("PutMetricData").input_shape
    report = ParamValidator().validate({"Namespace": contract.METRIC_NAMESPACE, "MetricData": data}, shape)
    assert not report.has_errors(), report.generate_report()
    allowed = set(model.shape_for("MetricDatum").members)
    assert all(set(d) <= allowed for d in data)


def test_metric_names_cover_every_feature(workspace: pathlib.Path) -> None:
    data = _metric_data(workspace)
    by_name = {d["MetricName"]: d for d in data}
    assert by_name["feature_non_null_income"]["Value"] == 1.0
    assert by_name["feature_baseline_drift_income"]["Value"] > 0.1
    assert by_name["feature_data_age"]["StatisticValues"]["SampleCount"] == 1000.0
    assert "feature_data_colour" not in by_name
    assert "feature_baseline_drift_colour" in by_name
    assert by_name[contract.VIOLATIONS_METRIC]["Value"] == 1.0
    assert by_name[contract.RECORDS_ANALYZED_METRIC]["Value"] == 1000.0
    assert all(
        d["Dimensions"] == [{"Name": "EndpointName", "Value": "ep"}, {"Name": "ScheduleName", "Value": "sched"}]
        for d in data
    )
    assert {d["Timestamp"] for d in data} == {"2024-05-01T14:00:00Z"}


@mock_aws
def test_put_metric_data_publishes_in_batches_within_the_api_limit() -> None:
    client = boto3.client("cloudwatch", region_name="us-east-1")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dims = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "ScheduleName", "Value": "s"}]
    data = [
        {"MetricName": f"feature_non_null_f{i}", "Timestamp": stamp, "Dimensions": dims, "Value": 1.0, "Unit": "None"}
        for i in range(2_500)
    ]
    assert put_metric_data(client, data) == 3
    listed = client.list_metrics(Namespace=contract.METRIC_NAMESPACE, MetricName="feature_non_null_f2499")
    assert [m["Dimensions"] for m in listed["Metrics"]] == [dims]


def _env(workspace: pathlib.Path, **extra: str) -> dict[str, str]:
    return {
        "dataset_format": '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}',
        "dataset_source": str(workspace / "capture"),
        "output_path": str(workspace / "result"),
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": "ep",
        "sagemaker_monitoring_schedule_name": "sched",
        "start_time": "2024-05-01T13: 00: 00Z",
        "end_time": "2024-05-01T14:00:00Z",
        "baseline_statistics": str(workspace / "baseline" / "statistics.json"),
        "baseline_constraints": str(workspace / "baseline" / "constraints.json"),
        "MLPLATFORM_OPT_ML": str(workspace / "opt_ml"),
        **extra,
    }


def test_container_writes_the_byoc_contract_files(workspace: pathlib.Path) -> None:
    assert container_main(_env(workspace)) == 0
    violations = json.loads((workspace / "result" / "constraint_violations.json").read_text())
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations["violations"]] == [
        ("income", "baseline_drift_check")
    ]
    assert (workspace / "result" / "statistics.json").is_file()
    assert (workspace / "result" / "report.html").is_file()
    lines = (workspace / "opt_ml" / "output" / "metrics" / "cloudwatch" / "cloudwatch_metrics.jsonl").read_text()
    assert {json.loads(line)["MetricName"] for line in lines.splitlines()} >= {
        "feature_baseline_drift_income",
        "constraint_violations",
    }
    message = (workspace / "opt_ml" / "output" / "message").read_text()
    assert message.startswith("CompletedWithViolations: 1 violations (baseline_drift_check) in 1000 rows.")
    assert "1 records and 0 rows skipped" in message


def test_container_writes_no_metrics_file_when_publishing_is_disabled(workspace: pathlib.Path) -> None:
    assert container_main(_env(workspace, publish_cloudwatch_metrics="Disabled")) == 0
    assert not (workspace / "opt_ml" / "output" / "metrics").exists()


@mock_aws
def test_container_outside_model_monitor_reads_s3_and_publishes_metrics(workspace: pathlib.Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ml-artifacts")
    for path in (workspace / "capture").rglob("*.jsonl"):
        s3.upload_file(str(path), "ml-artifacts", f"capture/{path.relative_to(workspace / 'capture').as_posix()}")
    for name in ("statistics.json", "constraints.json"):
        s3.upload_file(str(workspace / "baseline" / name), "ml-artifacts", f"model/baseline/{name}")
    env = _env(
        workspace,
        dataset_source="s3://ml-artifacts/capture",
        baseline_statistics="s3://ml-artifacts/model/baseline/statistics.json",
        baseline_constraints="s3://ml-artifacts/model/baseline/constraints.json",
        MLPLATFORM_PUT_METRIC_DATA="1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    # The contract reads settings from the mapping; boto3 reads the region from the process environment.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        assert container_main(env) == 0
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=contract.METRIC_NAMESPACE)["Metrics"]}
    assert {"feature_baseline_drift_income", "feature_non_null_age", "constraint_violations"} <= names


def test_container_reports_a_bad_setting_and_fails(workspace: pathlib.Path) -> None:
    assert container_main(_env(workspace, publish_cloudwatch_metrics="yes")) == 2
    failure = (workspace / "opt_ml" / "output" / "failure").read_text()
    assert "publish_cloudwatch_metrics is 'yes'; allowed: Enabled or Disabled" in failure


def test_container_reports_a_missing_baseline_file(workspace: pathlib.Path) -> None:
    assert container_main(_env(workspace, baseline_statistics=str(workspace / "nope.json"))) == 2
    assert "does not exist" in (workspace / "opt_ml" / "output" / "failure").read_text()


def test_dataset_format_selects_the_capture_part() -> None:
    assert (
        parse_dataset_format('{"sagemakerCaptureJson": {"captureIndexNames": ["endpointOutput"]}}') == "endpointOutput"
    )
    assert parse_dataset_format(None) == "endpointInput"
    with pytest.raises(ValueError, match="allowed values are endpointInput, endpointOutput"):
        parse_dataset_format('{"sagemakerCaptureJson": {"captureIndexNames": ["body"]}}')


def test_cli_analyze_writes_results_and_report(workspace: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "analyze",
            "--baseline", str(workspace / "baseline"),
            "--capture", str(workspace / "capture"),
            "--output", str(workspace / "cli-out"),
            "--start", "2024-05-01T13:00:00Z",
            "--end", "2024-05-01T14:00:00Z",
            "--report", str(workspace / "report.html"),
        ]
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.startswith("CompletedWithViolations")
    assert (workspace / "cli-out" / "constraint_violations.json").is_file()
    assert (workspace / "report.html").is_file()


def test_cli_reports_a_bad_time(workspace: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        ["analyze", "--baseline", str(workspace / "baseline"), "--capture", str(workspace / "capture"),
         "--output", str(workspace / "o"), "--start", "noon"]
    )  # fmt: skip
    assert code == 2
    assert "--start: 'noon' is not an ISO-8601 time" in capsys.readouterr().err


def test_report_is_self_contained_with_a_plot_per_feature(workspace: pathlib.Path) -> None:
    result = analyze(
        LocalSource(workspace / "capture"),
        workspace / "baseline" / "statistics.json",
        workspace / "baseline" / "constraints.json",
        TimeWindow(T0, END),
    )
    page = render_report(result)
    for feature in ("age", "income", "colour"):
        section = re.search(rf'<section class="feature [a-z]+" id="feature-{feature}">(.*?)</section>', page, re.S)
        assert section is not None
        assert "<svg" in section.group(1)
        assert "threshold" in section.group(1)
    assert '<section class="feature drifted" id="feature-income">' in page
    assert "<td>income</td><td>baseline_drift_check</td>" in page
    assert "corrupt_line: 1" in page
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert "<script" not in page


def test_metric_names_longer_than_cloudwatch_allows_are_refused() -> None:
    with pytest.raises(ValueError, match="CloudWatch allows 255"):
        contract.feature_baseline_drift_metric("x" * 300)


def test_window_seconds_sets_the_start_from_the_end(workspace: pathlib.Path) -> None:
    from monitoring.entrypoint import parse_settings

    settings = parse_settings(_env(workspace, start_time="", MLPLATFORM_WINDOW_SECONDS="1800"))
    assert settings.window.start == dt.datetime(2024, 5, 1, 13, 30, tzinfo=dt.UTC)
    assert settings.window.end == END
    with pytest.raises(ValueError, match="MLPLATFORM_WINDOW_SECONDS is '-5'"):
        parse_settings(_env(workspace, start_time="", MLPLATFORM_WINDOW_SECONDS="-5"))


def test_report_of_an_empty_window_says_no_data(workspace: pathlib.Path) -> None:
    empty = workspace / "empty"
    empty.mkdir()
    result = analyze(
        LocalSource(empty),
        workspace / "baseline" / "statistics.json",
        workspace / "baseline" / "constraints.json",
        TimeWindow(T0, END),
    )
    page = render_report(result)
    assert "<h1>Drift report: no data</h1>" in page
    assert "Completed: no data in the window" in page
    data = build_metric_data(result.profile, result.evaluation, endpoint_name="ep", schedule_name="s", timestamp=END)
    assert {d["MetricName"]: d["Value"] for d in data} == {"constraint_violations": 0.0, "records_analyzed": 0.0}


def test_cli_baseline_writes_both_files_from_a_csv(tmp_path: pathlib.Path) -> None:
    (tmp_path / "train.csv").write_text("age,colour\n30,red\n41,blue\n")
    assert cli_main(["baseline", "--data", str(tmp_path / "train.csv"), "--output", str(tmp_path / "b")]) == 0
    stats = json.loads((tmp_path / "b" / "statistics.json").read_text())
    assert [(f["name"], f["inferred_type"]) for f in stats["features"]] == [("age", "Integral"), ("colour", "String")]
    assert (tmp_path / "b" / "constraints.json").is_file()
