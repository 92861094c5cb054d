"""Kubernetes settings: each mistake is refused before anything is created, with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from components.settings import KubernetesSettings, SettingsError, cpu_millis, load_settings, memory_bytes
from tests.test_kubernetes_plan import CANARY, KUBERNETES
from tools.plan import stack_config

BASE = {"aws:region": "us-east-1", "mlplatform:owner": "ml-team", "mlplatform:environment": "dev"}


def load(changes: dict[str, Any], remove: tuple[str, ...] = ()) -> Any:
    config = {k: v for k, v in {**stack_config("dev"), **KUBERNETES, **changes}.items() if k not in remove}
    return load_settings(config, "dev")


def test_the_default_target_is_sagemaker_and_needs_no_kubernetes_keys() -> None:
    settings = load_settings(stack_config("dev"), "dev")
    assert settings.serving.target == "sagemaker"
    assert settings.kubernetes == KubernetesSettings()


def test_a_kubernetes_target_needs_exactly_one_kubeconfig_source() -> None:
    with pytest.raises(SettingsError, match="exactly one of mlplatform:kubernetesKubeconfig"):
        load({}, remove=("mlplatform:kubernetesKubeconfig",))
    with pytest.raises(SettingsError, match="exactly one of mlplatform:kubernetesKubeconfig"):
        load({"mlplatform:kubernetesKubeconfigStack": "acme/eks/dev"})
    assert load({"mlplatform:kubernetesKubeconfigStack": "acme/eks/dev"}, remove=("mlplatform:kubernetesKubeconfig",))


def test_a_bad_kubeconfig_value_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        load({"mlplatform:kubernetesKubeconfig": ["token: s3cr3t"]})
    assert "s3cr3t" not in str(caught.value)
    assert "mlplatform:kubernetesKubeconfig" in str(caught.value)


def test_the_kubeconfig_must_be_a_secret_though_pulumi_yaml_cannot_say_so() -> None:
    """A key declared `secret: true` with a default fails every stack that leaves it unset (the CLI checks the
    merged default; tests/test_cli_preflight.py), so the settings refuse a plain-text kubeconfig instead."""
    from tools.config_reference import config_declarations

    assert config_declarations()["mlplatform:kubernetesKubeconfig"]["default"] == ""
    with pytest.raises(SettingsError, match="mlplatform:kubernetesKubeconfig: set as plain text"):
        load_settings({**BASE, "mlplatform:kubernetesKubeconfig": "apiVersion: v1"}, "k8s", secret_keys=set())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mlplatform:servingTarget": "eks"}, r"mlplatform:servingTarget: got 'eks'; allowed values are"),
        ({"mlplatform:kubernetesClusterVersion": "1.20"}, r"allowed are 1.25 to 1.37"),
        ({"mlplatform:kubernetesNamespace": "ML_Platform"}, r"mlplatform:kubernetesNamespace: got 'ML_Platform'"),
        ({"mlplatform:kubernetesAllowedNamespaces": "[]"}, r"must name at least one namespace"),
        ({"mlplatform:kubernetesCpuLimit": "two"}, r"CPU quantity like '500m'"),
        ({"mlplatform:kubernetesMemoryLimit": "1GB"}, r"memory quantity like '512Mi'"),
        ({"mlplatform:kubernetesCpuRequest": "2"}, r"kubernetesCpuRequest \(2\) must not exceed"),
        ({"mlplatform:kubernetesMemoryRequest": "2Gi"}, r"kubernetesMemoryRequest \(2Gi\) must not exceed"),
        ({"mlplatform:kubernetesMinReplicas": "7"}, r"kubernetesMinReplicas \(7\) must not exceed"),
        ({"mlplatform:kubernetesAwsCliImage": "amazon/aws-cli:latest"}, r"kubernetesAwsCliImage must be .* by digest"),
        ({"mlplatform:kubernetesOidcProviderArn": "arn:aws:iam::1:role/x"}, r"must be an IAM OIDC provider ARN"),
        (
            {"mlplatform:kubernetesCanaryPercent": "60"},
            r"kubernetesCanaryPercent: got '60'; input should be less than or equal to 50",
        ),
    ],
)
def test_invalid_kubernetes_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(changes)


def test_s3_delivery_needs_the_oidc_provider_and_the_cli_image() -> None:
    with pytest.raises(SettingsError, match="s3 needs mlplatform:kubernetesOidcProviderArn, mlplatform:kubernetesAws"):
        load({}, remove=("mlplatform:kubernetesOidcProviderArn", "mlplatform:kubernetesAwsCliImage"))
    image = load(
        {"mlplatform:kubernetesModelDelivery": "image"},
        remove=("mlplatform:kubernetesOidcProviderArn", "mlplatform:kubernetesAwsCliImage"),
    )
    assert image.kubernetes.model_delivery == "image"


def test_a_canary_needs_the_stable_model_pinned() -> None:
    with pytest.raises(SettingsError, match="pin the model the stable pods keep with mlplatform:kubernetesStableImage"):
        load({**CANARY}, remove=("mlplatform:kubernetesStableImage", "mlplatform:kubernetesStableModelDataUri"))


def test_a_canary_share_the_minimum_cannot_express_is_refused_with_the_minimum_it_needs() -> None:
    with pytest.raises(
        SettingsError, match=r"gives the canary 33% of the pods \(1 of 3\); raise the minimum to at least 4"
    ):
        load({**CANARY, "mlplatform:kubernetesCanaryPercent": "10", "mlplatform:kubernetesMinReplicas": "2"})
    assert load({**CANARY, "mlplatform:kubernetesCanaryPercent": "10", "mlplatform:kubernetesMinReplicas": "4"})


def test_kubernetes_keys_are_not_checked_for_a_sagemaker_target() -> None:
    settings = load_settings({**stack_config("dev"), "mlplatform:kubernetesCanaryPercent": "10"}, "dev")
    assert settings.kubernetes.canary_percent == 10


def test_quantities() -> None:
    assert [cpu_millis(q) for q in ("250m", "1", "1.5", "2")] == [250, 1000, 1500, 2000]
    assert [memory_bytes(q) for q in ("512Mi", "1Gi", "1G", "1024")] == [512 * 2**20, 2**30, 10**9, 1024]


def test_workers_follow_the_whole_cores_of_the_cpu_limit() -> None:
    assert [KubernetesSettings(cpu_limit=c, cpu_request="100m").workers() for c in ("500m", "1", "2.5", "4")] == [
        1,
        1,
        2,
        4,
    ]
