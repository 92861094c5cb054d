"""Kubernetes settings: each mistake is refused before anything is created, with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from components.settings import KubernetesSettings, SettingsError, cpu_millis, load_settings, memory_bytes
from tests.test_kubernetes_plan import CANARY, IMAGE_DELIVERY, KUBERNETES
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
    image = load(IMAGE_DELIVERY, remove=("mlplatform:kubernetesOidcProviderArn", "mlplatform:kubernetesAwsCliImage"))
    assert image.kubernetes.model_delivery == "image"


@pytest.mark.parametrize("source", ["train", "stack"])
def test_image_delivery_of_a_model_the_stack_does_not_bake_is_refused(source: str) -> None:
    """With `modelSource` train or stack, the serving image is serving/Dockerfile's (built here or promoted),
    which holds the server but no model files; the pod would run it with MLPLATFORM_MODEL_DIR pointing at an
    empty directory, the server exits at start ("manifest.json is missing", serving/model.py) and the pod
    crash-loops. Only a pinned serving image can be one the model was baked into."""
    changes = {"mlplatform:kubernetesModelDelivery": "image", "mlplatform:modelSource": source}
    if source == "stack":
        changes["mlplatform:modelStack"] = "organization/mlplatform/dev"
    with pytest.raises(SettingsError) as caught:
        load(changes)
    message = str(caught.value)
    assert "mlplatform:kubernetesModelDelivery image serves the model baked into the serving image, but " in message
    assert f"mlplatform:modelSource {source} gives a serving image without the model" in message


def test_a_canary_needs_the_stable_model_pinned() -> None:
    with pytest.raises(SettingsError, match="pin the model the stable pods keep with mlplatform:kubernetesStableImage"):
        load({**CANARY}, remove=("mlplatform:kubernetesStableImage", "mlplatform:kubernetesStableModelDataUri"))


def test_a_canary_share_the_minimum_cannot_express_is_refused_with_the_minimum_it_needs() -> None:
    """With pod routing one canary pod beside n stable pods takes 1 / (n + 1) of the connections: 10 % needs at
    least 9 stable pods, or the canary would get more than asked for."""
    with pytest.raises(
        SettingsError,
        match=r"one canary pod beside 4 stable pods would take 20% of the requests; raise the minimum"
        r" to at least 9",
    ):
        load({**CANARY, "mlplatform:kubernetesCanaryPercent": "10", "mlplatform:kubernetesMinReplicas": "4"})
    assert load({**CANARY, "mlplatform:kubernetesCanaryPercent": "10", "mlplatform:kubernetesMinReplicas": "9"})
    # A weighted split does not depend on the pod counts.
    weighted = load(
        {
            **CANARY,
            "mlplatform:kubernetesCanaryPercent": "10",
            "mlplatform:kubernetesCanaryRouting": "gateway-api",
        }
    )
    assert weighted.kubernetes.canary_share_range() == (10.0, 10.0)


def test_the_canary_share_with_pod_routing_is_at_most_the_percent() -> None:
    for percent in range(1, 51):
        settings = KubernetesSettings(canary_percent=percent, min_replicas=100, max_replicas=200)
        low, high = settings.canary_share_range()
        assert low <= high <= percent


def test_kubernetes_keys_are_not_checked_for_a_sagemaker_target() -> None:
    settings = load_settings({**stack_config("dev"), "mlplatform:kubernetesCanaryPercent": "10"}, "dev")
    assert settings.kubernetes.canary_percent == 10


def test_a_single_replica_is_refused_because_a_drain_would_take_it() -> None:
    """The disruption budget allows one unavailable pod per track (`maxUnavailable: 1`): an eviction is allowed
    while at most that many pods are unavailable after it (kubernetes.io PodDisruptionBudget v1 reference,
    `maxUnavailable`), so with one stable pod a node drain evicts the whole service."""
    with pytest.raises(SettingsError, match=r"mlplatform:kubernetesMinReplicas \(1\) must be at least 2"):
        load({"mlplatform:kubernetesMinReplicas": "1"})


def test_the_memory_limit_must_hold_every_workers_model_and_request() -> None:
    """Each worker process loads its own copy of the model (serving/supervisor.py forks the workers, each loads
    the model after the fork) and scores whole requests in memory; the kernel kills the container once it passes
    its memory limit. The sizes are measured (components/settings.py, SERVER_BASE_MEMORY_MIB)."""
    four_workers = {"mlplatform:kubernetesCpuLimit": "4", "mlplatform:kubernetesCpuRequest": "1"}
    # 64 + 4 x (16 + 2 x 32 + 256) = 1408 MiB, above the default 1 GiB limit.
    with pytest.raises(SettingsError) as caught:
        load(four_workers)
    assert "mlplatform:kubernetesMemoryLimit (1Gi) is below what 4 worker(s) need" in str(caught.value)
    assert "= 1408Mi" in str(caught.value)
    assert load({**four_workers, "mlplatform:kubernetesMemoryLimit": "1408Mi"})
    with pytest.raises(SettingsError, match=r"kubernetesModelSize 400Mi \+ mlplatform:kubernetesRequestMemory"):
        load({"mlplatform:kubernetesModelSize": "400Mi"})


def test_the_model_volume_must_hold_both_exported_models() -> None:
    with pytest.raises(SettingsError, match=r"mlplatform:kubernetesModelVolumeSize \(512Mi\) must hold"):
        load(
            {
                "mlplatform:kubernetesModelVolumeSize": "512Mi",
                "mlplatform:kubernetesModelSize": "300Mi",
                "mlplatform:kubernetesMemoryLimit": "2Gi",
            }
        )


def test_the_request_rate_metric_needs_the_scrape_that_feeds_it() -> None:
    """An HPA with several metrics scales up on those it can read but never down while one is missing
    (kubernetes/kubernetes#99514 "hpa: Don't scale down if at least one metric was invalid"; kubernetes.io HPA
    "Algorithm details"). The adapter's request rate exists only once Prometheus scrapes the pods, which is
    what the ServiceMonitor sets up."""
    with pytest.raises(
        SettingsError,
        match=r"mlplatform:kubernetesMetricsAdapter true needs mlplatform:kubernetesServiceMonitor true",
    ):
        load({"mlplatform:kubernetesMetricsAdapter": "true"})
    assert load({"mlplatform:kubernetesMetricsAdapter": "true", "mlplatform:kubernetesServiceMonitor": "true"})


def test_a_rollout_that_cannot_finish_within_the_limit_is_refused() -> None:
    """The startup budget goes up to an hour; a rollout of 6 pods, 2 at a time (25 % surge, rounded up), with
    each pod allowed 180 + 3600 + 10 s to start can take 3 x 3790 + 60 s: more than the 3600 s limit."""
    with pytest.raises(SettingsError) as caught:
        load({"mlplatform:kubernetesStartupTimeoutSeconds": "3600"})
    message = str(caught.value)
    assert (
        "a rollout of the stable pods can take 11430 s, longer than mlplatform:kubernetesMaxRolloutSeconds" in message
    )
    assert "6 pods, 2 at a time (mlplatform:kubernetesMaxSurgePercent 25)" in message
    # All pods at once, one wave of 3790 + 60 s, fits a limit raised above one pod start.
    assert load(
        {
            "mlplatform:kubernetesStartupTimeoutSeconds": "3600",
            "mlplatform:kubernetesMaxSurgePercent": "100",
            "mlplatform:kubernetesMaxRolloutSeconds": "3850",
        }
    )


def test_rollout_arithmetic() -> None:
    settings = KubernetesSettings(max_surge_percent=25, model_fetch_seconds=100, startup_timeout_seconds=298)
    assert settings.startup_probe_failures() == 60  # ceil(298 / 5)
    assert settings.pod_start_seconds() == 100 + 300 + 5 + 5
    assert [settings.surge_pods(n) for n in (1, 2, 4, 5, 8, 9)] == [1, 1, 1, 2, 2, 3]
    assert settings.rollout_seconds(9) == 3 * 410 + 60


def test_the_default_namespace_is_per_stack_and_must_be_a_dns_label() -> None:
    assert KubernetesSettings().namespace_for("Prod_EU.1") == "mlplatform-prod-eu-1"
    assert KubernetesSettings(namespace="team-a").namespace_for("dev") == "team-a"
    with pytest.raises(SettingsError, match=r"set mlplatform:kubernetesNamespace"):
        load_settings({**stack_config("dev"), **KUBERNETES}, "d" * 60)


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
