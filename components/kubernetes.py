"""`KubernetesModelService`: the serving image on an existing Kubernetes cluster, autoscaled, with a canary track.

The same image and model directory contract as the SageMaker endpoint (docs/model-contract.md): `serve` on port
8080, `/ping` for health, `/metrics` in Prometheus format. What it creates, and how to point a stack at a cluster,
is described in docs/kubernetes.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.settings import (
    K8S_MIN_READY_SECONDS,
    K8S_PROBE_PERIOD_SECONDS,
    PDB_UNHEALTHY_POD_EVICTION_POLICY_SINCE,
    KubernetesSettings,
)

SERVICE_NAME: Final = "model-server"
"""Name of the Service (and prefix of the Deployments, autoscalers and service account) in the namespace."""
PORT: Final = 8080  # the serving container's port (SageMaker's hosting contract)
SERVICE_PORT: Final = 80
TRACKS: Final = ("stable", "canary")
SELECTOR_LABEL: Final = "app.kubernetes.io/instance"
TRACK_LABEL: Final = "track"
# Carried by the Services whose endpoints together are every serving pod exactly once: the ServiceMonitor selects
# them, so no pod is scraped twice (the adapter's rate would double).
SCRAPE_LABEL: Final = "mlplatform-metrics"
# pulumi-kubernetes reads a resource's await timeout from this annotation when no customTimeouts are given
# (provider/pkg/metadata/overrides.go TimeoutDuration); in the manifest, the plan and the preview it is visible.
TIMEOUT_ANNOTATION: Final = "pulumi.com/timeoutSeconds"
LIVENESS_PATH: Final = "/livez"  # answers 200 while the server process serves HTTP, even during a model reload
READINESS_PATH: Final = "/ping"  # 200 only once every worker has the model loaded
# The serving image's Python base ships the `nobody` user (65534); the server writes nothing outside /tmp and
# the model volume, and listens above 1024, so it runs unprivileged. The image itself declares no USER (SageMaker
# runs it as root), so the pod names the user.
NON_ROOT_UID: Final = 65534
# Seconds the pod keeps serving after it is marked for deletion, while endpoints controllers and kube-proxy on
# every node remove it: the server stops accepting on SIGTERM, so without this pause new connections would be
# refused during that window.
PRE_STOP_SLEEP_SECONDS: Final = 5
# serving/server.py's SHUTDOWN_DEADLINE_S: how long the server drains in-flight requests after SIGTERM.
SERVER_DRAIN_SECONDS: Final = 25
# Kubernetes sends SIGKILL this long after it starts stopping a pod: the pre-stop pause, the drain, and a margin.
TERMINATION_GRACE_SECONDS: Final = PRE_STOP_SLEEP_SECONDS + SERVER_DRAIN_SECONDS + 10
PROBE_PERIOD_SECONDS: Final = K8S_PROBE_PERIOD_SECONDS
MODEL_MOUNT: Final = "/opt/ml/model"
IRSA_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
# Small, fixed resources for the init container: it only streams files from S3 to the volume.
INIT_RESOURCES: Final = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


class KubernetesModelServiceArgs(TypedDict):
    settings: KubernetesSettings
    """The stack's Kubernetes section: cluster version, resources, replicas, canary, delivery."""
    namespace: str
    """Namespace of the service (`KubernetesSettings.namespace_for(stack)`); created unless the settings say not."""
    kubeconfig: pulumi.Input[str]
    """Kubeconfig of the cluster (secret config or another stack's output); kept secret in the state."""
    image: pulumi.Input[str]
    """Serving image by digest of this stack's model: the stable track, or the canary while one runs."""
    model_data_uri: pulumi.Input[str]
    """S3 prefix of this stack's model files (used with `s3` delivery)."""
    precision: str
    """Which exported model the server loads (`fp32` or `int8`)."""
    region: str
    """AWS region of the model bucket, for the init container's S3 client."""
    kms_key_arns: NotRequired[Sequence[pulumi.Input[str]]]
    """Keys that encrypt the model files (this stack's key, and a promoting stack's): the IRSA role may decrypt."""
    protect: NotRequired[bool]
    """Protect the namespace the stack creates (deleting it deletes everything in it) against deletion."""


def _s3_parts(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> (`bucket`, `a/b/`)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def model_read_policy(uris: Sequence[str], kms_key_arns: Sequence[str]) -> str:
    """Least privilege for `aws s3 sync` of the model prefixes: list them, get their objects, decrypt them."""
    statements: list[dict[str, Any]] = []
    for uri in sorted(set(uris)):
        bucket, prefix = _s3_parts(uri)
        statements.append(
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            }
        )
        statements.append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"})
    if kms_key_arns:
        statements.append({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": sorted(set(kms_key_arns))})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def irsa_trust_policy(oidc_provider_arn: str, namespace: str, service_account: str) -> str:
    """Only this namespace's service account may assume the role, through the cluster's OIDC provider (IRSA)."""
    issuer = oidc_provider_arn.split(":oidc-provider/", 1)[1]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def kubeconfig_text(value: object, stack: str | None, output: str) -> str:
    """Another stack's kubeconfig output as text (EKS stacks export it as a string or as an object)."""
    if not value:
        raise ValueError(
            f"stack {stack!r} has no output {output!r} (mlplatform:kubernetesKubeconfigStack, "
            "mlplatform:kubernetesKubeconfigOutput): export the cluster's kubeconfig there or name its output"
        )
    return value if isinstance(value, str) else json.dumps(value)


def canary_bounds(settings: KubernetesSettings) -> tuple[int, int]:
    """The weighted canary's autoscaler (min, max): the pods its share needs at the stable minimum, and up to the
    stable maximum (a slower canary needs more pods for the same share of requests; the weights keep the share)."""
    low = settings.canary_replicas()
    return low, max(low, settings.max_replicas)


class KubernetesModelService(pulumi.ComponentResource):
    """Namespace, service account, stable (and canary) Deployments, Services, autoscalers, PDBs, NetworkPolicy.

    Every Kubernetes resource goes through the component's own provider, built from the given kubeconfig, so
    the ambient kubeconfig of whoever runs `pulumi up` is never used.

    Example::

        service = KubernetesModelService("mlplatform-dev-k8s", {"settings": settings.kubernetes,
            "namespace": settings.kubernetes.namespace_for("dev"), "kubeconfig": kubeconfig,
            "image": model.serving_image, "model_data_uri": model.model_data_uri, "precision": "fp32",
            "region": "us-east-1"})
        pulumi.export("kubernetesServiceUrl", service.service_url)
    """

    provider: k8s.Provider
    """The explicit Kubernetes provider every resource of the component uses."""
    namespace: pulumi.Output[str]
    """Namespace holding the model service."""
    service_name: pulumi.Output[str]
    """Name of the Service applications call."""
    service_url: pulumi.Output[str]
    """In-cluster URL of the Service (`http://model-server.<namespace>.svc.cluster.local`)."""
    stable_image: pulumi.Output[str]
    """Image the stable pods run."""
    canary_image: pulumi.Output[str]
    """Image the canary pods run; empty when no canary runs."""
    model_role_arn: pulumi.Output[str]
    """IAM role (IRSA) the init container uses to read the model; empty with `image` delivery."""

    def __init__(self, name: str, args: KubernetesModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:serving:KubernetesModelService", name, None, opts)
        s = args["settings"]
        self._settings = s
        self._name = name
        self._namespace = args["namespace"]
        self._precision = args["precision"]
        self._region = args["region"]
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=pulumi.Output.secret(args["kubeconfig"]),
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)

        # With a canary, this stack's model is the canary and the stable pods keep the pinned model; without
        # one, pins (if any) hold the stable pods on their model and this stack's model is not served here.
        own_image = pulumi.Output.from_input(args["image"])
        own_uri = pulumi.Output.from_input(args["model_data_uri"])
        if s.has_canary:
            stable = (
                pulumi.Output.from_input(s.stable_image or ""),
                pulumi.Output.from_input(s.stable_model_data_uri or ""),
            )
            canary: tuple[pulumi.Output[str], pulumi.Output[str]] | None = (own_image, own_uri)
        else:
            stable = (
                pulumi.Output.from_input(s.stable_image) if s.stable_image else own_image,
                pulumi.Output.from_input(s.stable_model_data_uri) if s.stable_model_data_uri else own_uri,
            )
            canary = None

        if s.create_namespace:
            # Since pulumi-kubernetes 4.29 a create fails with AlreadyExists when the object exists: the default
            # namespace is per stack, and an existing one is used with kubernetesCreateNamespace false.
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={
                    "name": self._namespace,
                    "labels": {
                        **self._common_labels(),
                        # The pods meet the restricted Pod Security Standard; the namespace enforces it.
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": f"v{s.cluster_version}",
                    },
                },
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(protect=args.get("protect", False))),
            )
            ns = namespace.metadata.name
        else:
            ns = pulumi.Output.from_input(self._namespace)
        self.namespace = ns

        role_arn: pulumi.Output[str] = pulumi.Output.from_input("")
        annotations: dict[str, pulumi.Input[str]] = {}
        # The pods assume the role as soon as they start: they must not start before the role may read the
        # model, or the first deploy races IAM and the init container fails with AccessDenied.
        model_access: list[pulumi.Resource] = []
        if s.model_delivery == "s3":
            role_arn, read_policy = self._model_role(args, stable[1], canary[1] if canary else None)
            annotations[IRSA_ANNOTATION] = role_arn
            model_access.append(read_policy)
        pod_opts = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=model_access))
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={
                "name": SERVICE_NAME,
                "namespace": ns,
                "labels": self._common_labels(),
                "annotations": annotations,
            },
            automount_service_account_token=False,  # the server never calls the Kubernetes API
            opts=pod_opts,
        )

        tracks: dict[str, pulumi.Output[str]] = {"stable": stable[0]}
        deployments = {"stable": self._deployment("stable", stable[0], stable[1], ns, service_account, pod_opts)}
        if canary is not None:
            tracks["canary"] = canary[0]
            deployments["canary"] = self._deployment("canary", canary[0], canary[1], ns, service_account, pod_opts)
        self._autoscaler("stable", deployments["stable"], (s.min_replicas, s.max_replicas), ns, k8s_opts)
        if s.weighted_canary:
            # The mesh gives the canary its share of requests whatever its size: it scales on its own load.
            self._autoscaler("canary", deployments["canary"], canary_bounds(s), ns, k8s_opts)

        # The Service applications call. With pod routing it spreads connections over every ready pod of both
        # tracks (kube-proxy picks an endpoint per connection), so the canary's share is its share of pods. With
        # weighted routing the mesh splits the requests sent to it by the HTTPRoute below; it then selects only
        # the stable pods, so without a mesh the canary gets nothing rather than an unplanned share.
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={
                "name": SERVICE_NAME,
                "namespace": ns,
                "labels": {**self._common_labels(), **({} if s.weighted_canary else {SCRAPE_LABEL: "true"})},
            },
            spec={
                "type": "ClusterIP",
                "selector": self._track_selector("stable") if s.weighted_canary else self._service_selector(),
                "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": "http", "protocol": "TCP"}],
            },
            opts=k8s_opts,
        )
        scraped: list[pulumi.Resource] = [service]
        if s.weighted_canary:
            scraped = self._weighted_routing(ns, service, k8s_opts)
        for track in tracks:
            self._disruption_budget(track, ns, k8s_opts)
        admitted = [*s.allowed_namespaces, *([s.prometheus_namespace] if s.service_monitor else [])]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": SERVICE_NAME, "namespace": ns, "labels": self._common_labels()},
            spec={  # pyright: ignore[reportArgumentType]  (nested literal vs generated TypedDicts)
                "pod_selector": {"match_labels": self._service_selector()},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        # Only the listed namespaces (and Prometheus's): not even the model's own namespace
                        # unless it is listed, since an existing namespace may hold other workloads.
                        "from": [
                            {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": allowed}}}
                            for allowed in sorted(set(admitted))
                        ],
                        "ports": [{"protocol": "TCP", "port": PORT}],
                    }
                ],
            },
            opts=k8s_opts,
        )
        if s.service_monitor:
            # One definition with the manifest clusters without the stack use (components/prometheus.py);
            # imported here because that module builds on this one's labels. Each series carries the pod's
            # track, so the canary's error rate and latency compare directly with the stable pods'.
            from components.prometheus import service_monitor

            manifest = service_monitor(self._namespace, s.service_monitor_labels)
            k8s.apiextensions.CustomResource(
                f"{name}-service-monitor",
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata={**manifest["metadata"], "namespace": ns},
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=scraped)),
            )

        self.service_name = service.metadata.name
        self.service_url = pulumi.Output.concat("http://", self.service_name, ".", ns, ".svc.cluster.local")
        self.stable_image = stable[0]
        self.canary_image = canary[0] if canary else pulumi.Output.from_input("")
        self.model_role_arn = role_arn
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "service_url": self.service_url,
                "stable_image": self.stable_image,
                "canary_image": self.canary_image,
                "model_role_arn": self.model_role_arn,
            }
        )

    # --- labels -------------------------------------------------------------------------------------------

    def _common_labels(self) -> dict[str, str]:
        # One stack per namespace: the namespace names the instance (and keeps selectors stable across upgrades).
        return {"app.kubernetes.io/name": "mlplatform-serving", SELECTOR_LABEL: self._namespace}

    def _service_selector(self) -> dict[str, str]:
        return {SELECTOR_LABEL: self._namespace}

    def _track_selector(self, track: str) -> dict[str, str]:
        return {SELECTOR_LABEL: self._namespace, TRACK_LABEL: track}

    def _track_labels(self, track: str) -> dict[str, str]:
        return {**self._common_labels(), "app.kubernetes.io/component": "model-server", TRACK_LABEL: track}

    # --- children -----------------------------------------------------------------------------------------

    def _model_role(
        self, args: KubernetesModelServiceArgs, stable_uri: pulumi.Output[str], canary_uri: pulumi.Output[str] | None
    ) -> tuple[pulumi.Output[str], aws.iam.RolePolicy]:
        s = self._settings
        assert s.oidc_provider_arn is not None  # settings require it for s3 delivery
        role = aws.iam.Role(
            f"{self._name}-model-role",
            description=f"{self._name}: pods of namespace {self._namespace} read their model files from S3 (IRSA)",
            assume_role_policy=irsa_trust_policy(s.oidc_provider_arn, self._namespace, SERVICE_NAME),
            max_session_duration=3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        uris = [stable_uri, *([canary_uri] if canary_uri is not None else [])]
        keys = list(args.get("kms_key_arns", []))
        policy = pulumi.Output.all(pulumi.Output.all(*uris), pulumi.Output.all(*keys)).apply(
            lambda both: model_read_policy(list(both[0]), list(both[1]))
        )
        read_policy = aws.iam.RolePolicy(
            f"{self._name}-model-read",
            role=role.id,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role.arn, read_policy

    def _deployment(
        self,
        track: str,
        image: pulumi.Output[str],
        model_uri: pulumi.Output[str],
        ns: pulumi.Output[str],
        service_account: k8s.core.v1.ServiceAccount,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        s = self._settings
        from_s3 = s.model_delivery == "s3"
        model_dir = MODEL_MOUNT if from_s3 else s.image_model_dir

        def probe(path: str) -> dict[str, Any]:
            return {
                "http_get": {"path": path, "port": "http"},
                "period_seconds": PROBE_PERIOD_SECONDS,
                "timeout_seconds": 2,
            }

        hardened = {
            "allow_privilege_escalation": False,
            "read_only_root_filesystem": True,
            "run_as_non_root": True,
            "capabilities": {"drop": ["ALL"]},
        }
        server: dict[str, Any] = {
            "name": "server",
            "image": image,
            "args": ["serve"],
            "ports": [{"name": "http", "container_port": PORT, "protocol": "TCP"}],
            "env": [
                {"name": "MLPLATFORM_MODEL_DIR", "value": model_dir},
                {"name": "MLPLATFORM_MODEL_PRECISION", "value": self._precision},
                # The server's default is one worker per core it can see, which in a pod is the node's.
                {"name": "MLPLATFORM_SERVING_WORKERS", "value": str(s.workers())},
                {"name": "MLPLATFORM_SERVING_PORT", "value": str(PORT)},
            ],
            "resources": {
                "requests": {"cpu": s.cpu_request, "memory": s.memory_request},
                "limits": {"cpu": s.cpu_limit, "memory": s.memory_limit},
            },
            # /ping answers 503 until every worker has loaded the model: the startup probe gives loading its
            # own budget, and readiness keeps a reloading pod out of the Service.
            "startup_probe": {**probe(READINESS_PATH), "failure_threshold": s.startup_probe_failures()},
            "readiness_probe": {**probe(READINESS_PATH), "failure_threshold": 2, "success_threshold": 1},
            # Liveness asks only whether the process serves HTTP: /ping's 503 during one worker's model reload
            # must take the pod out of rotation, not get the container killed mid-reload.
            "liveness_probe": {
                **probe(LIVENESS_PATH),
                "period_seconds": 10,
                "timeout_seconds": 5,
                "failure_threshold": 3,
            },
            "lifecycle": {"pre_stop": {"exec": {"command": ["sleep", str(PRE_STOP_SLEEP_SECONDS)]}}},
            "security_context": hardened,
            "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        }
        volumes: list[dict[str, Any]] = [{"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}]
        init_containers: list[dict[str, Any]] = []
        if from_s3:
            server["volume_mounts"].append({"name": "model", "mount_path": MODEL_MOUNT, "read_only": True})
            volumes.append({"name": "model", "empty_dir": {"size_limit": s.model_volume_size}})
            init_containers.append(
                {
                    "name": "fetch-model",
                    "image": s.aws_cli_image,
                    "command": ["aws"],
                    "args": ["s3", "sync", model_uri, MODEL_MOUNT, "--only-show-errors", "--no-progress"],
                    "env": [
                        {"name": "AWS_REGION", "value": self._region},
                        {"name": "HOME", "value": "/tmp"},  # the CLI's cache; the root filesystem is read-only
                    ],
                    "resources": INIT_RESOURCES,
                    "security_context": hardened,
                    "volume_mounts": [
                        {"name": "model", "mount_path": MODEL_MOUNT},
                        {"name": "tmp", "mount_path": "/tmp"},
                    ],
                }
            )
        labels = self._track_labels(track)
        selector = self._track_selector(track)
        replicas = s.track_replicas()[track]
        spec: dict[str, Any] = {
            "selector": {"match_labels": selector},
            # A percentage surge scales with the pods the autoscaler runs: the rollout takes
            # ceil(pods / surge) pod starts, which settings keep within the timeout below.
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_unavailable": 0, "max_surge": f"{s.max_surge_percent}%"},
            },
            "min_ready_seconds": K8S_MIN_READY_SECONDS,
            "revision_history_limit": 5,
            # One pod's start without progress fails the rollout (and `pulumi up`) long before the overall wait.
            "progress_deadline_seconds": s.progress_deadline_seconds(),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "service_account_name": service_account.metadata.name,
                    "automount_service_account_token": False,
                    "termination_grace_period_seconds": TERMINATION_GRACE_SECONDS,
                    "security_context": {
                        "run_as_non_root": True,
                        "run_as_user": NON_ROOT_UID,
                        "run_as_group": NON_ROOT_UID,
                        "fs_group": NON_ROOT_UID,
                        "seccomp_profile": {"type": "RuntimeDefault"},
                    },
                    "init_containers": init_containers,
                    "containers": [server],
                    "volumes": volumes,
                    "topology_spread_constraints": [
                        {
                            "max_skew": 1,
                            "topology_key": "topology.kubernetes.io/zone",
                            "when_unsatisfiable": "ScheduleAnyway",
                            "label_selector": {"match_labels": selector},
                        }
                    ],
                },
            },
        }
        if track == "canary" and not s.weighted_canary:
            # A fixed canary: an autoscaler of its own would grow a slower canary's share of pods, and so of the
            # traffic. The stable autoscaler owns the stable count (no `replicas` there: a value would reset it on
            # every update).
            spec["replicas"] = replicas
        return k8s.apps.v1.Deployment(
            f"{self._name}-{track}",
            metadata={
                "name": f"{SERVICE_NAME}-{track}",
                "namespace": ns,
                "labels": labels,
                # pulumi-kubernetes would give up on the rollout after 10 minutes: wait for the worst case.
                "annotations": {TIMEOUT_ANNOTATION: str(s.rollout_seconds(replicas))},
            },
            spec=spec,  # pyright: ignore[reportArgumentType]  (nested literal vs generated TypedDicts)
            opts=opts,
        )

    def _autoscaler(
        self,
        track: str,
        deployment: k8s.apps.v1.Deployment,
        bounds: tuple[int, int],
        ns: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
        s = self._settings
        metrics: list[dict[str, Any]] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "average_utilization": s.target_cpu_percent},
                },
            }
        ]
        if s.metrics_adapter:
            metrics.append(
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": s.requests_per_second_metric},
                        "target": {"type": "AverageValue", "average_value": str(s.target_requests_per_second)},
                    },
                }
            )
        return k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-{track}-hpa",
            metadata={"name": f"{SERVICE_NAME}-{track}", "namespace": ns, "labels": self._track_labels(track)},
            spec={  # pyright: ignore[reportArgumentType]  (nested literal vs generated TypedDicts)
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment.metadata.name,
                },
                "min_replicas": bounds[0],
                "max_replicas": bounds[1],
                "metrics": metrics,
                # Scale out at once, scale in one pod a minute after five quiet minutes: a model server that
                # is scaled in too eagerly reloads its model on the next burst.
                "behavior": {
                    "scale_down": {
                        "stabilization_window_seconds": 300,
                        "policies": [{"type": "Pods", "value": 1, "period_seconds": 60}],
                    }
                },
            },
            opts=opts,
        )

    def _disruption_budget(self, track: str, ns: pulumi.Output[str], opts: pulumi.ResourceOptions) -> None:
        """One budget per track: an unready canary pod never uses up the stable pods' budget and blocks drains."""
        spec: dict[str, Any] = {"max_unavailable": 1, "selector": {"match_labels": self._track_selector(track)}}
        major, minor = (int(part) for part in self._settings.cluster_version.split("."))
        if (major, minor) >= PDB_UNHEALTHY_POD_EVICTION_POLICY_SINCE:
            # Running but unready pods (a crash-looping model) may always be evicted: they serve nothing, and
            # under the default policy they would hold a drain until the budget's healthy count is met.
            spec["unhealthy_pod_eviction_policy"] = "AlwaysAllow"
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-{track}-pdb",
            metadata={"name": f"{SERVICE_NAME}-{track}", "namespace": ns, "labels": self._track_labels(track)},
            spec=spec,  # pyright: ignore[reportArgumentType]  (nested literal vs generated TypedDicts)
            opts=opts,
        )

    def _weighted_routing(
        self, ns: pulumi.Output[str], parent_service: k8s.core.v1.Service, opts: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """A Service per track and an HTTPRoute on the main Service that splits requests by weight.

        Gateway API for service mesh (GAMMA, standard channel since Gateway API v1.1): a route whose parent is a
        Service makes the mesh send each request to one of the route's backends in proportion to its weight.
        Returns the Services that together cover every pod once (the ServiceMonitor scrapes those).
        """
        s = self._settings
        track_services: dict[str, k8s.core.v1.Service] = {}
        for track in TRACKS:
            track_services[track] = k8s.core.v1.Service(
                f"{self._name}-{track}-service",
                metadata={
                    "name": f"{SERVICE_NAME}-{track}",
                    "namespace": ns,
                    "labels": {**self._common_labels(), TRACK_LABEL: track, SCRAPE_LABEL: "true"},
                },
                spec={
                    "type": "ClusterIP",
                    "selector": self._track_selector(track),
                    "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": "http", "protocol": "TCP"}],
                },
                opts=opts,
            )
        weights = {"stable": 100 - s.canary_percent, "canary": s.canary_percent}
        k8s.apiextensions.CustomResource(
            f"{self._name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={"name": SERVICE_NAME, "namespace": ns, "labels": self._common_labels()},
            spec={
                "parentRefs": [{"group": "", "kind": "Service", "name": SERVICE_NAME, "port": SERVICE_PORT}],
                "rules": [
                    {
                        "backendRefs": [
                            {
                                "group": "",
                                "kind": "Service",
                                "name": f"{SERVICE_NAME}-{track}",
                                "port": SERVICE_PORT,
                                "weight": weights[track],
                            }
                            for track in TRACKS
                        ]
                    }
                ],
            },
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[parent_service, *track_services.values()])
            ),
        )
        return list(track_services.values())
