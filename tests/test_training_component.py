"""ModelTraining under the mock runtime: spot guard, volume KMS rule, job naming, outputs and the role's policy."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pytest

from components.training import (
    JOB_NAME_PATTERN,
    ModelTraining,
    ModelTrainingArgs,
    TrainingConfigError,
    create_timeout,
    training_job_name,
)
from tests.conftest import run_components
from tools.plan import Plan
from training.metrics import METRIC_DEFINITIONS

JOB = "aws:sagemaker/trainingJob:TrainingJob"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
REPO_ARN = "arn:aws:ecr:us-east-1:111122223333:repository/mlplatform-dev-training-repo-1a2b3c4"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-training-repo-1a2b3c4@sha256:" + "a" * 64

# "*" resources AWS requires, by action: these actions have no resource-level permissions.
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
}


def _args(**changes: Any) -> ModelTrainingArgs:
    args: dict[str, Any] = {
        "image_ref": IMAGE,
        "image_repository_arn": REPO_ARN,
        "data_bucket": "mlplatform-dev-data-0a1b2c3",
        "model_bucket": "mlplatform-dev-models-0a1b2c3",
        "kms_key_arn": KEY_ARN,
        "instance_type": "ml.g5.xlarge",
        "instance_count": 1,
        "volume_size_gb": 50,
        "max_runtime_seconds": 3600,
        "spot": True,
        "max_wait_seconds": 7200,
        "hyperparameters": {"epochs": "20", "target": "label"},
        "train_prefix": "datasets/demo/train/",
        "validation_prefix": "datasets/demo/validation/",
    }
    args.update(changes)
    return args  # type: ignore[return-value]


def _plan(name: str = "mlplatform-dev", **changes: Any) -> Plan:
    def program() -> None:
        training = ModelTraining(name, _args(**changes))
        for key in (
            "training_job_name",
            "model_data_uri",
            "baseline_statistics_uri",
            "baseline_constraints_uri",
            "checkpoint_uri",
            "role_arn",
        ):
            pulumi.export(key, getattr(training, key))

    return run_components(program)


def _job(plan: Plan) -> dict[str, Any]:
    return plan.one(JOB)["inputs"]


def _policy(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.one(ROLE_POLICY)["inputs"]["policy"])


# --- spot guard --------------------------------------------------------------------------------------------


def test_spot_without_checkpoints_is_refused() -> None:
    with pytest.raises(TrainingConfigError, match="managed spot training needs checkpoints"):
        _plan(checkpoints=False)


@pytest.mark.parametrize("max_wait", [3600, 1800])
def test_spot_with_max_wait_not_above_max_runtime_is_refused(max_wait: int) -> None:
    with pytest.raises(TrainingConfigError, match=r"maximum wait \(\d+ s, mlplatform:trainingMaxWaitSeconds\)"):
        _plan(max_wait_seconds=max_wait, max_runtime_seconds=3600)


@pytest.mark.parametrize(
    "breaks",
    [{"checkpoints": False}, {"max_wait_seconds": 60}],
    ids=["without-checkpoints", "max-wait-below-runtime"],
)
def test_on_demand_training_is_exempt_from_each_spot_rule(breaks: dict[str, Any]) -> None:
    """One spot rule broken per case: a fixture breaking both would pass if only one exemption held."""
    job = _job(_plan(spot=False, **breaks))
    assert job["enableManagedSpotTraining"] is False
    assert ("checkpointConfig" in job) is breaks.get("checkpoints", True)
    assert job["stoppingCondition"] == {"maxRuntimeInSeconds": 3600}


def test_spot_job_checkpoints_to_its_own_prefix_in_the_model_bucket() -> None:
    plan = _plan()
    job = _job(plan)
    assert job["enableManagedSpotTraining"] is True
    assert job["stoppingCondition"] == {"maxRuntimeInSeconds": 3600, "maxWaitTimeInSeconds": 7200}
    name = plan.outputs["training_job_name"]
    assert job["checkpointConfig"] == {
        "s3Uri": f"s3://mlplatform-dev-models-0a1b2c3/checkpoints/{name}/",
        "localPath": "/opt/ml/checkpoints",
    }
    assert plan.outputs["checkpoint_uri"] == job["checkpointConfig"]["s3Uri"]


# --- volume KMS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("instance_type", ["ml.g5.xlarge", "ml.g4dn.xlarge", "ml.p4d.24xlarge", "ml.m5d.large"])
def test_local_nvme_instances_get_no_volume_kms_key(instance_type: str) -> None:
    plan = _plan(instance_type=instance_type)
    assert "volumeKmsKeyId" not in _job(plan)["resourceConfig"]
    assert not [s for s in _policy(plan)["Statement"] if s["Action"] == "kms:CreateGrant"]


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.p3.2xlarge", "ml.c5.2xlarge"])
def test_ebs_instances_get_the_project_key_for_their_volume(instance_type: str) -> None:
    plan = _plan(instance_type=instance_type)
    assert _job(plan)["resourceConfig"]["volumeKmsKeyId"] == KEY_ARN
    grant = next(s for s in _policy(plan)["Statement"] if s["Action"] == "kms:CreateGrant")
    assert grant["Resource"] == KEY_ARN
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


# --- job settings ------------------------------------------------------------------------------------------


def test_output_is_uncompressed_and_encrypted_with_the_project_key() -> None:
    job = _job(_plan())
    assert job["outputDataConfig"] == {
        "s3OutputPath": "s3://mlplatform-dev-models-0a1b2c3/training/",
        "compressionType": "NONE",
        "kmsKeyId": KEY_ARN,
    }


def test_container_runs_network_isolated() -> None:
    assert _job(_plan())["enableNetworkIsolation"] is True


def test_instances_volume_and_runtime_come_from_the_args() -> None:
    job = _job(_plan(instance_type="ml.p3.8xlarge", instance_count=2, volume_size_gb=200))
    assert job["resourceConfig"] == {
        "instanceType": "ml.p3.8xlarge",
        "instanceCount": 2,
        "volumeSizeInGb": 200,
        "volumeKmsKeyId": KEY_ARN,
    }
    assert job["enableInterContainerTrafficEncryption"] is True


def test_image_by_digest_runs_in_file_mode_with_the_training_metric_regexes() -> None:
    spec = _job(_plan())["algorithmSpecification"]
    assert spec["trainingImage"] == IMAGE
    assert spec["trainingInputMode"] == "File"
    assert spec["metricDefinitions"] == [{"name": m["Name"], "regex": m["Regex"]} for m in METRIC_DEFINITIONS]
    assert {m["name"] for m in spec["metricDefinitions"]} >= {"train_loss", "val_loss", "val_auc"}


def test_hyperparameters_are_passed_as_strings() -> None:
    assert _job(_plan())["hyperParameters"] == {"epochs": "20", "target": "label"}


def test_a_non_string_hyperparameter_is_refused_with_its_key() -> None:
    with pytest.raises(TrainingConfigError, match=r"hyperparameters\['epochs'\]: got 20 \(int\)"):
        _plan(hyperparameters={"epochs": 20})


def test_channels_read_the_data_prefixes_fully_replicated() -> None:
    channels = {c["channelName"]: c for c in _job(_plan(instance_count=3))["inputDataConfigs"]}
    assert set(channels) == {"train", "validation"}
    for channel, prefix in (("train", "datasets/demo/train/"), ("validation", "datasets/demo/validation/")):
        source = channels[channel]["dataSource"]["s3DataSource"]
        assert source == {
            "s3DataType": "S3Prefix",
            "s3Uri": f"s3://mlplatform-dev-data-0a1b2c3/{prefix}",
            "s3DataDistributionType": "FullyReplicated",
        }
        assert channels[channel]["inputMode"] == "File"


def test_create_timeout_covers_the_longest_the_job_may_take() -> None:
    assert _job(_plan())["timeouts"] == {"create": "150m"}  # max wait 7200 s + 30 min
    assert _job(_plan(spot=False))["timeouts"] == {"create": "90m"}  # max runtime 3600 s + 30 min
    assert create_timeout(3601, False, 0) == "91m"  # rounds up to whole minutes


def test_vpc_is_optional_and_subnets_need_security_groups() -> None:
    assert "vpcConfig" not in _job(_plan())
    job = _job(_plan(subnet_ids=["subnet-0abc"], security_group_ids=["sg-0def"]))
    assert job["vpcConfig"] == {"subnets": ["subnet-0abc"], "securityGroupIds": ["sg-0def"]}
    with pytest.raises(TrainingConfigError, match="go together"):
        _plan(subnet_ids=["subnet-0abc"])


def test_a_training_image_outside_ecr_is_refused() -> None:
    with pytest.raises(TrainingConfigError, match="must live in Amazon ECR"):
        _plan(image_repository_arn=None)


# --- job name ----------------------------------------------------------------------------------------------


def test_same_inputs_give_the_same_job_name() -> None:
    assert _plan().outputs["training_job_name"] == _plan().outputs["training_job_name"]


@pytest.mark.parametrize(
    "change",
    [
        {"hyperparameters": {"epochs": "21", "target": "label"}},
        {"image_ref": IMAGE.replace("a" * 64, "b" * 64)},
        {"train_prefix": "datasets/v2/train/"},
        {"validation_prefix": "datasets/v2/validation/"},
        {"data_bucket": "other-data-bucket"},
        {"instance_type": "ml.g5.2xlarge"},
        {"instance_count": 2},
        {"volume_size_gb": 100},
        {"max_runtime_seconds": 3000},
        {"spot": False},
    ],
    ids=lambda c: next(iter(c)),
)
def test_changed_inputs_give_a_new_job_name(change: dict[str, Any]) -> None:
    assert _plan(**change).outputs["training_job_name"] != _plan().outputs["training_job_name"]


def test_job_name_is_a_valid_sagemaker_name_of_at_most_63_characters() -> None:
    name = _plan().outputs["training_job_name"]
    assert JOB_NAME_PATTERN.fullmatch(name) and len(name) <= 63
    assert re.fullmatch(r"mlplatform-dev-[0-9a-f]{16}", name)
    assert _job(_plan())["trainingJobName"] == name


@pytest.mark.parametrize("prefix", ["x" * 200, "a_b.c/d", "--lead-and-trail--", "___", "mlplatform-prod-eu-west-1"])
def test_job_names_from_any_component_name_are_valid(prefix: str) -> None:
    name = training_job_name(prefix, {"k": "v"})
    assert re.fullmatch(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", name), name
    assert len(name) <= 63


def test_job_name_ignores_hyperparameter_order() -> None:
    a = _plan(hyperparameters={"epochs": "20", "target": "label"}).outputs["training_job_name"]
    b = _plan(hyperparameters={"target": "label", "epochs": "20"}).outputs["training_job_name"]
    assert a == b


# --- outputs -----------------------------------------------------------------------------------------------


def test_model_and_baseline_uris_sit_under_the_job_output_prefix() -> None:
    plan = _plan()
    name = plan.outputs["training_job_name"]
    model = f"s3://mlplatform-dev-models-0a1b2c3/training/{name}/output/model/"
    assert plan.outputs["model_data_uri"] == model
    assert plan.outputs["baseline_statistics_uri"] == model + "baseline/statistics.json"
    assert plan.outputs["baseline_constraints_uri"] == model + "baseline/constraints.json"
    assert plan.outputs["role_arn"] == _job(plan)["roleArn"]


def test_every_child_is_parented_and_named_after_the_component() -> None:
    plan = _plan(name="mlplatform-dev")
    children = plan.children("mlplatform:training:ModelTraining::mlplatform-dev")
    assert sorted(c["type"] for c in children) == sorted([JOB, ROLE, ROLE_POLICY])
    assert all(c["name"].startswith("mlplatform-dev-") for c in children)
    assert "aws:iam/rolePolicy:RolePolicy::mlplatform-dev-policy" in plan.one(JOB)["options"]["dependsOn"]


# --- IAM -----------------------------------------------------------------------------------------------------


def test_role_trusts_only_sagemaker_from_this_account() -> None:
    trust = json.loads(_plan().one(ROLE)["inputs"]["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}},
        }
    ]


@pytest.mark.parametrize("vpc", [False, True])
def test_policy_has_no_wildcard_actions_and_star_resources_only_where_aws_requires(vpc: bool) -> None:
    changes: dict[str, Any] = {"subnet_ids": ["subnet-0abc"], "security_group_ids": ["sg-0def"]} if vpc else {}
    statements = _policy(_plan(**changes))["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        assert all("*" not in a for a in actions), statement
        if "*" in resources:
            assert resources == ["*"] and set(actions) <= STAR_RESOURCE_ACTIONS, statement


def _allowed(plan: Plan, action: str) -> list[str]:
    resources: list[str] = []
    for s in _policy(plan)["Statement"]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if action in actions:
            resources += s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
    return resources


def test_policy_reads_only_the_named_data_prefixes() -> None:
    plan = _plan()
    assert sorted(_allowed(plan, "s3:GetObject")) == sorted(
        [
            "arn:aws:s3:::mlplatform-dev-data-0a1b2c3/datasets/demo/train/*",
            "arn:aws:s3:::mlplatform-dev-data-0a1b2c3/datasets/demo/validation/*",
            *_allowed(plan, "s3:PutObject"),
        ]
    )
    listing = next(s for s in _policy(plan)["Statement"] if s["Sid"] == "ListTrainingData")
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["datasets/demo/train/*", "datasets/demo/validation/*"]}
    }


def test_policy_writes_only_this_jobs_output_and_checkpoint_prefixes() -> None:
    plan = _plan()
    name = plan.outputs["training_job_name"]
    bucket = "arn:aws:s3:::mlplatform-dev-models-0a1b2c3"
    assert sorted(_allowed(plan, "s3:PutObject")) == [f"{bucket}/checkpoints/{name}/*", f"{bucket}/training/{name}/*"]
    assert not any("data-0a1b2c3" in r for r in _allowed(plan, "s3:PutObject"))


def test_policy_pulls_only_the_training_repository() -> None:
    plan = _plan()
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"):
        assert _allowed(plan, action) == [REPO_ARN]
    assert _allowed(plan, "ecr:GetAuthorizationToken") == ["*"]


def test_policy_logs_only_to_the_training_log_group_and_metrics_in_its_namespace() -> None:
    plan = _plan()
    name = plan.outputs["training_job_name"]
    group = "arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/TrainingJobs"
    assert _allowed(plan, "logs:PutLogEvents") == [group, f"{group}:log-stream:{name}/*"]
    metrics = next(s for s in _policy(plan)["Statement"] if s["Action"] == "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}


def test_policy_uses_only_the_project_key() -> None:
    plan = _plan()
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"):
        assert _allowed(plan, action) == [KEY_ARN]


# --- deploy-day lifecycle: retry after a failed run, retained jobs, the completion check -----------------------


def test_a_run_id_trains_again_under_a_new_name_and_no_run_id_keeps_todays_name() -> None:
    """A failed job keeps its name in SageMaker for good (CreateTrainingJob: names are unique per account and
    region; terraform-provider-aws training_job.go Create returns before `resp.State.Set` when
    `waitTrainingJobCreated` fails, so Pulumi records nothing and the next `up` reuses the name ->
    ResourceInUse). Setting mlplatform:trainingRunId is the retry: a new name, new model and checkpoint
    prefixes; unset, names stay what they were before the setting existed."""
    plain = _plan().outputs
    retry = _plan(run_id="2").outputs
    assert _plan(run_id="").outputs["training_job_name"] == plain["training_job_name"]
    assert retry["training_job_name"] != plain["training_job_name"]
    third = _plan(run_id="3").outputs["training_job_name"]
    assert third not in {plain["training_job_name"], retry["training_job_name"]}
    assert retry["checkpoint_uri"] != plain["checkpoint_uri"]
    assert retry["model_data_uri"] != plain["model_data_uri"]


def test_a_replaced_job_is_retained_in_sagemaker() -> None:
    """The provider's Delete calls DeleteTrainingJob (training_job.go Delete); a job replaced by a new run is
    the record of the model it trained, so the stack retains it."""
    assert _plan().one(JOB)["options"].get("retainOnDelete") is True


def test_the_completion_check_is_bound_after_create_and_can_be_turned_off() -> None:
    hooks = _plan().one(JOB)["options"]["hooks"]
    assert hooks == {"after_create": ["mlplatform-dev-check-training-run"]}
    assert "hooks" not in _plan(check_completion=False).one(JOB)["options"]


def test_the_role_may_list_the_output_path_and_checkpoint_prefix_themselves() -> None:
    """SageMaker validates at create time that the role may list the configured S3OutputPath and checkpoint
    URI; terraform-provider-aws training_job.go Create retries the ValidationException "no identity-based
    policy allows the s3:ListBucket action" as IAM propagation until the timeout."""
    plan = _plan()
    name = plan.outputs["training_job_name"]
    listing = next(s for s in _policy(plan)["Statement"] if s["Sid"] == "ListOwnOutputAndCheckpoints")
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert "training/" in prefixes and f"checkpoints/{name}" in prefixes
    assert f"training/{name}/*" in prefixes and f"checkpoints/{name}/*" in prefixes
    # Listing the output root is not reading it: objects stay limited to this job's own prefixes.
    assert all(name in r for r in _allowed(plan, "s3:GetObject") if "models" in r)


@pytest.mark.parametrize(("count", "requested", "expected"), [(1, True, False), (2, True, True), (2, False, False)])
def test_inter_container_encryption_follows_the_setting_for_multi_host_jobs(
    count: int, requested: bool, expected: bool
) -> None:
    job = _job(_plan(instance_count=count, inter_container_encryption=requested))
    assert job["enableInterContainerTrafficEncryption"] is expected
