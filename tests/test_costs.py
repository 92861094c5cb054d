"""The cost section of `make plan` (tools/costs.py): instance-hours per day of what a plan declares, priced from
docs/costs.md's dated table.

Schedules: EventBridge Scheduler and SageMaker monitoring schedules take `rate(value unit)` and six-field
`cron(minutes hours day-of-month month day-of-week year)` expressions (EventBridge Scheduler user guide,
"Schedule types"; SageMaker API reference, `ScheduleConfig.ScheduleExpression`, whose hourly form is
`cron(0 * ? * * *)`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tools.costs import PriceTableError, cost_lines, read_prices, render_costs, runs_per_day
from tools.plan import Plan, main

DEV_ENDPOINT_PRICE = 0.102  # ml.c6i.large hosting, docs/costs.md
MONITOR_PRICE = 0.115  # ml.m5.large processing


def test_price_table_is_dated_and_read_per_use_and_type() -> None:
    prices = read_prices()
    assert prices.region == "us-east-1"
    assert prices.as_of == "2026-12-03"
    assert prices.price("hosting", "ml.c6i.large") == DEV_ENDPOINT_PRICE
    assert prices.price("processing", "ml.m5.large") == MONITOR_PRICE
    assert prices.price("hosting", "ml.p5.48xlarge") is None


def test_malformed_price_table_names_the_problem(tmp_path: Path) -> None:
    page = tmp_path / "costs.md"
    page.write_text("no table here\n")
    with pytest.raises(PriceTableError, match="prices:begin"):
        read_prices(page)
    page.write_text(
        "<!-- prices:begin as-of=2026-01-01 region=us-east-1 -->\n| instance type | hosting | training | processing |\n"
        "|---|---|---|---|\n| ml.m5.large | cheap | 0.1 | 0.1 |\n<!-- prices:end -->\n"
    )
    with pytest.raises(PriceTableError, match=r"ml\.m5\.large hosting price 'cheap' is not a number"):
        read_prices(page)


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("cron(0 * * * ? *)", 24),  # EventBridge Scheduler, hourly
        ("cron(0 * ? * * *)", 24),  # SageMaker monitoring schedule, hourly
        ("cron(30 2 * * ? *)", 1),
        ("rate(2 hours)", 12),
        ("rate(30 minutes)", 48),
        ("rate(1 day)", 1),
        ("at(2026-12-24T00:00:00)", None),
    ],
)
def test_runs_per_day_of_a_schedule_expression(expression: str, runs: float | None) -> None:
    assert runs_per_day(expression) == runs


def test_dev_plan_counts_the_endpoint_all_day_training_per_run_and_hourly_monitors(dev_plan: Plan) -> None:
    lines = {(line.use, line.what): line for line in cost_lines(dev_plan.as_json())}
    endpoint = lines[("hosting", "endpoint mlplatform-dev variant primary")]
    assert (endpoint.instance_type, endpoint.instances, endpoint.hours_per_day) == ("ml.c6i.large", 1, 24)
    training = lines[("training", "training job mlplatform-dev-train-job")]
    assert (training.instance_type, training.hours_per_day, training.per_run) == ("ml.g5.xlarge", 1, True)
    monitors = [line for line in lines.values() if line.use == "processing"]
    # Two hourly pipelines (drift, model quality), each run bounded by its 1800 s maximum runtime.
    assert sorted((m.instance_type, m.hours_per_day) for m in monitors) == [("ml.m5.large", 12), ("ml.m5.large", 12)]
    text = render_costs(dev_plan.as_json())
    assert f"= ${24 * DEV_ENDPOINT_PRICE:,.2f}/day" in text
    monthly = (24 * DEV_ENDPOINT_PRICE + 2 * 12 * MONITOR_PRICE) * 730 / 24
    assert f"per month (730 h), without training runs: ${monthly:,.2f}" in text
    assert "budget: $300 a month (mlplatform:costBudgetMonthlyUsd); this estimate fits within it" in text


def test_autoscaled_prod_endpoint_is_priced_between_its_minimum_and_maximum(prod_plan: Plan) -> None:
    (endpoint,) = [line for line in cost_lines(prod_plan.as_json()) if line.use == "hosting"]
    assert (endpoint.instance_type, endpoint.hours_per_day, endpoint.upper) == ("ml.c6i.xlarge", 96, 288)
    assert "autoscaling 4-12 instances" in endpoint.note
    assert not [line for line in cost_lines(prod_plan.as_json()) if line.use == "training"]


def test_budget_below_the_estimate_and_unpriced_types_are_called_out(dev_plan: Plan) -> None:
    plan = copy.deepcopy(dev_plan.as_json())
    for resource in plan["resources"]:
        if resource["type"] == "aws:budgets/budget:Budget":
            resource["inputs"]["limitAmount"] = "50"  # below the two hourly monitors alone
        if resource["type"] == "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
            resource["inputs"]["productionVariants"][0]["instanceType"] = "ml.p5.48xlarge"
    text = render_costs(plan)
    assert "unpriced (add them to docs/costs.md): ml.p5.48xlarge (hosting)" in text
    assert "this estimate EXCEEDS IT" in text


def test_make_plan_prints_the_cost_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod", "--no-validate", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cost estimate at list prices (docs/costs.md, on-demand us-east-1, as of 2026-12-03" in out
    assert "endpoint mlplatform-prod variant primary: 4 x ml.c6i.xlarge, 96-288 instance-h/day" in out
    assert "budget: $2,500 a month" in out
