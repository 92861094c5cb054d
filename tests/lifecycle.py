"""Lifecycle scenario harness: a stack planned again and again under the mock runtime, with what AWS holds between.

A scenario is a short list of steps on a `Stack` (`up`, config changes) and on the `Aws` model (autoscaling
moves, SageMaker rolls back, dev builds, dev destroyed); after each step a test asserts what AWS would hold.

Each `up` runs the real `__main__.py` through `tools.plan.run_program` with: this stack's own last outputs (its
`StackReference` to itself), the source stack's outputs, and the live endpoint read from `Aws` (the program's
deploy-time read, `components.endpoint_live`). The harness then does the engine's and the provider's part: it
names replaced resources anew, applies the changes to `Aws` in dependency order, and records the new state.

What the harness models, and where each behaviour comes from (the one place these are cited):

P1  An Endpoint update calls `UpdateEndpoint(EndpointName, EndpointConfigName, DeploymentConfig)` whenever
    `endpoint_config_name` or `deployment_config` changed; `RetainAllVariantProperties` is never sent.
    Source: terraform-provider-aws `internal/service/sagemaker/endpoint.go`, `resourceEndpointUpdate` (and PR
    #49069).
P2  The update waits with pending Creating/Updating/SystemUpdating and target InService: an endpoint passing through
    `RollingBack` fails the update; one that rolls back silently to InService on the old config passes.
    Source: `endpoint.go` / `wait.go`, `waitEndpointInService`; terraform-provider-aws PR #49020, issues #48997,
    #46663.
P3  After the update the provider reads `EndpointConfigName` back from `DescribeEndpoint`; a refresh does the same,
    so state then names the config AWS serves.
    Source: `endpoint.go`, `resourceEndpointRead`.
P4  A failed update still records the new inputs in state (SDKv2 saves the planned values unless the resource sets
    partial state), so a plain `up` afterwards sees no change.
    Source: terraform-plugin-sdk v2 `helper/schema/resource_data.go`, `ResourceData.State` ("the new state after
    the diff and any Set calls", returned with the update's error); issue 15 C.
S1  `RetainAllVariantProperties` defaults to false: the new fleet takes the new config's variant properties,
    `InitialInstanceCount` included.
    Source: SageMaker API reference, `UpdateEndpoint` (botocore `sagemaker` service model).
S2  Blue/green: a new fleet at the new config; on an auto-rollback alarm traffic returns to the old fleet, which
    keeps serving the old config at its desired count.
    Source: SageMaker developer guide, "Deployment guardrails" / "Auto-Rollback Configuration and Monitoring".
S3  A fleet (new, scale-out, replacement, rollback) starts only if the model's execution role can pull the image and
    read the model files.
    Source: SageMaker developer guide, "How to use SageMaker AI execution roles" (CreateModel execution role).
S4  Models and endpoint configs deleted from the stack with `retain_on_delete` stay in SageMaker.
    Source: Pulumi docs, resource option `retainOnDelete`.
A1  `RegisterScalableTarget` on an existing target moves the current capacity into the new min..max; policies scale
    only within it.
    Source: Application Auto Scaling API reference, `RegisterScalableTarget`.
A2  Deleting the target (`DeregisterScalableTarget`) deletes its policies and leaves the capacity where it is.
    Source: Application Auto Scaling API reference, `DeregisterScalableTarget`.
A3  `UpdateEndpoint` that changes a variant's instance type while the variant is a registered scalable target is
    refused.
    Source: SageMaker developer guide, "Update or delete an endpoint that uses auto scaling"; terraform-provider-aws
    #14337.
E1  An ECR lifecycle rule `imageCountMoreThan N` expires the oldest images beyond the newest N.
    Source: Amazon ECR user guide, "Lifecycle policy parameters".
B1  A bucket with `force_destroy` is emptied and deleted on destroy.
    Source: terraform-provider-aws `internal/service/s3/bucket.go`, `force_destroy`.
B2  An object copy is a server-side CopyObject of an existing source object; a new `key`/`source` copies again and
    `retain_on_delete` keeps the old copy.
    Source: terraform-provider-aws `internal/service/s3/object_copy.go`, `resourceObjectCopyUpdate`; S3 API
    reference, `CopyObject`.
R1  An image copied by digest (components/image_promotion.py) exists in the target repository with the same
    digest, if the source repository still holds it; the copy's deletion leaves the image.
    Source: OCI Distribution Specification `spec.md` (manifests are content-addressed: the same bytes, the same
    digest); tests/test_registry_copy.py.

Not modelled: KMS (key policies and decrypt are not checked; the fleet check covers S3 read and ECR pull grants),
cross-account boundaries (every stack is in one account here; tests/test_cross_account_promotion.py checks the
grants on plans), traffic and alarms themselves (a step says whether SageMaker rolls back), timings, capacity
limits, instance-level failures other than unreadable or missing artifacts, the Kubernetes serving target, drift of
resources other than the endpoint, and a stack's own `pulumi destroy` (a source stack's teardown is a step on
`Aws`). Image rebuilds without content change and failed training jobs are scenarios still to add.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from components import outputs
from components.endpoint import VARIANT_NAME
from components.endpoint_live import LiveEndpoint
from components.promotion import BASELINE_CONSTRAINTS, BASELINE_STATISTICS, MODEL_FILES
from tools.example_outputs import dev_outputs
from tools.mocks import MOCK_ACCOUNT_ID, MOCK_REGION
from tools.plan import Plan, run_program, stack_config

MODEL = "aws:sagemaker/model:Model"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TARGET = "aws:appautoscaling/target:Target"
OBJECT_COPY = "aws:s3/objectCopy:ObjectCopy"
DYNAMIC = "pulumi-python:dynamic:Resource"
# Types whose every input forces replacement and which are auto-named: a replacement gets a new name (Pulumi's
# auto-naming adds a random suffix); identical inputs keep the name.
_REPLACED_BY_ANY_CHANGE = frozenset({MODEL, CONFIG})


class Rollout(Enum):
    """What SageMaker does with the next blue/green update (S2), and what the provider then reports (P2)."""

    SUCCEEDS = "succeeds"
    ROLLS_BACK_SILENTLY = "rolls back, provider reports success"
    ROLLS_BACK_VIA_ROLLING_BACK = "rolls back through RollingBack, provider reports an error"


class DeploymentFailed(Exception):
    """`pulumi up` ended with an error (the provider's, AWS's, or the program's)."""


# --- what AWS holds ---------------------------------------------------------------------------------------------


@dataclass
class LiveEndpointState:
    config_name: str
    desired_count: int
    status: str = "InService"
    failure_reason: str | None = None


@dataclass
class Aws:
    """SageMaker, Application Auto Scaling, IAM, ECR and S3 as far as rollouts touch them."""

    models: dict[str, dict[str, str]] = field(default_factory=dict)
    """Model name -> role, image, model data prefix."""
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Config name -> model, instance type, initial count."""
    endpoints: dict[str, LiveEndpointState] = field(default_factory=dict)
    role_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Role name -> its inline policy document."""
    targets: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Scalable target resource id -> (min, max)."""
    images: dict[str, list[str]] = field(default_factory=dict)
    """ECR repository -> digests, oldest first."""
    keep_last: dict[str, int] = field(default_factory=dict)
    """ECR repository -> its lifecycle rule's imageCountMoreThan (E1)."""
    objects: dict[str, set[str]] = field(default_factory=dict)
    """Bucket -> object keys."""
    update_calls: list[dict[str, Any]] = field(default_factory=list)
    """Every UpdateEndpoint call, as the provider sends it (P1)."""
    next_rollout: Rollout = Rollout.SUCCEEDS

    # --- the program's deploy-time read (components.endpoint_live) ---

    def read_live(self, endpoint_name: str, variant_name: str, region: str) -> LiveEndpoint | None:
        live = self.endpoints.get(endpoint_name)
        if live is None:
            return None
        config = self.configs.get(live.config_name, {})
        model = self.models.get(config.get("model", ""), {})
        return LiveEndpoint(
            name=endpoint_name,
            status=live.status,
            config_name=live.config_name,
            desired_instance_count=live.desired_count,
            model_name=config.get("model"),
            model_data_uri=model.get("data"),
            image=model.get("image"),
        )

    # --- a DescribeEndpoint client for tools.verify ---

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        live = self.endpoints[EndpointName]
        described: dict[str, Any] = {
            "EndpointName": EndpointName,
            "EndpointStatus": live.status,
            "EndpointConfigName": live.config_name,
            "ProductionVariants": [{"VariantName": VARIANT_NAME, "DesiredInstanceCount": live.desired_count}],
        }
        if live.failure_reason:
            described["FailureReason"] = live.failure_reason
        return described

    # --- steps that happen outside Pulumi ---

    def autoscale(self, endpoint_name: str, to: int) -> int:
        """Application Auto Scaling moves the desired count, within the registered min..max (A1)."""
        low, high = self.targets[f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"]
        self.endpoints[endpoint_name].desired_count = min(max(to, low), high)
        return self.endpoints[endpoint_name].desired_count

    def push_image(self, repository: str, digest: str) -> None:
        """A build pushes an image; the lifecycle rule expires the oldest beyond keep_last (E1)."""
        kept = [d for d in self.images.setdefault(repository, []) if d != digest] + [digest]
        limit = self.keep_last.get(repository)
        self.images[repository] = kept[-limit:] if limit else kept

    def destroy_bucket(self, bucket: str) -> None:
        """A force-destroyed bucket loses every object (B1); the bucket stays known, empty."""
        self.objects[bucket] = set()

    def delete_repository(self, repository: str) -> None:
        """A deleted repository (force-deleted with the stack) holds no image any more."""
        self.images[repository] = []

    # --- what a fleet needs to start (S3) ---

    def fleet_problems(self, config_name: str) -> list[str]:
        """Why instances of `config_name` could not start now (empty: they can), e.g. on a scale-out or rollback."""
        config = self.configs.get(config_name)
        if config is None:
            return [f"endpoint config {config_name} does not exist"]
        model = self.models.get(config["model"])
        if model is None:
            return [f"model {config['model']} does not exist"]
        problems: list[str] = []
        policy = self.role_policies.get(model["role"], {"Statement": []})
        bucket, _, prefix = model["data"].removeprefix("s3://").partition("/")
        object_arn = f"arn:aws:s3:::{bucket}/{prefix}model.onnx"
        if not _allows(policy, "s3:GetObject", object_arn):
            problems.append(f"role {model['role']} may not read {model['data']} (AccessDenied)")
        repo_part, _, digest = model["image"].partition("@")
        account_region, _, repository = repo_part.partition("/")
        if repository not in self.images:
            problems.append(f"repository {repository} does not exist")
        account, region = account_region.split(".")[0], account_region.split(".")[3]
        repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
        if not _allows(policy, "ecr:BatchGetImage", repo_arn):
            problems.append(f"role {model['role']} may not pull from {repository} (AccessDenied)")
        elif digest not in self.images[repository]:
            problems.append(f"image {digest[:19]}... is no longer in {repository} (expired or deleted)")
        if bucket in self.objects and f"{prefix}model.onnx" not in self.objects[bucket]:
            problems.append(f"model files under {model['data']} are gone")
        return problems


def _allows(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    for statement in policy.get("Statement", []):
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if (
            statement.get("Effect") == "Allow"
            and action in actions
            and any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources)
        ):
            return True
    return False


# --- model versions a source stack publishes ------------------------------------------------------------------


def dev_version(n: int, region: str = MOCK_REGION) -> dict[str, Any]:
    """Dev's outputs after its n-th training job and image build (what prod promotes)."""
    base = dev_outputs(region)
    job = f"mlplatform-dev-train-v{n}"
    prefix = f"s3://{base[outputs.MODEL_BUCKET]}/training/{job}/output/model/"
    digest = "sha256:" + f"{n:02x}" * 32
    return {
        **base,
        outputs.TRAINING_JOB_NAME: job,
        outputs.MODEL_DATA_URI: prefix,
        outputs.BASELINE_STATISTICS_URI: prefix + "baseline/statistics.json",
        outputs.BASELINE_CONSTRAINTS_URI: prefix + "baseline/constraints.json",
        outputs.SERVING_IMAGE: f"{MOCK_ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/mlplatform-dev-serving@{digest}",
    }


def publish_dev_version(aws: Aws, n: int) -> dict[str, Any]:
    """Dev trains and builds version n: its files land in dev's bucket, its image in dev's repository."""
    version = dev_version(n)
    bucket, _, prefix = version[outputs.MODEL_DATA_URI].removeprefix("s3://").partition("/")
    files = (*MODEL_FILES, BASELINE_STATISTICS, BASELINE_CONSTRAINTS)
    aws.objects.setdefault(bucket, set()).update(f"{prefix}{f}" for f in files)
    repository, _, digest = version[outputs.SERVING_IMAGE].partition("/")[2].partition("@")
    aws.push_image(repository, digest)
    return version


# --- a stack, deployed again and again ------------------------------------------------------------------------


@dataclass
class Deployment:
    plan: Plan
    error: str | None = None
    updated_endpoint: bool = False


@dataclass
class Stack:
    """One Pulumi stack of this program: its config, its state (by resource), its last outputs."""

    name: str
    aws: Aws
    config: dict[str, Any] = field(default_factory=dict)
    source_outputs: dict[str, Any] = field(default_factory=dict)
    """Outputs of the stack this one promotes from (`mlplatform:modelStack`)."""
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`type::name` -> {"id": physical name, "inputs": inputs} as the last deployment recorded them."""
    outputs: dict[str, Any] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)
    _raw_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _counter: int = 0

    @classmethod
    def committed(cls, stack: str, aws: Aws, **changes: Any) -> Stack:
        config = stack_config(stack)
        config.update({k if ":" in k else f"mlplatform:{k}": str(v) for k, v in changes.items()})
        return cls(name=stack, aws=aws, config=config)

    @property
    def endpoint_name(self) -> str:
        return f"mlplatform-{self.name}"

    @property
    def live(self) -> LiveEndpointState:
        return self.aws.endpoints[self.endpoint_name]

    def set(self, **changes: Any) -> None:
        """Change stack config (`pulumi config set`), keys without the `mlplatform:` namespace."""
        for key, value in changes.items():
            self.config[f"mlplatform:{key}"] = str(value).lower() if isinstance(value, bool) else str(value)

    # --- pulumi up ---

    def up(self, *, refresh: bool = False) -> Deployment:
        """`pulumi up` (`--refresh` with refresh=True): plan, then apply to `Aws` in dependency order."""
        if refresh:
            self._refresh()
        self._names.clear()
        self._raw_inputs.clear()
        fq = f"organization/mlplatform/{self.name}"
        stack_outputs = {fq: dict(self.outputs), "organization/mlplatform/dev": dict(self.source_outputs)}
        try:
            plan = run_program(
                self.name,
                self.config,
                stack_outputs=stack_outputs,
                live_reader=self.aws.read_live,
                namer=self._namer,
            )
        except Exception as exc:  # the program refused: nothing changes in AWS or state
            raise DeploymentFailed(f"the program failed: {exc}") from exc
        deployment = Deployment(plan=plan)
        entries = {f"{r['type']}::{r['name']}": r for r in plan.resources}
        try:
            for ref in _apply_order(entries):
                self._apply(ref, entries[ref], deployment)
            for ref in sorted(set(self.state) - set(entries)):
                self._delete(ref)
        except DeploymentFailed as exc:
            deployment.error = str(exc)
        # P4: the new inputs are recorded whether or not the provider reported an error.
        self.state = {
            ref: {"id": self._physical(ref, r), "inputs": r["inputs"], "raw": self._raw_inputs.get(ref)}
            for ref, r in entries.items()
        }
        if deployment.error is None:
            self.outputs = plan.outputs
            return deployment
        raise DeploymentFailed(deployment.error)

    def _refresh(self) -> None:
        """P3: state takes the endpoint's config name from DescribeEndpoint."""
        for ref, entry in self.state.items():
            if ref.startswith(ENDPOINT + "::") and self.endpoint_name in self.aws.endpoints:
                entry["inputs"] = {**entry["inputs"], "endpointConfigName": self.live.config_name}

    def _namer(self, typ: str, name: str, inputs: dict[str, Any]) -> str | None:
        ref = f"{typ}::{name}"
        self._raw_inputs[ref] = inputs
        if typ not in _REPLACED_BY_ANY_CHANGE:
            return None
        previous = self.state.get(ref)
        if previous is not None and previous.get("raw") == inputs:
            physical = str(previous["id"])
        else:
            self._counter += 1
            physical = f"{name}-{self._counter:04d}"
        self._names[ref] = physical
        return physical

    def _physical(self, ref: str, entry: dict[str, Any]) -> str:
        return self._names.get(ref) or str(entry["inputs"].get("name") or ref)

    # --- the provider's side of each change ---

    def _apply(self, ref: str, entry: dict[str, Any], deployment: Deployment) -> None:
        typ, inputs = entry["type"], entry["inputs"]
        before = self.state.get(ref)
        if typ == ROLE_POLICY:
            self.aws.role_policies[str(inputs["role"])] = json.loads(inputs["policy"])
        elif typ == MODEL and self._names[ref] not in self.aws.models:
            container = inputs["primaryContainer"]
            source = container["modelDataSource"]["s3DataSources"][0]
            self.aws.models[self._names[ref]] = {
                "role": str(inputs["executionRoleArn"]).rsplit("/", 1)[-1],
                "image": container["image"],
                "data": source["s3Uri"],
            }
        elif typ == CONFIG and self._names[ref] not in self.aws.configs:
            variant = inputs["productionVariants"][0]
            self.aws.configs[self._names[ref]] = {
                "model": variant["modelName"],
                "instance_type": variant["instanceType"],
                "count": int(variant["initialInstanceCount"]),
            }
        elif typ == ENDPOINT:
            self._endpoint(inputs, before["inputs"] if before else None, deployment)
        elif typ == OBJECT_COPY and (before is None or before["inputs"] != inputs):  # B2: copies when changed
            source_bucket, _, source_key = str(inputs["source"]).partition("/")
            if source_bucket in self.aws.objects and source_key not in self.aws.objects[source_bucket]:
                raise DeploymentFailed(f"copying S3 object {inputs['source']}: NoSuchKey")
            self.aws.objects.setdefault(str(inputs["bucket"]), set()).add(str(inputs["key"]))
        elif typ == DYNAMIC and "target_ref" in inputs and (before is None or before["inputs"] != inputs):  # R1
            source_repo, digest = _repository_and_digest(str(inputs["source_image"]))
            if source_repo in self.aws.images and digest not in self.aws.images[source_repo]:
                raise DeploymentFailed(f"copying {inputs['source_image']}: MANIFEST_UNKNOWN")
            target_repo, _ = _repository_and_digest(str(inputs["target_ref"]))
            self.aws.push_image(target_repo, digest)
        elif typ == TARGET:
            resource_id = str(inputs["resourceId"])
            low, high = int(inputs["minCapacity"]), int(inputs["maxCapacity"])
            self.aws.targets[resource_id] = (low, high)
            live = self.aws.endpoints.get(resource_id.split("/")[1])
            if live is not None:  # A1: the current capacity moves into min..max
                live.desired_count = min(max(live.desired_count, low), high)

    def _endpoint(self, inputs: dict[str, Any], before: dict[str, Any] | None, deployment: Deployment) -> None:
        name, config_name = str(inputs["name"]), str(inputs["endpointConfigName"])
        config = self.aws.configs[config_name]
        if before is None or name not in self.aws.endpoints:
            self.aws.endpoints[name] = LiveEndpointState(config_name=config_name, desired_count=config["count"])
            return
        changed = before.get("endpointConfigName") != config_name or before.get("deploymentConfig") != inputs.get(
            "deploymentConfig"
        )
        if not changed:
            return
        live = self.aws.endpoints[name]
        # P1: what the provider sends; RetainAllVariantProperties is absent, so false (S1).
        self.aws.update_calls.append(
            {"EndpointName": name, "EndpointConfigName": config_name, "DeploymentConfig": inputs["deploymentConfig"]}
        )
        deployment.updated_endpoint = True
        old_config = self.aws.configs[live.config_name]
        scalable = f"endpoint/{name}/variant/{VARIANT_NAME}" in self.aws.targets
        if scalable and old_config["instance_type"] != config["instance_type"]:  # A3
            raise DeploymentFailed(
                f"updating SageMaker AI Endpoint ({name}): ValidationException: the variant is a registered "
                "scalable target; deregister it before changing the instance type"
            )
        problems = self.aws.fleet_problems(config_name)
        outcome = Rollout.ROLLS_BACK_SILENTLY if problems else self.aws.next_rollout
        self.aws.next_rollout = Rollout.SUCCEEDS
        if outcome is Rollout.SUCCEEDS:
            live.config_name, live.desired_count = config_name, config["count"]  # S1, S2
            live.failure_reason = None
            self._after_update_hook(name, config_name)
            return
        # S2: the old fleet keeps serving the old config at its desired count.
        live.failure_reason = "; ".join(problems) or "auto-rollback alarm in ALARM during the bake"
        if outcome is Rollout.ROLLS_BACK_VIA_ROLLING_BACK:  # P2: the waiter sees RollingBack and errors
            raise DeploymentFailed(
                f"waiting for SageMaker AI Endpoint ({name}) update: unexpected state 'RollingBack', wanted "
                "target 'InService'"
            )
        self._after_update_hook(name, config_name)  # P2: the provider reports success, the hook runs

    def _after_update_hook(self, name: str, expected: str) -> None:
        """The endpoint's after-update hook (components/endpoint.py), run against `Aws`."""
        from tools.verify import VerificationFailed, verify_endpoint

        try:
            verify_endpoint(self.aws, name, expected, timeout_seconds=0, poll_seconds=0, sleep=lambda _s: None)
        except VerificationFailed as exc:
            raise DeploymentFailed(f"after-update hook: {exc}") from exc

    def _delete(self, ref: str) -> None:
        typ = ref.split("::", 1)[0]
        if typ == TARGET:  # A2: policies go with it, the capacity stays
            self.aws.targets.pop(str(self.state[ref]["inputs"]["resourceId"]), None)
        # MODEL and CONFIG are retained on delete (S4); nothing else here matters to a rollout.


def _repository_and_digest(ref: str) -> tuple[str, str]:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...` -> (REPO, digest)."""
    repository, _, digest = ref.partition("/")[2].partition("@")
    return repository, digest


def _apply_order(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Dependencies first, as the engine creates and updates resources."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(ref: str) -> None:
        if ref in seen or ref not in entries:
            return
        seen.add(ref)
        for dep in entries[ref].get("options", {}).get("dependsOn", []):
            visit(dep)
        order.append(ref)

    for ref in sorted(entries):
        visit(ref)
    return order
