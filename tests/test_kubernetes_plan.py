"""Kubernetes serving target: what a stack with `mlplatform:servingTarget` kubernetes or both plans."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from components.kubernetes import (
    IRSA_ANNOTATION,
    NON_ROOT_UID,
    PRE_STOP_SLEEP_SECONDS,
    SERVER_DRAIN_SECONDS,
    TERMINATION_GRACE_SECONDS,
    TIMEOUT_ANNOTATION,
)
from components.settings import PULUMI_K8S_DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS
from tests.conftest import plan_with
from tools.example_outputs import example_stack_outputs
from tools.plan import Plan, run_program, stack_config

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"
KUBERNETES = {
    "mlplatform:servingTarget": "both",
    "mlplatform:kubernetesKubeconfig": KUBECONFIG,
    "mlplatform:kubernetesAllowedNamespaces": '["apps", "batch-scoring"]',
    "mlplatform:kubernetesOidcProviderArn": (
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    ),
    "mlplatform:kubernetesAwsCliImage": "public.ecr.aws/aws-cli/aws-cli@sha256:" + "c" * 64,
}
STABLE_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:" + "1" * 64
STABLE_URI = "s3://mlplatform-dev-models-0a1b2c3/training/previous-job/output/model/"
CANARY = {
    "mlplatform:kubernetesCanaryPercent": "20",
    "mlplatform:kubernetesMinReplicas": "4",
    "mlplatform:kubernetesMaxReplicas": "12",
    "mlplatform:kubernetesStableImage": STABLE_IMAGE,
    "mlplatform:kubernetesStableModelDataUri": STABLE_URI,
}
# Image delivery serves a model baked into a pinned serving image (a stack-built image holds no model).
BAKED_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/churn-model-baked@sha256:" + "b" * 64
IMAGE_DELIVERY = {
    "mlplatform:kubernetesModelDelivery": "image",
    "mlplatform:modelSource": "pinned",
    "mlplatform:modelDataUri": "s3://mlplatform-dev-models-0a1b2c3/pinned/model/",
    "mlplatform:modelBaselineStatisticsUri": "s3://mlplatform-dev-models-0a1b2c3/pinned/model/baseline/statistics.json",
    "mlplatform:modelBaselineConstraintsUri": (
        "s3://mlplatform-dev-models-0a1b2c3/pinned/model/baseline/constraints.json"
    ),
    "mlplatform:modelServingImage": BAKED_IMAGE,
}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE = "kubernetes:core/v1:Service"


@pytest.fixture(scope="module")
def k8s_plan() -> Plan:
    return plan_with("dev", KUBERNETES)


@pytest.fixture(scope="module")
def canary_plan() -> Plan:
    return plan_with("prod", {**KUBERNETES, **CANARY})


def kubernetes_resources(plan: Plan) -> list[dict[str, Any]]:
    return [r for r in plan.resources if r["type"].startswith("kubernetes:")]


def track(plan: Plan, type_token: str, name: str) -> dict[str, Any]:
    [found] = [r for r in plan.of_type(type_token) if r["inputs"]["metadata"]["name"] == name]
    return found


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["inputs"]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_kubernetes_target_plans_every_resource_of_the_service(k8s_plan: Plan) -> None:
    counts: dict[str, int] = {}
    for r in kubernetes_resources(k8s_plan):
        counts[r["type"]] = counts.get(r["type"], 0) + 1
    assert counts == {
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:ServiceAccount": 1,
        DEPLOYMENT: 1,
        HPA: 1,
        "kubernetes:core/v1:Service": 1,
        "kubernetes:policy/v1:PodDisruptionBudget": 1,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": 1,
    }
    assert len(k8s_plan.of_type("pulumi:providers:kubernetes")) == 1


def test_every_kubernetes_resource_uses_the_stacks_own_provider(k8s_plan: Plan, canary_plan: Plan) -> None:
    for plan in (k8s_plan, canary_plan):
        provider = plan.one("pulumi:providers:kubernetes")
        resources = kubernetes_resources(plan)
        assert resources
        assert {r["options"].get("provider") for r in resources} == {provider["name"]}


def test_the_kubeconfig_stays_secret_in_the_plan(k8s_plan: Plan) -> None:
    kubeconfig = k8s_plan.one("pulumi:providers:kubernetes")["inputs"]["kubeconfig"]
    # The engine's secret marker wraps the value: the state stores it encrypted.
    assert isinstance(kubeconfig, dict) and kubeconfig["value"] == KUBECONFIG.strip()
    assert "4dabf18193072939515e22adb298388d" in kubeconfig


def test_the_kubeconfig_can_come_from_an_eks_stack_output() -> None:
    config = {k: v for k, v in {**stack_config("dev"), **KUBERNETES}.items() if k != "mlplatform:kubernetesKubeconfig"}
    config["mlplatform:kubernetesKubeconfigStack"] = "acme/eks/dev"
    config["mlplatform:kubernetesKubeconfigOutput"] = "kubeconfigJson"
    cluster = {"kubeconfigJson": {"apiVersion": "v1", "kind": "Config", "clusters": []}}
    plan = run_program("dev", config, stack_outputs={**example_stack_outputs(), "acme/eks/dev": cluster})
    assert plan.named("mlplatform-dev-cluster")["inputs"]["name"] == "acme/eks/dev"
    kubeconfig = plan.one("pulumi:providers:kubernetes")["inputs"]["kubeconfig"]
    assert json.loads(kubeconfig["value"]) == cluster["kubeconfigJson"]


def test_a_missing_kubeconfig_output_is_named() -> None:
    config = {k: v for k, v in KUBERNETES.items() if k != "mlplatform:kubernetesKubeconfig"}
    with pytest.raises(ValueError, match="While processing") as caught:
        plan_with("dev", {**config, "mlplatform:kubernetesKubeconfigStack": "acme/eks/dev"})
    # The SDK wraps the program's error once per resource input it flows through; the root says what to fix.
    root: BaseException = caught.value
    while root.__cause__ or root.__context__:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    assert str(root).startswith("stack 'acme/eks/dev' has no output 'kubeconfig'")


def test_sagemaker_stacks_plan_nothing_on_kubernetes(dev_plan: Plan, prod_plan: Plan) -> None:
    for plan in (dev_plan, prod_plan):
        assert kubernetes_resources(plan) == []
        assert plan.of_type("pulumi:providers:kubernetes") == []


def test_the_kubernetes_only_target_drops_the_endpoint_and_its_monitoring(replan: Any) -> None:
    # The idle alarm watches a SageMaker endpoint: a Kubernetes-only stack turns it off (settings refuse it).
    plan = replan("dev", {**KUBERNETES, "mlplatform:servingTarget": "kubernetes", "mlplatform:costIdleAlarmHours": "0"})
    assert plan.of_type("aws:sagemaker/endpoint:Endpoint") == []
    assert plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") == []
    assert len(plan.of_type(DEPLOYMENT)) == 1
    # Training and the model still come from this stack.
    assert len(plan.of_type("aws:sagemaker/trainingJob:TrainingJob")) == 1


def test_the_server_runs_the_serving_image_by_digest_with_its_contract(k8s_plan: Plan) -> None:
    container = server(k8s_plan.one(DEPLOYMENT))
    assert "@sha256:" in container["image"]
    assert container["image"] == k8s_plan.outputs["servingImage"]
    assert container["args"] == ["serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "MLPLATFORM_MODEL_DIR": "/opt/ml/model",
        "MLPLATFORM_MODEL_PRECISION": "fp32",
        "MLPLATFORM_SERVING_WORKERS": "1",  # one per whole core of the 1-CPU limit, not the node's cores
        "MLPLATFORM_SERVING_PORT": "8080",
    }


def test_startup_and_readiness_check_ping_and_give_model_loading_its_own_budget(k8s_plan: Plan) -> None:
    container = server(k8s_plan.one(DEPLOYMENT))
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ping", "port": "http"}
    startup = container["startupProbe"]
    # Default kubernetesStartupTimeoutSeconds is 300: 60 failed checks 5 s apart before a restart.
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300


def test_liveness_asks_only_whether_the_process_serves_so_a_slow_reload_is_not_killed(k8s_plan: Plan) -> None:
    """`/ping` answers 503 until every worker has its model (serving/app.py `ping`), so also while a restarted
    worker reloads it: as a liveness check, a reload
    longer than failureThreshold x periodSeconds (30 s) would get the whole container killed. Kubernetes restarts a
    container when its liveness probe fails (kubernetes.io, "Configure Liveness, Readiness and Startup Probes");
    readiness only takes the pod out of the Service. So liveness is the server's own `/livez` route (200 whenever
    the process serves HTTP) and `/ping` stays the readiness check."""
    container = server(k8s_plan.one(DEPLOYMENT))
    liveness = container["livenessProbe"]
    assert liveness["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert liveness["failureThreshold"] * liveness["periodSeconds"] <= 30


def test_startup_budget_and_progress_deadline_follow_the_settings(replan: Any) -> None:
    plan = replan(
        "dev",
        {
            **KUBERNETES,
            "mlplatform:kubernetesStartupTimeoutSeconds": "601",
            "mlplatform:kubernetesModelFetchSeconds": "200",
        },
    )
    startup = server(plan.one(DEPLOYMENT))["startupProbe"]
    assert startup["failureThreshold"] == math.ceil(601 / 5)
    # One pod's start: fetching (200), the startup probe's whole budget (121 x 5), a readiness period and
    # minReadySeconds (5 + 5); plus the control plane's margin (60).
    assert plan.one(DEPLOYMENT)["inputs"]["spec"]["progressDeadlineSeconds"] == 200 + 605 + 10 + 60


def test_requests_and_limits_are_set_on_every_container(k8s_plan: Plan) -> None:
    pod = k8s_plan.one(DEPLOYMENT)["inputs"]["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert set(container["resources"]) == {"requests", "limits"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert server(k8s_plan.one(DEPLOYMENT))["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_rolling_update_never_drops_a_ready_pod_and_surges_a_share_of_the_pods(k8s_plan: Plan) -> None:
    spec = k8s_plan.one(DEPLOYMENT)["inputs"]["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    # The autoscaler owns the replica count; a value here would reset it on every update.
    assert "replicas" not in spec


def test_pulumi_waits_for_the_worst_case_rollout_not_its_ten_minute_default(replan: Any) -> None:
    """pulumi-kubernetes waits 10 minutes for a Deployment unless customTimeouts or the `pulumi.com/timeoutSeconds`
    annotation say otherwise (pulumi/pulumi-kubernetes provider/pkg/await/deployment.go
    DefaultDeploymentTimeoutMins = 10; provider/pkg/metadata/overrides.go TimeoutDuration reads the annotation
    when no customTimeouts are set; provider/pkg/await/await.go Creation and Update apply it). With maxUnavailable 0
    a rollout of N pods runs in ceil(N / surge) waves, each a whole pod start (fetch + model load + readiness);
    Kubernetes rounds a percentage maxSurge up (pkg/controller/deployment/util/deployment_util.go
    ResolveFenceposts). The stable Deployment can hold up to kubernetesMaxReplicas pods when it rolls."""
    plan = replan(
        "dev",
        {
            **KUBERNETES,
            "mlplatform:kubernetesMaxReplicas": "10",
            "mlplatform:kubernetesStartupTimeoutSeconds": "600",
            "mlplatform:kubernetesModelFetchSeconds": "120",
            "mlplatform:kubernetesMaxRolloutSeconds": "7200",
        },
    )
    deployment = plan.one(DEPLOYMENT)["inputs"]
    pod_start = 120 + 600 + 5 + 5
    surge = math.ceil(10 * 25 / 100)  # 3 pods at a time
    waves = math.ceil(10 / surge)  # 4 waves
    timeout = int(deployment["metadata"]["annotations"][TIMEOUT_ANNOTATION])
    assert timeout == waves * pod_start + 60
    assert timeout > PULUMI_K8S_DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS
    # The old one-pod-at-a-time rollout would have needed 10 pod starts: longer than the wait given.
    assert 10 * pod_start > timeout


def test_termination_grace_outlasts_the_pre_stop_pause_and_the_servers_drain(k8s_plan: Plan) -> None:
    from serving.server import SHUTDOWN_DEADLINE_S

    assert SERVER_DRAIN_SECONDS == SHUTDOWN_DEADLINE_S
    pod = k8s_plan.one(DEPLOYMENT)["inputs"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == TERMINATION_GRACE_SECONDS
    assert TERMINATION_GRACE_SECONDS > PRE_STOP_SLEEP_SECONDS + SHUTDOWN_DEADLINE_S
    assert server(k8s_plan.one(DEPLOYMENT))["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_pods_run_non_root_on_a_read_only_root_filesystem(k8s_plan: Plan) -> None:
    pod = k8s_plan.one(DEPLOYMENT)["inputs"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"]} == {"tmp": "64Mi", "model": "2Gi"}
    assert pod["automountServiceAccountToken"] is False
    namespace = k8s_plan.one("kubernetes:core/v1:Namespace")["inputs"]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_serving_image_has_the_non_root_user_the_pod_names() -> None:
    from pathlib import Path

    dockerfile = (Path(__file__).parents[1] / "serving" / "Dockerfile").read_text()
    # No USER line: the pod's runAsUser decides; 65534 is `nobody` in the python:3.11-slim base.
    assert "\nUSER " not in dockerfile
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile


def test_s3_delivery_copies_the_model_with_an_init_container_and_an_irsa_role(k8s_plan: Plan) -> None:
    pod = k8s_plan.one(DEPLOYMENT)["inputs"]["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    assert init["image"] == KUBERNETES["mlplatform:kubernetesAwsCliImage"]
    assert init["args"][:4] == ["s3", "sync", k8s_plan.outputs["modelDataUri"], "/opt/ml/model"]
    assert {"name": "model", "mountPath": "/opt/ml/model", "readOnly": True} in server(k8s_plan.one(DEPLOYMENT))[
        "volumeMounts"
    ]
    account = k8s_plan.one("kubernetes:core/v1:ServiceAccount")["inputs"]
    assert account["metadata"]["annotations"][IRSA_ANNOTATION] == k8s_plan.outputs["kubernetesModelRoleArn"]
    role = k8s_plan.named("mlplatform-dev-k8s-model-role")["inputs"]
    [trust] = json.loads(role["assumeRolePolicy"])["Statement"]
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    assert trust["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:mlplatform-dev:model-server",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_the_model_role_reads_only_the_model_prefixes(canary_plan: Plan) -> None:
    policy = json.loads(canary_plan.named("mlplatform-prod-k8s-model-read")["inputs"]["policy"])
    actions = sorted({s["Action"] for s in policy["Statement"]})
    assert actions == ["kms:Decrypt", "s3:GetObject", "s3:ListBucket"]
    objects = sorted(s["Resource"] for s in policy["Statement"] if s["Action"] == "s3:GetObject")
    canary_uri = canary_plan.outputs["modelDataUri"]
    assert objects == sorted(f"arn:aws:s3:::{uri.removeprefix('s3://')}*" for uri in (STABLE_URI, canary_uri))


def test_the_pods_start_only_after_the_model_role_may_read_the_model(k8s_plan: Plan) -> None:
    """The service account's IRSA annotation needs only the role's ARN, so without an explicit dependency the
    engine creates the pods while the role's read policy is still being attached: the init container's first
    `aws s3 sync` then fails with AccessDenied, and IAM changes take a while to be visible everywhere (AWS IAM
    User Guide, "Troubleshoot IAM": changes are eventually consistent). The mock runtime records the resource's
    dependencies (tools/mocks.py, RegisterResource `dependencies`)."""
    policy = "aws:iam/rolePolicy:RolePolicy::mlplatform-dev-k8s-model-read"
    account = k8s_plan.one("kubernetes:core/v1:ServiceAccount")
    assert policy in account["options"]["dependsOn"]
    assert policy in k8s_plan.one(DEPLOYMENT)["options"]["dependsOn"]


def test_image_delivery_needs_no_init_container_or_role(replan: Any) -> None:
    plan = replan("dev", {**KUBERNETES, **IMAGE_DELIVERY})
    assert server(plan.one(DEPLOYMENT))["image"] == BAKED_IMAGE
    pod = plan.one(DEPLOYMENT)["inputs"]["spec"]["template"]["spec"]
    assert pod.get("initContainers", []) == []
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert {e["name"]: e["value"] for e in server(plan.one(DEPLOYMENT))["env"]}["MLPLATFORM_MODEL_DIR"] == (
        "/opt/ml/model"
    )
    assert [r for r in plan.resources if r["name"].endswith("-model-role")] == []
    assert "kubernetesModelRoleArn" not in plan.outputs


def test_cpu_autoscaling_within_the_replica_bounds(k8s_plan: Plan) -> None:
    spec = k8s_plan.one(HPA)["inputs"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 6)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model-server-stable"}
    assert spec["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]


def test_the_metrics_adapter_adds_requests_per_second(replan: Any) -> None:
    plan = replan(
        "dev",
        {
            **KUBERNETES,
            "mlplatform:kubernetesMetricsAdapter": "true",
            "mlplatform:kubernetesServiceMonitor": "true",
            "mlplatform:kubernetesTargetRequestsPerSecond": "40",
        },
    )
    metrics = plan.one(HPA)["inputs"]["spec"]["metrics"]
    # The name prometheus-adapter's default rules give the server's counter (tests/test_kubernetes_metrics.py).
    assert metrics[1] == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "mlplatform_serving_requests"},
            "target": {"type": "AverageValue", "averageValue": "40"},
        },
    }


def test_each_track_has_its_own_disruption_budget_that_lets_unready_pods_go(canary_plan: Plan) -> None:
    """With one budget over both tracks, unready canary pods use up its one unavailable pod and every drain
    blocks: an eviction is allowed only while the budget's healthy count holds (kubernetes.io, "Specifying a
    Disruption Budget for your Application"). A budget per track keeps a failing canary to itself, and
    `unhealthyPodEvictionPolicy: AlwaysAllow` lets running-but-unready pods be evicted regardless (KEP-3017:
    alpha in 1.26, beta and on by default in 1.27, GA in 1.31)."""
    budgets = {r["inputs"]["metadata"]["name"]: r["inputs"]["spec"] for r in canary_plan.of_type(PDB)}
    assert budgets == {
        f"model-server-{name}": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "mlplatform-prod", "track": name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
        for name in ("stable", "canary")
    }


@pytest.mark.parametrize(("version", "expected"), [("1.25", False), ("1.26", False), ("1.27", True), ("1.37", True)])
def test_unhealthy_pod_eviction_policy_only_where_the_cluster_honours_it(
    replan: Any, version: str, expected: bool
) -> None:
    """`unhealthyPodEvictionPolicy` is unknown to 1.25's API (the strict schema refuses it) and behind a feature
    gate that is off by default in 1.26, where the API server drops it (KEP-3017 graduation: alpha 1.26, beta
    1.27, stable 1.31; kubernetes.io PodDisruptionBudget v1 reference)."""
    plan = replan("dev", {**KUBERNETES, "mlplatform:kubernetesClusterVersion": version})
    assert ("unhealthyPodEvictionPolicy" in plan.one(PDB)["inputs"]["spec"]) is expected


def test_network_policy_admits_only_the_named_namespaces_on_the_server_port(k8s_plan: Plan) -> None:
    spec = k8s_plan.one("kubernetes:networking.k8s.io/v1:NetworkPolicy")["inputs"]["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    admitted = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]]
    assert admitted == ["apps", "batch-scoring"]
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_the_docs_say_what_the_network_policy_admits() -> None:
    """The policy admits the listed namespaces only, not the model's own: the docs and the setting's
    description must not promise more (they once said "and the model's own")."""
    from pathlib import Path

    from components.settings import KubernetesSettings
    from tools.config_reference import field_docs

    description = field_docs(KubernetesSettings)["allowed_namespaces"]
    docs = (Path(__file__).parents[1] / "docs" / "kubernetes.md").read_text()
    for text in (description, docs):
        assert "admits only these and the model's own" not in text
    assert "admits only these" in description
    assert "not even the model's own namespace unless you list it" in docs


def test_service_monitor_when_the_prometheus_operator_is_installed(replan: Any, k8s_plan: Plan) -> None:
    assert k8s_plan.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") == []
    plan = replan(
        "dev",
        {
            **KUBERNETES,
            "mlplatform:kubernetesServiceMonitor": "true",
            "mlplatform:kubernetesServiceMonitorLabels": '{"release": "kube-prometheus-stack"}',
        },
    )
    monitor = plan.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")["inputs"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert monitor["spec"]["podTargetLabels"] == ["track"]
    service_labels = plan.one(SERVICE)["inputs"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    # Prometheus's namespace is admitted to scrape.
    [rule] = plan.one("kubernetes:networking.k8s.io/v1:NetworkPolicy")["inputs"]["spec"]["ingress"]
    assert "monitoring" in [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]]


def test_canary_runs_this_stacks_model_beside_the_pinned_stable_model(canary_plan: Plan) -> None:
    stable = track(canary_plan, DEPLOYMENT, "model-server-stable")
    canary = track(canary_plan, DEPLOYMENT, "model-server-canary")
    assert server(stable)["image"] == STABLE_IMAGE
    assert server(canary)["image"] == canary_plan.outputs["servingImage"] != STABLE_IMAGE
    assert stable["inputs"]["spec"]["template"]["spec"]["initContainers"][0]["args"][2] == STABLE_URI
    assert (
        canary["inputs"]["spec"]["template"]["spec"]["initContainers"][0]["args"][2]
        == (canary_plan.outputs["modelDataUri"])
    )
    assert canary_plan.outputs["kubernetesCanaryImage"] == canary_plan.outputs["servingImage"]
    assert canary_plan.outputs["kubernetesStableImage"] == STABLE_IMAGE


def test_both_tracks_sit_behind_one_service_and_differ_only_in_the_track_label(canary_plan: Plan) -> None:
    selector = canary_plan.one(SERVICE)["inputs"]["spec"]["selector"]
    assert selector == {"app.kubernetes.io/instance": "mlplatform-prod"}
    for name, label in (("model-server-stable", "stable"), ("model-server-canary", "canary")):
        deployment = track(canary_plan, DEPLOYMENT, name)["inputs"]["spec"]
        labels = deployment["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert labels["track"] == label
        assert deployment["selector"]["matchLabels"] == {**selector, "track": label}


def test_the_canary_is_a_fixed_number_of_pods_whose_share_never_exceeds_the_percent(canary_plan: Plan) -> None:
    """kube-proxy sends each new connection to one ready endpoint of the Service, with equal probability
    (kubernetes.io, "Virtual IPs and Service Proxies", iptables mode), so the canary's share of traffic is its
    share of pods. An autoscaler of its own would grow a slower canary (more CPU per request) and with it the
    share (tests/test_kubernetes_canary_share.py simulates it): the canary has a fixed size instead, rounded
    down at the stable minimum, and only the stable pods scale."""
    stable = track(canary_plan, HPA, "model-server-stable")["inputs"]["spec"]
    assert (stable["minReplicas"], stable["maxReplicas"]) == (4, 12)
    assert [r["inputs"]["metadata"]["name"] for r in canary_plan.of_type(HPA)] == ["model-server-stable"]
    canary = track(canary_plan, DEPLOYMENT, "model-server-canary")["inputs"]["spec"]
    # 20 %: 1 canary pod beside 4 stable pods at the minimum (20 %), beside 12 at the maximum (7.7 %).
    assert canary["replicas"] == 1
    assert canary["replicas"] / (canary["replicas"] + stable["minReplicas"]) <= 0.20
    assert "replicas" not in track(canary_plan, DEPLOYMENT, "model-server-stable")["inputs"]["spec"]


def test_promotion_drops_the_canary_and_rolls_the_stable_track_to_the_new_model(replan: Any) -> None:
    promoted = replan("prod", KUBERNETES)
    [deployment] = promoted.of_type(DEPLOYMENT)
    assert deployment["inputs"]["metadata"]["name"] == "model-server-stable"
    assert server(deployment)["image"] == promoted.outputs["servingImage"]
    assert "kubernetesCanaryImage" not in promoted.outputs


def test_aborting_keeps_the_stable_model_pinned(replan: Any) -> None:
    aborted = replan("prod", {**KUBERNETES, **CANARY, "mlplatform:kubernetesCanaryPercent": "0"})
    [deployment] = aborted.of_type(DEPLOYMENT)
    assert server(deployment)["image"] == STABLE_IMAGE


def test_the_aws_side_of_the_kubernetes_target_passes_the_api_models_and_the_iam_audit(canary_plan: Plan) -> None:
    from tools.validate import validate_plan

    report = validate_plan(canary_plan)
    # The IRSA trust policy (EKS OIDC federation, `<issuer>:sub`/`:aud` keys) passes too: tools/validate.py
    # ignores the findings parliament raises only because it does not know EKS OIDC providers.
    assert report.violations == []
    assert report.coverage["aws:iam/rolePolicy:RolePolicy"].resources >= 1


# --- namespaces on a shared cluster ------------------------------------------------------------------------


def test_each_stack_gets_its_own_namespace_by_default(k8s_plan: Plan, canary_plan: Plan) -> None:
    """Since pulumi-kubernetes 4.29 a create no longer adopts an object that exists: the API server's
    AlreadyExists fails the `up` (pulumi/pulumi-kubernetes CHANGELOG 4.29.0, #2926 "Use client-side create for
    new resources instead of server-side apply"). One fixed namespace for every stack would make the second stack
    on a cluster fail its first `up`, so the default is `mlplatform-<stack>`."""
    names = {
        plan.stack: plan.one("kubernetes:core/v1:Namespace")["inputs"]["metadata"]["name"]
        for plan in (k8s_plan, canary_plan)
    }
    assert names == {"dev": "mlplatform-dev", "prod": "mlplatform-prod"}
    for plan in (k8s_plan, canary_plan):
        namespaced = [r for r in kubernetes_resources(plan) if r["type"] != "kubernetes:core/v1:Namespace"]
        assert {r["inputs"]["metadata"]["namespace"] for r in namespaced} == {names[plan.stack]}
    assert k8s_plan.outputs["kubernetesNamespace"] == "mlplatform-dev"
    assert k8s_plan.outputs["kubernetesServiceUrl"] == "http://model-server.mlplatform-dev.svc.cluster.local"


def test_a_stack_can_deploy_into_a_namespace_that_already_exists(replan: Any) -> None:
    """A namespace the platform team created is used, never created (creating it would fail with AlreadyExists
    since pulumi-kubernetes 4.29), and so never deleted with the stack."""
    plan = replan(
        "prod",
        {**KUBERNETES, "mlplatform:kubernetesNamespace": "team-churn", "mlplatform:kubernetesCreateNamespace": "false"},
    )
    assert plan.of_type("kubernetes:core/v1:Namespace") == []
    assert {r["inputs"]["metadata"]["namespace"] for r in kubernetes_resources(plan)} == {"team-churn"}
    assert plan.outputs["kubernetesNamespace"] == "team-churn"
    role = plan.named("mlplatform-prod-k8s-model-role")["inputs"]
    [trust] = json.loads(role["assumeRolePolicy"])["Statement"]
    assert "system:serviceaccount:team-churn:model-server" in trust["Condition"]["StringEquals"].values()


# --- weighted canary routing (Gateway API for service mesh) ------------------------------------------------

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
WEIGHTED = {**KUBERNETES, **CANARY, "mlplatform:kubernetesCanaryRouting": "gateway-api"}


@pytest.fixture(scope="module")
def weighted_plan() -> Plan:
    return plan_with("prod", WEIGHTED)


def test_weighted_routing_splits_requests_by_the_percent_through_an_httproute(weighted_plan: Plan) -> None:
    """Gateway API for service mesh (GAMMA, gateway-api.sigs.k8s.io/mesh, standard channel since v1.1): an
    HTTPRoute whose parentRef is a Service (group "", kind Service) configures the mesh for requests to that
    Service, and each request goes to a backendRef in proportion to weight / sum of weights (HTTPBackendRef
    `weight`, gateway.networking.k8s.io/v1 HTTPRoute reference). The split is per request, so it holds whatever
    the pod counts and the clients' keep-alive connections."""
    route = weighted_plan.one(ROUTE)["inputs"]
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "model-server", "port": 80}]
    [rule] = route["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("model-server-stable", 80),
        ("model-server-canary", 20),
    ]
    services = {r["inputs"]["metadata"]["name"]: r["inputs"]["spec"] for r in weighted_plan.of_type(SERVICE)}
    instance = {"app.kubernetes.io/instance": "mlplatform-prod"}
    assert services["model-server-stable"]["selector"] == {**instance, "track": "stable"}
    assert services["model-server-canary"]["selector"] == {**instance, "track": "canary"}
    # Without a mesh the route does nothing: the Service then reaches only the stable pods, never an unplanned
    # share of canary pods.
    assert services["model-server"]["selector"] == {**instance, "track": "stable"}


def test_a_weighted_canary_scales_on_its_own_load(weighted_plan: Plan) -> None:
    canary = track(weighted_plan, HPA, "model-server-canary")["inputs"]["spec"]
    # Its share is fixed by weight, so a slower canary may grow to serve it: from what 20 % needs beside the
    # stable minimum (1 pod beside 4) up to the stable maximum.
    assert (canary["minReplicas"], canary["maxReplicas"]) == (1, 12)
    assert "replicas" not in track(weighted_plan, DEPLOYMENT, "model-server-canary")["inputs"]["spec"]


def test_the_service_monitor_scrapes_every_pod_exactly_once(replan: Any) -> None:
    """A ServiceMonitor scrapes the endpoints of every Service it selects (prometheus-operator API reference,
    ServiceMonitorSpec `selector`): a pod behind two selected Services would be scraped twice and the adapter's
    request rate (a sum per pod) would double."""
    for routing in ("pods", "gateway-api"):
        plan = replan(
            "prod",
            {**WEIGHTED, "mlplatform:kubernetesCanaryRouting": routing, "mlplatform:kubernetesServiceMonitor": "true"},
        )
        selector = plan.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")["inputs"]["spec"]["selector"]
        selected = [
            r["inputs"]["spec"]["selector"]
            for r in plan.of_type(SERVICE)
            if selector["matchLabels"].items() <= r["inputs"]["metadata"]["labels"].items()
        ]
        for name in ("stable", "canary"):
            labels = track(plan, DEPLOYMENT, f"model-server-{name}")["inputs"]["spec"]["template"]["metadata"]["labels"]
            assert sum(s.items() <= labels.items() for s in selected) == 1, (routing, name)
