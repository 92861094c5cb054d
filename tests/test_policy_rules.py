"""Policy rules: the committed plans pass every mandatory rule, and each rule catches its failing example."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest

from policy.rules import RULES, PolicyContext, Resource, evaluate
from tools.plan import Plan

KEY = "arn:aws:kms:us-east-1:111122223333:key/k"
DIGEST = "111122223333.dkr.ecr.us-east-1.amazonaws.com/serving@sha256:" + "a" * 64


def res(type_: str, logical: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_, "name": logical, "inputs": inputs, "options": {}}


def good_bucket(name: str = "b") -> list[dict[str, Any]]:
    """A bucket with every configuration the S3 rules want."""
    return [
        res("aws:s3/bucket:Bucket", name, bucket=name),
        res(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            f"{name}-pab",
            bucket=name,
            blockPublicAcls=True,
            blockPublicPolicy=True,
            ignorePublicAcls=True,
            restrictPublicBuckets=True,
        ),
        res(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{name}-sse",
            bucket=name,
            rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}}],
        ),
        res(
            "aws:s3/bucketVersioning:BucketVersioning",
            f"{name}-v",
            bucket=name,
            versioningConfiguration={"status": "Enabled"},
        ),
        res(
            "aws:s3/bucketPolicy:BucketPolicy",
            f"{name}-p",
            bucket=name,
            policy=json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": "*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ]
                }
            ),
        ),
        res(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            f"{name}-l",
            bucket=name,
            rules=[{"id": "x", "status": "Enabled", "expiration": {"days": 30}}],
        ),
    ]


def endpoint_stack(
    style: str = "CANARY",
    count: int = 2,
    instance: str = "ml.c6i.large",
    capture: bool = True,
    kms: bool = True,
    alarms: bool = True,
) -> list[dict[str, Any]]:
    config_inputs: dict[str, Any] = {
        "productionVariants": [{"variantName": "primary", "instanceType": instance, "initialInstanceCount": count}],
        "dataCaptureConfig": {"enableCapture": capture, "destinationS3Uri": "s3://b/capture"},
    }
    if kms:
        config_inputs["kmsKeyArn"] = KEY
    config = res("aws:sagemaker/endpointConfiguration:EndpointConfiguration", "cfg", **config_inputs)
    endpoint = res(
        "aws:sagemaker/endpoint:Endpoint",
        "ep",
        name="ep",
        endpointConfigName="cfg-1",
        deploymentConfig={
            "blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type": style}},
            "autoRollbackConfiguration": {"alarms": [{"alarmName": "ep-rollback-5xx"}] if alarms else []},
        },
    )
    endpoint["options"] = {"dependsOn": ["aws:sagemaker/endpointConfiguration:EndpointConfiguration::cfg"]}
    model = res("aws:sagemaker/model:Model", "m", enableNetworkIsolation=True, primaryContainer={"image": DIGEST})
    return [*good_bucket(), config, endpoint, model]


PROD = PolicyContext(environment="prod", allowed_gpu_instance_types=("ml.g5.xlarge",))


def violated(resources: Sequence[Resource], ctx: PolicyContext = PROD) -> set[str]:
    return {v.rule for v in evaluate(resources, ctx)}


def test_at_least_twenty_rules_with_enforcement_and_source() -> None:
    assert len(RULES) >= 20
    assert {r.enforcement for r in RULES.values()} == {"mandatory", "advisory"}
    assert all(r.source and r.description for r in RULES.values())


def test_the_good_fixture_passes_every_rule() -> None:
    assert violated(endpoint_stack()) == set()


def test_committed_plans_have_no_mandatory_violation(any_plan: Plan) -> None:
    mandatory = [v for v in evaluate(any_plan.resources) if v.enforcement == "mandatory"]
    assert mandatory == []


def test_plan_context_is_read_from_the_policy_component(prod_plan: Plan, dev_plan: Plan) -> None:
    assert PolicyContext.from_resources(prod_plan.resources).is_prod
    assert not PolicyContext.from_resources(dev_plan.resources).is_prod
    assert "ml.g5.xlarge" in PolicyContext.from_resources(dev_plan.resources).allowed_gpu_instance_types


def _mutated(path: tuple[str, ...], value: Any, name: str) -> list[dict[str, Any]]:
    resources = endpoint_stack()
    target = next(r for r in resources if r["name"] == name)
    node = target["inputs"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return resources


FAILING = {
    "s3-block-public-access": lambda: _mutated(("ignorePublicAcls",), False, "b-pab"),
    "s3-sse-kms": lambda: _mutated(
        ("rules",), [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}], "b-sse"
    ),
    "s3-versioning": lambda: _mutated(("versioningConfiguration",), {"status": "Suspended"}, "b-v"),
    "s3-tls-only": lambda: _mutated(("policy",), json.dumps({"Statement": []}), "b-p"),
    "s3-capture-lifecycle": lambda: _mutated(("rules",), [], "b-l"),
    "ecr-immutable-tags": lambda: [
        res(
            "aws:ecr/repository:Repository",
            "serving",
            imageTagMutability="MUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfigurations=[{"encryptionType": "KMS", "kmsKey": KEY}],
        )
    ],
    "ecr-scan-on-push": lambda: [
        res(
            "aws:ecr/repository:Repository",
            "serving",
            imageTagMutability="IMMUTABLE",
            encryptionConfigurations=[{"encryptionType": "KMS", "kmsKey": KEY}],
        )
    ],
    "ecr-kms": lambda: [
        res(
            "aws:ecr/repository:Repository",
            "serving",
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        )
    ],
    "iam-no-wildcard-actions": lambda: [
        res(
            "aws:iam/policy:Policy",
            "p",
            policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}]}),
        )
    ],
    "iam-no-wildcard-resources": lambda: [
        res(
            "aws:iam/rolePolicy:RolePolicy",
            "p",
            policy=json.dumps(
                {
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:GetObject", "ecr:GetAuthorizationToken"], "Resource": "*"}
                    ]
                }
            ),
        )
    ],
    "iam-no-full-access-managed-policies": lambda: [
        res(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "a",
            policyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess",
        )
    ],
    "sagemaker-endpoint-config-kms": lambda: endpoint_stack(kms=False),
    "sagemaker-data-capture-in-prod": lambda: endpoint_stack(capture=False),
    "sagemaker-model-network-isolation": lambda: _mutated(("enableNetworkIsolation",), False, "m"),
    "sagemaker-training-network-isolation": lambda: [
        res(
            "aws:sagemaker/trainingJob:TrainingJob",
            "t",
            enableNetworkIsolation=False,
            resourceConfig={"instanceType": "ml.g5.xlarge"},
            algorithmSpecification={"trainingImage": DIGEST},
        )
    ],
    "sagemaker-spot-needs-checkpoints": lambda: [
        res(
            "aws:sagemaker/trainingJob:TrainingJob",
            "t",
            enableNetworkIsolation=True,
            enableManagedSpotTraining=True,
            resourceConfig={"instanceType": "ml.g5.xlarge"},
            algorithmSpecification={"trainingImage": DIGEST},
            stoppingCondition={"maxRuntimeInSeconds": 3600, "maxWaitTimeInSeconds": 3600},
        )
    ],
    "sagemaker-prod-blue-green-with-rollback": lambda: endpoint_stack(alarms=False),
    "sagemaker-canary-linear-min-instances": lambda: endpoint_stack(style="LINEAR", count=1),
    "images-by-digest": lambda: _mutated(("primaryContainer",), {"image": "serving:latest"}, "m"),
    "alarm-has-dimensions": lambda: [
        res(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "a",
            alarmActions=["arn:t"],
            treatMissingData="notBreaching",
            metricName="Invocations",
        )
    ],
    "alarm-has-actions": lambda: [
        res(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "a",
            dimensions={"EndpointName": "e"},
            treatMissingData="notBreaching",
        )
    ],
    "alarm-missing-data-explicit": lambda: [
        res("aws:cloudwatch/metricAlarm:MetricAlarm", "a", dimensions={"EndpointName": "e"}, alarmActions=["arn:t"])
    ],
    "sns-encrypted": lambda: [res("aws:sns/topic:Topic", "alarms")],
    "kms-rotation": lambda: [res("aws:kms/key:Key", "k", enableKeyRotation=False)],
    "required-tags": lambda: [res("pulumi:providers:aws", "aws", defaultTags={"tags": {"project": "x"}})],
    "gpu-instance-allowlist": lambda: endpoint_stack(instance="ml.p4d.24xlarge", kms=False),
    "k8s-container-resources": lambda: k8s_deployment(resources={"requests": {"cpu": "1", "memory": "1Gi"}}),
    "k8s-container-probes": lambda: k8s_deployment(probes=("livenessProbe",)),
    "k8s-images-by-digest": lambda: k8s_deployment(image="registry.example.com/serving:1.4"),
}


def k8s_deployment(
    resources: dict[str, Any] | None = None,
    probes: tuple[str, ...] = ("readinessProbe", "livenessProbe"),
    image: str = DIGEST,
) -> list[dict[str, Any]]:
    """A Deployment as the plan holds it; the defaults pass every Kubernetes rule."""
    limits = {"cpu": "1", "memory": "1Gi"}
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "resources": resources if resources is not None else {"requests": limits, "limits": limits},
        **{p: {"httpGet": {"path": "/ping", "port": "http"}} for p in probes},
    }
    return [res("kubernetes:apps/v1:Deployment", "d", spec={"template": {"spec": {"containers": [container]}}})]


def test_every_rule_has_a_failing_example() -> None:
    assert set(FAILING) == set(RULES)


@pytest.mark.parametrize("rule_name", sorted(FAILING))
def test_rule_catches_its_failing_example(rule_name: str) -> None:
    assert rule_name in violated(FAILING[rule_name]())


def test_nvme_instance_with_kms_key_is_reported() -> None:
    assert "sagemaker-endpoint-config-kms" in violated(endpoint_stack(instance="ml.g5.xlarge", kms=True))


def test_prod_only_rules_do_not_apply_in_dev() -> None:
    dev = PolicyContext(environment="dev", allowed_gpu_instance_types=("ml.g5.xlarge",))
    assert violated(endpoint_stack(capture=False, alarms=False), dev) == set()


def test_a_written_exception_waives_its_rule_only() -> None:
    excepted = PolicyContext(environment="prod", exceptions={"sagemaker-data-capture-in-prod": "PII, ticket SEC-9"})
    assert violated(endpoint_stack(capture=False), excepted) == set()
    assert "sagemaker-prod-blue-green-with-rollback" in violated(endpoint_stack(alarms=False), excepted)


def test_a_complete_kubernetes_deployment_passes_the_kubernetes_rules() -> None:
    assert {r for r in violated(k8s_deployment()) if r.startswith("k8s-")} == set()


def test_init_containers_need_limits_but_no_probes() -> None:
    deployment = k8s_deployment()
    pod = deployment[0]["inputs"]["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "fetch-model", "image": DIGEST}]
    assert {r for r in violated(deployment) if r.startswith("k8s-")} == {"k8s-container-resources"}


def test_the_kubernetes_target_plan_passes_the_kubernetes_rules(replan: Any) -> None:
    from tests.test_kubernetes_plan import CANARY, KUBERNETES

    plan = replan("prod", {**KUBERNETES, **CANARY})
    assert [v for v in evaluate(plan.resources) if v.enforcement == "mandatory"] == []


def test_build_cache_repository_may_have_mutable_tags() -> None:
    cache = copy.deepcopy(FAILING["ecr-immutable-tags"]())
    cache[0]["name"] = "serving-cache"
    assert "ecr-immutable-tags" not in violated(cache)


def test_unknown_exception_is_refused_with_the_rule_list(replan: Any) -> None:
    with pytest.raises(Exception, match=r"unknown rules \['no-such-rule'\]"):
        replan("dev", {"mlplatform:policyExceptions": '{"no-such-rule": "because of reasons"}'})


def test_exception_shows_in_the_plan(replan: Any) -> None:
    plan = replan("prod", {"mlplatform:policyExceptions": '{"alarm-has-actions": "alarms go to PagerDuty via rule"}'})
    context = plan.one("mlplatform:policy:PolicyContext")
    assert context["inputs"]["exceptions"] == {"alarm-has-actions": "alarms go to PagerDuty via rule"}


def test_sagemaker_vpc_statements_pass_the_iam_rules() -> None:
    from components.iam import sagemaker_vpc_statements

    document = {"Statement": sagemaker_vpc_statements("aws", "us-east-1", "111122223333", ["subnet-1"], ["sg-1"])}
    resources = [res("aws:iam/rolePolicy:RolePolicy", "vpc", policy=json.dumps(document))]
    assert violated(resources) == set()
