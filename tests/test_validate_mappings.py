"""The Pulumi-to-AWS mapping of tools/aws_models.py: complete for every input the SDK accepts, and, per mapped
resource type, a known good example that passes and a known bad one caught with a message naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.plan_paths import DELETE, set_path
from tools.aws_models import (
    MAPPINGS,
    compile_pattern,
    descend,
    input_shape,
    operation,
    pulumi_schema,
    required_members,
    resolve_child,
    schema_paths,
    unresolved_paths,
)
from tools.validate import Violation, validate_plan

ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/mlplatform-dev-sagemaker"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:mlplatform-dev-alarms"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlplatform-dev-serving@sha256:" + "a" * 64
BUCKET = "mlplatform-dev-models-1a2b3c4"


def _doc(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


TRUST = _doc([{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}])
READ_MODELS = _doc(
    [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/*"]},
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"], "Resource": "*"},
    ]
)
LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the last 20 images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20},
                "action": {"type": "expire"},
            }
        ]
    }
)

PIPELINE_DEFINITION: dict[str, Any] = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "WindowEnd", "Type": "String", "DefaultValue": ""}],
    "Steps": [
        {
            "Name": "Monitor",
            "Type": "Processing",
            "Arguments": {
                "RoleArn": ROLE_ARN,
                "AppSpecification": {"ImageUri": IMAGE},
                "ProcessingResources": {
                    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 20}
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
                "Environment": {"end_time": {"Get": "Parameters.WindowEnd"}},
            },
        }
    ],
}

# type -> (good inputs, mutation of them, the Pulumi path the violation must name, words its message must hold)
Example = tuple[dict[str, Any], Callable[[dict[str, Any]], None], str, str]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting `a.b[0].c` to `value` (or deleting it when value is `_DELETE`)."""
    return lambda inputs: set_path(inputs, path, value)


_DELETE = DELETE

EXAMPLES: dict[str, Example] = {
    # terraform-provider-aws internal/service/budgets/budget.go ResourceBudget: budget_type and time_unit are
    # required, each notification needs comparison_operator, notification_type, threshold and threshold_type.
    "aws:budgets/budget:Budget": (
        {
            "name": "mlplatform-dev",
            "budgetType": "COST",
            "timeUnit": "MONTHLY",
            "limitAmount": "300",
            "limitUnit": "USD",
            "costFilters": [{"name": "TagKeyValue", "values": ["user:stack$dev"]}],
            "notifications": [
                {
                    "comparisonOperator": "GREATER_THAN",
                    "threshold": 80.0,
                    "thresholdType": "PERCENTAGE",
                    "notificationType": "ACTUAL",
                    "subscriberSnsTopicArns": [TOPIC_ARN],
                }
            ],
        },
        _set("notifications[0].thresholdType", "PERCENT"),
        "notifications[0].thresholdType",
        "PERCENTAGE, ABSOLUTE_VALUE",
    ),
    "aws:s3/bucket:Bucket": (
        {"bucket": BUCKET, "forceDestroy": False},
        _set("bucket", "Models_Bucket"),
        "bucket",
        "bucket name",
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        {
            "bucket": BUCKET,
            "rules": [
                {
                    "id": "expire-noncurrent",
                    "status": "Enabled",
                    "filter": {"prefix": "captures/"},
                    "noncurrentVersionExpiration": {"noncurrentDays": 30.0},
                    "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7.0},
                }
            ],
        },
        _set("rules[0].status", "On"),
        "rules[0].status",
        "one of Enabled, Disabled",
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (
        {"bucket": BUCKET, "rule": {"objectOwnership": "BucketOwnerEnforced"}},
        _set("rule.objectOwnership", "BucketOwner"),
        "rule.objectOwnership",
        "one of",
    ),
    "aws:s3/bucketPolicy:BucketPolicy": (
        {
            "bucket": BUCKET,
            "policy": _doc(
                [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            ),
        },
        lambda i: i.update(policy=i["policy"].replace('"s3:*"', '"s3:GetObjcet"')),
        "policy IAM UNKNOWN_ACTION",
        "an action IAM defines",
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        {
            "bucket": BUCKET,
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        _set("restrictPublicBuckets", "yes"),
        "restrictPublicBuckets",
        "true or false",
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        {
            "bucket": BUCKET,
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY_ARN},
                    "bucketKeyEnabled": True,
                }
            ],
        },
        _set("rules[0].applyServerSideEncryptionByDefault.kmsMasterKeyId", f"arn:aws:kms:{REGION}:{ACCOUNT}:key"),
        "rules[0].applyServerSideEncryptionByDefault.kmsMasterKeyId",
        "kms ARN",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": (
        {"bucket": BUCKET, "versioningConfiguration": {"status": "Enabled"}},
        _set("versioningConfiguration.status", "On"),
        "versioningConfiguration.status",
        "one of Enabled, Suspended",
    ),
    # terraform-provider-aws internal/service/s3/bucket_notification.go: PutBucketNotificationConfiguration.
    "aws:s3/bucketNotification:BucketNotification": (
        {"bucket": BUCKET, "eventbridge": True},
        _set("bucket", "Not_A_Bucket!"),
        "bucket",
        "S3 bucket name",
    ),
    "aws:s3/bucketObjectv2:BucketObjectv2": (
        {
            "bucket": BUCKET,
            "key": "baselines/statistics.json",
            "content": "{}",
            "contentType": "application/json",
            "serverSideEncryption": "aws:kms",
            "kmsKeyId": KEY_ARN,
            "tags": {"kind": "baseline"},
        },
        _set("serverSideEncryption", "kms"),
        "serverSideEncryption",
        "one of AES256",
    ),
    "aws:s3/objectCopy:ObjectCopy": (
        {
            "bucket": BUCKET,
            "key": "promoted/mlplatform-dev-models-0a1b2c3/training/job-1/output/model/model.onnx",
            "source": "mlplatform-dev-models-0a1b2c3/training/job-1/output/model/model.onnx",
            "serverSideEncryption": "aws:kms",
            "bucketKeyEnabled": True,
        },
        _set("serverSideEncryption", "kms"),
        "serverSideEncryption",
        "one of AES256",
    ),
    "aws:kms/key:Key": (
        {
            "description": "mlplatform-dev: encrypts ML data",
            "deletionWindowInDays": 30.0,
            "enableKeyRotation": True,
            "policy": _doc(
                [
                    {
                        "Sid": "AccountAdmin",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ]
            ),
        },
        _set("deletionWindowInDays", 3.0),
        "deletionWindowInDays",
        "7 to 30 days",
    ),
    "aws:kms/alias:Alias": (
        {"name": "alias/mlplatform-dev", "targetKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"},
        _set("name", "alias/aws/mlplatform"),
        "name",
        "not `alias/aws/`",
    ),
    "aws:iam/role:Role": (
        {
            "assumeRolePolicy": TRUST,
            "description": "SageMaker execution role",
            "maxSessionDuration": 3600.0,
            "inlinePolicies": [{"name": "read-models", "policy": READ_MODELS}],
        },
        _set("maxSessionDuration", 60.0),
        "maxSessionDuration",
        "3600 to 43200",
    ),
    "aws:iam/policy:Policy": (
        {"description": "read models", "policy": READ_MODELS},
        lambda i: i.update(policy=i["policy"].replace(f"arn:aws:s3:::{BUCKET}/*", "*")),
        "policy Statement[0].Resource",
        "s3:GetObject",
    ),
    "aws:iam/rolePolicy:RolePolicy": (
        {"role": "mlplatform-dev-sagemaker", "policy": READ_MODELS},
        _set("role", "mlplatform dev/sagemaker"),
        "role",
        "matching",
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        {"role": "mlplatform-dev-sagemaker", "policyArn": "arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"},
        _set("policyArn", f"arn:aws:iam:{REGION}:{ACCOUNT}:policy/read-models"),
        "policyArn",
        "IAM ARN without region",
    ),
    "aws:ecr/repository:Repository": (
        {
            "name": "mlplatform-dev-serving",
            "imageTagMutability": "IMMUTABLE",
            "imageScanningConfiguration": {"scanOnPush": True},
            "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY_ARN}],
            "forceDelete": True,
        },
        _set("imageTagMutability", "LOCKED"),
        "imageTagMutability",
        "one of MUTABLE, IMMUTABLE",
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": (
        {"repository": "mlplatform-dev-serving", "policy": LIFECYCLE},
        lambda i: i.update(policy=i["policy"].replace('"countNumber": 20', '"countNumber": 0')),
        "policy rules[0].selection.countNumber",
        "at least 1",
    ),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": (
        {
            "repository": "mlplatform-dev-serving",
            "policy": _doc(
                [
                    {
                        "Sid": "SageMakerPull",
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    }
                ]
            ),
        },
        lambda i: i.update(policy=i["policy"].replace("ecr:BatchGetImage", "ecr:BatchGetImages")),
        "policy IAM UNKNOWN_ACTION",
        "an action IAM defines",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        {
            "name": "mlplatform-dev-5xx",
            "comparisonOperator": "GreaterThanOrEqualToThreshold",
            "evaluationPeriods": 3.0,
            "datapointsToAlarm": 2.0,
            "metricName": "Invocation5XXErrors",
            "namespace": "AWS/SageMaker",
            "period": 60.0,
            "statistic": "Sum",
            "threshold": 5.0,
            "treatMissingData": "notBreaching",
            "dimensions": {"EndpointName": "mlplatform-dev", "VariantName": "AllTraffic"},
            "alarmActions": [TOPIC_ARN],
        },
        _set("period", 45.0),
        "period",
        "multiple of 60",
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        {
            "dashboardName": "mlplatform-dev",
            "dashboardBody": json.dumps(
                {"widgets": [{"type": "metric", "properties": {"metrics": [["AWS/SageMaker", "Invocations"]]}}]}
            ),
        },
        lambda i: i.update(dashboardBody=i["dashboardBody"].replace('"metric"', '"graph"')),
        "dashboardBody widgets[0].type",
        "one of metric",
    ),
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": (
        {
            "alarmName": "mlplatform-dev-rollback",
            "alarmRule": 'ALARM("mlplatform-dev-5xx") OR ALARM("mlplatform-dev-latency")',
            "alarmActions": [TOPIC_ARN],
            "actionsSuppressor": {"alarm": "mlplatform-dev-maintenance", "waitPeriod": 60.0, "extensionPeriod": 60.0},
        },
        _set("alarmRule", "ALARM(x)" * 1500),
        "alarmRule",
        "characters",
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        {"name": "/aws/sagemaker/Endpoints/mlplatform-dev", "retentionInDays": 30.0, "kmsKeyId": KEY_ARN},
        _set("name", "mlplatform dev logs!"),
        "name",
        "matching",
    ),
    "aws:cloudwatch/eventRule:EventRule": (
        {
            "name": "mlplatform-dev-monitor-failed",
            "description": "A Model Monitor run failed",
            "eventPattern": json.dumps(
                {
                    "source": ["aws.sagemaker"],
                    "detail-type": ["SageMaker Processing Job State Change"],
                    "detail": {"ProcessingJobStatus": ["Failed"]},
                }
            ),
        },
        lambda i: i.update(eventPattern=i["eventPattern"].replace('["Failed"]', '"Failed"')),
        "eventPattern detail.ProcessingJobStatus",
        "non-empty list",
    ),
    "aws:cloudwatch/eventTarget:EventTarget": (
        {"rule": "mlplatform-dev-monitor-failed", "arn": TOPIC_ARN, "targetId": "alarm-topic"},
        _set("arn", "arn:aws:sns:us-east-1:11112222:mlplatform-dev-alarms"),
        "arn",
        "an ARN",
    ),
    "aws:sns/topic:Topic": (
        {"name": "mlplatform-dev-alarms", "kmsMasterKeyId": "alias/aws/sns", "displayName": "mlplatform alarms"},
        _set("name", "mlplatform dev alarms"),
        "name",
        "letters, digits",
    ),
    "aws:sns/topicPolicy:TopicPolicy": (
        {
            "arn": TOPIC_ARN,
            "policy": _doc(
                [
                    {
                        "Sid": "CloudWatchPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": TOPIC_ARN,
                    }
                ]
            ),
        },
        lambda i: i.update(policy=i["policy"].replace("sns:Publish", "sns:Publsh")),
        "policy IAM UNKNOWN_ACTION",
        "an action IAM defines",
    ),
    "aws:sns/topicSubscription:TopicSubscription": (
        {"topic": TOPIC_ARN, "protocol": "email", "endpoint": "ml-oncall@example.com"},
        _set("protocol", "mail"),
        "protocol",
        "one of http, https, email",
    ),
    "aws:scheduler/schedule:Schedule": (
        {
            "scheduleExpression": "rate(1 hour)",
            "flexibleTimeWindow": {"mode": "OFF"},
            "state": "ENABLED",
            "target": {
                "arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlplatform-dev-monitor",
                "roleArn": ROLE_ARN,
                "sagemakerPipelineParameters": {"pipelineParameters": [{"name": "Threshold", "value": "0.1"}]},
            },
        },
        _set("flexibleTimeWindow.mode", "SOMETIMES"),
        "flexibleTimeWindow.mode",
        "one of OFF, FLEXIBLE",
    ),
    "aws:appautoscaling/target:Target": (
        {
            "maxCapacity": 12.0,
            "minCapacity": 4.0,
            "resourceId": "endpoint/mlplatform-prod/variant/AllTraffic",
            "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "serviceNamespace": "sagemaker",
        },
        _set("scalableDimension", "sagemaker:variant:InstanceCount"),
        "scalableDimension",
        "sagemaker:variant:DesiredInstanceCount",
    ),
    "aws:appautoscaling/policy:Policy": (
        {
            "name": "mlplatform-prod-invocations",
            "policyType": "TargetTrackingScaling",
            "resourceId": "endpoint/mlplatform-prod/variant/AllTraffic",
            "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "serviceNamespace": "sagemaker",
            "targetTrackingScalingPolicyConfiguration": {
                "targetValue": 3000.0,
                "scaleInCooldown": 300.0,
                "scaleOutCooldown": 60.0,
                "predefinedMetricSpecification": {"predefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        },
        _set(
            "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType",
            "SageMakerInvocationsPerInstance",
        ),
        "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType",
        "one of",
    ),
    "aws:sagemaker/model:Model": (
        {
            "executionRoleArn": ROLE_ARN,
            "primaryContainer": {
                "image": IMAGE,
                "modelDataUrl": f"s3://{BUCKET}/models/run-1/model.tar.gz",
                "environment": {"MODEL_PRECISION": "fp32"},
            },
        },
        _set("primaryContainer.modelDataUrl", f"ftp://{BUCKET}/model.tar.gz"),
        "primaryContainer.modelDataUrl",
        "matching",
    ),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": (
        {
            "productionVariants": [
                {
                    "variantName": "AllTraffic",
                    "modelName": "mlplatform-dev-model",
                    "initialInstanceCount": 1.0,
                    "instanceType": "ml.c6i.large",
                    "initialVariantWeight": 1.0,
                    "containerStartupHealthCheckTimeoutInSeconds": 600.0,
                    "modelDataDownloadTimeoutInSeconds": 600.0,
                }
            ],
            "dataCaptureConfig": {
                "enableCapture": True,
                "initialSamplingPercentage": 100.0,
                "destinationS3Uri": f"s3://{BUCKET}/capture",
                "kmsKeyId": KEY_ARN,
                "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
                "captureContentTypeHeader": {"csvContentTypes": ["text/csv"], "jsonContentTypes": ["application/json"]},
            },
            "kmsKeyArn": KEY_ARN,
        },
        _set("productionVariants[0].instanceType", "ml.c6i.huge"),
        "productionVariants[0].instanceType",
        "values of ProductionVariantInstanceType in the AWS model (closest: ml.c6i.large",
    ),
    "aws:sagemaker/endpoint:Endpoint": (
        {
            "endpointConfigName": "mlplatform-dev-config",
            "deploymentConfig": {
                "blueGreenUpdatePolicy": {
                    "trafficRoutingConfiguration": {
                        "type": "CANARY",
                        "waitIntervalInSeconds": 600.0,
                        "canarySize": {"type": "CAPACITY_PERCENT", "value": 25.0},
                    },
                    "terminationWaitInSeconds": 300.0,
                    "maximumExecutionTimeoutInSeconds": 3600.0,
                },
                "autoRollbackConfiguration": {"alarms": [{"alarmName": "mlplatform-dev-5xx"}]},
            },
        },
        _set("deploymentConfig.blueGreenUpdatePolicy.maximumExecutionTimeoutInSeconds", 30000.0),
        "deploymentConfig.blueGreenUpdatePolicy.maximumExecutionTimeoutInSeconds",
        "600 to 28800",
    ),
    "aws:sagemaker/trainingJob:TrainingJob": (
        {
            "trainingJobName": "mlplatform-dev-train-1a2b3c4",
            "roleArn": ROLE_ARN,
            "algorithmSpecification": {"trainingImage": IMAGE, "trainingInputMode": "File"},
            "outputDataConfig": {"s3OutputPath": f"s3://{BUCKET}/models", "kmsKeyId": KEY_ARN},
            "resourceConfig": {"instanceType": "ml.g5.xlarge", "instanceCount": 1.0, "volumeSizeInGb": 50.0},
            "stoppingCondition": {"maxRuntimeInSeconds": 3600.0, "maxWaitTimeInSeconds": 7200.0},
            "enableManagedSpotTraining": True,
            "checkpointConfig": {"s3Uri": f"s3://{BUCKET}/checkpoints"},
            "hyperParameters": {"epochs": "20", "target": "label"},
            "inputDataConfigs": [
                {
                    "channelName": "train",
                    "contentType": "text/csv",
                    "dataSource": {
                        "s3DataSource": {
                            "s3DataType": "S3Prefix",
                            "s3Uri": "s3://mlplatform-dev-data-1a2b3c4/datasets/demo/train/",
                            "s3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
        },
        _set("trainingJobName", "mlplatform-dev-train-" + "x" * 60),
        "trainingJobName",
        "characters",
    ),
    "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition": (
        {
            "name": "mlplatform-dev-data-quality",
            "roleArn": ROLE_ARN,
            "dataQualityAppSpecification": {"imageUri": IMAGE},
            "dataQualityJobInput": {
                "endpointInput": {"endpointName": "mlplatform-dev", "localPath": "/opt/ml/processing/input"}
            },
            "dataQualityJobOutputConfig": {
                "monitoringOutputs": {
                    "s3Output": {"s3Uri": f"s3://{BUCKET}/monitoring", "localPath": "/opt/ml/processing/output"}
                }
            },
            "jobResources": {
                "clusterConfig": {"instanceCount": 1.0, "instanceType": "ml.m5.large", "volumeSizeInGb": 20.0}
            },
            "stoppingCondition": {"maxRuntimeInSeconds": 1800.0},
        },
        _set("stoppingCondition.maxRuntimeInSeconds", 100000.0),
        "stoppingCondition.maxRuntimeInSeconds",
        "1 to 86400",
    ),
    "aws-native:sagemaker:ModelQualityJobDefinition": (
        {
            "endpointName": "mlplatform-dev",
            "roleArn": ROLE_ARN,
            "modelQualityAppSpecification": {"imageUri": IMAGE, "problemType": "BinaryClassification"},
            "modelQualityJobInput": {
                "endpointInput": {
                    "endpointName": "mlplatform-dev",
                    "localPath": "/opt/ml/processing/input",
                    "startTimeOffset": "-PT25H",
                    "endTimeOffset": "-PT24H",
                },
                "groundTruthS3Input": {"s3Uri": f"s3://{BUCKET}/ground-truth/mlplatform-dev/"},
            },
            "modelQualityJobOutputConfig": {
                "monitoringOutputs": [
                    {"s3Output": {"s3Uri": f"s3://{BUCKET}/monitoring", "localPath": "/opt/ml/processing/output"}}
                ]
            },
            "jobResources": {
                "clusterConfig": {"instanceCount": 1.0, "instanceType": "ml.m5.large", "volumeSizeInGb": 20.0}
            },
        },
        _set("modelQualityAppSpecification.problemType", "Binary"),
        "modelQualityAppSpecification.problemType",
        "BinaryClassification",
    ),
    "aws-native:sagemaker:ModelBiasJobDefinition": (
        {
            "endpointName": "mlplatform-dev",
            "roleArn": ROLE_ARN,
            "modelBiasAppSpecification": {"imageUri": IMAGE, "configUri": f"s3://{BUCKET}/analysis_config.json"},
            "modelBiasJobInput": {
                "endpointInput": {"endpointName": "mlplatform-dev", "localPath": "/opt/ml/processing/input"},
                "groundTruthS3Input": {"s3Uri": f"s3://{BUCKET}/ground-truth/mlplatform-dev/"},
            },
            "modelBiasJobOutputConfig": {
                "monitoringOutputs": [
                    {"s3Output": {"s3Uri": f"s3://{BUCKET}/monitoring", "localPath": "/opt/ml/processing/output"}}
                ]
            },
            "jobResources": {
                "clusterConfig": {"instanceCount": 1.0, "instanceType": "ml.m5.large", "volumeSizeInGb": 20.0}
            },
        },
        _set("jobResources.clusterConfig.instanceCount", 0.0),
        "jobResources.clusterConfig.instanceCount",
        "1",
    ),
    "aws:sagemaker/monitoringSchedule:MonitoringSchedule": (
        {
            "name": "mlplatform-dev-drift",
            "monitoringScheduleConfig": {
                "monitoringJobDefinitionName": "mlplatform-dev-data-quality",
                "monitoringType": "DataQuality",
                "scheduleConfig": {"scheduleExpression": "cron(0 * ? * * *)"},
            },
        },
        _set("monitoringScheduleConfig.monitoringType", "Drift"),
        "monitoringScheduleConfig.monitoringType",
        "one of DataQuality, ModelQuality",
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (
        {"modelPackageGroupName": "mlplatform-dev", "modelPackageGroupDescription": "Versions of the dev model"},
        _set("modelPackageGroupName", "mlplatform_dev"),
        "modelPackageGroupName",
        "matching",
    ),
    "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy": (
        {
            "modelPackageGroupName": "mlplatform-dev",
            "resourcePolicy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ReadModelVersions",
                            "Effect": "Allow",
                            "Principal": {"AWS": ["arn:aws:iam::444455556666:root"]},
                            "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
                            "Resource": [
                                f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/mlplatform-dev",
                                f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlplatform-dev/*",
                            ],
                        }
                    ],
                }
            ),
        },
        _set("modelPackageGroupName", "mlplatform dev"),
        "modelPackageGroupName",
        "matching",
    ),
    # terraform-provider-aws internal/service/sagemaker/mlflow_tracking_server.go: every argument goes to
    # CreateMlflowTrackingServer under its own name.
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": (
        {
            "trackingServerName": "mlplatform-dev-tracking",
            "artifactStoreUri": f"s3://{BUCKET}/mlflow/",
            "roleArn": ROLE_ARN,
            "trackingServerSize": "Small",
            "automaticModelRegistration": False,
        },
        _set("trackingServerName", "mlplatform_dev_tracking"),
        "trackingServerName",
        "matching",
    ),
    "aws:sagemaker/pipeline:Pipeline": (
        {
            "pipelineName": "mlplatform-dev-monitor",
            "pipelineDisplayName": "mlplatform-dev-monitor",
            "roleArn": ROLE_ARN,
            "pipelineDefinition": json.dumps(PIPELINE_DEFINITION),
        },
        _set("pipelineName", "mlplatform_dev_monitor"),
        "pipelineName",
        "matching",
    ),
    "docker-build:index:Image": (
        {
            "tags": [f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlplatform-dev-serving:v1"],
            "platforms": ["linux/amd64"],
            "context": {"location": "serving"},
            "push": True,
        },
        _set("platforms[0]", "linux/amd65"),
        "platforms[0]",
        "docker-build Platform",
    ),
}


def _plan(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "stack": "example",
        "resources": [
            {"type": typ, "name": "example", "parent": None, "custom": True, "inputs": inputs, "options": {}}
        ],
        "outputs": {"region": REGION},
    }


def _violations(typ: str, inputs: dict[str, Any]) -> list[Violation]:
    return validate_plan(_plan(typ, inputs)).violations


def test_every_mapped_type_has_a_good_and_a_bad_example() -> None:
    assert sorted(MAPPINGS) == sorted(EXAMPLES)


@pytest.mark.parametrize("typ", sorted(MAPPINGS))
def test_every_sdk_input_lands_on_an_aws_member_or_is_ignored_with_a_reason(typ: str) -> None:
    assert unresolved_paths(typ) == []


@pytest.mark.parametrize("typ", sorted(m for m in MAPPINGS if MAPPINGS[m].service))
def test_mapping_names_real_operations_and_members(typ: str) -> None:
    mapping = MAPPINGS[typ]
    assert mapping.service is not None and mapping.operation is not None
    operation(mapping.service, mapping.operation)  # raises for an unknown operation
    root = input_shape(mapping.service, mapping.operation)
    for member in mapping.provided:
        op, _, path = member.rpartition(":")
        base = input_shape(mapping.service, op) if op else root
        assert descend(base, path) is not None, f"{typ}: provided {member} is not a member of {op or mapping.operation}"
    sdk_paths = set(schema_paths(pulumi_schema(typ) or pytest.fail(f"no SDK schema for {typ}")))
    for path in [*mapping.policies, *mapping.documents, *mapping.rules, *mapping.ignored]:
        assert any(p == path or p.startswith((path + ".", path + "[", path + "{")) for p in sdk_paths), (
            f"{typ}: {path} is not an input of the SDK"
        )


@pytest.mark.parametrize("typ", sorted(EXAMPLES))
def test_known_good_example_passes(typ: str) -> None:
    good = EXAMPLES[typ][0]
    assert [str(v) for v in _violations(typ, good)] == []


@pytest.mark.parametrize("typ", sorted(EXAMPLES))
def test_known_bad_example_is_caught_naming_field_value_and_what_is_allowed(typ: str) -> None:
    good, mutate, path, words = EXAMPLES[typ]
    bad = copy.deepcopy(good)
    mutate(bad)
    violations = _violations(typ, bad)
    assert violations, f"{typ}: mutation not caught"
    hits = [v for v in violations if v.path == path and words in v.allowed]
    assert hits, f"{typ}: expected {path!r} with {words!r}; got {[str(v) for v in violations]}"
    text = str(hits[0])
    assert text.startswith(f"example: {typ} example: {path} = ")
    assert "allowed: " in text


@pytest.mark.parametrize("typ", sorted(m for m in MAPPINGS if MAPPINGS[m].service))
def test_every_required_request_member_is_settable_from_pulumi_or_provided(typ: str) -> None:
    mapping = MAPPINGS[typ]
    assert mapping.service is not None and mapping.operation is not None
    root = input_shape(mapping.service, mapping.operation)
    schema = pulumi_schema(typ)
    assert schema is not None
    filled = set()
    for key in schema.fields:
        target = resolve_child(mapping, root, "", key)
        if target is not None and not target.redirected:
            filled.add(target.member.split(".")[0])
    assert [m for m in required_members(root) if m not in filled and m not in mapping.provided] == []


def test_java_patterns_become_python_ones_that_accept_what_aws_accepts() -> None:
    tag = compile_pattern(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*")
    assert tag is not None and tag.approximated
    assert tag.regex.fullmatch("owner: ml-platform/team@x") is not None
    printable = compile_pattern(r"\p{Print}+")
    assert printable is not None and not printable.approximated
    assert printable.regex.fullmatch("a b") is not None and printable.regex.fullmatch("a\nb") is None
    surrogates = compile_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert surrogates is not None and surrogates.regex.fullmatch("x \U0001f600") is not None
    name = compile_pattern("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    assert name is not None and name.regex.fullmatch("bad_name") is None


def test_role_inline_policies_are_checked_against_put_role_policy_and_audited() -> None:
    good = copy.deepcopy(EXAMPLES["aws:iam/role:Role"][0])
    good["inlinePolicies"][0]["policy"] = good["inlinePolicies"][0]["policy"].replace("s3:GetObject", "s3:GetObjcet")
    good["inlinePolicies"][0]["name"] = "read models!"
    found = {(v.path, v.source) for v in _violations("aws:iam/role:Role", good)}
    assert ("inlinePolicies[0].policy IAM UNKNOWN_ACTION", "parliament, identity policy") in found
    assert ("inlinePolicies[0].name", "iam PutRolePolicy.PolicyName") in found


def test_a_provider_filled_member_is_not_demanded_but_a_missing_one_is() -> None:
    config = copy.deepcopy(EXAMPLES["aws:sagemaker/endpointConfiguration:EndpointConfiguration"][0])
    del config["productionVariants"][0]["variantName"]  # the provider names it
    assert _violations("aws:sagemaker/endpointConfiguration:EndpointConfiguration", config) == []
    del config["productionVariants"]
    (missing,) = _violations("aws:sagemaker/endpointConfiguration:EndpointConfiguration", config)
    assert (missing.path, missing.allowed) == ("productionVariants", "ProductionVariants is required")


def test_role_managed_policy_arns_are_each_checked_as_attach_role_policy_arns() -> None:
    role = copy.deepcopy(EXAMPLES["aws:iam/role:Role"][0])
    role["managedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly", "AmazonSageMakerReadOnly"]
    (bad,) = _violations("aws:iam/role:Role", role)
    assert (bad.path, bad.value, bad.source) == (
        "managedPolicyArns[1]",
        "AmazonSageMakerReadOnly",
        "iam AttachRolePolicy.PolicyArn",
    )


def test_pipeline_step_arguments_are_checked_as_the_request_of_their_step_type() -> None:
    definition = copy.deepcopy(PIPELINE_DEFINITION)
    arguments = definition["Steps"][0]["Arguments"]
    arguments["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.m5d.large"
    del arguments["AppSpecification"]
    inputs = {**EXAMPLES["aws:sagemaker/pipeline:Pipeline"][0], "pipelineDefinition": json.dumps(definition)}
    found = {(v.path, v.source) for v in _violations("aws:sagemaker/pipeline:Pipeline", inputs)}
    assert found == {
        (
            "pipelineDefinition Steps[0].Arguments.ProcessingResources.ClusterConfig.InstanceType",
            "sagemaker CreateProcessingJob.ProcessingResources.ClusterConfig.InstanceType",
        ),
        ("pipelineDefinition Steps[0].Arguments.AppSpecification", "sagemaker CreateProcessingJob.AppSpecification"),
    }
