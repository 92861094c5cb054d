"""The three model sources (train, stack, pinned) give the same ModelArtifacts; a bad promoted stack fails clearly."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.model_source import (
    BASELINE_CONSTRAINTS_URI,
    BASELINE_STATISTICS_URI,
    MODEL_DATA_URI,
    SERVING_IMAGE,
    ModelArtifacts,
    ModelSourceError,
    check_stack_outputs,
    resolve_model_artifacts,
)
from components.settings import ModelSourceSettings
from components.training import ModelTraining
from tools.plan import Plan, run_program

SERVING = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving-repo-1a2b3c4@sha256:" + "b" * 64
TRAINING = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-training-repo-1a2b3c4@sha256:" + "a" * 64
DEV_STACK = "organization/mlplatform/dev"
DEV_MODEL = "s3://mlplatform-dev-models-0a1b2c3/training/mlplatform-dev-0123456789abcdef/output/model/"
DEV_OUTPUTS = {
    MODEL_DATA_URI: DEV_MODEL,
    BASELINE_STATISTICS_URI: DEV_MODEL + "baseline/statistics.json",
    BASELINE_CONSTRAINTS_URI: DEV_MODEL + "baseline/constraints.json",
    SERVING_IMAGE: SERVING,
    "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}
OUTPUT_NAMES = {MODEL_DATA_URI, BASELINE_STATISTICS_URI, BASELINE_CONSTRAINTS_URI, SERVING_IMAGE}


def _run(
    source: ModelSourceSettings, stack_outputs: dict[str, dict[str, Any]] | None = None, stack: str = "prod"
) -> Plan:
    def program() -> None:
        training = None
        serving: str | None = None
        if source.source == "train":
            training = ModelTraining(
                "mlplatform-dev",
                {
                    "image_ref": TRAINING,
                    "image_repository_arn": "arn:aws:ecr:us-east-1:111122223333:repository/training",
                    "data_bucket": "mlplatform-dev-data-0a1b2c3",
                    "model_bucket": "mlplatform-dev-models-0a1b2c3",
                    "kms_key_arn": "arn:aws:kms:us-east-1:111122223333:key/k",
                    "instance_type": "ml.g5.xlarge",
                    "instance_count": 1,
                    "volume_size_gb": 50,
                    "max_runtime_seconds": 3600,
                    "spot": True,
                    "max_wait_seconds": 7200,
                    "hyperparameters": {"epochs": "20"},
                    "train_prefix": "datasets/demo/train/",
                    "validation_prefix": "datasets/demo/validation/",
                },
            )
            serving = SERVING
        artifacts = resolve_model_artifacts("mlplatform-" + stack, source, training=training, serving_image=serving)
        for key, value in artifacts.exports().items():
            pulumi.export(key, value)

    return run_program(stack, {"aws:region": "us-east-1"}, program=program, stack_outputs=stack_outputs)


def test_output_names_are_the_agreed_contract() -> None:
    assert (MODEL_DATA_URI, BASELINE_STATISTICS_URI, BASELINE_CONSTRAINTS_URI, SERVING_IMAGE) == (
        "modelDataUri",
        "baselineStatisticsUri",
        "baselineConstraintsUri",
        "servingImage",
    )


def test_artifacts_are_frozen() -> None:
    artifacts = ModelArtifacts(*(pulumi.Output.from_input("x") for _ in range(4)))
    with pytest.raises(AttributeError):
        artifacts.serving_image = pulumi.Output.from_input("y")  # type: ignore[misc]


def test_train_source_takes_this_stacks_training_job_and_serving_image() -> None:
    plan = _run(ModelSourceSettings(source="train"), stack="dev")
    job_name = plan.one("aws:sagemaker/trainingJob:TrainingJob")["inputs"]["trainingJobName"]
    model = f"s3://mlplatform-dev-models-0a1b2c3/training/{job_name}/output/model/"
    assert plan.outputs == {
        MODEL_DATA_URI: model,
        BASELINE_STATISTICS_URI: model + "baseline/statistics.json",
        BASELINE_CONSTRAINTS_URI: model + "baseline/constraints.json",
        SERVING_IMAGE: SERVING,
    }
    assert plan.of_type("pulumi:pulumi:StackReference") == []


def test_train_source_without_a_training_job_is_refused() -> None:
    with pytest.raises(ModelSourceError, match="needs this stack's training job and serving image"):
        resolve_model_artifacts("x", ModelSourceSettings(source="train"))


def test_stack_source_reads_the_promoted_stacks_outputs() -> None:
    plan = _run(ModelSourceSettings(source="stack", stack=DEV_STACK), stack_outputs={DEV_STACK: DEV_OUTPUTS})
    assert plan.outputs == {k: DEV_OUTPUTS[k] for k in OUTPUT_NAMES}
    ref = plan.one("pulumi:pulumi:StackReference")
    assert ref["name"] == "mlplatform-prod-model-source"
    assert ref["inputs"]["name"] == DEV_STACK
    assert plan.of_type("aws:sagemaker/trainingJob:TrainingJob") == []


def test_stack_source_missing_outputs_fail_naming_the_stack_and_each_output() -> None:
    partial = {k: v for k, v in DEV_OUTPUTS.items() if k not in (SERVING_IMAGE, BASELINE_CONSTRAINTS_URI)}
    with pytest.raises(ModelSourceError) as caught:
        _run(ModelSourceSettings(source="stack", stack=DEV_STACK), stack_outputs={DEV_STACK: partial})
    message = str(caught.value)
    assert DEV_STACK in message and "mlplatform:modelStack" in message
    assert "'baselineConstraintsUri'" in message and "'servingImage'" in message
    assert "'modelDataUri'" not in message


def test_stack_source_with_no_such_stack_outputs_fails_clearly() -> None:
    with pytest.raises(ModelSourceError, match=r"stack 'org/mlplatform/missing'.*no output 'modelDataUri'"):
        _run(ModelSourceSettings(source="stack", stack="org/mlplatform/missing"), stack_outputs={})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (SERVING_IMAGE, "registry/serving:latest", "by digest"),
        (MODEL_DATA_URI, DEV_MODEL.rstrip("/"), "ending with '/'"),
        (MODEL_DATA_URI, "https://example.com/model/", "S3 URI"),
        (BASELINE_STATISTICS_URI, DEV_MODEL + "baseline/", "JSON file"),
        (BASELINE_CONSTRAINTS_URI, 42, "must be a string"),
    ],
)
def test_malformed_stack_outputs_are_refused_by_name(key: str, value: object, expected: str) -> None:
    with pytest.raises(ModelSourceError, match=f"output '{key}'.*{expected}"):
        check_stack_outputs(DEV_STACK, {**DEV_OUTPUTS, key: value})


def test_pinned_source_takes_the_configured_values() -> None:
    pinned = ModelSourceSettings(
        source="pinned",
        data_uri=DEV_OUTPUTS[MODEL_DATA_URI],
        baseline_statistics_uri=DEV_OUTPUTS[BASELINE_STATISTICS_URI],
        baseline_constraints_uri=DEV_OUTPUTS[BASELINE_CONSTRAINTS_URI],
        serving_image=SERVING,
    )
    plan = _run(pinned)
    assert plan.outputs == {k: DEV_OUTPUTS[k] for k in OUTPUT_NAMES}
    assert plan.resources == []


def test_pinned_model_prefix_without_trailing_slash_is_refused_naming_the_key() -> None:
    from components.settings import SettingsError, load_settings

    raw = {
        "aws:region": "us-east-1",
        "mlplatform:owner": "ml-team",
        "mlplatform:environment": "dev",
        "mlplatform:modelSource": "pinned",
        "mlplatform:modelDataUri": DEV_MODEL.rstrip("/"),
        "mlplatform:modelBaselineStatisticsUri": DEV_OUTPUTS[BASELINE_STATISTICS_URI],
        "mlplatform:modelBaselineConstraintsUri": DEV_OUTPUTS[BASELINE_CONSTRAINTS_URI],
        "mlplatform:modelServingImage": SERVING,
    }
    with pytest.raises(SettingsError, match=r"mlplatform:modelDataUri must be the S3 prefix of the model files"):
        load_settings(raw, "dev")


@pytest.mark.parametrize("form", ["train", "stack", "pinned"])
def test_every_source_exports_the_same_output_names(form: str) -> None:
    settings = {
        "train": ModelSourceSettings(source="train"),
        "stack": ModelSourceSettings(source="stack", stack=DEV_STACK),
        "pinned": ModelSourceSettings(
            source="pinned",
            data_uri=DEV_MODEL,
            baseline_statistics_uri=DEV_OUTPUTS[BASELINE_STATISTICS_URI],
            baseline_constraints_uri=DEV_OUTPUTS[BASELINE_CONSTRAINTS_URI],
            serving_image=SERVING,
        ),
    }[form]
    plan = _run(settings, stack_outputs={DEV_STACK: DEV_OUTPUTS}, stack="dev" if form == "train" else "prod")
    assert set(plan.outputs) == OUTPUT_NAMES
    assert all(isinstance(v, str) and v for v in plan.outputs.values())
