"""The cost section of `make plan`: instance-hours per day of what a plan declares, at the list prices of
docs/costs.md's dated table.

Counted: each endpoint variant's instances around the clock (an autoscaled variant between its minimum and
maximum capacity); each training job once, for at most its maximum runtime; each monitoring run as often as its
schedule starts it, for at most its maximum runtime. Jobs are bounded by their maximum runtime because that is
all a plan knows; SageMaker bills the time a job actually runs. Months are 730 hours, as AWS's pricing pages
count them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PRICE_TABLE = REPO / "docs" / "costs.md"
HOURS_PER_MONTH = 730
USES = ("hosting", "training", "processing")

_BEGIN = re.compile(r"<!-- prices:begin as-of=(\d{4}-\d{2}-\d{2}) region=([a-z0-9-]+) -->")
_END = "<!-- prices:end -->"


class PriceTableError(ValueError):
    """docs/costs.md's price table is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Prices:
    as_of: str
    region: str
    per_hour: Mapping[tuple[str, str], float]  # (use, instance type) -> USD per instance-hour

    def price(self, use: str, instance_type: str) -> float | None:
        return self.per_hour.get((use, instance_type))


def read_prices(path: Path = PRICE_TABLE) -> Prices:
    """The dated price table between the `prices:begin` and `prices:end` markers of docs/costs.md."""
    text = path.read_text(encoding="utf-8")
    begin = _BEGIN.search(text)
    end = text.find(_END)
    if begin is None or end < begin.end():
        raise PriceTableError(f"{path.name}: no `<!-- prices:begin as-of=YYYY-MM-DD region=... -->` ... end block")
    rows = [line.strip() for line in text[begin.end() : end].splitlines() if line.strip().startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")] if rows else []
    if header != ["instance type", *USES]:
        raise PriceTableError(f"{path.name}: the price table's header must be | instance type | {' | '.join(USES)} |")
    prices: dict[tuple[str, str], float] = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != len(header):
            raise PriceTableError(f"{path.name}: row {row!r} has {len(cells)} cells, expected {len(header)}")
        for use, cell in zip(USES, cells[1:], strict=True):
            if cell in ("", "-"):
                continue
            try:
                prices[(use, cells[0])] = float(cell)
            except ValueError:
                raise PriceTableError(f"{path.name}: {cells[0]} {use} price {cell!r} is not a number") from None
    return Prices(begin.group(1), begin.group(2), prices)


@dataclass(frozen=True)
class CostLine:
    what: str
    use: str
    instance_type: str
    instances: float
    hours_per_day: float  # instance-hours per day (per run for a training job)
    per_run: bool = False  # a training job: counted per run, not per day
    upper: float | None = None  # instance-hours per day at the most (autoscaling's maximum)
    note: str = ""


def runs_per_day(expression: str) -> float | None:
    """Runs a day of an EventBridge/SageMaker schedule expression: `rate(...)` or an hourly/daily `cron(...)`."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        every = int(rate.group(1)) * {"m": 1 / 60, "h": 1, "d": 24}[rate.group(2)[0]]
        return 24 / every
    cron = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", expression)
    if cron and cron.group(1).isdigit():
        hours = cron.group(2)
        if hours == "*":
            return 24.0
        if hours.isdigit():
            return 1.0
    return None


def _variant_scaling(resources: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """`endpoint/<name>/variant/<variant>` -> (min, max) of Application Auto Scaling targets."""
    return {
        str(r["inputs"]["resourceId"]): (float(r["inputs"]["minCapacity"]), float(r["inputs"]["maxCapacity"]))
        for r in resources
        if r["type"] == "aws:appautoscaling/target:Target" and r["inputs"].get("serviceNamespace") == "sagemaker"
    }


def cost_lines(plan: Mapping[str, Any]) -> list[CostLine]:
    """What the plan's resources run, in instance-hours, by use and instance type."""
    resources: list[Mapping[str, Any]] = list(plan.get("resources", []))
    lines: list[CostLine] = []
    scaling = _variant_scaling(resources)
    endpoints = [r for r in resources if r["type"] == "aws:sagemaker/endpoint:Endpoint"]
    endpoint_name = str(endpoints[0]["inputs"].get("name", "")) if len(endpoints) == 1 else ""
    for config in (r for r in resources if r["type"] == "aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
        for variant in config["inputs"].get("productionVariants", []):
            if "instanceType" not in variant:
                continue  # a serverless variant has no instances
            count = float(variant.get("initialInstanceCount", 1))
            target = f"endpoint/{endpoint_name}/variant/{variant.get('variantName', '')}"
            low, high = scaling.get(target, (count, count))
            lines.append(
                CostLine(
                    f"endpoint {endpoint_name or config['name']} variant {variant.get('variantName', '')}",
                    "hosting",
                    str(variant["instanceType"]),
                    low,
                    24 * low,
                    upper=24 * high if high != low else None,
                    note="always on" + (f"; autoscaling {low:g}-{high:g} instances" if high != low else ""),
                )
            )
    for job in (r for r in resources if r["type"] == "aws:sagemaker/trainingJob:TrainingJob"):
        inputs = job["inputs"]
        resource = inputs.get("resourceConfig", {})
        count = float(resource.get("instanceCount", 1))
        hours = float(inputs.get("stoppingCondition", {}).get("maxRuntimeInSeconds", 86400)) / 3600
        spot = bool(inputs.get("enableManagedSpotTraining"))
        lines.append(
            CostLine(
                f"training job {job['name']}",
                "training",
                str(resource.get("instanceType", "?")),
                count,
                count * hours,
                per_run=True,
                note=f"per run, at most {hours:g} h" + ("; managed spot bills less" if spot else ""),
            )
        )
    lines += _monitoring_lines(resources)
    return lines


def _monitoring_lines(resources: list[Mapping[str, Any]]) -> list[CostLine]:
    lines: list[CostLine] = []
    pipelines = {
        str(r["inputs"].get("pipelineName")): r for r in resources if r["type"] == "aws:sagemaker/pipeline:Pipeline"
    }
    for schedule in (r for r in resources if r["type"] == "aws:scheduler/schedule:Schedule"):
        target = schedule["inputs"].get("target", {})
        if not str(target.get("arn", "")).endswith(":startPipelineExecution"):
            continue
        pipeline = pipelines.get(str(json.loads(target.get("input", "{}")).get("PipelineName")))
        runs = runs_per_day(str(schedule["inputs"].get("scheduleExpression", "")))
        if pipeline is None or runs is None:
            continue
        for step in json.loads(pipeline["inputs"]["pipelineDefinition"]).get("Steps", []):
            if step.get("Type") != "Processing":
                continue
            arguments = step["Arguments"]
            cluster = arguments["ProcessingResources"]["ClusterConfig"]
            hours = float(arguments.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 3600)) / 3600
            count = float(cluster["InstanceCount"])
            lines.append(
                CostLine(
                    f"monitor {pipeline['inputs']['pipelineName']} step {step['Name']}",
                    "processing",
                    str(cluster["InstanceType"]),
                    count,
                    runs * count * hours,
                    note=f"{runs:g} runs a day, each at most {hours:g} h",
                )
            )
    definitions = {
        str(r["inputs"].get("name") or r["inputs"].get("jobDefinitionName")): r
        for r in resources
        if "JobDefinition" in str(r["type"]) and r["type"].startswith(("aws:sagemaker/", "aws-native:sagemaker:"))
    }
    for schedule in (r for r in resources if r["type"] == "aws:sagemaker/monitoringSchedule:MonitoringSchedule"):
        config = schedule["inputs"].get("monitoringScheduleConfig", {})
        definition = definitions.get(str(config.get("monitoringJobDefinitionName")))
        runs = runs_per_day(str(config.get("scheduleConfig", {}).get("scheduleExpression", "")))
        if definition is None or runs is None:
            continue
        inputs = definition["inputs"]
        cluster = inputs.get("jobResources", {}).get("clusterConfig", {})
        hours = float(inputs.get("stoppingCondition", {}).get("maxRuntimeInSeconds", 3600)) / 3600
        count = float(cluster.get("instanceCount", 1))
        lines.append(
            CostLine(
                f"monitor schedule {schedule['name']}",
                "processing",
                str(cluster.get("instanceType", "?")),
                count,
                runs * count * hours,
                note=f"{runs:g} runs a day, each at most {hours:g} h",
            )
        )
    return lines


def budget_usd(plan: Mapping[str, Any]) -> float | None:
    budgets = [r for r in plan.get("resources", []) if r["type"] == "aws:budgets/budget:Budget"]
    return float(budgets[0]["inputs"]["limitAmount"]) if len(budgets) == 1 else None


def render_costs(plan: Mapping[str, Any], prices: Prices | None = None) -> str:
    """The cost section printed by `make plan`."""
    prices = prices or read_prices()
    lines = cost_lines(plan)
    out = [
        f"cost estimate at list prices (docs/costs.md, on-demand {prices.region}, as of {prices.as_of}; "
        "instance-hours only, not a bill):"
    ]
    daily = daily_upper = 0.0
    unpriced: set[str] = set()
    for line in lines:
        price = prices.price(line.use, line.instance_type)
        shown = f"{line.instances:g} x {line.instance_type}"
        if price is None:
            unpriced.add(f"{line.instance_type} ({line.use})")
            out.append(f"  {line.what}: {shown}, {line.hours_per_day:g} instance-h; no {line.use} price: unpriced")
            continue
        cost = line.hours_per_day * price
        if line.per_run:
            out.append(f"  {line.what}: {shown}, {line.hours_per_day:g} instance-h = ${cost:,.2f} ({line.note})")
            continue
        high = (line.upper or line.hours_per_day) * price
        span = f"${cost:,.2f}" + (f"-${high:,.2f}" if line.upper else "")
        out.append(
            f"  {line.what}: {shown}, {line.hours_per_day:g}"
            + (f"-{line.upper:g}" if line.upper else "")
            + f" instance-h/day = {span}/day ({line.note})"
        )
        daily += cost
        daily_upper += high
    monthly, monthly_upper = daily * HOURS_PER_MONTH / 24, daily_upper * HOURS_PER_MONTH / 24
    total = f"${monthly:,.2f}" + (f"-${monthly_upper:,.2f}" if monthly_upper > monthly else "")
    out.append(f"  per month ({HOURS_PER_MONTH} h), without training runs: {total}")
    budget = budget_usd(plan)
    if budget is not None:
        verdict = (
            "fits within it"
            if monthly_upper <= budget
            else "MAY EXCEED IT at the upper bound"
            if monthly <= budget
            else "EXCEEDS IT"
        )
        out.append(f"  budget: ${budget:,.0f} a month (mlplatform:costBudgetMonthlyUsd); this estimate {verdict}")
    if unpriced:
        out.append(f"  unpriced (add them to docs/costs.md): {', '.join(sorted(unpriced))}")
    return "\n".join(out)
