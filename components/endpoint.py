"""`ModelEndpoint`: a SageMaker real-time endpoint that rolls out new models blue/green and rolls back on alarms.

One model version is one auto-named `Model` plus one auto-named `EndpointConfiguration` (kept on delete); the
`Endpoint` keeps one deterministic name and moves from config to config with SageMaker's blue/green update,
guarded by two rollback alarms whose names never change (docs/architecture.md, decisions 1-4 and 7).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.endpoint_live import LiveEndpoint, as_int, rollout_fingerprint, rollout_start_count
from components.iam import sagemaker_vpc_statements, service_trust_policy
from components.settings import (
    AlarmSettings,
    AutoscalingSettings,
    CaptureSettings,
    EndpointSettings,
    RolloutSettings,
    autoscaling_errors,
    has_local_nvme,
    rollout_errors,
)

# Blue/green needs the same variant name in the old and the new config, so it is a constant, never a setting.
VARIANT_NAME: Final = "primary"
# Key prefix of data capture in the capture bucket; SageMaker appends `{endpoint}/{variant}/yyyy/mm/dd/hh/`.
CAPTURE_PREFIX: Final = "capture"
# The variable the serving container reads to pick the fp32 or the int8 graph (serving/settings.py,
# `ENV_PRECISION`; tests check both sides agree). Not imported: the Pulumi program does not ship serving's deps.
PRECISION_ENV: Final = "MLPLATFORM_MODEL_PRECISION"
# Suffixes of the rollback alarm names: `{endpoint_name}{suffix}`.
ROLLBACK_5XX_SUFFIX: Final = "-rollback-5xx"
ROLLBACK_LATENCY_SUFFIX: Final = "-rollback-latency-p99"
# Content types the data capture decodes as text instead of base64 (what the serving container accepts).
CAPTURE_CSV_CONTENT_TYPES: Final = ("text/csv",)
CAPTURE_JSON_CONTENT_TYPES: Final = ("application/json", "application/jsonlines")
SCALABLE_DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC: Final = "SageMakerVariantInvocationsPerInstance"

# SageMaker's rule for endpoint names (CreateEndpoint: `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`).
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ECR_IMAGE = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+)@sha256:[0-9a-f]{64}$"
)
_S3_PREFIX = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.*)$")


class EndpointConfigError(ValueError):
    """The endpoint's arguments break a rule SageMaker or the provider would reject minutes into a deployment."""


def rollback_alarm_names(endpoint_name: str) -> list[str]:
    """The rollback alarm names of an endpoint: derived from its stable name only, so they never change."""
    return [f"{endpoint_name}{ROLLBACK_5XX_SUFFIX}", f"{endpoint_name}{ROLLBACK_LATENCY_SUFFIX}"]


def scaling_resource_id(endpoint_name: str) -> str:
    """Application Auto Scaling's id of the production variant: `endpoint/<name>/variant/<variant>`."""
    return f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"


def capture_uri(capture_bucket: str, endpoint_name: str) -> str:
    """Where this endpoint's captured requests land; below it: `{variant}/yyyy/mm/dd/hh/*.jsonl`."""
    return f"s3://{capture_bucket}/{CAPTURE_PREFIX}/{endpoint_name}/"


def parse_ecr_image(image: str) -> tuple[str, str, str]:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...` -> (account, region, repository).

    SageMaker hosting pulls from ECR with the execution role, so the role's pull permission is scoped to this
    one repository; any other reference (a tag, another registry) is refused.
    """
    match = _ECR_IMAGE.match(image)
    if not match:
        raise EndpointConfigError(
            f"serving image must be an ECR image by digest, 'ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:<64 hex>'"
            f" (SageMaker pulls it with the endpoint role); got {image!r}"
        )
    return match["account"], match["region"], match["repository"]


def parse_model_prefix(uri: str) -> tuple[str, str]:
    """`s3://bucket/models/job-1/output/` -> ("bucket", "models/job-1/output/"); the prefix always ends in '/'.

    The model files are read uncompressed from this prefix (docs/architecture.md, decision 6), so the role may read it
    and nothing else in the bucket; the trailing slash keeps `job-1` from also granting `job-10`.
    """
    match = _S3_PREFIX.match(uri)
    if not match or not match["key"].strip("/"):
        raise EndpointConfigError(
            f"model data URI must be an S3 prefix 's3://bucket/key/prefix/' holding the uncompressed model files; "
            f"got {uri!r}"
        )
    key = match["key"] if match["key"].endswith("/") else match["key"] + "/"
    return match["bucket"], key


def serving_container(
    image: pulumi.Input[str], model_data_uri: pulumi.Input[str], precision: pulumi.Input[str]
) -> aws.sagemaker.ModelPrimaryContainerArgsDict:
    """The serving image's container of a SageMaker Model: uncompressed model files under an S3 prefix (the
    training output as SageMaker writes it), and the graph precision the server loads. Endpoint and batch
    transform models use the same one."""
    return {
        "image": image,
        "model_data_source": {
            "s3_data_sources": [
                {
                    "s3_uri": pulumi.Output.from_input(model_data_uri).apply(
                        lambda uri: "s3://{}/{}".format(*parse_model_prefix(uri))
                    ),
                    "s3_data_type": "S3Prefix",
                    "compression_type": "None",
                }
            ]
        },
        "environment": {PRECISION_ENV: precision},
    }


def validate_rollout(
    endpoint: EndpointSettings,
    rollout: RolloutSettings,
    alarms: AlarmSettings,
    autoscaling: AutoscalingSettings,
) -> None:
    """Raise `EndpointConfigError` naming every broken blue/green or autoscaling rule.

    The rules are docs/architecture.md, decision 2.

    `load_settings` applies the same rules to a stack's config; this repeats them for direct use of the
    component, so nothing invalid reaches AWS whichever way the settings were built.
    """
    errors = rollout_errors(rollout, endpoint, alarms) + autoscaling_errors(autoscaling, endpoint)
    if errors:
        raise EndpointConfigError("invalid endpoint rollout:\n" + "\n".join(f"  - {e}" for e in errors))


def instance_type_change_error(
    previous_instance_type: str | None,
    previous_autoscaling_enabled: bool | None,
    instance_type: str,
) -> str | None:
    """Why this deployment must not change the instance type, or None when it may (docs/architecture.md, decision 7).

    Application Auto Scaling refuses `UpdateEndpoint` when the new config changes the instance type of a variant
    that is a registered scalable target; the provider only learns that minutes into `pulumi up`, after the new
    config exists. The scalable target is deregistered only when the Target resource is deleted, which Pulumi does
    at the end of a deployment, after the endpoint update: so the change takes two deployments, in this order.
    No IaC tool sequences this for us: terraform-provider-aws #14337 (same ordering failure), and neither
    CloudFormation nor CDK has a deregister step (cloudformation-coverage-roadmap #1991, aws-cdk #29626). The
    previous values come from this stack's own last outputs (a `StackReference` to itself), so `pulumi preview`
    already shows the refusal.
    """
    if not previous_autoscaling_enabled or not previous_instance_type or previous_instance_type == instance_type:
        return None
    return (
        f"mlplatform:endpointInstanceType changes from {previous_instance_type} to {instance_type} while "
        "autoscaling is attached to the endpoint; Application Auto Scaling blocks that endpoint update. Proceed in "
        "two deployments: (1) keep the instance type at "
        f"{previous_instance_type}, set mlplatform:autoscalingEnabled to false and run `pulumi up` (this deregisters "
        f"the scalable target); (2) set mlplatform:endpointInstanceType to {instance_type}, set "
        "mlplatform:autoscalingEnabled back to true and run `pulumi up`"
    )


class ModelEndpointArgs(TypedDict):
    image: pulumi.Input[str]
    """Serving image by digest, in ECR: `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...`."""
    model_data_uri: pulumi.Input[str]
    """S3 prefix holding the uncompressed model files (`s3://bucket/.../`), read as `S3Prefix`, compression None."""
    endpoint: EndpointSettings
    """Instance type and count, precision, download and startup timeouts."""
    rollout: RolloutSettings
    """Blue/green traffic shifting, bake, termination wait and execution timeout."""
    capture: CaptureSettings
    """Whether requests and responses are captured, and which share."""
    autoscaling: AutoscalingSettings
    """Target tracking on invocations per instance, when enabled."""
    alarms: AlarmSettings
    """Period, evaluation periods, datapoints and thresholds of the rollback alarms."""
    capture_bucket: pulumi.Input[str]
    """Bucket receiving data capture under `capture/`."""
    kms_key_arn: pulumi.Input[str]
    """Project KMS key: capture data, the storage volume (where allowed), reading the model and the image."""
    source_kms_key_arns: NotRequired[Sequence[pulumi.Input[str]]]
    """Keys of a promoting stack (prod reads dev's model files and image, encrypted with dev's key): decrypt only."""
    endpoint_name: str
    """Stable, deterministic endpoint name (e.g. `mlplatform-dev`): applications and alarms depend on it."""
    alarm_topic_arn: NotRequired[pulumi.Input[str] | None]
    """SNS topic notified when a rollback alarm changes state (optional)."""
    protect: NotRequired[bool]
    """Protect the endpoint against deletion (prod)."""
    subnet_ids: NotRequired[Sequence[pulumi.Input[str]]]
    """VPC subnets for the model containers (optional; security groups required with them)."""
    security_group_ids: NotRequired[Sequence[pulumi.Input[str]]]
    """VPC security groups for the model containers."""
    previous_instance_type: NotRequired[pulumi.Input[str | None]]
    """Instance type of the last deployment (this stack's own `endpointInstanceType` output), for the guard."""
    previous_autoscaling_enabled: NotRequired[pulumi.Input[bool | None]]
    """Whether the last deployment had autoscaling attached (this stack's `endpointAutoscalingEnabled` output)."""
    live_endpoint: NotRequired[LiveEndpoint | None]
    """The endpoint as AWS holds it now (`components.endpoint_live.read_live_endpoint`), None when it does not
    exist yet: a rollout starts at its desired count, and its model stays readable while it can serve."""
    previous_rollout_fingerprint: NotRequired[pulumi.Input[str | None]]
    """This stack's `endpointRolloutFingerprint` output of the last deployment (None on the first)."""
    previous_rollout_start_count: NotRequired[pulumi.Input[int | str | None]]
    """This stack's `endpointRolloutStartCount` output of the last deployment (None on the first)."""
    verify_deployment: NotRequired[bool]
    """After `pulumi up` creates or updates the endpoint, fail unless it serves the new config (default true)."""
    verify_timeout_seconds: NotRequired[int]
    """How long that check waits for an endpoint still Creating/Updating (default 900)."""


class ModelEndpoint(pulumi.ComponentResource):
    """Model, endpoint config, endpoint (blue/green, auto-rollback), rollback alarms, autoscaling, IAM.

    Example::

        endpoint = ModelEndpoint("mlplatform-dev", ModelEndpointArgs(
            image=serving_image_ref, model_data_uri=model_prefix, endpoint=settings.endpoint,
            rollout=settings.rollout, capture=settings.capture, autoscaling=settings.autoscaling,
            alarms=settings.alarms, capture_bucket=store.capture_bucket, kms_key_arn=store.kms_key_arn,
            endpoint_name="mlplatform-dev"))
        pulumi.export("endpointName", endpoint.endpoint_name)
    """

    endpoint_name: pulumi.Output[str]
    """Stable endpoint name applications invoke."""
    endpoint_arn: pulumi.Output[str]
    """ARN of the endpoint."""
    endpoint_config_name: pulumi.Output[str]
    """Auto-generated name of the config this deployment rolls out; `tools.verify` checks the endpoint serves it.

    Taken from the config resource, never from the endpoint: the provider refreshes the endpoint's own
    `endpoint_config_name` from DescribeEndpoint, which names the OLD config after a SageMaker rollback."""
    model_name: pulumi.Output[str]
    """Auto-generated name of this deployment's SageMaker model."""
    variant_name: pulumi.Output[str]
    """Production variant name (constant)."""
    execution_role_arn: pulumi.Output[str]
    """Role SageMaker assumes to pull the image, read the model, write capture data and logs."""
    invoke_policy_arn: pulumi.Output[str]
    """Managed policy allowing `sagemaker:InvokeEndpoint` on this endpoint only, for applications to attach."""
    capture_uri: pulumi.Output[str]
    """`s3://bucket/capture/<endpoint>/`: below it `<variant>/yyyy/mm/dd/hh/*.jsonl`."""
    rollback_alarm_names: pulumi.Output[list[str]]
    """Names of the alarms that roll a deployment back (constant per endpoint)."""
    instance_type: pulumi.Output[str]
    """Instance type deployed; export it so the next deployment's guard can read it back."""
    autoscaling_enabled: pulumi.Output[bool]
    """Whether autoscaling is attached; export it for the next deployment's guard."""
    rollout_fingerprint: pulumi.Output[str]
    """Digest of what this deployment rolls out except the count; export it for the next deployment."""
    rollout_start_count: pulumi.Output[int]
    """`InitialInstanceCount` of this deployment's config; export it for the next deployment."""

    def __init__(self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:serving:ModelEndpoint", name, None, opts)
        endpoint_name = args["endpoint_name"]
        settings = args["endpoint"]
        rollout = args["rollout"]
        alarm_settings = args["alarms"]
        autoscaling = args["autoscaling"]
        self._check_plain_args(args)
        validate_rollout(settings, rollout, alarm_settings, autoscaling)

        role, role_policy = self._execution_role(name, args)
        model = aws.sagemaker.Model(
            f"{name}-model",
            # No `name`: every field of a model forces replacement, and create-before-delete needs a new name.
            execution_role_arn=role.arn,
            enable_network_isolation=True,
            primary_container=serving_container(args["image"], args["model_data_uri"], settings.precision),
            vpc_config=(
                {
                    "subnets": list(args.get("subnet_ids", [])),
                    "security_group_ids": list(args.get("security_group_ids", [])),
                }
                if args.get("subnet_ids")
                else None
            ),
            # SageMaker checks it can pull the image and read the model when the model is created. Kept in AWS
            # on replacement like the config below: a config SageMaker rolls back to, or scales out, needs its model.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy], retain_on_delete=True),
        )

        # The guard against an instance-type change under autoscaling gates the config itself, so a refused
        # change creates nothing (and `pulumi preview` already shows the refusal).
        guarded_instance_type = pulumi.Output.all(
            pulumi.Output.from_input(args.get("previous_instance_type")),
            pulumi.Output.from_input(args.get("previous_autoscaling_enabled")),
        ).apply(lambda prev: _guard_instance_type(prev[0], prev[1], settings.instance_type))

        capture = args["capture"]
        live = args.get("live_endpoint")
        fingerprint = pulumi.Output.all(
            image=args["image"],
            model_data_uri=args["model_data_uri"],
            capture_bucket=args["capture_bucket"],
            kms_key_arn=args["kms_key_arn"],
            subnet_ids=list(args.get("subnet_ids", [])),
            security_group_ids=list(args.get("security_group_ids", [])),
        ).apply(
            lambda v: rollout_fingerprint(
                {
                    **v,
                    # Everything of the endpoint settings but the count, which is what this fingerprint decides.
                    "endpoint": settings.model_dump(exclude={"instance_count"}),
                    "capture": capture.model_dump(),
                    "rollout": rollout.model_dump(),
                }
            )
        )
        start_count = pulumi.Output.all(
            fingerprint,
            pulumi.Output.from_input(args.get("previous_rollout_fingerprint")),
            pulumi.Output.from_input(args.get("previous_rollout_start_count")),
        ).apply(
            lambda v: rollout_start_count(
                configured=settings.instance_count,
                autoscaling=autoscaling,
                live_desired=live.desired_instance_count if live is not None else None,
                fingerprint=v[0],
                previous_fingerprint=str(v[1]) if v[1] else None,
                previous_start_count=as_int(v[2]),
            )
        )
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            # No `name` either: a model version is a new config; the endpoint moves to it blue/green.
            production_variants=[
                {
                    "variant_name": VARIANT_NAME,
                    "model_name": model.name,
                    "instance_type": guarded_instance_type,
                    # The live desired count when a rollout is due (RetainAllVariantProperties is never sent).
                    "initial_instance_count": start_count,
                    "initial_variant_weight": 1.0,
                    "model_data_download_timeout_in_seconds": settings.model_download_timeout_seconds,
                    "container_startup_health_check_timeout_in_seconds": settings.startup_health_check_timeout_seconds,
                }
            ],
            data_capture_config={
                "enable_capture": capture.enabled,
                "initial_sampling_percentage": capture.sampling_percent,
                "destination_s3_uri": pulumi.Output.concat("s3://", args["capture_bucket"], "/", CAPTURE_PREFIX),
                "kms_key_id": args["kms_key_arn"],
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "csv_content_types": list(CAPTURE_CSV_CONTENT_TYPES),
                    "json_content_types": list(CAPTURE_JSON_CONTENT_TYPES),
                },
            },
            # The storage-volume key only where the instance has an EBS volume: instance types with local NVMe
            # (g4dn, g5, p4d, *d...) keep the model on hardware-encrypted instance store, and SageMaker rejects
            # a KMS key for them (docs/architecture.md, decision 4).
            kms_key_arn=None if has_local_nvme(settings.instance_type) else args["kms_key_arn"],
            # Kept in AWS when Pulumi replaces it: during and after a blue/green update SageMaker may roll the
            # endpoint back to the previous config, which must still exist then.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

        alarms = self._rollback_alarms(name, endpoint_name, config, alarm_settings, args.get("alarm_topic_arn"))
        alarm_names = rollback_alarm_names(endpoint_name)

        endpoint_opts = pulumi.ResourceOptions(
            parent=self,
            protect=args.get("protect", False),
            # The alarms must carry the new config's dimension before SageMaker starts shifting traffic.
            depends_on=list(alarms),
            hooks=self._verification_hooks(name, args),
        )
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=endpoint_name,
            endpoint_config_name=config.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": _traffic_routing(rollout),
                    "termination_wait_in_seconds": rollout.termination_wait_seconds,
                    "maximum_execution_timeout_in_seconds": rollout.max_execution_seconds,
                },
                # Plain constant names, not the alarms' outputs: a change here forces replacement of the endpoint,
                # and an unknown value in a preview would show one.
                "auto_rollback_configuration": {"alarms": [{"alarm_name": n} for n in alarm_names]},
            },
            opts=endpoint_opts,
        )

        if autoscaling.enabled:
            self._autoscaling(name, endpoint, autoscaling)

        invoke_policy = aws.iam.Policy(
            f"{name}-invoke",
            description=f"Invoke the SageMaker endpoint {endpoint_name} (attach to application roles)",
            policy=endpoint.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "InvokeEndpoint",
                                "Effect": "Allow",
                                "Action": ["sagemaker:InvokeEndpoint"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.endpoint_name = endpoint.name
        self.endpoint_arn = endpoint.arn
        self.endpoint_config_name = config.name
        self.model_name = model.name
        self.variant_name = pulumi.Output.from_input(VARIANT_NAME)
        self.execution_role_arn = role.arn
        self.invoke_policy_arn = invoke_policy.arn
        self.capture_uri = pulumi.Output.from_input(args["capture_bucket"]).apply(
            lambda bucket: capture_uri(bucket, endpoint_name)
        )
        self.rollback_alarm_names = pulumi.Output.all(*(a.name for a in alarms))
        self.instance_type = guarded_instance_type
        self.autoscaling_enabled = pulumi.Output.from_input(autoscaling.enabled)
        self.rollout_fingerprint = fingerprint
        self.rollout_start_count = start_count
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_arn": self.endpoint_arn,
                "endpoint_config_name": self.endpoint_config_name,
                "model_name": self.model_name,
                "variant_name": self.variant_name,
                "execution_role_arn": self.execution_role_arn,
                "invoke_policy_arn": self.invoke_policy_arn,
                "capture_uri": self.capture_uri,
                "rollback_alarm_names": self.rollback_alarm_names,
                "instance_type": self.instance_type,
                "autoscaling_enabled": self.autoscaling_enabled,
                "rollout_fingerprint": self.rollout_fingerprint,
                "rollout_start_count": self.rollout_start_count,
            }
        )

    # --- construction helpers ------------------------------------------------------------------------------

    @staticmethod
    def _check_plain_args(args: ModelEndpointArgs) -> None:
        """Refuse bad plain values now; Output values are checked when they resolve."""
        endpoint_name = args["endpoint_name"]
        if not _ENDPOINT_NAME.match(endpoint_name):
            raise EndpointConfigError(
                f"endpoint name {endpoint_name!r} is not valid: 1-63 letters, digits and hyphens, starting and "
                "ending with a letter or digit"
            )
        # The longest alarm name and the scalable target id stay within their limits when the name does.
        if isinstance(args["image"], str):
            parse_ecr_image(args["image"])
        if isinstance(args["model_data_uri"], str):
            parse_model_prefix(args["model_data_uri"])
        if bool(args.get("subnet_ids")) != bool(args.get("security_group_ids")):
            raise EndpointConfigError("subnet_ids and security_group_ids go together: give both or neither")
        timeout = args.get("verify_timeout_seconds", 900)
        if not 0 <= timeout <= 3600:
            raise EndpointConfigError(f"verify_timeout_seconds must be between 0 and 3600, got {timeout}")

    def _execution_role(self, name: str, args: ModelEndpointArgs) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        """Role SageMaker assumes for this endpoint, with an inline least-privilege policy.

        The role also reads the model the endpoint serves now (`live_endpoint`): that model's config is the one
        SageMaker keeps serving during the rollout and falls back to on a rollback, with this same role.
        """
        child = pulumi.ResourceOptions(parent=self)
        live = args.get("live_endpoint")
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        role = aws.iam.Role(
            f"{name}-role",
            description=f"SageMaker execution role of the endpoint {args['endpoint_name']}",
            assume_role_policy=identity.account_id.apply(
                lambda account: service_trust_policy("sagemaker.amazonaws.com", account)
            ),
            opts=child,
        )
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        policy = pulumi.Output.all(
            partition=partition.partition,
            account=identity.account_id,
            region=region.region,
            image=args["image"],
            model_data_uri=args["model_data_uri"],
            capture_bucket=args["capture_bucket"],
            kms_key_arn=args["kms_key_arn"],
            source_kms_key_arns=list(args.get("source_kms_key_arns", [])),
            subnet_ids=list(args.get("subnet_ids", [])),
            security_group_ids=list(args.get("security_group_ids", [])),
        ).apply(
            lambda v: execution_policy(
                endpoint_name=args["endpoint_name"],
                live_model_data_uri=live.model_data_uri if live is not None else None,
                live_image=live.image if live is not None else None,
                **v,
            )
        )
        role_policy = aws.iam.RolePolicy(f"{name}-role-policy", role=role.id, policy=policy, opts=child)
        return role, role_policy

    def _rollback_alarms(
        self,
        name: str,
        endpoint_name: str,
        config: aws.sagemaker.EndpointConfiguration,
        settings: AlarmSettings,
        topic_arn: pulumi.Input[str] | None,
    ) -> list[aws.cloudwatch.MetricAlarm]:
        """The two alarms SageMaker watches during a rollout; any of them in ALARM rolls the update back.

        They watch the NEW fleet: AWS's deployment-guardrails guide ("Auto-Rollback Configuration and
        Monitoring", docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html) shows
        alarms on both fleets (dimensions EndpointName, VariantName) and alarms on the new fleet only, which add
        the EndpointConfigName dimension set to the new config. During a bake only the new fleet's metrics say
        whether the new model is broken; the old fleet's errors must not roll back a good model. The dimension
        therefore changes with every rollout: the alarm's NAME stays constant (the endpoint's
        auto_rollback_configuration, which forces replacement of the endpoint, never changes) and its definition
        is updated in place, before the endpoint update starts (the endpoint depends on the alarms). After a
        SageMaker rollback the alarm watches a config that serves nothing: missing data is not breaching, so it
        returns to OK, and `tools.verify` fails the deployment loudly.
        """
        dimensions = {"EndpointName": endpoint_name, "VariantName": VARIANT_NAME, "EndpointConfigName": config.name}
        actions = [topic_arn] if topic_arn is not None else []
        five_xx_name, latency_name = rollback_alarm_names(endpoint_name)
        common: dict[str, Any] = {
            "namespace": "AWS/SageMaker",
            "dimensions": dimensions,
            "period": settings.period_seconds,
            "evaluation_periods": settings.evaluation_periods,
            "datapoints_to_alarm": settings.datapoints_to_alarm,
            "comparison_operator": "GreaterThanOrEqualToThreshold",
            # A new fleet without traffic yet (or an old config after rollback) emits no data: not a failure.
            "treat_missing_data": "notBreaching",
            "alarm_actions": actions,
            "ok_actions": actions,
        }
        five_xx = aws.cloudwatch.MetricAlarm(
            f"{name}-rollback-5xx",
            name=five_xx_name,
            alarm_description=(
                f"Rolls back a deployment of {endpoint_name}: {settings.errors5xx_threshold} or more 5XX answers "
                "per period from the new fleet"
            ),
            metric_name="Invocation5XXErrors",
            statistic="Sum",
            threshold=float(settings.errors5xx_threshold),
            opts=pulumi.ResourceOptions(parent=self),
            **common,
        )
        latency = aws.cloudwatch.MetricAlarm(
            f"{name}-rollback-latency-p99",
            name=latency_name,
            alarm_description=(
                f"Rolls back a deployment of {endpoint_name}: new fleet's ModelLatency p99 at or above "
                f"{settings.latency_p99_ms} ms"
            ),
            metric_name="ModelLatency",
            extended_statistic="p99",
            # ModelLatency is reported in microseconds.
            threshold=float(settings.latency_p99_ms * 1000),
            # A canary's first minutes carry few requests; a p99 of five requests is one slow cold start, so
            # periods too small to be significant do not change the state (the 5XX alarm still catches failures).
            evaluate_low_sample_count_percentiles="ignore",
            opts=pulumi.ResourceOptions(parent=self),
            **common,
        )
        return [five_xx, latency]

    def _autoscaling(self, name: str, endpoint: aws.sagemaker.Endpoint, settings: AutoscalingSettings) -> None:
        # The resource id derives from the endpoint's output so the target is registered after the endpoint exists.
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(scaling_resource_id),
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=settings.min_capacity,
            max_capacity=settings.max_capacity,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            name=endpoint.name.apply(lambda n: f"{n}-invocations-per-instance"),
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "target_value": float(settings.target_invocations_per_instance),
                "predefined_metric_specification": {"predefined_metric_type": SCALING_METRIC},
                "scale_in_cooldown": settings.scale_in_cooldown_seconds,
                "scale_out_cooldown": settings.scale_out_cooldown_seconds,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    @staticmethod
    def _verification_hooks(name: str, args: ModelEndpointArgs) -> pulumi.ResourceHookBinding | None:
        """After the provider reports the endpoint created or updated, check SageMaker really serves the new config.

        The provider waits for InService and reports success even when SageMaker rolled the update back to the
        old config (docs/architecture.md, decision 1); the hook fails `pulumi up` then. Not registered in previews:
        there is no deployment to check.
        """
        if not args.get("verify_deployment", True) or pulumi.runtime.is_dry_run():
            return None
        timeout = args.get("verify_timeout_seconds", 900)

        def verify(hook_args: pulumi.ResourceHookArgs) -> None:
            verify_endpoint_hook(hook_args, timeout_seconds=timeout)

        hook = pulumi.ResourceHook(f"{name}-verify-deployment", verify)
        return pulumi.ResourceHookBinding(after_create=[hook], after_update=[hook])


def verify_endpoint_hook(
    hook_args: pulumi.ResourceHookArgs, *, timeout_seconds: int, client: Any | None = None, poll_seconds: float = 15
) -> None:
    """The after-create/after-update hook body: raise `VerificationFailed` (components/endpoint_verify.py) unless the
    endpoint serves the config Pulumi just set. `client` is a boto3 SageMaker client (made from the endpoint's
    region if None)."""
    from components.endpoint_verify import VerificationFailed, verify_endpoint

    outputs = dict(hook_args.new_outputs or {})
    inputs = dict(hook_args.new_inputs or {})
    endpoint_name = str(inputs.get("name") or outputs.get("name") or hook_args.id)
    # The expected config comes from the INPUTS, what this deployment asked for: the provider refreshes its
    # outputs from DescribeEndpoint after the update, so after a SageMaker rollback the outputs already name the
    # old config and a check against them would pass.
    expected = inputs.get("endpointConfigName") or inputs.get("endpoint_config_name")
    if not expected:
        raise VerificationFailed(f"endpoint {endpoint_name}: the hook got no endpointConfigName input to verify")
    if client is None:
        import boto3

        arn = str(outputs.get("arn", ""))
        region = arn.split(":")[3] if arn.count(":") >= 5 else None
        client = boto3.client("sagemaker", region_name=region)
    verify_endpoint(client, endpoint_name, str(expected), timeout_seconds=timeout_seconds, poll_seconds=poll_seconds)


def _guard_instance_type(previous_type: Any, previous_autoscaling: Any, instance_type: str) -> str:
    error = instance_type_change_error(
        str(previous_type) if previous_type else None,
        _as_bool(previous_autoscaling),
        instance_type,
    )
    if error:
        raise EndpointConfigError(error)
    return instance_type


def _as_bool(value: Any) -> bool | None:
    """Stack outputs come back as bools or, from some backends, strings."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _traffic_routing(
    rollout: RolloutSettings,
) -> aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict:
    """SageMaker's TrafficRoutingConfiguration for the rollout style; the wait is the bake after each shift."""
    routing: aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict = {
        "type": rollout.style,
        "wait_interval_in_seconds": rollout.bake_seconds,
    }
    if rollout.style == "CANARY":
        routing["canary_size"] = {"type": "CAPACITY_PERCENT", "value": rollout.canary_percent}
    elif rollout.style == "LINEAR":
        routing["linear_step_size"] = {"type": "CAPACITY_PERCENT", "value": rollout.linear_step_percent}
    return routing


ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"
"""CloudWatch namespace of endpoint instance metrics (CPUUtilization, MemoryUtilization, DiskUtilization)."""


def execution_policy(
    *,
    endpoint_name: str,
    partition: str,
    account: str,
    region: str,
    image: str,
    model_data_uri: str,
    capture_bucket: str,
    kms_key_arn: str,
    source_kms_key_arns: Sequence[str] = (),
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
    live_model_data_uri: str | None = None,
    live_image: str | None = None,
) -> str:
    """The endpoint role's inline policy (JSON): each statement scoped to this endpoint's own resources.

    Resource "*" appears only where AWS has no resource-level permission for the action:
    `ecr:GetAuthorizationToken` and the EC2 `Describe*` calls of VPC mode. The model files and image of the
    live model (`live_*`, what the endpoint serves before this deployment) stay readable beside the new ones:
    the old fleet, which SageMaker scales and replaces with this role until the rollout ends, serves them, and so
    does the fleet SageMaker rolls back to.
    """
    repositories = sorted({parse_ecr_image(i) for i in (image, live_image) if i and _ECR_IMAGE.match(i)})
    # parse_* refuse a malformed new image/prefix; a live one that is not an ECR digest / S3 prefix is skipped.
    parse_ecr_image(image)
    parse_model_prefix(model_data_uri)
    prefixes = sorted(
        {parse_model_prefix(u) for u in (model_data_uri, live_model_data_uri) if u and _S3_PREFIX.match(u)}
    )
    repo_arns = [f"arn:{partition}:ecr:{r}:{a}:repository/{n}" for a, r, n in repositories]
    statements: list[Mapping[str, Any]] = [
        {
            "Sid": "PullServingImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": _one_or_list(repo_arns),
        },
        {
            # GetAuthorizationToken has no resource-level permission: AWS requires "*".
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*",
        },
        {
            "Sid": "ReadModelFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _one_or_list([f"arn:{partition}:s3:::{b}/{k}*" for b, k in prefixes]),
        },
        *(
            {
                "Sid": "ListModelPrefix" if i == 0 else f"ListModelPrefix{i + 1}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": sorted(f"{k}*" for b, k in prefixes if b == bucket)}},
            }
            for i, bucket in enumerate(sorted({b for b, _ in prefixes}))
        ),
        {
            # Data capture is written with this role, under this endpoint's own prefix.
            "Sid": "WriteCapture",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": f"arn:{partition}:s3:::{capture_bucket}/{CAPTURE_PREFIX}/{endpoint_name}/*",
        },
        {
            # The model, the image layers and the capture objects are encrypted with the project key.
            "Sid": "UseProjectKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"],
            "Resource": kms_key_arn,
        },
        *(
            [
                {
                    # Promoted artifacts (model files in the source stack's bucket, its image repository) stay
                    # encrypted with the source stack's key: reading them needs decrypt, nothing more.
                    "Sid": "ReadPromotedArtifacts",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": sorted(set(source_kms_key_arns)),
                }
            ]
            if source_kms_key_arns
            else []
        ),
        {
            # Instance and invocation metrics of the endpoint's instances are published with the model's
            # execution role ("CreateModel API: Execution Role Permissions" lists cloudwatch:PutMetricData);
            # without it the instance metrics, and the alarms and autoscaling that read them, stay empty.
            # PutMetricData has no resource-level permissions; the namespace condition narrows it.
            "Sid": "PublishEndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": ENDPOINT_METRICS_NAMESPACE}},
        },
        {
            "Sid": "EndpointLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [
                f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}",
                f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}:*",
            ],
        },
        {
            # Blue/green auto-rollback reads the alarms with this role (AWS: "permission to perform
            # cloudwatch:DescribeAlarms on the auto-rollback alarms you specify"). Metric alarms allow
            # resource-level scoping; only composite alarms would need "*", and we use none.
            "Sid": "ReadRollbackAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"],
            "Resource": [
                f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm}"
                for alarm in rollback_alarm_names(endpoint_name)
            ],
        },
    ]
    if subnet_ids:
        statements += sagemaker_vpc_statements(partition, region, account, subnet_ids, security_group_ids)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _one_or_list(values: Sequence[str]) -> str | list[str]:
    """A policy `Resource`: the plain string for one (as before), a list for several."""
    return values[0] if len(values) == 1 else list(values)
