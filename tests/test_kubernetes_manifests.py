"""Every manifest the Kubernetes target plans validates against the cluster version's OpenAPI schemas.

The Kubernetes resources' inputs in the mocked plan are the manifests (camelCase, as the provider sends them).
They are checked with kubernetes-validate's strict schemas (unknown fields are errors) for the cluster version
in `mlplatform:kubernetesClusterVersion`.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from components.settings import KUBERNETES_VERSIONS
from tests.conftest import plan_with
from tests.test_kubernetes_plan import CANARY, IMAGE_DELIVERY, KUBERNETES
from tools.plan import Plan

# Resources of CRDs the cluster may not have: kubernetes-validate ships only the built-in schemas.
CUSTOM_RESOURCES = {
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
}
EVERYTHING_ON = {
    **KUBERNETES,
    **CANARY,
    "mlplatform:kubernetesMetricsAdapter": "true",
    "mlplatform:kubernetesServiceMonitor": "true",
}


def as_manifest(value: Any) -> Any:
    """Plan inputs as a manifest: the mock runtime turns every number into a float, the API wants integers."""
    if isinstance(value, dict):
        return {k: as_manifest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_manifest(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifests(plan: Plan) -> list[dict[str, Any]]:
    return [
        as_manifest(r["inputs"])
        for r in plan.resources
        if r["type"].startswith("kubernetes:") and r["type"] not in CUSTOM_RESOURCES
    ]


def validate_all(plan: Plan, version: str) -> list[str]:
    errors = []
    for manifest in manifests(plan):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{manifest['kind']} {manifest['metadata']['name']}: {exc.message} at {list(exc.path)}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_dev_stack_serving_both_targets_validates_for_every_supported_version(version: str) -> None:
    """dev with `servingTarget: both`, planned for each cluster version the settings accept: the manifests
    differ by version (the Pod Security label's version, the disruption budgets' eviction policy), so each is
    checked against its own strict schemas."""
    plan = plan_with("dev", {**KUBERNETES, "mlplatform:kubernetesClusterVersion": version})
    kinds = sorted(m["kind"] for m in manifests(plan))
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert validate_all(plan, version) == []


@pytest.mark.parametrize("version", ["1.25", "1.26", "1.27", "1.33", KUBERNETES_VERSIONS[-1]])
def test_every_manifest_of_a_canary_with_everything_on_validates(version: str) -> None:
    plan = plan_with("prod", {**EVERYTHING_ON, "mlplatform:kubernetesClusterVersion": version})
    kinds = sorted(m["kind"] for m in manifests(plan))
    assert kinds == [
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert validate_all(plan, version) == []


def test_weighted_routing_manifests_validate() -> None:
    plan = plan_with("prod", {**EVERYTHING_ON, "mlplatform:kubernetesCanaryRouting": "gateway-api"})
    assert sorted(m["kind"] for m in manifests(plan)).count("Service") == 3
    assert validate_all(plan, "1.33") == []


def test_the_httproute_has_the_gateway_api_fields() -> None:
    """HTTPRoute is a CRD (gateway.networking.k8s.io/v1, Gateway API standard channel): checked field by field
    against its reference: spec.parentRefs[] {group, kind, name, port}, spec.rules[].backendRefs[] {group, kind,
    name, port, weight (0 to 1000000)}."""
    plan = plan_with("prod", {**KUBERNETES, **CANARY, "mlplatform:kubernetesCanaryRouting": "gateway-api"})
    route = plan.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")["inputs"]
    assert set(route) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(route["spec"]) == {"parentRefs", "rules"}
    for ref in route["spec"]["parentRefs"]:
        assert set(ref) == {"group", "kind", "name", "port"}
    for rule in route["spec"]["rules"]:
        assert set(rule) == {"backendRefs"}
        for backend in rule["backendRefs"]:
            assert set(backend) == {"group", "kind", "name", "port", "weight"}
            assert 0 <= backend["weight"] <= 1_000_000


def test_image_delivery_manifests_validate() -> None:
    plan = plan_with("dev", {**KUBERNETES, **IMAGE_DELIVERY})
    assert validate_all(plan, "1.33") == []


def test_the_validator_catches_a_broken_manifest() -> None:
    plan = plan_with("dev", KUBERNETES)
    [deployment] = [m for m in manifests(plan) if m["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # a typo the strict schema refuses
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)
    container["readinessProbe"] = container.pop("readinesProbe")
    container["resources"]["limits"]["cpu"] = {"cores": 1}  # not a quantity
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


def test_the_service_monitor_has_the_prometheus_operator_fields() -> None:
    plan = plan_with("dev", {**KUBERNETES, "mlplatform:kubernetesServiceMonitor": "true"})
    monitor = plan.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")["inputs"]
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(monitor["spec"]) == {"selector", "namespaceSelector", "podTargetLabels", "endpoints"}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mlplatform-dev"]}


def test_the_stacks_service_monitor_is_the_documented_one() -> None:
    """The ServiceMonitor a stack creates and the one docs/grafana ships for clusters without the stack come
    from one function (components/prometheus.py), so the scrape the autoscaler depends on is the same."""
    from components.prometheus import service_monitor

    plan = plan_with("dev", {**KUBERNETES, "mlplatform:kubernetesServiceMonitor": "true"})
    created = plan.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")["inputs"]
    expected = service_monitor("mlplatform-dev")
    assert created["spec"] == expected["spec"]
    assert created["metadata"]["labels"] == expected["metadata"]["labels"]
