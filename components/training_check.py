"""After the provider creates a training job: fail the deployment unless the job left a complete model.

Why this exists. terraform-provider-aws (which pulumi-aws bridges) creates a job with CreateTrainingJob and then
waits with `waitTrainingJobCreated` (internal/service/sagemaker/training_job.go): pending `InProgress`, targets
`Completed` **and** `Stopped`. So

- a job **Stopped** at `MaxRuntimeInSeconds` / `MaxWaitTimeInSeconds` (or by StopTrainingJob) counts as created,
  and the Model would be built from whatever the job uploaded, possibly nothing;
- a **Failed** job makes the waiter return an "unexpected state" error without SageMaker's `FailureReason`, and
  because Create returns before `resp.State.Set`, Pulumi records no job: the next `up` creates the same
  deterministic name again and SageMaker answers `ResourceInUse` (job names are unique per account and region
  and a job is never deleted).

The hook below runs after a successful create (`ResourceHookBinding.after_create`; hooks need Pulumi CLI
3.238.0 or newer, see README), describes the job and lists its model prefix, and raises with SageMaker's reason
and the recovery command: set `mlplatform:trainingRunId` to a new value, which is folded into the job name, so
the retry is a new job with its own model and checkpoint prefixes (a name is never reused).

The check is pure (`training_run_problem`) and the AWS calls are thin (`check_training_run`), so tests drive the
pure part with DescribeTrainingJob / ListObjectsV2 responses of botocore's own shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi

from training.model_files import COMPLETE_MODEL_FILES, MANIFEST_FILE

RUN_ID_KEY = "mlplatform:trainingRunId"


class TrainingRunFailed(RuntimeError):
    """The training job did not leave a complete model; the message says why and how to train again."""


def next_run_id(run_id: str) -> str:
    """A run id to suggest after `run_id` failed: `2` after none, `n+1` after a number, else `<id>-2`."""
    if not run_id:
        return "2"
    if run_id.isdigit():
        return str(int(run_id) + 1)
    match = re.fullmatch(r"(.*-)(\d+)", run_id)
    if match:
        return f"{match.group(1)}{int(match.group(2)) + 1}"
    return f"{run_id[:30]}-2"


def recovery(run_id: str) -> str:
    return (
        f"to train again, give the run a new id and deploy: pulumi config set {RUN_ID_KEY} {next_run_id(run_id)} "
        "&& pulumi up (the id is part of the job name, so the new job gets its own model and checkpoint prefixes)"
    )


def _prefix(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def training_run_problem(
    description: Mapping[str, Any], listed_keys: Iterable[str] | None, *, expected_model_uri: str | None, run_id: str
) -> str | None:
    """What is wrong with a finished job, or None when it left a complete model.

    `description` is a DescribeTrainingJob response; `listed_keys` the object keys under its
    `ModelArtifacts.S3ModelArtifacts` prefix (None when the response names no artifacts).
    """
    name = description.get("TrainingJobName", "?")
    status = description.get("TrainingJobStatus")
    secondary = description.get("SecondaryStatus")
    if status == "Failed":
        reason = description.get("FailureReason") or "SageMaker gave no FailureReason"
        return f"training job {name} failed ({secondary}): {reason}; {recovery(run_id)}"
    if status not in ("Completed", "Stopped"):
        return f"training job {name} is {status} ({secondary}), not Completed; {recovery(run_id)}"
    artifacts = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not artifacts or listed_keys is None:
        return f"training job {name} ended {status} ({secondary}) without model artifacts; {recovery(run_id)}"
    prefix = _prefix(artifacts)
    if expected_model_uri is not None and prefix != _prefix(expected_model_uri):
        return (
            f"training job {name} wrote its model to {prefix}, but the stack deploys {expected_model_uri}; "
            "the model location convention in components/training.py no longer matches SageMaker's"
        )
    bucket_key = prefix.removeprefix("s3://").split("/", 1)
    key_prefix = bucket_key[1] if len(bucket_key) == 2 else ""
    present = {k.removeprefix(key_prefix) for k in listed_keys}
    missing = [f for f in COMPLETE_MODEL_FILES if f not in present]
    if missing:
        how = "was stopped before the trainer wrote" if status == "Stopped" else "ended without"
        return (
            f"training job {name} {how} a complete model ({secondary}): {', '.join(missing)} missing under "
            f"{prefix} ({MANIFEST_FILE} is written last); {recovery(run_id)}"
        )
    return None


def list_keys(s3: Any, uri: str) -> list[str]:
    """Every key under an `s3://bucket/prefix/` (ListObjectsV2, all pages)."""
    bucket, _, key_prefix = _prefix(uri).removeprefix("s3://").partition("/")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def check_training_run(
    job_name: str,
    *,
    sagemaker: Any,
    s3: Any,
    expected_model_uri: str | None,
    run_id: str,
) -> dict[str, Any]:
    """Describe the job and list its model; raise TrainingRunFailed unless it left a complete model."""
    description = sagemaker.describe_training_job(TrainingJobName=job_name)
    artifacts = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    finished = description.get("TrainingJobStatus") in ("Completed", "Stopped")
    keys = list_keys(s3, artifacts) if artifacts and finished else None
    problem = training_run_problem(description, keys, expected_model_uri=expected_model_uri, run_id=run_id)
    if problem:
        raise TrainingRunFailed(problem)
    if description.get("TrainingJobStatus") == "Stopped":
        pulumi.log.warn(
            f"training job {job_name} was stopped ({description.get('SecondaryStatus')}) but wrote a complete "
            "model (the best epoch before the stop); deploying it"
        )
    return description


def model_prefix(output_path: str, job_name: str) -> str:
    """Where a job with CompressionType NONE leaves the files of /opt/ml/model: `<S3OutputPath><job>/output/model/`.

    SageMaker's documented layout is `<S3OutputPath>/<job>/output/model.tar.gz` (ModelArtifacts.S3ModelArtifacts;
    the SageMaker Python SDK's `Estimator.model_data` builds that path before a job ran); uncompressed output
    uses the same `output/model` location as a prefix. The training check compares it with the real
    `S3ModelArtifacts` of every job, so a difference fails the deployment instead of serving a wrong prefix.
    """
    return f"{_prefix(output_path)}{job_name}/output/model/"


def _output_path(inputs: Mapping[str, Any]) -> str | None:
    config = inputs.get("outputDataConfig")
    if isinstance(config, list):
        config = config[0] if config else None
    if isinstance(config, Mapping):
        path = config.get("s3OutputPath")
        return str(path) if path else None
    return None


def training_check_hook(
    hook_args: pulumi.ResourceHookArgs, *, run_id: str, sagemaker: Any = None, s3: Any = None
) -> None:
    """The after-create hook body: the job named by the hook's inputs must have left a complete model."""
    inputs = dict(hook_args.new_inputs or {})
    outputs = dict(hook_args.new_outputs or {})
    job_name = str(inputs.get("trainingJobName") or outputs.get("trainingJobName") or hook_args.id)
    output_path = _output_path(inputs)
    if sagemaker is None or s3 is None:
        import boto3

        arn = str(outputs.get("arn", ""))
        region = arn.split(":")[3] if arn.count(":") >= 5 else None
        sagemaker = sagemaker or boto3.client("sagemaker", region_name=region)
        s3 = s3 or boto3.client("s3", region_name=region)
    expected = model_prefix(output_path, job_name) if output_path else None
    check_training_run(job_name, sagemaker=sagemaker, s3=s3, expected_model_uri=expected, run_id=run_id)
