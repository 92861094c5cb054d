"""tools.verify: a deployment passes only when the endpoint is InService on the config the stack rolled out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tools.verify import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    VerificationFailed,
    VerificationTimedOut,
    main,
    verify_endpoint,
)

ENDPOINT = "mlplatform-dev"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-serving@sha256:" + "ab" * 32


class FakeClock:
    """Monotonic clock advanced only by the fake sleep: waits take no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def described(status: str, config: str, failure: str | None = None) -> dict[str, Any]:
    """A DescribeEndpoint response with the fields botocore requires."""
    response: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:111122223333:endpoint/{ENDPOINT}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:10:00Z",
    }
    if failure:
        response["FailureReason"] = failure
    return response


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def queue(stubber: Stubber, *responses: dict[str, Any]) -> None:
    for response in responses:
        stubber.add_response("describe_endpoint", response, {"EndpointName": ENDPOINT})


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real endpoint config and endpoint in moto (ml.m5: moto rejects the g5/g6/p4d/p5 families)."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model(
            ModelName="ep-model-1",
            ExecutionRoleArn="arn:aws:iam::111122223333:role/ep-role",
            PrimaryContainer={"Image": IMAGE},
        )
        client.create_endpoint_config(
            EndpointConfigName="ep-config-1",
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": "ep-model-1",
                    "InitialInstanceCount": 2,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="ep-config-1")
        yield client


# --- verify_endpoint ------------------------------------------------------------------------------------------


def test_healthy_endpoint_on_the_expected_config_passes(moto_endpoint: Any) -> None:
    state = verify_endpoint(moto_endpoint, ENDPOINT, "ep-config-1", timeout_seconds=0)
    assert (state.status, state.config_name, state.failure_reason, state.polls) == (
        "InService",
        "ep-config-1",
        None,
        1,
    )


def test_endpoint_on_another_config_fails_as_not_rolled_out(moto_endpoint: Any) -> None:
    with pytest.raises(VerificationFailed, match="expected config ep-config-2, actual config ep-config-1"):
        verify_endpoint(moto_endpoint, ENDPOINT, "ep-config-2", timeout_seconds=0)


def test_sagemaker_rollback_fails_naming_both_configs_and_the_reason(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    queue(stubber, described("InService", "cfg-old", "Rolled back: alarm mlplatform-dev-rollback-5xx in ALARM"))
    with pytest.raises(VerificationFailed) as err:
        verify_endpoint(client, ENDPOINT, "cfg-new", timeout_seconds=0)
    message = str(err.value)
    assert "SageMaker rolled endpoint mlplatform-dev back" in message
    assert "expected config cfg-new, actual config cfg-old" in message
    assert "alarm mlplatform-dev-rollback-5xx in ALARM" in message
    assert not isinstance(err.value, VerificationTimedOut)


def test_failure_reason_on_the_expected_config_still_fails(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    queue(stubber, described("InService", "cfg-new", "Update failed: capacity"))
    with pytest.raises(VerificationFailed, match="reports a failed update; SageMaker's failure reason: Update failed"):
        verify_endpoint(client, ENDPOINT, "cfg-new", timeout_seconds=0)


def test_updating_then_in_service_waits_then_passes(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = FakeClock()
    queue(
        stubber,
        described("Updating", "cfg-old"),
        described("Updating", "cfg-old"),
        described("InService", "cfg-new"),
    )
    state = verify_endpoint(
        client, ENDPOINT, "cfg-new", timeout_seconds=600, poll_seconds=20, sleep=clock.sleep, clock=clock
    )
    assert (state.status, state.config_name, state.polls) == ("InService", "cfg-new", 3)
    assert clock.sleeps == [20, 20]


@pytest.mark.parametrize("status", ["Failed", "RollingBack", "UpdateRollbackFailed", "OutOfService"])
def test_failed_statuses_fail_at_once(stubbed: tuple[Any, Stubber], status: str) -> None:
    client, stubber = stubbed
    queue(stubber, described(status, "cfg-old", "CannotStartContainerError: /ping never answered"))
    with pytest.raises(VerificationFailed) as err:
        verify_endpoint(client, ENDPOINT, "cfg-new", timeout_seconds=600)
    message = str(err.value)
    assert f"endpoint mlplatform-dev is {status}" in message
    assert "expected config cfg-new, actual config cfg-old" in message
    assert "CannotStartContainerError" in message


def test_still_updating_after_the_timeout_fails_as_timed_out(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = FakeClock()
    queue(stubber, *[described("Updating", "cfg-old")] * 4)
    with pytest.raises(VerificationTimedOut, match=r"still Updating after 90 s \(expected config cfg-new"):
        verify_endpoint(
            client, ENDPOINT, "cfg-new", timeout_seconds=90, poll_seconds=30, sleep=clock.sleep, clock=clock
        )
    assert clock.sleeps == [30, 30, 30]


def test_last_sleep_is_cut_to_the_deadline(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = FakeClock()
    queue(stubber, described("Creating", "cfg-new"), described("Creating", "cfg-new"), described("Creating", "cfg-new"))
    with pytest.raises(VerificationTimedOut):
        verify_endpoint(
            client, ENDPOINT, "cfg-new", timeout_seconds=50, poll_seconds=30, sleep=clock.sleep, clock=clock
        )
    assert clock.sleeps == [30, 20]


# --- command line ---------------------------------------------------------------------------------------------


def write_outputs(tmp_path: Path, outputs: dict[str, Any]) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def outputs_for(config: str) -> dict[str, Any]:
    return {"endpointName": ENDPOINT, "endpointConfigName": config, "region": "us-east-1", "dataBucket": "b"}


def test_cli_exits_0_on_a_verified_deployment(
    moto_endpoint: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--outputs", str(write_outputs(tmp_path, outputs_for("ep-config-1")))])
    assert code == EXIT_OK
    assert "verify: OK: endpoint mlplatform-dev is InService on config ep-config-1" in capsys.readouterr().out


def test_cli_exits_1_on_a_rollback(
    stubbed: tuple[Any, Stubber], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = stubbed
    queue(stubber, described("InService", "cfg-old", "alarm tripped"))
    code = main(
        ["--outputs", str(write_outputs(tmp_path, outputs_for("cfg-new")))], client_factory=lambda region: client
    )
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "verify: FAILED: SageMaker rolled endpoint mlplatform-dev back" in err
    assert "expected config cfg-new, actual config cfg-old" in err


def test_cli_exits_3_when_the_wait_runs_out(
    stubbed: tuple[Any, Stubber], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = stubbed
    queue(stubber, described("Updating", "cfg-old"))
    code = main(
        ["--outputs", str(write_outputs(tmp_path, outputs_for("cfg-new"))), "--timeout", "0"],
        client_factory=lambda region: client,
    )
    assert code == EXIT_TIMED_OUT
    assert "still Updating after 0 s" in capsys.readouterr().err


def test_cli_reads_the_stack_outputs_through_the_pulumi_cli(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    queue(stubber, described("InService", "cfg-new"))
    calls: list[list[str]] = []
    regions: list[str | None] = []

    def runner(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(outputs_for("cfg-new")), stderr="")

    def factory(region: str | None) -> Any:
        regions.append(region)
        return client

    assert main(["--stack", "prod"], client_factory=factory, runner=runner) == EXIT_OK
    assert calls == [["pulumi", "stack", "output", "--json", "--stack", "prod"]]
    assert regions == ["us-east-1"]


def test_cli_region_flag_wins_over_the_stack_output(stubbed: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stubber = stubbed
    queue(stubber, described("InService", "cfg-new"))
    regions: list[str | None] = []

    def factory(region: str | None) -> Any:
        regions.append(region)
        return client

    path = write_outputs(tmp_path, outputs_for("cfg-new"))
    assert main(["--outputs", str(path), "--region", "eu-west-1"], client_factory=factory) == EXIT_OK
    assert regions == ["eu-west-1"]


def test_cli_exits_2_when_outputs_lack_the_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outputs(tmp_path, {"endpointName": ENDPOINT, "region": "us-east-1"})
    assert main(["--outputs", str(path)], client_factory=lambda r: pytest.fail("no AWS call expected")) == 2
    assert "lacks the output(s) endpointConfigName" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "cannot read outputs file"), ("not json", "not JSON"), ("[1, 2]", "expected a JSON object")],
)
def test_cli_exits_2_on_an_unreadable_outputs_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, fragment: str
) -> None:
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_text(content)
    assert main(["--outputs", str(path)]) == EXIT_BAD_INPUT
    assert fragment in capsys.readouterr().err


def test_cli_exits_2_without_the_pulumi_cli(capsys: pytest.CaptureFixture[str]) -> None:
    def missing(cmd: list[str], **kwargs: Any) -> Any:
        raise FileNotFoundError(cmd[0])

    assert main(["--stack", "dev"], runner=missing) == EXIT_BAD_INPUT
    assert "the Pulumi CLI is not installed" in capsys.readouterr().err


def test_cli_exits_2_when_pulumi_stack_output_fails(capsys: pytest.CaptureFixture[str]) -> None:
    def failing(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 255, stdout="", stderr="error: no stack named 'qa' found")

    assert main(["--stack", "qa"], runner=failing) == EXIT_BAD_INPUT
    assert "no stack named 'qa' found" in capsys.readouterr().err


def test_cli_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "one of the arguments --stack --outputs is required" in capsys.readouterr().err


def test_cli_refuses_a_non_positive_poll(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outputs(tmp_path, outputs_for("cfg-new"))
    assert main(["--outputs", str(path), "--poll", "0"]) == EXIT_BAD_INPUT
    assert "--poll > 0" in capsys.readouterr().err


def test_module_runs_as_a_program(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.verify", "--outputs", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert "cannot read outputs file" in done.stderr
