"""`ModelTraining`: one SageMaker training job (GPU, managed spot with checkpoints) and its least-privilege role.

The job's name is a hash of everything it is created from, so an unchanged stack never retrains and any
change to the image, data, hyperparameters or instances creates a new job (and so a new model version).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.iam import sagemaker_vpc_statements, service_trust_policy
from components.settings import has_local_nvme
from components.training_check import model_prefix, training_check_hook

# The training container's own metric regexes (torch-free module): one source for the log format and the job.
from training.metrics import METRIC_DEFINITIONS, REGRESSION_METRIC_DEFINITIONS
from training.model_files import BASELINE_CONSTRAINTS, BASELINE_STATISTICS, EDGE_ARCHIVE  # docs/model-contract.md

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
"""Where the container writes checkpoints; SageMaker syncs it with the checkpoint S3 prefix (spot restarts)."""
OUTPUT_PREFIX = "training/"
"""Key prefix in the model bucket under which SageMaker writes each job's output (`<prefix><job>/output/...`)."""
CHECKPOINT_PREFIX = "checkpoints/"
"""Key prefix in the model bucket for checkpoints, one folder per job."""
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
"""CloudWatch log group SageMaker writes every training job's container logs to."""
TRAINING_METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
"""CloudWatch namespace of the metrics SageMaker parses from the logs with `metric_definitions`."""
CREATE_TIMEOUT_MARGIN_SECONDS = 30 * 60
"""Beyond the job's own limit, how long the provider keeps waiting (provisioning, upload of the model)."""

JOB_NAME_MAX = 63
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_JOB_HASH_LENGTH = 16
# SageMaker's limits on hyperparameters (CreateTrainingJob API reference).
_MAX_HYPERPARAMETERS = 100
_MAX_HYPERPARAMETER_KEY = 256
_MAX_HYPERPARAMETER_VALUE = 2500


class TrainingConfigError(ValueError):
    """A training job setting SageMaker would reject (or that would lose work); the message says what to change."""


def training_job_name(prefix: str, spec: Mapping[str, Any]) -> str:
    """`<prefix>-<16 hex of sha256(spec)>`, cut to SageMaker's 63 characters and its name pattern.

    `spec` holds every input of the job: equal specs give equal names (no new job), any change a new name.
    """
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    base = re.sub(r"[^a-zA-Z0-9]+", "-", prefix).strip("-")
    base = base[: JOB_NAME_MAX - 1 - _JOB_HASH_LENGTH].rstrip("-") or "train"
    name = f"{base}-{digest[:_JOB_HASH_LENGTH]}"
    if not JOB_NAME_PATTERN.match(name):  # the construction above guarantees it; reaching this is our bug
        raise RuntimeError(f"built an invalid training job name {name!r} from prefix {prefix!r}")
    return name


def create_timeout(max_runtime_seconds: int, spot: bool, max_wait_seconds: int) -> str:
    """The provider's create timeout as a Go duration: the job's own limit plus a margin, in whole minutes."""
    limit = max_wait_seconds if spot else max_runtime_seconds
    return f"{math.ceil((limit + CREATE_TIMEOUT_MARGIN_SECONDS) / 60)}m"


def validate_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameters as SageMaker takes them: a map of non-empty string keys to string values, within limits."""
    if len(hyperparameters) > _MAX_HYPERPARAMETERS:
        raise TrainingConfigError(
            f"hyperparameters: {len(hyperparameters)} given; SageMaker accepts at most {_MAX_HYPERPARAMETERS}"
        )
    result: dict[str, str] = {}
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_HYPERPARAMETER_KEY:
            raise TrainingConfigError(
                f"hyperparameters: key {key!r} must be a string of 1 to {_MAX_HYPERPARAMETER_KEY} characters"
            )
        if not isinstance(value, str):
            raise TrainingConfigError(
                f"hyperparameters[{key!r}]: got {value!r} ({type(value).__name__}); SageMaker passes every value "
                f"as a string, so give it as one (e.g. {json.dumps(str(value))})"
            )
        if len(value) > _MAX_HYPERPARAMETER_VALUE:
            raise TrainingConfigError(
                f"hyperparameters[{key!r}]: {len(value)} characters; at most {_MAX_HYPERPARAMETER_VALUE} are allowed"
            )
        result[key] = value
    return result


def check_spot(spot: bool, checkpoints: bool, max_runtime_seconds: int, max_wait_seconds: int) -> None:
    """Refuse spot settings that SageMaker rejects or that would throw away work on an interruption."""
    if not spot:
        return
    if not checkpoints:
        raise TrainingConfigError(
            "managed spot training needs checkpoints: an interrupted spot job restarts from the last checkpoint, "
            "and without one it starts over; enable checkpoints or turn spot off (mlplatform:trainingSpot false)"
        )
    if max_wait_seconds <= max_runtime_seconds:
        raise TrainingConfigError(
            f"spot training needs the maximum wait ({max_wait_seconds} s, mlplatform:trainingMaxWaitSeconds) to "
            f"exceed the maximum runtime ({max_runtime_seconds} s, mlplatform:trainingMaxRuntimeSeconds): the wait "
            "covers waiting for capacity plus training"
        )


class ModelTrainingArgs(TypedDict):
    image_ref: pulumi.Input[str]
    """Training image by digest (`REPO@sha256:...`)."""
    image_repository_arn: pulumi.Input[str] | None
    """ARN of the ECR repository the image is pulled from (the role may pull from it only)."""
    data_bucket: pulumi.Input[str]
    """Bucket holding the training and validation data."""
    model_bucket: pulumi.Input[str]
    """Bucket receiving the model files, the baseline and the checkpoints."""
    kms_key_arn: pulumi.Input[str]
    """Project KMS key: encrypts the output, the volume (where allowed), and the buckets the job reads."""
    instance_type: str
    """Training instance type, e.g. `ml.g5.xlarge`."""
    instance_count: int
    """Training instances; more than one runs data-parallel training."""
    volume_size_gb: int
    """EBS volume per instance, in GB."""
    max_runtime_seconds: int
    """Stop the job after this many seconds of training."""
    spot: bool
    """Use managed spot training."""
    max_wait_seconds: int
    """Longest time to wait for spot capacity plus training; must exceed `max_runtime_seconds` with spot."""
    hyperparameters: Mapping[str, str]
    """Passed to the container as `/opt/ml/input/config/hyperparameters.json` (string values)."""
    train_prefix: str
    """Key prefix of the `train` channel in the data bucket (ends with `/`)."""
    validation_prefix: str
    """Key prefix of the `validation` channel in the data bucket (ends with `/`)."""
    subnet_ids: NotRequired[Sequence[str]]
    """VPC subnets for the job (optional; security groups required with them)."""
    security_group_ids: NotRequired[Sequence[str]]
    """VPC security groups for the job."""
    checkpoints: NotRequired[bool]
    """Sync `/opt/ml/checkpoints` with S3 (default true; spot training requires it)."""
    enable_network_isolation: NotRequired[bool]
    """Run the container without network access (default true): data and model move through SageMaker only."""
    metric_definitions: NotRequired[Sequence[Mapping[str, str]]]
    """`{"Name", "Regex"}` pairs SageMaker parses from the logs (default: training/metrics.py)."""
    run_id: NotRequired[str]
    """Folded into the job name when set: a new id trains again with unchanged inputs (after a failed run)."""
    inter_container_encryption: NotRequired[bool]
    """Encrypt traffic between the hosts of a multi-instance job (default true)."""
    check_completion: NotRequired[bool]
    """After the job is created, fail the deployment unless it left a complete model (default true)."""


class ModelTraining(pulumi.ComponentResource):
    """A SageMaker training job, its IAM role, and where its model files and baseline land in S3.

    Example::

        training = ModelTraining("mlplatform-dev", {"image_ref": image.image_ref, ...})
        pulumi.export("modelDataUri", training.model_data_uri)
    """

    training_job_name: pulumi.Output[str]
    """Name of the training job (a hash of its inputs; resolves once the job has completed)."""
    model_data_uri: pulumi.Output[str]
    """S3 prefix of the uncompressed model files: `s3://<model bucket>/training/<job>/output/model/`."""
    baseline_statistics_uri: pulumi.Output[str]
    """S3 URI of the baseline `statistics.json` the job wrote beside the model."""
    baseline_constraints_uri: pulumi.Output[str]
    """S3 URI of the baseline `constraints.json` the job wrote beside the model."""
    edge_bundle_uri: pulumi.Output[str]
    """S3 URI of the edge bundle `edge.tar.gz` the job wrote beside the model (training/edge.py)."""
    checkpoint_uri: pulumi.Output[str]
    """S3 prefix SageMaker syncs `/opt/ml/checkpoints` with."""
    role_arn: pulumi.Output[str]
    """ARN of the role the job runs as."""

    def __init__(self, name: str, args: ModelTrainingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:training:ModelTraining", name, None, opts)
        instance_type = args["instance_type"]
        spot = args["spot"]
        checkpoints = args.get("checkpoints", True)
        check_spot(spot, checkpoints, args["max_runtime_seconds"], args["max_wait_seconds"])
        hyperparameters = validate_hyperparameters(args["hyperparameters"])
        for key in ("train_prefix", "validation_prefix"):
            prefix = args[key]
            if not prefix.endswith("/") or prefix.startswith("/"):
                raise TrainingConfigError(f"{key}: got {prefix!r}; give a key prefix like 'datasets/demo/train/'")
        subnets = list(args.get("subnet_ids", ()))
        security_groups = list(args.get("security_group_ids", ()))
        if bool(subnets) != bool(security_groups):
            raise TrainingConfigError("subnet_ids and security_group_ids go together: give both or neither")
        if args["image_repository_arn"] is None:
            raise TrainingConfigError(
                "the training image must live in Amazon ECR (SageMaker pulls training images from ECR); "
                "build it (mlplatform:imagesBuild true) or set mlplatform:imagesTraining to an ECR image by digest"
            )
        network_isolation = args.get("enable_network_isolation", True)
        metric_definitions: list[aws.sagemaker.TrainingJobAlgorithmSpecificationMetricDefinitionArgsDict] = [
            {"name": m["Name"], "regex": m["Regex"]}
            for m in args.get(
                "metric_definitions",
                # A regression run logs RMSE, MAE and R2 instead of AUC and accuracy (training/metrics.py).
                REGRESSION_METRIC_DEFINITIONS if hyperparameters.get("task") == "regression" else METRIC_DEFINITIONS,
            )
        ]
        # SageMaker refuses a volume KMS key on instance types whose storage is local NVMe (g4dn, g5, p4d, the
        # *d families): that storage is hardware-encrypted instance store, not an EBS volume
        # (docs/architecture.md, decision 4).
        volume_kms = not has_local_nvme(instance_type)

        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        region = aws.get_region_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke)

        role = aws.iam.Role(
            f"{name}-role",
            description=f"{name}: runs the SageMaker training job",
            assume_role_policy=identity.account_id.apply(lambda a: service_trust_policy("sagemaker.amazonaws.com", a)),
            opts=pulumi.ResourceOptions(parent=self),
        )

        data_uri = pulumi.Output.concat("s3://", args["data_bucket"], "/")
        output_path = pulumi.Output.concat("s3://", args["model_bucket"], "/", OUTPUT_PREFIX)
        static_spec: dict[str, Any] = {
            "hyperparameters": hyperparameters,
            "instance_type": instance_type,
            "instance_count": args["instance_count"],
            "volume_size_gb": args["volume_size_gb"],
            "volume_kms": volume_kms,
            "max_runtime_seconds": args["max_runtime_seconds"],
            "spot": spot,
            "max_wait_seconds": args["max_wait_seconds"] if spot else None,
            "checkpoints": checkpoints,
            "network_isolation": network_isolation,
            "subnets": sorted(subnets),
            "security_groups": sorted(security_groups),
            "metric_definitions": metric_definitions,
            "channels": {"train": args["train_prefix"], "validation": args["validation_prefix"]},
        }
        run_id = args.get("run_id", "")
        if run_id:
            # Only when set, so that stacks that never used it keep their job (and model) names.
            static_spec["run_id"] = run_id
        inter_container_encryption = args.get("inter_container_encryption", True)

        # The name is a value computed from other values (no resource is created here). Every input that
        # forces SageMaker to create a new job is part of it: a replacement under the same name would fail,
        # because training job names are unique in an account and region and jobs are never deleted.
        def name_from(values: list[Any]) -> str:
            image, data, output, key, role_arn = values
            spec = {**static_spec, "image": image, "data": data, "output": output, "kms": key, "role": role_arn}
            return training_job_name(name, spec)

        job_name = pulumi.Output.all(args["image_ref"], data_uri, output_path, args["kms_key_arn"], role.arn).apply(
            name_from
        )
        self.checkpoint_uri = pulumi.Output.concat("s3://", args["model_bucket"], "/", CHECKPOINT_PREFIX, job_name, "/")

        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(
                job_name,
                args["data_bucket"],
                args["model_bucket"],
                args["kms_key_arn"],
                args["image_repository_arn"],
                identity.account_id,
                region.region,
                partition.partition,
            ).apply(
                lambda v: training_policy(
                    job_name=v[0],
                    data_bucket=v[1],
                    model_bucket=v[2],
                    kms_key_arn=v[3],
                    repository_arn=v[4],
                    account=v[5],
                    region=v[6],
                    partition=v[7],
                    data_prefixes=[args["train_prefix"], args["validation_prefix"]],
                    volume_kms=volume_kms,
                    subnet_ids=subnets,
                    security_group_ids=security_groups,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        resource_config: aws.sagemaker.TrainingJobResourceConfigArgsDict = {
            "instance_type": instance_type,
            "instance_count": args["instance_count"],
            "volume_size_in_gb": args["volume_size_gb"],
        }
        if volume_kms:
            resource_config["volume_kms_key_id"] = args["kms_key_arn"]
        stopping: aws.sagemaker.TrainingJobStoppingConditionArgsDict = {
            "max_runtime_in_seconds": args["max_runtime_seconds"]
        }
        if spot:
            # SageMaker accepts MaxWaitTimeInSeconds only with managed spot training.
            stopping["max_wait_time_in_seconds"] = args["max_wait_seconds"]

        job = aws.sagemaker.TrainingJob(
            f"{name}-job",
            training_job_name=job_name,
            role_arn=role.arn,
            algorithm_specification={
                "training_image": args["image_ref"],
                "training_input_mode": "File",
                "metric_definitions": metric_definitions,
            },
            hyper_parameters=hyperparameters,
            input_data_configs=[
                _channel("train", args["data_bucket"], args["train_prefix"]),
                _channel("validation", args["data_bucket"], args["validation_prefix"]),
            ],
            # NONE: SageMaker uploads /opt/ml/model file by file instead of one model.tar.gz, so the Model can
            # load the prefix directly and the monitor reads the baseline files without unpacking anything.
            output_data_config={
                "s3_output_path": output_path,
                "compression_type": "NONE",
                "kms_key_id": args["kms_key_arn"],
            },
            resource_config=resource_config,
            stopping_condition=stopping,
            enable_managed_spot_training=spot,
            checkpoint_config=(
                {"s3_uri": self.checkpoint_uri, "local_path": CHECKPOINT_LOCAL_PATH} if checkpoints else None
            ),
            enable_network_isolation=network_isolation,
            # Data-parallel hosts exchange gradients; encrypt that traffic whenever there is more than one.
            enable_inter_container_traffic_encryption=inter_container_encryption and args["instance_count"] > 1,
            vpc_config={"subnets": subnets, "security_group_ids": security_groups} if subnets else None,
            # The provider waits for the job to finish: allow the job's own limit plus provisioning and upload.
            timeouts={
                "create": create_timeout(args["max_runtime_seconds"], spot, args["max_wait_seconds"]),
            },
            # The role's permissions must exist before SageMaker assumes it, or the job fails at once.
            # retain_on_delete: a job replaced by a new one (new inputs or run id) stays in SageMaker as the
            # record of the model it trained (the provider's Delete calls DeleteTrainingJob).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[policy],
                retain_on_delete=True,
                hooks=self._completion_hooks(name, run_id, args.get("check_completion", True)),
            ),
        )

        self.training_job_name = job.training_job_name
        self.role_arn = role.arn
        # SageMaker's documented layout for a job's output is `<S3OutputPath>/<job>/output/model.tar.gz`
        # (ModelArtifacts.S3ModelArtifacts; the SageMaker Python SDK's Estimator.model_data builds exactly
        # that path before a job has run). With CompressionType NONE the same `output/model` location becomes a
        # prefix holding the files of /opt/ml/model one by one; the SDK then deploys S3ModelArtifacts plus a
        # trailing "/" as an S3Prefix with CompressionType None ("SageMaker Hosting mandates presence of trailing
        # forward slash"). Sources: AWS docs "Uncompressed model output" (model-train-storage-uncompressed),
        # API_OutputDataConfig, API_S3ModelDataSource; aws/sagemaker-python-sdk src/sagemaker/estimator.py
        # (model_data). The docs do not print the uncompressed prefix verbatim: check it once against
        # DescribeTrainingJob.ModelArtifacts.S3ModelArtifacts of a real job.
        self.model_data_uri = pulumi.Output.all(output_path, job.training_job_name).apply(
            lambda v: model_prefix(v[0], v[1])
        )
        self.baseline_statistics_uri = pulumi.Output.concat(self.model_data_uri, BASELINE_STATISTICS)
        self.baseline_constraints_uri = pulumi.Output.concat(self.model_data_uri, BASELINE_CONSTRAINTS)
        self.edge_bundle_uri = pulumi.Output.concat(self.model_data_uri, EDGE_ARCHIVE)
        self.register_outputs(
            {
                "training_job_name": self.training_job_name,
                "model_data_uri": self.model_data_uri,
                "baseline_statistics_uri": self.baseline_statistics_uri,
                "baseline_constraints_uri": self.baseline_constraints_uri,
                "edge_bundle_uri": self.edge_bundle_uri,
                "checkpoint_uri": self.checkpoint_uri,
                "role_arn": self.role_arn,
            }
        )

    @staticmethod
    def _completion_hooks(name: str, run_id: str, enabled: bool) -> pulumi.ResourceHookBinding | None:
        """After the provider reports the job created, require `Completed` (or a stop after the model was written)
        and a complete model under the job's prefix (components/training_check.py). Not bound in previews."""
        if not enabled or pulumi.runtime.is_dry_run():
            return None

        def check(hook_args: pulumi.ResourceHookArgs) -> None:
            training_check_hook(hook_args, run_id=run_id)

        return pulumi.ResourceHookBinding(after_create=[pulumi.ResourceHook(f"{name}-check-training-run", check)])


def _channel(channel: str, bucket: pulumi.Input[str], prefix: str) -> aws.sagemaker.TrainingJobInputDataConfigArgsDict:
    # FullyReplicated: every host gets the whole channel. The trainer shards rows itself (by rank, per epoch),
    # which stays balanced whatever the number of objects; ShardedByS3Key would give each host a subset of
    # *objects* (one CSV means one host gets all rows, the others none), and for validation every host must
    # score the same full set so that the metrics all ranks report agree.
    return {
        "channel_name": channel,
        "input_mode": "File",
        "data_source": {
            "s3_data_source": {
                "s3_data_type": "S3Prefix",
                "s3_uri": pulumi.Output.concat("s3://", bucket, "/", prefix),
                "s3_data_distribution_type": "FullyReplicated",
            }
        },
    }


def training_policy(
    *,
    job_name: str,
    data_bucket: str,
    model_bucket: str,
    kms_key_arn: str,
    repository_arn: str,
    account: str,
    region: str,
    partition: str,
    data_prefixes: Sequence[str],
    volume_kms: bool,
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
) -> str:
    """The job role's inline policy: exactly what one training job needs, scoped to its own prefixes."""
    s3 = f"arn:{partition}:s3:::"
    output = f"{OUTPUT_PREFIX}{job_name}/"
    checkpoint = f"{CHECKPOINT_PREFIX}{job_name}/"
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListTrainingData",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"{s3}{data_bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in data_prefixes]}},
        },
        {
            "Sid": "ReadTrainingData",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"{s3}{data_bucket}/{p}*" for p in data_prefixes],
        },
        {
            "Sid": "ListOwnOutputAndCheckpoints",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"{s3}{model_bucket}",
            # SageMaker checks at CreateTrainingJob that the role may list the configured output path and the
            # checkpoint URI themselves (prefix `training/`, `checkpoints/<job>/`, with or without the slash), not
            # only keys below them: a ValidationException the provider retries as an IAM propagation delay
            # ("no identity-based policy allows the s3:ListBucket action", training_job.go Create) until it
            # times out. Listing shows key names only; reading stays limited to this job's own prefixes.
            "Condition": {
                "StringLike": {
                    "s3:prefix": [
                        OUTPUT_PREFIX,
                        OUTPUT_PREFIX.rstrip("/"),
                        f"{output}*",
                        checkpoint.rstrip("/"),
                        f"{checkpoint}*",
                    ]
                }
            },
        },
        {
            "Sid": "WriteOwnOutputAndCheckpoints",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Resource": [f"{s3}{model_bucket}/{output}*", f"{s3}{model_bucket}/{checkpoint}*"],
        },
        {
            # GetAuthorizationToken has no resource-level permissions: AWS requires Resource "*" for it.
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "PullTrainingImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": repository_arn,
        },
        {
            "Sid": "CreateLogGroup",
            "Effect": "Allow",
            "Action": "logs:CreateLogGroup",
            "Resource": log_group,
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [log_group, f"{log_group}:log-stream:{job_name}/*"],
        },
        {
            # PutMetricData has no resource-level permissions (AWS requires Resource "*"); the namespace
            # condition limits it to the training job metrics SageMaker publishes.
            "Sid": "PublishTrainingMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": TRAINING_METRICS_NAMESPACE}},
        },
        {
            # The buckets and the ECR repository are encrypted with the project key; the output is too.
            "Sid": "UseProjectKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": kms_key_arn,
        },
    ]
    if volume_kms:
        statements.append(
            {
                # SageMaker attaches the encrypted EBS volume through a grant it creates for the instance.
                "Sid": "GrantVolumeEncryption",
                "Effect": "Allow",
                "Action": "kms:CreateGrant",
                "Resource": kms_key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    if subnet_ids:
        statements += sagemaker_vpc_statements(partition, region, account, subnet_ids, security_group_ids)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
