"""`CostGuard`: the stack's AWS Budgets cost budget and, optionally, an alarm on an endpoint that sits idle.

The budget covers the costs tagged `stack=<stack>` (the provider's default tags put that tag on every resource;
AWS Budgets sees a user tag only once it is activated as a cost allocation tag in the Billing console, so the
first deployment's README step says so). It alerts the stack's alarm topic on actual spend at each configured
percentage and on the forecast reaching the budget. The topic's policy and key let `budgets.amazonaws.com`
publish (components/observability.py).

Why an idle alarm rather than scale-to-zero: a real-time endpoint keeps at least one instance per variant, and
serverless inference, which does scale to zero, supports neither data capture nor Model Monitor, which the dev
stack exists to exercise (docs/architecture.md, decision 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.observability import INVOCATION_NAMESPACE, alarm_name
from components.settings import CostSettings

# Forecast alert: AWS Budgets' forecast of this period's spend reaching the whole budget.
FORECAST_PERCENT = 100
IDLE_PERIOD_SECONDS = 3600


def budget_filter(stack: str) -> dict[str, list[str]]:
    """The Budgets cost filter for costs tagged `stack=<stack>`: a user tag is `user:<key>$<value>`."""
    return {"TagKeyValue": [f"user:stack${stack}"]}


def budget_notifications(settings: CostSettings) -> list[tuple[str, int]]:
    """(notification type, percent) pairs: each actual-spend percentage, then the forecast at 100%."""
    return [("ACTUAL", p) for p in sorted(settings.budget_alert_percents)] + [("FORECASTED", FORECAST_PERCENT)]


class CostGuardArgs(TypedDict):
    stack: str
    """Stack name: the budget covers the costs tagged with it."""
    settings: CostSettings
    """Budget amount, alert percentages and the idle-alarm window."""
    topic_arn: NotRequired[pulumi.Input[str]]
    """The stack's alarm topic; without it (no SageMaker endpoint) the budget alerts `emails` directly."""
    emails: NotRequired[Sequence[str]]
    """Addresses alerted directly when there is no topic."""
    endpoint_name: NotRequired[str]
    """The SageMaker endpoint the idle alarm watches (required when `settings.idle_alarm_hours` > 0)."""
    variant_name: NotRequired[str]
    """Its production variant."""


class CostGuard(pulumi.ComponentResource):
    """A monthly cost budget per stack with alerts, and an alarm on an endpoint billed while idle."""

    budget_name: pulumi.Output[str]
    idle_alarm_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: CostGuardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:cost:CostGuard", name, None, opts)
        settings = args["settings"]
        child = pulumi.ResourceOptions(parent=self)
        topic = args.get("topic_arn")
        emails = list(args.get("emails", []))
        subscribers: dict[str, pulumi.Input[Sequence[pulumi.Input[str]]]] = {}
        if topic is not None:
            subscribers["subscriber_sns_topic_arns"] = [topic]
        elif emails:
            subscribers["subscriber_email_addresses"] = emails
        notifications: list[aws.budgets.BudgetNotificationArgsDict] = (
            [
                {
                    "notification_type": kind,
                    "comparison_operator": "GREATER_THAN",
                    "threshold": float(percent),
                    "threshold_type": "PERCENTAGE",
                    **subscribers,  # type: ignore[typeddict-item]
                }
                for kind, percent in budget_notifications(settings)
            ]
            if subscribers
            else []  # nobody to tell: the plan's cost section says so
        )
        budget = aws.budgets.Budget(
            f"{name}-budget",
            name=name,  # the name is the budget's identity (it forces a new budget): stable per stack
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(settings.budget_monthly_usd),
            limit_unit="USD",
            cost_filters=[{"name": key, "values": values} for key, values in budget_filter(args["stack"]).items()],
            notifications=notifications,
            opts=child,
        )
        self.budget_name = budget.name

        self.idle_alarm_name = None
        hours = settings.idle_alarm_hours
        if hours:
            endpoint = args.get("endpoint_name")
            if endpoint is None or topic is None:
                raise ValueError("mlplatform:costIdleAlarmHours needs the SageMaker endpoint and its alarm topic")
            alarm = aws.cloudwatch.MetricAlarm(
                f"{name}-idle",
                name=alarm_name(endpoint, "idle-cost"),
                alarm_description=(
                    f"{endpoint} received no invocation for {hours} h while its instances are billed: "
                    "tear the stack down (`pulumi destroy`) or lower mlplatform:endpointInstanceCount"
                ),
                namespace=INVOCATION_NAMESPACE,
                metric_name="Invocations",
                dimensions={"EndpointName": endpoint, "VariantName": args.get("variant_name", "primary")},
                statistic="Sum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                # SageMaker publishes Invocations only for periods with traffic: silence is missing data.
                treat_missing_data="breaching",
                period=IDLE_PERIOD_SECONDS,
                evaluation_periods=hours,
                datapoints_to_alarm=hours,
                alarm_actions=[topic],
                opts=child,
            )
            self.idle_alarm_name = alarm.name
        self.register_outputs({"budgetName": self.budget_name})
