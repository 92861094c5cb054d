"""`TrainingPipeline`: the model lifecycle as a SageMaker Pipeline: validate -> train -> evaluate -> gate -> register.

The definition (`training_pipeline_definition`, pipeline definition schema version 2020-12-01) runs our
training image five times, with the same commands `make local` runs (training/steps.py):

0. `ResolveChampion` (Processing, with network): `python -m training champion` resolves the run's champion:
   the ChampionModelDataUrl parameter when it is a prefix, else (`latest-approved`) the group's newest Approved
   version (ListModelPackages, DescribeModelPackage), else the no-champion marker; writes `champion.json`.
1. `ValidateData` (Processing): `python -m training validate` over the train and validation prefixes, against
   the champion's baseline; a violation fails the step and so the run, naming the file, row, column and check.
2. `Train` (Training): the CreateTrainingJob request of components/training.py's job (spot with checkpoints,
   multi-instance, the stack's GPU type), output uncompressed under `training/`.
3. `Evaluate` (Processing): `python -m training evaluate`, the candidate against the champion on the same
   held-out rows, thresholds from the stack's settings; writes `gate.json`, declared as a property file.
4. `Gate` (Condition): `decision` of gate.json (`Std:JsonGet`) equals `pass` -> `Register` (RegisterModel: a
   CreateModelPackage request, `PendingManualApproval`, with the evaluation, the baseline and the lineage);
   else `GateFailed` (Fail), so a rejected candidate shows as a failed run.

The champion the later steps read is `model_data_url` of champion.json. The pipeline parameter
`ChampionModelDataUrl` defaults to `mlplatform:lifecycleChampionModelDataUrl`, else to `latest-approved`, so a
scheduled, drift- or data-started run compares against the model approved when it starts, not when the stack
was deployed. With nothing approved it is an empty marker prefix the stack writes: the steps read a champion
folder without a manifest as "no approved model yet" (`--optional-champion`).

Written by hand, as components/monitoring.py's definitions are (the reasons are in its `pipeline_definition`):
the `sagemaker` SDK would build the same JSON, but is too heavy for every preview. Step types, `Std:JsonGet`
over a property file and the Condition step's `Conditions`/`IfSteps`/`ElseSteps` follow the SDK's
`sagemaker.workflow` (steps.StepTypeEnum, functions.JsonGet.expr, condition_step.ConditionStep) and AWS's
"Pipeline definition JSON schema"; tools/validate.py checks each step's Arguments against the botocore model
of the API call it makes (CreateProcessingJob, CreateTrainingJob, CreateModelPackage).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy
from components.settings import LifecycleSettings, TrainingSettings, has_local_nvme
from components.tracking import logging_statements
from components.training import CHECKPOINT_LOCAL_PATH, validate_hyperparameters
from training.metrics import METRIC_DEFINITIONS

STEP_CHAMPION = "ResolveChampion"
STEP_VALIDATE = "ValidateData"
STEP_TRAIN = "Train"
STEP_EVALUATE = "Evaluate"
STEP_GATE = "Gate"
STEP_REGISTER = "Register"
STEP_FAIL = "GateFailed"
PARAM_CHAMPION = "ChampionModelDataUrl"
PARAM_TRIGGER = "TriggeredBy"
GATE_PROPERTY_FILE = "GateRecord"
CHAMPION_PROPERTY_FILE = "ChampionRecord"
LATEST_APPROVED = "latest-approved"
"""ChampionModelDataUrl's default without a pin (training.champion.LATEST_APPROVED; a test keeps them equal)."""
CHAMPION_FILE = "champion.json"
"""What the ResolveChampion step writes (training.champion.CHAMPION_FILE)."""
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
RUN_ID_KEY = "mlflow_run_id"
"""training.tracking's names (the program may not import it: it imports mlflow); a test keeps them equal."""
PROCESSING_ROOT = "/opt/ml/processing"
PIPELINE_PREFIX = "lifecycle/"
"""Key prefix in the model bucket for the pipeline's reports, trained models and checkpoints."""
NO_CHAMPION_PREFIX = f"{PIPELINE_PREFIX}no-champion/"
"""An S3 prefix holding only a marker object: the champion input when nothing is approved yet."""
CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines"]
RESPONSE_TYPES = ["application/json", "text/csv"]
VOLUME_SIZE_GB = 30


def _get(path: str) -> dict[str, str]:
    return {"Get": path}


def _join(*values: Any, on: str = "") -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def _run_uri(base: str, *rest: str) -> dict[str, Any]:
    """`base/<execution id>/rest...`: one folder per run."""
    return _join(base.rstrip("/"), _get("Execution.PipelineExecutionId"), *rest, on="/")


def _gate_value(path: str) -> dict[str, Any]:
    """A value of the Evaluate step's gate record (`Std:JsonGet` over its property file, as the sagemaker SDK's
    workflow.functions.JsonGet.expr writes it)."""
    return {
        "Std:JsonGet": {
            "PropertyFile": _get(f"Steps.{STEP_EVALUATE}.PropertyFiles.{GATE_PROPERTY_FILE}"),
            "Path": path,
        }
    }


def _s3_input(name: str, uri: Any, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _processing(
    *,
    image: str,
    role_arn: str,
    instance_type: str,
    kms_key_arn: str,
    arguments: list[Any],
    inputs: list[dict[str, Any]],
    output_name: str,
    output_uri: Any,
    max_runtime_seconds: int,
    environment: dict[str, str] | None = None,
    network: bool = False,
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": VOLUME_SIZE_GB}
    if not has_local_nvme(instance_type):
        cluster["VolumeKmsKeyId"] = kms_key_arn
    job: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": cluster},
        "AppSpecification": {"ImageUri": image, "ContainerArguments": arguments},
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": output_name,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": output_uri,
                        "LocalPath": f"{PROCESSING_ROOT}/output/{output_name}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": kms_key_arn,
        },
        # Isolated unless the step calls an AWS API (the champion lookup) or reports to a tracking server.
        "NetworkConfig": {"EnableNetworkIsolation": not (network or environment)},
    }
    if environment:
        job["Environment"] = environment
    return job


def gate_arguments(lifecycle: LifecycleSettings) -> list[str]:
    """The evaluate command's threshold flags, from the stack's settings (one flag per GateThresholds field)."""
    args = [
        "--max-auc-drop",
        str(lifecycle.max_auc_drop),
        "--max-accuracy-drop",
        str(lifecycle.max_accuracy_drop),
        "--max-log-loss-increase",
        str(lifecycle.max_log_loss_increase),
        "--min-auc",
        str(lifecycle.min_auc),
        "--min-accuracy",
        str(lifecycle.min_accuracy),
        "--max-demographic-parity-difference",
        str(lifecycle.max_demographic_parity_difference),
        "--max-equal-opportunity-difference",
        str(lifecycle.max_equal_opportunity_difference),
        "--max-rmse-increase",
        str(lifecycle.max_rmse_increase),
        "--max-mae-increase",
        str(lifecycle.max_mae_increase),
        "--max-r2-drop",
        str(lifecycle.max_r2_drop),
        "--min-r2",
        str(lifecycle.min_r2),
        "--max-pruning-accuracy-drop",
        str(lifecycle.max_pruning_accuracy_drop),
        "--max-pruning-rmse-increase",
        str(lifecycle.max_pruning_rmse_increase),
    ]
    if lifecycle.sensitive_attribute is not None:
        args += ["--sensitive-attribute", lifecycle.sensitive_attribute]
    if lifecycle.positive_class is not None:
        args += ["--positive-class", lifecycle.positive_class]
    return args


def training_pipeline_definition(
    *,
    training_image: str,
    serving_image: str,
    job_role_arn: str,
    kms_key_arn: str,
    data_bucket: str,
    model_bucket: str,
    group_name: str,
    training: TrainingSettings,
    lifecycle: LifecycleSettings,
    target: str = "label",
    tracking_server_arn: str | None = None,
    experiment_name: str | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """The pipeline definition JSON document (as a dict) of one training run; see the module docstring.

    With `tracking_server_arn`, the Evaluate step records the candidate's MLflow run there (experiment
    `experiment_name`, run named after the training job) and Register copies the run id from the gate record
    into the model package's customer metadata (`mlflow_run_id`)."""
    hyperparameters = validate_hyperparameters(training.hyperparameters)
    target = hyperparameters.get("target", target)
    train_uri = f"s3://{data_bucket}/{training.train_prefix}"
    validation_uri = f"s3://{data_bucket}/{training.validation_prefix}"
    base = f"s3://{model_bucket}/{PIPELINE_PREFIX}"
    common = {
        "image": training_image,
        "role_arn": job_role_arn,
        "instance_type": lifecycle.processing_instance_type,
        "kms_key_arn": kms_key_arn,
        "max_runtime_seconds": 3600,
    }
    # The champion is resolved when the run starts (training/champion.py): the pinned prefix, else the group's
    # latest Approved version, else the no-champion marker; the later steps read it from the record.
    champion_step = {
        "Name": STEP_CHAMPION,
        "Type": "Processing",
        "Arguments": _processing(
            **{**common, "max_runtime_seconds": 600},
            arguments=[
                "champion",
                "--group",
                group_name,
                "--pinned",
                _get(f"Parameters.{PARAM_CHAMPION}"),
                "--no-champion",
                f"s3://{model_bucket}/{NO_CHAMPION_PREFIX}",
                "--region",
                region,
                "--record",
                f"{PROCESSING_ROOT}/output/champion/{CHAMPION_FILE}",
            ],
            inputs=[],
            output_name="champion",
            output_uri=_run_uri(base, "champion"),
            network=True,
        ),
        "PropertyFiles": [
            {"PropertyFileName": CHAMPION_PROPERTY_FILE, "OutputName": "champion", "FilePath": CHAMPION_FILE}
        ],
    }
    champion = {
        "Std:JsonGet": {
            "PropertyFile": _get(f"Steps.{STEP_CHAMPION}.PropertyFiles.{CHAMPION_PROPERTY_FILE}"),
            "Path": "model_data_url",
        }
    }
    data_inputs = [
        _s3_input("train", train_uri, f"{PROCESSING_ROOT}/input/data/train"),
        _s3_input("validation", validation_uri, f"{PROCESSING_ROOT}/input/data/validation"),
        _s3_input("champion", champion, f"{PROCESSING_ROOT}/champion"),
    ]
    validate_args = ["validate", "--ml-root", PROCESSING_ROOT, "--target", target, "--optional-champion"]
    validate_args += ["--baseline", f"{PROCESSING_ROOT}/champion/baseline"]
    validate_args += ["--report", f"{PROCESSING_ROOT}/output/validation/validation.json"]
    if lifecycle.max_drift_distance is not None:
        validate_args += ["--max-drift-distance", str(lifecycle.max_drift_distance)]
    validate_step = {
        "Name": STEP_VALIDATE,
        "Type": "Processing",
        "Arguments": _processing(
            **common,
            arguments=validate_args,
            inputs=data_inputs,
            output_name="validation",
            output_uri=_run_uri(base, "validation"),
        ),
    }

    volume_kms = not has_local_nvme(training.instance_type)
    resource_config: dict[str, Any] = {
        "InstanceType": training.instance_type,
        "InstanceCount": training.instance_count,
        "VolumeSizeInGB": training.volume_size_gb,
    }
    if volume_kms:
        resource_config["VolumeKmsKeyId"] = kms_key_arn
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": training.max_runtime_seconds}
    if training.spot:
        stopping["MaxWaitTimeInSeconds"] = training.max_wait_seconds
    train_arguments: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": training_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
        },
        "RoleArn": job_role_arn,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in (("train", train_uri), ("validation", validation_uri))
        ],
        "OutputDataConfig": {"S3OutputPath": f"{base}models/", "CompressionType": "NONE", "KmsKeyId": kms_key_arn},
        "ResourceConfig": resource_config,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": training.spot,
        "CheckpointConfig": {"S3Uri": _run_uri(base, "checkpoints"), "LocalPath": CHECKPOINT_LOCAL_PATH},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": training.instance_count > 1,
    }
    if training.subnet_ids:
        train_arguments["VpcConfig"] = {
            "Subnets": list(training.subnet_ids),
            "SecurityGroupIds": list(training.security_group_ids),
        }
    train_step = {"Name": STEP_TRAIN, "Type": "Training", "DependsOn": [STEP_VALIDATE], "Arguments": train_arguments}

    model_prefix = _join(_get(f"Steps.{STEP_TRAIN}.ModelArtifacts.S3ModelArtifacts"), "/")
    evaluate_args = ["evaluate", "--ml-root", PROCESSING_ROOT, "--candidate", f"{PROCESSING_ROOT}/model"]
    evaluate_args += ["--champion", f"{PROCESSING_ROOT}/champion", "--optional-champion"]
    evaluate_args += ["--record", f"{PROCESSING_ROOT}/output/gate/gate.json", *gate_arguments(lifecycle)]
    tracking_env: dict[str, str] | None = None
    if tracking_server_arn is not None:
        evaluate_args += ["--run-name", _get(f"Steps.{STEP_TRAIN}.TrainingJobName")]
        tracking_env = {TRACKING_URI_ENV: tracking_server_arn, EXPERIMENT_ENV: experiment_name or "mlplatform"}
    evaluate_step = {
        "Name": STEP_EVALUATE,
        "Type": "Processing",
        "Arguments": _processing(
            **common,
            environment=tracking_env,
            arguments=evaluate_args,
            inputs=[
                _s3_input("model", model_prefix, f"{PROCESSING_ROOT}/model"),
                data_inputs[1],
                data_inputs[2],
            ],
            output_name="gate",
            output_uri=_run_uri(base, "gate"),
        ),
        "PropertyFiles": [{"PropertyFileName": GATE_PROPERTY_FILE, "OutputName": "gate", "FilePath": "gate.json"}],
    }

    def file_in_model(path: str) -> dict[str, Any]:
        return _join(_get(f"Steps.{STEP_TRAIN}.ModelArtifacts.S3ModelArtifacts"), f"/{path}")

    register_step = {
        "Name": STEP_REGISTER,
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": group_name,
            "ModelPackageDescription": "candidate that passed the mlplatform evaluation gate",
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": serving_image,
                        # Uncompressed model files under a prefix (the training job's CompressionType NONE).
                        "ModelDataSource": {
                            "S3DataSource": {"S3Uri": model_prefix, "S3DataType": "S3Prefix", "CompressionType": "None"}
                        },
                    }
                ],
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": RESPONSE_TYPES,
            },
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": _run_uri(base, "gate", "gate.json")}
                },
                "ModelDataQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": file_in_model("baseline/statistics.json"),
                    },
                    "Constraints": {
                        "ContentType": "application/json",
                        "S3Uri": file_in_model("baseline/constraints.json"),
                    },
                },
                **(
                    {
                        "Bias": {
                            "Report": {"ContentType": "application/json", "S3Uri": _run_uri(base, "gate", "gate.json")}
                        }
                    }
                    if lifecycle.sensitive_attribute is not None
                    else {}
                ),
            },
            "MetadataProperties": {"GeneratedBy": _get("Execution.PipelineExecutionArn")},
            "CustomerMetadataProperties": {
                "training_job": _get(f"Steps.{STEP_TRAIN}.TrainingJobName"),
                "training_image": training_image.rsplit("@", 1)[-1],
                "train_data": train_uri[:256],
                "champion": champion,
                "triggered_by": _get(f"Parameters.{PARAM_TRIGGER}"),
                **({RUN_ID_KEY: _gate_value(RUN_ID_KEY)} if tracking_server_arn is not None else {}),
            },
        },
    }
    fail_step = {
        "Name": STEP_FAIL,
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": _join(
                "the candidate did not pass the evaluation gate; see ", _run_uri(base, "gate", "gate.json")
            )
        },
    }
    gate_step = {
        "Name": STEP_GATE,
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "Equals",
                    "LeftValue": _gate_value("decision"),
                    "RightValue": "pass",
                }
            ],
            "IfSteps": [register_step],
            "ElseSteps": [fail_step],
        },
    }
    champion_default = lifecycle.champion_model_data_url or LATEST_APPROVED
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {"Name": PARAM_CHAMPION, "Type": "String", "DefaultValue": champion_default},
            {"Name": PARAM_TRIGGER, "Type": "String", "DefaultValue": "manual"},
        ],
        "Steps": [champion_step, validate_step, train_step, evaluate_step, gate_step],
    }


def pipeline_role_policy(
    *, partition: str, region: str, account_id: str, job_role_arn: str, kms_key_arn: str, group_name: str
) -> str:
    """What SageMaker Pipelines does for a run: the jobs of its steps, the RegisterModel call, passing the
    job role, and the project key the jobs and the model package use."""
    prefix = f"arn:{partition}:sagemaker:{region}:{account_id}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RunSteps",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": [f"{prefix}:processing-job/pipelines-*", f"{prefix}:training-job/pipelines-*"],
                },
                {
                    "Sid": "RegisterCandidate",
                    "Effect": "Allow",
                    "Action": ["sagemaker:CreateModelPackage", "sagemaker:AddTags"],
                    "Resource": [
                        f"{prefix}:model-package-group/{group_name}",
                        f"{prefix}:model-package/{group_name}/*",
                    ],
                },
                {
                    "Sid": "PassJobRole",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": job_role_arn,
                    "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                },
                {
                    "Sid": "UseProjectKey",
                    "Effect": "Allow",
                    "Action": ["kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": kms_key_arn,
                },
                {
                    "Sid": "GrantKeyToJobs",
                    "Effect": "Allow",
                    "Action": "kms:CreateGrant",
                    "Resource": kms_key_arn,
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        }
    )


def job_role_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    data_bucket: str,
    model_bucket: str,
    data_prefixes: Sequence[str],
    kms_key_arn: str,
    repository_arn: str,
    tracking_server_arn: str | None = None,
    group_name: str | None = None,
) -> str:
    """The steps' jobs: read the data prefixes and the champion, write under the pipeline's prefix, pull the
    training image, write logs and metrics, use the project key; with a tracking server, record runs there."""
    s3 = f"arn:{partition}:s3:::"
    logs = f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/sagemaker/*"
    sagemaker = f"arn:{partition}:sagemaker:{region}:{account_id}"
    champion_lookup = (
        [
            {
                "Sid": "FindApprovedChampion",
                "Effect": "Allow",
                "Action": ["sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"],
                "Resource": [
                    f"{sagemaker}:model-package-group/{group_name}",
                    f"{sagemaker}:model-package/{group_name}/*",
                ],
            }
        ]
        if group_name is not None
        else []
    )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListData",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": [f"{s3}{data_bucket}", f"{s3}{model_bucket}"],
                },
                {
                    "Sid": "ReadData",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": [f"{s3}{data_bucket}/{p}*" for p in data_prefixes] + [f"{s3}{model_bucket}/*"],
                },
                {
                    "Sid": "WriteRunOutputs",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                    "Resource": f"{s3}{model_bucket}/{PIPELINE_PREFIX}*",
                },
                {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {
                    "Sid": "PullTrainingImage",
                    "Effect": "Allow",
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    "Resource": repository_arn,
                },
                {
                    "Sid": "WriteLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [logs, f"{logs}:log-stream:*"],
                },
                {
                    "Sid": "PublishJobMetrics",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",
                    "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                },
                {
                    "Sid": "UseProjectKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    "Resource": kms_key_arn,
                },
                {
                    "Sid": "GrantVolumeEncryption",
                    "Effect": "Allow",
                    "Action": "kms:CreateGrant",
                    "Resource": kms_key_arn,
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
                *champion_lookup,
                *(
                    logging_statements(partition=partition, server_arn=tracking_server_arn, model_bucket=model_bucket)
                    if tracking_server_arn is not None
                    else []
                ),
            ],
        }
    )


def drift_event_pattern(alarm_name: str) -> dict[str, Any]:
    """CloudWatch's "CloudWatch Alarm State Change" event for one alarm entering ALARM (EventBridge's event
    reference for CloudWatch: source aws.cloudwatch, detail.alarmName, detail.state.value)."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [alarm_name], "state": {"value": ["ALARM"]}},
    }


def new_data_event_pattern(bucket: str, train_prefix: str, marker: str) -> dict[str, Any]:
    """S3's `Object Created` event (sent to EventBridge when the bucket's EventBridge notifications are on) for
    an object named `marker` directly under the training prefix or in a folder below it. `wildcard` matches `*`
    as any run of characters; a literal `*` of the prefix is escaped."""
    prefix = train_prefix.replace("*", "\\*")
    keys = [{"wildcard": f"{prefix}{marker}"}, {"wildcard": f"{prefix}*/{marker}"}]
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": keys}},
    }


def failed_run_pattern(pipeline_arn: str) -> dict[str, Any]:
    """SageMaker's "SageMaker Model Building Pipeline Execution Status Change" event of a failed run."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        "detail": {"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed"]},
    }


class TrainingPipelineArgs(TypedDict):
    training_image: pulumi.Input[str]
    """Training image by digest (runs every step)."""
    training_repository_arn: pulumi.Input[str] | None
    """ECR repository of the training image (the job role pulls from it); None (not ECR) is refused."""
    serving_image: pulumi.Input[str]
    """Serving image by digest (the registered model package's container)."""
    data_bucket: pulumi.Input[str]
    """Bucket holding the training and validation prefixes."""
    model_bucket: pulumi.Input[str]
    """Bucket receiving the runs' reports, models and checkpoints under `lifecycle/`."""
    kms_key_arn: pulumi.Input[str]
    """Project key: volumes, outputs, and the buckets' objects."""
    group_name: pulumi.Input[str]
    """Model package group the Register step adds versions to."""
    region: str
    """AWS region of the stack."""
    training: TrainingSettings
    """Instance type and count, spot, hyperparameters, channels (the same settings as the `train` job)."""
    lifecycle: LifecycleSettings
    """Gate thresholds, champion, schedule and drift trigger."""
    drift_alarm_name: NotRequired[str]
    """The drift-violations alarm whose ALARM state starts a run (with `retrain_on_drift` retrain)."""
    alarm_topic_arn: NotRequired[pulumi.Input[str]]
    """SNS topic notified when a run fails."""
    tracking_server_arn: NotRequired[pulumi.Input[str]]
    """MLflow tracking server (components/tracking.py) the Evaluate step records each run in; unset: none."""


class TrainingPipeline(pulumi.ComponentResource):
    """The training pipeline, its roles, the no-champion marker, and what starts it.

    Example::

        pipeline = TrainingPipeline("mlplatform-dev-lifecycle", {
            "training_image": image.image_ref, "training_repository_arn": image.repository_arn,
            "serving_image": serving.image_ref, "data_bucket": store.data_bucket,
            "model_bucket": store.model_bucket, "kms_key_arn": store.kms_key_arn,
            "group_name": registry.group_name, "region": "us-east-1",
            "training": settings.training, "lifecycle": settings.lifecycle})
    """

    pipeline_name: pulumi.Output[str]
    pipeline_arn: pulumi.Output[str]

    def __init__(self, name: str, args: TrainingPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:lifecycle:TrainingPipeline", name, None, opts)
        lifecycle = args["lifecycle"]
        training = args["training"]
        repository_arn = args["training_repository_arn"]
        if repository_arn is None:
            raise ValueError(
                "mlplatform:lifecycleEnabled: the training image must live in Amazon ECR (SageMaker pulls job images "
                "from ECR); build it (mlplatform:imagesBuild true) or set mlplatform:imagesTraining to an ECR image"
            )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        child = pulumi.ResourceOptions(parent=self)

        aws.s3.BucketObjectv2(
            f"{name}-no-champion",
            bucket=args["model_bucket"],
            key=f"{NO_CHAMPION_PREFIX}README.txt",
            content="No model version is approved yet: the pipeline's gate holds the candidate to its floors.\n",
            content_type="text/plain",
            kms_key_id=args["kms_key_arn"],
            server_side_encryption="aws:kms",
            opts=child,
        )
        job_role = aws.iam.Role(
            f"{name}-job-role",
            description=f"{name}: the training pipeline's processing and training jobs",
            assume_role_policy=account.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=child,
        )
        tracking_arn: pulumi.Input[str | None] = args.get("tracking_server_arn")
        job_policy = aws.iam.RolePolicy(
            f"{name}-job-policy",
            role=job_role.id,
            policy=pulumi.Output.all(
                partition,
                account,
                args["data_bucket"],
                args["model_bucket"],
                args["kms_key_arn"],
                repository_arn,
                tracking_arn,
                args["group_name"],
            ).apply(
                lambda v: job_role_policy(
                    partition=v[0],
                    region=args["region"],
                    account_id=v[1],
                    data_bucket=v[2],
                    model_bucket=v[3],
                    data_prefixes=[training.train_prefix, training.validation_prefix],
                    kms_key_arn=v[4],
                    repository_arn=v[5],
                    tracking_server_arn=v[6],
                    group_name=v[7],
                )
            ),
            opts=child,
        )
        pipeline_role = aws.iam.Role(
            f"{name}-pipeline-role",
            description=f"{name}: SageMaker Pipelines running the training pipeline",
            assume_role_policy=account.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=child,
        )
        pipeline_policy = aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            role=pipeline_role.id,
            policy=pulumi.Output.all(partition, account, job_role.arn, args["kms_key_arn"], args["group_name"]).apply(
                lambda v: pipeline_role_policy(
                    partition=v[0],
                    region=args["region"],
                    account_id=v[1],
                    job_role_arn=v[2],
                    kms_key_arn=v[3],
                    group_name=v[4],
                )
            ),
            opts=child,
        )
        definition = pulumi.Output.all(
            args["training_image"],
            args["serving_image"],
            job_role.arn,
            args["kms_key_arn"],
            args["data_bucket"],
            args["model_bucket"],
            args["group_name"],
            tracking_arn,
        ).apply(
            lambda v: json.dumps(
                training_pipeline_definition(
                    training_image=v[0],
                    serving_image=v[1],
                    job_role_arn=v[2],
                    kms_key_arn=v[3],
                    data_bucket=v[4],
                    model_bucket=v[5],
                    group_name=v[6],
                    training=training,
                    lifecycle=lifecycle,
                    tracking_server_arn=v[7],
                    experiment_name=f"{name}-training",
                    region=args["region"],
                ),
                sort_keys=True,
            )
        )
        pipeline_name = f"{name}-training"
        pipeline = aws.sagemaker.Pipeline(
            f"{name}-pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description="validate -> train -> evaluate -> gate -> register (mlplatform model lifecycle)",
            role_arn=pipeline_role.arn,
            pipeline_definition=definition,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipeline_policy, job_policy]),
        )
        self.pipeline_name = pipeline.pipeline_name
        self.pipeline_arn = pipeline.arn
        self._triggers(name, args, pipeline, account)
        self.register_outputs({"pipeline_name": self.pipeline_name, "pipeline_arn": self.pipeline_arn})

    def _triggers(
        self, name: str, args: TrainingPipelineArgs, pipeline: aws.sagemaker.Pipeline, account: pulumi.Output[str]
    ) -> None:
        lifecycle = args["lifecycle"]
        child = pulumi.ResourceOptions(parent=self)
        starts_on_drift = lifecycle.retrain_on_drift == "retrain"
        starts_from_events = starts_on_drift or lifecycle.retrain_on_new_data
        if lifecycle.schedule is None and not starts_from_events:
            # Started by hand or by CI only (docs/lifecycle.md): no role to start it.
            self._failure_notice(name, args, pipeline)
            return
        start_policy = pipeline.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "StartTrainingPipeline",
                            "Effect": "Allow",
                            "Action": "sagemaker:StartPipelineExecution",
                            "Resource": arn,
                        }
                    ],
                }
            )
        )
        if lifecycle.schedule is not None:
            scheduler_role = aws.iam.Role(
                f"{name}-scheduler-role",
                description=f"{name}: EventBridge Scheduler starting the training pipeline",
                assume_role_policy=account.apply(lambda a: service_trust_policy("scheduler.amazonaws.com", a)),
                opts=child,
            )
            policy = aws.iam.RolePolicy(
                f"{name}-scheduler-policy", role=scheduler_role.id, policy=start_policy, opts=child
            )
            aws.scheduler.Schedule(
                f"{name}-schedule",
                name=f"{name}-training",
                description="Starts the training pipeline on the stack's schedule",
                schedule_expression=lifecycle.schedule,
                schedule_expression_timezone="UTC",
                flexible_time_window={"mode": "FLEXIBLE", "maximum_window_in_minutes": 15},
                target={
                    "arn": pipeline.arn,
                    "role_arn": scheduler_role.arn,
                    "sagemaker_pipeline_parameters": {
                        "pipeline_parameters": [{"name": PARAM_TRIGGER, "value": "schedule"}]
                    },
                    "retry_policy": {"maximum_retry_attempts": 3, "maximum_event_age_in_seconds": 3600},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
        if not starts_from_events:
            self._failure_notice(name, args, pipeline)
            return
        events_role = aws.iam.Role(
            f"{name}-events-role",
            description=f"{name}: EventBridge starting the training pipeline (drift alarm, new data)",
            assume_role_policy=account.apply(lambda a: service_trust_policy("events.amazonaws.com", a)),
            opts=child,
        )
        policy = aws.iam.RolePolicy(f"{name}-events-policy", role=events_role.id, policy=start_policy, opts=child)
        if lifecycle.retrain_on_new_data:
            self._new_data_trigger(name, args, pipeline, events_role, policy)
        if starts_on_drift:
            alarm = args.get("drift_alarm_name")
            if not alarm:
                raise ValueError("retrain_on_drift 'retrain' needs the drift alarm's name (drift_alarm_name)")
            rule = aws.cloudwatch.EventRule(
                f"{name}-drift-rule",
                description=f"Starts the training pipeline when {alarm} goes to ALARM",
                event_pattern=json.dumps(drift_event_pattern(alarm)),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-drift-target",
                rule=rule.name,
                arn=pipeline.arn,
                role_arn=events_role.arn,
                sagemaker_pipeline_target={
                    "pipeline_parameter_lists": [{"name": PARAM_TRIGGER, "value": f"drift-alarm:{alarm}"}]
                },
                # A burst of alarm flaps starts at most one run an hour's worth of retries apart.
                retry_policy={"maximum_retry_attempts": 2, "maximum_event_age_in_seconds": 3600},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
        self._failure_notice(name, args, pipeline)

    def _new_data_trigger(
        self,
        name: str,
        args: TrainingPipelineArgs,
        pipeline: aws.sagemaker.Pipeline,
        events_role: aws.iam.Role,
        policy: aws.iam.RolePolicy,
    ) -> None:
        """A run per marker object under the training prefix. S3 sends its events to EventBridge only with the
        bucket's EventBridge notifications on; a bucket has one notification configuration, owned here."""
        lifecycle, training = args["lifecycle"], args["training"]
        notification = aws.s3.BucketNotification(
            f"{name}-data-events",
            bucket=args["data_bucket"],
            eventbridge=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-new-data-rule",
            description=f"Starts the training pipeline when {lifecycle.new_data_marker} lands under "
            f"{training.train_prefix}",
            event_pattern=pulumi.Output.from_input(args["data_bucket"]).apply(
                lambda bucket: json.dumps(
                    new_data_event_pattern(bucket, training.train_prefix, lifecycle.new_data_marker)
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[notification]),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-new-data-target",
            rule=rule.name,
            arn=pipeline.arn,
            role_arn=events_role.arn,
            sagemaker_pipeline_target={
                "pipeline_parameter_lists": [
                    {"name": PARAM_TRIGGER, "value": f"new-data:{training.train_prefix}"[:1024]}
                ]
            },
            retry_policy={"maximum_retry_attempts": 2, "maximum_event_age_in_seconds": 3600},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _failure_notice(self, name: str, args: TrainingPipelineArgs, pipeline: aws.sagemaker.Pipeline) -> None:
        """A failed run (bad data, failed training, a rejected candidate) notifies the alarm topic."""
        topic = args.get("alarm_topic_arn")
        if topic is None:
            return
        rule = aws.cloudwatch.EventRule(
            f"{name}-failed-rule",
            description="A training pipeline run failed (data validation, training, or the evaluation gate)",
            event_pattern=pipeline.arn.apply(lambda arn: json.dumps(failed_run_pattern(arn))),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-failed-topic", rule=rule.name, arn=topic, opts=pulumi.ResourceOptions(parent=self)
        )
