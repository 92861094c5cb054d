"""What a change to a resource means in AWS, for the resource types this project uses: one table, one place.

The offline plan diff (`tools/diff.py`) and the deploy gate (`tools/gate.py`) read it. The entries follow the
AWS provider's ForceNew fields and SageMaker's update semantics (docs/architecture.md, decision 1): an
EndpointConfiguration or Model can never be updated in place; an Endpoint pointed at a new config rolls out blue/green;
changing its rollback configuration replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Effect(StrEnum):
    REPLACEMENT = "replacement"
    BLUE_GREEN = "blue/green rollout"
    NEW_JOB = "new training job"
    NEW_IMAGE = "new image build and push"
    IN_PLACE = "in-place update"
    ROLLING_UPDATE = "rolling update of the pods"


@dataclass(frozen=True)
class TypeSemantics:
    """How one resource type reacts to changed inputs.

    `replace_on`: input paths (dot-separated prefixes) whose change replaces the resource; `"*"` means every
    input does. `rollout_on`: paths whose change starts a blue/green rollout instead. Everything else updates
    in place. `dependency_effect`: what a replaced dependency (a new auto-generated name or ARN flowing into
    an input) does to this resource.
    """

    replace_on: tuple[str, ...] = ()
    rollout_on: tuple[str, ...] = ()
    replace_effect: Effect = Effect.REPLACEMENT
    rollout_effect: Effect = Effect.BLUE_GREEN
    """What a change under `rollout_on` does: a SageMaker blue/green rollout, or a Kubernetes rolling update."""
    dependency_effect: Effect = Effect.IN_PLACE
    ignored: tuple[str, ...] = ("tags", "tagsAll")
    protected: bool = False
    """A replacement or deletion loses data or a stable name: the deploy gate stops it without approval."""


ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"

TABLE: dict[str, TypeSemantics] = {
    # The provider calls UpdateEndpoint (a blue/green deployment of a new fleet) when the config name OR the
    # deployment config changed (terraform-provider-aws internal/service/sagemaker/endpoint.go,
    # resourceEndpointUpdate: `d.HasChanges("endpoint_config_name", "deployment_config")`); only
    # auto_rollback_configuration and name are ForceNew in its schema.
    ENDPOINT: TypeSemantics(
        replace_on=("name", "deploymentConfig.autoRollbackConfiguration"),
        rollout_on=(
            "endpointConfigName",
            "deploymentConfig.blueGreenUpdatePolicy",
            "deploymentConfig.rollingUpdatePolicy",
        ),
        dependency_effect=Effect.BLUE_GREEN,
        protected=True,
    ),
    ENDPOINT_CONFIG: TypeSemantics(replace_on=("*",), dependency_effect=Effect.REPLACEMENT),
    MODEL: TypeSemantics(replace_on=("*",), dependency_effect=Effect.REPLACEMENT),
    "aws:sagemaker/trainingJob:TrainingJob": TypeSemantics(
        replace_on=("*",), replace_effect=Effect.NEW_JOB, dependency_effect=Effect.NEW_JOB
    ),
    "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition": TypeSemantics(
        replace_on=("*",), dependency_effect=Effect.REPLACEMENT
    ),
    "aws:sagemaker/monitoringSchedule:MonitoringSchedule": TypeSemantics(replace_on=("name",)),
    "aws:sagemaker/pipeline:Pipeline": TypeSemantics(replace_on=("pipelineName",)),
    # ForceNew in terraform-provider-aws mlflow_tracking_server.go: the name, the role and the MLflow version.
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": TypeSemantics(
        replace_on=("trackingServerName", "roleArn", "mlflowVersion")
    ),
    "docker-build:index:Image": TypeSemantics(
        replace_on=("*",), replace_effect=Effect.NEW_IMAGE, dependency_effect=Effect.NEW_IMAGE
    ),
    "aws:ecr/repository:Repository": TypeSemantics(replace_on=("name", "encryptionConfigurations"), protected=True),
    "aws:s3/bucket:Bucket": TypeSemantics(replace_on=("bucket", "bucketPrefix", "objectLockEnabled"), protected=True),
    "aws:kms/key:Key": TypeSemantics(
        replace_on=("customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"), protected=True
    ),
    "aws:kms/alias:Alias": TypeSemantics(replace_on=("name", "namePrefix")),
    "aws:iam/role:Role": TypeSemantics(replace_on=("name", "namePrefix", "path")),
    "aws:iam/policy:Policy": TypeSemantics(replace_on=("name", "namePrefix", "path")),
    "aws:iam/rolePolicy:RolePolicy": TypeSemantics(replace_on=("name", "role")),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": TypeSemantics(replace_on=("*",)),
    "aws:cloudwatch/metricAlarm:MetricAlarm": TypeSemantics(replace_on=("name",)),
    "aws:cloudwatch/dashboard:Dashboard": TypeSemantics(replace_on=("dashboardName",)),
    "aws:sns/topic:Topic": TypeSemantics(replace_on=("name", "namePrefix", "fifoTopic")),
    "aws:sns/topicSubscription:TopicSubscription": TypeSemantics(replace_on=("topic", "protocol", "endpoint")),
    "aws:appautoscaling/target:Target": TypeSemantics(
        replace_on=("resourceId", "scalableDimension", "serviceNamespace"), dependency_effect=Effect.REPLACEMENT
    ),
    "aws:appautoscaling/policy:Policy": TypeSemantics(
        replace_on=("name", "resourceId", "scalableDimension", "serviceNamespace")
    ),
    "aws:scheduler/schedule:Schedule": TypeSemantics(replace_on=("name", "namePrefix")),
    "aws:s3/bucketPolicy:BucketPolicy": TypeSemantics(replace_on=("bucket",)),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": TypeSemantics(replace_on=("bucket",)),
    "aws:s3/bucketVersioning:BucketVersioning": TypeSemantics(replace_on=("bucket",)),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": TypeSemantics(
        replace_on=("bucket",)
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": TypeSemantics(replace_on=("bucket",)),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": TypeSemantics(replace_on=("bucket",)),
}

# Kubernetes objects (the Kubernetes serving target): a new name or namespace is a new object; a Deployment's
# selector is immutable; a change to its pod template rolls the pods (maxUnavailable 0, components/kubernetes.py).
_K8S_IDENTITY = ("metadata.name", "metadata.namespace")
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
TABLE.update(
    {
        K8S_DEPLOYMENT: TypeSemantics(
            replace_on=(*_K8S_IDENTITY, "spec.selector"),
            rollout_on=("spec.template",),
            rollout_effect=Effect.ROLLING_UPDATE,
            dependency_effect=Effect.ROLLING_UPDATE,
        ),
        "kubernetes:core/v1:Namespace": TypeSemantics(replace_on=("metadata.name",), protected=True),
        "kubernetes:core/v1:Service": TypeSemantics(replace_on=(*_K8S_IDENTITY, "spec.clusterIP", "spec.type")),
        "kubernetes:core/v1:ServiceAccount": TypeSemantics(replace_on=_K8S_IDENTITY),
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": TypeSemantics(replace_on=_K8S_IDENTITY),
        "kubernetes:policy/v1:PodDisruptionBudget": TypeSemantics(replace_on=_K8S_IDENTITY),
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": TypeSemantics(replace_on=_K8S_IDENTITY),
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": TypeSemantics(replace_on=_K8S_IDENTITY),
    }
)
DEFAULT = TypeSemantics()

# Resource types whose replacement or deletion the deploy gate stops without an approval.
PROTECTED_TYPES = frozenset(t for t, s in TABLE.items() if s.protected)


def _matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(p in ("*", path) or path.startswith(p + ".") or path.startswith(p + "[") for p in prefixes)


def effect_of(type_token: str, changed_paths: list[str], dependency_replaced: bool = False) -> Effect:
    """The strongest effect of changing `changed_paths` (and of a replaced dependency) on a resource."""
    semantics = TABLE.get(type_token, DEFAULT)
    paths = [p for p in changed_paths if not _matches(p, semantics.ignored)]
    if any(_matches(p, semantics.replace_on) for p in paths):
        return semantics.replace_effect
    if any(_matches(p, semantics.rollout_on) for p in paths):
        return semantics.rollout_effect
    if dependency_replaced and semantics.dependency_effect is not Effect.IN_PLACE:
        return semantics.dependency_effect
    return Effect.IN_PLACE


def replaces(effect: Effect) -> bool:
    """Whether the effect creates a new physical resource (new name/ARN for its dependents)."""
    return effect in (Effect.REPLACEMENT, Effect.NEW_JOB, Effect.NEW_IMAGE)
