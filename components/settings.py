"""Stack settings: the `mlplatform:*` config of one stack, parsed once into typed, frozen objects.

Nothing else in the program reads raw config. Every key is flat (`mlplatform:<section><Field>`, e.g.
`mlplatform:rolloutStyle`) because Pulumi's project-level config declarations only type scalars and arrays;
each section below maps to one key prefix. Unknown keys are rejected so a typo never passes silently, and
cross-field rules live next to the settings they join.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

# Torch-free facts of the training image (the program may import the containers' small contract modules).
from training.instance_facts import InstancePlanError, TrainingLayout, network_problems, plan_training

PROJECT = "mlplatform"

# Instance families that carry local NVMe instance storage. SageMaker rejects a KMS key for the storage volume
# of these (the data already sits on hardware-encrypted instance store), so `kms_key_arn` on an endpoint
# config and `volume_kms_key_id` on a training job must be left out for them (docs/architecture.md, decision 4).
_NVME_FAMILIES = frozenset(
    {
        "g4dn",
        "g5",
        "g6",
        "g6e",
        "p3dn",
        "p4d",
        "p4de",
        "p5",
        "p5e",
        "p5en",
        "inf2",
        "trn1",
        "trn1n",
        "c5d",
        "m5d",
        "r5d",
        "c6id",
        "m6id",
        "r6id",
        "c7gd",
        "m7gd",
        "r7gd",
        "i3",
        "i3en",
        "i4i",
        "x2idn",
        "x2iedn",
    }
)
# GPU families SageMaker offers, for the "is this a GPU instance" question (alarms on GPU metrics, policy).
_GPU_FAMILIES = frozenset(
    {"p2", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "g4dn", "g5", "g6", "g6e", "g4ad", "g5g"}
)
_INSTANCE_TYPE = re.compile(
    r"^ml\.([a-z][a-z0-9-]*)\.([0-9]*x?large|xlarge|[0-9]+xlarge|medium|small|metal[0-9.a-z-]*)$"
)
_IMAGE_BY_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?(/[a-z0-9._-]+)*@sha256:[0-9a-f]{64}$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")

# The AWS provider waits about 45 minutes for an endpoint to reach InService; a blue/green rollout that can
# take longer makes `pulumi up` fail while SageMaker is still rolling (docs/architecture.md, decision 2).
PROVIDER_ENDPOINT_WAIT_SECONDS = 45 * 60
# Time allowed for SageMaker to provision and health-check the new fleet before traffic shifting starts.
FLEET_PROVISIONING_ALLOWANCE_SECONDS = 10 * 60
# SageMaker's upper limit for MaximumExecutionTimeoutInSeconds of a blue/green deployment.
MAX_ROLLOUT_EXECUTION_TIMEOUT_SECONDS = 14400


def to_camel(snake: str) -> str:
    """`bake_seconds` -> `bakeSeconds`, `errors5xx_threshold` -> `errors5xxThreshold` (digits keep case)."""
    first, *rest = snake.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class SettingsError(ValueError):
    """A stack's configuration is invalid; the message names every bad key, its value and what is allowed."""


def instance_family(instance_type: str) -> str:
    """`ml.g5.2xlarge` -> `g5`."""
    return instance_type.split(".")[1]


def has_local_nvme(instance_type: str) -> bool:
    """True for instance types whose storage is local NVMe, where SageMaker refuses a volume KMS key."""
    family = instance_family(instance_type)
    return family in _NVME_FAMILIES or (family[-1] == "d" and family[:-1] in {"c5", "m5", "r5", "c6i", "m6i"})


def is_gpu_instance(instance_type: str) -> bool:
    return instance_family(instance_type) in _GPU_FAMILIES


def instance_type(value: str) -> str:
    if not _INSTANCE_TYPE.match(value):
        raise ValueError(f"must be a SageMaker instance type like 'ml.g5.xlarge' or 'ml.c6i.large', got {value!r}")
    return value


def image_by_digest(value: str) -> str:
    if not _IMAGE_BY_DIGEST.match(value):
        raise ValueError(
            f"must be an image reference by digest, 'REGISTRY/REPOSITORY@sha256:<64 hex>', never a tag; got {value!r}"
        )
    return value


def s3_uri(value: str) -> str:
    if not _S3_URI.match(value):
        raise ValueError(f"must be an S3 URI 's3://bucket/prefix', got {value!r}")
    return value


def _hyperparameter_strings(value: Any) -> Any:
    """SageMaker passes every hyperparameter as a string; a YAML map may say `epochs: 20`, which means "20"."""
    if not isinstance(value, dict):
        return value
    return {
        k: (str(v).lower() if isinstance(v, bool) else str(v)) if isinstance(v, bool | int | float) else v
        for k, v in value.items()
    }


# Field types that validate themselves, so an error carries the field's location and so the full config key.
InstanceType = Annotated[str, AfterValidator(instance_type)]
ImageByDigest = Annotated[str, AfterValidator(image_by_digest)]
S3Uri = Annotated[str, AfterValidator(s3_uri)]


class _Section(BaseModel):
    """Base of every settings section: frozen, camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, str_strip_whitespace=True
    )
    # The config-key prefix of this section: field `instance_type` of prefix `endpoint` is read from
    # `mlplatform:endpointInstanceType`.
    prefix: ClassVar[str] = ""


class ProjectSettings(_Section):
    """Who owns the stack and how carefully its stateful resources are treated."""

    owner: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9 ._:/=+@-]+$")]
    """Team or person that owns the stack; becomes the `owner` tag on every resource."""
    environment: Literal["dev", "staging", "prod"]
    """Kind of environment; prod turns on the strictest rules (protection, capture, blue/green)."""
    protect: bool = False
    """Protect stateful resources (buckets, KMS key, ECR repositories, endpoint) against deletion."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")]
    """AWS region, read from `aws:region`."""


class StorageSettings(_Section):
    prefix: ClassVar[str] = "storage"

    capture_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days captured inference data is kept before S3 expires it."""
    noncurrent_version_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days a replaced or deleted object version is kept in any bucket."""
    force_destroy: bool = False
    """Let `pulumi destroy` delete buckets that still hold objects (dev convenience; never in prod)."""
    promotion_reader_accounts: list[Annotated[str, Field(pattern=r"^[0-9]{12}$")]] = Field(default_factory=list)
    """AWS accounts (12 digits) whose stacks promote this stack's models: they may read the model bucket's
    `training/` prefix, pull the serving image and decrypt both with this stack's key (cross-account promotion)."""


class ImageSettings(_Section):
    prefix: ClassVar[str] = "images"

    build: bool = True
    """Build the training, serving and monitoring images from this repo and push them to ECR."""
    training: ImageByDigest | None = None
    """Prebuilt training image by digest; required when `imagesBuild` is false."""
    serving: ImageByDigest | None = None
    """Prebuilt serving image by digest; required when `imagesBuild` is false."""
    monitoring: ImageByDigest | None = None
    """Prebuilt monitoring image by digest; required when `imagesBuild` is false."""
    keep_last: Annotated[int, Field(ge=1, le=1000)] = 20
    """How many images each ECR repository keeps; older ones are expired by a lifecycle policy."""
    source_url: Annotated[str, Field(pattern=r"^https://[^\s]+$")] | None = None
    """URL of this repository, written into each image's `org.opencontainers.image.source` label."""

    @model_validator(mode="after")
    def _prebuilt_refs(self) -> ImageSettings:
        for field in ("training", "serving", "monitoring"):
            if getattr(self, field) is None and not self.build:
                raise ValueError(
                    f"mlplatform:images{field.title()} is required when mlplatform:imagesBuild is false "
                    "(give an image reference by digest, REPOSITORY@sha256:...)"
                )
        return self


class TrainingSettings(_Section):
    prefix: ClassVar[str] = "training"

    instance_type: InstanceType = "ml.g5.xlarge"
    """Training instance type (a GPU type in dev)."""
    instance_count: Annotated[int, Field(ge=1, le=16)] = 1
    """Training instances; more than one runs data-parallel training."""
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 50
    """EBS volume per training instance, in GB."""
    max_runtime_seconds: Annotated[int, Field(ge=60, le=2419200)] = 3600
    """Stop the job after this many seconds of training."""
    spot: bool = True
    """Use managed spot training (checkpoints are always configured)."""
    max_wait_seconds: Annotated[int, Field(ge=60, le=2419200)] = 7200
    """Longest time to wait for spot capacity plus training; must exceed the max runtime."""
    hyperparameters: Annotated[dict[str, str], BeforeValidator(_hyperparameter_strings)] = Field(default_factory=dict)
    """Hyperparameters passed to the training container (a map; numbers and booleans become strings)."""
    train_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")] = "datasets/demo/train/"
    """Key prefix of the training channel in the data bucket."""
    validation_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")] = "datasets/demo/validation/"
    """Key prefix of the validation channel in the data bucket."""
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{0,32}$")] = ""
    """Folded into the job name: change it to train again with unchanged inputs (after a failed or stopped run)."""
    subnet_ids: list[str] = Field(default_factory=list)
    """VPC subnets for the training job (optional; security groups required with them)."""
    security_group_ids: list[str] = Field(default_factory=list)
    """VPC security groups for the training job; with several hosts they must allow all traffic between members
    of the group (and UDP 500 plus ESP with inter-container encryption; training/README.md)."""
    inter_container_encryption: bool = True
    """Encrypt the traffic between the hosts of a multi-instance job (SageMaker inter-container encryption)."""

    @property
    def layout(self) -> TrainingLayout:
        """Hosts, GPUs per host and processes of the job (training/instance_facts.py)."""
        return plan_training(self.instance_type, self.instance_count)

    @model_validator(mode="after")
    def _rules(self) -> TrainingSettings:
        try:
            layout = self.layout
        except InstancePlanError as error:
            raise ValueError(str(error)) from None
        problems = network_problems(
            layout,
            subnet_ids=self.subnet_ids,
            security_group_ids=self.security_group_ids,
            inter_container_encryption=self.inter_container_encryption,
        )
        if problems:
            raise ValueError("; ".join(problems))
        if self.spot and self.max_wait_seconds <= self.max_runtime_seconds:
            raise ValueError(
                f"spot training needs mlplatform:trainingMaxWaitSeconds ({self.max_wait_seconds}) greater than "
                f"mlplatform:trainingMaxRuntimeSeconds ({self.max_runtime_seconds}); raise the wait or set "
                "mlplatform:trainingSpot to false"
            )
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("mlplatform:trainingSubnetIds and mlplatform:trainingSecurityGroupIds go together")
        return self


class ModelSourceSettings(_Section):
    """Where the deployed model comes from: trained here, another stack's outputs, or pinned values."""

    prefix: ClassVar[str] = "model"

    source: Literal["train", "stack", "pinned", "registry"] = "train"
    """`train`: this stack's training job; `stack`: another stack's outputs; `pinned`: the URIs below;
    `registry`: an Approved version of a model package group (docs/lifecycle.md)."""
    stack: str | None = None
    """Fully qualified stack to promote from (`org/mlplatform/dev`) when the source is `stack`."""
    data_uri: S3Uri | None = None
    """Pinned S3 prefix of the model files (source `pinned`)."""
    baseline_statistics_uri: S3Uri | None = None
    """Pinned baseline statistics.json URI (source `pinned`)."""
    baseline_constraints_uri: S3Uri | None = None
    """Pinned baseline constraints.json URI (source `pinned`)."""
    serving_image: ImageByDigest | None = None
    """Pinned serving image by digest (source `pinned`)."""
    package_group: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")] | None = None
    """Model package group to deploy from (source `registry`), e.g. `mlplatform-dev`."""
    package_version: Annotated[int, Field(ge=1)] | None = None
    """Approved version to deploy (source `registry`); unset: the latest approved (not allowed in prod)."""
    copy_artifacts: bool = True
    """Copy a promoted model's files (source `stack` or `pinned`) into this stack's model bucket and serve them from
    there, so this stack keeps serving, scaling and rolling back when the source stack's bucket is gone."""

    @model_validator(mode="after")
    def _rules(self) -> ModelSourceSettings:
        if self.source == "registry" and self.package_group is None:
            raise ValueError("model source 'registry' needs mlplatform:modelPackageGroup (the model package group)")
        if self.source == "stack":
            if not self.stack or not _STACK_REF.match(self.stack):
                raise ValueError("mlplatform:modelStack must name the stack to promote from, e.g. 'org/mlplatform/dev'")
        elif self.source == "pinned":
            missing = [
                f"mlplatform:model{to_camel(f)[0].upper()}{to_camel(f)[1:]}"
                for f in ("data_uri", "baseline_statistics_uri", "baseline_constraints_uri", "serving_image")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(f"model source 'pinned' needs {', '.join(missing)}")
        if self.data_uri is not None and not self.data_uri.endswith("/"):
            raise ValueError(
                f"mlplatform:modelDataUri must be the S3 prefix of the model files ending with '/' "
                f"(SageMaker's S3Prefix rule), got {self.data_uri!r}"
            )
        return self


class EndpointSettings(_Section):
    prefix: ClassVar[str] = "endpoint"

    instance_type: InstanceType = "ml.c6i.large"
    """Serving instance type."""
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    """Serving instances of the production variant."""
    precision: Literal["fp32", "int8"] = "fp32"
    """Which exported model the serving container loads."""
    startup_health_check_timeout_seconds: Annotated[int, Field(ge=60, le=3600)] = 600
    """How long SageMaker waits for /ping to answer 200 on a new instance."""
    model_download_timeout_seconds: Annotated[int, Field(ge=60, le=3600)] = 600
    """How long SageMaker may take to download the model files to an instance."""


class RolloutSettings(_Section):
    """Blue/green deployment of a new endpoint config; validated against the endpoint and alarms below."""

    prefix: ClassVar[str] = "rollout"

    style: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "ALL_AT_ONCE"
    """Traffic shifting: all at once, a canary then the rest, or linear steps."""
    canary_percent: Annotated[int, Field(ge=1, le=50)] = 10
    """Share of capacity that takes traffic first (CANARY)."""
    linear_step_percent: Annotated[int, Field(ge=10, le=50)] = 25
    """Share of capacity shifted per step (LINEAR)."""
    bake_seconds: Annotated[int, Field(ge=0, le=3600)] = 600
    """Bake time after each traffic shift, while the rollback alarms watch the new fleet."""
    termination_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    """Time the old fleet stays up after all traffic moved, for a fast rollback."""
    max_execution_seconds: Annotated[int, Field(ge=600, le=MAX_ROLLOUT_EXECUTION_TIMEOUT_SECONDS)] = 3600
    """Upper bound SageMaker enforces on the whole rollout."""

    def shift_steps(self) -> int:
        """Traffic shifts with a bake after each: 1 for all-at-once, 2 for canary, ceil(100/step) for linear."""
        if self.style == "CANARY":
            return 2
        if self.style == "LINEAR":
            return math.ceil(100 / self.linear_step_percent)
        return 1

    def total_wait_seconds(self) -> int:
        """Bake after each shift plus the termination wait: the waits the execution timeout must exceed."""
        return self.shift_steps() * self.bake_seconds + self.termination_wait_seconds

    def longest_duration_seconds(self) -> int:
        """Longest time a rollout can take: provisioning the new fleet, then every wait."""
        return FLEET_PROVISIONING_ALLOWANCE_SECONDS + self.total_wait_seconds()


class CaptureSettings(_Section):
    prefix: ClassVar[str] = "capture"

    enabled: bool = True
    """Capture endpoint requests and responses to the capture bucket."""
    sampling_percent: Annotated[int, Field(ge=1, le=100)] = 100
    """Share of requests captured."""


class AutoscalingSettings(_Section):
    prefix: ClassVar[str] = "autoscaling"

    enabled: bool = False
    """Attach Application Auto Scaling to the production variant."""
    min_capacity: Annotated[int, Field(ge=1, le=100)] = 1
    """Fewest instances."""
    max_capacity: Annotated[int, Field(ge=1, le=100)] = 2
    """Most instances."""
    target_invocations_per_instance: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    """Target of SageMakerVariantInvocationsPerInstance (requests per instance per minute)."""
    scale_in_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    """Wait after a scale-in before the next."""
    scale_out_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    """Wait after a scale-out before the next."""

    @model_validator(mode="after")
    def _rules(self) -> AutoscalingSettings:
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"mlplatform:autoscalingMinCapacity ({self.min_capacity}) must not exceed "
                f"mlplatform:autoscalingMaxCapacity ({self.max_capacity})"
            )
        return self


class AlarmSettings(_Section):
    prefix: ClassVar[str] = "alarms"

    period_seconds: Annotated[int, Field(ge=10, le=86400)] = 60
    """Alarm period in seconds: 10, 30 or a multiple of 60 (CloudWatch's rule)."""
    evaluation_periods: Annotated[int, Field(ge=1, le=30)] = 3
    """Periods an alarm evaluates."""
    datapoints_to_alarm: Annotated[int, Field(ge=1, le=30)] = 2
    """Breaching periods (of the evaluated ones) that trip an alarm."""
    errors5xx_threshold: Annotated[int, Field(ge=1, le=1_000_000)] = 5
    """Invocation5XXErrors per period that trip the rollback alarm."""
    latency_p99_ms: Annotated[int, Field(ge=1, le=60_000)] = 200
    """ModelLatency p99 in milliseconds that trips the rollback alarm."""
    error_4xx_rate_percent: Annotated[float, Field(gt=0, le=100)] = 5.0
    """Share of 4XX answers that trips the client-error alarm."""
    emails: list[Annotated[str, Field(pattern=_EMAIL.pattern)]] = Field(default_factory=list)
    """Addresses subscribed to the alarm topic (each confirms by mail)."""

    @model_validator(mode="after")
    def _rules(self) -> AlarmSettings:
        if self.period_seconds not in (10, 30) and self.period_seconds % 60:
            raise ValueError(
                f"mlplatform:alarmsPeriodSeconds: got {self.period_seconds}; allowed are 10, 30 or a multiple of 60"
            )
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"mlplatform:alarmsDatapointsToAlarm ({self.datapoints_to_alarm}) must not exceed "
                f"mlplatform:alarmsEvaluationPeriods ({self.evaluation_periods})"
            )
        return self

    def alarm_window_seconds(self) -> int:
        return self.period_seconds * self.evaluation_periods


REGRESSION_METRICS = ("rmse", "mae", "mse", "r2")
"""Model Monitor's regression_metrics (model-monitor-model-quality-metrics): what a Regression alarm can watch."""


class MonitoringSettings(_Section):
    prefix: ClassVar[str] = "monitor"

    backend: Literal["model-monitor", "pipeline", "none"] = "pipeline"
    """`model-monitor` (SageMaker Model Monitor schedule), `pipeline` (our monitor image, hourly), or `none`."""
    instance_type: InstanceType = "ml.m5.large"
    """Instance type of each monitoring run."""
    max_runtime_seconds: Annotated[int, Field(ge=60, le=86400)] = 1800
    """Stop a monitoring run after this long."""
    instance_count: Annotated[int, Field(ge=1, le=20)] = 1
    """Instances of a drift run; above 1 the `pipeline` backend analyzes the window in shards and merges them."""
    quality: bool = False
    """Monitor model quality against the evaluation's baseline, joining captures with uploaded ground truth."""
    problem_type: Literal["BinaryClassification", "MulticlassClassification", "Regression"] = "BinaryClassification"
    """The model's task (Model Monitor's ProblemType): decides the quality metrics; `Regression` also trains a
    regression model (training hyperparameter `task`)."""
    inference_attribute: Annotated[str, Field(min_length=1, max_length=256)] = "0"
    """Where the predicted label is in an answer: a CSV column (0-based) or a JSON path."""
    probability_attribute: Annotated[str, Field(max_length=256)] = "2"
    """Where P(positive class) is in an answer (binary AUC); empty for none. The serving image answers `label,p0,p1`."""
    positive_label: Annotated[str, Field(min_length=1, max_length=64)] = "1"
    """The positive class of a binary model (precision, recall, bias rates)."""
    label_delay_hours: Annotated[int, Field(ge=1, le=168)] = 24
    """How long ground truth takes: each hourly quality run judges the hour that ended this long ago; labels
    uploaded later are counted as late."""
    quality_alarm_metric: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "accuracy"
    """Model-quality metric the quality alarm watches (e.g. accuracy, auc, f1; rmse for regression)."""
    quality_alarm_threshold: Annotated[float, Field(ge=0, le=1e12)] = 0.8
    """The alarm trips below this value (above it for error metrics: rmse, mae, mse, false_*_rate)."""
    sensitive_attribute: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    """Bias drift: a request feature, or a column of the ground truth's JSON data, whose groups are compared."""
    sensitive_feature_index: Annotated[int | None, Field(ge=0, le=10_000)] = None
    """Its column in a CSV request; required by `model-monitor` (SageMaker Clarify reads features by position)."""

    @model_validator(mode="after")
    def _rules(self) -> MonitoringSettings:
        if self.sensitive_attribute is not None and not self.quality:
            raise ValueError(
                "mlplatform:monitorSensitiveAttribute needs mlplatform:monitorQuality true (bias is computed on "
                "the predictions joined with ground truth)"
            )
        if self.sensitive_attribute is not None and self.problem_type == "Regression":
            raise ValueError("mlplatform:monitorSensitiveAttribute: bias metrics need a classification problem type")
        if self.quality and self.problem_type == "Regression" and self.quality_alarm_metric not in REGRESSION_METRICS:
            raise ValueError(
                f"mlplatform:monitorQualityAlarmMetric: {self.quality_alarm_metric!r} is not a metric of a Regression "
                f"model (mlplatform:monitorProblemType); allowed: {', '.join(REGRESSION_METRICS)}"
            )
        if self.backend == "model-monitor" and self.sensitive_attribute and self.sensitive_feature_index is None:
            raise ValueError(
                "mlplatform:monitorBackend model-monitor with mlplatform:monitorSensitiveAttribute needs "
                "mlplatform:monitorSensitiveFeatureIndex (Clarify reads the feature by its CSV column)"
            )
        if self.backend == "model-monitor" and self.instance_count > 1:
            raise ValueError(
                "mlplatform:monitorInstanceCount above 1 needs mlplatform:monitorBackend pipeline (the built-in "
                "analyzer scales on its own instance type; shards and merge are the pipeline's)"
            )
        return self


class PolicySettings(_Section):
    """Inputs of the policy pack (policy/): allowed GPU types and written exceptions to its rules."""

    prefix: ClassVar[str] = "policy"

    allowed_gpu_instance_types: list[InstanceType] = Field(
        default_factory=lambda: ["ml.g5.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge", "ml.g4dn.xlarge"]
    )
    """GPU instance types this stack may use for training or serving (policy `gpu-instance-allowlist`)."""
    exceptions: dict[str, str] = Field(default_factory=dict)
    """Policy rules waived for this stack, as a JSON map of rule name to the written reason."""

    @model_validator(mode="after")
    def _rules(self) -> PolicySettings:
        blank = [rule for rule, reason in self.exceptions.items() if len(reason.strip()) < 10]
        if blank:
            raise ValueError(
                f"mlplatform:policyExceptions needs a written reason (10+ characters) for {', '.join(blank)}"
            )
        return self


class CostSettings(_Section):
    """Cost guard rails: the stack's AWS Budgets budget and the idle-endpoint alarm (docs/costs.md)."""

    prefix: ClassVar[str] = "cost"

    budget_monthly_usd: Annotated[int, Field(ge=1, le=10_000_000)] = 500
    """Monthly AWS Budgets cost budget of this stack in USD, over the costs tagged `stack=<stack>`."""
    budget_alert_percents: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [80, 100])
    """Actual-spend alerts to the alarm topic, in percent of the budget (1-4 distinct values; a forecast alert
    at 100% is always added)."""
    idle_alarm_hours: Annotated[int, Field(ge=0, le=24)] = 0
    """Alarm after this many hours without one invocation while the endpoint's instances are billed (0: off)."""

    @model_validator(mode="after")
    def _rules(self) -> CostSettings:
        percents = self.budget_alert_percents
        if not 1 <= len(percents) <= 4 or len(set(percents)) != len(percents):
            raise ValueError(
                f"mlplatform:costBudgetAlertPercents: got {percents}; allowed are 1 to 4 distinct percentages "
                "(AWS Budgets allows 5 notifications per budget, one is the forecast alert)"
            )
        return self


# --- Kubernetes serving target (issue 10) --------------------------------------------------------------------

# Cluster minor versions whose OpenAPI schemas the manifests are checked against (kubernetes-validate's range).
KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
# PodDisruptionBudget `unhealthyPodEvictionPolicy` (KEP-3017): alpha behind a feature gate in 1.26 (the API server
# drops the field while the gate is off), beta and on by default from 1.27, GA in 1.31.
PDB_UNHEALTHY_POD_EVICTION_POLICY_SINCE = (1, 27)
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_CPU_QUANTITY = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
_MEMORY_QUANTITY = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[A-Za-z0-9./_-]+$")

# pulumi-kubernetes waits this long for a Deployment's rollout unless the resource's customTimeouts or its
# `pulumi.com/timeoutSeconds` annotation say otherwise (provider/pkg/await/deployment.go,
# DefaultDeploymentTimeoutMins; provider/pkg/metadata/overrides.go, TimeoutDuration).
PULUMI_K8S_DEFAULT_DEPLOYMENT_TIMEOUT_SECONDS = 10 * 60
# Probe period of the startup and readiness probes, and the seconds a new pod must stay ready before the
# Deployment counts it available (components/kubernetes.py uses both).
K8S_PROBE_PERIOD_SECONDS = 5
K8S_MIN_READY_SECONDS = 5
# Time the API server, the Deployment and ReplicaSet controllers and the scheduler add to a rollout, beyond the
# pods' own start: one margin on the progress deadline and on Pulumi's wait.
K8S_CONTROL_PLANE_MARGIN_SECONDS = 60

# Memory of the serving container, measured with tests/serving_server_process.py (Python 3.11, onnxruntime, the
# tests' model fixture; proportional set size, so pages the forked workers share with the supervisor count once):
# supervisor and shared imports about 60 MiB; each worker 13 MiB of its own plus 1.6x (32 MiB model) to 2.2x
# (4 MiB model) the ONNX file once the model is loaded. Rounded up: the limit must hold
# base + workers x (worker + 2 x model + request working memory).
SERVER_BASE_MEMORY_MIB = 64
WORKER_BASE_MEMORY_MIB = 16
LOADED_MODEL_FACTOR = 2


def cpu_millis(quantity: str) -> int:
    """A Kubernetes CPU quantity in millicores: `500m` -> 500, `1.5` -> 1500."""
    if not _CPU_QUANTITY.match(quantity):
        raise ValueError(f"must be a CPU quantity like '500m', '1' or '1.5', got {quantity!r}")
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes: `512Mi` -> 536870912."""
    if not _MEMORY_QUANTITY.match(quantity):
        raise ValueError(f"must be a memory quantity like '512Mi' or '2Gi', got {quantity!r}")
    digits = quantity.rstrip("KMGTi")
    return int(digits) * _MEMORY_UNITS[quantity[len(digits) :]]


def _cpu_quantity(value: str) -> str:
    cpu_millis(value)
    return value


def _memory_quantity(value: str) -> str:
    memory_bytes(value)
    return value


CpuQuantity = Annotated[str, AfterValidator(_cpu_quantity)]
MemoryQuantity = Annotated[str, AfterValidator(_memory_quantity)]


def _mib(quantity_bytes: int) -> str:
    return f"{math.ceil(quantity_bytes / 2**20)}Mi"


class ServingSettings(_Section):
    """Where the model is served: a SageMaker endpoint, Kubernetes, or both side by side."""

    prefix: ClassVar[str] = "serving"

    target: Literal["sagemaker", "kubernetes", "both"] = "sagemaker"
    """`sagemaker`: a SageMaker endpoint; `kubernetes`: the same serving image on an existing cluster; `both`."""


class KubernetesSettings(_Section):
    """The serving image on an existing Kubernetes cluster (docs/kubernetes.md); read when the target includes it."""

    prefix: ClassVar[str] = "kubernetes"

    kubeconfig: Annotated[str | None, Field(json_schema_extra={"secret": True})] = None
    """Kubeconfig of the cluster (set it with `pulumi config set --secret`); or use the two keys below."""
    kubeconfig_stack: str | None = None
    """Fully qualified stack whose output holds the kubeconfig (e.g. an EKS stack `org/eks/prod`)."""
    kubeconfig_output: Annotated[str, Field(min_length=1, max_length=128)] = "kubeconfig"
    """Name of that stack's kubeconfig output."""
    cluster_version: str = "1.33"
    """Kubernetes minor version of the cluster; the manifests are checked against its OpenAPI schemas."""
    namespace: Annotated[str, Field(max_length=63, pattern=_DNS_LABEL)] | None = None
    """Namespace of the model service; by default `mlplatform-<stack>`, so stacks sharing a cluster never collide."""
    create_namespace: bool = True
    """Create the namespace (and delete it with the stack); false deploys into one that already exists."""
    allowed_namespaces: list[Annotated[str, Field(max_length=63, pattern=_DNS_LABEL)]] = Field(default_factory=list)
    """Namespaces whose pods may call the model; the NetworkPolicy admits only these (list the model's own too)."""
    model_delivery: Literal["s3", "image"] = "s3"
    """`s3`: an init container copies the model files from S3 (IRSA role); `image`: they are baked into the image."""
    oidc_provider_arn: str | None = None
    """IAM OIDC provider of the cluster (EKS), for the IRSA role that reads the model; required for `s3` delivery."""
    aws_cli_image: str | None = None
    """AWS CLI image by digest for the init container (e.g. `amazon/aws-cli@sha256:...`); required for `s3` delivery."""
    image_model_dir: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")] = "/opt/ml/model"
    """Model directory inside the image (`image` delivery)."""
    cpu_request: CpuQuantity = "1"
    """CPU each serving pod requests (the HPA's CPU target is a share of it)."""
    cpu_limit: CpuQuantity = "1"
    """CPU limit of each serving pod; the server starts one worker per whole core of it."""
    memory_request: MemoryQuantity = "1Gi"
    """Memory each serving pod requests."""
    memory_limit: MemoryQuantity = "1Gi"
    """Memory limit of each serving pod; must hold every worker's model and request working memory."""
    model_size: MemoryQuantity = "32Mi"
    """Size of the largest ONNX file the server loads; each worker holds about twice that in memory."""
    request_memory: MemoryQuantity = "256Mi"
    """Working memory of the largest request one worker scores (a full 6 MiB CSV batch peaks near 210 MiB)."""
    model_volume_size: MemoryQuantity = "2Gi"
    """Size limit of the emptyDir holding the model files (`s3` delivery)."""
    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 2
    """Fewest pods of the stable model (HorizontalPodAutoscaler); at least 2, so a node drain never takes the last."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 6
    """Most pods of the stable model."""
    max_surge_percent: Annotated[int, Field(ge=1, le=100)] = 25
    """Extra pods a rolling update starts at once, as a share of the current pods (rounded up, at least one)."""
    model_fetch_seconds: Annotated[int, Field(ge=10, le=3600)] = 180
    """Time a new pod may take to be scheduled, pull its images and copy the model, before the server starts."""
    max_rollout_seconds: Annotated[int, Field(ge=600, le=21600)] = 3600
    """Longest `pulumi up` may wait for one Deployment's rollout; longer worst cases are refused."""
    target_cpu_percent: Annotated[int, Field(ge=10, le=100)] = 70
    """Average CPU use, as a share of the request, that the autoscaler keeps the pods at."""
    metrics_adapter: bool = False
    """The cluster runs prometheus-adapter serving the pods' request rate; needs the ServiceMonitor."""
    target_requests_per_second: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    """Requests per second per pod the autoscaler aims for, when the metrics adapter exists."""
    requests_per_second_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "mlplatform_serving_requests"
    )
    """Pods metric the adapter serves: its default rules turn the server's `..._requests_total` into this rate."""
    startup_timeout_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    """How long a new pod may take to load its model before Kubernetes restarts it (startup probe)."""
    service_monitor: bool = False
    """The Prometheus operator's CRDs are installed: create a ServiceMonitor scraping /metrics."""
    prometheus_namespace: Annotated[str, Field(max_length=63, pattern=_DNS_LABEL)] = "monitoring"
    """Namespace of Prometheus, admitted by the NetworkPolicy when the ServiceMonitor is on."""
    service_monitor_labels: dict[str, str] = Field(default_factory=dict)
    """Labels the Prometheus operator selects ServiceMonitors by (e.g. `{"release": "kube-prometheus-stack"}`)."""
    canary_percent: Annotated[int, Field(ge=0, le=50)] = 0
    """Share of traffic for this stack's model as a canary beside the pinned stable model (0: no canary)."""
    canary_routing: Literal["pods", "gateway-api"] = "pods"
    """`pods`: a fixed number of canary pods behind the one Service; `gateway-api`: a mesh splits requests by weight."""
    stable_image: str | None = None
    """Serving image by digest the stable pods keep while a canary runs (the model before this change)."""
    stable_model_data_uri: S3Uri | None = None
    """S3 prefix of the stable model's files while a canary runs (`s3` delivery)."""

    @model_validator(mode="after")
    def _rules(self) -> KubernetesSettings:
        if self.cluster_version not in KUBERNETES_VERSIONS:
            raise ValueError(
                f"mlplatform:kubernetesClusterVersion: got {self.cluster_version!r}; allowed are "
                f"{KUBERNETES_VERSIONS[0]} to {KUBERNETES_VERSIONS[-1]} (minor version, e.g. '1.33')"
            )
        if self.kubeconfig_stack is not None and not _STACK_REF.match(self.kubeconfig_stack):
            raise ValueError(
                "mlplatform:kubernetesKubeconfigStack must name a stack like 'org/eks/prod', "
                f"got {self.kubeconfig_stack!r}"
            )
        if self.oidc_provider_arn is not None and not _OIDC_PROVIDER_ARN.match(self.oidc_provider_arn):
            raise ValueError(
                "mlplatform:kubernetesOidcProviderArn must be an IAM OIDC provider ARN like "
                f"'arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE', "
                f"got {self.oidc_provider_arn!r}"
            )
        for field in ("aws_cli_image", "stable_image"):
            value = getattr(self, field)
            if value is not None:
                try:
                    image_by_digest(value)
                except ValueError as exc:
                    raise ValueError(f"{_k8s_key(field)} {exc}") from None
        if self.stable_model_data_uri is not None and not self.stable_model_data_uri.endswith("/"):
            raise ValueError("mlplatform:kubernetesStableModelDataUri must be an S3 prefix ending with '/'")
        return self

    @property
    def has_canary(self) -> bool:
        return self.canary_percent > 0

    @property
    def weighted_canary(self) -> bool:
        """A canary whose share of requests a mesh sets by weight (Gateway API HTTPRoute), not its share of pods."""
        return self.has_canary and self.canary_routing == "gateway-api"

    def namespace_for(self, stack: str) -> str:
        """The namespace: the configured one, or `mlplatform-<stack>` (lower case, other characters as '-')."""
        if self.namespace is not None:
            return self.namespace
        return re.sub(r"[^a-z0-9-]", "-", f"mlplatform-{stack}".lower()).strip("-")

    def canary_replicas(self) -> int:
        """Canary pods at the stable minimum.

        `pods` routing: the canary's share of requests is its share of ready pods, so the count is rounded down
        (the share is never above `canary_percent`, and drops as the stable pods scale out); 0 means the minimum
        cannot express the share. `gateway-api`: the mesh splits requests by weight, so this is only the pods the
        canary's share needs at the stable minimum, rounded up.
        """
        if not self.has_canary:
            return 0
        exact = self.min_replicas * self.canary_percent / (100 - self.canary_percent)
        if self.canary_routing == "pods":
            return math.floor(exact + 1e-9)
        return max(1, math.ceil(exact - 1e-9))

    def canary_share_range(self) -> tuple[float, float]:
        """Percent of requests the canary gets: (stable pods at maximum, at minimum); exact with weights."""
        if not self.has_canary:
            return 0.0, 0.0
        if self.weighted_canary:
            return float(self.canary_percent), float(self.canary_percent)
        canary = self.canary_replicas()
        return 100 * canary / (canary + self.max_replicas), 100 * canary / (canary + self.min_replicas)

    def workers(self) -> int:
        """Server worker processes per pod: one per whole core of the CPU limit (the node's cores are not ours)."""
        return max(1, cpu_millis(self.cpu_limit) // 1000)

    def memory_needed_bytes(self) -> int:
        """Memory the server needs at most: shared base, then per worker its own, its model and one request."""
        per_worker = (
            WORKER_BASE_MEMORY_MIB * 2**20
            + LOADED_MODEL_FACTOR * memory_bytes(self.model_size)
            + memory_bytes(self.request_memory)
        )
        return SERVER_BASE_MEMORY_MIB * 2**20 + self.workers() * per_worker

    # --- rollouts ---------------------------------------------------------------------------------------------

    def startup_probe_failures(self) -> int:
        """Failed startup probes allowed: `startup_timeout_seconds` worth of probe periods."""
        return math.ceil(self.startup_timeout_seconds / K8S_PROBE_PERIOD_SECONDS)

    def pod_start_seconds(self) -> int:
        """Longest a new pod takes to count as available: fetching, loading (the startup probe's whole budget),
        the first readiness probe, then `minReadySeconds`."""
        loading = self.startup_probe_failures() * K8S_PROBE_PERIOD_SECONDS
        return self.model_fetch_seconds + loading + K8S_PROBE_PERIOD_SECONDS + K8S_MIN_READY_SECONDS

    def progress_deadline_seconds(self) -> int:
        """The Deployment's `progressDeadlineSeconds`: one pod's start without progress fails the rollout."""
        return self.pod_start_seconds() + K8S_CONTROL_PLANE_MARGIN_SECONDS

    def surge_pods(self, replicas: int) -> int:
        """Pods a rolling update adds at once: `maxSurge` as a percentage of `replicas`, rounded up (Kubernetes
        rounds a percentage surge up, deployment_util.go ResolveFenceposts)."""
        return max(1, math.ceil(replicas * self.max_surge_percent / 100))

    def rollout_seconds(self, replicas: int) -> int:
        """Worst-case rollout of `replicas` pods with `maxUnavailable: 0`: waves of `surge_pods`, each a pod start."""
        waves = math.ceil(replicas / self.surge_pods(replicas))
        return waves * self.pod_start_seconds() + K8S_CONTROL_PLANE_MARGIN_SECONDS

    def track_replicas(self) -> dict[str, int]:
        """Most pods each Deployment rolls: the autoscaler's maximum, or the fixed canary count."""
        tracks = {"stable": self.max_replicas}
        if self.has_canary:
            tracks["canary"] = self.max_replicas if self.weighted_canary else self.canary_replicas()
        return tracks


def _k8s_key(field: str) -> str:
    camel = to_camel(field)
    return f"mlplatform:kubernetes{camel[0].upper()}{camel[1:]}"


def kubernetes_errors(
    serving: ServingSettings, k8s: KubernetesSettings, model: ModelSourceSettings, stack: str
) -> list[str]:
    """Rules that join the Kubernetes settings; only checked when the serving target includes Kubernetes."""
    if serving.target == "sagemaker":
        return []
    errors: list[str] = []
    if (k8s.kubeconfig is None) == (k8s.kubeconfig_stack is None):
        errors.append(
            f"mlplatform:servingTarget {serving.target} needs exactly one of mlplatform:kubernetesKubeconfig (secret) "
            "or mlplatform:kubernetesKubeconfigStack; the ambient kubeconfig is never used"
        )
    namespace = k8s.namespace_for(stack)
    if not re.match(_DNS_LABEL, namespace) or len(namespace) > 63:
        errors.append(
            f"the default namespace {namespace!r} made from stack {stack!r} is not a DNS label of at most 63 "
            "characters: set mlplatform:kubernetesNamespace"
        )
    if not k8s.allowed_namespaces:
        errors.append(
            "mlplatform:kubernetesAllowedNamespaces must name at least one namespace whose pods may call the model "
            '(e.g. ["apps"]); the NetworkPolicy admits nothing else'
        )
    if k8s.model_delivery == "s3":
        missing = [
            f"mlplatform:kubernetes{key}"
            for key, value in (("OidcProviderArn", k8s.oidc_provider_arn), ("AwsCliImage", k8s.aws_cli_image))
            if value is None
        ]
        if missing:
            errors.append(f"mlplatform:kubernetesModelDelivery s3 needs {', '.join(missing)}")
    elif model.source in ("train", "stack", "registry"):
        # The serving image this stack builds (or promotes) holds the server, not the model: with nothing to
        # load, the server exits ("manifest.json is missing") and the pods crash-loop.
        errors.append(
            f"mlplatform:kubernetesModelDelivery image serves the model baked into the serving image, but "
            f"mlplatform:modelSource {model.source} gives a serving image without the model; use "
            "mlplatform:kubernetesModelDelivery s3, or mlplatform:modelSource pinned with a "
            "mlplatform:modelServingImage that holds the model at mlplatform:kubernetesImageModelDir"
        )
    if cpu_millis(k8s.cpu_request) > cpu_millis(k8s.cpu_limit):
        errors.append(
            f"mlplatform:kubernetesCpuRequest ({k8s.cpu_request}) must not exceed "
            f"mlplatform:kubernetesCpuLimit ({k8s.cpu_limit})"
        )
    if memory_bytes(k8s.memory_request) > memory_bytes(k8s.memory_limit):
        errors.append(
            f"mlplatform:kubernetesMemoryRequest ({k8s.memory_request}) must not exceed "
            f"mlplatform:kubernetesMemoryLimit ({k8s.memory_limit})"
        )
    needed = k8s.memory_needed_bytes()
    if memory_bytes(k8s.memory_limit) < needed:
        errors.append(
            f"mlplatform:kubernetesMemoryLimit ({k8s.memory_limit}) is below what {k8s.workers()} worker(s) need: "
            f"{SERVER_BASE_MEMORY_MIB}Mi shared + {k8s.workers()} x ({WORKER_BASE_MEMORY_MIB}Mi + "
            f"{LOADED_MODEL_FACTOR} x mlplatform:kubernetesModelSize {k8s.model_size} + "
            f"mlplatform:kubernetesRequestMemory {k8s.request_memory}) = {_mib(needed)}; raise the limit, or lower "
            "mlplatform:kubernetesCpuLimit (one worker per core)"
        )
    if k8s.model_delivery == "s3" and memory_bytes(k8s.model_volume_size) < 2 * memory_bytes(k8s.model_size):
        errors.append(
            f"mlplatform:kubernetesModelVolumeSize ({k8s.model_volume_size}) must hold the fp32 and int8 model "
            f"files: at least 2 x mlplatform:kubernetesModelSize ({k8s.model_size})"
        )
    if k8s.min_replicas > k8s.max_replicas:
        errors.append(
            f"mlplatform:kubernetesMinReplicas ({k8s.min_replicas}) must not exceed "
            f"mlplatform:kubernetesMaxReplicas ({k8s.max_replicas})"
        )
    if k8s.min_replicas < 2:
        # The disruption budget lets one pod go at a time: with one pod, a node drain takes the only one.
        errors.append(
            f"mlplatform:kubernetesMinReplicas ({k8s.min_replicas}) must be at least 2: the PodDisruptionBudget "
            "lets a node drain evict one pod at a time, which with one pod is the whole service"
        )
    if k8s.metrics_adapter and not k8s.service_monitor:
        # Without the scrape, the adapter has no series: the HPA then scales up on CPU but never down
        # (kubernetes/kubernetes#99514).
        errors.append(
            "mlplatform:kubernetesMetricsAdapter true needs mlplatform:kubernetesServiceMonitor true: the adapter "
            "reads the request rate from Prometheus, which scrapes the pods through the ServiceMonitor; without it "
            "the metric is missing and the autoscaler never scales in"
        )
    for track, replicas in k8s.track_replicas().items():
        longest = k8s.rollout_seconds(replicas)
        if longest > k8s.max_rollout_seconds:
            surge = k8s.surge_pods(replicas)
            errors.append(
                f"a rollout of the {track} pods can take {longest} s, longer than "
                f"mlplatform:kubernetesMaxRolloutSeconds ({k8s.max_rollout_seconds}): {replicas} pods, "
                f"{surge} at a time (mlplatform:kubernetesMaxSurgePercent {k8s.max_surge_percent}), each allowed "
                f"{k8s.pod_start_seconds()} s to start (mlplatform:kubernetesModelFetchSeconds "
                f"{k8s.model_fetch_seconds} + mlplatform:kubernetesStartupTimeoutSeconds "
                f"{k8s.startup_timeout_seconds} + readiness); raise the surge, shorten the start budgets, lower "
                "mlplatform:kubernetesMaxReplicas, or raise the limit"
            )
    pinned = k8s.stable_image is not None or k8s.stable_model_data_uri is not None
    if k8s.has_canary:
        needs = ["stable_image"] + (["stable_model_data_uri"] if k8s.model_delivery == "s3" else [])
        missing = [_k8s_key(field) for field in needs if getattr(k8s, field) is None]
        if missing:
            errors.append(
                f"mlplatform:kubernetesCanaryPercent {k8s.canary_percent} runs this stack's model as the canary: "
                f"pin the model the stable pods keep with {', '.join(missing)}"
            )
        if k8s.canary_routing == "pods" and k8s.canary_replicas() < 1:
            needed_min = math.ceil((100 - k8s.canary_percent) / k8s.canary_percent - 1e-9)
            errors.append(
                f"mlplatform:kubernetesCanaryPercent {k8s.canary_percent} with mlplatform:kubernetesMinReplicas "
                f"{k8s.min_replicas}: one canary pod beside {k8s.min_replicas} stable pods would take "
                f"{100 / (1 + k8s.min_replicas):.0f}% of the requests; raise the minimum to at least {needed_min}, "
                "raise the percent, or split by weight with mlplatform:kubernetesCanaryRouting gateway-api"
            )
    elif pinned and k8s.model_delivery == "s3" and (k8s.stable_image is None) != (k8s.stable_model_data_uri is None):
        errors.append(
            "mlplatform:kubernetesStableImage and mlplatform:kubernetesStableModelDataUri go together (s3 delivery)"
        )
    return errors


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class LifecycleSettings(_Section):
    """The model lifecycle (components/pipeline.py, components/registry.py): a training pipeline, a model
    package group and the gate's thresholds. Off by default, so a stack without it plans exactly as before."""

    prefix: ClassVar[str] = "lifecycle"

    enabled: bool = False
    """Declare the training pipeline (validate, train, evaluate, gate, register) and the model package group."""
    processing_instance_type: InstanceType = "ml.m5.large"
    """Instance type of the pipeline's validate and evaluate steps (CPU is enough)."""
    max_auc_drop: Fraction = 0.01
    """Gate: the candidate's AUC may be at most this much below the champion's."""
    max_accuracy_drop: Fraction = 0.02
    """Gate: the candidate's accuracy may be at most this much below the champion's."""
    max_log_loss_increase: Fraction = 0.05
    """Gate: the candidate's log loss may be at most this much above the champion's."""
    min_auc: Fraction = 0.5
    """Gate: the lowest AUC a candidate may have, with or without a champion."""
    min_accuracy: Fraction = 0.5
    """Gate: the lowest accuracy a candidate may have, with or without a champion."""
    sensitive_attribute: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """Gate: column of the held-out data to compute fairness over (unset: no fairness checks)."""
    positive_class: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """Gate: the favourable class for fairness (unset: the last class of the model)."""
    max_demographic_parity_difference: Fraction = 0.2
    """Gate: the largest allowed difference between groups' rates of predicting the positive class."""
    max_equal_opportunity_difference: Fraction = 0.2
    """Gate: the largest allowed difference between groups' true positive rates."""
    max_rmse_increase: Fraction = 0.05
    """Gate (regression models): the candidate's RMSE may exceed the champion's by at most this fraction of it."""
    max_mae_increase: Fraction = 0.05
    """Gate (regression models): the candidate's MAE may exceed the champion's by at most this fraction of it."""
    max_r2_drop: Fraction = 0.02
    """Gate (regression models): the candidate's R2 may be at most this much below the champion's."""
    min_r2: Fraction = 0.0
    """Gate (regression models): the lowest R2 a candidate may have (0: no better than predicting the mean)."""
    max_pruning_accuracy_drop: Fraction = 0.02
    """Gate (pruned models): accuracy may be at most this much below the same model before pruning."""
    max_pruning_rmse_increase: Fraction = 0.05
    """Gate (pruned regression models): RMSE may exceed the unpruned model's by at most this fraction of it."""
    max_drift_distance: Fraction | None = None
    """Validation: drift distance allowed per feature against the champion (unset: the baseline constraints')."""
    champion_model_data_url: S3Uri | None = None
    """S3 prefix of the approved model the pipeline compares against (unset: none yet; a start can override it)."""
    schedule: Annotated[str, Field(pattern=r"^(rate|cron)\(.+\)$")] | None = None
    """EventBridge Scheduler expression that starts the pipeline, e.g. `cron(0 3 ? * MON *)` (unset: none)."""
    retrain_on_drift: Literal["off", "retrain"] = "off"
    """`retrain`: the drift-violations alarm going to ALARM starts the pipeline (needs mlplatform:monitorBackend
    pipeline, whose alarm it is); `off`: the alarm only notifies."""
    registry_reader_accounts: list[Annotated[str, Field(pattern=r"^[0-9]{12}$")]] = Field(default_factory=list)
    """AWS accounts (a prod account) allowed to read and deploy this stack's model package versions."""
    retrain_on_new_data: bool = False
    """Start a run when new training data is complete: an object named mlplatform:lifecycleNewDataMarker created
    under mlplatform:trainingTrainPrefix of the data bucket (S3 -> EventBridge). Turns on the data bucket's
    EventBridge notifications."""
    new_data_marker: Annotated[str, Field(pattern=r"^\.[A-Za-z0-9._-]{1,63}$")] = ".ready"
    """Name of the object that marks an upload complete (one run per marker, not per data file). It starts with
    `.` because the training and validate steps skip dot-files in a channel."""
    tracking: bool = False
    """Experiment tracking: a SageMaker managed MLflow tracking server; each pipeline run's Evaluate step records
    the candidate's parameters, per-epoch metrics, evaluation and files there, and the model package keeps the
    run id (needs mlplatform:lifecycleEnabled; a server is billed by the hour while it runs)."""
    tracking_server_size: Literal["Small", "Medium", "Large"] = "Small"
    """Size of the MLflow tracking server (CreateMlflowTrackingServer's TrackingServerSize)."""
    tracking_mlflow_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")] | None = None
    """MLflow version of the tracking server, e.g. `3.0` (unset: SageMaker's default); the training image's client
    is mlflow-skinny 3.x."""
    tracking_maintenance_window: (
        Annotated[str, Field(pattern=r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01][0-9]|2[0-3]):[0-5][0-9]$")] | None
    ) = None
    """Weekly maintenance window start of the tracking server, `Day:HH:MM` in UTC, e.g. `Tue:03:30` (unset: AWS
    picks one)."""

    @model_validator(mode="after")
    def _rules(self) -> LifecycleSettings:
        if self.champion_model_data_url is not None and not self.champion_model_data_url.endswith("/"):
            raise ValueError(
                "mlplatform:lifecycleChampionModelDataUrl must be the S3 prefix of the model files ending with '/', "
                f"got {self.champion_model_data_url!r}"
            )
        return self


class BatchSettings(_Section):
    """Batch Transform (components/batch.py): the serving model scores the files under an input prefix of the
    data bucket into an output prefix, as a SageMaker Pipeline's Transform step. Off by default, so a stack
    without it plans exactly as before."""

    prefix: ClassVar[str] = "batch"

    enabled: bool = False
    """Declare the batch pipeline (a Transform step with the stack's serving model) and, with a schedule, what
    starts it."""
    input_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")] = "batch/input/"
    """Key prefix in the data bucket whose files are scored (one record per line)."""
    output_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")] = "batch/output/"
    """Key prefix in the data bucket for the answers; each run writes under `<prefix><execution id>/`."""
    content_type: Literal["text/csv", "application/jsonlines"] = "text/csv"
    """Format of the input files; the answers are written in the same format."""
    instance_type: InstanceType = "ml.m5.large"
    """Instance type of the transform job."""
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    """Instances of the transform job; SageMaker splits the input files between them."""
    max_payload_in_mb: Annotated[int, Field(ge=1, le=6)] | None = None
    """Largest request body SageMaker sends (MaxPayloadInMB); at most 6, the serving container's body limit.
    Unset: the container's answer on GET /execution-parameters (6)."""
    max_concurrent_transforms: Annotated[int, Field(ge=1, le=100)] | None = None
    """Requests in flight per instance (MaxConcurrentTransforms). Unset: the container's answer on GET
    /execution-parameters (one per worker, i.e. per core)."""
    join_input: bool = False
    """Join each answer to its input record (DataProcessing.JoinSource Input): CSV rows get the answer's cells
    appended; JSON Lines objects get a `SageMakerOutput` key."""
    invocations_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 600
    """How long the job waits for one /invocations answer before retrying it once (ModelClientConfig)."""
    schedule: Annotated[str, Field(pattern=r"^(rate|cron|at)\(.+\)$")] | None = None
    """EventBridge Scheduler expression that starts the batch pipeline, e.g. `cron(0 2 * * ? *)` (unset: it is
    started by hand or by CI)."""

    @model_validator(mode="after")
    def _rules(self) -> BatchSettings:
        if self.input_prefix.startswith(self.output_prefix) or self.output_prefix.startswith(self.input_prefix):
            raise ValueError(
                f"mlplatform:batchInputPrefix ({self.input_prefix!r}) and mlplatform:batchOutputPrefix "
                f"({self.output_prefix!r}) must not contain each other: a run would score its own answers next time"
            )
        payload, concurrent = self.max_payload_in_mb, self.max_concurrent_transforms
        if payload is not None and concurrent is not None and payload * concurrent > 100:
            raise ValueError(
                f"mlplatform:batchMaxPayloadInMb x mlplatform:batchMaxConcurrentTransforms ({payload} x {concurrent})"
                " must be at most 100 MB (CreateTransformJob's limit)"
            )
        return self


SECTIONS: dict[str, type[_Section]] = {
    "project": ProjectSettings,
    "storage": StorageSettings,
    "images": ImageSettings,
    "training": TrainingSettings,
    "model": ModelSourceSettings,
    "endpoint": EndpointSettings,
    "rollout": RolloutSettings,
    "capture": CaptureSettings,
    "autoscaling": AutoscalingSettings,
    "alarms": AlarmSettings,
    "monitoring": MonitoringSettings,
    "policy": PolicySettings,
    "serving": ServingSettings,
    "kubernetes": KubernetesSettings,
    "lifecycle": LifecycleSettings,
    "batch": BatchSettings,
    "cost": CostSettings,
}


class StackSettings(BaseModel):
    """Everything one stack is configured with. Build it with `load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stack: str
    project: ProjectSettings
    storage: StorageSettings
    images: ImageSettings
    training: TrainingSettings
    model: ModelSourceSettings
    endpoint: EndpointSettings
    rollout: RolloutSettings
    capture: CaptureSettings
    autoscaling: AutoscalingSettings
    alarms: AlarmSettings
    monitoring: MonitoringSettings
    policy: PolicySettings
    serving: ServingSettings
    kubernetes: KubernetesSettings
    lifecycle: LifecycleSettings = LifecycleSettings()
    batch: BatchSettings = BatchSettings()
    cost: CostSettings

    @model_validator(mode="after")
    def _cross_section_rules(self) -> StackSettings:
        errors = rollout_errors(self.rollout, self.endpoint, self.alarms) + autoscaling_errors(
            self.autoscaling, self.endpoint
        )
        if self.model.source == "train" and not self.images.build and self.images.training is None:
            errors.append("model source 'train' needs a training image: build images or set mlplatform:imagesTraining")
        if self.project.environment == "prod" and not self.project.protect:
            errors.append("mlplatform:protect must be true in a prod environment (stateful resources stay protected)")
        if self.monitoring.backend != "none" and not self.capture.enabled:
            errors.append(
                f"mlplatform:monitorBackend {self.monitoring.backend} reads captured data: set "
                "mlplatform:captureEnabled to true or mlplatform:monitorBackend to none"
            )
        if self.project.environment == "prod" and self.storage.force_destroy:
            errors.append("mlplatform:storageForceDestroy must be false in a prod environment")
        errors += kubernetes_errors(self.serving, self.kubernetes, self.model, self.stack)
        if self.model.source == "registry" and self.is_prod and self.model.package_version is None:
            errors.append(
                "mlplatform:modelSource registry in a prod environment needs mlplatform:modelPackageVersion: prod "
                "deploys a pinned, reviewed version, never whatever was approved last"
            )
        if self.lifecycle.enabled and self.images.training is None and not self.images.build:
            errors.append(
                "mlplatform:lifecycleEnabled needs a training image: build images or set mlplatform:imagesTraining"
            )
        if self.lifecycle.retrain_on_new_data and not self.lifecycle.enabled:
            errors.append(
                "mlplatform:lifecycleRetrainOnNewData true starts the training pipeline: set "
                "mlplatform:lifecycleEnabled true too, or mlplatform:lifecycleRetrainOnNewData false"
            )
        if self.lifecycle.tracking and not self.lifecycle.enabled:
            errors.append(
                "mlplatform:lifecycleTracking true records the training pipeline's runs: set "
                "mlplatform:lifecycleEnabled true too, or mlplatform:lifecycleTracking false"
            )
        if self.lifecycle.retrain_on_drift == "retrain" and (
            not self.lifecycle.enabled or self.monitoring.backend != "pipeline"
        ):
            errors.append(
                "mlplatform:lifecycleRetrainOnDrift retrain needs mlplatform:lifecycleEnabled true and "
                "mlplatform:monitorBackend pipeline (the drift-violations alarm it listens to)"
            )
        if self.cost.idle_alarm_hours and self.serving.target == "kubernetes":
            errors.append(
                f"mlplatform:costIdleAlarmHours ({self.cost.idle_alarm_hours}) watches the SageMaker endpoint, "
                "which mlplatform:servingTarget kubernetes does not create: set it to 0 or serve on sagemaker/both"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def is_prod(self) -> bool:
        return self.project.environment == "prod"


def rollout_errors(rollout: RolloutSettings, endpoint: EndpointSettings, alarms: AlarmSettings) -> list[str]:
    """Blue/green rules SageMaker or the provider would otherwise reject minutes into a deployment.

    Each message says what to change. The rules: canary/linear need at least two instances (a step is a
    share of capacity, and one instance cannot be split); the bake must cover one full alarm window, or a
    rollback alarm cannot fire before the next shift; the execution timeout must exceed the sum of all waits;
    the whole rollout must fit the provider's wait for InService.
    """
    errors: list[str] = []
    if rollout.style in ("CANARY", "LINEAR") and endpoint.instance_count < 2:
        errors.append(
            f"mlplatform:rolloutStyle {rollout.style} needs mlplatform:endpointInstanceCount >= 2 "
            f"(got {endpoint.instance_count}); raise the count or use ALL_AT_ONCE"
        )
    window = alarms.alarm_window_seconds()
    if rollout.bake_seconds < window:
        errors.append(
            f"mlplatform:rolloutBakeSeconds ({rollout.bake_seconds}) must be at least the alarm window "
            f"(mlplatform:alarmsPeriodSeconds x mlplatform:alarmsEvaluationPeriods = {window}), "
            "or a rollback alarm cannot fire before traffic moves on"
        )
    waits = rollout.total_wait_seconds()
    if rollout.max_execution_seconds <= waits:
        errors.append(
            f"mlplatform:rolloutMaxExecutionSeconds ({rollout.max_execution_seconds}) must exceed the sum of all "
            f"waits ({rollout.shift_steps()} x bake {rollout.bake_seconds} + termination "
            f"{rollout.termination_wait_seconds} = {waits}); raise it (at most "
            f"{MAX_ROLLOUT_EXECUTION_TIMEOUT_SECONDS}) or shorten the waits"
        )
    longest = rollout.longest_duration_seconds()
    if longest > PROVIDER_ENDPOINT_WAIT_SECONDS:
        errors.append(
            f"a {rollout.style} rollout can take {longest // 60} min (provisioning "
            f"{FLEET_PROVISIONING_ALLOWANCE_SECONDS // 60} min + waits {waits // 60} min), longer than the "
            f"provider waits for the endpoint ({PROVIDER_ENDPOINT_WAIT_SECONDS // 60} min); shorten "
            "mlplatform:rolloutBakeSeconds or mlplatform:rolloutTerminationWaitSeconds, or use fewer linear steps"
        )
    return errors


def autoscaling_errors(autoscaling: AutoscalingSettings, endpoint: EndpointSettings) -> list[str]:
    errors: list[str] = []
    if autoscaling.enabled and not (autoscaling.min_capacity <= endpoint.instance_count <= autoscaling.max_capacity):
        errors.append(
            f"mlplatform:endpointInstanceCount ({endpoint.instance_count}) must lie between "
            f"mlplatform:autoscalingMinCapacity ({autoscaling.min_capacity}) and "
            f"mlplatform:autoscalingMaxCapacity ({autoscaling.max_capacity})"
        )
    return errors


# --- reading config ------------------------------------------------------------------------------------------


def config_key(section: type[_Section], field: str) -> str:
    """The `mlplatform:` key of a section field: (`RolloutSettings`, `bake_seconds`) -> `rolloutBakeSeconds`."""
    camel = to_camel(field)
    return f"{section.prefix}{camel[0].upper()}{camel[1:]}" if section.prefix else camel


# Keys read from other namespaces, and the field they fill.
_FOREIGN_KEYS = {"aws:region": ("project", "region")}


def all_keys() -> dict[str, tuple[str, str]]:
    """Every accepted `mlplatform:` key (without the namespace) -> (section, field)."""
    keys: dict[str, tuple[str, str]] = {}
    for name, section in SECTIONS.items():
        for field in section.model_fields:
            if (name, field) in _FOREIGN_KEYS.values():
                continue
            keys[config_key(section, field)] = (name, field)
    return keys


def is_secret(section: type[_Section], field: str) -> bool:
    """Fields marked `json_schema_extra={"secret": True}`: declared secret in Pulumi.yaml, never echoed in errors."""
    extra = section.model_fields[field].json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def secret_config_keys() -> set[str]:
    """The full keys of settings that hold credentials (set with `pulumi config set --secret`)."""
    return {
        f"{PROJECT}:{config_key(cls, field)}"
        for cls in SECTIONS.values()
        for field in cls.model_fields
        if is_secret(cls, field)
    }


def _is_structured(section: type[_Section], field: str) -> bool:
    annotation = str(section.model_fields[field].annotation)
    return annotation.startswith(("list", "dict", "typing.List", "typing.Dict"))


def _describe_error(err: Mapping[str, Any], section: str) -> str:
    """One pydantic error as 'mlplatform:key: got VALUE; allowed ...'."""
    cls = SECTIONS[section]
    loc = [str(p) for p in err.get("loc", ())]
    field_alias = loc[0] if loc else ""
    field = next((f for f in cls.model_fields if to_camel(f) == field_alias or f == field_alias), None)
    if field is None:
        key = f"{PROJECT}:{config_key(cls, field_alias)}" if field_alias else f"{PROJECT}:{cls.prefix or 'project'}*"
    else:
        foreign = next((k for k, v in _FOREIGN_KEYS.items() if v == (section, field)), None)
        key = foreign or f"{PROJECT}:{config_key(cls, field)}"
    if len(loc) > 1:
        key += "[" + "][".join(loc[1:]) + "]"
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"{key}: required but not set"
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    got = err.get("input")
    if field is not None and is_secret(cls, field):
        got = "(secret value not shown)"
    allowed = err.get("msg", "")
    if kind == "literal_error" and "expected" in ctx:
        allowed = f"allowed values are {ctx['expected']}"
    elif kind == "value_error":
        # Section validators write whole sentences naming their keys; a field validator's message gets the key.
        message = str(ctx.get("error", allowed))
        return message if field is None or key.split("[")[0] in message else f"{key}: {message}"
    return f"{key}: got {got!r}; {allowed[0].lower() + allowed[1:] if allowed else 'invalid'}"


UNSET = ""
"""How Pulumi.yaml spells "not set" for a key whose setting defaults to nothing (docs/configuration.md).

The CLI refuses a stack that lacks a declared project key without a default, so every optional key declares
one; `""` is the one default a string key can carry that no real value uses. The loader reads it as unset."""


def load_settings(
    raw: Mapping[str, Any], stack: str, secret_keys: frozenset[str] | set[str] | None = None
) -> StackSettings:
    """Parse a stack's raw config (keys with namespaces, values as Pulumi gives them) into `StackSettings`.

    `secret_keys` are the keys the engine passed as secrets (`pulumi config set --secret`); a field marked secret
    must be one of them when set. None skips that check (callers that build a config by hand).
    Raises `SettingsError` listing every problem found, each naming the key, the bad value and what is allowed.
    """
    accepted = all_keys()
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    problems: list[str] = []
    for full_key, value in raw.items():
        if full_key in _FOREIGN_KEYS:
            section, field = _FOREIGN_KEYS[full_key]
            values[section][field] = value
            continue
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        if key not in accepted:
            close = [k for k in accepted if k.lower() == key.lower() or _edit_distance(k, key) <= 2]
            hint = f" (did you mean {', '.join(f'{PROJECT}:{c}' for c in close)}?)" if close else ""
            problems.append(f"{full_key}: unknown key{hint}; see the configuration reference in docs/reference.md")
            continue
        section, field = accepted[key]
        cls = SECTIONS[section]
        if value == UNSET and cls.model_fields[field].default is None:
            continue  # Pulumi.yaml's default for "not set"
        if secret_keys is not None and is_secret(cls, field) and full_key not in secret_keys:
            problems.append(
                f"{full_key}: set as plain text; it holds credentials, so set it with "
                f"`pulumi config set --secret {full_key} ...` (the value is not shown here)"
            )
            continue
        if isinstance(value, str) and _is_structured(cls, field):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(f"{full_key}: got {value!r}; expected a JSON/YAML list or map ({exc.msg})")
                continue
        values[section][field] = value

    sections: dict[str, _Section] = {}
    for name, cls in SECTIONS.items():
        try:
            sections[name] = cls.model_validate(values[name])
        except ValidationError as exc:
            problems.extend(_describe_error(e, name) for e in exc.errors())
    if problems:
        raise SettingsError(_format_problems(stack, problems))
    try:
        return StackSettings.model_validate({"stack": stack, **sections})
    except ValidationError as exc:
        raise SettingsError(
            _format_problems(stack, [str((e.get("ctx") or {}).get("error", e["msg"])) for e in exc.errors()])
        ) from None


def _format_problems(stack: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"invalid configuration for stack {stack!r}:\n{lines}"


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, for 'did you mean' hints on misspelled keys."""
    a, b = a.lower(), b.lower()
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def load_from_pulumi() -> StackSettings:
    """Read every config value the Pulumi engine passed to this program and parse it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = {}
    raw.update(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = {key for key in raw if runtime_config.is_config_secret(key)}
    return load_settings(raw, pulumi.get_stack(), secret_keys=secret_keys)
