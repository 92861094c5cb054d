"""`make train STACK=dev` (tools/train.py): starts the stack's training pipeline from its outputs.

The SageMaker client is real boto3 with botocore's Stubber, so the StartPipelineExecution request is validated
against the installed botocore model (PipelineName, PipelineParameters of Name/Value, ClientRequestToken of 32 to
128 characters) and the canned response against its output shape. `pulumi stack output --json --stack S` is
replaced by a recorded runner returning what the CLI prints: a JSON object of the stack's outputs.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from components import outputs as contract
from tools.train import main

ARN = "arn:aws:sagemaker:eu-west-1:111122223333:pipeline/mlplatform-dev-lifecycle-training/execution/abc123"
OUTPUTS = {contract.TRAINING_PIPELINE_NAME: "mlplatform-dev-lifecycle-training", contract.REGION: "eu-west-1"}


class Runner:
    def __init__(self, stdout: str, returncode: int = 0) -> None:
        self.stdout, self.returncode = stdout, returncode
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, self.returncode, self.stdout, "error: no stack named 'dev'")


@pytest.fixture
def stubbed() -> tuple[Any, Stubber, list[str | None]]:
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    regions: list[str | None] = []
    return client, Stubber(client), regions


def test_starts_the_stacks_pipeline_with_the_trigger_and_champion(
    stubbed: tuple[Any, Stubber, list[str | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub, regions = stubbed
    runner = Runner(json.dumps(OUTPUTS))
    stub.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": ARN},
        {
            "PipelineName": "mlplatform-dev-lifecycle-training",
            "PipelineExecutionDescription": "started by ci",
            "PipelineParameters": [
                {"Name": "TriggeredBy", "Value": "ci"},
                {"Name": "ChampionModelDataUrl", "Value": "s3://m/approved/v3/"},
            ],
            "ClientRequestToken": ANY,
        },
    )
    with stub:
        code = main(
            ["--stack", "dev", "--trigger", "ci", "--champion", "s3://m/approved/v3/"],
            client_factory=lambda region: regions.append(region) or client,
            runner=runner,
        )
        stub.assert_no_pending_responses()
    assert code == 0
    assert runner.calls == [["pulumi", "stack", "output", "--json", "--stack", "dev"]]
    assert regions == ["eu-west-1"]  # the stack's region output, not the caller's default
    assert ARN in capsys.readouterr().out


def test_a_stack_without_the_lifecycle_is_refused_naming_the_setting(
    stubbed: tuple[Any, Stubber, list[str | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    client, _, _ = stubbed
    runner = Runner(json.dumps({contract.REGION: "eu-west-1"}))
    assert main(["--stack", "dev"], client_factory=lambda r: client, runner=runner) == 2
    assert "mlplatform:lifecycleEnabled" in capsys.readouterr().err


def test_failing_cli_and_bad_champion_are_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "dev"], client_factory=lambda r: None, runner=Runner("", returncode=255)) == 2
    assert "pulumi stack output --stack dev` failed: error: no stack named 'dev'" in capsys.readouterr().err
    assert main(["--stack", "dev", "--champion", "v3"], runner=Runner(json.dumps(OUTPUTS))) == 2
    assert "allowed: an S3 prefix" in capsys.readouterr().err


def test_aws_refusal_exits_1(
    stubbed: tuple[Any, Stubber, list[str | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub, _ = stubbed
    stub.add_client_error("start_pipeline_execution", "ResourceNotFound", "Pipeline does not exist")
    with stub:
        code = main(["--stack", "dev"], client_factory=lambda r: client, runner=Runner(json.dumps(OUTPUTS)))
    assert code == 1
    assert "could not start mlplatform-dev-lifecycle-training" in capsys.readouterr().err
