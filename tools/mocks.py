"""Pulumi mock runtime for this program: records every resource and answers like the real providers would.

One source for the offline plan (`tools/plan.py`) and the tests (`tests/conftest.py`). The mock monitor is
process-global in the Pulumi SDK, so callers set it once per program run through `tools.plan.run_program`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

# AWS's documentation example account and the region used when none is configured; never a real account.
MOCK_ACCOUNT_ID = "111122223333"
MOCK_REGION = "us-east-1"


def _suffix(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:7]


def _sha256(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class RecordedResource:
    """One registered resource as the engine would see it: type token, logical name, parent, inputs, options."""

    type: str
    name: str
    urn: str
    parent: str | None
    inputs: dict[str, Any]
    custom: bool
    options: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    """A component's registered outputs (`register_outputs`): what the engine hands stack policies for it."""

    def as_plan_entry(self) -> dict[str, Any]:
        entry = {
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "inputs": self.inputs,
            "options": self.options,
        }
        if not self.custom and self.outputs:
            entry["outputs"] = self.outputs
        return entry


def urn_to_ref(urn: str) -> str:
    """`urn:pulumi:dev::mlplatform::a$b:c:D::name` -> `b:c:D::name` (the `type::name` a plan uses for parents)."""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{parts[3]}"


class PlatformMocks(pulumi.runtime.Mocks):
    """Fills the outputs a real provider computes (arn, id, name, bucket, digest...) and answers invokes."""

    def __init__(
        self,
        region: str = MOCK_REGION,
        stack_outputs: dict[str, dict[str, Any]] | None = None,
        namer: Callable[[str, str, dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.region = region
        # Outputs of other stacks, answered to `StackReference`s by fully qualified stack name.
        self.stack_outputs = stack_outputs or {}
        # (type, logical name, inputs) -> the physical name of an auto-named resource, or None for the default:
        # the lifecycle harness (tests/lifecycle.py) names a replaced resource anew, as Pulumi's auto-naming does.
        self.namer = namer

    # --- resources -----------------------------------------------------------------------------------------

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ == "pulumi:pulumi:StackReference":
            ref = inputs.get("name", name)
            return ref, {"name": ref, "outputs": self.stack_outputs.get(ref, {}), "secretOutputNames": []}
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider-id", inputs
        if typ.startswith("kubernetes:"):
            # The Kubernetes provider echoes the manifest and names an object by `namespace/name` (or `name`).
            metadata = dict(inputs.get("metadata") or {})
            metadata.setdefault("name", f"{name}-{_suffix(typ, name)}")
            metadata.setdefault("uid", _uuid(typ, name))
            object_id = "/".join(str(p) for p in (metadata.get("namespace"), metadata["name"]) if p)
            return object_id, {**inputs, "metadata": metadata}
        module = typ.split(":")[1].split("/")[0]
        # SageMaker pipelines are named by `pipelineName` and model package groups (and their policies) by
        # `modelPackageGroupName`, MLflow tracking servers by `trackingServerName`: the provider's id is that name
        # (terraform-provider-aws internal/service/sagemaker/pipeline.go, model_package_group.go and
        # mlflow_tracking_server.go, `d.SetId(name)` after Create).
        # Everything else by `name` or an auto name.
        physical = (
            inputs.get("name")
            or inputs.get("pipelineName")
            or inputs.get("modelPackageGroupName")
            or inputs.get("trackingServerName")
            or (self.namer(typ, name, inputs) if self.namer else None)
            or f"{name}-{_suffix(typ, name)}"
        )
        state: dict[str, Any] = {**inputs, "id": physical}
        arn_prefix = f"arn:aws:{module}:{self.region}:{MOCK_ACCOUNT_ID}"
        kind = typ.rsplit(":", 1)[-1]
        state.setdefault("name", physical)
        state["arn"] = f"{arn_prefix}:{kind[0].lower() + kind[1:]}/{physical}"
        if isinstance(inputs.get("tags", {}), dict):  # docker-build's `tags` is a list of image names
            state.setdefault("tagsAll", {**inputs.get("tags", {})})

        if typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{name}-{_suffix(typ, name)}".lower()
            state.update(
                bucket=bucket,
                id=bucket,
                arn=f"arn:aws:s3:::{bucket}",
                bucketDomainName=f"{bucket}.s3.amazonaws.com",
                bucketRegionalDomainName=f"{bucket}.s3.{self.region}.amazonaws.com",
                region=self.region,
            )
        elif typ == "aws:budgets/budget:Budget":
            # terraform-provider-aws internal/service/budgets/budget.go: the id is `<account>:<name>`, the ARN
            # has no region (`arn:<partition>:budgets::<account>:budget/<name>`), the account defaults to the
            # caller's, and time_period_end defaults to 2087-06-15_00:00.
            state.update(
                id=f"{MOCK_ACCOUNT_ID}:{physical}",
                arn=f"arn:aws:budgets::{MOCK_ACCOUNT_ID}:budget/{physical}",
                accountId=inputs.get("accountId", MOCK_ACCOUNT_ID),
                timePeriodEnd=inputs.get("timePeriodEnd", "2087-06-15_00:00"),
            )
        elif typ == "aws:kms/key:Key":
            key_id = _uuid(typ, name)
            state.update(id=key_id, keyId=key_id, arn=f"{arn_prefix}:key/{key_id}")
        elif typ == "aws:kms/alias:Alias":
            state.update(arn=f"{arn_prefix}:{inputs.get('name', 'alias/' + physical)}")
        elif typ.startswith("aws:iam/"):
            path = inputs.get("path", "/")
            state["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:{kind[0].lower() + kind[1:]}{path}{physical}"
            state["uniqueId"] = "AROA" + _suffix(typ, name).upper()
        elif typ == "aws:ecr/repository:Repository":
            url = f"{MOCK_ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{physical}"
            state.update(repositoryUrl=url, registryId=MOCK_ACCOUNT_ID, arn=f"{arn_prefix}:repository/{physical}")
        elif typ == "docker-build:index:Image":
            digest = _sha256(inputs)
            tags = inputs.get("tags") or [f"{name}:latest"]
            state.update(digest=digest, ref=f"{str(tags[0]).rsplit(':', 1)[0]}@{digest}", id=digest)
        elif typ == "aws:sns/topic:Topic":
            state["arn"] = f"arn:aws:sns:{self.region}:{MOCK_ACCOUNT_ID}:{physical}"
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state["arn"] = f"arn:aws:cloudwatch:{self.region}:{MOCK_ACCOUNT_ID}:alarm:{physical}"
        elif typ == "aws:cloudwatch/dashboard:Dashboard":
            dash = inputs.get("dashboardName", physical)
            state["dashboardArn"] = f"arn:aws:cloudwatch::{MOCK_ACCOUNT_ID}:dashboard/{dash}"
        elif typ.startswith("aws:sagemaker/"):
            state["arn"] = f"arn:aws:sagemaker:{self.region}:{MOCK_ACCOUNT_ID}:{_kebab(kind)}/{str(physical).lower()}"
            if kind == "MlflowTrackingServer":
                # The schema's defaults (mlflow_tracking_server.go): Small, no automatic model registration.
                state.setdefault("trackingServerSize", "Small")
                state.setdefault("automaticModelRegistration", False)
        elif typ == "aws:appautoscaling/target:Target":
            state["id"] = inputs.get("resourceId", physical)
        elif typ.startswith("aws-native:sagemaker:") and typ.endswith("JobDefinition"):
            # pulumi-aws-native auto-names a resource whose name property is not set (its autonaming gives
            # `<logical name>-<random>`) and returns the name and ARN CloudFormation reports
            # (AWS::SageMaker::ModelQualityJobDefinition: JobDefinitionName, JobDefinitionArn).
            definition = inputs.get("jobDefinitionName") or physical
            arn = f"arn:aws:sagemaker:{self.region}:{MOCK_ACCOUNT_ID}:model-quality-job-definition/{definition}"
            if "ModelBias" in typ:
                arn = arn.replace("model-quality", "model-bias")
            state.update(jobDefinitionName=definition, jobDefinitionArn=arn, id=arn)
        return str(state["id"]), state

    # --- invokes -------------------------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        # The SDK's mock monitor iterates the failures list: answer an empty list, never None.
        result, failures = self._answer(args)
        return result, failures or []

    def _answer(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        token, a = args.token, args.args
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT_ID,
                "arn": f"arn:aws:sts::{MOCK_ACCOUNT_ID}:assumed-role/deployer/session",
                "userId": "AROAEXAMPLE:session",
                "id": MOCK_ACCOUNT_ID,
            }, None
        if token == "aws:index/getRegion:getRegion":
            return {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
                "description": self.region,
            }, None
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
                "reverseDnsPrefix": "com.amazonaws",
            }, None
        if token == "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage":
            repo = a.get("repositoryName", "image")
            registry = "156813124566"  # the registry AWS documents for Model Monitor's analyzer in us-east-1
            # terraform-provider-aws internal/service/sagemaker/prebuilt_ecr_image_data_source.go: `image_tag`
            # defaults to "1" and prebuiltECRImageCreatePath always appends ":<image_tag>".
            tag = a.get("imageTag") or "1"
            path = f"{registry}.dkr.ecr.{self.region}.amazonaws.com/{repo}:{tag}"
            return {
                "registryPath": path,
                "registryId": registry,
                "repositoryName": repo,
                "id": registry,
                "region": self.region,
                "imageTag": tag,
            }, None
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOm1vY2s=",
                "userName": "AWS",
                "password": "mock-ecr-password",
                "proxyEndpoint": f"https://{MOCK_ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com",
                "expiresAt": "2099-01-01T00:00:00Z",
                "id": self.region,
            }, None
        raise NotImplementedError(
            f"the mock runtime does not answer invoke {token!r}; add it to tools/mocks.py with realistic values"
        )


def _uuid(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _kebab(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, plus a record of every registration with its parent and resource options."""

    def __init__(self, mocks: PlatformMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        from pulumi.runtime import rpc

        inputs = rpc.deserialize_properties(request.object)
        options: dict[str, Any] = {}
        if request.protect:
            options["protect"] = True
        if getattr(request, "retainOnDelete", False):
            options["retainOnDelete"] = True
        if request.deleteBeforeReplace:
            options["deleteBeforeReplace"] = True
        if list(request.ignoreChanges):
            options["ignoreChanges"] = list(request.ignoreChanges)
        if list(request.replaceOnChanges):
            options["replaceOnChanges"] = list(request.replaceOnChanges)
        if list(request.dependencies):
            options["dependsOn"] = sorted(urn_to_ref(d) for d in request.dependencies)
        hooks = {k: list(getattr(request.hooks, k)) for k in ("after_create", "after_update", "before_update")}
        if any(hooks.values()):
            options["hooks"] = {k: v for k, v in hooks.items() if v}
        if request.provider:
            options["provider"] = request.provider.split("::")[-2] if "::" in request.provider else request.provider
        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=_parent_ref(request.parent),
                inputs=_plain(inputs),
                custom=bool(request.custom),
                options=options,
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        """Record a component's `register_outputs`: for stack policies the engine passes every resource's
        outputs, not its inputs (pulumi/pulumi pkg/resource/deploy/step_generator.go, AnalyzeResources;
        pulumi/pulumi-policy#135), and a component's outputs are exactly what it registered here."""
        from pulumi.runtime import rpc

        outputs = rpc.deserialize_properties(request.outputs)
        for recorded in self.recorded:
            if recorded.urn == request.urn:
                recorded.outputs = _plain(outputs)
        return super().RegisterResourceOutputs(request)

    def ReadResource(self, request: Any) -> Any:
        """Reads (`StackReference`, `Resource.get`) are recorded too, marked with the id they read."""
        response = super().ReadResource(request)
        from pulumi.runtime import rpc

        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=_parent_ref(request.parent),
                inputs=_plain(rpc.deserialize_properties(request.properties)),
                custom=True,
                options={"read": request.id},
            )
        )
        return response


def _parent_ref(parent_urn: str) -> str | None:
    """The parent as `type::name`, or None for top-level resources (whose parent is the stack)."""
    if not parent_urn:
        return None
    ref = urn_to_ref(parent_urn)
    return None if ref.startswith("pulumi:pulumi:Stack::") else ref


def _plain(value: Any) -> Any:
    """Inputs as JSON-friendly values (resource references become their URN)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    urn = getattr(value, "urn", None)
    return str(urn) if urn is not None else str(value)
