"""Whether an endpoint serves the config a deployment asked for: the check behind the endpoint's after-update hook
and `python -m tools.verify`.

Part of the program (the hook runs inside `pulumi up`), so it lives in components/; `tools.verify` is its command
line. The AWS provider reports a blue/green update as successful even when SageMaker rolled it back to the old
config (terraform-provider-aws issues #48997, #46663), and its waiter fails on `RollingBack` (PR #49020).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMED_OUT = 3

# SageMaker is still working on these: wait (bounded).
TRANSIENT_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating"})
# These can never end on the new config: fail at once.
FAILED_STATUSES = frozenset({"Failed", "RollingBack", "UpdateRollbackFailed", "OutOfService", "Deleting"})


class VerificationFailed(Exception):
    """The endpoint does not serve the expected config: rolled back, failed, or never settled."""

    exit_code = EXIT_FAILED


class VerificationTimedOut(VerificationFailed):
    """The endpoint was still Creating/Updating when the wait ran out."""

    exit_code = EXIT_TIMED_OUT


@dataclass(frozen=True)
class EndpointState:
    """What `DescribeEndpoint` said when the check ended."""

    endpoint_name: str
    status: str
    config_name: str
    failure_reason: str | None
    polls: int


def verify_endpoint(
    client: Any,
    endpoint_name: str,
    expected_config: str,
    *,
    timeout_seconds: float = 1800,
    poll_seconds: float = 30,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> EndpointState:
    """Poll `DescribeEndpoint` until the endpoint settles; return its state if it serves `expected_config`.

    Raises `VerificationFailed` naming the expected and the actual config and SageMaker's failure reason when the
    endpoint rolled back (InService on another config, or a failure reason set), is in a failed state, or
    `VerificationTimedOut` when it is still Creating/Updating after `timeout_seconds`.
    """
    deadline = clock() + timeout_seconds
    polls = 0
    while True:
        described = client.describe_endpoint(EndpointName=endpoint_name)
        polls += 1
        state = EndpointState(
            endpoint_name=endpoint_name,
            status=str(described["EndpointStatus"]),
            config_name=str(described.get("EndpointConfigName", "")),
            failure_reason=described.get("FailureReason") or None,
            polls=polls,
        )
        if state.status in TRANSIENT_STATUSES:
            if clock() >= deadline:
                raise VerificationTimedOut(
                    f"endpoint {endpoint_name} is still {state.status} after {timeout_seconds:g} s "
                    f"(expected config {expected_config}, now serving {state.config_name}); "
                    "run the check again later or raise --timeout"
                )
            sleep(min(poll_seconds, max(0.0, deadline - clock())))
            continue
        _judge(state, expected_config)
        return state


def _judge(state: EndpointState, expected_config: str) -> None:
    reason = f"; SageMaker's failure reason: {state.failure_reason}" if state.failure_reason else ""
    if state.status in FAILED_STATUSES:
        raise VerificationFailed(
            f"endpoint {state.endpoint_name} is {state.status} (expected config {expected_config}, "
            f"actual config {state.config_name}){reason}"
        )
    if state.status != "InService":
        raise VerificationFailed(
            f"endpoint {state.endpoint_name} has unexpected status {state.status} (expected config "
            f"{expected_config}, actual config {state.config_name}){reason}"
        )
    if state.config_name != expected_config:
        raise VerificationFailed(
            f"SageMaker rolled endpoint {state.endpoint_name} back: expected config {expected_config}, actual "
            f"config {state.config_name}{reason}. The stack state says the new config is live; fix the cause and "
            "run `pulumi up` again (a new model or config rolls out again)"
        )
    if state.failure_reason:
        raise VerificationFailed(
            f"endpoint {state.endpoint_name} is InService on the expected config {expected_config} but reports a "
            f"failed update{reason}"
        )
