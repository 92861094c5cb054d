"""Container entrypoint: Model Monitor's bring-your-own-container contract, and the pipeline backend's step.

Reads the contract's environment (``dataset_format``, ``dataset_source``, ``output_path``, ``start_time``,
``end_time``, ``baseline_statistics``, ``baseline_constraints``, ``publish_cloudwatch_metrics``,
``sagemaker_endpoint_name``, ``sagemaker_monitoring_schedule_name``), writes statistics.json,
constraint_violations.json and report.html to ``output_path``, the metrics file under
``/opt/ml/output/metrics/cloudwatch/`` and the status line to ``/opt/ml/output/message``.

Outside Model Monitor (the ``pipeline`` backend) nobody reads the metrics file, so with
``publish_cloudwatch_metrics=Enabled`` and ``MLPLATFORM_PUT_METRIC_DATA=1`` the container publishes the
same data itself with PutMetricData (namespace from ``metric_namespace``, default in metrics_contract).
``MLPLATFORM_WINDOW_SECONDS`` sets the window from ``end_time`` when ``start_time`` is empty, and
``MLPLATFORM_OPT_ML`` moves the ``/opt/ml`` root (tests).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitoring import metrics_contract as contract
from monitoring.capture import CAPTURE_INDEXES, TimeWindow, open_source, parse_time
from monitoring.job import analyze, metric_timestamp, write_results
from monitoring.metrics import build_metric_data, put_metric_data, write_metric_lines
from monitoring.report import render_report

OPT_ML_ENV = "MLPLATFORM_OPT_ML"
PUT_METRIC_DATA_ENV = "MLPLATFORM_PUT_METRIC_DATA"
WINDOW_SECONDS_ENV = "MLPLATFORM_WINDOW_SECONDS"
"""With ``start_time`` empty, the window is this many seconds before ``end_time`` (the pipeline backend)."""
METRICS_FILE = pathlib.PurePosixPath("output/metrics/cloudwatch/cloudwatch_metrics.jsonl")
MESSAGE_FILE = pathlib.PurePosixPath("output/message")
FAILURE_FILE = pathlib.PurePosixPath("output/failure")


@dataclass(frozen=True)
class ContainerSettings:
    """The contract's environment, parsed and validated once."""

    capture_index: str
    dataset_source: str
    output_path: pathlib.Path
    window: TimeWindow
    baseline_statistics: str
    baseline_constraints: str
    publish_metrics: bool
    put_metric_data: bool
    endpoint_name: str
    schedule_name: str
    metric_namespace: str
    opt_ml: pathlib.Path


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"environment variable {name} is required by the monitoring container contract")
    return value


def parse_dataset_format(raw: str | None) -> str:
    """Which capture part to analyze: endpointInput unless the format names only endpointOutput."""
    if not raw:
        return "endpointInput"
    try:
        doc = json.loads(raw)
        names = doc["sagemakerCaptureJson"]["captureIndexNames"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"dataset_format {raw!r} is not supported; expected "
            '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}'
        ) from None
    if not isinstance(names, list) or not names or any(n not in CAPTURE_INDEXES for n in names):
        raise ValueError(f"dataset_format captureIndexNames {names!r}: allowed values are {', '.join(CAPTURE_INDEXES)}")
    return "endpointInput" if "endpointInput" in names else "endpointOutput"


def parse_settings(env: Mapping[str, str]) -> ContainerSettings:
    flag = env.get("publish_cloudwatch_metrics", "Disabled")
    if flag not in ("Enabled", "Disabled"):
        raise ValueError(f"publish_cloudwatch_metrics is {flag!r}; allowed: Enabled or Disabled")
    put = env.get(PUT_METRIC_DATA_ENV, "0")
    if put not in ("0", "1"):
        raise ValueError(f"{PUT_METRIC_DATA_ENV} is {put!r}; allowed: 0 or 1")
    start_text = env.get("start_time", "").strip()
    end_text = env.get("end_time", "").strip()
    end = parse_time(end_text, "end_time") if end_text else None
    start = parse_time(start_text, "start_time") if start_text else None
    seconds_text = env.get(WINDOW_SECONDS_ENV, "").strip()
    if start is None and end is not None and seconds_text:
        if not seconds_text.isdigit() or int(seconds_text) <= 0:
            raise ValueError(f"{WINDOW_SECONDS_ENV} is {seconds_text!r}; allowed: a whole number of seconds > 0")
        start = end - dt.timedelta(seconds=int(seconds_text))
    return ContainerSettings(
        capture_index=parse_dataset_format(env.get("dataset_format")),
        dataset_source=_required(env, "dataset_source"),
        output_path=pathlib.Path(_required(env, "output_path")),
        window=TimeWindow(start, end),
        baseline_statistics=_required(env, "baseline_statistics"),
        baseline_constraints=_required(env, "baseline_constraints"),
        publish_metrics=flag == "Enabled",
        put_metric_data=put == "1",
        endpoint_name=env.get("sagemaker_endpoint_name", ""),
        schedule_name=env.get("sagemaker_monitoring_schedule_name", ""),
        metric_namespace=env.get("metric_namespace", contract.METRIC_NAMESPACE),
        opt_ml=pathlib.Path(env.get(OPT_ML_ENV, "/opt/ml")),
    )


def _local_copy(location: str, scratch: pathlib.Path, s3_client: Any = None) -> pathlib.Path:
    """Baseline files may be local paths (Model Monitor downloads them) or S3 URIs (pipeline backend)."""
    if not location.startswith("s3://"):
        return pathlib.Path(location)
    bucket, _, key = location[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"baseline location {location!r} is not an S3 object URI such as s3://bucket/key")
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    target = scratch / pathlib.PurePosixPath(key).name
    s3_client.download_file(bucket, key, str(target))
    return target


def run(settings: ContainerSettings, s3_client: Any = None, cloudwatch_client: Any = None) -> int:
    """Run one analysis; returns the process exit status (0 also when violations were found)."""
    with tempfile.TemporaryDirectory() as scratch:
        stats_path = _local_copy(settings.baseline_statistics, pathlib.Path(scratch), s3_client)
        constraints_path = _local_copy(settings.baseline_constraints, pathlib.Path(scratch), s3_client)
        source = open_source(settings.dataset_source, s3_client=s3_client)
        result = analyze(source, stats_path, constraints_path, settings.window, settings.capture_index)
    write_results(result, settings.output_path)
    (settings.output_path / "report.html").write_text(render_report(result), encoding="utf-8")
    if settings.publish_metrics and result.constraints.config.emit_metrics:
        data = build_metric_data(
            result.profile,
            result.evaluation,
            endpoint_name=settings.endpoint_name,
            schedule_name=settings.schedule_name,
            timestamp=metric_timestamp(settings.window),
        )
        write_metric_lines(settings.opt_ml / METRICS_FILE, data)
        if settings.put_metric_data:
            if cloudwatch_client is None:
                import boto3

                cloudwatch_client = boto3.client("cloudwatch")
            put_metric_data(cloudwatch_client, data, namespace=settings.metric_namespace)
    message_path = settings.opt_ml / MESSAGE_FILE
    message_path.parent.mkdir(parents=True, exist_ok=True)
    message_path.write_text(result.message + "\n", encoding="utf-8")
    print(result.message)
    return 0


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    opt_ml = pathlib.Path(env.get(OPT_ML_ENV, "/opt/ml"))
    try:
        return run(parse_settings(env))
    except ValueError as err:
        # A user-caused problem (settings, baseline files): say what and where, and fail the job.
        failure = opt_ml / FAILURE_FILE
        try:
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(str(err) + "\n", encoding="utf-8")
        except OSError:
            pass
        print(f"monitoring failed: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
