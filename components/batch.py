"""`BatchTransform`: offline scoring with the serving image, as a SageMaker Pipeline with one Transform step.

A run scores every file under the stack's input prefix (data bucket, `mlplatform:batchInputPrefix`) into
`<output prefix><execution id>/` with a Batch Transform job: `SplitType: Line` (one record per line, as
`python -m serving batch` reads locally), `BatchStrategy: MultiRecord` (many lines per request, up to
MaxPayloadInMB), `AssembleWith: Line` (one answer line per record, in order), and with `mlplatform:batchJoinInput`
`DataProcessing.JoinSource: Input`. The model is this component's own SageMaker Model: the stack's serving image by
digest and model files, so batch scores with exactly what the endpoint serves.

Unset MaxPayloadInMB / MaxConcurrentTransforms are left out of the request: SageMaker then asks the container's
GET /execution-parameters (serving/app.py: one request per worker, 6 MB). AWS: "Use Your Own Inference Code with
Batch Transform" (docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html), "How Containers Serve
Requests": /invocations and /ping, and the optional /execution-parameters.

Started by EventBridge Scheduler when `mlplatform:batchSchedule` is set: SageMaker StartPipelineExecution is a
templated target (AWS: EventBridge Scheduler user guide, "Using templated targets"; API reference
SageMakerPipelineParameters), so the target ARN is the pipeline's and the schedule's role may call
`sagemaker:StartPipelineExecution` on that pipeline only.

Roles, least privilege:
- the model's execution role: a transform job has no role of its own (CreateTransformJob takes none); SageMaker
  uses the model's ("CreateModel: ExecutionRoleArn ... to access model artifacts and docker image for deployment
  on ML compute instances or for batch transform jobs"): pull the image, read the model files and the input
  prefix, write the output prefix, the project key, the job's logs;
- the pipeline's role: create/describe/stop the run's transform job, and the project key for its volume and output;
  no iam:PassRole, since CreateTransformJob passes no role;
- the scheduler's role: StartPipelineExecution on this pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.endpoint import parse_ecr_image, parse_model_prefix, serving_container
from components.iam import service_trust_policy
from components.settings import BatchSettings, has_local_nvme

STEP_TRANSFORM = "BatchTransform"
PARAM_INPUT = "InputUri"
PARAM_TRIGGER = "TriggeredBy"
ACCEPT = {"text/csv": "text/csv", "application/jsonlines": "application/jsonlines"}
"""The answer's media type for each input type: the same format, so joined output stays one format."""


def transform_pipeline_definition(
    *, model_name: str, data_bucket: str, kms_key_arn: str, settings: BatchSettings
) -> dict[str, Any]:
    """The pipeline definition (schema 2020-12-01): one Transform step whose Arguments are a CreateTransformJob
    request (the sagemaker SDK's workflow.steps.TransformStep builds them from Transformer's request dict)."""
    arguments: dict[str, Any] = {
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": {"Get": f"Parameters.{PARAM_INPUT}"}}},
            "ContentType": settings.content_type,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": {
                "Std:Join": {
                    "On": "/",
                    "Values": [
                        f"s3://{data_bucket}/{settings.output_prefix.rstrip('/')}",
                        {"Get": "Execution.PipelineExecutionId"},
                    ],
                }
            },
            "Accept": ACCEPT[settings.content_type],
            "AssembleWith": "Line",
            "KmsKeyId": kms_key_arn,
        },
        "TransformResources": {
            "InstanceType": settings.instance_type,
            "InstanceCount": settings.instance_count,
            **({} if has_local_nvme(settings.instance_type) else {"VolumeKmsKeyId": kms_key_arn}),
        },
        "DataProcessing": {"JoinSource": "Input" if settings.join_input else "None"},
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": settings.invocations_timeout_seconds,
            "InvocationsMaxRetries": 1,
        },
    }
    if settings.max_payload_in_mb is not None:
        arguments["MaxPayloadInMB"] = settings.max_payload_in_mb
    if settings.max_concurrent_transforms is not None:
        arguments["MaxConcurrentTransforms"] = settings.max_concurrent_transforms
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {"Name": PARAM_INPUT, "Type": "String", "DefaultValue": f"s3://{data_bucket}/{settings.input_prefix}"},
            {"Name": PARAM_TRIGGER, "Type": "String", "DefaultValue": "manual"},
        ],
        "Steps": [{"Name": STEP_TRANSFORM, "Type": "Transform", "Arguments": arguments}],
    }


def model_role_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    image: str,
    model_data_uri: str,
    data_bucket: str,
    input_prefix: str,
    output_prefix: str,
    kms_key_arns: Sequence[str],
) -> str:
    """The transform job's permissions (the model's execution role): each statement on this stack's own things."""
    s3 = f"arn:{partition}:s3:::"
    image_account, image_region, repository = parse_ecr_image(image)
    model_bucket, model_key = parse_model_prefix(model_data_uri)
    logs = f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/sagemaker/TransformJobs"
    listed: dict[str, list[str]] = {}
    for bucket, key in ((model_bucket, model_key), (data_bucket, input_prefix)):
        listed.setdefault(bucket, []).append(f"{key}*")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PullServingImage",
                    "Effect": "Allow",
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    "Resource": f"arn:{partition}:ecr:{image_region}:{image_account}:repository/{repository}",
                },
                # GetAuthorizationToken has no resource-level permission: AWS requires "*".
                {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {
                    "Sid": "ReadModelAndInput",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": [f"{s3}{model_bucket}/{model_key}*", f"{s3}{data_bucket}/{input_prefix}*"],
                },
                *(
                    {
                        "Sid": f"ListPrefixes{i}",
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": f"{s3}{bucket}",
                        "Condition": {"StringLike": {"s3:prefix": sorted(prefixes)}},
                    }
                    for i, (bucket, prefixes) in enumerate(sorted(listed.items()))
                ),
                {
                    "Sid": "WriteOutput",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                    "Resource": f"{s3}{data_bucket}/{output_prefix}*",
                },
                {
                    "Sid": "UseKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"],
                    "Resource": sorted(set(kms_key_arns)),
                },
                {
                    "Sid": "TransformLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [logs, f"{logs}:log-stream:*"],
                },
            ],
        }
    )


def pipeline_role_policy(*, partition: str, region: str, account_id: str, kms_key_arn: str) -> str:
    """What SageMaker Pipelines does for a run: the Transform step's job, and the project key it encrypts with."""
    jobs = f"arn:{partition}:sagemaker:{region}:{account_id}:transform-job/pipelines-*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RunTransformStep",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateTransformJob",
                        "sagemaker:DescribeTransformJob",
                        "sagemaker:StopTransformJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": jobs,
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


def start_pipeline_policy(pipeline_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StartBatchPipeline",
                    "Effect": "Allow",
                    "Action": "sagemaker:StartPipelineExecution",
                    "Resource": pipeline_arn,
                }
            ],
        }
    )


class BatchTransformArgs(TypedDict):
    image: pulumi.Input[str]
    """Serving image by digest, in ECR (the transform job pulls it with the model's role)."""
    model_data_uri: pulumi.Input[str]
    """S3 prefix of the uncompressed model files (the same the endpoint serves)."""
    data_bucket: pulumi.Input[str]
    """Bucket holding the input and output prefixes."""
    kms_key_arn: pulumi.Input[str]
    """Project key: the job's volume, its output, and the bucket's objects."""
    region: str
    """AWS region of the stack."""
    settings: BatchSettings
    """Prefixes, format, instances, payload, join and schedule."""
    precision: str
    """Graph the container loads (`fp32` or `int8`), as for the endpoint."""
    source_kms_key_arns: NotRequired[Sequence[pulumi.Input[str]]]
    """Keys of promoted model files kept in another stack's bucket (read with decrypt)."""


class BatchTransform(pulumi.ComponentResource):
    """The batch model, the pipeline with its Transform step, the roles, and the schedule that starts it.

    Example::

        batch = BatchTransform("mlplatform-dev-batch", {
            "image": model.serving_image, "model_data_uri": model.model_data_uri,
            "data_bucket": store.data_bucket, "kms_key_arn": store.kms_key_arn,
            "region": "us-east-1", "settings": settings.batch, "precision": "fp32"})
    """

    pipeline_name: pulumi.Output[str]
    pipeline_arn: pulumi.Output[str]
    model_name: pulumi.Output[str]

    def __init__(self, name: str, args: BatchTransformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:batch:BatchTransform", name, None, opts)
        settings = args["settings"]
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        child = pulumi.ResourceOptions(parent=self)
        region = args["region"]

        model_role = aws.iam.Role(
            f"{name}-model-role",
            description=f"{name}: the batch transform jobs (the model's execution role)",
            assume_role_policy=account.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=child,
        )
        model_policy = aws.iam.RolePolicy(
            f"{name}-model-policy",
            role=model_role.id,
            policy=pulumi.Output.all(
                partition,
                account,
                args["image"],
                args["model_data_uri"],
                args["data_bucket"],
                args["kms_key_arn"],
                *args.get("source_kms_key_arns", []),
            ).apply(
                lambda v: model_role_policy(
                    partition=v[0],
                    region=region,
                    account_id=v[1],
                    image=v[2],
                    model_data_uri=v[3],
                    data_bucket=v[4],
                    input_prefix=settings.input_prefix,
                    output_prefix=settings.output_prefix,
                    kms_key_arns=[v[5], *v[6:]],
                )
            ),
            opts=child,
        )
        model = aws.sagemaker.Model(
            f"{name}-model",
            # No `name`: every field of a model forces replacement; a new image or model gets a new model.
            execution_role_arn=model_role.arn,
            enable_network_isolation=True,
            primary_container=serving_container(args["image"], args["model_data_uri"], args["precision"]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[model_policy]),
        )
        pipeline_role = aws.iam.Role(
            f"{name}-pipeline-role",
            description=f"{name}: SageMaker Pipelines running the batch transform pipeline",
            assume_role_policy=account.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=child,
        )
        pipeline_policy = aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            role=pipeline_role.id,
            policy=pulumi.Output.all(partition, account, args["kms_key_arn"]).apply(
                lambda v: pipeline_role_policy(partition=v[0], region=region, account_id=v[1], kms_key_arn=v[2])
            ),
            opts=child,
        )
        definition = pulumi.Output.all(model.name, args["data_bucket"], args["kms_key_arn"]).apply(
            lambda v: json.dumps(
                transform_pipeline_definition(model_name=v[0], data_bucket=v[1], kms_key_arn=v[2], settings=settings),
                sort_keys=True,
            )
        )
        pipeline_name = f"{name}-transform"
        pipeline = aws.sagemaker.Pipeline(
            f"{name}-pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description="batch transform of the input prefix with the serving model (mlplatform)",
            role_arn=pipeline_role.arn,
            pipeline_definition=definition,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipeline_policy]),
        )
        if settings.schedule is not None:
            scheduler_role = aws.iam.Role(
                f"{name}-scheduler-role",
                description=f"{name}: EventBridge Scheduler starting the batch transform pipeline",
                assume_role_policy=account.apply(lambda a: service_trust_policy("scheduler.amazonaws.com", a)),
                opts=child,
            )
            start_policy = aws.iam.RolePolicy(
                f"{name}-scheduler-policy",
                role=scheduler_role.id,
                policy=pipeline.arn.apply(start_pipeline_policy),
                opts=child,
            )
            aws.scheduler.Schedule(
                f"{name}-schedule",
                name=pipeline_name,
                description="Starts the batch transform pipeline on the stack's schedule",
                schedule_expression=settings.schedule,
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
                opts=pulumi.ResourceOptions(parent=self, depends_on=[start_policy]),
            )
        self.pipeline_name = pipeline.pipeline_name
        self.pipeline_arn = pipeline.arn
        self.model_name = model.name
        self.register_outputs(
            {"pipeline_name": self.pipeline_name, "pipeline_arn": self.pipeline_arn, "model_name": self.model_name}
        )
