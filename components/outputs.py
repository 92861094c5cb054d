"""The stack output contract: the names applications and other stacks read, defined once.

`__main__.py` exports exactly these names (tests check it); the client, the consumer example and the prod
stack's `StackReference` to dev import them from here.
"""

from __future__ import annotations

from typing import Final

REGION: Final = "region"
KMS_KEY_ARN: Final = "kmsKeyArn"
DATA_BUCKET: Final = "dataBucket"
MODEL_BUCKET: Final = "modelBucket"
CAPTURE_BUCKET: Final = "captureBucket"
ENDPOINT_NAME: Final = "endpointName"
ENDPOINT_ARN: Final = "endpointArn"
ENDPOINT_CONFIG_NAME: Final = "endpointConfigName"
INVOKE_POLICY_ARN: Final = "invokePolicyArn"
SERVING_IMAGE: Final = "servingImage"
MODEL_DATA_URI: Final = "modelDataUri"
CAPTURE_URI: Final = "captureUri"
BASELINE_STATISTICS_URI: Final = "baselineStatisticsUri"
BASELINE_CONSTRAINTS_URI: Final = "baselineConstraintsUri"
ALARM_TOPIC_ARN: Final = "alarmTopicArn"
DASHBOARD_URL: Final = "dashboardUrl"
TRAINING_JOB_NAME: Final = "trainingJobName"
ENDPOINT_INSTANCE_TYPE: Final = "endpointInstanceType"
ENDPOINT_AUTOSCALING_ENABLED: Final = "endpointAutoscalingEnabled"
ENDPOINT_VARIANT_NAME: Final = "endpointVariantName"
ENDPOINT_ROLE_ARN: Final = "endpointRoleArn"
ROLLBACK_ALARM_NAMES: Final = "rollbackAlarmNames"
ENDPOINT_ROLLOUT_FINGERPRINT: Final = "endpointRolloutFingerprint"
ENDPOINT_ROLLOUT_START_COUNT: Final = "endpointRolloutStartCount"
MONITOR_SCHEDULE_NAME: Final = "monitorScheduleName"
MONITOR_REPORTS_URI: Final = "monitorReportsUri"
IMAGE_BUILDS: Final = "imageBuilds"
EDGE_BUNDLE_URI: Final = "edgeBundleUri"
TRAINING_PIPELINE_NAME: Final = "trainingPipelineName"

# What each output means, with an example value shape; docs/reference.md's output table is generated from it.
DESCRIPTIONS: Final[dict[str, tuple[str, str]]] = {
    REGION: ("AWS region of every resource in the stack", "us-east-1"),
    KMS_KEY_ARN: (
        "ARN of the project KMS key (buckets, volumes, topics, repositories)",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-...",
    ),
    DATA_BUCKET: ("bucket for training and validation data", "mlplatform-dev-data-1a2b3c4"),
    MODEL_BUCKET: (
        "bucket for model artifacts, baselines, checkpoints and monitoring reports",
        "mlplatform-dev-models-1a2b3c4",
    ),
    CAPTURE_BUCKET: ("bucket receiving endpoint data capture", "mlplatform-dev-capture-1a2b3c4"),
    ENDPOINT_NAME: ("SageMaker endpoint to invoke (stable across rollouts)", "mlplatform-prod"),
    ENDPOINT_ARN: ("ARN of the endpoint", "arn:aws:sagemaker:us-east-1:111122223333:endpoint/mlplatform-prod"),
    ENDPOINT_CONFIG_NAME: (
        "endpoint config this deployment asked for (`tools.verify` checks it serves)",
        "mlplatform-prod-config-3c1d2e4",
    ),
    ENDPOINT_VARIANT_NAME: ("production variant name (constant)", "primary"),
    ENDPOINT_INSTANCE_TYPE: (
        "serving instance type of this deployment (read back by the next deployment)",
        "ml.c6i.xlarge",
    ),
    ENDPOINT_AUTOSCALING_ENABLED: ("whether autoscaling is attached (read back by the next deployment)", "true"),
    ENDPOINT_ROLLOUT_FINGERPRINT: (
        "digest of the model, image, config and routing this deployment rolled out (read back by the next one)",
        "3f9a0c1d2e4b5a69",
    ),
    ENDPOINT_ROLLOUT_START_COUNT: (
        "instances the config's fleet started with: the live desired count at rollout time, within min..max",
        "10",
    ),
    ENDPOINT_ROLE_ARN: (
        "execution role of the model containers",
        "arn:aws:iam::111122223333:role/mlplatform-prod-role-1a2b3c4",
    ),
    INVOKE_POLICY_ARN: (
        "IAM policy allowing sagemaker:InvokeEndpoint on this endpoint only; attach it to apps",
        "arn:aws:iam::111122223333:policy/mlplatform-prod-invoke-1a2b3c4",
    ),
    ROLLBACK_ALARM_NAMES: (
        "alarms that roll a blue/green deployment back",
        '["mlplatform-prod-rollback-5xx", "mlplatform-prod-rollback-latency-p99"]',
    ),
    SERVING_IMAGE: (
        "serving image by digest",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:5e5e...",
    ),
    MODEL_DATA_URI: (
        "S3 prefix of the deployed model files (uncompressed)",
        "s3://mlplatform-dev-models-0a1b2c3/training/mlplatform-dev-train-3f9a.../output/model/",
    ),
    BASELINE_STATISTICS_URI: (
        "baseline statistics.json of the deployed model (Model Monitor format)",
        "s3://.../output/model/baseline/statistics.json",
    ),
    BASELINE_CONSTRAINTS_URI: ("baseline constraints.json of the deployed model", "s3://.../baseline/constraints.json"),
    CAPTURE_URI: (
        "where the endpoint's captured requests land",
        "s3://mlplatform-prod-capture-1a2b3c4/capture/mlplatform-prod/",
    ),
    ALARM_TOPIC_ARN: ("SNS topic every alarm notifies", "arn:aws:sns:us-east-1:111122223333:mlplatform-prod-alarms"),
    DASHBOARD_URL: (
        "CloudWatch dashboard of the endpoint",
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=...",
    ),
    MONITOR_SCHEDULE_NAME: ("drift monitor schedule (empty when the monitor is off)", "mlplatform-prod-drift"),
    MONITOR_REPORTS_URI: ("where drift reports are written", "s3://mlplatform-prod-models-1a2b3c4/monitoring/..."),
    IMAGE_BUILDS: (
        "per image this stack builds: content hash and the digest in use (the next update keeps that digest "
        "while the content is unchanged)",
        '{"serving": {"contentHash": "9f2c...", "ref": "...@sha256:5e5e..."}}',
    ),
}

# Exported only when the serving target includes SageMaker (`mlplatform:servingTarget` sagemaker or both).
SAGEMAKER_OUTPUTS: Final = frozenset(
    {
        ENDPOINT_NAME,
        ENDPOINT_ARN,
        ENDPOINT_CONFIG_NAME,
        ENDPOINT_VARIANT_NAME,
        ENDPOINT_INSTANCE_TYPE,
        ENDPOINT_AUTOSCALING_ENABLED,
        ENDPOINT_ROLLOUT_FINGERPRINT,
        ENDPOINT_ROLLOUT_START_COUNT,
        ENDPOINT_ROLE_ARN,
        INVOKE_POLICY_ARN,
        ROLLBACK_ALARM_NAMES,
        CAPTURE_URI,
        ALARM_TOPIC_ARN,
        DASHBOARD_URL,
        MONITOR_SCHEDULE_NAME,
        MONITOR_REPORTS_URI,
    }
)

KUBERNETES_NAMESPACE: Final = "kubernetesNamespace"
KUBERNETES_SERVICE_URL: Final = "kubernetesServiceUrl"
KUBERNETES_STABLE_IMAGE: Final = "kubernetesStableImage"
KUBERNETES_CANARY_IMAGE: Final = "kubernetesCanaryImage"
KUBERNETES_MODEL_ROLE_ARN: Final = "kubernetesModelRoleArn"
# Exported only when the serving target includes Kubernetes (docs/kubernetes.md); the canary image only while a
# canary runs, the model role only with `s3` model delivery.
KUBERNETES_OUTPUTS: Final[dict[str, tuple[str, str]]] = {
    KUBERNETES_NAMESPACE: ("namespace of the model service", "mlplatform-prod"),
    KUBERNETES_SERVICE_URL: (
        "in-cluster URL of the model service",
        "http://model-server.mlplatform-prod.svc.cluster.local",
    ),
    KUBERNETES_STABLE_IMAGE: (
        "image the stable pods run (pin it as `kubernetesStableImage` before starting a canary)",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:5e5e...",
    ),
    KUBERNETES_CANARY_IMAGE: (
        "image the canary pods run",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:7a7a...",
    ),
    KUBERNETES_MODEL_ROLE_ARN: (
        "IAM role (IRSA) the pods read their model files with",
        "arn:aws:iam::111122223333:role/mlplatform-dev-k8s-model-role-1a2b3c4",
    ),
}

# Only stacks that train export this one.
TRAINING_OUTPUTS: Final = {
    TRAINING_JOB_NAME: ("training job that produced the model", "mlplatform-dev-train-3f9a..."),
    EDGE_BUNDLE_URI: (
        "S3 URI of the model's edge bundle (`edge.tar.gz`: int8 graph, manifest, score.py, SHA256SUMS; "
        "docs/model-contract.md)",
        "s3://mlplatform-dev-models-1a2b3c4/training/mlplatform-dev-train-3f9a.../output/model/edge.tar.gz",
    ),
}
# Exported only with mlplatform:lifecycleEnabled true.
LIFECYCLE_OUTPUTS: Final = {
    TRAINING_PIPELINE_NAME: (
        "SageMaker pipeline of the model lifecycle (`make train STACK=...` starts a run)",
        "mlplatform-dev-lifecycle-training",
    )
}
