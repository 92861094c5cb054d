"""Blue/green rollout rules (docs/architecture.md, decision 2) through `load_settings`: each broken rule names the key
and the fix."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.settings import (
    FLEET_PROVISIONING_ALLOWANCE_SECONDS,
    PROVIDER_ENDPOINT_WAIT_SECONDS,
    RolloutSettings,
    SettingsError,
    StackSettings,
    load_settings,
)

BASE: dict[str, Any] = {
    "mlplatform:owner": "ml-platform-team",
    "mlplatform:environment": "dev",
    "aws:region": "us-east-1",
    # A valid blue/green baseline: 2 instances, a 3-minute alarm window, short waits.
    "mlplatform:endpointInstanceCount": "2",
    "mlplatform:alarmsPeriodSeconds": "60",
    "mlplatform:alarmsEvaluationPeriods": "3",
    "mlplatform:alarmsDatapointsToAlarm": "2",
    "mlplatform:rolloutBakeSeconds": "300",
    "mlplatform:rolloutTerminationWaitSeconds": "60",
    "mlplatform:rolloutMaxExecutionSeconds": "3600",
}


def load(**changes: Any) -> StackSettings:
    raw = dict(BASE)
    raw.update({f"mlplatform:{k}": str(v) for k, v in changes.items()})
    return load_settings(raw, "test")


def problems(**changes: Any) -> str:
    with pytest.raises(SettingsError) as err:
        load(**changes)
    message = str(err.value)
    assert message.startswith("invalid configuration for stack 'test':")
    return message


def test_baseline_is_valid_for_every_style() -> None:
    for style in ("ALL_AT_ONCE", "CANARY", "LINEAR"):
        assert load(rolloutStyle=style).rollout.style == style


# --- instance count -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["CANARY", "LINEAR"])
def test_traffic_shifting_needs_two_instances(style: str) -> None:
    message = problems(rolloutStyle=style, endpointInstanceCount=1)
    assert f"mlplatform:rolloutStyle {style} needs mlplatform:endpointInstanceCount >= 2 (got 1)" in message
    assert "raise the count or use ALL_AT_ONCE" in message


def test_all_at_once_runs_on_one_instance() -> None:
    assert load(rolloutStyle="ALL_AT_ONCE", endpointInstanceCount=1).endpoint.instance_count == 1


# --- canary and linear sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_canary_up_to_half_the_capacity_is_accepted(percent: int) -> None:
    assert load(rolloutStyle="CANARY", rolloutCanaryPercent=percent).rollout.canary_percent == percent


@pytest.mark.parametrize(("percent", "allowed"), [(51, "less than or equal to 50"), (0, "greater than or equal to 1")])
def test_canary_outside_1_to_50_percent_is_refused(percent: int, allowed: str) -> None:
    message = problems(rolloutStyle="CANARY", rolloutCanaryPercent=percent)
    # Values arrive as strings, as the engine passes config.
    assert f"mlplatform:rolloutCanaryPercent: got '{percent}'; input should be {allowed}" in message


@pytest.mark.parametrize("step", [10, 25, 50])
def test_linear_step_of_10_to_50_percent_is_accepted(step: int) -> None:
    # A bake of one alarm window keeps even ten steps within the provider's wait.
    settings = load(rolloutStyle="LINEAR", rolloutLinearStepPercent=step, rolloutBakeSeconds=180)
    assert settings.rollout.linear_step_percent == step


@pytest.mark.parametrize(("step", "allowed"), [(9, "greater than or equal to 10"), (51, "less than or equal to 50")])
def test_linear_step_outside_10_to_50_percent_is_refused(step: int, allowed: str) -> None:
    message = problems(rolloutStyle="LINEAR", rolloutLinearStepPercent=step)
    assert f"mlplatform:rolloutLinearStepPercent: got '{step}'; input should be {allowed}" in message


# --- bake covers an alarm window ---------------------------------------------------------------------------------


def test_bake_shorter_than_the_alarm_window_is_refused() -> None:
    message = problems(rolloutBakeSeconds=179)
    assert "mlplatform:rolloutBakeSeconds (179) must be at least the alarm window" in message
    assert "mlplatform:alarmsPeriodSeconds x mlplatform:alarmsEvaluationPeriods = 180" in message


def test_bake_equal_to_the_alarm_window_is_accepted() -> None:
    assert load(rolloutBakeSeconds=180).rollout.bake_seconds == 180


def test_alarm_window_follows_the_alarm_settings() -> None:
    message = problems(alarmsPeriodSeconds=300, alarmsEvaluationPeriods=2, rolloutBakeSeconds=500)
    assert "mlplatform:rolloutBakeSeconds (500)" in message and "= 600" in message
    assert load(alarmsPeriodSeconds=300, alarmsEvaluationPeriods=2, rolloutBakeSeconds=600).rollout.bake_seconds == 600


# --- execution timeout -------------------------------------------------------------------------------------------


def test_execution_timeout_must_exceed_the_sum_of_waits() -> None:
    # ALL_AT_ONCE: one bake (300) + termination (60) = 360.
    message = problems(rolloutMaxExecutionSeconds=600, rolloutBakeSeconds=540)
    assert "mlplatform:rolloutMaxExecutionSeconds (600) must exceed the sum of all waits" in message
    assert "(1 x bake 540 + termination 60 = 600)" in message
    assert "at most 14400" in message
    assert load(rolloutMaxExecutionSeconds=601, rolloutBakeSeconds=540).rollout.max_execution_seconds == 601


def test_canary_waits_count_two_bakes() -> None:
    message = problems(rolloutStyle="CANARY", rolloutBakeSeconds=600, rolloutMaxExecutionSeconds=1260)
    assert "(2 x bake 600 + termination 60 = 1260)" in message


def test_execution_timeout_above_sagemakers_limit_is_refused() -> None:
    message = problems(rolloutMaxExecutionSeconds=14401)
    assert "mlplatform:rolloutMaxExecutionSeconds: got '14401'; input should be less than or equal to 14400" in message


@pytest.mark.parametrize(
    ("step", "shifts"),
    [(10, 10), (20, 5), (25, 4), (30, 4), (33, 4), (34, 3), (40, 3), (50, 2)],
)
def test_linear_waits_count_one_bake_per_step(step: int, shifts: int) -> None:
    rollout = RolloutSettings(style="LINEAR", linear_step_percent=step, bake_seconds=120, termination_wait_seconds=60)
    assert rollout.shift_steps() == shifts
    assert rollout.total_wait_seconds() == shifts * 120 + 60
    assert rollout.longest_duration_seconds() == FLEET_PROVISIONING_ALLOWANCE_SECONDS + shifts * 120 + 60


def test_linear_timeout_message_shows_the_computed_steps() -> None:
    # Step 25 % -> 4 shifts: 4 x 300 + 60 = 1260 waits.
    message = problems(rolloutStyle="LINEAR", rolloutLinearStepPercent=25, rolloutMaxExecutionSeconds=1260)
    assert "(4 x bake 300 + termination 60 = 1260)" in message
    assert load(rolloutStyle="LINEAR", rolloutLinearStepPercent=25, rolloutMaxExecutionSeconds=1261)


@given(step=st.integers(min_value=10, max_value=50), bake=st.integers(min_value=0, max_value=3600))
def test_linear_shifts_move_all_traffic_and_not_one_step_more(step: int, bake: int) -> None:
    rollout = RolloutSettings(style="LINEAR", linear_step_percent=step, bake_seconds=bake)
    shifts = rollout.shift_steps()
    assert shifts * step >= 100 > (shifts - 1) * step
    assert shifts == math.ceil(100 / step)
    assert rollout.total_wait_seconds() == shifts * bake + rollout.termination_wait_seconds


# --- the provider's wait ---------------------------------------------------------------------------------------------


def test_rollout_longer_than_the_providers_wait_is_refused() -> None:
    # LINEAR 10 %: 10 shifts x 240 s = 2400 s of bakes + 0 termination + 10 min provisioning = 50 min > 45.
    message = problems(
        rolloutStyle="LINEAR",
        rolloutLinearStepPercent=10,
        rolloutBakeSeconds=240,
        rolloutTerminationWaitSeconds=0,
    )
    assert "a LINEAR rollout can take 50 min (provisioning 10 min + waits 40 min)" in message
    assert f"the provider waits for the endpoint ({PROVIDER_ENDPOINT_WAIT_SECONDS // 60} min)" in message
    assert "shorten mlplatform:rolloutBakeSeconds or mlplatform:rolloutTerminationWaitSeconds" in message


def test_rollout_exactly_at_the_providers_wait_is_accepted() -> None:
    # 600 provisioning + 1800 bake + 300 termination = 2700 s = 45 min.
    settings = load(rolloutBakeSeconds=1800, rolloutTerminationWaitSeconds=300)
    assert settings.rollout.longest_duration_seconds() == PROVIDER_ENDPOINT_WAIT_SECONDS


# --- autoscaling and several problems at once --------------------------------------------------------------------


def test_instance_count_outside_the_autoscaling_range_is_refused() -> None:
    message = problems(autoscalingEnabled="true", autoscalingMinCapacity=3, autoscalingMaxCapacity=6)
    assert "mlplatform:endpointInstanceCount (2) must lie between mlplatform:autoscalingMinCapacity (3)" in message
    assert "mlplatform:autoscalingMaxCapacity (6)" in message


def test_autoscaling_range_is_not_checked_while_disabled() -> None:
    assert load(autoscalingEnabled="false", autoscalingMinCapacity=3, autoscalingMaxCapacity=6)


def test_every_broken_rule_is_reported_at_once() -> None:
    message = problems(rolloutStyle="CANARY", endpointInstanceCount=1, rolloutBakeSeconds=60)
    assert "needs mlplatform:endpointInstanceCount >= 2" in message
    assert "mlplatform:rolloutBakeSeconds (60) must be at least the alarm window" in message


def test_committed_stacks_satisfy_the_rollout_rules() -> None:
    from tools.plan import stack_config

    for stack in ("dev", "prod"):
        settings = load_settings(stack_config(stack), stack)
        assert settings.rollout.longest_duration_seconds() <= PROVIDER_ENDPOINT_WAIT_SECONDS
        assert settings.rollout.max_execution_seconds > settings.rollout.total_wait_seconds()
