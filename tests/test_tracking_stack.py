"""The stack side of experiment tracking: the MLflow tracking server (components/tracking.py), its role, and the
pipeline's Evaluate and Register steps wired to it.

What the mocks model (tools/mocks.py): terraform-provider-aws internal/service/sagemaker/mlflow_tracking_server.go
(resourceMlflowTrackingServerCreate: CreateMlflowTrackingServer, `d.SetId(name)`; Read sets `arn` from
DescribeMlflowTrackingServer's TrackingServerArn, `arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME`;
schema defaults tracking_server_size Small and automatic_model_registration false), documented as
website/docs/r/sagemaker_mlflow_tracking_server.html.markdown (tracking_server_name, artifact_store_uri, role_arn
required). The server's inputs are checked by tools/validate.py against botocore's CreateMlflowTrackingServer
request. The job role's `sagemaker-mlflow:*` actions are checked against parliament's copy of the AWS Service
Authorization Reference ("Actions, resources, and condition keys for Amazon SageMaker with MLflow": resource type
mlflow-tracking-server). A processing step's `Environment` is CreateProcessingJob's ProcessingEnvironmentMap.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components.pipeline import GATE_PROPERTY_FILE, STEP_EVALUATE, STEP_GATE, STEP_REGISTER, STEP_TRAIN
from components.settings import SettingsError, load_settings
from components.tracking import ARTIFACT_PREFIX, LOGGING_ACTIONS
from tests.conftest import plan_with
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan, stack_config
from tools.validate import validate_plan
from training.tracking import EXPERIMENT_ENV, RUN_ID_KEY, TRACKING_URI_ENV

SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
LIFECYCLE = {"mlplatform:lifecycleEnabled": "true"}
TRACKED = {**LIFECYCLE, "mlplatform:lifecycleTracking": "true"}


@pytest.fixture(scope="module")
def tracked_plan() -> Plan:
    return plan_with("dev", TRACKED)


def _definition(plan: Plan) -> dict[str, Any]:
    (pipeline,) = [
        r for r in plan.of_type("aws:sagemaker/pipeline:Pipeline") if r["name"].endswith("-lifecycle-pipeline")
    ]
    return json.loads(pipeline["inputs"]["pipelineDefinition"])


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = {s["Name"]: s for s in definition["Steps"]}
    steps.update({s["Name"]: s for s in steps[STEP_GATE]["Arguments"]["IfSteps"]})
    return steps


def _server_arn(plan: Plan) -> str:
    name = plan.one(SERVER)["inputs"]["trackingServerName"]
    return f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:mlflow-tracking-server/{name}"


def test_no_tracking_server_unless_tracking_is_on(any_plan: Plan) -> None:
    assert any_plan.of_type(SERVER) == []
    lifecycle_only = plan_with("dev", LIFECYCLE)
    assert lifecycle_only.of_type(SERVER) == []
    evaluate = _steps(_definition(lifecycle_only))[STEP_EVALUATE]["Arguments"]
    assert "Environment" not in evaluate
    assert evaluate["NetworkConfig"] == {"EnableNetworkIsolation": True}
    register = _steps(_definition(lifecycle_only))[STEP_REGISTER]["Arguments"]
    assert RUN_ID_KEY not in register["CustomerMetadataProperties"]
    policy = json.loads(lifecycle_only.named("mlplatform-dev-lifecycle-job-policy")["inputs"]["policy"])
    assert not [s for s in policy["Statement"] if "sagemaker-mlflow" in json.dumps(s)]


def test_tracking_plan_validates_against_the_aws_models(tracked_plan: Plan) -> None:
    report = validate_plan(tracked_plan)
    assert report.ok, [str(v) for v in report.violations[:5]]
    assert report.uncovered_types == {}
    assert report.coverage[SERVER].resources == 1


def test_server_keeps_artifacts_under_the_model_bucket_with_its_own_role(tracked_plan: Plan) -> None:
    server = tracked_plan.one(SERVER)["inputs"]
    bucket = tracked_plan.named("mlplatform-dev-lifecycle-no-champion")["inputs"]["bucket"]  # the model bucket
    assert server["artifactStoreUri"] == f"s3://{bucket}/{ARTIFACT_PREFIX}"
    assert server["trackingServerSize"] == "Small"
    assert server["automaticModelRegistration"] is False  # the model package group stays the registry
    role = tracked_plan.named("mlplatform-dev-tracking-role")
    assert server["roleArn"].startswith(f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/mlplatform-dev-tracking-role")
    assert "sagemaker.amazonaws.com" in role["inputs"]["assumeRolePolicy"]
    policy = json.loads(tracked_plan.named("mlplatform-dev-tracking-policy")["inputs"]["policy"])
    writes = next(s for s in policy["Statement"] if s["Sid"] == "UseArtifactStore")
    assert writes["Resource"] == f"arn:aws:s3:::{bucket}/{ARTIFACT_PREFIX}*"
    assert "s3:PutObject" in writes["Action"]
    key = next(s for s in policy["Statement"] if s["Sid"] == "UseProjectKey")
    assert key["Resource"].startswith(f"arn:aws:kms:us-east-1:{MOCK_ACCOUNT_ID}:key/")


def test_size_version_and_window_settings_reach_the_server() -> None:
    plan = plan_with(
        "dev",
        {
            **TRACKED,
            "mlplatform:lifecycleTrackingServerSize": "Medium",
            "mlplatform:lifecycleTrackingMlflowVersion": "3.0",
            "mlplatform:lifecycleTrackingMaintenanceWindow": "Tue:03:30",
        },
    )
    server = plan.one(SERVER)["inputs"]
    assert (server["trackingServerSize"], server["mlflowVersion"], server["weeklyMaintenanceWindowStart"]) == (
        "Medium",
        "3.0",
        "Tue:03:30",
    )


def test_evaluate_step_reports_to_the_server_and_register_keeps_the_run_id(tracked_plan: Plan) -> None:
    steps = _steps(_definition(tracked_plan))
    evaluate = steps[STEP_EVALUATE]["Arguments"]
    assert evaluate["Environment"][TRACKING_URI_ENV] == _server_arn(tracked_plan)
    assert evaluate["Environment"][EXPERIMENT_ENV] == "mlplatform-dev-lifecycle-training"
    assert evaluate["NetworkConfig"] == {"EnableNetworkIsolation": False}  # it must reach the server
    assert steps[STEP_TRAIN]["Arguments"]["EnableNetworkIsolation"] is True  # training stays isolated
    args = evaluate["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--run-name") + 1] == {"Get": f"Steps.{STEP_TRAIN}.TrainingJobName"}
    metadata = steps[STEP_REGISTER]["Arguments"]["CustomerMetadataProperties"]
    assert metadata[RUN_ID_KEY] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{STEP_EVALUATE}.PropertyFiles.{GATE_PROPERTY_FILE}"},
            "Path": RUN_ID_KEY,  # the key training/steps.py writes into gate.json
        }
    }


def test_evaluate_arguments_parse_with_the_training_images_command_line(tracked_plan: Plan) -> None:
    from training.__main__ import _parser

    args = _steps(_definition(tracked_plan))[STEP_EVALUATE]["Arguments"]["AppSpecification"]["ContainerArguments"]
    resolved = ["pipelines-x-Train" if isinstance(a, dict) else a for a in args]  # SageMaker resolves the Get
    parsed = _parser().parse_args(resolved)
    assert parsed.run_name == "pipelines-x-Train"


def _iam_actions() -> dict[str, set[str]]:
    from tools.validate import _parliament  # parliament, with its data files found (see its docstring)

    definition = _parliament().iam_definition
    return {s["prefix"]: {p["privilege"] for p in s["privileges"]} for s in definition}


def test_job_role_may_log_to_this_server_only(tracked_plan: Plan) -> None:
    policy = json.loads(tracked_plan.named("mlplatform-dev-lifecycle-job-policy")["inputs"]["policy"])
    track = next(s for s in policy["Statement"] if s["Sid"] == "TrackExperiments")
    assert track["Resource"] == _server_arn(tracked_plan)
    known = _iam_actions()["sagemaker-mlflow"]
    assert {a.split(":", 1)[1] for a in track["Action"]} <= known
    # What record_run calls through mlflow's REST store (mlflow/store/tracking/rest_store.py).
    for needed in ("GetExperimentByName", "CreateExperiment", "CreateRun", "LogBatch", "UpdateRun", "GetRun"):
        assert f"sagemaker-mlflow:{needed}" in track["Action"]
    assert set(track["Action"]) == set(LOGGING_ACTIONS)
    artifacts = next(s for s in policy["Statement"] if s["Sid"] == "WriteTrackingArtifacts")
    server = tracked_plan.one(SERVER)["inputs"]
    assert artifacts["Resource"] == "arn:aws:s3:::" + server["artifactStoreUri"].removeprefix("s3://") + "*"


def test_tracking_without_the_lifecycle_is_refused_naming_both_keys() -> None:
    raw = copy.deepcopy(stack_config("dev"))
    raw["mlplatform:lifecycleTracking"] = "true"
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleTracking true .*mlplatform:lifecycleEnabled true"):
        load_settings(raw, "dev")
    raw.update({**TRACKED, "mlplatform:lifecycleTrackingServerSize": "Tiny"})
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleTrackingServerSize"):
        load_settings(raw, "dev")


def test_tracking_keys_are_documented() -> None:
    text = Path("Pulumi.yaml").read_text(encoding="utf-8")
    for key in ("lifecycleTracking", "lifecycleTrackingServerSize", "lifecycleTrackingMlflowVersion"):
        assert f"mlplatform:{key}:" in text


def test_the_pipeline_uses_the_containers_tracking_names() -> None:
    from components import pipeline
    from training import tracking

    assert (pipeline.TRACKING_URI_ENV, pipeline.EXPERIMENT_ENV, pipeline.RUN_ID_KEY) == (
        tracking.TRACKING_URI_ENV,
        tracking.EXPERIMENT_ENV,
        tracking.RUN_ID_KEY,
    )
