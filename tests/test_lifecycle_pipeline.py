"""The stack side of the model lifecycle: the training pipeline (components/pipeline.py), the model package group
(components/registry.py), their triggers, and the `mlplatform:lifecycle*` settings.

What the mocks model (tools/mocks.py): terraform-provider-aws internal/service/sagemaker/model_package_group.go
(resourceModelPackageGroupCreate: CreateModelPackageGroup then `d.SetId(name)`; Read sets `arn` from
DescribeModelPackageGroup) and pipeline.go (resourcePipelineCreate: `d.SetId(name)`; Read sets `arn` from
DescribePipeline's PipelineArn and `pipeline_definition` as AWS returns it). The pipeline definition is checked by
tools/validate.py: schema version 2020-12-01, step names, and each job step's Arguments (also those inside the
Condition step's IfSteps/ElseSteps) against botocore's model of the call the step makes: CreateProcessingJob,
CreateTrainingJob, and, for the RegisterModel step type of the sagemaker SDK's workflow.steps.StepTypeEnum,
CreateModelPackage. The gate's `Std:JsonGet` over a property file follows the SDK's functions.JsonGet.expr.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from components.pipeline import (
    CHAMPION_PROPERTY_FILE,
    GATE_PROPERTY_FILE,
    PARAM_CHAMPION,
    PARAM_TRIGGER,
    STEP_CHAMPION,
    STEP_EVALUATE,
    STEP_GATE,
    STEP_REGISTER,
    STEP_TRAIN,
    STEP_VALIDATE,
    gate_arguments,
)
from components.settings import LifecycleSettings, SettingsError, load_settings
from tests.conftest import plan_with
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan, stack_config
from tools.validate import validate_plan
from training.gate import PASS, GateThresholds

LIFECYCLE_TYPES = (
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
    "mlplatform:lifecycle:TrainingPipeline",
    "mlplatform:lifecycle:ModelRegistry",
)
ENABLED = {
    "mlplatform:lifecycleEnabled": "true",
    "mlplatform:lifecycleSchedule": "cron(0 3 ? * MON *)",
    "mlplatform:lifecycleRegistryReaderAccounts": '["444455556666"]',
    "mlplatform:lifecycleRetrainOnDrift": "retrain",
    "mlplatform:lifecycleSensitiveAttribute": "site",
}


@pytest.fixture(scope="module")
def lifecycle_plan() -> Plan:
    return plan_with("dev", ENABLED)


def _pipeline(plan: Plan) -> dict[str, Any]:
    (resource,) = [
        r for r in plan.of_type("aws:sagemaker/pipeline:Pipeline") if r["name"].endswith("-lifecycle-pipeline")
    ]
    return resource


def _pipeline_arn(plan: Plan) -> str:
    """The ARN the provider reads back (DescribePipeline's PipelineArn), as the mocks answer it."""
    return f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:pipeline/{_pipeline(plan)['inputs']['pipelineName']}"


def _definition(plan: Plan) -> dict[str, Any]:
    return json.loads(_pipeline(plan)["inputs"]["pipelineDefinition"])


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = {s["Name"]: s for s in definition["Steps"]}
    gate = steps[STEP_GATE]["Arguments"]
    for branch in ("IfSteps", "ElseSteps"):
        steps.update({s["Name"]: s for s in gate[branch]})
    return steps


def test_lifecycle_is_off_in_the_committed_stacks(any_plan: Plan) -> None:
    assert not [r for r in any_plan.resources if r["type"] in LIFECYCLE_TYPES]


def test_enabled_plan_validates_every_step_against_the_aws_models(lifecycle_plan: Plan) -> None:
    report = validate_plan(lifecycle_plan)
    assert report.ok, [str(v) for v in report.violations[:5]]
    assert report.uncovered_types == {}


def test_a_bad_register_step_is_caught_inside_the_condition_branch(lifecycle_plan: Plan) -> None:
    data = lifecycle_plan.as_json()
    pipeline = next(r for r in data["resources"] if r["name"].endswith("-lifecycle-pipeline"))
    definition = json.loads(pipeline["inputs"]["pipelineDefinition"])
    register = _steps(definition)[STEP_REGISTER]
    register["Arguments"]["ModelApprovalStatus"] = "Pending"
    pipeline["inputs"]["pipelineDefinition"] = json.dumps(definition)
    violations = validate_plan(data).violations
    assert any("IfSteps[0].Arguments" in v.path and "ModelApprovalStatus" in v.path for v in violations), violations


def test_steps_run_validate_train_evaluate_then_gate_registers_or_fails(lifecycle_plan: Plan) -> None:
    definition = _definition(lifecycle_plan)
    assert [s["Name"] for s in definition["Steps"]] == [
        STEP_CHAMPION,
        STEP_VALIDATE,
        STEP_TRAIN,
        STEP_EVALUATE,
        STEP_GATE,
    ]
    steps = _steps(definition)
    assert steps[STEP_TRAIN]["DependsOn"] == [STEP_VALIDATE]
    evaluate_inputs = steps[STEP_EVALUATE]["Arguments"]["ProcessingInputs"]
    assert evaluate_inputs[0]["S3Input"]["S3Uri"] == {
        "Std:Join": {"On": "", "Values": [{"Get": f"Steps.{STEP_TRAIN}.ModelArtifacts.S3ModelArtifacts"}, "/"]}
    }
    condition = steps[STEP_GATE]["Arguments"]["Conditions"][0]
    assert condition == {
        "Type": "Equals",
        "LeftValue": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": f"Steps.{STEP_EVALUATE}.PropertyFiles.{GATE_PROPERTY_FILE}"},
                "Path": "decision",
            }
        },
        "RightValue": PASS,  # the value training.gate.decide writes for a passing candidate
    }
    assert [s["Type"] for s in steps[STEP_GATE]["Arguments"]["IfSteps"]] == ["RegisterModel"]
    assert [s["Type"] for s in steps[STEP_GATE]["Arguments"]["ElseSteps"]] == ["Fail"]
    register = steps[STEP_REGISTER]["Arguments"]
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert (
        register["ModelPackageGroupName"] == lifecycle_plan.one(LIFECYCLE_TYPES[0])["inputs"]["modelPackageGroupName"]
    )
    assert "Bias" in register["ModelMetrics"]  # a sensitive attribute is configured: the gate record is the report


def test_property_file_is_where_the_evaluate_command_writes_the_record(lifecycle_plan: Plan) -> None:
    evaluate = _steps(_definition(lifecycle_plan))[STEP_EVALUATE]
    (prop,) = evaluate["PropertyFiles"]
    (output,) = evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert prop["OutputName"] == output["OutputName"]
    args = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    record = args[args.index("--record") + 1]
    assert record == f"{output['S3Output']['LocalPath']}/{prop['FilePath']}"


def test_step_commands_parse_with_the_training_images_command_line(lifecycle_plan: Plan) -> None:
    from training.__main__ import _parser

    steps = _steps(_definition(lifecycle_plan))
    validate = _parser().parse_args(steps[STEP_VALIDATE]["Arguments"]["AppSpecification"]["ContainerArguments"])
    assert validate.command == "validate"
    assert validate.optional_champion is True
    evaluate = _parser().parse_args(steps[STEP_EVALUATE]["Arguments"]["AppSpecification"]["ContainerArguments"])
    assert evaluate.sensitive_attribute == "site"
    thresholds = GateThresholds(**{f.name: getattr(evaluate, f.name) for f in dataclasses.fields(GateThresholds)})
    settings = LifecycleSettings(sensitive_attribute="site")
    assert thresholds == GateThresholds(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(thresholds)})


def test_settings_defaults_are_the_containers_gate_defaults() -> None:
    from training.__main__ import _parser

    parsed = _parser().parse_args(["evaluate", "--ml-root", "m", "--candidate", "c", "--record", "r"])
    from_cli = GateThresholds(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(GateThresholds)})
    settings = LifecycleSettings()
    assert from_cli == GateThresholds()
    assert GateThresholds() == GateThresholds(
        **{f.name: getattr(settings, f.name) for f in dataclasses.fields(GateThresholds)}
    )
    custom = LifecycleSettings(max_auc_drop=0.003, sensitive_attribute="site", positive_class="1")
    args = gate_arguments(custom)
    assert args[args.index("--max-auc-drop") + 1] == "0.003"
    assert args[-4:] == ["--sensitive-attribute", "site", "--positive-class", "1"]


def test_drift_alarm_starts_a_run_with_the_trigger_named(lifecycle_plan: Plan) -> None:
    """EventBridge's CloudWatch alarm state-change event (source aws.cloudwatch, detail-type "CloudWatch Alarm
    State Change", detail.alarmName, detail.state.value) and a SageMaker pipeline target (PutTargets'
    SageMakerPipelineParameters.PipelineParameterList; the provider's `sagemaker_pipeline_target`)."""
    alarms = {r["inputs"]["name"] for r in lifecycle_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    rule = lifecycle_plan.named("mlplatform-dev-lifecycle-drift-rule")
    pattern = json.loads(rule["inputs"]["eventPattern"])
    (alarm,) = pattern["detail"]["alarmName"]
    assert alarm in alarms  # the observability component's real drift alarm
    assert alarm.endswith("-drift-violations")
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    target = lifecycle_plan.named("mlplatform-dev-lifecycle-drift-target")["inputs"]
    assert target["arn"] == _pipeline_arn(lifecycle_plan)
    params = target["sagemakerPipelineTarget"]["pipelineParameterLists"]
    assert params == [{"name": PARAM_TRIGGER, "value": f"drift-alarm:{alarm}"}]
    declared = {p["Name"] for p in _definition(lifecycle_plan)["Parameters"]}
    assert {PARAM_TRIGGER, PARAM_CHAMPION} <= declared
    role = lifecycle_plan.named("mlplatform-dev-lifecycle-events-role")["inputs"]
    assert "events.amazonaws.com" in role["assumeRolePolicy"]


def test_failed_run_notifies_the_alarm_topic(lifecycle_plan: Plan) -> None:
    rule = lifecycle_plan.named("mlplatform-dev-lifecycle-failed-rule")["inputs"]
    pattern = json.loads(rule["eventPattern"])
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Failed"]
    assert pattern["detail"]["pipelineArn"] == [_pipeline_arn(lifecycle_plan)]
    topic = lifecycle_plan.one("aws:sns/topic:Topic")["inputs"]["name"]
    assert lifecycle_plan.named("mlplatform-dev-lifecycle-failed-topic")["inputs"]["arn"] == (
        f"arn:aws:sns:us-east-1:{MOCK_ACCOUNT_ID}:{topic}"
    )


def test_model_package_group_is_identified_by_its_name_and_readable_by_the_prod_account(lifecycle_plan: Plan) -> None:
    name = lifecycle_plan.one(LIFECYCLE_TYPES[0])["inputs"]["modelPackageGroupName"]
    policy_inputs = lifecycle_plan.one("aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy")["inputs"]
    # The policy names the group by the group's output (its id is its name) and scopes itself to the group's ARN.
    assert policy_inputs["modelPackageGroupName"] == name
    (statement,) = json.loads(policy_inputs["resourcePolicy"])["Statement"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::444455556666:root"]}
    prefix = f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}"
    assert statement["Resource"] == [f"{prefix}:model-package-group/{name}", f"{prefix}:model-package/{name}/*"]
    assert "sagemaker:CreateModelPackage" not in statement["Action"]


def test_champion_is_resolved_when_the_run_starts_and_read_by_the_later_steps(lifecycle_plan: Plan) -> None:
    """The default is `latest-approved`, so a scheduled or event-started run looks up the approved version then;
    the no-champion marker the stack writes is what the lookup falls back to; a pin stays a pin."""
    from training.__main__ import _parser

    definition = _definition(lifecycle_plan)
    (champion,) = [p for p in definition["Parameters"] if p["Name"] == PARAM_CHAMPION]
    assert champion["DefaultValue"] == "latest-approved"
    steps = _steps(definition)
    resolve = steps[STEP_CHAMPION]["Arguments"]
    args = resolve["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--pinned") + 1] == {"Get": f"Parameters.{PARAM_CHAMPION}"}
    marker = lifecycle_plan.named("mlplatform-dev-lifecycle-no-champion")["inputs"]
    assert args[args.index("--no-champion") + 1] == f"s3://{marker['bucket']}/{marker['key'].rsplit('/', 1)[0]}/"
    group = lifecycle_plan.one(LIFECYCLE_TYPES[0])["inputs"]["modelPackageGroupName"]
    assert args[args.index("--group") + 1] == group
    parsed = _parser().parse_args([a if isinstance(a, str) else "latest-approved" for a in args])
    (output,) = resolve["ProcessingOutputConfig"]["Outputs"]
    (prop,) = steps[STEP_CHAMPION]["PropertyFiles"]
    assert str(parsed.record) == f"{output['S3Output']['LocalPath']}/{prop['FilePath']}"
    assert resolve["NetworkConfig"] == {"EnableNetworkIsolation": False}  # it calls the SageMaker API
    resolved = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{STEP_CHAMPION}.PropertyFiles.{CHAMPION_PROPERTY_FILE}"},
            "Path": "model_data_url",  # the key training/champion.py writes
        }
    }
    for step in (STEP_VALIDATE, STEP_EVALUATE):
        inputs = {i["InputName"]: i for i in steps[step]["Arguments"]["ProcessingInputs"]}
        assert inputs["champion"]["S3Input"]["S3Uri"] == resolved
        assert steps[step]["Arguments"]["NetworkConfig"] == {"EnableNetworkIsolation": True}
    policy = json.loads(lifecycle_plan.named("mlplatform-dev-lifecycle-job-policy")["inputs"]["policy"])
    lookup = next(s for s in policy["Statement"] if s["Sid"] == "FindApprovedChampion")
    assert set(lookup["Action"]) == {"sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"}
    assert lookup["Resource"][0].endswith(f":model-package-group/{group}")
    pinned = plan_with("dev", {**ENABLED, "mlplatform:lifecycleChampionModelDataUrl": "s3://models/approved/v3/"})
    (champion,) = [p for p in _definition(pinned)["Parameters"] if p["Name"] == PARAM_CHAMPION]
    assert champion["DefaultValue"] == "s3://models/approved/v3/"


def test_retrain_on_drift_needs_the_pipeline_monitor_and_names_the_keys() -> None:
    raw = copy.deepcopy(stack_config("dev"))
    raw.update({"mlplatform:lifecycleRetrainOnDrift": "retrain"})  # lifecycleEnabled not set
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleRetrainOnDrift retrain needs .*lifecycleEnabled"):
        load_settings(raw, "dev")
    raw.update({"mlplatform:lifecycleMaxAucDrop": 2})
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleMaxAucDrop: got 2"):
        load_settings(raw, "dev")
