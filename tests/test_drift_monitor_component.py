"""DriftMonitor under the mock runtime: each backend's resources, the pipeline definition, the schedules and IAM."""

from __future__ import annotations

import functools
import json
from typing import Any

import botocore.session
import pulumi
import pytest
from botocore.validate import ParamValidator

from components.monitoring import (
    PARAM_WINDOW_END,
    PUT_METRIC_DATA_ENV,
    SCHEDULED_TIME,
    WINDOW_SECONDS_ENV,
    DriftMonitor,
    DriftMonitorArgs,
    MonitorBackend,
    ecr_repository_arn,
    pipeline_definition,
    start_pipeline_request,
    validate_monitor_args,
)
from components.settings import MonitoringSettings
from monitoring import entrypoint
from monitoring import metrics_contract as contract
from tests.conftest import run_components
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan

ENDPOINT = "mlplatform-dev"
IMAGE = f"{MOCK_ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/mlplatform-monitoring@sha256:" + "ab" * 32
KEY = f"arn:aws:kms:us-east-1:{MOCK_ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CAPTURE = "s3://capture-bucket/capture/"
STATS = "s3://model-bucket/training/job-1/output/baseline/statistics.json"
CONSTRAINTS = "s3://model-bucket/training/job-1/output/baseline/constraints.json"
TOKEN = "mlplatform:monitoring:DriftMonitor::monitor"

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCHEDULE = "aws:scheduler/schedule:Schedule"
JOB_DEFINITION = "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition"
MONITORING_SCHEDULE = "aws:sagemaker/monitoringSchedule:MonitoringSchedule"

# "*" resources only where AWS offers no resource-level permission (the component says so beside each).
STAR_RESOURCE_SIDS = {"PublishDriftMetrics", "PublishProcessingInstanceMetrics", "EcrLogin", "VpcDescribe"}


def _args(backend: MonitorBackend, **overrides: Any) -> DriftMonitorArgs:
    args: dict[str, Any] = {
        "settings": MonitoringSettings(backend=backend, instance_type=overrides.pop("instance_type", "ml.m5.large")),
        "endpoint_name": ENDPOINT,
        "region": "us-east-1",
        "capture_s3_uri": CAPTURE,
        "baseline_statistics_uri": STATS,
        "baseline_constraints_uri": CONSTRAINTS,
        "reports_bucket": "model-bucket",
        "kms_key_arn": KEY,
        "monitor_image": IMAGE,
    }
    args.update(overrides)
    return args  # type: ignore[return-value]


@functools.cache
def _plan(backend: MonitorBackend, instance_type: str = "ml.m5.large", vpc: bool = False) -> Plan:
    extra: dict[str, Any] = {"instance_type": instance_type}
    if vpc:
        extra.update(subnet_ids=["subnet-0123456789abcdef0"], security_group_ids=["sg-0123456789abcdef0"])

    def program() -> None:
        monitor = DriftMonitor("monitor", _args(backend, **extra))
        pulumi.export("schedule_name", monitor.schedule_name)
        pulumi.export("pipeline_name", monitor.pipeline_name)
        pulumi.export("reports_uri", monitor.reports_uri)
        pulumi.export("role_arn", monitor.role_arn)

    return run_components(program)


def _definition(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.one(PIPELINE)["inputs"]["pipelineDefinition"])


def _step_arguments(plan: Plan) -> dict[str, Any]:
    (step,) = _definition(plan)["Steps"]
    return step["Arguments"]


def _policies(plan: Plan) -> dict[str, dict[str, Any]]:
    return {r["name"]: json.loads(r["inputs"]["policy"]) for r in plan.of_type(ROLE_POLICY)}


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [s for s in policy["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, sid
    return found[0]


_SAMPLE_RUN = {
    "Parameters.WindowStart": "",
    f"Parameters.{PARAM_WINDOW_END}": "2026-11-26T07:00:00Z",
    "Parameters.WindowSeconds": "3600",
    "Execution.PipelineExecutionId": "abcdef123456",
}


def _at_run_time(value: Any) -> Any:
    """Replace the definition's pipeline expressions by the values they take in a run."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            return _SAMPLE_RUN[value["Get"]]
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return join["On"].join(str(_at_run_time(v)) for v in join["Values"])
        return {k: _at_run_time(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_at_run_time(v) for v in value]
    return value


def _botocore_errors(operation: str, params: dict[str, Any]) -> str:
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else ""


# --- none ------------------------------------------------------------------------------------------------


def test_backend_none_creates_nothing_and_outputs_empty_strings() -> None:
    plan = _plan("none")
    assert [r["type"] for r in plan.resources] == ["mlplatform:monitoring:DriftMonitor"]
    assert plan.outputs == {"schedule_name": "", "pipeline_name": "", "reports_uri": "", "role_arn": ""}


# --- model-monitor ---------------------------------------------------------------------------------------


def test_model_monitor_backend_creates_a_job_definition_and_an_hourly_schedule_only() -> None:
    plan = _plan("model-monitor")
    types = sorted(r["type"] for r in plan.resources if r["parent"] == TOKEN)
    assert types == sorted(["aws:iam/role:Role", ROLE_POLICY, JOB_DEFINITION, MONITORING_SCHEDULE])
    schedule = plan.one(MONITORING_SCHEDULE)["inputs"]
    assert schedule["name"] == f"{ENDPOINT}-drift"
    config = schedule["monitoringScheduleConfig"]
    assert config["monitoringType"] == "DataQuality"
    assert config["scheduleConfig"] == {"scheduleExpression": "cron(0 * ? * * *)"}
    job_name = config["monitoringJobDefinitionName"]
    assert job_name.startswith("monitor-data-quality-")  # the auto-named definition
    assert plan.outputs["schedule_name"] == f"{ENDPOINT}-drift"
    assert plan.outputs["pipeline_name"] == ""


def test_model_monitor_job_reads_the_endpoint_and_the_model_baseline() -> None:
    job = _plan("model-monitor").one(JOB_DEFINITION)["inputs"]
    assert job["dataQualityJobInput"] == {
        "endpointInput": {
            "endpointName": ENDPOINT,
            "localPath": "/opt/ml/processing/input/endpoint",
            "s3InputMode": "File",
            "s3DataDistributionType": "FullyReplicated",
        }
    }
    assert job["dataQualityBaselineConfig"] == {
        "constraintsResource": {"s3Uri": CONSTRAINTS},
        "statisticsResource": {"s3Uri": STATS},
    }
    app = job["dataQualityAppSpecification"]
    # The data source appends ":<image_tag>" (default "1", prebuilt_ecr_image_data_source.go); the analyzer
    # AWS documents is the untagged URI, i.e. `latest`.
    assert app["imageUri"].endswith(".amazonaws.com/sagemaker-model-monitor-analyzer:latest")
    assert app["environment"] == {"publish_cloudwatch_metrics": "Enabled"}


def test_model_monitor_job_writes_encrypted_reports_under_the_endpoint_prefix() -> None:
    job = _plan("model-monitor").one(JOB_DEFINITION)["inputs"]
    output = job["dataQualityJobOutputConfig"]
    assert output["kmsKeyId"] == KEY
    assert output["monitoringOutputs"]["s3Output"] == {
        "s3Uri": f"s3://model-bucket/monitoring/{ENDPOINT}/",
        "localPath": "/opt/ml/processing/output",
        "s3UploadMode": "EndOfJob",
    }
    cluster = job["jobResources"]["clusterConfig"]
    assert cluster == {"instanceCount": 1, "instanceType": "ml.m5.large", "volumeSizeInGb": 20, "volumeKmsKeyId": KEY}
    assert job["stoppingCondition"] == {"maxRuntimeInSeconds": 1800}
    assert job["networkConfig"] == {"enableNetworkIsolation": True, "enableInterContainerTrafficEncryption": True}
    assert job["roleArn"].startswith(f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/monitor-job-role")


def test_model_monitor_leaves_out_the_volume_key_on_nvme_instances() -> None:
    cluster = _plan("model-monitor", "ml.m5d.large").one(JOB_DEFINITION)["inputs"]["jobResources"]["clusterConfig"]
    assert "volumeKmsKeyId" not in cluster


def test_model_monitor_runs_in_the_given_vpc() -> None:
    plan = _plan("model-monitor", vpc=True)
    vpc = plan.one(JOB_DEFINITION)["inputs"]["networkConfig"]["vpcConfig"]
    assert vpc == {"subnets": ["subnet-0123456789abcdef0"], "securityGroupIds": ["sg-0123456789abcdef0"]}
    (policy,) = _policies(plan).values()
    assert _statement(policy, "VpcNetworkInterfaces")["Resource"] == [
        f"arn:aws:ec2:us-east-1:{MOCK_ACCOUNT_ID}:network-interface/*",
        f"arn:aws:ec2:us-east-1:{MOCK_ACCOUNT_ID}:subnet/subnet-0123456789abcdef0",
        f"arn:aws:ec2:us-east-1:{MOCK_ACCOUNT_ID}:security-group/sg-0123456789abcdef0",
    ]
    assert _statement(policy, "VpcDescribe")["Resource"] == "*"


# --- pipeline: definition --------------------------------------------------------------------------------


def test_pipeline_backend_creates_pipeline_schedule_and_three_roles() -> None:
    plan = _plan("pipeline")
    types = sorted(r["type"] for r in plan.resources if r["parent"] == TOKEN)
    assert types == sorted([PIPELINE, SCHEDULE] + ["aws:iam/role:Role"] * 3 + [ROLE_POLICY] * 3)
    pipeline = plan.one(PIPELINE)["inputs"]
    assert pipeline["pipelineName"] == f"{ENDPOINT}-drift"
    assert pipeline["roleArn"].startswith(f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/monitor-pipeline-role")
    assert plan.outputs["pipeline_name"] == f"{ENDPOINT}-drift"
    assert plan.outputs["schedule_name"] == f"{ENDPOINT}-drift"
    assert plan.outputs["reports_uri"] == f"s3://model-bucket/monitoring/{ENDPOINT}/"


def test_pipeline_has_one_processing_step_running_our_image_by_digest() -> None:
    definition = _definition(_plan("pipeline"))
    assert definition["Version"] == "2020-12-01"
    (step,) = definition["Steps"]
    assert step["Type"] == "Processing"
    args = step["Arguments"]
    assert args["AppSpecification"] == {"ImageUri": IMAGE}
    assert args["RoleArn"].startswith(f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/monitor-job-role")
    assert args["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "VolumeSizeInGB": 20,
        "VolumeKmsKeyId": KEY,
    }
    assert args["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}


def test_pipeline_step_environment_follows_the_monitor_container_contract() -> None:
    env = _step_arguments(_plan("pipeline"))["Environment"]
    assert env["dataset_source"] == f"s3://capture-bucket/capture/{ENDPOINT}/"
    assert env["output_path"] == "/opt/ml/processing/output"
    assert env["baseline_statistics"] == "/opt/ml/processing/baseline/statistics/statistics.json"
    assert env["baseline_constraints"] == "/opt/ml/processing/baseline/constraints/constraints.json"
    assert env["end_time"] == {"Get": "Parameters.WindowEnd"}
    assert env["start_time"] == {"Get": "Parameters.WindowStart"}
    assert env["publish_cloudwatch_metrics"] == "Enabled"
    assert env[PUT_METRIC_DATA_ENV] == "1"
    assert env["metric_namespace"] == contract.METRIC_NAMESPACE
    assert env["sagemaker_endpoint_name"] == ENDPOINT
    assert env["sagemaker_monitoring_schedule_name"] == f"{ENDPOINT}-drift"


def test_monitor_container_accepts_the_pipeline_environment_of_a_scheduled_run() -> None:
    env = _at_run_time(_step_arguments(_plan("pipeline"))["Environment"])
    assert PUT_METRIC_DATA_ENV == entrypoint.PUT_METRIC_DATA_ENV
    settings = entrypoint.parse_settings(env)
    assert settings.capture_index == "endpointInput"
    assert settings.dataset_source == f"s3://capture-bucket/capture/{ENDPOINT}/"
    assert WINDOW_SECONDS_ENV == entrypoint.WINDOW_SECONDS_ENV
    assert settings.window.start is not None and settings.window.end is not None
    # The hour before the scheduled time: [06:00, 07:00).
    assert settings.window.start.isoformat() == "2026-11-26T06:00:00+00:00"
    assert settings.window.end.isoformat() == "2026-11-26T07:00:00+00:00"
    assert settings.publish_metrics is True
    assert settings.put_metric_data is True
    assert settings.metric_namespace == contract.METRIC_NAMESPACE
    assert (settings.endpoint_name, settings.schedule_name) == (ENDPOINT, f"{ENDPOINT}-drift")


def test_pipeline_downloads_only_the_baseline_and_uploads_reports_per_execution() -> None:
    args = _step_arguments(_plan("pipeline"))
    inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
    assert inputs["baseline-statistics"]["S3Uri"] == STATS
    assert inputs["baseline-statistics"]["LocalPath"] == "/opt/ml/processing/baseline/statistics"
    assert inputs["baseline-constraints"]["S3Uri"] == CONSTRAINTS
    assert all(i["S3InputMode"] == "File" for i in inputs.values())
    # The capture is listed by hour in the container, never copied whole.
    assert all(not i["S3Uri"].startswith("s3://capture-bucket") for i in inputs.values())
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    assert args["ProcessingOutputConfig"]["KmsKeyId"] == KEY
    assert output["S3Output"]["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [f"s3://model-bucket/monitoring/{ENDPOINT}", {"Get": "Execution.PipelineExecutionId"}],
        }
    }
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"


def test_pipeline_parameters_cover_every_reference_and_the_window() -> None:
    definition = _definition(_plan("pipeline"))
    declared = {p["Name"]: p for p in definition["Parameters"]}
    assert set(declared) == {"WindowStart", "WindowEnd", "WindowSeconds"}
    assert all(p["Type"] == "String" for p in declared.values())
    assert declared["WindowSeconds"]["DefaultValue"] == "3600"
    referenced: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if set(value) == {"Get"} and value["Get"].startswith("Parameters."):
                referenced.add(value["Get"].split(".", 1)[1])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(definition["Steps"])
    assert referenced == set(declared)


def test_pipeline_step_is_a_valid_create_processing_job_request() -> None:
    request = {"ProcessingJobName": "pipelines-abcdef123456-AnalyzeCapturedData", **_step_arguments(_plan("pipeline"))}
    assert _botocore_errors("CreateProcessingJob", _at_run_time(request)) == ""


def test_pipeline_validation_catches_a_malformed_step() -> None:
    request = {"ProcessingJobName": "x", **_step_arguments(_plan("pipeline"))}
    request["ProcessingResources"] = {"ClusterConfig": {"InstanceType": "ml.m5.large"}}
    errors = _botocore_errors("CreateProcessingJob", _at_run_time(request))
    assert "Missing required parameter in ProcessingResources.ClusterConfig" in errors


def test_pipeline_leaves_out_the_volume_key_on_nvme_instances() -> None:
    definition = pipeline_definition(
        image=IMAGE,
        job_role_arn="arn:aws:iam::111122223333:role/job",
        instance_type="ml.g5.xlarge",
        max_runtime_seconds=600,
        kms_key_arn=KEY,
        endpoint_name=ENDPOINT,
        schedule_name="s",
        capture_s3_uri=CAPTURE,
        baseline_statistics_uri=STATS,
        baseline_constraints_uri=CONSTRAINTS,
        reports_s3_uri="s3://model-bucket/monitoring/x/",
    )
    assert "VolumeKmsKeyId" not in definition["Steps"][0]["Arguments"]["ProcessingResources"]["ClusterConfig"]


def test_pipeline_definition_refuses_baseline_prefixes() -> None:
    with pytest.raises(ValueError, match="must name objects"):
        pipeline_definition(
            image=IMAGE,
            job_role_arn="r",
            instance_type="ml.m5.large",
            max_runtime_seconds=600,
            kms_key_arn=KEY,
            endpoint_name=ENDPOINT,
            schedule_name="s",
            capture_s3_uri=CAPTURE,
            baseline_statistics_uri="s3://model-bucket/baseline/",
            baseline_constraints_uri=CONSTRAINTS,
            reports_s3_uri="s3://model-bucket/monitoring/x/",
        )


# --- pipeline: scheduler ---------------------------------------------------------------------------------


def test_scheduler_starts_the_pipeline_every_hour_on_the_hour() -> None:
    plan = _plan("pipeline")
    schedule = plan.one(SCHEDULE)["inputs"]
    assert schedule["name"] == f"{ENDPOINT}-drift"
    assert schedule["scheduleExpression"] == "cron(0 * * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    target = schedule["target"]
    assert target["arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
    assert target["roleArn"].startswith(f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/monitor-scheduler-role")
    assert target["retryPolicy"] == {"maximumRetryAttempts": 3, "maximumEventAgeInSeconds": 3600}


def test_scheduler_passes_its_scheduled_time_as_the_window_end() -> None:
    plan = _plan("pipeline")
    request = json.loads(plan.one(SCHEDULE)["inputs"]["target"]["input"])
    assert request == start_pipeline_request(f"{ENDPOINT}-drift")
    assert request["PipelineName"] == plan.one(PIPELINE)["inputs"]["pipelineName"]
    assert request["PipelineParameters"] == [{"Name": "WindowEnd", "Value": SCHEDULED_TIME}]
    declared = {p["Name"] for p in _definition(plan)["Parameters"]}
    assert {p["Name"] for p in request["PipelineParameters"]} <= declared
    # As the scheduler sends it: the context attribute replaced by a scheduled time.
    sent = json.loads(json.dumps(request).replace(SCHEDULED_TIME, "2026-11-26T07:00:00Z"))
    assert _botocore_errors("StartPipelineExecution", sent) == ""


def test_scheduler_role_may_only_start_this_pipeline() -> None:
    plan = _plan("pipeline")
    policy = _policies(plan)["monitor-scheduler-policy"]
    assert policy["Statement"] == [
        {
            "Sid": "StartMonitorPipeline",
            "Effect": "Allow",
            "Action": "sagemaker:StartPipelineExecution",
            "Resource": f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:pipeline/{ENDPOINT}-drift",
        }
    ]
    role = plan.named("monitor-scheduler-role")["inputs"]
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID}}


def test_pipeline_role_runs_processing_jobs_and_passes_only_the_job_role() -> None:
    plan = _plan("pipeline")
    policy = _policies(plan)["monitor-pipeline-policy"]
    run = _statement(policy, "RunProcessingStep")
    assert run["Resource"] == f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:processing-job/pipelines-*"
    assert "sagemaker:CreateProcessingJob" in run["Action"]
    pass_role = _statement(policy, "PassJobRole")
    assert pass_role["Resource"] == _step_arguments(plan)["RoleArn"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


# --- IAM of the monitoring job ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["model-monitor", "pipeline"])
def test_no_policy_has_wildcard_actions_and_star_resources_are_justified(backend: MonitorBackend) -> None:
    for name, policy in _policies(_plan(backend, vpc=True)).items():
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in a for a in actions), (name, actions)
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if "*" in resources:
                assert statement["Sid"] in STAR_RESOURCE_SIDS, (name, statement["Sid"])


@pytest.mark.parametrize("backend", ["model-monitor", "pipeline"])
def test_job_may_publish_metrics_only_into_the_monitor_namespace(backend: MonitorBackend) -> None:
    policy = _policies(_plan(backend))["monitor-job-policy"]
    put = _statement(policy, "PublishDriftMetrics")
    assert put["Action"] == "cloudwatch:PutMetricData"
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": contract.METRIC_NAMESPACE}}
    instance = _statement(policy, "PublishProcessingInstanceMetrics")
    assert instance["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}}


@pytest.mark.parametrize("backend", ["model-monitor", "pipeline"])
def test_job_may_encrypt_its_output_with_the_project_key(backend: MonitorBackend) -> None:
    """The job's output is written with a KmsKeyId: "CreateProcessingJob API: Execution Role Permissions"
    requires kms:Encrypt on it."""
    policy = _policies(_plan(backend))["monitor-job-policy"]
    assert "kms:Encrypt" in _statement(policy, "UseProjectKey")["Action"]


def test_the_job_definitions_wait_for_the_endpoint() -> None:
    """CreateDataQualityJobDefinition (and Model Monitor's other definitions) check the endpoint exists; its
    name is a plain string, so only an explicit dependency orders the first deploy."""

    def program() -> None:
        endpoint = pulumi.CustomResource("aws:sagemaker/endpoint:Endpoint", "the-endpoint", {})
        DriftMonitor("monitor", _args("model-monitor", depends_on=[endpoint]))

    plan = run_components(program)
    definition = plan.one("aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition")
    assert "aws:sagemaker/endpoint:Endpoint::the-endpoint" in definition["options"].get("dependsOn", [])


def test_job_reads_only_its_endpoint_capture_and_the_baseline_objects() -> None:
    policy = _policies(_plan("pipeline"))["monitor-job-policy"]
    assert _statement(policy, "ReadCapturedData")["Resource"] == f"arn:aws:s3:::capture-bucket/capture/{ENDPOINT}/*"
    listing = _statement(policy, "ListCapturedHours")
    assert listing["Resource"] == "arn:aws:s3:::capture-bucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"capture/{ENDPOINT}/", f"capture/{ENDPOINT}/*"]}}
    assert sorted(_statement(policy, "ReadBaseline")["Resource"]) == [
        "arn:aws:s3:::model-bucket/training/job-1/output/baseline/constraints.json",
        "arn:aws:s3:::model-bucket/training/job-1/output/baseline/statistics.json",
    ]
    write = _statement(policy, "WriteReports")
    assert write["Resource"] == f"arn:aws:s3:::model-bucket/monitoring/{ENDPOINT}/*"
    assert "s3:GetObject" not in write["Action"]


def test_job_pulls_only_the_monitor_repository() -> None:
    policy = _policies(_plan("pipeline"))["monitor-job-policy"]
    pull = _statement(policy, "PullMonitorImage")
    assert pull["Resource"] == f"arn:aws:ecr:us-east-1:{MOCK_ACCOUNT_ID}:repository/mlplatform-monitoring"
    model_monitor = _policies(_plan("model-monitor"))["monitor-job-policy"]
    assert not [s for s in model_monitor["Statement"] if s["Sid"] in ("PullMonitorImage", "EcrLogin")]


def test_job_role_trusts_only_sagemaker_of_this_account() -> None:
    trust = json.loads(_plan("pipeline").named("monitor-job-role")["inputs"]["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID}}


# --- validation --------------------------------------------------------------------------------------------


def test_a_run_longer_than_its_hour_is_refused_with_the_setting_named() -> None:
    args = _args("pipeline")
    args["settings"] = MonitoringSettings(backend="pipeline", max_runtime_seconds=5400)
    with pytest.raises(ValueError, match=r"mlplatform:monitorMaxRuntimeSeconds \(5400\) must be at most 3600"):
        validate_monitor_args(args)


def test_pipeline_backend_without_an_image_is_refused() -> None:
    args = _args("pipeline")
    del args["monitor_image"]
    with pytest.raises(ValueError, match="mlplatform:imagesMonitoring"):
        validate_monitor_args(args)
    args["settings"] = MonitoringSettings(backend="model-monitor")
    validate_monitor_args(args)  # the built-in analyzer needs no image of ours


def test_subnets_without_security_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="both subnet ids and security group ids"):
        validate_monitor_args(_args("model-monitor", subnet_ids=["subnet-1"]))


def test_an_endpoint_name_too_long_for_a_schedule_name_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 63"):
        validate_monitor_args(_args("pipeline", endpoint_name="e" * 60))


def test_backend_none_needs_no_valid_monitor_arguments() -> None:
    validate_monitor_args(_args("none", endpoint_name="e" * 80, monitor_image=None))


def test_monitor_image_must_be_an_ecr_reference_by_digest() -> None:
    assert ecr_repository_arn(IMAGE) == f"arn:aws:ecr:us-east-1:{MOCK_ACCOUNT_ID}:repository/mlplatform-monitoring"
    with pytest.raises(ValueError, match="private ECR repository, by digest"):
        ecr_repository_arn("docker.io/library/python:3.11")


def test_promoted_baseline_may_be_decrypted_with_the_promoting_stacks_key() -> None:
    dev_key = "arn:aws:kms:us-east-1:444455556666:key/abcd"

    def program() -> None:
        DriftMonitor("monitor", _args("pipeline", source_kms_key_arns=[dev_key]))

    policy = _policies(run_components(program))["monitor-job-policy"]
    assert _statement(policy, "DecryptPromotedBaseline") == {
        "Sid": "DecryptPromotedBaseline",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": [dev_key],
    }
    assert not [
        s
        for s in _policies(_plan("pipeline"))["monitor-job-policy"]["Statement"]
        if s["Sid"] == "DecryptPromotedBaseline"
    ]


# --- model quality, bias drift and shards (issue: monitoring beyond data drift) ----------------------------

QUALITY_JOB = "aws-native:sagemaker:ModelQualityJobDefinition"
BIAS_JOB = "aws-native:sagemaker:ModelBiasJobDefinition"


def _quality_plan(backend: MonitorBackend, **settings: Any) -> Plan:
    values: dict[str, Any] = {"backend": backend, "quality": True, "sensitive_attribute": "site"}
    if backend == "model-monitor":
        values["sensitive_feature_index"] = 3
    values.update(settings)
    args = _args(backend)
    args["settings"] = MonitoringSettings(**values)
    return run_components(lambda: DriftMonitor("monitor", args))


def test_model_monitor_backend_adds_quality_and_bias_job_definitions_with_schedules() -> None:
    """Model Monitor's ModelQuality/ModelBias job definitions (AWS::SageMaker::ModelQualityJobDefinition,
    ModelBiasJobDefinition, via pulumi-aws-native) run by MonitoringSchedules of those types (API reference,
    MonitoringScheduleConfig.MonitoringType: DataQuality | ModelQuality | ModelBias | ModelExplainability)."""
    plan = _quality_plan("model-monitor")
    (quality,) = plan.of_type(QUALITY_JOB)
    job_input = quality["inputs"]["modelQualityJobInput"]
    assert job_input["groundTruthS3Input"] == {"s3Uri": "s3://capture-bucket/ground-truth/mlplatform-dev/"}
    endpoint = job_input["endpointInput"]
    # The hour that ended label_delay_hours (24) ago: StartTimeOffset/EndTimeOffset before the scheduled time.
    assert (endpoint["startTimeOffset"], endpoint["endTimeOffset"]) == ("-PT25H", "-PT24H")
    assert (endpoint["inferenceAttribute"], endpoint["probabilityAttribute"]) == ("0", "2")
    assert quality["inputs"]["modelQualityAppSpecification"]["problemType"] == "BinaryClassification"
    assert quality["inputs"]["modelQualityBaselineConfig"]["constraintsResource"]["s3Uri"] == (
        "s3://model-bucket/training/job-1/output/baseline/model_quality/constraints.json"
    )
    (bias,) = plan.of_type(BIAS_JOB)
    assert bias["inputs"]["modelBiasAppSpecification"]["imageUri"].endswith("/sagemaker-clarify-processing:1.0")
    config_key = "arn:aws:s3:::model-bucket/monitoring/mlplatform-dev/*"
    assert _statement(_policy(plan, "monitor-job-policy"), "ReadShardPartials")["Resource"] == config_key
    assert bias["inputs"]["modelBiasAppSpecification"]["configUri"] == (
        "s3://model-bucket/monitoring/mlplatform-dev/model-bias/analysis_config.json"
    )
    types = sorted(s["inputs"]["monitoringScheduleConfig"]["monitoringType"] for s in plan.of_type(MONITORING_SCHEDULE))
    assert types == ["DataQuality", "ModelBias", "ModelQuality"]
    # Each schedule names its definition by the name the provider gave it (aws-native auto-names it).
    by_type = {
        s["inputs"]["monitoringScheduleConfig"]["monitoringType"]: s["inputs"]["monitoringScheduleConfig"]
        for s in plan.of_type(MONITORING_SCHEDULE)
    }
    assert by_type["ModelQuality"]["monitoringJobDefinitionName"].startswith(quality["name"] + "-")
    assert by_type["ModelBias"]["monitoringJobDefinitionName"].startswith(bias["name"] + "-")


def test_pipeline_backend_adds_an_hourly_quality_pipeline_measuring_bias() -> None:
    plan = _quality_plan("pipeline")
    pipelines = {p["inputs"]["pipelineName"]: p for p in plan.of_type(PIPELINE)}
    assert set(pipelines) == {"mlplatform-dev-drift", "mlplatform-dev-model-quality"}
    definition = json.loads(pipelines["mlplatform-dev-model-quality"]["inputs"]["pipelineDefinition"])
    (step,) = definition["Steps"]
    env = step["Arguments"]["Environment"]
    assert env["MLPLATFORM_MODE"] == "model-quality"
    assert env["ground_truth_source"] == "s3://capture-bucket/ground-truth/mlplatform-dev/"
    assert env["sensitive_attribute"] == "site"
    assert env["MLPLATFORM_LABEL_DELAY_SECONDS"] == str(24 * 3600)
    _validate_step(step)
    schedules = sorted(s["inputs"]["name"] for s in plan.of_type(SCHEDULE))
    assert schedules == ["mlplatform-dev-drift", "mlplatform-dev-model-quality"]


def test_quality_job_may_read_ground_truth_and_publish_only_quality_and_bias_metrics() -> None:
    plan = _quality_plan("pipeline")
    statements = {s["Sid"]: s for s in _policy(plan, "monitor-job-policy")["Statement"]}
    assert statements["ReadGroundTruth"]["Resource"] == "arn:aws:s3:::capture-bucket/ground-truth/mlplatform-dev/*"
    assert statements["PublishQualityMetrics"]["Condition"]["StringEquals"]["cloudwatch:namespace"] == [
        contract.QUALITY_NAMESPACE,
        contract.BIAS_NAMESPACE,
    ]


def test_sharded_drift_pipeline_analyzes_in_n_instances_then_merges() -> None:
    args = _args("pipeline")
    args["settings"] = MonitoringSettings(backend="pipeline", instance_count=4)
    plan = run_components(lambda: DriftMonitor("monitor", args))
    (pipeline,) = plan.of_type(PIPELINE)
    shard, merge = json.loads(pipeline["inputs"]["pipelineDefinition"])["Steps"]
    assert shard["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 4
    assert shard["Arguments"]["Environment"]["MLPLATFORM_MODE"] == "shard"
    assert merge["DependsOn"] == [shard["Name"]]
    assert merge["Arguments"]["Environment"]["MLPLATFORM_MODE"] == "merge"
    assert merge["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    _validate_step(shard)
    _validate_step(merge)
    sids = {s["Sid"] for s in _policy(plan, "monitor-job-policy")["Statement"]}
    assert {"ListShardPartials", "ReadShardPartials"} <= sids


def test_model_monitor_bias_without_a_feature_index_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="mlplatform:monitorSensitiveFeatureIndex"):
        MonitoringSettings(backend="model-monitor", quality=True, sensitive_attribute="site")


def _policy(plan: Plan, name: str) -> dict[str, Any]:
    return _policies(plan)[name]


def _validate_step(step: dict[str, Any]) -> None:
    """A pipeline step's Arguments are a CreateProcessingJob request (botocore's model of the API)."""
    request = {"ProcessingJobName": f"pipelines-abcdef123456-{step['Name']}", **step["Arguments"]}
    assert _botocore_errors("CreateProcessingJob", _at_run_time(request)) == ""


def test_the_prebuilt_image_mock_answers_as_the_provider_does() -> None:
    """terraform-provider-aws prebuilt_ecr_image_data_source.go: `image_tag` defaults to "1" and the registry
    path always ends with ":<image_tag>"; a mock without that default hid the analyzer's wrong tag."""
    from tools.mocks import PlatformMocks

    answer, _ = PlatformMocks().call(
        _call_args("aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage", {"repositoryName": "x"})
    )
    assert answer["registryPath"].endswith("/x:1")
    assert answer["imageTag"] == "1"


def _call_args(token: str, args: dict) -> pulumi.runtime.MockCallArgs:
    import pulumi.runtime.mocks as m

    return m.MockCallArgs(token=token, args=args, provider="")
