"""The after-create training check, driven with responses of botocore's own DescribeTrainingJob and
ListObjectsV2 shapes (botocore.stub.Stubber validates every response against the service model).

What it models: terraform-provider-aws `internal/service/sagemaker/training_job.go`, `waitTrainingJobCreated`
(targets `Completed` and `Stopped`; `Failed` is an "unexpected state" error without SageMaker's FailureReason),
and the API reference of DescribeTrainingJob (TrainingJobStatus, SecondaryStatus, FailureReason,
ModelArtifacts.S3ModelArtifacts) and StoppingCondition (a stop sends SIGTERM, SIGKILL 120 s later).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pulumi
import pytest
from botocore.stub import Stubber

from components.training_check import (
    TrainingRunFailed,
    model_prefix,
    next_run_id,
    training_check_hook,
)
from training.model_files import COMPLETE_MODEL_FILES

JOB = "mlplatform-dev-train-0123456789abcdef"
OUTPUT = "s3://mlplatform-dev-models-0a1b2c3/training/"
MODEL = model_prefix(OUTPUT, JOB)
KEY_PREFIX = f"training/{JOB}/output/model/"
NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def _clients() -> tuple[Any, Any]:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    return session.client("sagemaker"), session.client("s3")


def _description(status: str, secondary: str, *, artifacts: str | None = MODEL, reason: str | None = None) -> dict:
    description: dict[str, Any] = {
        "TrainingJobName": JOB,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{JOB}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img@sha256:" + "a" * 64},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "CreationTime": NOW,
        "ModelArtifacts": {"S3ModelArtifacts": artifacts} if artifacts is not None else None,
    }
    if description["ModelArtifacts"] is None:
        del description["ModelArtifacts"]
    if reason:
        description["FailureReason"] = reason
    return description


def _hook_args(run_output: str = OUTPUT) -> pulumi.ResourceHookArgs:
    return pulumi.ResourceHookArgs(
        urn="urn:pulumi:dev::mlplatform::aws:sagemaker/trainingJob:TrainingJob::mlplatform-dev-train-job",
        id=JOB,
        name="mlplatform-dev-train-job",
        type="aws:sagemaker/trainingJob:TrainingJob",
        new_inputs={"trainingJobName": JOB, "outputDataConfig": {"s3OutputPath": run_output}},
        new_outputs={"arn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{JOB}"},
    )


def _run(description: dict, keys: list[str] | None, *, run_id: str = "", output: str = OUTPUT) -> None:
    sagemaker, s3 = _clients()
    with Stubber(sagemaker) as sm, Stubber(s3) as s3_stub:
        sm.add_response("describe_training_job", description, {"TrainingJobName": JOB})
        if keys is not None:
            s3_stub.add_response(
                "list_objects_v2",
                {"Contents": [{"Key": k, "Size": 1} for k in keys], "KeyCount": len(keys), "IsTruncated": False},
                {"Bucket": "mlplatform-dev-models-0a1b2c3", "Prefix": KEY_PREFIX},
            )
        training_check_hook(_hook_args(output), run_id=run_id, sagemaker=sagemaker, s3=s3)
        sm.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


COMPLETE = [KEY_PREFIX + f for f in (*COMPLETE_MODEL_FILES, "model.int8.onnx", "evaluation.json")]


def test_a_completed_job_with_a_complete_model_passes() -> None:
    _run(_description("Completed", "Completed"), COMPLETE)


def test_a_failed_job_fails_the_deployment_with_sagemakers_reason_and_the_retry_command() -> None:
    reason = "AlgorithmError: ExecuteUserScriptError: CUDA out of memory"
    with pytest.raises(TrainingRunFailed) as caught:
        # ModelArtifacts is a required member of the response shape even for a failed job.
        _run(_description("Failed", "Failed", reason=reason), None, run_id="7")
    message = str(caught.value)
    assert reason in message
    assert "pulumi config set mlplatform:trainingRunId 8" in message


def test_a_job_stopped_at_max_runtime_before_the_model_was_written_fails() -> None:
    """The waiter accepts Stopped; a stop before the trainer's export leaves a prefix without manifest.json."""
    partial = [KEY_PREFIX + "baseline/statistics.json", KEY_PREFIX + "baseline/constraints.json"]
    with pytest.raises(TrainingRunFailed, match=r"stopped before the trainer wrote a complete model .*MaxRuntime"):
        _run(_description("Stopped", "MaxRuntimeExceeded"), partial)


def test_a_job_stopped_after_writing_its_best_model_is_deployed() -> None:
    """The trainer answers SIGTERM by writing the best epoch so far (training/runtime.py StopFlag)."""
    _run(_description("Stopped", "MaxRuntimeExceeded"), COMPLETE)


def test_a_completed_job_whose_artifacts_sit_elsewhere_fails_instead_of_serving_an_empty_prefix() -> None:
    elsewhere = f"s3://mlplatform-dev-models-0a1b2c3/training/{JOB}/output/model.tar.gz"
    sagemaker, s3 = _clients()
    with Stubber(sagemaker) as sm, Stubber(s3) as s3_stub:
        sm.add_response("describe_training_job", _description("Completed", "Completed", artifacts=elsewhere))
        s3_stub.add_response("list_objects_v2", {"Contents": [], "KeyCount": 0, "IsTruncated": False})
        with pytest.raises(TrainingRunFailed, match="the stack deploys"):
            training_check_hook(_hook_args(), run_id="", sagemaker=sagemaker, s3=s3)


@pytest.mark.parametrize(("current", "suggested"), [("", "2"), ("2", "3"), ("retry-4", "retry-5"), ("exp", "exp-2")])
def test_the_suggested_run_id_is_new(current: str, suggested: str) -> None:
    assert next_run_id(current) == suggested
