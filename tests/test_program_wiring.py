"""The wiring in `__main__.py`, tested through the program itself: a mutation there (a setting not passed on, a
guard not connected) survives every component test, so these plan the real program with changed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import outputs
from tools.example_outputs import example_stack_outputs
from tools.plan import Plan, run_program
from tools.preflight import preflight

ROOT = Path(__file__).resolve().parent.parent
SELF = "organization/mlplatform/{stack}"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"


def _plan(stack: str, changes: dict[str, str] | None = None, previous: dict[str, Any] | None = None) -> Plan:
    values = dict(preflight(stack, ROOT).values)
    values.update(changes or {})
    stack_outputs = example_stack_outputs()
    if previous is not None:
        stack_outputs[SELF.format(stack=stack)] = previous
    return run_program(stack, values, stack_outputs=stack_outputs)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stacks_capture_sampling_reaches_its_endpoint_config(stack: str) -> None:
    plan = _plan(stack, {"mlplatform:captureSamplingPercent": "37" if stack == "dev" else "63"})
    (config,) = plan.of_type(ENDPOINT_CONFIG)
    assert config["inputs"]["dataCaptureConfig"]["initialSamplingPercentage"] == (37 if stack == "dev" else 63)


def test_the_program_refuses_an_instance_type_change_while_autoscaling_is_attached() -> None:
    """Application Auto Scaling blocks UpdateEndpoint for a variant with a registered target whose instance type
    changes; the program reads its own last outputs and refuses before AWS would, mid-update."""
    first = _plan("dev")
    previous = {
        **first.outputs,
        outputs.ENDPOINT_INSTANCE_TYPE: "ml.c6i.large",
        outputs.ENDPOINT_AUTOSCALING_ENABLED: True,
    }
    with pytest.raises(Exception, match="instance type"):
        _plan(
            "dev",
            {"mlplatform:endpointInstanceType": "ml.c6i.2xlarge", "mlplatform:autoscalingEnabled": "true"},
            previous=previous,
        )
    # The same change without autoscaling attached last time plans.
    _plan(
        "dev",
        {"mlplatform:endpointInstanceType": "ml.c6i.2xlarge"},
        previous={**previous, outputs.ENDPOINT_AUTOSCALING_ENABLED: False},
    )
