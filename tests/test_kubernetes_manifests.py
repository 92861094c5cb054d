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
from tests.test_kubernetes_plan import CANARY, KUBERNETES
from tools.plan import Plan

# Resources of CRDs the cluster may not have: kubernetes-validate ships only the built-in schemas.
CUSTOM_RESOURCES = {"kubernetes:monitoring.coreos.com/v1:ServiceMonitor"}
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


@pytest.mark.parametrize("version", ["1.25", "1.33", KUBERNETES_VERSIONS[-1]])
def test_every_manifest_validates_for_the_cluster_version(version: str) -> None:
    plan = plan_with("prod", {**EVERYTHING_ON, "mlplatform:kubernetesClusterVersion": version})
    kinds = sorted(m["kind"] for m in manifests(plan))
    assert kinds == [
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert validate_all(plan, version) == []


def test_image_delivery_manifests_validate() -> None:
    plan = plan_with("dev", {**KUBERNETES, "mlplatform:kubernetesModelDelivery": "image"})
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
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mlplatform"]}
