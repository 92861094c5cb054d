"""`DriftMonitor`: hourly drift analysis of an endpoint's captured data, on one of two backends.

Why two: docs/architecture.md, decision 8.

- `model-monitor`: SageMaker Model Monitor, a `DataQualityJobDefinition` run hourly by a `MonitoringSchedule`,
  with AWS's built-in analyzer image. Model Monitor is closed to new customers (AWS "Model Monitor availability
  change"), so this backend only works in accounts that already use it.
- `pipeline`: our own monitor image (`monitoring/`) as the processing step of a SageMaker Pipeline, started
  hourly by EventBridge Scheduler. It reads the same baseline files and publishes the built-in analyzer's
  per-feature metrics into the same namespace with the same dimensions (`monitoring/metrics_contract.py`), plus a
  violation count and the rows analyzed, which the built-in analyzer does not publish.

The drift threshold lives in the baseline's constraints.json (`comparison_threshold`), which both backends read.
- `none`: no monitor; the component creates nothing and its outputs are empty strings.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict, cast

import pulumi
import pulumi_aws as aws

from components.iam import sagemaker_vpc_statements, service_trust_policy
from components.settings import MonitoringSettings, has_local_nvme
from monitoring import metrics_contract as contract

MonitorBackend = Literal["model-monitor", "pipeline", "none"]

# Model Monitor's schedule syntax (cron with `?` in the day-of-month field) for "at minute 0 of every hour".
MODEL_MONITOR_HOURLY = "cron(0 * ? * * *)"
# EventBridge Scheduler's syntax for the same: minute 0 of every hour, UTC.
SCHEDULER_HOURLY = "cron(0 * * * ? *)"
# A run analyzes the hour before the time it was scheduled for.
WINDOW_SECONDS = 3600

# Paths inside the processing container: Model Monitor's contract, which the pipeline backend mirrors.
ENDPOINT_INPUT_PATH = "/opt/ml/processing/input/endpoint"
BASELINE_INPUT_PATH = "/opt/ml/processing/baseline"
OUTPUT_PATH = "/opt/ml/processing/output"
VOLUME_SIZE_GB = 20

# Pipeline parameters the scheduler (or a person backfilling a window) passes at start time.
PARAM_WINDOW_START = "WindowStart"
PARAM_WINDOW_END = "WindowEnd"
PARAM_WINDOW_SECONDS = "WindowSeconds"
PIPELINE_STEP_NAME = "AnalyzeCapturedData"
SHARD_STEP_NAME = "AnalyzeShards"
MERGE_STEP_NAME = "MergeShards"
QUALITY_STEP_NAME = "MeasureModelQualityAndBias"
PARTIALS_INPUT_PATH = "/opt/ml/processing/input/partials"
# Read by our monitor image (monitoring/entrypoint.py) in model-quality mode.
LABEL_DELAY_ENV = "MLPLATFORM_LABEL_DELAY_SECONDS"
GROUND_TRUTH_PREFIX = "ground-truth"
"""Key prefix in the capture bucket under which users upload ground truth, per endpoint."""
# The universal target that calls StartPipelineExecution with a request we write, so the scheduler's context
# attribute `<aws.scheduler.scheduled-time>` can fill a pipeline parameter (EventBridge Scheduler guide,
# "Adding context attributes"); the templated SageMaker target only takes fixed parameter values.
START_PIPELINE_TARGET = "arn:{partition}:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"

PROCESSING_METRICS_NAMESPACE = "/aws/sagemaker/ProcessingJobs"
"""CloudWatch namespace of SageMaker processing instance metrics (Monitor SageMaker with CloudWatch)."""

# Environment switch of our monitor image: call PutMetricData itself (nobody reads the metrics file outside
# Model Monitor). Defined in monitoring/entrypoint.py.
PUT_METRIC_DATA_ENV = "MLPLATFORM_PUT_METRIC_DATA"
# Read by our monitor image (monitoring/entrypoint.py): with `start_time` empty, the window is the N seconds
# before `end_time`, so the scheduler only has to pass its scheduled time.
WINDOW_SECONDS_ENV = "MLPLATFORM_WINDOW_SECONDS"
# Model Monitor's capture selector, which our image parses the same way.
DATASET_FORMAT = json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput"]}})

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ECR_IMAGE = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+)@sha256:[0-9a-f]{64}$"
)


class DriftMonitorArgs(TypedDict):
    settings: MonitoringSettings
    """Backend, instance type, maximum runtime and drift threshold (`mlplatform:monitor*`)."""
    endpoint_name: str
    """Name of the monitored endpoint (stable, so schedule and metric dimensions can be named from it)."""
    region: str
    """AWS region of the stack (ARNs of logs and processing jobs)."""
    capture_s3_uri: pulumi.Input[str]
    """The endpoint's data-capture destination, `s3://capture-bucket/capture/` (files land under
    `{endpoint}/{variant}/yyyy/mm/dd/hh/` below it)."""
    baseline_statistics_uri: pulumi.Input[str]
    """S3 URI of the baseline `statistics.json` of the deployed model version."""
    baseline_constraints_uri: pulumi.Input[str]
    """S3 URI of the baseline `constraints.json` of the deployed model version."""
    reports_bucket: pulumi.Input[str]
    """Bucket (the model bucket) that receives each run's statistics, violations and report."""
    kms_key_arn: pulumi.Input[str]
    """Project KMS key: encrypts reports and volumes; the buckets' SSE-KMS key."""
    monitor_image: NotRequired[pulumi.Input[str]]
    """Our monitor image by digest (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...`); required by the
    `pipeline` backend."""
    reports_prefix: NotRequired[str]
    """Key prefix of the reports in the bucket; default `monitoring/{endpoint_name}/`."""
    subnet_ids: NotRequired[Sequence[str]]
    """VPC subnets for the monitoring jobs (optional; security groups required with them)."""
    security_group_ids: NotRequired[Sequence[str]]
    """VPC security groups for the monitoring jobs."""
    source_kms_key_arns: NotRequired[Sequence[pulumi.Input[str]]]
    """Keys of a promoting stack whose model bucket holds the baseline (prod reads dev's): decrypt only."""
    ground_truth_s3_uri: NotRequired[pulumi.Input[str]]
    """Where labels are uploaded (`s3://bucket/prefix/`, hour folders below); default
    `s3://<capture bucket>/ground-truth/<endpoint>/`."""
    depends_on: NotRequired[Sequence[pulumi.Resource]]
    """Resources the schedules must wait for: the endpoint (CreateMonitoringSchedule checks that it exists
    and captures data; a pipeline run before it exists only fails)."""


def parse_s3_uri(uri: str, what: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); the message names `what` when the URI is malformed."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", uri)
    if not match:
        raise ValueError(f"{what}: {uri!r} is not an S3 URI such as s3://bucket/prefix")
    return match.group(1), match.group(2) or ""


def ecr_repository_arn(image: str, partition: str = "aws") -> str:
    """ARN of the ECR repository an image-by-digest reference lives in (to scope the ECR pull permission)."""
    match = _ECR_IMAGE.match(image)
    if not match:
        raise ValueError(
            f"monitor image {image!r}: the pipeline backend runs images from a private ECR repository, by "
            "digest: ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@sha256:<64 hex>"
        )
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repository']}"


def validate_monitor_args(args: DriftMonitorArgs) -> None:
    """Checks that need no cloud; each message names the setting or argument and what is allowed."""
    settings = args["settings"]
    if settings.backend == "none":
        return
    endpoint = args["endpoint_name"]
    name = schedule_name_for(endpoint)
    if not _NAME.match(name):
        raise ValueError(
            f"endpoint name {endpoint!r} gives the monitoring schedule name {name!r}, which SageMaker refuses: "
            "at most 63 letters, digits and hyphens, starting with a letter or digit"
        )
    if settings.max_runtime_seconds > WINDOW_SECONDS:
        raise ValueError(
            f"mlplatform:monitorMaxRuntimeSeconds ({settings.max_runtime_seconds}) must be at most "
            f"{WINDOW_SECONDS} for an hourly monitor (a run may not outlast its hour)"
        )
    if bool(args.get("subnet_ids")) != bool(args.get("security_group_ids")):
        raise ValueError("monitoring VPC: give both subnet ids and security group ids, or neither")
    if settings.backend == "pipeline" and args.get("monitor_image") is None:
        raise ValueError(
            "mlplatform:monitorBackend 'pipeline' needs the monitor image (build images or set "
            "mlplatform:imagesMonitoring)"
        )


def schedule_name_for(endpoint_name: str) -> str:
    """Name of the hourly schedule (and pipeline): the `ScheduleName` dimension of the drift metrics."""
    return f"{endpoint_name}-drift"


def quality_schedule_name_for(endpoint_name: str) -> str:
    """Name of the model-quality schedule (and pipeline): the `MonitoringSchedule` dimension of its metrics."""
    return f"{endpoint_name}-model-quality"


def bias_schedule_name_for(endpoint_name: str) -> str:
    """Name of the `model-monitor` backend's bias-drift schedule (the pipeline measures bias in the quality run)."""
    return f"{endpoint_name}-model-bias"


def default_ground_truth_uri(capture_s3_uri: str, endpoint_name: str) -> str:
    """`s3://<capture bucket>/ground-truth/<endpoint>/`: labels sit beside the capture, under its retention."""
    bucket, _ = parse_s3_uri(capture_s3_uri, "capture location")
    return f"s3://{bucket}/{GROUND_TRUTH_PREFIX}/{endpoint_name}/"


def sibling_uri(constraints_uri: str, folder: str) -> str:
    """`.../baseline/constraints.json` -> `.../baseline/<folder>/constraints.json` (the evaluation's baselines)."""
    return f"{posixpath.dirname(constraints_uri)}/{folder}/constraints.json"


def offset(hours: int) -> str:
    """An ISO-8601 duration before the scheduled time, Model Monitor's StartTimeOffset/EndTimeOffset: -PT25H."""
    return f"-PT{hours}H"


def default_reports_prefix(endpoint_name: str) -> str:
    return f"monitoring/{endpoint_name}/"


# --- the pipeline backend's definition -------------------------------------------------------------------


def pipeline_definition(
    *,
    image: str,
    job_role_arn: str,
    instance_type: str,
    max_runtime_seconds: int,
    kms_key_arn: str,
    endpoint_name: str,
    schedule_name: str,
    capture_s3_uri: str,
    baseline_statistics_uri: str,
    baseline_constraints_uri: str,
    reports_s3_uri: str,
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
    instance_count: int = 1,
) -> dict[str, Any]:
    """The SageMaker Pipeline definition (schema version 2020-12-01) of one monitoring run.

    With ``instance_count`` above 1 the run has two steps: `AnalyzeShards` runs that many instances, each
    analyzing every n-th capture file of the window by key (ShardedByS3Key's dealing, done by the container
    over the window's hour folders) into a mergeable partial; `MergeShards` downloads the partials and writes
    the same statistics, violations, report and metrics one instance would.

    Written by hand rather than with the `sagemaker` SDK's `Pipeline(...).definition()`. The SDK (3.27.0)
    does build this definition offline, and its output for the same step equals this one apart from its
    defaults (`PipelineExperimentConfig`, which would need experiment permissions, and `MlflowConfig: null`);
    but it installs about 1 GB, takes 7 to 14 s to import, and creates a boto3 client at import time, which
    fails without a region in the environment: too much for one JSON document in every `pulumi preview`.
    The step's `Arguments` are a CreateProcessingJob request (without the job name, which Pipelines assigns);
    the tests validate them against botocore's model of that API, offline.

    The capture is read straight from S3 by the container (`dataset_source` is an S3 URI): a ProcessingInput
    of the endpoint's capture prefix would copy every captured hour kept by the retention period onto the
    volume each hour, while the container lists only the window's `yyyy/mm/dd/hh` folders.
    """
    capture_bucket, capture_prefix = parse_s3_uri(capture_s3_uri, "capture location")
    endpoint_capture = f"s3://{capture_bucket}/{_join_key(capture_prefix, endpoint_name)}/"
    stats_name = posixpath.basename(parse_s3_uri(baseline_statistics_uri, "baseline statistics")[1])
    constraints_name = posixpath.basename(parse_s3_uri(baseline_constraints_uri, "baseline constraints")[1])
    if not stats_name or not constraints_name:
        raise ValueError("baseline statistics and constraints URIs must name objects, not prefixes")

    cluster: dict[str, Any] = {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": VOLUME_SIZE_GB}
    if not has_local_nvme(instance_type):
        # SageMaker refuses a volume key for instance types with local NVMe storage (docs/architecture.md, decision 4).
        cluster["VolumeKmsKeyId"] = kms_key_arn

    arguments: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": cluster},
        "AppSpecification": {"ImageUri": image},
        "RoleArn": job_role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "ProcessingInputs": [
            _baseline_input("baseline-statistics", baseline_statistics_uri, "statistics"),
            _baseline_input("baseline-constraints", baseline_constraints_uri, "constraints"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "AppManaged": False,
                    "S3Output": {
                        # One folder per run, so a rerun of a window never overwrites another run's files.
                        "S3Uri": {
                            "Std:Join": {
                                "On": "/",
                                "Values": [reports_s3_uri.rstrip("/"), {"Get": "Execution.PipelineExecutionId"}],
                            }
                        },
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": kms_key_arn,
        },
        "Environment": {
            "dataset_format": DATASET_FORMAT,
            "dataset_source": endpoint_capture,
            "output_path": OUTPUT_PATH,
            "baseline_statistics": f"{BASELINE_INPUT_PATH}/statistics/{stats_name}",
            "baseline_constraints": f"{BASELINE_INPUT_PATH}/constraints/{constraints_name}",
            "start_time": {"Get": f"Parameters.{PARAM_WINDOW_START}"},
            "end_time": {"Get": f"Parameters.{PARAM_WINDOW_END}"},
            WINDOW_SECONDS_ENV: {"Get": f"Parameters.{PARAM_WINDOW_SECONDS}"},
            "publish_cloudwatch_metrics": "Enabled",
            PUT_METRIC_DATA_ENV: "1",
            "metric_namespace": contract.METRIC_NAMESPACE,
            "sagemaker_endpoint_name": endpoint_name,
            "sagemaker_monitoring_schedule_name": schedule_name,
        },
        "NetworkConfig": _network_config(subnet_ids, security_group_ids, isolate=False),
    }
    steps: list[dict[str, Any]] = [{"Name": PIPELINE_STEP_NAME, "Type": "Processing", "Arguments": arguments}]
    if instance_count > 1:
        steps = _sharded_steps(arguments, instance_count, reports_s3_uri)
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {
                "Name": PARAM_WINDOW_START,
                "Type": "String",
                # Empty: the window is the WindowSeconds before WindowEnd (the hourly case).
                "DefaultValue": "",
            },
            {
                "Name": PARAM_WINDOW_END,
                "Type": "String",
                # The scheduler always passes its scheduled time; a manual start must name the window end.
                "DefaultValue": "",
            },
            {"Name": PARAM_WINDOW_SECONDS, "Type": "String", "DefaultValue": str(WINDOW_SECONDS)},
        ],
        "Steps": steps,
    }


def _execution_uri(base: str, *rest: str) -> dict[str, Any]:
    """`base/<execution id>/rest...` as a pipeline expression: one folder per run."""
    return {"Std:Join": {"On": "/", "Values": [base.rstrip("/"), {"Get": "Execution.PipelineExecutionId"}, *rest]}}


def _sharded_steps(arguments: dict[str, Any], instance_count: int, reports_s3_uri: str) -> list[dict[str, Any]]:
    partials_uri = _execution_uri(reports_s3_uri, "partials")
    shard = json.loads(json.dumps(arguments))
    shard["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = instance_count
    shard["Environment"]["MLPLATFORM_MODE"] = "shard"
    shard["Environment"]["publish_cloudwatch_metrics"] = "Disabled"
    shard["Environment"].pop(PUT_METRIC_DATA_ENV, None)
    shard["ProcessingOutputConfig"]["Outputs"] = [
        {
            "OutputName": "partials",
            "AppManaged": False,
            # Every instance uploads its partial-<host>.json under the same prefix.
            "S3Output": {"S3Uri": partials_uri, "LocalPath": OUTPUT_PATH, "S3UploadMode": "EndOfJob"},
        }
    ]
    merge = json.loads(json.dumps(arguments))
    merge["Environment"]["MLPLATFORM_MODE"] = "merge"
    merge["Environment"]["dataset_source"] = PARTIALS_INPUT_PATH
    merge["ProcessingInputs"].append(
        {
            "InputName": "partials",
            "AppManaged": False,
            "S3Input": {
                "S3Uri": partials_uri,
                "LocalPath": PARTIALS_INPUT_PATH,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None",
            },
        }
    )
    return [
        {"Name": SHARD_STEP_NAME, "Type": "Processing", "Arguments": shard},
        {"Name": MERGE_STEP_NAME, "Type": "Processing", "Arguments": merge, "DependsOn": [SHARD_STEP_NAME]},
    ]


def quality_pipeline_definition(
    *,
    image: str,
    job_role_arn: str,
    settings: MonitoringSettings,
    kms_key_arn: str,
    endpoint_name: str,
    schedule_name: str,
    capture_s3_uri: str,
    ground_truth_s3_uri: str,
    baseline_statistics_uri: str,
    quality_constraints_uri: str,
    bias_constraints_uri: str | None,
    reports_s3_uri: str,
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The model-quality (and bias) pipeline: one processing step of our image in `model-quality` mode.

    The scheduler passes its scheduled time T as the window end; the container judges the hour that ended
    `label_delay_hours` before T, with the labels uploaded before T's hour (later ones are counted as late).
    """
    capture_bucket, capture_prefix = parse_s3_uri(capture_s3_uri, "capture location")
    parse_s3_uri(ground_truth_s3_uri, "ground-truth location")
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": settings.instance_type,
        "VolumeSizeInGB": VOLUME_SIZE_GB,
    }
    if not has_local_nvme(settings.instance_type):
        # SageMaker refuses a volume key (VolumeKmsKeyId) for instance types with local NVMe storage.
        cluster["VolumeKmsKeyId"] = kms_key_arn
    inputs = [
        _baseline_input("baseline-statistics", baseline_statistics_uri, "statistics"),
        _baseline_input("quality-constraints", quality_constraints_uri, "quality"),
    ]
    environment: dict[str, Any] = {
        "MLPLATFORM_MODE": "model-quality",
        "dataset_format": DATASET_FORMAT,
        "dataset_source": f"s3://{capture_bucket}/{_join_key(capture_prefix, endpoint_name)}/",
        "ground_truth_source": ground_truth_s3_uri,
        "output_path": OUTPUT_PATH,
        "baseline_statistics": f"{BASELINE_INPUT_PATH}/statistics/{posixpath.basename(baseline_statistics_uri)}",
        "baseline_constraints": f"{BASELINE_INPUT_PATH}/quality/{posixpath.basename(quality_constraints_uri)}",
        "problem_type": settings.problem_type,
        "inference_attribute": settings.inference_attribute,
        "probability_attribute": settings.probability_attribute,
        "positive_label": settings.positive_label,
        "end_time": {"Get": f"Parameters.{PARAM_WINDOW_END}"},
        WINDOW_SECONDS_ENV: str(WINDOW_SECONDS),
        LABEL_DELAY_ENV: str(settings.label_delay_hours * 3600),
        "publish_cloudwatch_metrics": "Enabled",
        PUT_METRIC_DATA_ENV: "1",
        "sagemaker_endpoint_name": endpoint_name,
        "sagemaker_monitoring_schedule_name": schedule_name,
    }
    if settings.sensitive_attribute is not None and bias_constraints_uri is not None:
        inputs.append(_baseline_input("bias-constraints", bias_constraints_uri, "bias"))
        environment["sensitive_attribute"] = settings.sensitive_attribute
        environment["bias_baseline"] = f"{BASELINE_INPUT_PATH}/bias/{posixpath.basename(bias_constraints_uri)}"
    arguments: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": cluster},
        "AppSpecification": {"ImageUri": image},
        "RoleArn": job_role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": _execution_uri(reports_s3_uri),
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": kms_key_arn,
        },
        "Environment": environment,
        "NetworkConfig": _network_config(subnet_ids, security_group_ids, isolate=False),
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            # The scheduler always passes its scheduled time; a manual start must name it.
            {"Name": PARAM_WINDOW_END, "Type": "String", "DefaultValue": ""},
        ],
        "Steps": [{"Name": QUALITY_STEP_NAME, "Type": "Processing", "Arguments": arguments}],
    }


def clarify_analysis_config(settings: MonitoringSettings) -> dict[str, Any]:
    """SageMaker Clarify's analysis configuration for the `model-monitor` backend's bias job: the facet by its
    CSV column, the positive label, post-training metrics DPPL, RD and AD (developer guide,
    clarify-processing-job-configure-analysis)."""
    if settings.sensitive_feature_index is None:
        raise ValueError("mlplatform:monitorSensitiveFeatureIndex is required for Clarify's bias job")
    return {
        "version": "1.0",
        "label": "label",
        "label_values_or_threshold": [settings.positive_label],
        "facet": [{"name_or_index": settings.sensitive_feature_index}],
        "methods": {"post_training_bias": {"methods": ["DPPL", "RD", "AD"]}},
        "probability_threshold": 0.5,
    }


def _baseline_input(name: str, uri: str, folder: str) -> dict[str, Any]:
    # S3Prefix on the object's full key downloads exactly that object (tiny: File mode is right here).
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{BASELINE_INPUT_PATH}/{folder}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def _network_config(subnet_ids: Sequence[str], security_group_ids: Sequence[str], *, isolate: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"EnableNetworkIsolation": isolate, "EnableInterContainerTrafficEncryption": True}
    if subnet_ids:
        config["VpcConfig"] = {"Subnets": list(subnet_ids), "SecurityGroupIds": list(security_group_ids)}
    return config


def _join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def start_pipeline_request(pipeline_name: str, what: str = "drift") -> dict[str, Any]:
    """The StartPipelineExecution request the scheduler sends each hour (its universal target's input).

    `<aws.scheduler.scheduled-time>` is the hour the run is for (flexible window off, so it is exactly minute
    0), and becomes the window end; the same token for retries of one scheduled time makes them idempotent
    (ClientRequestToken needs 32 to 128 characters).
    """
    return {
        "PipelineName": pipeline_name,
        "PipelineExecutionDescription": f"hourly {what} analysis for {SCHEDULED_TIME}",
        "PipelineParameters": [{"Name": PARAM_WINDOW_END, "Value": SCHEDULED_TIME}],
        "ClientRequestToken": f"hourly-{what}-run-{SCHEDULED_TIME}",
    }


# --- IAM ---------------------------------------------------------------------------------------------------


def monitoring_job_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    capture_s3_uri: str,
    endpoint_name: str,
    baseline_uris: Sequence[str],
    reports_bucket: str,
    reports_prefix: str,
    kms_key_arn: str,
    image_repository_arn: str | None,
    source_kms_key_arns: Sequence[str] = (),
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
    ground_truth_s3_uri: str | None = None,
    read_reports: bool = False,
) -> str:
    """What one monitoring run may do: read the endpoint's capture and the baseline, write reports, use the
    key, log, pull the monitor image, publish metrics into our namespace. Nothing else."""
    capture_bucket, capture_prefix = parse_s3_uri(capture_s3_uri, "capture location")
    endpoint_prefix = _join_key(capture_prefix, endpoint_name) + "/"
    baseline_arns = sorted(
        {f"arn:{partition}:s3:::{b}/{k}" for b, k in (parse_s3_uri(u, "baseline") for u in baseline_uris)}
    )
    log_group = f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/sagemaker/ProcessingJobs"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListCapturedHours",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{capture_bucket}",
            "Condition": {"StringLike": {"s3:prefix": [endpoint_prefix, f"{endpoint_prefix}*"]}},
        },
        {
            "Sid": "ReadCapturedData",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{capture_bucket}/{endpoint_prefix}*",
        },
        {"Sid": "ReadBaseline", "Effect": "Allow", "Action": "s3:GetObject", "Resource": baseline_arns},
        {
            "Sid": "WriteReports",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:{partition}:s3:::{reports_bucket}/{reports_prefix}*",
        },
        {
            # kms:Encrypt: the job's output (reports, statistics, violations) is encrypted with the project key
            # (CreateProcessingJob API: Execution Role Permissions lists it with an output KmsKeyId).
            "Sid": "UseProjectKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": kms_key_arn,
        },
        {
            # SageMaker encrypts the job's volume with a grant on the key, made with the job's credentials.
            "Sid": "GrantKeyToVolume",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": kms_key_arn,
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [log_group, f"{log_group}:log-stream:*"],
        },
        {
            # PutMetricData has no resource-level permissions: AWS requires Resource "*". The namespace
            # condition keeps the role to the drift metrics' namespace.
            "Sid": "PublishDriftMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": contract.METRIC_NAMESPACE}},
        },
        {
            # The processing instance's CPU, memory and disk metrics, published with the job's role
            # (CreateProcessingJob API: Execution Role Permissions, cloudwatch:PutMetricData).
            "Sid": "PublishProcessingInstanceMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": PROCESSING_METRICS_NAMESPACE}},
        },
    ]
    if ground_truth_s3_uri is not None:
        gt_bucket, gt_prefix = parse_s3_uri(ground_truth_s3_uri, "ground-truth location")
        gt_prefix = _join_key(gt_prefix) + "/"
        statements += [
            {
                "Sid": "ListGroundTruth",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{gt_bucket}",
                "Condition": {"StringLike": {"s3:prefix": [gt_prefix, f"{gt_prefix}*"]}},
            },
            {
                "Sid": "ReadGroundTruth",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{gt_bucket}/{gt_prefix}*",
            },
            {
                # Resource "*" as above (no resource-level permissions); only the quality and bias namespaces.
                "Sid": "PublishQualityMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"cloudwatch:namespace": [contract.QUALITY_NAMESPACE, contract.BIAS_NAMESPACE]}
                },
            },
        ]
    if read_reports:
        # The merge step downloads the shards' partials, written under the reports prefix.
        statements += [
            {
                "Sid": "ListShardPartials",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{reports_bucket}",
                "Condition": {"StringLike": {"s3:prefix": [reports_prefix, f"{reports_prefix}*"]}},
            },
            {
                "Sid": "ReadShardPartials",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{reports_bucket}/{reports_prefix}*",
            },
        ]
    if source_kms_key_arns:
        statements.append(
            {
                # The baseline of a promoted model sits in the promoting stack's bucket, under its key.
                "Sid": "DecryptPromotedBaseline",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": sorted(set(source_kms_key_arns)),
            }
        )
    if image_repository_arn is not None:
        statements += [
            {
                "Sid": "PullMonitorImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                "Resource": image_repository_arn,
            },
            {
                # GetAuthorizationToken is account-wide: AWS requires Resource "*".
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ]
    if subnet_ids:
        statements += sagemaker_vpc_statements(partition, region, account_id, subnet_ids, security_group_ids)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def pipeline_orchestration_policy(
    *, partition: str, region: str, account_id: str, job_role_arn: str, kms_key_arn: str
) -> str:
    """What SageMaker Pipelines does for the run: start, watch and stop the processing job, pass it its role."""
    jobs = f"arn:{partition}:sagemaker:{region}:{account_id}:processing-job/pipelines-*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RunProcessingStep",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": jobs,
                },
                {
                    "Sid": "PassJobRole",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": job_role_arn,
                    "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                },
                {
                    # CreateProcessingJob with a volume and output key checks that the caller may use the key.
                    "Sid": "DescribeProjectKey",
                    "Effect": "Allow",
                    "Action": "kms:DescribeKey",
                    "Resource": kms_key_arn,
                },
                {
                    "Sid": "GrantKeyToJob",
                    "Effect": "Allow",
                    "Action": "kms:CreateGrant",
                    "Resource": kms_key_arn,
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        }
    )


def scheduler_policy(pipeline_arn: str | Sequence[str]) -> str:
    arns = [pipeline_arn] if isinstance(pipeline_arn, str) else sorted(pipeline_arn)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StartMonitorPipeline",
                    "Effect": "Allow",
                    "Action": "sagemaker:StartPipelineExecution",
                    "Resource": arns[0] if len(arns) == 1 else arns,
                }
            ],
        }
    )


# --- the component -----------------------------------------------------------------------------------------


class DriftMonitor(pulumi.ComponentResource):
    """Hourly drift monitoring of one endpoint's captured data, on the backend the stack chose.

    Example::

        monitor = DriftMonitor("mlplatform-dev-monitor", {
            "settings": settings.monitoring, "endpoint_name": "mlplatform-dev", "region": "us-east-1",
            "capture_s3_uri": capture_uri, "baseline_statistics_uri": stats_uri,
            "baseline_constraints_uri": constraints_uri, "reports_bucket": store.model_bucket,
            "kms_key_arn": store.kms_key_arn, "monitor_image": images.monitoring})
    """

    backend: MonitorBackend
    """Which backend runs (`model-monitor`, `pipeline` or `none`)."""
    schedule_name: pulumi.Output[str]
    """Name of the hourly schedule; the `ScheduleName` dimension of the drift metrics. Empty for `none`."""
    pipeline_name: pulumi.Output[str]
    """Name of the SageMaker Pipeline (`pipeline` backend), else empty: the `PipelineName` of its metrics."""
    reports_uri: pulumi.Output[str]
    """S3 prefix receiving each run's statistics.json, constraint_violations.json and report. Empty for `none`."""
    role_arn: pulumi.Output[str]
    """Role the monitoring runs use. Empty for `none`."""
    metric_namespace: str
    """CloudWatch namespace of the drift metrics (from monitoring/metrics_contract.py)."""
    quality_schedule_name: pulumi.Output[str]
    """Name of the model-quality schedule (and pipeline); empty when quality is off."""
    bias_schedule_name: pulumi.Output[str]
    """Name of the schedule whose runs measure bias drift (the quality schedule on `pipeline`); empty when off."""
    ground_truth_uri: pulumi.Output[str]
    """Where labels go (`s3://.../ground-truth/<endpoint>/`, hour folders below); empty when quality is off."""

    def __init__(self, name: str, args: DriftMonitorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:monitoring:DriftMonitor", name, None, opts)
        validate_monitor_args(args)
        settings = args["settings"]
        self.backend = settings.backend
        self.metric_namespace = contract.METRIC_NAMESPACE
        empty = pulumi.Output.from_input("")
        self.schedule_name = empty
        self.pipeline_name = empty
        self.reports_uri = empty
        self.role_arn = empty
        self.quality_schedule_name = empty
        self.bias_schedule_name = empty
        self.ground_truth_uri = empty

        if settings.backend != "none":
            endpoint = args["endpoint_name"]
            prefix = args.get("reports_prefix") or default_reports_prefix(endpoint)
            if not prefix.endswith("/") or prefix.startswith("/"):
                raise ValueError(f"reports prefix {prefix!r} must be a key prefix like 'monitoring/endpoint/'")
            self._prefix = prefix
            self.reports_uri = pulumi.Output.concat("s3://", args["reports_bucket"], "/", prefix)
            invoke = pulumi.InvokeOutputOptions(parent=self)
            self._account_id = aws.get_caller_identity_output(opts=invoke).account_id
            self._partition = aws.get_partition_output(opts=invoke).partition
            if settings.quality:
                self.ground_truth_uri = pulumi.Output.from_input(
                    args.get("ground_truth_s3_uri")
                    or pulumi.Output.from_input(args["capture_s3_uri"]).apply(
                        lambda uri: default_ground_truth_uri(uri, endpoint)
                    )
                )
            if settings.backend == "model-monitor":
                self._model_monitor(name, args)
            else:
                self._pipeline(name, args)

        self.register_outputs(
            {
                "schedule_name": self.schedule_name,
                "pipeline_name": self.pipeline_name,
                "reports_uri": self.reports_uri,
                "role_arn": self.role_arn,
                "quality_schedule_name": self.quality_schedule_name,
                "bias_schedule_name": self.bias_schedule_name,
                "ground_truth_uri": self.ground_truth_uri,
            }
        )

    def _job_role(self, name: str, args: DriftMonitorArgs, image_repository: pulumi.Input[str] | None) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-job-role",
            description=f"{name}: one drift-monitoring run of endpoint {args['endpoint_name']}",
            assume_role_policy=self._account_id.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = pulumi.Output.all(
            self._partition,
            self._account_id,
            args["capture_s3_uri"],
            args["baseline_statistics_uri"],
            args["baseline_constraints_uri"],
            args["reports_bucket"],
            args["kms_key_arn"],
            image_repository,
            pulumi.Output.all(*args.get("source_kms_key_arns", [])),
            self.ground_truth_uri,
        ).apply(
            lambda v: monitoring_job_policy(
                partition=v[0],
                region=args["region"],
                account_id=v[1],
                capture_s3_uri=v[2],
                endpoint_name=args["endpoint_name"],
                baseline_uris=[v[3], v[4]],
                reports_bucket=v[5],
                reports_prefix=self._prefix,
                kms_key_arn=v[6],
                image_repository_arn=v[7],
                source_kms_key_arns=v[8],
                subnet_ids=list(args.get("subnet_ids", [])),
                security_group_ids=list(args.get("security_group_ids", [])),
                ground_truth_s3_uri=v[9] or None,
                # The merge step reads the shards' partials; Clarify's bias job reads its analysis config, both
                # under the reports prefix.
                read_reports=args["settings"].instance_count > 1
                or (args["settings"].backend == "model-monitor" and args["settings"].sensitive_attribute is not None),
            )
        )
        aws.iam.RolePolicy(f"{name}-job-policy", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=self))
        self.role_arn = role.arn
        return role

    def _model_monitor(self, name: str, args: DriftMonitorArgs) -> None:
        settings = args["settings"]
        endpoint = args["endpoint_name"]
        role = self._job_role(name, args, None)
        # AWS documents the analyzer's URI without a tag (that is, `latest`; "Amazon SageMaker Model Monitor
        # prebuilt container" registry paths). The data source appends ":<image_tag>" with a default of "1"
        # (terraform-provider-aws prebuilt_ecr_image_data_source.go), a tag the analyzer repository has no image
        # under, so the tag is given.
        analyzer = aws.sagemaker.get_prebuilt_ecr_image_output(
            repository_name="sagemaker-model-monitor-analyzer",
            image_tag="latest",
            region=args["region"],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        cluster: aws.sagemaker.DataQualityJobDefinitionJobResourcesClusterConfigArgsDict = {
            "instance_count": 1,
            "instance_type": settings.instance_type,
            "volume_size_in_gb": VOLUME_SIZE_GB,
        }
        if not has_local_nvme(settings.instance_type):
            # SageMaker refuses a volume key for instance types with local NVMe storage
            # (docs/architecture.md, decision 4).
            cluster["volume_kms_key_id"] = args["kms_key_arn"]
        network: aws.sagemaker.DataQualityJobDefinitionNetworkConfigArgsDict = {
            # The built-in analyzer only reads the files Model Monitor copies in and writes files it copies
            # out, so it runs without network access.
            "enable_network_isolation": True,
            "enable_inter_container_traffic_encryption": True,
        }
        if args.get("subnet_ids"):
            network["vpc_config"] = {
                "subnets": list(args.get("subnet_ids", [])),
                "security_group_ids": list(args.get("security_group_ids", [])),
            }
        # Auto-named: every field forces a new definition; the schedule then points at the new one in place.
        job = aws.sagemaker.DataQualityJobDefinition(
            f"{name}-data-quality",
            data_quality_app_specification={
                "image_uri": analyzer.registry_path,
                "environment": {"publish_cloudwatch_metrics": "Enabled"},
            },
            data_quality_baseline_config={
                "constraints_resource": {"s3_uri": args["baseline_constraints_uri"]},
                "statistics_resource": {"s3_uri": args["baseline_statistics_uri"]},
            },
            data_quality_job_input={
                "endpoint_input": {
                    "endpoint_name": endpoint,
                    "local_path": ENDPOINT_INPUT_PATH,
                    "s3_input_mode": "File",
                    "s3_data_distribution_type": "FullyReplicated",
                }
            },
            data_quality_job_output_config={
                "monitoring_outputs": {
                    "s3_output": {
                        "s3_uri": self.reports_uri,
                        "local_path": OUTPUT_PATH,
                        "s3_upload_mode": "EndOfJob",
                    }
                },
                "kms_key_id": args["kms_key_arn"],
            },
            job_resources={"cluster_config": cluster},
            network_config=network,
            role_arn=role.arn,
            stopping_condition={"max_runtime_in_seconds": settings.max_runtime_seconds},
            # CreateDataQualityJobDefinition checks that the endpoint exists (its name here is a plain string,
            # so nothing else orders the two): on a first deploy it must come after the endpoint.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.get("depends_on", []))),
        )
        schedule = aws.sagemaker.MonitoringSchedule(
            f"{name}-schedule",
            name=schedule_name_for(endpoint),
            monitoring_schedule_config={
                "monitoring_type": "DataQuality",
                "monitoring_job_definition_name": job.name,
                "schedule_config": {"schedule_expression": MODEL_MONITOR_HOURLY},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.get("depends_on", []))),
        )
        self.schedule_name = schedule.name
        if settings.quality:
            self._model_monitor_quality(name, args, role, analyzer.registry_path, cluster, network)

    def _model_monitor_quality(
        self,
        name: str,
        args: DriftMonitorArgs,
        role: aws.iam.Role,
        analyzer_image: pulumi.Input[str],
        cluster: Mapping[str, Any],
        network: Mapping[str, Any],
    ) -> None:
        """Model Monitor's ModelQualityJobDefinition (built-in analyzer) and, with a sensitive attribute, a
        ModelBiasJobDefinition (SageMaker Clarify), each run hourly by a MonitoringSchedule.

        pulumi-aws has no resource for these job definitions (only DataQualityJobDefinition), so they come from
        pulumi-aws-native (AWS::SageMaker::ModelQualityJobDefinition / ModelBiasJobDefinition through Cloud
        Control), with an aws-native provider for the stack's region; the schedules stay pulumi-aws resources.
        Each run judges the hour that ended `label_delay_hours` ago (Start/EndTimeOffset), so its labels had
        that long to arrive."""
        import pulumi_aws_native as aws_native

        settings = args["settings"]
        endpoint = args["endpoint_name"]
        child = pulumi.ResourceOptions(parent=self)
        native = aws_native.Provider(f"{name}-aws-native", region=args["region"], opts=child)
        # The job definitions check that the endpoint exists, like DataQualityJobDefinition: order them after it.
        native_opts = pulumi.ResourceOptions(parent=self, provider=native, depends_on=list(args.get("depends_on", [])))
        constraints_uri = pulumi.Output.from_input(args["baseline_constraints_uri"])
        endpoint_input: Any = {
            "endpoint_name": endpoint,
            "local_path": ENDPOINT_INPUT_PATH,
            "inference_attribute": settings.inference_attribute,
            "s3_input_mode": "File",
            "s3_data_distribution_type": "FullyReplicated",
            "start_time_offset": offset(settings.label_delay_hours + 1),
            "end_time_offset": offset(settings.label_delay_hours),
        }
        if settings.problem_type == "BinaryClassification" and settings.probability_attribute:
            endpoint_input["probability_attribute"] = settings.probability_attribute
            endpoint_input["probability_threshold_attribute"] = 0.5
        # pulumi-aws-native's generated input types are TypedDicts per resource; these plain dicts carry the same
        # keys (checked by the tests against botocore's models of the Create*JobDefinition requests).
        native_cluster: Any = {k: v for k, v in cluster.items()}
        native_network: Any = dict(network)
        output_config: Any = {
            "monitoring_outputs": [
                {
                    "s3_output": {
                        "s3_uri": pulumi.Output.concat(self.reports_uri, "model-quality"),
                        "local_path": OUTPUT_PATH,
                        "s3_upload_mode": "EndOfJob",
                    }
                }
            ],
            "kms_key_id": args["kms_key_arn"],
        }
        quality = aws_native.sagemaker.ModelQualityJobDefinition(
            f"{name}-model-quality",
            endpoint_name=endpoint,
            model_quality_app_specification=cast(
                Any, {"image_uri": analyzer_image, "problem_type": settings.problem_type}
            ),
            model_quality_baseline_config={
                "constraints_resource": {"s3_uri": constraints_uri.apply(lambda u: sibling_uri(u, "model_quality"))}
            },
            model_quality_job_input=cast(
                Any, {"endpoint_input": endpoint_input, "ground_truth_s3_input": {"s3_uri": self.ground_truth_uri}}
            ),
            model_quality_job_output_config=output_config,
            job_resources={"cluster_config": native_cluster},
            network_config=native_network,
            role_arn=role.arn,
            stopping_condition={"max_runtime_in_seconds": settings.max_runtime_seconds},
            opts=native_opts,
        )
        quality_schedule = aws.sagemaker.MonitoringSchedule(
            f"{name}-model-quality-schedule",
            name=quality_schedule_name_for(endpoint),
            monitoring_schedule_config={
                "monitoring_type": "ModelQuality",
                "monitoring_job_definition_name": quality.job_definition_name,
                "schedule_config": {"schedule_expression": MODEL_MONITOR_HOURLY},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.get("depends_on", []))),
        )
        self.quality_schedule_name = quality_schedule.name
        if settings.sensitive_attribute is None:
            return
        clarify = aws.sagemaker.get_prebuilt_ecr_image_output(
            repository_name="sagemaker-clarify-processing",
            image_tag="1.0",
            region=args["region"],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        analysis = aws.s3.BucketObjectv2(
            f"{name}-bias-analysis-config",
            bucket=args["reports_bucket"],
            key=f"{self._prefix}model-bias/analysis_config.json",
            content=json.dumps(clarify_analysis_config(settings), sort_keys=True),
            content_type="application/json",
            server_side_encryption="aws:kms",
            kms_key_id=args["kms_key_arn"],
            opts=child,
        )
        bias_output: Any = dict(output_config)
        bias_output["monitoring_outputs"] = [
            {
                "s3_output": {
                    "s3_uri": pulumi.Output.concat(self.reports_uri, "model-bias"),
                    "local_path": OUTPUT_PATH,
                    "s3_upload_mode": "EndOfJob",
                }
            }
        ]
        bias_input = {k: v for k, v in endpoint_input.items() if k != "inference_attribute"}
        bias_input["inference_attribute"] = settings.inference_attribute
        bias = aws_native.sagemaker.ModelBiasJobDefinition(
            f"{name}-model-bias",
            endpoint_name=endpoint,
            model_bias_app_specification={
                "image_uri": clarify.registry_path,
                "config_uri": pulumi.Output.concat("s3://", analysis.bucket, "/", analysis.key),
            },
            model_bias_baseline_config={
                "constraints_resource": {"s3_uri": constraints_uri.apply(lambda u: sibling_uri(u, "model_bias"))}
            },
            model_bias_job_input=cast(
                Any, {"endpoint_input": bias_input, "ground_truth_s3_input": {"s3_uri": self.ground_truth_uri}}
            ),
            model_bias_job_output_config=bias_output,
            job_resources={"cluster_config": native_cluster},
            network_config=native_network,
            role_arn=role.arn,
            stopping_condition={"max_runtime_in_seconds": settings.max_runtime_seconds},
            opts=native_opts,
        )
        bias_schedule = aws.sagemaker.MonitoringSchedule(
            f"{name}-model-bias-schedule",
            name=bias_schedule_name_for(endpoint),
            monitoring_schedule_config={
                "monitoring_type": "ModelBias",
                "monitoring_job_definition_name": bias.job_definition_name,
                "schedule_config": {"schedule_expression": MODEL_MONITOR_HOURLY},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.get("depends_on", []))),
        )
        self.bias_schedule_name = bias_schedule.name

    def _pipeline(self, name: str, args: DriftMonitorArgs) -> None:
        settings = args["settings"]
        endpoint = args["endpoint_name"]
        schedule_name = schedule_name_for(endpoint)
        monitor_image = args.get("monitor_image")
        assert monitor_image is not None  # validate_monitor_args refused the pipeline backend without it
        image = pulumi.Output.from_input(monitor_image)
        repository = pulumi.Output.all(image, self._partition).apply(lambda v: ecr_repository_arn(v[0], v[1]))
        job_role = self._job_role(name, args, repository)

        pipeline_role = aws.iam.Role(
            f"{name}-pipeline-role",
            description=f"{name}: SageMaker Pipelines starting the drift-monitoring step",
            assume_role_policy=self._account_id.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        pipeline_policy = aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            role=pipeline_role.id,
            policy=pulumi.Output.all(self._partition, self._account_id, job_role.arn, args["kms_key_arn"]).apply(
                lambda v: pipeline_orchestration_policy(
                    partition=v[0], region=args["region"], account_id=v[1], job_role_arn=v[2], kms_key_arn=v[3]
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        definition = pulumi.Output.all(
            image,
            job_role.arn,
            args["kms_key_arn"],
            args["capture_s3_uri"],
            args["baseline_statistics_uri"],
            args["baseline_constraints_uri"],
            self.reports_uri,
        ).apply(
            lambda v: json.dumps(
                pipeline_definition(
                    image=v[0],
                    job_role_arn=v[1],
                    instance_type=settings.instance_type,
                    max_runtime_seconds=settings.max_runtime_seconds,
                    kms_key_arn=v[2],
                    endpoint_name=endpoint,
                    schedule_name=schedule_name,
                    capture_s3_uri=v[3],
                    baseline_statistics_uri=v[4],
                    baseline_constraints_uri=v[5],
                    reports_s3_uri=v[6],
                    subnet_ids=list(args.get("subnet_ids", [])),
                    security_group_ids=list(args.get("security_group_ids", [])),
                    instance_count=settings.instance_count,
                ),
                sort_keys=True,
            )
        )
        pipeline = aws.sagemaker.Pipeline(
            f"{name}-pipeline",
            pipeline_name=schedule_name,
            pipeline_display_name=schedule_name,
            pipeline_description=f"Hourly drift analysis of endpoint {endpoint} with the mlplatform monitor image",
            role_arn=pipeline_role.arn,
            pipeline_definition=definition,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipeline_policy]),
        )

        scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role",
            description=f"{name}: EventBridge Scheduler starting the drift pipeline hourly",
            assume_role_policy=self._account_id.apply(lambda a: service_trust_policy("scheduler.amazonaws.com", a)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        quality_pipeline = None
        if settings.quality:
            quality_pipeline = self._quality_pipeline(name, args, image, job_role, pipeline_role, pipeline_policy)
        pipeline_arns = [pipeline.arn, *([quality_pipeline.arn] if quality_pipeline is not None else [])]
        start_policy = aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=scheduler_role.id,
            policy=pulumi.Output.all(*pipeline_arns).apply(lambda arns: scheduler_policy(list(arns))),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if quality_pipeline is not None:
            quality_name = quality_schedule_name_for(endpoint)
            aws.scheduler.Schedule(
                f"{name}-model-quality-schedule",
                name=quality_name,
                description=f"Starts the model-quality pipeline of endpoint {endpoint} every hour",
                schedule_expression=SCHEDULER_HOURLY,
                schedule_expression_timezone="UTC",
                # Off: the scheduled time is the deadline of the labels and fixes the judged hour.
                flexible_time_window={"mode": "OFF"},
                target={
                    "arn": self._partition.apply(lambda p: START_PIPELINE_TARGET.format(partition=p)),
                    "role_arn": scheduler_role.arn,
                    "input": quality_pipeline.pipeline_name.apply(
                        lambda n: json.dumps(start_pipeline_request(n, what="model-quality"))
                    ),
                    "retry_policy": {"maximum_retry_attempts": 3, "maximum_event_age_in_seconds": WINDOW_SECONDS},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[start_policy, *list(args.get("depends_on", []))]),
            )
            self.quality_schedule_name = pulumi.Output.from_input(quality_name)
            if settings.sensitive_attribute is not None:
                self.bias_schedule_name = pulumi.Output.from_input(quality_name)
        aws.scheduler.Schedule(
            f"{name}-schedule",
            name=schedule_name,
            description=f"Starts the drift pipeline of endpoint {endpoint} for the hour just ended",
            schedule_expression=SCHEDULER_HOURLY,
            schedule_expression_timezone="UTC",
            # Off: the scheduled time must be exactly the hour, since it is the window's end.
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": self._partition.apply(lambda p: START_PIPELINE_TARGET.format(partition=p)),
                "role_arn": scheduler_role.arn,
                "input": pipeline.pipeline_name.apply(lambda n: json.dumps(start_pipeline_request(n))),
                # A start that keeps failing for an hour is stale: the next hour's run takes over.
                "retry_policy": {"maximum_retry_attempts": 3, "maximum_event_age_in_seconds": WINDOW_SECONDS},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[start_policy, *list(args.get("depends_on", []))]),
        )
        self.schedule_name = pulumi.Output.from_input(schedule_name)
        self.pipeline_name = pipeline.pipeline_name

    def _quality_pipeline(
        self,
        name: str,
        args: DriftMonitorArgs,
        image: pulumi.Output[str],
        job_role: aws.iam.Role,
        pipeline_role: aws.iam.Role,
        pipeline_policy: aws.iam.RolePolicy,
    ) -> aws.sagemaker.Pipeline:
        settings = args["settings"]
        endpoint = args["endpoint_name"]
        schedule_name = quality_schedule_name_for(endpoint)
        definition = pulumi.Output.all(
            image,
            job_role.arn,
            args["kms_key_arn"],
            args["capture_s3_uri"],
            self.ground_truth_uri,
            args["baseline_statistics_uri"],
            args["baseline_constraints_uri"],
            self.reports_uri,
        ).apply(
            lambda v: json.dumps(
                quality_pipeline_definition(
                    image=v[0],
                    job_role_arn=v[1],
                    settings=settings,
                    kms_key_arn=v[2],
                    endpoint_name=endpoint,
                    schedule_name=schedule_name,
                    capture_s3_uri=v[3],
                    ground_truth_s3_uri=v[4],
                    baseline_statistics_uri=v[5],
                    quality_constraints_uri=sibling_uri(v[6], "model_quality"),
                    bias_constraints_uri=sibling_uri(v[6], "model_bias") if settings.sensitive_attribute else None,
                    reports_s3_uri=v[7] + "model-quality/",
                    subnet_ids=list(args.get("subnet_ids", [])),
                    security_group_ids=list(args.get("security_group_ids", [])),
                ),
                sort_keys=True,
            )
        )
        return aws.sagemaker.Pipeline(
            f"{name}-model-quality-pipeline",
            pipeline_name=schedule_name,
            pipeline_display_name=schedule_name,
            pipeline_description=(
                f"Hourly model quality{' and bias drift' if settings.sensitive_attribute else ''} of endpoint "
                f"{endpoint}: captures joined with ground truth"
            ),
            role_arn=pipeline_role.arn,
            pipeline_definition=definition,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipeline_policy]),
        )


def metric_dimensions(endpoint_name: str, schedule_name: pulumi.Input[str]) -> Mapping[str, pulumi.Input[str]]:
    """Dimensions of the drift metrics both backends publish (`metrics_contract`)."""
    return {contract.ENDPOINT_DIMENSION: endpoint_name, contract.SCHEDULE_DIMENSION: schedule_name}
