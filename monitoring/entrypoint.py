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

``MLPLATFORM_MODE`` picks the job (default ``data-quality``):

- ``model-quality``: join the window's captures with the ground truth under ``ground_truth_source`` and check
  the model-quality baseline (``baseline_constraints``) and, with ``sensitive_attribute``, the bias baseline
  (``bias_baseline``). With ``MLPLATFORM_LABEL_DELAY_SECONDS`` the window is the hour that ended that long before
  ``end_time``, and labels uploaded from ``end_time``'s hour on are late.
- ``shard``: analyze this instance's share of ``dataset_source`` (a local folder, the instance's
  ShardedByS3Key download) and write ``partial-<host>.json`` to ``output_path``.
- ``merge``: fold the partials under ``dataset_source`` into the one-instance outputs and metrics.
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
from monitoring.capture import CAPTURE_INDEXES, TimeWindow, iter_lines, open_source, parse_time, window_files
from monitoring.job import analyze, merged_result, metric_timestamp, write_results
from monitoring.metrics import build_metric_data, build_quality_metric_data, put_metric_data, write_metric_lines
from monitoring.report import render_report

OPT_ML_ENV = "MLPLATFORM_OPT_ML"
PUT_METRIC_DATA_ENV = "MLPLATFORM_PUT_METRIC_DATA"
WINDOW_SECONDS_ENV = "MLPLATFORM_WINDOW_SECONDS"
MODE_ENV = "MLPLATFORM_MODE"
MODES = ("data-quality", "model-quality", "shard", "merge")
LABEL_DELAY_ENV = "MLPLATFORM_LABEL_DELAY_SECONDS"
RESOURCE_CONFIG = pathlib.PurePosixPath("config/resourceconfig.json")
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
    mode: str = "data-quality"
    ground_truth_source: str = ""
    label_deadline: dt.datetime | None = None
    problem_type: str = "BinaryClassification"
    inference_attribute: str = "0"
    probability_attribute: str | None = "2"
    positive_label: str = "1"
    sensitive_attribute: str | None = None
    bias_baseline: str = ""


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
    mode = env.get(MODE_ENV, "data-quality").strip() or "data-quality"
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV} is {mode!r}; allowed: {', '.join(MODES)}")
    deadline = None
    delay_text = env.get(LABEL_DELAY_ENV, "").strip()
    if mode == "model-quality" and delay_text:
        if not delay_text.isdigit():
            raise ValueError(f"{LABEL_DELAY_ENV} is {delay_text!r}; allowed: a whole number of seconds >= 0")
        if end is None:
            raise ValueError(f"{LABEL_DELAY_ENV} needs end_time (the time the run is for)")
        # Labels uploaded from end_time's hour on are late; the window is the hour before end - delay.
        deadline = end.replace(minute=0, second=0, microsecond=0)
        end = end - dt.timedelta(seconds=int(delay_text))
    seconds_text = env.get(WINDOW_SECONDS_ENV, "").strip()
    if start is None and end is not None and seconds_text:
        if not seconds_text.isdigit() or int(seconds_text) <= 0:
            raise ValueError(f"{WINDOW_SECONDS_ENV} is {seconds_text!r}; allowed: a whole number of seconds > 0")
        start = end - dt.timedelta(seconds=int(seconds_text))
    problem_type = env.get("problem_type", "BinaryClassification")
    if mode == "model-quality":
        from monitoring.quality_metrics import PROBLEM_TYPES

        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type is {problem_type!r}; allowed: {', '.join(PROBLEM_TYPES)}")
    sensitive = env.get("sensitive_attribute", "").strip() or None
    return ContainerSettings(
        mode=mode,
        ground_truth_source=_required(env, "ground_truth_source") if mode == "model-quality" else "",
        label_deadline=deadline,
        problem_type=problem_type,
        inference_attribute=env.get("inference_attribute", "0").strip() or "0",
        probability_attribute=env.get("probability_attribute", "2").strip() or None,
        positive_label=env.get("positive_label", "1").strip() or "1",
        sensitive_attribute=sensitive,
        bias_baseline=_required(env, "bias_baseline") if mode == "model-quality" and sensitive else "",
        capture_index=parse_dataset_format(env.get("dataset_format")),
        dataset_source=_required(env, "dataset_source"),
        output_path=pathlib.Path(_required(env, "output_path")),
        window=TimeWindow(start, end),
        # Model quality reads the data baseline only for the request's feature names (a sensitive feature).
        baseline_statistics=(
            env.get("baseline_statistics", "").strip()
            if mode == "model-quality"
            else _required(env, "baseline_statistics")
        ),
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


def _write_message(settings: ContainerSettings, message: str) -> None:
    message_path = settings.opt_ml / MESSAGE_FILE
    message_path.parent.mkdir(parents=True, exist_ok=True)
    message_path.write_text(message + "\n", encoding="utf-8")
    print(message)


def _publish(settings: ContainerSettings, data: list[dict[str, Any]], namespace: str, cloudwatch_client: Any) -> Any:
    if settings.put_metric_data and data:
        if cloudwatch_client is None:
            import boto3

            cloudwatch_client = boto3.client("cloudwatch")
        put_metric_data(cloudwatch_client, data, namespace=namespace)
    return cloudwatch_client


def run_quality(settings: ContainerSettings, s3_client: Any = None, cloudwatch_client: Any = None) -> int:
    """One model-quality (and bias) run: join, compute, check, write files and metrics."""
    from monitoring.bias import parse_bias_constraints
    from monitoring.job import read_json_file
    from monitoring.quality import (
        QualityBaseline,
        QualityConfig,
        analyze_quality,
        feature_names_of,
        parse_quality_constraints,
        write_quality_results,
    )
    from monitoring.report import render_quality_report

    with tempfile.TemporaryDirectory() as scratch:
        constraints_path = _local_copy(settings.baseline_constraints, pathlib.Path(scratch), s3_client)
        problem_type, constraints = parse_quality_constraints(
            read_json_file(constraints_path, "model-quality constraints"), settings.baseline_constraints
        )
        bias = None
        if settings.sensitive_attribute is not None:
            bias_dir = pathlib.Path(scratch) / "bias"
            bias_dir.mkdir()
            bias_path = _local_copy(settings.bias_baseline, bias_dir, s3_client)
            bias = parse_bias_constraints(read_json_file(bias_path, "bias baseline"), settings.bias_baseline)
        features: tuple[str, ...] = ()
        if settings.baseline_statistics:
            stats_dir = pathlib.Path(scratch) / "data"
            stats_dir.mkdir()
            features = feature_names_of(_local_copy(settings.baseline_statistics, stats_dir, s3_client))
        config = QualityConfig(
            problem_type=settings.problem_type,
            inference_attribute=settings.inference_attribute,
            probability_attribute=settings.probability_attribute,
            positive_label=settings.positive_label,
            sensitive=settings.sensitive_attribute,
            feature_names=features,
        )
        result = analyze_quality(
            open_source(settings.dataset_source, s3_client=s3_client),
            open_source(settings.ground_truth_source, s3_client=s3_client),
            QualityBaseline(problem_type, constraints, bias),
            settings.window,
            config,
            settings.label_deadline,
        )
    write_quality_results(result, settings.output_path)
    (settings.output_path / "report.html").write_text(render_quality_report(result), encoding="utf-8")
    if settings.publish_metrics:
        quality, bias_data = build_quality_metric_data(
            result,
            endpoint_name=settings.endpoint_name,
            schedule_name=settings.schedule_name,
            timestamp=metric_timestamp(settings.window),
        )
        write_metric_lines(settings.opt_ml / METRICS_FILE, quality + bias_data)
        cloudwatch_client = _publish(settings, quality, contract.QUALITY_NAMESPACE, cloudwatch_client)
        _publish(settings, bias_data, contract.BIAS_NAMESPACE, cloudwatch_client)
    _write_message(settings, result.message)
    return 0


def run_shard(settings: ContainerSettings, s3_client: Any = None) -> int:
    """This instance's shard of the window: a mergeable partial named after its host.

    A local ``dataset_source`` is this instance's ShardedByS3Key download: all of it is the shard. An S3
    ``dataset_source`` is dealt out here the way ShardedByS3Key deals objects (every n-th key to instance i), so
    only the window's hour folders are read instead of a download of the whole retained capture prefix."""
    from monitoring.analysis import WindowAnalyzer, evaluate
    from monitoring.job import RunResult, load_baseline
    from monitoring.shards import host_index, partial_document, shard_of, write_partial

    config_path = settings.opt_ml / RESOURCE_CONFIG
    resource = {"current_host": "algo-1", "hosts": ["algo-1"]}
    if config_path.is_file():
        resource = json.loads(config_path.read_text(encoding="utf-8"))
    index, count = host_index(resource)
    host = str(resource["current_host"])
    with tempfile.TemporaryDirectory() as scratch:
        stats_path = _local_copy(settings.baseline_statistics, pathlib.Path(scratch), s3_client)
        constraints_path = _local_copy(settings.baseline_constraints, pathlib.Path(scratch), s3_client)
        baseline, constraints = load_baseline(stats_path, constraints_path)
        source = open_source(settings.dataset_source, s3_client=s3_client)
        files = window_files(source, settings.window)
        if settings.dataset_source.startswith("s3://"):
            files = shard_of(files, index, count)
        analyzer = WindowAnalyzer(baseline, window=settings.window, capture_index=settings.capture_index)
        analyzer.add_lines(iter_lines(source, files))
        profile = analyzer.finish()
    result = RunResult(
        baseline,
        constraints,
        profile,
        analyzer.counts,
        evaluate(baseline, constraints, profile, analyzer.counts),
        settings.window,
        len(files),
        source.description,
    )
    doc = partial_document(result.profile, result.counts, result.files_read, host, settings.window)
    write_partial(settings.output_path / f"partial-{host}.json", doc)
    _write_message(
        settings, f"Completed: shard {index + 1} of {count} ({host}) analyzed {result.counts.rows_analyzed} rows"
    )
    return 0


def run(settings: ContainerSettings, s3_client: Any = None, cloudwatch_client: Any = None) -> int:
    """Run one analysis; returns the process exit status (0 also when violations were found)."""
    if settings.mode == "model-quality":
        return run_quality(settings, s3_client, cloudwatch_client)
    if settings.mode == "shard":
        return run_shard(settings, s3_client)
    with tempfile.TemporaryDirectory() as scratch:
        stats_path = _local_copy(settings.baseline_statistics, pathlib.Path(scratch), s3_client)
        constraints_path = _local_copy(settings.baseline_constraints, pathlib.Path(scratch), s3_client)
        if settings.mode == "merge":
            from monitoring.shards import read_partials

            partials = read_partials(pathlib.Path(settings.dataset_source))
            result = merged_result(partials, stats_path, constraints_path, settings.dataset_source)
        else:
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
