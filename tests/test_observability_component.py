"""EndpointObservability under the mock runtime: encrypted alarm topic, alarms with dimensions, dashboard."""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pytest

from components.monitoring import MonitorBackend
from components.observability import (
    EndpointObservability,
    EndpointObservabilityArgs,
    dashboard_url,
    gpu_count,
    vcpu_count,
)
from components.settings import AlarmSettings
from monitoring import metrics_contract as contract
from tests.conftest import run_components
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan

ENDPOINT = "mlplatform-dev"
VARIANT = "primary"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{MOCK_ACCOUNT_ID}:{ENDPOINT}-alarms"
EMAILS = ("oncall@example.com", "ml-team@example.com")
ENDPOINT_DIMS = {"EndpointName": ENDPOINT, "VariantName": VARIANT}


@functools.cache
def _plan(
    backend: MonitorBackend = "pipeline",
    instance_type: str = "ml.c6i.large",
    emails: tuple[str, ...] = EMAILS,
    idle_alarm: bool = True,
) -> Plan:
    args: EndpointObservabilityArgs = {
        "endpoint_name": ENDPOINT,
        "variant_name": VARIANT,
        "instance_type": instance_type,
        "region": "us-east-1",
        "alarms": AlarmSettings(emails=list(emails), error_4xx_rate_percent=7.5, latency_p99_ms=250),
        "monitor_backend": backend,
        "idle_alarm": idle_alarm,
    }
    if backend != "none":
        args["monitor_schedule_name"] = f"{ENDPOINT}-drift"
    if backend == "pipeline":
        args["monitor_pipeline_name"] = f"{ENDPOINT}-drift"

    def program() -> None:
        obs = EndpointObservability("obs", args)
        pulumi.export("topic_arn", obs.topic_arn)
        pulumi.export("dashboard_name", obs.dashboard_name)
        pulumi.export("dashboard_url", obs.dashboard_url)
        pulumi.export("alarm_names", obs.alarm_names)

    return run_components(program)


def _alarms(plan: Plan) -> dict[str, dict[str, Any]]:
    return {r["inputs"]["name"].removeprefix(f"{ENDPOINT}-"): r["inputs"] for r in plan.of_type(ALARM)}


def _dashboard(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.one("aws:cloudwatch/dashboard:Dashboard")["inputs"]["dashboardBody"])


# --- alarms --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pipeline", "model-monitor", "none"])
@pytest.mark.parametrize("instance_type", ["ml.c6i.large", "ml.g5.xlarge"])
def test_every_alarm_has_dimensions_actions_and_a_missing_data_policy(
    backend: MonitorBackend, instance_type: str
) -> None:
    alarms = _alarms(_plan(backend, instance_type))
    assert alarms
    for kind, alarm in alarms.items():
        assert alarm["alarmActions"] == [TOPIC_ARN], kind
        assert alarm["okActions"] == [TOPIC_ARN], kind
        assert alarm["treatMissingData"] in ("breaching", "notBreaching"), kind
        if "metricQueries" in alarm:
            metrics = [q["metric"] for q in alarm["metricQueries"] if "metric" in q]
            assert metrics, kind
            assert all(m["dimensions"] for m in metrics), kind
            assert "period" not in alarm and "metricName" not in alarm, kind
        else:
            assert alarm["dimensions"] and all(alarm["dimensions"].values()), kind


def test_cpu_endpoint_alarm_set() -> None:
    assert sorted(_alarms(_plan("pipeline"))) == [
        "4xx-rate",
        "5xx-errors",
        "cpu-utilization",
        "drift-violations",
        "model-latency-p99",
        "monitor-failed",
        "monitor-silent",
        "no-invocations",
        "overhead-latency-p99",
    ]


def test_gpu_alarms_only_on_gpu_instances() -> None:
    cpu = _alarms(_plan("none", "ml.c6i.large"))
    gpu = _alarms(_plan("none", "ml.g5.12xlarge"))
    assert "gpu-utilization" not in cpu and "gpu-memory-utilization" not in cpu
    for kind in ("gpu-utilization", "gpu-memory-utilization"):
        alarm = gpu[kind]
        assert alarm["namespace"] == "/aws/sagemaker/Endpoints"
        assert alarm["dimensions"] == ENDPOINT_DIMS
        assert alarm["threshold"] == 90 * 4  # four GPUs, each up to 100%
    assert gpu["gpu-utilization"]["metricName"] == "GPUUtilization"
    assert gpu["gpu-memory-utilization"]["metricName"] == "GPUMemoryUtilization"


def test_cpu_alarm_threshold_scales_with_the_vcpus() -> None:
    assert _alarms(_plan("none", "ml.c6i.large"))["cpu-utilization"]["threshold"] == 180
    cpu = _alarms(_plan("none", "ml.g5.12xlarge"))["cpu-utilization"]
    assert cpu["threshold"] == 90 * 48
    assert cpu["metricName"] == "CPUUtilization"
    assert cpu["namespace"] == "/aws/sagemaker/Endpoints"


def test_4xx_alarm_is_a_rate_of_invocations() -> None:
    alarm = _alarms(_plan())["4xx-rate"]
    assert alarm["threshold"] == 7.5
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["rate"]["expression"] == "IF(invocations > 0, 100 * errors / invocations, 0)"
    assert [q["id"] for q in alarm["metricQueries"] if q["returnData"]] == ["rate"]
    assert queries["errors"]["metric"] == {
        "namespace": "AWS/SageMaker",
        "metricName": "Invocation4XXErrors",
        "dimensions": ENDPOINT_DIMS,
        "stat": "Sum",
        "period": 60,
    }
    assert queries["invocations"]["metric"]["metricName"] == "Invocations"


def test_5xx_and_latency_alarms_use_the_stack_thresholds() -> None:
    alarms = _alarms(_plan())
    errors = alarms["5xx-errors"]
    assert (errors["metricName"], errors["statistic"], errors["threshold"]) == ("Invocation5XXErrors", "Sum", 5)
    assert errors["namespace"] == "AWS/SageMaker"
    for kind, metric in (("model-latency-p99", "ModelLatency"), ("overhead-latency-p99", "OverheadLatency")):
        latency = alarms[kind]
        assert latency["metricName"] == metric
        assert latency["extendedStatistic"] == "p99"
        assert latency["threshold"] == 250_000  # 250 ms in SageMaker's microseconds
        assert latency["treatMissingData"] == "notBreaching"
        assert (latency["period"], latency["evaluationPeriods"], latency["datapointsToAlarm"]) == (60, 3, 2)


def test_idle_endpoint_alarm_treats_silence_as_breaching() -> None:
    alarm = _alarms(_plan())["no-invocations"]
    assert alarm["metricName"] == "Invocations"
    assert alarm["statistic"] == "Sum"
    assert alarm["comparisonOperator"] == "LessThanThreshold"
    assert alarm["threshold"] == 1
    assert alarm["treatMissingData"] == "breaching"
    assert "no-invocations" not in _alarms(_plan(idle_alarm=False))


def test_drift_alarm_watches_the_monitor_metric_contract() -> None:
    alarm = _alarms(_plan("pipeline"))["drift-violations"]
    assert alarm["namespace"] == contract.METRIC_NAMESPACE
    assert alarm["metricName"] == contract.VIOLATIONS_METRIC
    assert alarm["dimensions"] == {
        contract.ENDPOINT_DIMENSION: ENDPOINT,
        contract.SCHEDULE_DIMENSION: f"{ENDPOINT}-drift",
    }
    assert (alarm["comparisonOperator"], alarm["threshold"], alarm["period"]) == ("GreaterThanThreshold", 0, 3600)


def test_pipeline_monitor_failures_and_silence_alarm() -> None:
    alarms = _alarms(_plan("pipeline"))
    failed = alarms["monitor-failed"]
    assert failed["namespace"] == "AWS/Sagemaker/ModelBuildingPipeline"
    assert failed["metricName"] == "ExecutionFailed"
    assert failed["dimensions"] == {"PipelineName": f"{ENDPOINT}-drift"}
    assert (failed["statistic"], failed["threshold"], failed["treatMissingData"]) == ("Sum", 1, "notBreaching")
    silent = alarms["monitor-silent"]
    assert silent["metricName"] == contract.RECORDS_ANALYZED_METRIC
    assert silent["treatMissingData"] == "breaching"
    assert (silent["period"], silent["evaluationPeriods"]) == (3600, 2)


def _rules(plan: Plan) -> dict[str, dict[str, Any]]:
    return {
        r["inputs"]["name"].removeprefix(f"{ENDPOINT}-"): json.loads(r["inputs"]["eventPattern"])
        for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")
    }


def test_model_monitor_failures_and_violations_notify_through_event_rules() -> None:
    plan = _plan("model-monitor")
    # The built-in analyzer publishes no violation count and no failure metric: no alarms on them.
    assert not {"drift-violations", "monitor-failed", "monitor-silent"} & set(_alarms(plan))
    rules = _rules(plan)
    assert set(rules) == {"monitor-failed", "drift-violations"}
    schedule_arn = f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:monitoring-schedule/{ENDPOINT}-drift"
    for pattern in rules.values():
        assert pattern["source"] == ["aws.sagemaker"]
        assert pattern["detail-type"] == ["SageMaker Processing Job State Change"]
        assert pattern["detail"]["MonitoringScheduleArn"] == [{"equals-ignore-case": schedule_arn}]
    assert rules["monitor-failed"]["detail"]["ProcessingJobStatus"] == ["Failed"]
    assert rules["drift-violations"]["detail"]["ProcessingJobStatus"] == ["Completed"]
    assert rules["drift-violations"]["detail"]["ExitMessage"] == [{"prefix": "CompletedWithViolations"}]
    targets = plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert [t["inputs"]["arn"] for t in targets] == [TOPIC_ARN, TOPIC_ARN]
    policy = json.loads(plan.one("aws:sns/topicPolicy:TopicPolicy")["inputs"]["policy"])
    events = [s for s in policy["Statement"] if s.get("Sid") == "MonitorFailureRulePublishes"]
    assert events[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(a.rsplit("/", 1)[1] for a in events[0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == [
        f"{ENDPOINT}-drift-violations",
        f"{ENDPOINT}-monitor-failed",
    ]


def test_backend_none_has_no_drift_or_monitor_alarms() -> None:
    plan = _plan("none")
    assert not {"drift-violations", "monitor-failed", "monitor-silent"} & set(_alarms(plan))
    assert not plan.of_type("aws:cloudwatch/eventRule:EventRule")


def test_alarm_names_output_lists_every_alarm() -> None:
    plan = _plan()
    assert plan.outputs["alarm_names"] == sorted(a["inputs"]["name"] for a in plan.of_type(ALARM))
    assert f"{ENDPOINT}-5xx-errors" in plan.outputs["alarm_names"]


# --- topic -------------------------------------------------------------------------------------------------


def test_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    plan = _plan()
    key = plan.one("aws:kms/key:Key")
    topic = plan.one("aws:sns/topic:Topic")["inputs"]
    assert topic["kmsMasterKeyId"].startswith(f"arn:aws:kms:us-east-1:{MOCK_ACCOUNT_ID}:key/")
    assert key["inputs"]["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["inputs"]["policy"])["Statement"]}
    publish = statements["AlarmsAndRulesPublishEncrypted"]
    assert "cloudwatch.amazonaws.com" in publish["Principal"]["Service"]
    assert sorted(publish["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID}}
    admin = statements["AccountAdministersKey"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{MOCK_ACCOUNT_ID}:root"}


def test_topic_policy_lets_only_this_accounts_alarms_publish() -> None:
    policy = json.loads(_plan().one("aws:sns/topicPolicy:TopicPolicy")["inputs"]["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    allow = statements["CloudWatchAlarmsPublish"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == TOPIC_ARN
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": MOCK_ACCOUNT_ID}
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny"
    assert "MonitorFailureRulePublishes" not in statements  # only with the model-monitor backend


def test_one_email_subscription_per_address() -> None:
    subscriptions = _plan().of_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s["inputs"]["endpoint"] for s in subscriptions) == sorted(EMAILS)
    assert all(s["inputs"]["protocol"] == "email" and s["inputs"]["topic"] == TOPIC_ARN for s in subscriptions)
    assert not _plan(emails=()).of_type("aws:sns/topicSubscription:TopicSubscription")


def test_subscription_names_do_not_depend_on_the_order_of_addresses() -> None:
    forward = {s["name"] for s in _plan().of_type("aws:sns/topicSubscription:TopicSubscription")}
    backward = {s["name"] for s in _plan(emails=EMAILS[::-1]).of_type("aws:sns/topicSubscription:TopicSubscription")}
    assert forward == backward


# --- dashboard ---------------------------------------------------------------------------------------------


def test_dashboard_is_named_after_the_endpoint_with_its_console_url() -> None:
    plan = _plan()
    assert plan.outputs["dashboard_name"] == ENDPOINT
    assert plan.outputs["dashboard_url"] == (
        f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name={ENDPOINT}"
    )
    assert dashboard_url("eu-west-1", "x") == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=x"
    )
    assert plan.outputs["topic_arn"] == TOPIC_ARN


def test_dashboard_shows_latency_traffic_errors_instances_and_drift() -> None:
    widgets = _dashboard(_plan())["widgets"]
    titles = [w["properties"].get("title") for w in widgets if w["type"] == "metric"]
    assert titles == [
        "Latency (microseconds)",
        "Invocations",
        "Errors",
        "Instances: CPU, memory, disk (percent; CPU is summed over vCPUs)",
        "Drift from the baseline per feature (hourly)",
        "Monitor runs: violations, rows analyzed, failures",
    ]
    latency = next(w for w in widgets if w["properties"].get("title") == "Latency (microseconds)")
    stats = sorted((m[1], m[-1]["stat"]) for m in latency["properties"]["metrics"])
    assert stats == [
        ("ModelLatency", "p50"),
        ("ModelLatency", "p99"),
        ("OverheadLatency", "p50"),
        ("OverheadLatency", "p99"),
    ]
    assert all(m[2:6] == ["EndpointName", ENDPOINT, "VariantName", VARIANT] for m in latency["properties"]["metrics"])
    alarm_widget = next(w for w in widgets if w["type"] == "alarm")
    assert len(alarm_widget["properties"]["alarms"]) == len(_plan().of_type(ALARM))


def test_dashboard_drift_widget_searches_every_feature_of_this_endpoint() -> None:
    widgets = _dashboard(_plan())["widgets"]
    drift = next(w for w in widgets if w["properties"].get("title") == "Drift from the baseline per feature (hourly)")
    (query,) = drift["properties"]["metrics"]
    expression = query[0]["expression"]
    assert expression.startswith(f'SEARCH(\'{{"{contract.METRIC_NAMESPACE}",EndpointName,ScheduleName}}')
    assert f'EndpointName="{ENDPOINT}"' in expression
    assert f'ScheduleName="{ENDPOINT}-drift"' in expression
    assert "MetricName=feature_baseline_drift" in expression
    assert expression.endswith("'Maximum', 3600)")


def test_dashboard_without_monitor_has_no_drift_widgets_and_gpu_widgets_follow_the_instance() -> None:
    widgets = _dashboard(_plan("none"))["widgets"]
    assert not [w for w in widgets if "Drift" in w["properties"].get("title", "")]
    gpu = _dashboard(_plan("none", "ml.g5.xlarge"))["widgets"]
    names = {m[1] for w in gpu if w["type"] == "metric" for m in w["properties"]["metrics"] if isinstance(m[0], str)}
    assert {"GPUUtilization", "GPUMemoryUtilization"} <= names


# --- sizing and validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "vcpus", "gpus"),
    [
        ("ml.c6i.large", 2, 0),
        ("ml.m5.xlarge", 4, 0),
        ("ml.c6i.4xlarge", 16, 0),
        ("ml.t2.medium", 2, 0),
        ("ml.g5.xlarge", 4, 1),
        ("ml.g5.12xlarge", 48, 4),
        ("ml.g5.48xlarge", 192, 8),
        ("ml.p4d.24xlarge", 96, 8),
        ("ml.g4dn.xlarge", 4, 1),
    ],
)
def test_instance_capacity(instance_type: str, vcpus: int, gpus: int) -> None:
    assert vcpu_count(instance_type) == vcpus
    assert gpu_count(instance_type) == gpus


def test_drift_monitor_without_schedule_name_is_refused() -> None:
    from components.observability import _validate

    args: EndpointObservabilityArgs = {
        "endpoint_name": ENDPOINT,
        "variant_name": VARIANT,
        "instance_type": "ml.c6i.large",
        "region": "us-east-1",
        "alarms": AlarmSettings(),
        "monitor_backend": "pipeline",
    }
    with pytest.raises(ValueError, match="needs monitor_schedule_name"):
        _validate(args)
    args["monitor_schedule_name"] = "s"
    with pytest.raises(ValueError, match="needs monitor_pipeline_name"):
        _validate(args)
    args["endpoint_name"] = "bad_name"
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        _validate(args)


def test_model_monitor_dashboard_shows_drift_but_no_run_metrics_it_never_publishes() -> None:
    titles = [w["properties"].get("title") for w in _dashboard(_plan("model-monitor"))["widgets"]]
    assert "Drift from the baseline per feature (hourly)" in titles
    assert "Monitor runs: violations, rows analyzed, failures" not in titles


# --- model quality and bias drift alarms and widgets -------------------------------------------------------


def _quality_plan(backend: MonitorBackend) -> Plan:
    from components.settings import MonitoringSettings

    quality = MonitoringSettings(
        backend=backend, quality=True, sensitive_attribute="site", sensitive_feature_index=3, quality_alarm_metric="auc"
    )
    args: EndpointObservabilityArgs = {
        "endpoint_name": ENDPOINT,
        "variant_name": VARIANT,
        "instance_type": "ml.c6i.large",
        "region": "us-east-1",
        "alarms": AlarmSettings(),
        "monitor_backend": backend,
        "monitor_schedule_name": f"{ENDPOINT}-drift",
        "quality": quality,
        "quality_schedule_name": f"{ENDPOINT}-model-quality",
        "bias_schedule_name": f"{ENDPOINT}-model-bias" if backend == "model-monitor" else f"{ENDPOINT}-model-quality",
    }
    if backend == "pipeline":
        args["monitor_pipeline_name"] = f"{ENDPOINT}-drift"
    return run_components(lambda: EndpointObservability("obs", args))


@pytest.mark.parametrize("backend", ["pipeline", "model-monitor"])
def test_quality_alarm_watches_model_monitors_quality_metric_on_both_backends(backend: MonitorBackend) -> None:
    """Model Monitor publishes model-quality metrics by name in aws/sagemaker/Endpoints/model-metrics with
    dimensions Endpoint and MonitoringSchedule (developer guide, model-monitor-model-quality-metrics); our image
    publishes the same, so one alarm serves both backends."""
    plan = _quality_plan(backend)
    alarm = next(a for a in plan.of_type(ALARM) if a["inputs"]["name"] == f"{ENDPOINT}-model-quality")
    inputs = alarm["inputs"]
    assert (inputs["namespace"], inputs["metricName"]) == ("aws/sagemaker/Endpoints/model-metrics", "auc")
    assert inputs["dimensions"] == {"Endpoint": ENDPOINT, "MonitoringSchedule": f"{ENDPOINT}-model-quality"}
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("LessThanThreshold", 0.8)


def test_pipeline_backend_alarms_on_quality_and_bias_violation_counts() -> None:
    plan = _quality_plan("pipeline")
    by_name = {a["inputs"]["name"]: a["inputs"] for a in plan.of_type(ALARM)}
    assert by_name[f"{ENDPOINT}-quality-violations"]["metricName"] == contract.QUALITY_VIOLATIONS_METRIC
    bias = by_name[f"{ENDPOINT}-bias-violations"]
    assert (bias["namespace"], bias["metricName"]) == (contract.BIAS_NAMESPACE, contract.BIAS_VIOLATIONS_METRIC)


def test_model_monitor_backend_notifies_quality_and_bias_violations_through_eventbridge() -> None:
    plan = _quality_plan("model-monitor")
    rules = {
        r["inputs"]["name"]: json.loads(r["inputs"]["eventPattern"])
        for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    bias = rules[f"{ENDPOINT}-bias-violations"]["detail"]
    assert bias["MonitoringScheduleArn"][0]["equals-ignore-case"].endswith(
        f":monitoring-schedule/{ENDPOINT}-model-bias"
    )
    assert f"{ENDPOINT}-quality-violations" in rules


def test_dashboard_shows_quality_and_per_group_bias_widgets() -> None:
    body = json.loads(_quality_plan("pipeline").one("aws:cloudwatch/dashboard:Dashboard")["inputs"]["dashboardBody"])
    titles = [w["properties"].get("title", "") for w in body["widgets"]]
    assert "Model quality: auc (hourly, labels joined)" in titles
    bias = next(w for w in body["widgets"] if w["properties"].get("title", "").startswith("Bias per group"))
    expression = bias["properties"]["metrics"][0][0]["expression"]
    assert "bias_metric_DPPL" in expression and "bias_metric_RD" in expression and "FacetValue" in expression
