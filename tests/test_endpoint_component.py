"""ModelEndpoint under the mock runtime: naming, blue/green inputs, KMS per instance type, capture, alarms, IAM."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.endpoint import (
    CAPTURE_PREFIX,
    PRECISION_ENV,
    VARIANT_NAME,
    EndpointConfigError,
    ModelEndpoint,
    ModelEndpointArgs,
    execution_policy,
    instance_type_change_error,
    parse_model_prefix,
    rollback_alarm_names,
    verify_endpoint_hook,
)
from components.settings import (
    AlarmSettings,
    AutoscalingSettings,
    CaptureSettings,
    EndpointSettings,
    RolloutSettings,
)
from tests.conftest import run_components
from tools.plan import Plan
from tools.verify import VerificationFailed

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-serving@sha256:" + "ab" * 32
MODEL_URI = "s3://mlplatform-dev-models-1a2b3c4/training/job-7/output/model/"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
TOPIC_ARN = "arn:aws:sns:us-east-1:111122223333:mlplatform-dev-alarms"
CAPTURE_BUCKET = "mlplatform-dev-capture-1a2b3c4"
COMPONENT = "mlplatform:serving:ModelEndpoint::ep"

MODEL = "aws:sagemaker/model:Model"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"


def make_args(**overrides: Any) -> ModelEndpointArgs:
    args: dict[str, Any] = {
        "image": IMAGE,
        "model_data_uri": MODEL_URI,
        "endpoint": EndpointSettings(instance_type="ml.c6i.large", instance_count=2),
        "rollout": RolloutSettings(style="ALL_AT_ONCE", bake_seconds=300, termination_wait_seconds=60),
        "capture": CaptureSettings(sampling_percent=20),
        "autoscaling": AutoscalingSettings(),
        "alarms": AlarmSettings(),
        "capture_bucket": CAPTURE_BUCKET,
        "kms_key_arn": KEY_ARN,
        "endpoint_name": "mlplatform-dev",
        "alarm_topic_arn": TOPIC_ARN,
    }
    args.update(overrides)
    return args  # type: ignore[return-value]  # a plain dict with exactly the TypedDict's keys


def plan_of(**overrides: Any) -> Plan:
    return run_components(lambda: ModelEndpoint("ep", make_args(**overrides)))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of()


def _alarm(plan: Plan, suffix: str) -> dict[str, Any]:
    return next(r for r in plan.of_type(ALARM) if r["inputs"]["name"].endswith(suffix))


def _role_policy(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.one("aws:iam/rolePolicy:RolePolicy")["inputs"]["policy"])


# --- naming ----------------------------------------------------------------------------------------------------


def test_model_and_config_are_auto_named_so_they_can_be_replaced_create_before_delete(plan: Plan) -> None:
    assert "name" not in plan.one(MODEL)["inputs"]
    config = plan.one(CONFIG)["inputs"]
    assert "name" not in config and "namePrefix" not in config
    assert not plan.one(CONFIG)["options"].get("deleteBeforeReplace")


def test_endpoint_has_the_deterministic_name_and_points_at_the_new_config(plan: Plan) -> None:
    endpoint = plan.one(ENDPOINT)
    assert endpoint["inputs"]["name"] == "mlplatform-dev"
    assert endpoint["inputs"]["endpointConfigName"].startswith("ep-config-")


def test_config_and_its_model_are_retained_on_delete_so_a_rollback_target_survives(plan: Plan) -> None:
    assert plan.one(CONFIG)["options"].get("retainOnDelete") is True
    assert plan.one(MODEL)["options"].get("retainOnDelete") is True
    assert not plan.one(ENDPOINT)["options"].get("retainOnDelete")


def test_every_child_is_parented_and_named_after_the_component(plan: Plan) -> None:
    children = plan.children(COMPONENT)
    assert len(children) == len(plan.resources) - 1
    assert all(c["name"].startswith("ep-") for c in children)


def test_variant_name_is_the_constant(plan: Plan) -> None:
    variants = plan.one(CONFIG)["inputs"]["productionVariants"]
    assert [v["variantName"] for v in variants] == [VARIANT_NAME] == ["primary"]


# --- model -------------------------------------------------------------------------------------------------------


def test_model_reads_the_uncompressed_prefix_with_the_image_by_digest(plan: Plan) -> None:
    container = plan.one(MODEL)["inputs"]["primaryContainer"]
    assert container["image"] == IMAGE
    assert container["modelDataSource"]["s3DataSources"] == [
        {"s3Uri": MODEL_URI, "s3DataType": "S3Prefix", "compressionType": "None"}
    ]
    assert "modelDataUrl" not in container
    assert plan.one(MODEL)["inputs"]["enableNetworkIsolation"] is True


def test_model_prefix_gets_a_trailing_slash() -> None:
    plan = plan_of(model_data_uri="s3://b-models/jobs/j1/output")
    source = plan.one(MODEL)["inputs"]["primaryContainer"]["modelDataSource"]["s3DataSources"][0]
    assert source["s3Uri"] == "s3://b-models/jobs/j1/output/"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_model_environment_selects_the_precision(precision: str) -> None:
    plan = plan_of(endpoint=EndpointSettings(instance_count=2, precision=precision))  # type: ignore[arg-type]
    assert plan.one(MODEL)["inputs"]["primaryContainer"]["environment"] == {PRECISION_ENV: precision}


def test_precision_variable_is_the_one_the_serving_container_reads() -> None:
    from serving.settings import ENV_PRECISION

    assert PRECISION_ENV == ENV_PRECISION


def test_model_waits_for_the_role_policy(plan: Plan) -> None:
    assert "aws:iam/rolePolicy:RolePolicy::ep-role-policy" in plan.one(MODEL)["options"]["dependsOn"]


def test_vpc_config_only_when_subnets_are_given(plan: Plan) -> None:
    assert "vpcConfig" not in plan.one(MODEL)["inputs"]
    vpc = plan_of(subnet_ids=["subnet-1"], security_group_ids=["sg-1"])
    assert vpc.one(MODEL)["inputs"]["vpcConfig"] == {"subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}


# --- endpoint config -----------------------------------------------------------------------------------------


def test_variant_carries_instance_settings_and_timeouts() -> None:
    settings = EndpointSettings(
        instance_type="ml.c6i.xlarge",
        instance_count=4,
        startup_health_check_timeout_seconds=900,
        model_download_timeout_seconds=1200,
    )
    variant = plan_of(endpoint=settings).one(CONFIG)["inputs"]["productionVariants"][0]
    assert variant["instanceType"] == "ml.c6i.xlarge"
    assert variant["initialInstanceCount"] == 4
    assert variant["containerStartupHealthCheckTimeoutInSeconds"] == 900
    assert variant["modelDataDownloadTimeoutInSeconds"] == 1200
    assert variant["modelName"].startswith("ep-model-")


@pytest.mark.parametrize(
    ("instance_type", "has_key"),
    [("ml.c6i.large", True), ("ml.m5.xlarge", True), ("ml.g5.xlarge", False), ("ml.g4dn.xlarge", False)],
)
def test_volume_key_only_for_instance_types_without_local_nvme(instance_type: str, has_key: bool) -> None:
    config = plan_of(endpoint=EndpointSettings(instance_type=instance_type, instance_count=2)).one(CONFIG)["inputs"]
    assert ("kmsKeyArn" in config) is has_key
    if has_key:
        assert config["kmsKeyArn"] == KEY_ARN
    # Capture data is encrypted with the key whatever the instance type.
    assert config["dataCaptureConfig"]["kmsKeyId"] == KEY_ARN


def test_data_capture_records_requests_and_responses_as_text(plan: Plan) -> None:
    capture = plan.one(CONFIG)["inputs"]["dataCaptureConfig"]
    assert capture["enableCapture"] is True
    assert capture["initialSamplingPercentage"] == 20
    assert capture["destinationS3Uri"] == f"s3://{CAPTURE_BUCKET}/{CAPTURE_PREFIX}"
    assert sorted(o["captureMode"] for o in capture["captureOptions"]) == ["Input", "Output"]
    assert capture["captureContentTypeHeader"] == {
        "csvContentTypes": ["text/csv"],
        "jsonContentTypes": ["application/json", "application/jsonlines"],
    }


def test_data_capture_can_be_turned_off() -> None:
    capture = plan_of(capture=CaptureSettings(enabled=False)).one(CONFIG)["inputs"]["dataCaptureConfig"]
    assert capture["enableCapture"] is False


# --- blue/green ------------------------------------------------------------------------------------------------


def _deployment(plan: Plan) -> dict[str, Any]:
    return plan.one(ENDPOINT)["inputs"]["deploymentConfig"]


def test_all_at_once_rollout_bakes_then_terminates(plan: Plan) -> None:
    policy = _deployment(plan)["blueGreenUpdatePolicy"]
    assert policy["trafficRoutingConfiguration"] == {"type": "ALL_AT_ONCE", "waitIntervalInSeconds": 300}
    assert policy["terminationWaitInSeconds"] == 60
    assert policy["maximumExecutionTimeoutInSeconds"] == 3600


def test_canary_rollout_shifts_a_capacity_percent_first() -> None:
    # 30, not 25: the linear step's default is 25, so a canary sized from the wrong field would still pass.
    rollout = RolloutSettings(style="CANARY", canary_percent=30, bake_seconds=600, termination_wait_seconds=300)
    routing = _deployment(plan_of(rollout=rollout))["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {
        "type": "CANARY",
        "waitIntervalInSeconds": 600,
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 30},
    }


def test_linear_rollout_shifts_steps_of_capacity() -> None:
    rollout = RolloutSettings(
        style="LINEAR", linear_step_percent=50, bake_seconds=300, termination_wait_seconds=60, max_execution_seconds=900
    )
    routing = _deployment(plan_of(rollout=rollout))["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {
        "type": "LINEAR",
        "waitIntervalInSeconds": 300,
        "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 50},
    }


def test_auto_rollback_names_the_constant_alarms(plan: Plan) -> None:
    alarms = _deployment(plan)["autoRollbackConfiguration"]["alarms"]
    assert [a["alarmName"] for a in alarms] == [
        "mlplatform-dev-rollback-5xx",
        "mlplatform-dev-rollback-latency-p99",
    ]
    assert [a["alarmName"] for a in alarms] == rollback_alarm_names("mlplatform-dev")
    assert sorted(r["inputs"]["name"] for r in plan.of_type(ALARM)) == sorted(a["alarmName"] for a in alarms)


def test_endpoint_waits_for_the_alarms_to_watch_the_new_config(plan: Plan) -> None:
    depends = plan.one(ENDPOINT)["options"]["dependsOn"]
    assert "aws:cloudwatch/metricAlarm:MetricAlarm::ep-rollback-5xx" in depends
    assert "aws:cloudwatch/metricAlarm:MetricAlarm::ep-rollback-latency-p99" in depends


def test_invalid_rollout_is_refused_before_anything_is_registered() -> None:
    with pytest.raises(EndpointConfigError) as err:
        ModelEndpoint(
            "bad",
            make_args(
                endpoint=EndpointSettings(instance_count=1),
                rollout=RolloutSettings(style="CANARY", bake_seconds=60, termination_wait_seconds=0),
                alarms=AlarmSettings(period_seconds=60, evaluation_periods=3),
            ),
        )
    message = str(err.value)
    assert "mlplatform:endpointInstanceCount >= 2" in message
    assert "mlplatform:rolloutBakeSeconds (60) must be at least the alarm window" in message


def test_autoscaling_capacity_outside_the_instance_count_is_refused() -> None:
    with pytest.raises(EndpointConfigError, match=r"mlplatform:endpointInstanceCount \(2\) must lie between"):
        ModelEndpoint("bad", make_args(autoscaling=AutoscalingSettings(enabled=True, min_capacity=3, max_capacity=5)))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"endpoint_name": "Bad_Name"}, "endpoint name 'Bad_Name' is not valid"),
        ({"image": "ghcr.io/acme/serving:latest"}, "serving image must be an ECR image by digest"),
        ({"model_data_uri": "https://example.com/model.tar.gz"}, "model data URI must be an S3 prefix"),
        ({"model_data_uri": "s3://bucket-a/"}, "model data URI must be an S3 prefix"),
        ({"subnet_ids": ["subnet-1"]}, "subnet_ids and security_group_ids go together"),
    ],
)
def test_bad_plain_arguments_are_refused_with_a_message(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EndpointConfigError, match=fragment):
        ModelEndpoint("bad", make_args(**overrides))


def test_prod_protects_the_endpoint_and_dev_does_not() -> None:
    assert plan_of(protect=True).one(ENDPOINT)["options"].get("protect") is True
    assert not plan_of().one(ENDPOINT)["options"].get("protect")


# --- rollback alarms ----------------------------------------------------------------------------------------------


def test_alarms_watch_the_new_fleet_by_config_variant_and_endpoint(plan: Plan) -> None:
    config_name = plan.one(ENDPOINT)["inputs"]["endpointConfigName"]
    for alarm in plan.of_type(ALARM):
        assert alarm["inputs"]["namespace"] == "AWS/SageMaker"
        assert alarm["inputs"]["dimensions"] == {
            "EndpointName": "mlplatform-dev",
            "VariantName": VARIANT_NAME,
            "EndpointConfigName": config_name,
        }
        assert alarm["inputs"]["treatMissingData"] == "notBreaching"
        assert alarm["inputs"]["alarmActions"] == [TOPIC_ARN] == alarm["inputs"]["okActions"]


def test_5xx_alarm_sums_errors_against_the_threshold() -> None:
    alarms = AlarmSettings(errors5xx_threshold=7, period_seconds=60, evaluation_periods=5, datapoints_to_alarm=3)
    alarm = _alarm(plan_of(alarms=alarms), "-rollback-5xx")["inputs"]
    assert alarm["metricName"] == "Invocation5XXErrors"
    assert alarm["statistic"] == "Sum"
    assert alarm["threshold"] == 7
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (60, 5, 3)


def test_latency_alarm_uses_p99_in_microseconds() -> None:
    alarm = _alarm(plan_of(alarms=AlarmSettings(latency_p99_ms=250)), "-rollback-latency-p99")["inputs"]
    assert alarm["metricName"] == "ModelLatency"
    assert alarm["extendedStatistic"] == "p99"
    assert "statistic" not in alarm
    assert alarm["threshold"] == 250_000


def test_alarm_names_do_not_change_with_the_model_or_config() -> None:
    first = plan_of()
    second = plan_of(model_data_uri="s3://other-models/jobs/j99/output/", endpoint=EndpointSettings(instance_count=3))
    assert sorted(r["inputs"]["name"] for r in first.of_type(ALARM)) == sorted(
        r["inputs"]["name"] for r in second.of_type(ALARM)
    )


def test_alarms_without_a_topic_have_no_actions() -> None:
    alarm = plan_of(alarm_topic_arn=None).of_type(ALARM)[0]["inputs"]
    assert alarm.get("alarmActions", []) == [] and alarm.get("okActions", []) == []


# --- autoscaling ------------------------------------------------------------------------------------------------


def test_no_autoscaling_resources_unless_enabled(plan: Plan) -> None:
    assert plan.of_type(TARGET) == [] and plan.of_type(POLICY) == []


def test_autoscaling_tracks_invocations_per_instance_of_the_variant() -> None:
    settings = AutoscalingSettings(
        enabled=True,
        min_capacity=2,
        max_capacity=6,
        target_invocations_per_instance=3000,
        scale_in_cooldown_seconds=600,
        scale_out_cooldown_seconds=30,
    )
    plan = plan_of(autoscaling=settings)
    target = plan.one(TARGET)
    assert target["inputs"] == {
        "serviceNamespace": "sagemaker",
        "resourceId": "endpoint/mlplatform-dev/variant/primary",
        "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "minCapacity": 2,
        "maxCapacity": 6,
    }
    assert "aws:sagemaker/endpoint:Endpoint::ep-endpoint" in target["options"]["dependsOn"]
    policy = plan.one(POLICY)["inputs"]
    assert policy["policyType"] == "TargetTrackingScaling"
    assert policy["resourceId"] == "endpoint/mlplatform-dev/variant/primary"
    assert policy["targetTrackingScalingPolicyConfiguration"] == {
        "targetValue": 3000,
        "predefinedMetricSpecification": {"predefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "scaleInCooldown": 600,
        "scaleOutCooldown": 30,
    }


def test_instance_type_change_under_autoscaling_is_refused_with_the_way_forward() -> None:
    message = instance_type_change_error("ml.c6i.large", True, "ml.c6i.xlarge")
    assert message is not None
    assert "from ml.c6i.large to ml.c6i.xlarge" in message
    assert "set mlplatform:autoscalingEnabled to false" in message
    assert "(1) keep the instance type at ml.c6i.large" in message
    assert "(2) set mlplatform:endpointInstanceType to ml.c6i.xlarge" in message


@pytest.mark.parametrize(
    ("previous_type", "previous_autoscaling", "new_type"),
    [
        (None, None, "ml.c6i.xlarge"),  # first deployment
        ("ml.c6i.large", False, "ml.c6i.xlarge"),  # autoscaling was off: SageMaker allows the change
        ("ml.c6i.large", True, "ml.c6i.large"),  # same type
    ],
)
def test_instance_type_change_is_allowed_without_a_registered_target(
    previous_type: str | None, previous_autoscaling: bool | None, new_type: str
) -> None:
    assert instance_type_change_error(previous_type, previous_autoscaling, new_type) is None


def test_guard_blocks_the_new_config_when_the_last_deployment_had_autoscaling() -> None:
    def program() -> None:
        ModelEndpoint(
            "ep",
            make_args(
                endpoint=EndpointSettings(instance_type="ml.c6i.xlarge", instance_count=2),
                previous_instance_type="ml.c6i.large",
                previous_autoscaling_enabled=True,
            ),
        )

    with pytest.raises(Exception, match="Application Auto Scaling blocks that endpoint update"):
        run_components(program)


def test_guard_reads_previous_outputs_given_as_outputs_or_strings() -> None:
    plan = run_components(
        lambda: ModelEndpoint(
            "ep",
            make_args(
                previous_instance_type=pulumi.Output.from_input("ml.c6i.large"),
                previous_autoscaling_enabled="true",
            ),
        )
    )
    assert plan.one(CONFIG)["inputs"]["productionVariants"][0]["instanceType"] == "ml.c6i.large"


# --- IAM ------------------------------------------------------------------------------------------------------------


def _statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_execution_role_has_no_wildcard_actions(plan: Plan) -> None:
    for statement in _role_policy(plan)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement


def test_wildcard_resources_only_where_aws_has_no_resource_level_permission() -> None:
    policy = json.loads(
        execution_policy(
            endpoint_name="e",
            partition="aws",
            account="111122223333",
            region="us-east-1",
            image=IMAGE,
            model_data_uri=MODEL_URI,
            capture_bucket=CAPTURE_BUCKET,
            kms_key_arn=KEY_ARN,
            subnet_ids=["subnet-1"],
            security_group_ids=["sg-1"],
        )
    )
    wildcard = sorted(s["Sid"] for s in policy["Statement"] if s["Resource"] == "*")
    assert wildcard == ["EcrLogin", "PublishEndpointMetrics", "VpcDescribe"]
    # "CreateModel API: Execution Role Permissions": without PutMetricData the instance metrics stay empty.
    assert _statements(policy)["PublishEndpointMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}
    }
    assert _statements(policy)["EcrLogin"]["Action"] == ["ecr:GetAuthorizationToken"]


def test_execution_role_reads_only_the_model_prefix_and_pulls_only_its_repository(plan: Plan) -> None:
    statements = _statements(_role_policy(plan))
    bucket, prefix = parse_model_prefix(MODEL_URI)
    assert statements["ReadModelFiles"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}*"
    assert statements["ListModelPrefix"]["Condition"] == {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    assert statements["PullServingImage"]["Resource"] == (
        "arn:aws:ecr:us-east-1:111122223333:repository/mlplatform-serving"
    )
    assert statements["WriteCapture"]["Resource"] == f"arn:aws:s3:::{CAPTURE_BUCKET}/capture/mlplatform-dev/*"
    assert statements["UseProjectKey"]["Resource"] == KEY_ARN
    assert all(
        r.startswith("arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/mlplatform-dev")
        for r in statements["EndpointLogs"]["Resource"]
    )


def test_promoted_artifacts_are_decrypted_with_the_source_stacks_key() -> None:
    dev_key = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    statements = _statements(_role_policy(plan_of(source_kms_key_arns=[dev_key])))
    assert statements["ReadPromotedArtifacts"]["Action"] == ["kms:Decrypt"]
    assert statements["ReadPromotedArtifacts"]["Resource"] == [dev_key]
    assert "ReadPromotedArtifacts" not in _statements(_role_policy(plan_of()))


def test_execution_role_may_describe_only_the_rollback_alarms(plan: Plan) -> None:
    statement = _statements(_role_policy(plan))["ReadRollbackAlarms"]
    assert statement["Action"] == ["cloudwatch:DescribeAlarms"]
    assert statement["Resource"] == [
        "arn:aws:cloudwatch:us-east-1:111122223333:alarm:mlplatform-dev-rollback-5xx",
        "arn:aws:cloudwatch:us-east-1:111122223333:alarm:mlplatform-dev-rollback-latency-p99",
    ]


def test_role_is_assumable_only_by_sagemaker_for_this_account(plan: Plan) -> None:
    trust = json.loads(plan.one("aws:iam/role:Role")["inputs"]["assumeRolePolicy"])
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}


def test_invoke_policy_allows_invoking_this_endpoint_only(plan: Plan) -> None:
    policy = json.loads(plan.one("aws:iam/policy:Policy")["inputs"]["policy"])
    assert policy["Statement"] == [
        {
            "Sid": "InvokeEndpoint",
            "Effect": "Allow",
            "Action": ["sagemaker:InvokeEndpoint"],
            "Resource": "arn:aws:sagemaker:us-east-1:111122223333:endpoint/mlplatform-dev",
        }
    ]


# --- outputs and the verification hook --------------------------------------------------------------------------


def test_component_outputs() -> None:
    def program() -> None:
        endpoint = ModelEndpoint("ep", make_args())
        for attr in (
            "endpoint_name",
            "endpoint_arn",
            "endpoint_config_name",
            "model_name",
            "variant_name",
            "execution_role_arn",
            "invoke_policy_arn",
            "capture_uri",
            "rollback_alarm_names",
            "instance_type",
            "autoscaling_enabled",
        ):
            pulumi.export(attr, getattr(endpoint, attr))

    plan = run_components(program)
    seen = plan.outputs
    assert seen["endpoint_name"] == "mlplatform-dev"
    assert seen["endpoint_arn"] == "arn:aws:sagemaker:us-east-1:111122223333:endpoint/mlplatform-dev"
    assert seen["endpoint_config_name"] == plan.one(ENDPOINT)["inputs"]["endpointConfigName"]
    assert seen["model_name"] == plan.one(CONFIG)["inputs"]["productionVariants"][0]["modelName"]
    assert seen["variant_name"] == "primary"
    assert seen["execution_role_arn"].startswith("arn:aws:iam::111122223333:role/")
    assert seen["invoke_policy_arn"].startswith("arn:aws:iam::111122223333:policy/")
    assert seen["capture_uri"] == f"s3://{CAPTURE_BUCKET}/capture/mlplatform-dev/"
    assert seen["rollback_alarm_names"] == rollback_alarm_names("mlplatform-dev")
    assert (seen["instance_type"], seen["autoscaling_enabled"]) == ("ml.c6i.large", False)


def test_verification_hook_runs_after_create_and_update(plan: Plan) -> None:
    assert plan.one(ENDPOINT)["options"]["hooks"] == {
        "after_create": ["ep-verify-deployment"],
        "after_update": ["ep-verify-deployment"],
    }


def test_verification_hook_can_be_turned_off() -> None:
    assert "hooks" not in plan_of(verify_deployment=False).one(ENDPOINT)["options"]


def test_verification_hook_is_not_bound_in_previews(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    assert ModelEndpoint._verification_hooks("ep", make_args()) is None


class _DescribeOnly:
    """A SageMaker client answering DescribeEndpoint with a fixed response."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.calls: list[dict[str, Any]] = []

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.response


def _hook_args(requested: str, refreshed: str | None = None) -> pulumi.ResourceHookArgs:
    """Hook arguments as the engine passes them: inputs as asked, outputs as the provider read them back."""
    return pulumi.ResourceHookArgs(
        urn="urn:pulumi:dev::mlplatform::aws:sagemaker/endpoint:Endpoint::ep-endpoint",
        id="mlplatform-dev",
        name="ep-endpoint",
        type="aws:sagemaker/endpoint:Endpoint",
        new_inputs={"name": "mlplatform-dev", "endpointConfigName": requested},
        new_outputs={
            "name": "mlplatform-dev",
            "endpointConfigName": refreshed or requested,
            "arn": "arn:aws:sagemaker:eu-west-1:111122223333:endpoint/mlplatform-dev",
        },
    )


def test_verification_hook_passes_when_the_new_config_serves() -> None:
    client = _DescribeOnly({"EndpointStatus": "InService", "EndpointConfigName": "cfg-new"})
    verify_endpoint_hook(_hook_args("cfg-new"), timeout_seconds=0, client=client)
    assert client.calls == [{"EndpointName": "mlplatform-dev"}]


def test_verification_hook_fails_the_deployment_after_a_sagemaker_rollback() -> None:
    client = _DescribeOnly(
        {"EndpointStatus": "InService", "EndpointConfigName": "cfg-old", "FailureReason": "Alarm tripped"}
    )
    # The provider's read after the update already reports the old config: the hook must not trust it.
    with pytest.raises(VerificationFailed, match="expected config cfg-new, actual config cfg-old"):
        verify_endpoint_hook(_hook_args("cfg-new", refreshed="cfg-old"), timeout_seconds=0, client=client)
