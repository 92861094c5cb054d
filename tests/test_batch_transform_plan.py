"""The stack side of batch inference (components/batch.py) and its `mlplatform:batch*` settings.

What is modelled, and where from:
- The Transform step's Arguments are a CreateTransformJob request: tools/validate.py checks them against botocore's
  model of that call (service-2.json of sagemaker: TransformInput.SplitType enum None/Line/RecordIO/TFRecord,
  BatchStrategy MultiRecord/SingleRecord, DataProcessing.JoinSource Input/None, TransformOutput.AssembleWith
  None/Line, MaxPayloadInMB 0..100), as the sagemaker SDK's workflow.steps.TransformStep builds them.
- A transform job takes no role: SageMaker uses the model's execution role (SageMaker API reference, CreateModel
  ExecutionRoleArn: "... for deployment on ML compute instances or for batch transform jobs"), so the S3 input and
  output permissions sit on the model's role and the pipeline's role passes none.
- Unset MaxPayloadInMB / MaxConcurrentTransforms: SageMaker reads GET /execution-parameters from the container
  ("Use Your Own Inference Code with Batch Transform", docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-
  code.html; aws/sagemaker-python-sdk src/sagemaker/local/entities.py _LocalTransformJob.start does the same).
- The schedule: SageMaker StartPipelineExecution is an EventBridge Scheduler templated target (Scheduler user guide
  "Using templated targets"; API reference SageMakerPipelineParameters); in the provider the target block's
  `sagemaker_pipeline_parameters` (terraform-provider-aws internal/service/scheduler/schedule.go, the `target`
  schema). The pipeline ARN is what the provider reads back from DescribePipeline (tools/mocks.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.batch import PARAM_INPUT, STEP_TRANSFORM
from components.settings import SettingsError, load_settings
from policy.rules import evaluate
from serving.app import InferenceApp
from serving.metrics import SharedMetrics
from serving.settings import MAX_BODY_BYTES
from tests.conftest import plan_with
from tools.mocks import MOCK_ACCOUNT_ID, _suffix  # pyright: ignore[reportPrivateUsage]
from tools.plan import Plan, stack_config
from tools.validate import validate_plan

SCHEDULED = {
    "mlplatform:batchEnabled": "true",
    "mlplatform:batchSchedule": "cron(0 2 * * ? *)",
    "mlplatform:batchJoinInput": "true",
    "mlplatform:batchInstanceCount": "3",
    "mlplatform:batchMaxPayloadInMb": "4",
    "mlplatform:batchMaxConcurrentTransforms": "2",
}
PLAIN = {"mlplatform:batchEnabled": "true", "mlplatform:batchContentType": "application/jsonlines"}


@pytest.fixture(scope="module")
def scheduled() -> Plan:
    return plan_with("dev", SCHEDULED)


@pytest.fixture(scope="module")
def plain() -> Plan:
    return plan_with("dev", PLAIN)


def _pipeline(plan: Plan) -> dict[str, Any]:
    return plan.named("mlplatform-dev-batch-pipeline")


def _step(plan: Plan) -> dict[str, Any]:
    (step,) = json.loads(_pipeline(plan)["inputs"]["pipelineDefinition"])["Steps"]
    assert step["Name"] == STEP_TRANSFORM
    return step


def _policy(plan: Plan, name: str) -> dict[str, Any]:
    return json.loads(plan.named(name)["inputs"]["policy"])


def _data_bucket(plan: Plan) -> str:
    """The data bucket's name as the provider reads it back (the mocks' physical name for a bucket without one)."""
    (resource,) = [r for r in plan.of_type("aws:s3/bucket:Bucket") if r["name"].endswith("-data")]
    return f"{resource['name']}-{_suffix(resource['type'], resource['name'])}".lower()


def test_batch_is_off_in_the_committed_stacks(any_plan: Plan) -> None:
    assert not [r for r in any_plan.resources if "batch" in r["name"]]


@pytest.mark.parametrize("which", ["scheduled", "plain"])
def test_enabled_plans_validate_against_the_aws_models(which: str, request: pytest.FixtureRequest) -> None:
    report = validate_plan(request.getfixturevalue(which))
    assert report.ok, [str(v) for v in report.violations[:5]]
    assert report.uncovered_types == {}


def test_enabled_plan_passes_the_policy_packs_rules(scheduled: Plan) -> None:
    """policy/rules.py: wildcard actions or resources in IAM, model network isolation, and the rest."""
    findings = [(v.rule, v.resource) for v in evaluate(scheduled.resources) if "batch" in v.resource]
    assert findings == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("TransformInput", "SplitType"), "Lines"),
        (("BatchStrategy",), "Multi"),
        (("DataProcessing", "JoinSource"), "Output"),
        (("TransformOutput", "AssembleWith"), "Newline"),
        (("MaxPayloadInMB",), -1),
    ],
)
def test_a_transform_argument_outside_create_transform_job_is_caught(
    scheduled: Plan, path: tuple[str, ...], bad: object
) -> None:
    data = scheduled.as_json()
    pipeline = next(r for r in data["resources"] if r["name"] == "mlplatform-dev-batch-pipeline")
    definition = json.loads(pipeline["inputs"]["pipelineDefinition"])
    node = definition["Steps"][0]["Arguments"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    pipeline["inputs"]["pipelineDefinition"] = json.dumps(definition)
    violations = validate_plan(data).violations
    assert any(path[-1] in v.path and "Steps[0].Arguments" in v.path for v in violations), violations


def test_the_step_scores_the_input_prefix_line_by_line_in_multi_record_requests(scheduled: Plan) -> None:
    bucket = _data_bucket(scheduled)
    step = _step(scheduled)
    assert step["Type"] == "Transform"
    arguments = step["Arguments"]
    assert arguments["BatchStrategy"] == "MultiRecord"
    assert arguments["TransformInput"]["SplitType"] == "Line"
    assert arguments["TransformInput"]["ContentType"] == "text/csv"
    assert arguments["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": f"Parameters.{PARAM_INPUT}"}
    parameters = json.loads(_pipeline(scheduled)["inputs"]["pipelineDefinition"])["Parameters"]
    assert {p["Name"]: p["DefaultValue"] for p in parameters}[PARAM_INPUT] == f"s3://{bucket}/batch/input/"
    output = arguments["TransformOutput"]
    assert output["AssembleWith"] == "Line" and output["Accept"] == "text/csv"
    assert output["S3OutputPath"] == {
        "Std:Join": {"On": "/", "Values": [f"s3://{bucket}/batch/output", {"Get": "Execution.PipelineExecutionId"}]}
    }
    assert arguments["DataProcessing"] == {"JoinSource": "Input"}
    assert arguments["TransformResources"]["InstanceCount"] == 3
    assert (arguments["MaxPayloadInMB"], arguments["MaxConcurrentTransforms"]) == (4, 2)


def test_the_batch_model_is_the_endpoints_image_and_files(scheduled: Plan) -> None:
    batch_model = scheduled.named("mlplatform-dev-batch-model")["inputs"]
    endpoint_model = scheduled.named("mlplatform-dev-endpoint-model")["inputs"]
    assert batch_model["primaryContainer"] == endpoint_model["primaryContainer"]
    assert "@sha256:" in batch_model["primaryContainer"]["image"]
    assert _step(scheduled)["Arguments"]["ModelName"].startswith("mlplatform-dev-batch-model-")


def test_unset_payload_and_concurrency_are_left_to_the_containers_execution_parameters(plain: Plan) -> None:
    arguments = _step(plain)["Arguments"]
    assert "MaxPayloadInMB" not in arguments and "MaxConcurrentTransforms" not in arguments
    assert arguments["TransformInput"]["ContentType"] == arguments["TransformOutput"]["Accept"]
    assert arguments["TransformOutput"]["Accept"] == "application/jsonlines"
    assert arguments["DataProcessing"] == {"JoinSource": "None"}
    # What SageMaker then gets from the container fits what the container accepts in one request.
    answer = json.loads(InferenceApp(SharedMetrics(1), workers=2).execution_parameters().body)
    assert answer == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 6}
    assert answer["MaxPayloadInMB"] * 1024 * 1024 <= MAX_BODY_BYTES


def test_the_schedule_starts_this_pipeline_and_its_role_may_start_nothing_else(scheduled: Plan) -> None:
    pipeline_name = _pipeline(scheduled)["inputs"]["pipelineName"]
    arn = f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:pipeline/{pipeline_name}"
    schedule = scheduled.named("mlplatform-dev-batch-schedule")["inputs"]
    assert schedule["scheduleExpression"] == "cron(0 2 * * ? *)"
    assert schedule["target"]["arn"] == arn
    (statement,) = _policy(scheduled, "mlplatform-dev-batch-scheduler-policy")["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("sagemaker:StartPipelineExecution", arn)
    trust = json.loads(scheduled.named("mlplatform-dev-batch-scheduler-role")["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}


def test_without_a_schedule_nothing_starts_the_pipeline(plain: Plan) -> None:
    assert not [r for r in plain.of_type("aws:scheduler/schedule:Schedule") if "batch" in r["name"]]


def test_the_jobs_read_only_the_input_and_model_and_write_only_the_output(scheduled: Plan) -> None:
    bucket = _data_bucket(scheduled)
    statements = {s["Sid"]: s for s in _policy(scheduled, "mlplatform-dev-batch-model-policy")["Statement"]}
    model_prefix = scheduled.named("mlplatform-dev-batch-model")["inputs"]["primaryContainer"]["modelDataSource"]
    model_uri = model_prefix["s3DataSources"][0]["s3Uri"].removeprefix("s3://")
    assert sorted(statements["ReadModelAndInput"]["Resource"]) == sorted(
        [f"arn:aws:s3:::{model_uri}*", f"arn:aws:s3:::{bucket}/batch/input/*"]
    )
    assert statements["WriteOutput"]["Resource"] == f"arn:aws:s3:::{bucket}/batch/output/*"
    actions = [a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert not [a for a in actions if a.endswith("*")]
    pipeline_statements = _policy(scheduled, "mlplatform-dev-batch-pipeline-policy")["Statement"]
    pipeline_actions = {
        a for s in pipeline_statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "sagemaker:CreateTransformJob" in pipeline_actions
    assert "iam:PassRole" not in pipeline_actions  # CreateTransformJob passes no role
    assert pipeline_statements[0]["Resource"].endswith(":transform-job/pipelines-*")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mlplatform:batchMaxPayloadInMb": "7"}, "mlplatform:batchMaxPayloadInMb: got '7'"),
        (
            {"mlplatform:batchMaxPayloadInMb": "6", "mlplatform:batchMaxConcurrentTransforms": "20"},
            "mlplatform:batchMaxPayloadInMb x mlplatform:batchMaxConcurrentTransforms (6 x 20)",
        ),
        ({"mlplatform:batchOutputPrefix": "batch/input/answers/"}, "must not contain each other"),
        ({"mlplatform:batchContentType": "application/json"}, "mlplatform:batchContentType"),
        ({"mlplatform:batchInstanceType": "m5.large"}, "mlplatform:batchInstanceType"),
        ({"mlplatform:batchSchedule": "every day"}, "mlplatform:batchSchedule"),
    ],
)
def test_bad_batch_settings_name_the_full_key(changes: dict[str, str], message: str) -> None:
    config = {**stack_config("dev"), "mlplatform:batchEnabled": "true", **changes}
    with pytest.raises(SettingsError) as raised:
        load_settings(config, "dev")
    assert message in str(raised.value)
