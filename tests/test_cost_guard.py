"""Cost guard rails in the program: each stack's AWS Budgets budget, its alerts, and the dev idle-endpoint alarm.

Modelled on terraform-provider-aws internal/service/budgets/budget.go (ResourceBudget's schema: `budget_type`
and `time_unit` required; each `notification` needs `comparison_operator`, `notification_type`, `threshold`,
`threshold_type`; `name` forces a new budget; resourceBudgetCreate sends CreateBudget, then one
CreateNotification per notification with its subscribers), and on the AWS Cost Management user guide,
"Creating an Amazon SNS topic for budget notifications" (the topic policy lets budgets.amazonaws.com publish;
an encrypted topic's key lets it use the key) and "Using cost allocation tags" (a user tag filter is
`user:<key>$<value>`).
"""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.mocks import MockResourceArgs

from components.settings import SettingsError, load_settings
from tests.conftest import plan_with
from tests.test_kubernetes_plan import KUBERNETES
from tools.mocks import MOCK_ACCOUNT_ID, PlatformMocks
from tools.plan import Plan, stack_config

BUDGET = "aws:budgets/budget:Budget"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _budget(plan: Plan) -> dict:
    return plan.one(BUDGET)


def test_dev_budget_covers_the_stacks_tagged_costs_and_alerts_the_alarm_topic(dev_plan: Plan) -> None:
    budget = _budget(dev_plan)
    inputs = budget["inputs"]
    assert budget["parent"] == "mlplatform:cost:CostGuard::mlplatform-dev"
    assert inputs["name"] == "mlplatform-dev"
    assert (inputs["budgetType"], inputs["timeUnit"]) == ("COST", "MONTHLY")
    assert (inputs["limitAmount"], inputs["limitUnit"]) == ("300", "USD")
    assert inputs["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$dev"]}]
    topic = dev_plan.outputs["alarmTopicArn"]
    alerts = sorted(
        (n["notificationType"], n["threshold"], n["comparisonOperator"], n["thresholdType"], tuple(n[k]))
        for n in inputs["notifications"]
        for k in ("subscriberSnsTopicArns",)
    )
    assert alerts == [
        ("ACTUAL", 50.0, "GREATER_THAN", "PERCENTAGE", (topic,)),
        ("ACTUAL", 80.0, "GREATER_THAN", "PERCENTAGE", (topic,)),
        ("ACTUAL", 100.0, "GREATER_THAN", "PERCENTAGE", (topic,)),
        ("FORECASTED", 100.0, "GREATER_THAN", "PERCENTAGE", (topic,)),
    ]


def test_mock_budget_state_is_the_providers() -> None:
    """resourceBudgetCreate sets the id `<account>:<name>`; resourceBudgetRead builds an ARN without a region."""
    budget_id, state = PlatformMocks(region="eu-west-1").new_resource(
        MockResourceArgs(BUDGET, "b", {"name": "mlplatform-dev", "budgetType": "COST", "timeUnit": "MONTHLY"})
    )
    assert budget_id == f"{MOCK_ACCOUNT_ID}:mlplatform-dev"
    assert state["arn"] == f"arn:aws:budgets::{MOCK_ACCOUNT_ID}:budget/mlplatform-dev"
    assert (state["accountId"], state["timePeriodEnd"]) == (MOCK_ACCOUNT_ID, "2087-06-15_00:00")


def test_prod_budget_has_its_own_amount_and_no_idle_alarm(prod_plan: Plan) -> None:
    inputs = _budget(prod_plan)["inputs"]
    assert inputs["limitAmount"] == "2500"
    assert inputs["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$prod"]}]
    assert sorted((n["notificationType"], n["threshold"]) for n in inputs["notifications"]) == [
        ("ACTUAL", 80.0),
        ("ACTUAL", 100.0),
        ("FORECASTED", 100.0),
    ]
    assert not [a for a in prod_plan.of_type(ALARM) if a["inputs"]["name"].endswith("-idle-cost")]


def test_dev_idle_alarm_fires_after_the_configured_hours_without_invocations(dev_plan: Plan) -> None:
    (alarm,) = [a for a in dev_plan.of_type(ALARM) if a["inputs"]["name"] == "mlplatform-dev-idle-cost"]
    inputs = alarm["inputs"]
    assert (inputs["namespace"], inputs["metricName"], inputs["statistic"]) == ("AWS/SageMaker", "Invocations", "Sum")
    assert inputs["dimensions"] == {"EndpointName": "mlplatform-dev", "VariantName": "primary"}
    assert (inputs["period"], inputs["evaluationPeriods"], inputs["datapointsToAlarm"]) == (3600, 8, 8)
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("LessThanThreshold", 1)
    # No traffic means no datapoint at all: only a breaching reading of missing data lets the alarm fire.
    assert inputs["treatMissingData"] == "breaching"
    assert inputs["alarmActions"] == [dev_plan.outputs["alarmTopicArn"]]


def test_alarm_topic_lets_this_accounts_budgets_publish_through_its_key(dev_plan: Plan) -> None:
    policy = json.loads(dev_plan.one("aws:sns/topicPolicy:TopicPolicy")["inputs"]["policy"])
    statement = next(s for s in policy["Statement"] if s["Sid"] == "BudgetsPublish")
    assert statement["Principal"] == {"Service": "budgets.amazonaws.com"}
    assert (statement["Action"], statement["Resource"]) == ("sns:Publish", dev_plan.outputs["alarmTopicArn"])
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{MOCK_ACCOUNT_ID}:*"},
    }
    keys = [k for k in dev_plan.of_type("aws:kms/key:Key") if "topic" in k["name"]]
    (key,) = keys
    publish = next(
        s for s in json.loads(key["inputs"]["policy"])["Statement"] if s["Sid"] == "AlarmsAndRulesPublishEncrypted"
    )
    assert "budgets.amazonaws.com" in publish["Principal"]["Service"]


def test_stack_without_a_sagemaker_endpoint_alerts_the_alarm_addresses_directly() -> None:
    plan = plan_with(
        "dev",
        {
            **KUBERNETES,
            "mlplatform:servingTarget": "kubernetes",
            "mlplatform:costIdleAlarmHours": "0",
            "mlplatform:alarmsEmails": '["ml-oncall@example.com"]',
        },
    )
    notifications = _budget(plan)["inputs"]["notifications"]
    assert {tuple(n["subscriberEmailAddresses"]) for n in notifications} == {("ml-oncall@example.com",)}
    assert not any("subscriberSnsTopicArns" in n for n in notifications)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mlplatform:costBudgetAlertPercents": "[80, 80]"}, "mlplatform:costBudgetAlertPercents: got [80, 80]"),
        ({"mlplatform:costBudgetAlertPercents": "[10, 20, 30, 40, 50]"}, "1 to 4 distinct percentages"),
        ({"mlplatform:costBudgetMonthlyUsd": "0"}, "mlplatform:costBudgetMonthlyUsd"),
        ({"mlplatform:costIdleAlarmHours": "25"}, "mlplatform:costIdleAlarmHours"),
        (
            {**KUBERNETES, "mlplatform:servingTarget": "kubernetes", "mlplatform:costIdleAlarmHours": "8"},
            "mlplatform:costIdleAlarmHours (8) watches the SageMaker endpoint",
        ),
    ],
)
def test_invalid_cost_settings_name_the_key_and_what_is_allowed(changes: dict[str, str], message: str) -> None:
    config = {**stack_config("dev"), **changes}
    with pytest.raises(SettingsError) as error:
        load_settings(config, "dev")
    assert message in str(error.value)
