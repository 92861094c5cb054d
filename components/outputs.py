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

# What each output means, with an example value shape; the README's output table is checked against this.
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
}
