"""The dev stack's plan shows the model-quality and bias jobs, their alarms and dashboard widgets, on both
monitor backends, and every resource passes tools.validate against botocore's models of the AWS APIs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tools.plan import Plan
from tools.validate import validate_plan

BOTH = {
    "model-monitor": {"mlplatform:monitorBackend": "model-monitor", "mlplatform:monitorSensitiveFeatureIndex": "3"},
    "pipeline": {"mlplatform:monitorBackend": "pipeline"},
}


@pytest.mark.parametrize("backend", sorted(BOTH))
def test_dev_plan_shows_quality_and_bias_jobs_alarms_and_widgets_validated(
    replan: Callable[..., Plan], backend: str
) -> None:
    plan = replan("dev", BOTH[backend])
    if backend == "model-monitor":
        assert len(plan.of_type("aws-native:sagemaker:ModelQualityJobDefinition")) == 1
        assert len(plan.of_type("aws-native:sagemaker:ModelBiasJobDefinition")) == 1
        rules = {r["inputs"]["name"] for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")}
        assert {"mlplatform-dev-quality-violations", "mlplatform-dev-bias-violations"} <= rules
    else:
        pipelines = {p["inputs"]["pipelineName"]: p for p in plan.of_type("aws:sagemaker/pipeline:Pipeline")}
        step = json.loads(pipelines["mlplatform-dev-model-quality"]["inputs"]["pipelineDefinition"])["Steps"][0]
        assert step["Arguments"]["Environment"]["sensitive_attribute"] == "site"
    alarms = {a["inputs"]["name"] for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert "mlplatform-dev-model-quality" in alarms
    body = json.loads(plan.one("aws:cloudwatch/dashboard:Dashboard")["inputs"]["dashboardBody"])
    titles = " | ".join(w["properties"].get("title", "") for w in body["widgets"])
    assert "Model quality" in titles and "Bias per group" in titles
    report = validate_plan(plan)
    assert report.violations == []
    assert report.uncovered_types == {}
