"""Test harness: the Pulumi mock runtime (from tools/mocks.py, the same code `make plan` uses) and plan fixtures.

The SDK's mock monitor is process-global; `tools.plan.run_program` sets it for each program run, so tests
get the plans of the real `__main__.py` with the committed stack files, or of a config changed on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tools.plan import Plan, plan_stack, run_program, stack_config

_PLANS: dict[str, Plan] = {}

# pytest-timeout's limit for the tests that build and run the images with buildah (pyproject.toml sets the one
# for every other test): a cold image build plus a training run in the image take tens of minutes on 2 cores.
CONTAINERS_TIMEOUT_S = 3600


@pytest.hookimpl(trylast=True)  # after tests/containers/conftest.py has marked its tests `containers`
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("containers") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(CONTAINERS_TIMEOUT_S))


def committed_plan(stack: str) -> Plan:
    """The plan of a committed stack file, computed once per test session."""
    if stack not in _PLANS:
        _PLANS[stack] = plan_stack(stack)
    return _PLANS[stack]


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return committed_plan("dev")


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    return committed_plan("prod")


@pytest.fixture(params=["dev", "prod"])
def any_plan(request: pytest.FixtureRequest) -> Plan:
    return committed_plan(request.param)


def plan_with(stack: str, changes: dict[str, Any], remove: tuple[str, ...] = ()) -> Plan:
    """Plan a committed stack with some config keys changed (values as strings, like the engine passes them)."""
    from tools.example_outputs import example_stack_outputs

    config = {k: v for k, v in stack_config(stack).items() if k not in remove}
    config.update(changes)
    return run_program(stack, config, stack_outputs=example_stack_outputs())


@pytest.fixture
def replan() -> Callable[..., Plan]:
    return plan_with


def run_components(fn: Callable[[], Any], stack: str = "test", config: dict[str, Any] | None = None) -> Plan:
    """Run `fn` (which creates components) under the mock runtime and return what it registered."""
    return run_program(stack, config or {"aws:region": "us-east-1"}, program=fn)
