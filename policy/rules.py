"""Policy rules for ML infrastructure on AWS, as plain functions over the resources of one stack.

Each rule takes the stack's resources (`type`, `name`, `inputs` with the engine's camelCase property names)
and a `PolicyContext`, and returns violations. The Pulumi policy pack (`policy/__main__.py`) and the tests run
the same functions: the pack over what the engine gives it, the tests over the offline plans.

Sources for the rules are given per rule: the AWS Well-Architected Machine Learning Lens (MLSEC/MLREL best
practices), checkov's CKV_AWS_* checks and cdk-nag's AwsSolutions rules, plus SageMaker's own API rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Enforcement = Literal["mandatory", "advisory"]
Resource = Mapping[str, Any]

BUCKET = "aws:s3/bucket:Bucket"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"
TRAINING_JOB = "aws:sagemaker/trainingJob:TrainingJob"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
CONTEXT_TYPE = "mlplatform:policy:PolicyContext"

# Actions that AWS only authorizes on Resource "*" (no resource-level permissions in the service
# authorization reference), so a policy that needs them must use "*" for them.
STAR_RESOURCE_ACTIONS = frozenset(
    {
        "ecr:GetAuthorizationToken",  # "Resource types: none" in the ECR authorization reference
        "cloudwatch:PutMetricData",  # no resource types; scope with the cloudwatch:namespace condition key
        "cloudwatch:DescribeAlarms",  # blue/green auto-rollback reads alarms by name across the account
        "cloudwatch:GetMetricData",
        "sagemaker:ListPipelineExecutions",
        # SageMaker in a VPC: EC2's Describe calls have no resource-level permissions.
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeVpcs",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    }
)
REQUIRED_TAGS = ("project", "stack", "environment", "owner")
_NVME_HINT = re.compile(r"^ml\.(g4dn|g5|g6|g6e|p3dn|p4d|p4de|p5|p5e|p5en|inf2|trn1|trn1n|[a-z0-9]+d)\.")
_GPU = re.compile(r"^ml\.(p2|p3|p3dn|p4d|p4de|p5|p5e|p5en|g4dn|g4ad|g5|g5g|g6|g6e)\.")


@dataclass(frozen=True)
class PolicyContext:
    """What the stack tells the pack about itself (the `PolicyContext` component's inputs)."""

    environment: str = "dev"
    allowed_gpu_instance_types: tuple[str, ...] = ()
    exceptions: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @classmethod
    def from_resources(cls, resources: Iterable[Resource]) -> PolicyContext:
        for r in resources:
            if r["type"] == CONTEXT_TYPE:
                inputs = r.get("inputs") or {}
                return cls(
                    environment=str(inputs.get("environment", "dev")),
                    allowed_gpu_instance_types=tuple(inputs.get("allowedGpuInstanceTypes") or ()),
                    exceptions=dict(inputs.get("exceptions") or {}),
                )
        return cls()


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str
    enforcement: Enforcement


RuleFn = Callable[[Sequence[Resource], PolicyContext], Iterator[tuple[Resource, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement
    source: str
    check: RuleFn


RULES: dict[str, Rule] = {}


def rule(name: str, description: str, enforcement: Enforcement, source: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        RULES[name] = Rule(name, description, enforcement, source, fn)
        return fn

    return register


def evaluate(resources: Sequence[Resource], context: PolicyContext | None = None) -> list[Violation]:
    """Every rule over every resource; rules excepted by the stack (with a reason) are skipped."""
    ctx = context or PolicyContext.from_resources(resources)
    found: list[Violation] = []
    for r in RULES.values():
        if r.name in ctx.exceptions:
            continue
        for resource, message in r.check(resources, ctx):
            found.append(Violation(r.name, f"{resource['type']}::{resource['name']}", message, r.enforcement))
    return found


# --- helpers ------------------------------------------------------------------------------------------------


def _of(resources: Sequence[Resource], type_token: str) -> list[Resource]:
    return [r for r in resources if r["type"] == type_token]


def _inputs(r: Resource) -> Mapping[str, Any]:
    return r.get("inputs") or {}


def _one(value: Any) -> Mapping[str, Any]:
    if isinstance(value, list):
        return value[0] if value else {}
    return value if isinstance(value, Mapping) else {}


def _bucket_config(resources: Sequence[Resource], bucket: Resource, type_token: str) -> Resource | None:
    """The configuration resource of `type_token` for `bucket`: matched by the bucket's name where it is
    known (the engine's state), else by dependency (a plan of a new stack, where names are not yet known)."""
    name = _inputs(bucket).get("bucket")
    ref = f"{BUCKET}::{bucket['name']}"
    for r in _of(resources, type_token):
        if (name and _inputs(r).get("bucket") == name) or ref in r.get("options", {}).get("dependsOn", []):
            return r
    return None


def _policy_documents(resources: Sequence[Resource]) -> Iterator[tuple[Resource, dict[str, Any]]]:
    """Identity policy documents: managed policies, inline role policies, roles' inline policies."""
    for r in resources:
        inputs = _inputs(r)
        docs: list[Any] = []
        if r["type"] in ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy"):
            docs.append(inputs.get("policy"))
        elif r["type"] == "aws:iam/role:Role":
            docs += [p.get("policy") for p in inputs.get("inlinePolicies") or [] if isinstance(p, Mapping)]
        for doc in docs:
            if isinstance(doc, str):
                try:
                    doc = json.loads(doc)
                except json.JSONDecodeError:
                    continue
            if isinstance(doc, Mapping):
                yield r, dict(doc)


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _instance_types(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    for r in _of(resources, ENDPOINT_CONFIG):
        for variant in _inputs(r).get("productionVariants") or []:
            if variant.get("instanceType"):
                yield r, str(variant["instanceType"])
    for r in _of(resources, TRAINING_JOB):
        config = _one(_inputs(r).get("resourceConfig"))
        if config.get("instanceType"):
            yield r, str(config["instanceType"])


# --- S3 -----------------------------------------------------------------------------------------------------


@rule(
    "s3-block-public-access",
    "Every bucket has all four S3 public-access blocks on.",
    "mandatory",
    "checkov CKV_AWS_53/54/55/56; cdk-nag AwsSolutions-S1/S2; ML Lens MLSEC-10",
)
def s3_block_public_access(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in _of(resources, BUCKET):
        block = _bucket_config(resources, bucket, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        missing = [k for k in keys if block is None or _inputs(block).get(k) is not True]
        if missing:
            yield bucket, f"bucket lacks public-access blocks: {', '.join(missing)}"


@rule(
    "s3-sse-kms",
    "Every bucket encrypts by default with SSE-KMS and a customer key.",
    "mandatory",
    "checkov CKV_AWS_145; ML Lens MLSEC-07 (encrypt data at rest)",
)
def s3_sse_kms(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    for bucket in _of(resources, BUCKET):
        config = _bucket_config(resources, bucket, sse)
        default = _one(_one(_inputs(config).get("rules") if config else None).get("applyServerSideEncryptionByDefault"))
        if default.get("sseAlgorithm") not in ("aws:kms", "aws:kms:dsse") or not default.get("kmsMasterKeyId"):
            yield bucket, "bucket does not default to SSE-KMS with a customer managed key"


@rule(
    "s3-versioning",
    "Every bucket keeps object versions.",
    "mandatory",
    "checkov CKV_AWS_21; ML Lens MLREL (recover artifacts)",
)
def s3_versioning(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for bucket in _of(resources, BUCKET):
        config = _bucket_config(resources, bucket, "aws:s3/bucketVersioning:BucketVersioning")
        status = _one(_inputs(config).get("versioningConfiguration") if config else None).get("status")
        if status != "Enabled":
            yield bucket, f"bucket versioning is {status or 'not configured'}, must be Enabled"


@rule(
    "s3-tls-only",
    "Every bucket policy denies requests without TLS.",
    "mandatory",
    "cdk-nag AwsSolutions-S10; checkov CKV_AWS_379-style secure transport",
)
def s3_tls_only(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for bucket in _of(resources, BUCKET):
        policy = _bucket_config(resources, bucket, "aws:s3/bucketPolicy:BucketPolicy")
        text = _inputs(policy).get("policy") if policy else None
        doc = json.loads(text) if isinstance(text, str) else text or {}
        denies_plain_http = any(
            s.get("Effect") == "Deny"
            and _one(s.get("Condition", {}).get("Bool")).get("aws:SecureTransport") in ("false", False)
            for s in _statements(doc)
        )
        if not denies_plain_http:
            yield bucket, "bucket policy does not deny requests with aws:SecureTransport false"


@rule(
    "s3-capture-lifecycle",
    "Captured inference data expires: its bucket has an expiration rule.",
    "mandatory",
    "ML Lens MLSEC-05 (data retention); GDPR storage limitation",
)
def s3_capture_lifecycle(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    lifecycles = {
        str(_inputs(r).get("bucket")): r
        for r in _of(resources, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    }
    for config in _of(resources, ENDPOINT_CONFIG):
        capture = _one(_inputs(config).get("dataCaptureConfig"))
        uri = str(capture.get("destinationS3Uri", ""))
        if not uri.startswith("s3://"):
            continue
        bucket = uri[5:].split("/", 1)[0]
        lifecycle = lifecycles.get(bucket)
        rules = _inputs(lifecycle).get("rules", []) if lifecycle else []
        if not any(r.get("status") == "Enabled" and _one(r.get("expiration")).get("days") for r in rules):
            yield config, f"captured data in bucket {bucket} never expires: add a lifecycle expiration rule"


# --- ECR ----------------------------------------------------------------------------------------------------


@rule("ecr-immutable-tags", "ECR repositories have immutable tags.", "mandatory", "checkov CKV_AWS_51")
def ecr_immutable(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for repo in _of(resources, "aws:ecr/repository:Repository"):
        mutability = _inputs(repo).get("imageTagMutability", "MUTABLE")
        if not str(mutability).startswith("IMMUTABLE") and not _is_cache_repository(repo):
            yield repo, f"image tags are {mutability}; images must be immutable"


def _is_cache_repository(repo: Resource) -> bool:
    """Build-cache repositories hold a moving cache tag by design and are never deployed from."""
    return str(repo["name"]).endswith("-cache")


@rule("ecr-scan-on-push", "ECR repositories scan images on push.", "advisory", "checkov CKV_AWS_163")
def ecr_scan(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for repo in _of(resources, "aws:ecr/repository:Repository"):
        if _one(_inputs(repo).get("imageScanningConfiguration")).get("scanOnPush") is not True:
            yield repo, "images are not scanned on push"


@rule("ecr-kms", "ECR repositories encrypt with a KMS key.", "mandatory", "checkov CKV_AWS_136")
def ecr_kms(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for repo in _of(resources, "aws:ecr/repository:Repository"):
        enc = _one(_inputs(repo).get("encryptionConfigurations"))
        if enc.get("encryptionType") != "KMS" or not enc.get("kmsKey"):
            yield repo, "repository is not encrypted with a customer managed KMS key"


# --- IAM ----------------------------------------------------------------------------------------------------


@rule(
    "iam-no-wildcard-actions",
    "IAM Allow statements name their actions; no '*' or 'service:*'.",
    "mandatory",
    "checkov CKV_AWS_1/CKV_AWS_49; cdk-nag AwsSolutions-IAM5; ML Lens MLSEC-01 (least privilege)",
)
def iam_wildcard_actions(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for r, doc in _policy_documents(resources):
        for s in _statements(doc):
            if s.get("Effect") != "Allow":
                continue
            wild = [a for a in _as_list(s.get("Action", [])) if a == "*" or str(a).endswith(":*")]
            if wild or s.get("NotAction"):
                yield r, f"Allow statement with wildcard actions {wild or ['NotAction']}"


@rule(
    "iam-no-wildcard-resources",
    "IAM Allow statements name their resources; '*' only for actions AWS authorizes on '*' alone.",
    "mandatory",
    "cdk-nag AwsSolutions-IAM5; AWS service authorization reference",
)
def iam_wildcard_resources(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for r, doc in _policy_documents(resources):
        for s in _statements(doc):
            if s.get("Effect") != "Allow" or "*" not in _as_list(s.get("Resource", [])):
                continue
            actions = [a for a in _as_list(s.get("Action", [])) if a not in STAR_RESOURCE_ACTIONS]
            if actions:
                yield r, f"Resource '*' for actions that support resource-level permissions: {actions}"


@rule(
    "iam-no-full-access-managed-policies",
    "No AWS managed *FullAccess policy is attached.",
    "mandatory",
    "cdk-nag AwsSolutions-IAM4; ML Lens MLSEC-01",
)
def iam_full_access(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for r in resources:
        arns: list[Any] = []
        if r["type"] == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            arns.append(_inputs(r).get("policyArn"))
        elif r["type"] == "aws:iam/role:Role":
            arns += list(_inputs(r).get("managedPolicyArns") or [])
        for arn in arns:
            if isinstance(arn, str) and ":aws:policy/" in arn and arn.endswith("FullAccess"):
                yield r, f"attaches AWS managed policy {arn.rsplit('/', 1)[-1]}"


# --- SageMaker ----------------------------------------------------------------------------------------------


@rule(
    "sagemaker-endpoint-config-kms",
    "Endpoint configs encrypt the instance storage with KMS, unless the instance type has local NVMe.",
    "mandatory",
    "checkov CKV_AWS_98; SageMaker API (KmsKeyId rejected for NVMe instance types)",
)
def endpoint_config_kms(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for config in _of(resources, ENDPOINT_CONFIG):
        types = [str(v.get("instanceType", "")) for v in _inputs(config).get("productionVariants") or []]
        needs_key = any(t and not _NVME_HINT.match(t) for t in types)
        has_key = bool(_inputs(config).get("kmsKeyArn"))
        if needs_key and not has_key:
            yield config, f"no kmsKeyArn for instance types {types} without local NVMe storage"
        if has_key and not needs_key and types:
            yield config, f"kmsKeyArn set for NVMe instance types {types}: SageMaker rejects it"


@rule(
    "sagemaker-data-capture-in-prod",
    "Production endpoints capture their inference data.",
    "mandatory",
    "ML Lens MLREL-11/MLPER (monitor for drift needs captured data)",
)
def data_capture_prod(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    if not ctx.is_prod:
        return
    for config in _of(resources, ENDPOINT_CONFIG):
        if _one(_inputs(config).get("dataCaptureConfig")).get("enableCapture") is not True:
            yield config, "data capture is off in a prod stack"


@rule(
    "sagemaker-model-network-isolation",
    "Models run with network isolation.",
    "mandatory",
    "checkov CKV_AWS_370-style; ML Lens MLSEC-08 (isolate compute)",
)
def model_isolation(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for model in _of(resources, MODEL):
        if _inputs(model).get("enableNetworkIsolation") is not True:
            yield model, "model container can reach the network: set enable_network_isolation"


@rule(
    "sagemaker-training-network-isolation", "Training jobs run with network isolation.", "mandatory", "ML Lens MLSEC-08"
)
def training_isolation(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for job in _of(resources, TRAINING_JOB):
        if _inputs(job).get("enableNetworkIsolation") is not True:
            yield job, "training container can reach the network: set enable_network_isolation"


@rule(
    "sagemaker-spot-needs-checkpoints",
    "Managed spot training has a checkpoint config and a max wait above the max runtime.",
    "mandatory",
    "SageMaker API (MaxWaitTimeInSeconds > MaxRuntimeInSeconds); ML Lens MLREL-04 (resume interrupted jobs)",
)
def spot_checkpoints(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for job in _of(resources, TRAINING_JOB):
        inputs = _inputs(job)
        if inputs.get("enableManagedSpotTraining") is not True:
            continue
        if not _one(inputs.get("checkpointConfig")).get("s3Uri"):
            yield job, "spot training without checkpoint_config: an interruption loses the whole run"
        stop = _one(inputs.get("stoppingCondition"))
        wait, runtime = stop.get("maxWaitTimeInSeconds"), stop.get("maxRuntimeInSeconds")
        if wait is None or runtime is None or float(wait) <= float(runtime):
            yield job, f"spot training needs max wait ({wait}) greater than max runtime ({runtime})"


@rule(
    "sagemaker-prod-blue-green-with-rollback",
    "Prod endpoints deploy blue/green with auto-rollback alarms.",
    "mandatory",
    "ML Lens MLREL04-BP01/BP02 (safe deployment, automatic rollback)",
)
def prod_blue_green(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    if not ctx.is_prod:
        return
    for endpoint in _of(resources, ENDPOINT):
        deployment = _one(_inputs(endpoint).get("deploymentConfig"))
        if not _one(deployment.get("blueGreenUpdatePolicy")):
            yield endpoint, "no blue/green update policy in a prod stack"
        if not _one(deployment.get("autoRollbackConfiguration")).get("alarms"):
            yield endpoint, "no auto-rollback alarms in a prod stack"


@rule(
    "sagemaker-canary-linear-min-instances",
    "Canary and linear rollouts run on at least two instances.",
    "mandatory",
    "SageMaker blue/green docs (traffic shifting needs capacity to split)",
)
def canary_instances(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    configs = {str(_inputs(c).get("name") or ""): c for c in _of(resources, ENDPOINT_CONFIG)}
    for endpoint in _of(resources, ENDPOINT):
        routing = _one(
            _one(_one(_inputs(endpoint).get("deploymentConfig")).get("blueGreenUpdatePolicy")).get(
                "trafficRoutingConfiguration"
            )
        )
        if routing.get("type") not in ("CANARY", "LINEAR"):
            continue
        config = configs.get(str(_inputs(endpoint).get("endpointConfigName")))
        if config is None:
            deps = endpoint.get("options", {}).get("dependsOn", [])
            config = next(
                (c for c in _of(resources, ENDPOINT_CONFIG) if f"{ENDPOINT_CONFIG}::{c['name']}" in deps), None
            )
        if config is None:
            continue
        count = sum(float(v.get("initialInstanceCount", 0)) for v in _inputs(config).get("productionVariants") or [])
        if count < 2:
            yield endpoint, f"{routing['type']} rollout with {count:g} instance(s); needs at least 2"


@rule(
    "images-by-digest",
    "Models and training jobs reference images by digest, never by tag.",
    "mandatory",
    "supply-chain integrity; ML Lens MLSEC-11 (trusted images)",
)
def images_by_digest(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for model in _of(resources, MODEL):
        containers = [_one(_inputs(model).get("primaryContainer")), *(_inputs(model).get("containers") or [])]
        for c in containers:
            image = c.get("image")
            if image and "@sha256:" not in str(image):
                yield model, f"image {image} is not referenced by digest"
    for job in _of(resources, TRAINING_JOB):
        image = _one(_inputs(job).get("algorithmSpecification")).get("trainingImage")
        if image and "@sha256:" not in str(image):
            yield job, f"training image {image} is not referenced by digest"


# --- CloudWatch, SNS, KMS, tags, instance types ----------------------------------------------------------


@rule(
    "alarm-has-dimensions",
    "Every alarm watches a specific resource (dimensions on every metric).",
    "mandatory",
    "an alarm without dimensions watches another metric (CloudWatch user guide, Dimensions: a metric is its name "
    "plus all its dimensions)",
)
def alarm_dimensions(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for alarm in _of(resources, ALARM):
        inputs = _inputs(alarm)
        queries = inputs.get("metricQueries") or []
        if queries:
            metrics = [_one(q.get("metric")) for q in queries if q.get("metric")]
            if not metrics or any(
                not m.get("dimensions") and not m.get("namespace", "").startswith("AWS/Usage") for m in metrics
            ):
                yield alarm, "a metric query has no dimensions"
        elif not inputs.get("dimensions"):
            yield alarm, "alarm has no dimensions: it watches nothing specific"


@rule("alarm-has-actions", "Every alarm notifies someone.", "advisory", "ML Lens MLREL-11 (alerting)")
def alarm_actions(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for alarm in _of(resources, ALARM):
        if not _inputs(alarm).get("alarmActions"):
            yield alarm, "alarm has no alarm actions"


@rule(
    "alarm-missing-data-explicit",
    "Every alarm states how to treat missing data.",
    "mandatory",
    "CloudWatch defaults to 'missing', which hides a silent endpoint",
)
def alarm_missing_data(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for alarm in _of(resources, ALARM):
        if _inputs(alarm).get("treatMissingData") not in ("breaching", "notBreaching", "ignore", "missing"):
            yield alarm, "treat_missing_data is not set explicitly"


@rule("sns-encrypted", "SNS topics are encrypted with KMS.", "mandatory", "checkov CKV_AWS_26; cdk-nag SNS2")
def sns_encrypted(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for topic in _of(resources, "aws:sns/topic:Topic"):
        if not _inputs(topic).get("kmsMasterKeyId"):
            yield topic, "topic is not encrypted (kms_master_key_id)"


@rule("kms-rotation", "Customer managed KMS keys rotate yearly.", "mandatory", "checkov CKV_AWS_7")
def kms_rotation(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for key in _of(resources, "aws:kms/key:Key"):
        if _inputs(key).get("enableKeyRotation") is not True:
            yield key, "key rotation is off"


@rule(
    "required-tags",
    "The provider tags every resource with project, stack, environment and owner.",
    "advisory",
    "AWS tagging best practices; cost allocation",
)
def required_tags(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for provider in _of(resources, "pulumi:providers:aws"):
        tags = _inputs(provider).get("defaultTags")
        if isinstance(tags, str):
            tags = json.loads(tags)
        present = set(_one(tags).get("tags", {}) if tags else {})
        missing = [t for t in REQUIRED_TAGS if t not in present]
        if missing:
            yield provider, f"default tags lack {', '.join(missing)}"


@rule(
    "gpu-instance-allowlist",
    "GPU instance types are limited to the stack's allowed list.",
    "mandatory",
    "cost control; ML Lens MLCOST-04 (right-size instances)",
)
def gpu_allowlist(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for r, instance_type in _instance_types(resources):
        if _GPU.match(instance_type) and instance_type not in ctx.allowed_gpu_instance_types:
            allowed = ", ".join(ctx.allowed_gpu_instance_types) or "none"
            yield r, f"GPU instance type {instance_type} is not allowed in this stack (allowed: {allowed})"


# --- Kubernetes workloads (the Kubernetes serving target, components/kubernetes.py) ---------------------------

_K8S_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
)


def _pod_specs(resources: Sequence[Resource]) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    """The pod spec of every Kubernetes workload: a pod template's, or a bare Pod's own."""
    for r in resources:
        if r["type"] in _K8S_WORKLOADS:
            yield r, _one(_one(_one(_inputs(r).get("spec")).get("template")).get("spec"))
        elif r["type"] == "kubernetes:core/v1:Pod":
            yield r, _one(_inputs(r).get("spec"))


def _containers(pod: Mapping[str, Any], with_init: bool = True) -> list[Mapping[str, Any]]:
    init = list(pod.get("initContainers") or []) if with_init else []
    return [*init, *(pod.get("containers") or [])]


@rule(
    "k8s-container-resources",
    "Every Kubernetes container requests and limits CPU and memory.",
    "mandatory",
    "checkov CKV_K8S_10, CKV_K8S_11, CKV_K8S_12, CKV_K8S_13; a pod without limits can starve its node",
)
def k8s_container_resources(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for workload, pod in _pod_specs(resources):
        for container in _containers(pod):
            res = _one(container.get("resources"))
            missing = [
                f"{kind}.{name}"
                for kind in ("requests", "limits")
                for name in ("cpu", "memory")
                if not _one(res.get(kind)).get(name)
            ]
            if missing:
                yield workload, f"container {container.get('name', '?')} has no {', '.join(missing)}"


@rule(
    "k8s-container-probes",
    "Every long-running Kubernetes container has readiness and liveness probes.",
    "mandatory",
    "checkov CKV_K8S_8, CKV_K8S_9; without readiness a Service sends requests to a pod still loading its model",
)
def k8s_container_probes(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for workload, pod in _pod_specs(resources):
        if workload["type"] == "kubernetes:batch/v1:Job":
            continue  # a job runs to completion: nothing routes traffic to it
        for container in _containers(pod, with_init=False):
            missing = [p for p in ("readinessProbe", "livenessProbe") if not container.get(p)]
            if missing:
                yield workload, f"container {container.get('name', '?')} has no {' or '.join(missing)}"


@rule(
    "k8s-images-by-digest",
    "Kubernetes containers reference images by digest, never by tag.",
    "mandatory",
    "checkov CKV_K8S_43; supply-chain integrity, ML Lens MLSEC-11 (trusted images)",
)
def k8s_images_by_digest(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for workload, pod in _pod_specs(resources):
        for container in _containers(pod):
            image = container.get("image")
            if image and "@sha256:" not in str(image):
                yield workload, f"container {container.get('name', '?')} image {image} is not referenced by digest"
