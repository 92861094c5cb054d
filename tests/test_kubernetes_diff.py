"""Plan diff of the Kubernetes target: a pod template change is a rolling update; a canary is described."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import plan_with
from tests.test_kubernetes_plan import CANARY, KUBERNETES, STABLE_IMAGE
from tools.change_semantics import K8S_DEPLOYMENT, Effect, effect_of
from tools.diff import diff_plans, render_markdown

PINNED = {**KUBERNETES, "mlplatform:kubernetesMinReplicas": "4", "mlplatform:kubernetesMaxReplicas": "12"}


@pytest.fixture(scope="module")
def plans() -> dict[str, dict[str, Any]]:
    """Before the canary (stable pinned), during it, and after promotion (pins removed)."""
    return {
        "pinned": plan_with("prod", {**PINNED, **{k: v for k, v in CANARY.items() if "Stable" in k}}).as_json(),
        "canary": plan_with("prod", {**PINNED, **CANARY}).as_json(),
        "promoted": plan_with("prod", PINNED).as_json(),
    }


def test_a_pod_template_change_rolls_the_pods_and_a_selector_change_replaces() -> None:
    assert effect_of(K8S_DEPLOYMENT, ["spec.template.spec.containers[0].image"]) is Effect.ROLLING_UPDATE
    assert effect_of(K8S_DEPLOYMENT, ["spec.selector.matchLabels.track"]) is Effect.REPLACEMENT
    assert effect_of(K8S_DEPLOYMENT, ["metadata.labels.team"]) is Effect.IN_PLACE


def test_starting_a_canary_adds_its_deployment_and_describes_image_pods_and_share(
    plans: dict[str, dict[str, Any]],
) -> None:
    diff = diff_plans("prod", plans["pinned"], plans["canary"])
    added = {r["inputs"]["metadata"]["name"] for r in diff.added if r["type"].startswith("kubernetes:")}
    assert added == {"model-server-canary"}
    [canary] = diff.canaries
    assert canary.status == "starts"
    assert canary.after["stable"] == {"image": STABLE_IMAGE, "pods": (4, 12)}
    assert canary.after["canary"]["image"] == plans["canary"]["outputs"]["servingImage"]
    assert canary.after["canary"]["pods"] == (1, 1)  # a fixed canary: Deployment replicas, no autoscaler
    assert canary.after["canary"]["share_percent"] == 20.0
    text = render_markdown([diff], "main")
    assert "#### Kubernetes canary in namespace `mlplatform-prod`: starts" in text
    assert "| canary pods | `-` | `1-1` **(changed)** |" in text
    assert "the canary runs 20.0% of the pods" in text


def test_promotion_rolls_the_stable_pods_to_the_canarys_image(plans: dict[str, dict[str, Any]]) -> None:
    diff = diff_plans("prod", plans["canary"], plans["promoted"])
    [canary] = diff.canaries
    assert canary.status == "promoted"
    assert canary.after["stable"]["image"] == canary.before["canary"]["image"]
    stable = next(c for c in diff.changed if c.ref == f"{K8S_DEPLOYMENT}::mlplatform-prod-k8s-stable")
    assert stable.effect is Effect.ROLLING_UPDATE
    assert [r["inputs"]["metadata"]["name"] for r in diff.removed if r["type"] == K8S_DEPLOYMENT] == [
        "model-server-canary"
    ]


def test_no_canary_no_description(plans: dict[str, dict[str, Any]]) -> None:
    assert diff_plans("prod", plans["promoted"], plans["promoted"]).canaries == []
