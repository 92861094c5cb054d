"""`ExperimentTracking`: a SageMaker managed MLflow tracking server for the training pipeline's runs.

The server (pulumi-aws `aws.sagemaker.MlflowTrackingServer`, terraform-provider-aws
internal/service/sagemaker/mlflow_tracking_server.go: CreateMlflowTrackingServer, the resource id is the
tracking server name, `arn` read back from DescribeMlflowTrackingServer; `tracking_server_size` defaults to
Small and `automatic_model_registration` to false) keeps its artifacts under `mlflow/` of the model bucket and
reads and writes them with its own role. The pipeline's jobs log to it with their role, through AWS's
`sagemaker-mlflow` plugin (the tracking URI is the server's ARN; requests are SigV4-signed for the
`sagemaker-mlflow` service, whose actions are listed in the Service Authorization Reference, "Actions, resources,
and condition keys for Amazon SageMaker with MLflow"), and write artifacts straight to the artifact store.

The model registry stays the SageMaker model package group (components/registry.py): automatic registration
of MLflow models is off, and each model package records its run id instead (docs/lifecycle.md).
"""

from __future__ import annotations

import json
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy
from components.settings import LifecycleSettings

ARTIFACT_PREFIX = "mlflow/"
"""Key prefix in the model bucket holding the tracking server's artifact store."""
LOGGING_ACTIONS = (
    "sagemaker-mlflow:GetExperiment",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:UpdateRun",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:LogMetric",
    "sagemaker-mlflow:LogParam",
    "sagemaker-mlflow:SetTag",
)
"""What `training.tracking.record_run` calls through mlflow's REST store: get/create the experiment, create the
run, log batches of params and metrics, read the run (its artifact URI) and end it (UpdateRun)."""


def server_role_policy(*, partition: str, model_bucket: str, kms_key_arn: str) -> str:
    """The tracking server's role: its artifact store under `mlflow/` of the model bucket, with the project key
    the bucket encrypts with."""
    s3 = f"arn:{partition}:s3:::{model_bucket}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "LocateArtifactStore", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": s3},
                {
                    "Sid": "ListArtifactStore",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": s3,
                    "Condition": {"StringLike": {"s3:prefix": [f"{ARTIFACT_PREFIX}*"]}},
                },
                {
                    "Sid": "UseArtifactStore",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                    "Resource": f"{s3}/{ARTIFACT_PREFIX}*",
                },
                {
                    "Sid": "UseProjectKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    "Resource": kms_key_arn,
                },
            ],
        }
    )


def logging_statements(*, partition: str, server_arn: str, model_bucket: str) -> list[dict[str, object]]:
    """IAM statements a job needs to record runs on the server: the MLflow API calls on that server, and its
    artifacts written under the artifact store (mlflow's S3 artifact repository uses the caller's credentials)."""
    return [
        {"Sid": "TrackExperiments", "Effect": "Allow", "Action": list(LOGGING_ACTIONS), "Resource": server_arn},
        {
            "Sid": "WriteTrackingArtifacts",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:{partition}:s3:::{model_bucket}/{ARTIFACT_PREFIX}*",
        },
    ]


class ExperimentTrackingArgs(TypedDict):
    model_bucket: pulumi.Input[str]
    """Bucket whose `mlflow/` prefix is the artifact store."""
    kms_key_arn: pulumi.Input[str]
    """Project key the bucket's objects are encrypted with."""
    lifecycle: LifecycleSettings
    """Server size, MLflow version and maintenance window (`mlplatform:lifecycleTracking*`)."""


class ExperimentTracking(pulumi.ComponentResource):
    """The MLflow tracking server and its role.

    Example::

        tracking = ExperimentTracking("mlplatform-dev-tracking", {
            "model_bucket": store.model_bucket, "kms_key_arn": store.kms_key_arn,
            "lifecycle": settings.lifecycle})
        tracking.server_arn  # MLFLOW_TRACKING_URI of the pipeline's Evaluate step
    """

    server_arn: pulumi.Output[str]
    server_name: pulumi.Output[str]
    artifact_store_uri: pulumi.Output[str]

    def __init__(self, name: str, args: ExperimentTrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:lifecycle:ExperimentTracking", name, None, opts)
        lifecycle = args["lifecycle"]
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        child = pulumi.ResourceOptions(parent=self)

        role = aws.iam.Role(
            f"{name}-role",
            description=f"{name}: the MLflow tracking server's artifact store",
            assume_role_policy=account.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(partition, args["model_bucket"], args["kms_key_arn"]).apply(
                lambda v: server_role_policy(partition=v[0], model_bucket=v[1], kms_key_arn=v[2])
            ),
            opts=child,
        )
        artifact_store_uri = pulumi.Output.concat("s3://", args["model_bucket"], "/", ARTIFACT_PREFIX)
        server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-server",
            tracking_server_name=name,
            artifact_store_uri=artifact_store_uri,
            role_arn=role.arn,
            tracking_server_size=lifecycle.tracking_server_size,
            mlflow_version=lifecycle.tracking_mlflow_version,
            weekly_maintenance_window_start=lifecycle.tracking_maintenance_window,
            automatic_model_registration=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.server_arn = server.arn
        self.server_name = server.tracking_server_name
        self.artifact_store_uri = artifact_store_uri
        self.register_outputs(
            {
                "server_arn": self.server_arn,
                "server_name": self.server_name,
                "artifact_store_uri": self.artifact_store_uri,
            }
        )
