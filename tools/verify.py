"""Deployment verification: fail unless the endpoint is InService on the config this deployment rolled out.

The AWS provider reports a blue/green update as successful even when SageMaker rolled it back to the old config
(docs/architecture.md, decision 1). Run after `pulumi up`:

    python -m tools.verify --stack dev            # reads `pulumi stack output --json --stack dev`
    python -m tools.verify --outputs outputs.json # the same JSON, saved earlier

Exit status: 0 verified; 1 rolled back or failed; 2 bad input (outputs missing, no CLI); 3 still
Creating/Updating when the wait ran out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# The check itself is part of the program (the endpoint's after-update hook runs it): components/endpoint_verify.py.
from components.endpoint_verify import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    FAILED_STATUSES,
    TRANSIENT_STATUSES,
    EndpointState,
    VerificationFailed,
    VerificationTimedOut,
    verify_endpoint,
)

# Stack output names this tool reads (the lead exports them from __main__.py; components/outputs.py names them).
ENDPOINT_NAME_OUTPUT = "endpointName"
ENDPOINT_CONFIG_OUTPUT = "endpointConfigName"
REGION_OUTPUT = "region"

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_TIMED_OUT",
    "FAILED_STATUSES",
    "TRANSIENT_STATUSES",
    "EndpointState",
    "VerificationFailed",
    "VerificationTimedOut",
    "main",
    "verify_endpoint",
]


# --- command line ------------------------------------------------------------------------------------------


class BadInput(Exception):
    """The outputs could not be read or lack a key; exit status 2."""


def stack_outputs(stack: str, runner: Callable[..., Any] = subprocess.run) -> dict[str, Any]:
    """`pulumi stack output --json --stack STACK`, parsed."""
    try:
        done = runner(
            ["pulumi", "stack", "output", "--json", "--stack", stack], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BadInput("the Pulumi CLI is not installed (or not on PATH); pass --outputs FILE instead") from None
    if done.returncode != 0:
        raise BadInput(f"`pulumi stack output --stack {stack}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return _parse_outputs(done.stdout, f"pulumi stack output --stack {stack}")


def file_outputs(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read outputs file {path}: {exc.strerror}") from None
    return _parse_outputs(text, str(path))


def _parse_outputs(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a JSON object of stack outputs")
    return data


def expected_from_outputs(outputs: Mapping[str, Any], source: str) -> tuple[str, str, str | None]:
    """(endpoint name, expected config name, region or None) from the stack outputs."""
    missing = [k for k in (ENDPOINT_NAME_OUTPUT, ENDPOINT_CONFIG_OUTPUT) if not outputs.get(k)]
    if missing:
        raise BadInput(f"{source} lacks the output(s) {', '.join(missing)}; is the endpoint deployed in this stack?")
    region = outputs.get(REGION_OUTPUT)
    return str(outputs[ENDPOINT_NAME_OUTPUT]), str(outputs[ENDPOINT_CONFIG_OUTPUT]), str(region) if region else None


def main(
    argv: list[str] | None = None,
    *,
    client_factory: Callable[[str | None], Any] | None = None,
    runner: Callable[..., Any] = subprocess.run,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=(__doc__ or "").split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack whose outputs name the endpoint (runs `pulumi stack output`)")
    source.add_argument("--outputs", type=Path, help="JSON file of stack outputs (`pulumi stack output --json`)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait while Creating/Updating")
    parser.add_argument("--poll", type=float, default=30, help="seconds between DescribeEndpoint calls")
    parser.add_argument("--region", help="AWS region (default: the stack's `region` output)")
    args = parser.parse_args(argv)
    if args.timeout < 0 or args.poll <= 0:
        print("verify: --timeout must be >= 0 and --poll > 0", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        if args.stack:
            outputs, where = stack_outputs(args.stack, runner), f"stack {args.stack}"
        else:
            outputs, where = file_outputs(args.outputs), str(args.outputs)
        endpoint_name, expected, region = expected_from_outputs(outputs, where)
    except BadInput as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    client = (client_factory or _boto3_client)(args.region or region)
    try:
        state = verify_endpoint(
            client, endpoint_name, expected, timeout_seconds=args.timeout, poll_seconds=args.poll, sleep=sleep
        )
    except VerificationFailed as exc:
        print(f"verify: FAILED: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"verify: OK: endpoint {state.endpoint_name} is {state.status} on config {state.config_name}")
    return EXIT_OK


def _boto3_client(region_name: str | None) -> Any:
    import boto3

    return boto3.client("sagemaker", region_name=region_name)


if __name__ == "__main__":
    sys.exit(main())
