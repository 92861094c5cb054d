"""mlplatform: reads the stack settings, wires the components together and exports the stack outputs."""

import pulumi
import pulumi_aws as aws

from components import outputs
from components.policy_context import PolicyContext
from components.settings import load_from_pulumi
from components.storage import ArtifactStore

settings = load_from_pulumi()
name = f"mlplatform-{settings.stack}"

# One explicit provider carries the region and the default tags, so every resource is tagged the same way.
provider = aws.Provider(
    "aws",
    region=settings.project.region,
    default_tags={
        "tags": {
            "project": "mlplatform",
            "stack": settings.stack,
            "environment": settings.project.environment,
            "owner": settings.project.owner,
            "managed-by": "pulumi",
        }
    },
)
opts = pulumi.ResourceOptions(providers=[provider])

# The policy pack (policy/) reads the environment, allowed GPU types and written exceptions from here.
PolicyContext(
    f"{name}-policy",
    {
        "environment": settings.project.environment,
        "allowed_gpu_instance_types": settings.policy.allowed_gpu_instance_types,
        "exceptions": settings.policy.exceptions,
    },
)

store = ArtifactStore(
    name,
    {
        "capture_retention_days": settings.storage.capture_retention_days,
        "noncurrent_version_days": settings.storage.noncurrent_version_days,
        "force_destroy": settings.storage.force_destroy,
        "protect": settings.project.protect,
    },
    opts=opts,
)

pulumi.export(outputs.REGION, settings.project.region)
pulumi.export(outputs.KMS_KEY_ARN, store.kms_key_arn)
pulumi.export(outputs.DATA_BUCKET, store.data_bucket)
pulumi.export(outputs.MODEL_BUCKET, store.model_bucket)
pulumi.export(outputs.CAPTURE_BUCKET, store.capture_bucket)
