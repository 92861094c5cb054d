"""`EndpointObservability`: the alarm topic, the CloudWatch alarms and the dashboard of one SageMaker endpoint.

Alarms watch the whole endpoint (all fleets) and notify people; the rollback alarms that watch a new fleet during
a blue/green rollout live with the endpoint (docs/architecture.md, decision 3). With the `pipeline` monitor, drift and
monitor failures are alarms on the metrics our monitor image and SageMaker Pipelines publish
(`monitoring/metrics_contract.py`); Model Monitor's built-in analyzer publishes only per-feature metrics, so with
`model-monitor` they are EventBridge rules on its runs' state changes, which notify the same topic.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.monitoring import MonitorBackend
from components.settings import AlarmSettings, MonitoringSettings, instance_family, is_gpu_instance
from monitoring import metrics_contract as contract

# Quality metrics that get worse as they grow (their alarm trips above the threshold).
LOWER_IS_BETTER = frozenset({"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"})

INVOCATION_NAMESPACE = "AWS/SageMaker"
"""Namespace of the endpoint's invocation metrics (dimensions EndpointName, VariantName)."""
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
"""Namespace of the endpoint instances' CPU, memory, disk and GPU metrics (same dimensions)."""
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
"""SageMaker Pipelines' execution metrics, dimension PipelineName (developer guide, "SageMaker pipelines
metrics" in "Metrics for monitoring Amazon SageMaker AI with Amazon CloudWatch"; note the lower-case `m`)."""

# Utilization alarms trip at this share of the fleet's capacity.
UTILIZATION_PERCENT = 90
# One monitoring run per hour: the drift alarms evaluate hourly datapoints.
MONITOR_PERIOD_SECONDS = 3600

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class EndpointObservabilityArgs(TypedDict):
    endpoint_name: str
    """Name of the endpoint (stable; alarms and dashboard are named from it)."""
    variant_name: str
    """Production variant name (a constant of the endpoint component)."""
    instance_type: str
    """Serving instance type: decides the GPU alarms and the CPU/GPU capacity thresholds."""
    region: str
    """AWS region of the stack (dashboard URL, ARNs)."""
    alarms: AlarmSettings
    """Periods, thresholds and e-mail addresses (`mlplatform:alarms*`)."""
    monitor_backend: MonitorBackend
    """Which drift monitor runs; `none` leaves out the drift and monitor-failure alarms."""
    monitor_schedule_name: NotRequired[pulumi.Input[str]]
    """The monitor's schedule name (`ScheduleName` dimension of the drift metrics); required unless `none`."""
    monitor_pipeline_name: NotRequired[pulumi.Input[str]]
    """The monitor's SageMaker Pipeline name; required by the `pipeline` backend."""
    quality: NotRequired[MonitoringSettings]
    """The monitor's settings when model quality is on (`mlplatform:monitorQuality`): quality and bias alarms."""
    quality_schedule_name: NotRequired[pulumi.Input[str]]
    """The model-quality schedule's name (`MonitoringSchedule` dimension of the quality metrics)."""
    bias_schedule_name: NotRequired[pulumi.Input[str]]
    """The schedule whose runs measure bias (the quality schedule on `pipeline`)."""
    idle_alarm: NotRequired[bool]
    """Alarm when the endpoint gets no invocations at all (default true; dev endpoints are often idle)."""


def vcpu_count(instance_type: str) -> int:
    """vCPUs of an `ml.*` size: 2 for `large` (and `medium`), 4 per `xlarge` (EC2's sizing rule)."""
    size = instance_type.split(".")[2]
    if size in ("medium", "large"):
        return 2
    match = re.fullmatch(r"([0-9]*)xlarge", size)
    if match:
        return 4 * int(match.group(1) or 1)
    return 2


# GPUs per instance for the sizes with more than one (the rest have one). From the EC2 instance type pages.
_MULTI_GPU: dict[str, dict[str, int]] = {
    "p2": {"8xlarge": 8, "16xlarge": 16},
    "p3": {"8xlarge": 4, "16xlarge": 8},
    "p3dn": {"24xlarge": 8},
    "p4d": {"24xlarge": 8},
    "p4de": {"24xlarge": 8},
    "p5": {"48xlarge": 8},
    "p5e": {"48xlarge": 8},
    "p5en": {"48xlarge": 8},
    "g4dn": {"12xlarge": 4, "metal": 8},
    "g4ad": {"16xlarge": 4},
    "g5": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g5g": {"16xlarge": 2},
    "g6": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g6e": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
}


def gpu_count(instance_type: str) -> int:
    """GPUs of a GPU instance type (0 for CPU types)."""
    if not is_gpu_instance(instance_type):
        return 0
    return _MULTI_GPU.get(instance_family(instance_type), {}).get(instance_type.split(".")[2], 1)


def alarm_name(endpoint_name: str, kind: str) -> str:
    """Alarm names are stable (`{endpoint}-{kind}`): definitions change in place, names never."""
    return f"{endpoint_name}-{kind}"


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


def topic_key_policy(account_id: str, partition: str, region: str) -> str:
    """Key policy of the alarm topic's key: the account administers it; CloudWatch alarms, EventBridge rules
    and AWS Budgets of this account may encrypt messages to the topic (SNS SSE needs both on the publisher)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # AWS's default key policy statement: lets IAM policies of the account grant use of the key.
                    # Without it the key cannot be administered (KMS refuses policies that lock the account out).
                    "Sid": "AccountAdministersKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "AlarmsAndRulesPublishEncrypted",
                    "Effect": "Allow",
                    # AWS Budgets alerts (components/cost.py) publish to the same encrypted topic.
                    "Principal": {
                        "Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com", "budgets.amazonaws.com"]
                    },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    # In a key policy "*" means this key.
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        }
    )


def topic_policy(topic_arn: str, account_id: str, partition: str, region: str, rule_arns: Sequence[str]) -> str:
    """Who may publish: this account's CloudWatch alarms, budgets and our EventBridge rules; TLS only."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:*"},
            },
        },
        {
            # AWS Cost Management user guide, "Creating an Amazon SNS topic for budget notifications": the topic
            # policy must let budgets.amazonaws.com publish; scoped to this account's budgets.
            "Sid": "BudgetsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "budgets.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:budgets::{account_id}:*"},
            },
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]
    if rule_arns:
        statements.append(
            {
                "Sid": "MonitorFailureRulePublishes",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def monitoring_run_pattern(schedule_arn: str, outcome: str) -> str:
    """EventBridge pattern: a run Model Monitor started for our schedule `failed` or found `violations`.

    SageMaker emits "SageMaker Processing Job State Change" events whose detail is the DescribeProcessingJob
    response: `MonitoringScheduleArn` names the schedule of a monitoring run, and `ExitMessage` carries the
    container's /opt/ml/output/message, which starts with `CompletedWithViolations` when drift was found.
    The built-in analyzer publishes per-feature metrics only, no violation count and no failure metric, so
    these events are the signals for the `model-monitor` backend. SageMaker lower-cases resource names in
    ARNs, hence the case-insensitive match.
    """
    detail: dict[str, Any] = {"MonitoringScheduleArn": [{"equals-ignore-case": schedule_arn}]}
    if outcome == "failed":
        detail["ProcessingJobStatus"] = ["Failed"]
    elif outcome == "violations":
        detail["ProcessingJobStatus"] = ["Completed"]
        detail["ExitMessage"] = [{"prefix": "CompletedWithViolations"}]
    else:
        raise ValueError(f"monitoring run outcome {outcome!r}: allowed are 'failed' and 'violations'")
    return json.dumps(
        {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Processing Job State Change"], "detail": detail}
    )


def dashboard_body(
    *,
    endpoint_name: str,
    variant_name: str,
    region: str,
    instance_type: str,
    monitor_backend: MonitorBackend,
    schedule_name: str,
    pipeline_name: str,
    alarm_arns: Sequence[str],
    quality_schedule_name: str = "",
    quality_metric: str = "",
    bias: bool = False,
) -> str:
    """CloudWatch dashboard JSON: latency, traffic, errors, utilization, alarms and drift per feature."""
    dims = ["EndpointName", endpoint_name, "VariantName", variant_name]
    width = 12

    def graph(title: str, metrics: list[list[Any]], y: int, x: int, **extra: Any) -> dict[str, Any]:
        props: dict[str, Any] = {"title": title, "region": region, "view": "timeSeries", "metrics": metrics}
        props.update(extra)
        return {"type": "metric", "x": x, "y": y, "width": width, "height": 6, "properties": props}

    widgets: list[dict[str, Any]] = [
        {
            "type": "text",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 2,
            "properties": {
                "markdown": f"# Endpoint `{endpoint_name}`\nVariant `{variant_name}` on `{instance_type}`; "
                f"drift monitor: `{monitor_backend}`."
            },
        },
        graph(
            "Latency (microseconds)",
            [
                [INVOCATION_NAMESPACE, "ModelLatency", *dims, {"stat": "p50", "label": "ModelLatency p50"}],
                [INVOCATION_NAMESPACE, "ModelLatency", *dims, {"stat": "p99", "label": "ModelLatency p99"}],
                [INVOCATION_NAMESPACE, "OverheadLatency", *dims, {"stat": "p50", "label": "OverheadLatency p50"}],
                [INVOCATION_NAMESPACE, "OverheadLatency", *dims, {"stat": "p99", "label": "OverheadLatency p99"}],
            ],
            2,
            0,
        ),
        graph(
            "Invocations",
            [
                [INVOCATION_NAMESPACE, "Invocations", *dims, {"stat": "Sum"}],
                [INVOCATION_NAMESPACE, "InvocationsPerInstance", *dims, {"stat": "Sum"}],
            ],
            2,
            width,
        ),
        graph(
            "Errors",
            [
                [INVOCATION_NAMESPACE, "Invocation4XXErrors", *dims, {"stat": "Sum"}],
                [INVOCATION_NAMESPACE, "Invocation5XXErrors", *dims, {"stat": "Sum"}],
                [INVOCATION_NAMESPACE, "ModelSetupTime", *dims, {"stat": "Maximum", "visible": False}],
            ],
            8,
            0,
        ),
        graph(
            "Instances: CPU, memory, disk (percent; CPU is summed over vCPUs)",
            [
                [INSTANCE_NAMESPACE, "CPUUtilization", *dims, {"stat": "Average"}],
                [INSTANCE_NAMESPACE, "MemoryUtilization", *dims, {"stat": "Average"}],
                [INSTANCE_NAMESPACE, "DiskUtilization", *dims, {"stat": "Average"}],
                *(
                    [
                        [INSTANCE_NAMESPACE, "GPUUtilization", *dims, {"stat": "Average"}],
                        [INSTANCE_NAMESPACE, "GPUMemoryUtilization", *dims, {"stat": "Average"}],
                    ]
                    if is_gpu_instance(instance_type)
                    else []
                ),
            ],
            8,
            width,
        ),
    ]
    if alarm_arns:
        widgets.append(
            {
                "type": "alarm",
                "x": 0,
                "y": 14,
                "width": 24,
                "height": 3,
                "properties": {"title": "Alarms", "alarms": list(alarm_arns)},
            }
        )
    if monitor_backend != "none":
        # SEARCH finds every feature's drift metric, so the dashboard needs no feature list (and follows a
        # retrained model whose features changed).
        search = (
            f'SEARCH(\'{{"{contract.METRIC_NAMESPACE}",{contract.ENDPOINT_DIMENSION},{contract.SCHEDULE_DIMENSION}}} '
            f'{contract.ENDPOINT_DIMENSION}="{endpoint_name}" {contract.SCHEDULE_DIMENSION}="{schedule_name}" '
            f"MetricName={contract.FEATURE_BASELINE_DRIFT_PREFIX.rstrip('_')}', 'Maximum', {MONITOR_PERIOD_SECONDS})"
        )
        drift_metrics: list[list[Any]] = [[{"expression": search, "id": "drift", "label": ""}]]
        widgets.append(
            graph(
                "Drift from the baseline per feature (hourly)",
                drift_metrics,
                17,
                0,
                period=MONITOR_PERIOD_SECONDS,
                yAxis={"left": {"min": 0, "max": 1}},
            )
        )
    if monitor_backend == "pipeline":
        # Our monitor image publishes a violation count and the rows it analyzed; the built-in analyzer does not.
        monitor_dims = [contract.ENDPOINT_DIMENSION, endpoint_name, contract.SCHEDULE_DIMENSION, schedule_name]
        run_metrics: list[list[Any]] = [
            [contract.METRIC_NAMESPACE, contract.VIOLATIONS_METRIC, *monitor_dims, {"stat": "Maximum"}],
            [
                contract.METRIC_NAMESPACE,
                contract.RECORDS_ANALYZED_METRIC,
                *monitor_dims,
                {"stat": "Sum", "yAxis": "right"},
            ],
            [PIPELINE_NAMESPACE, "ExecutionFailed", "PipelineName", pipeline_name, {"stat": "Sum"}],
        ]
        widgets.append(graph("Monitor runs: violations, rows analyzed, failures", run_metrics, 17, width, period=3600))
    if quality_schedule_name:
        quality_dims = [
            contract.QUALITY_ENDPOINT_DIMENSION,
            endpoint_name,
            contract.QUALITY_SCHEDULE_DIMENSION,
            quality_schedule_name,
        ]
        quality_metrics: list[list[Any]] = [
            [contract.QUALITY_NAMESPACE, quality_metric, *quality_dims, {"stat": "Average"}],
        ]
        if monitor_backend == "pipeline":
            # Our image also publishes how many predictions had labels, and how many came late or never.
            for metric in (contract.LABELED_METRIC, contract.UNLABELED_METRIC, contract.LATE_LABELS_METRIC):
                quality_metrics.append(
                    [contract.QUALITY_NAMESPACE, metric, *quality_dims, {"stat": "Sum", "yAxis": "right"}]
                )
        widgets.append(
            graph(f"Model quality: {quality_metric} (hourly, labels joined)", quality_metrics, 23, 0, period=3600)
        )
    if quality_schedule_name and bias:
        search = (
            f"SEARCH('{{{contract.BIAS_NAMESPACE},{contract.QUALITY_ENDPOINT_DIMENSION},"
            f"{contract.QUALITY_SCHEDULE_DIMENSION},BiasStage,Label,LabelValue,Facet,FacetValue}} "
            f'{contract.QUALITY_ENDPOINT_DIMENSION}="{endpoint_name}" '
            f"MetricName=({contract.bias_metric('DPPL')} OR {contract.bias_metric('RD')})', 'Maximum', "
            f"{MONITOR_PERIOD_SECONDS})"
        )
        widgets.append(
            graph(
                "Bias per group: DPPL (demographic parity) and RD (equal opportunity)",
                [[{"expression": search, "id": "bias", "label": ""}]],
                23,
                width,
                period=MONITOR_PERIOD_SECONDS,
                yAxis={"left": {"min": -1, "max": 1}},
            )
        )
    return json.dumps({"widgets": widgets}, sort_keys=True)


class EndpointObservability(pulumi.ComponentResource):
    """Alarm topic (KMS-encrypted, e-mail subscriptions), endpoint and drift alarms, and a dashboard.

    Example::

        obs = EndpointObservability("mlplatform-dev-observability", {
            "endpoint_name": "mlplatform-dev", "variant_name": "primary", "instance_type": "ml.c6i.large",
            "region": "us-east-1", "alarms": settings.alarms, "monitor_backend": "pipeline",
            "monitor_schedule_name": monitor.schedule_name, "monitor_pipeline_name": monitor.pipeline_name})
        pulumi.export("alarmTopicArn", obs.topic_arn)
    """

    topic_arn: pulumi.Output[str]
    """ARN of the SNS topic every alarm notifies (alarm and OK)."""
    topic_key_arn: pulumi.Output[str]
    """ARN of the KMS key that encrypts the topic."""
    dashboard_name: pulumi.Output[str]
    """Name of the endpoint's CloudWatch dashboard."""
    dashboard_url: pulumi.Output[str]
    """Console URL of the dashboard."""
    alarm_names: pulumi.Output[list[str]]
    """Names of every alarm, sorted."""

    def __init__(self, name: str, args: EndpointObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:monitoring:EndpointObservability", name, None, opts)
        _validate(args)
        endpoint = args["endpoint_name"]
        region = args["region"]
        backend = args["monitor_backend"]
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        child = pulumi.ResourceOptions(parent=self)

        # A dedicated key: the project key's policy need not trust CloudWatch and EventBridge, and this one
        # holds nothing but alarm messages.
        key = aws.kms.Key(
            f"{name}-topic-key",
            description=f"{name}: encrypts the alarm topic of endpoint {endpoint}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=pulumi.Output.all(account_id, partition).apply(lambda v: topic_key_policy(v[0], v[1], region)),
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-alarms",
            name=f"{endpoint}-alarms",
            display_name=f"{endpoint} alarms"[:100],
            kms_master_key_id=key.arn,
            opts=child,
        )
        for email in args["alarms"].emails:
            # Named by a hash of the address, so adding or removing one address leaves the others alone.
            digest = hashlib.sha256(email.lower().encode()).hexdigest()[:8]
            aws.sns.TopicSubscription(
                f"{name}-email-{digest}", topic=topic.arn, protocol="email", endpoint=email, opts=child
            )

        rule_arns: list[pulumi.Output[str]] = []
        if backend == "model-monitor":
            schedule_arn = pulumi.Output.all(partition, account_id, args.get("monitor_schedule_name", "")).apply(
                lambda v: f"arn:{v[0]}:sagemaker:{region}:{v[1]}:monitoring-schedule/{v[2]}"
            )
            for kind, outcome, what in (
                ("monitor-failed", "failed", "failed"),
                ("drift-violations", "violations", "found constraint violations (see its report)"),
            ):
                rule = aws.cloudwatch.EventRule(
                    f"{name}-{kind}-rule",
                    name=alarm_name(endpoint, kind),
                    description=f"A Model Monitor run of endpoint {endpoint} {what}",
                    event_pattern=schedule_arn.apply(lambda arn, o=outcome: monitoring_run_pattern(arn, o)),
                    opts=child,
                )
                aws.cloudwatch.EventTarget(f"{name}-{kind}-topic", rule=rule.name, arn=topic.arn, opts=child)
                rule_arns.append(rule.arn)
            quality_rules: list[tuple[str, pulumi.Input[str], str]] = []
            quality_settings = args.get("quality")
            if quality_settings is not None:
                quality_rules.append(("quality-violations", args.get("quality_schedule_name", ""), "model quality"))
                if quality_settings.sensitive_attribute is not None:
                    quality_rules.append(("bias-violations", args.get("bias_schedule_name", ""), "bias drift"))
            for kind, schedule, what in quality_rules:
                arn = pulumi.Output.all(partition, account_id, schedule).apply(
                    lambda v: f"arn:{v[0]}:sagemaker:{region}:{v[1]}:monitoring-schedule/{v[2]}"
                )
                rule = aws.cloudwatch.EventRule(
                    f"{name}-{kind}-rule",
                    name=alarm_name(endpoint, kind),
                    description=f"A {what} run of endpoint {endpoint} found violations (see its report)",
                    event_pattern=arn.apply(lambda a: monitoring_run_pattern(a, "violations")),
                    opts=child,
                )
                aws.cloudwatch.EventTarget(f"{name}-{kind}-topic", rule=rule.name, arn=topic.arn, opts=child)
                rule_arns.append(rule.arn)

        topic_policy_resource = aws.sns.TopicPolicy(
            f"{name}-alarms-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id, partition, *rule_arns).apply(
                lambda v: topic_policy(v[0], v[1], v[2], region, v[3:])
            ),
            opts=child,
        )

        alarms = self._alarms(name, args, topic.arn, topic_policy_resource)
        quality = args.get("quality")

        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=endpoint,
            dashboard_body=pulumi.Output.all(
                args.get("monitor_schedule_name", ""),
                args.get("monitor_pipeline_name", ""),
                args.get("quality_schedule_name", ""),
                *[a.arn for a in alarms],
            ).apply(
                lambda v: dashboard_body(
                    endpoint_name=endpoint,
                    variant_name=args["variant_name"],
                    region=region,
                    instance_type=args["instance_type"],
                    monitor_backend=backend,
                    schedule_name=v[0],
                    pipeline_name=v[1],
                    alarm_arns=v[3:],
                    quality_schedule_name=v[2] if quality is not None else "",
                    quality_metric=quality.quality_alarm_metric if quality is not None else "",
                    bias=quality is not None and quality.sensitive_attribute is not None,
                )
            ),
            opts=child,
        )

        self.topic_arn = topic.arn
        self.topic_key_arn = key.arn
        self.dashboard_name = dashboard.dashboard_name
        self.dashboard_url = dashboard.dashboard_name.apply(lambda n: dashboard_url(region, n))
        self.alarm_names = pulumi.Output.all(*[a.name for a in alarms]).apply(sorted)
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "topic_key_arn": self.topic_key_arn,
                "dashboard_name": self.dashboard_name,
                "dashboard_url": self.dashboard_url,
                "alarm_names": self.alarm_names,
            }
        )

    def _alarms(
        self,
        name: str,
        args: EndpointObservabilityArgs,
        topic_arn: pulumi.Output[str],
        topic_policy_resource: pulumi.Resource,
    ) -> list[aws.cloudwatch.MetricAlarm]:
        settings = args["alarms"]
        endpoint = args["endpoint_name"]
        instance_type = args["instance_type"]
        dims = {"EndpointName": endpoint, "VariantName": args["variant_name"]}
        # Alarms wait for the topic policy, or their first notifications could be refused.
        opts = pulumi.ResourceOptions(parent=self, depends_on=[topic_policy_resource])
        window: dict[str, Any] = {
            "period": settings.period_seconds,
            "evaluation_periods": settings.evaluation_periods,
            "datapoints_to_alarm": settings.datapoints_to_alarm,
        }
        created: list[aws.cloudwatch.MetricAlarm] = []

        def alarm(kind: str, description: str, **kwargs: Any) -> None:
            created.append(
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{kind}",
                    name=alarm_name(endpoint, kind),
                    alarm_description=description,
                    alarm_actions=[topic_arn],
                    ok_actions=[topic_arn],
                    opts=opts,
                    **kwargs,
                )
            )

        alarm(
            "4xx-rate",
            f"More than {settings.error_4xx_rate_percent}% of requests to {endpoint} were refused with 4XX",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=settings.error_4xx_rate_percent,
            treat_missing_data="notBreaching",
            metric_queries=[
                {
                    "id": "rate",
                    # No invocations in a period: rate 0, not a division by zero.
                    "expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                    "label": "4XX share of invocations (%)",
                    "return_data": True,
                },
                _metric_query("errors", "Invocation4XXErrors", INVOCATION_NAMESPACE, dims, "Sum", settings),
                _metric_query("invocations", "Invocations", INVOCATION_NAMESPACE, dims, "Sum", settings),
            ],
            # With metric queries the period lives in each query; CloudWatch refuses a top-level one.
            evaluation_periods=settings.evaluation_periods,
            datapoints_to_alarm=settings.datapoints_to_alarm,
        )
        alarm(
            "5xx-errors",
            f"{endpoint} answered {settings.errors5xx_threshold} or more 5XX errors in a period",
            namespace=INVOCATION_NAMESPACE,
            metric_name="Invocation5XXErrors",
            dimensions=dims,
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=settings.errors5xx_threshold,
            treat_missing_data="notBreaching",
            **window,
        )
        # SageMaker reports latencies in microseconds.
        latency_us = settings.latency_p99_ms * 1000
        for metric, kind, what in (
            ("ModelLatency", "model-latency-p99", "the model container"),
            # No separate setting: SageMaker's own overhead should stay well inside the model's budget.
            ("OverheadLatency", "overhead-latency-p99", "SageMaker's overhead"),
        ):
            alarm(
                kind,
                f"p99 {metric} of {endpoint} ({what}) above {settings.latency_p99_ms} ms",
                namespace=INVOCATION_NAMESPACE,
                metric_name=metric,
                dimensions=dims,
                extended_statistic="p99",
                comparison_operator="GreaterThanThreshold",
                threshold=latency_us,
                treat_missing_data="notBreaching",
                **window,
            )
        # Instance metrics add up the cores (and GPUs): 100% per vCPU, so the threshold scales with the type.
        utilization = [("CPUUtilization", "cpu-utilization", vcpu_count(instance_type), "vCPUs")]
        gpus = gpu_count(instance_type)
        if gpus:
            utilization += [
                ("GPUUtilization", "gpu-utilization", gpus, "GPUs"),
                ("GPUMemoryUtilization", "gpu-memory-utilization", gpus, "GPUs"),
            ]
        for metric, kind, units, unit_name in utilization:
            alarm(
                kind,
                f"{metric} of {endpoint} above {UTILIZATION_PERCENT}% of {units} {unit_name} ({instance_type})",
                namespace=INSTANCE_NAMESPACE,
                metric_name=metric,
                dimensions=dims,
                statistic="Average",
                comparison_operator="GreaterThanThreshold",
                threshold=UTILIZATION_PERCENT * units,
                treat_missing_data="notBreaching",
                **window,
            )
        if args.get("idle_alarm", True):
            alarm(
                "no-invocations",
                f"{endpoint} received no invocations for {settings.evaluation_periods} periods",
                namespace=INVOCATION_NAMESPACE,
                metric_name="Invocations",
                dimensions=dims,
                statistic="Sum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                # SageMaker publishes Invocations only for periods with traffic: silence arrives as missing
                # data, so missing data must count as breaching or this alarm could never fire.
                treat_missing_data="breaching",
                period=settings.period_seconds,
                evaluation_periods=settings.evaluation_periods,
                datapoints_to_alarm=settings.evaluation_periods,
            )

        quality = args.get("quality")
        if quality is not None and args["monitor_backend"] != "none":
            # Both backends publish the quality metrics under the same namespace, names and dimensions (Model
            # Monitor's analyzer and our image), so this alarm does not care which one runs.
            worse_when_higher = quality.quality_alarm_metric in LOWER_IS_BETTER
            alarm(
                "model-quality",
                f"{quality.quality_alarm_metric} of {endpoint}'s predictions, joined with ground truth, "
                f"{'above' if worse_when_higher else 'below'} {quality.quality_alarm_threshold}",
                namespace=contract.QUALITY_NAMESPACE,
                metric_name=quality.quality_alarm_metric,
                dimensions={
                    contract.QUALITY_ENDPOINT_DIMENSION: endpoint,
                    contract.QUALITY_SCHEDULE_DIMENSION: args.get("quality_schedule_name", ""),
                },
                statistic="Average",
                comparison_operator="GreaterThanThreshold" if worse_when_higher else "LessThanThreshold",
                threshold=quality.quality_alarm_threshold,
                # No labels yet, no datapoint: not a quality problem (the unlabeled count shows it).
                treat_missing_data="notBreaching",
                period=MONITOR_PERIOD_SECONDS,
                evaluation_periods=1,
                datapoints_to_alarm=1,
            )
        if args["monitor_backend"] != "pipeline":
            # Model Monitor's built-in analyzer publishes no violation count and no failure metric: its
            # drift and failure signals are the EventBridge rules above.
            return created
        if quality is not None:
            quality_dims = {
                contract.QUALITY_ENDPOINT_DIMENSION: endpoint,
                contract.QUALITY_SCHEDULE_DIMENSION: args.get("quality_schedule_name", ""),
            }
            counts = [
                ("quality-violations", contract.QUALITY_NAMESPACE, contract.QUALITY_VIOLATIONS_METRIC, "model-quality")
            ]
            if quality.sensitive_attribute is not None:
                counts.append(
                    ("bias-violations", contract.BIAS_NAMESPACE, contract.BIAS_VIOLATIONS_METRIC, "bias-drift")
                )
            for kind, namespace, metric, what in counts:
                alarm(
                    kind,
                    f"The hourly {what} check of {endpoint} found violations (see its report)",
                    namespace=namespace,
                    metric_name=metric,
                    dimensions=quality_dims,
                    statistic="Maximum",
                    comparison_operator="GreaterThanThreshold",
                    threshold=0,
                    treat_missing_data="notBreaching",
                    period=MONITOR_PERIOD_SECONDS,
                    evaluation_periods=1,
                    datapoints_to_alarm=1,
                )
        monitor_dims = {
            contract.ENDPOINT_DIMENSION: endpoint,
            contract.SCHEDULE_DIMENSION: args.get("monitor_schedule_name", ""),
        }
        alarm(
            "drift-violations",
            f"The hourly drift monitor of {endpoint} found constraint violations (see its report)",
            namespace=contract.METRIC_NAMESPACE,
            metric_name=contract.VIOLATIONS_METRIC,
            dimensions=monitor_dims,
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            # No run, no datapoint: the monitor-failure alarms cover runs that did not happen.
            treat_missing_data="notBreaching",
            period=MONITOR_PERIOD_SECONDS,
            evaluation_periods=1,
            datapoints_to_alarm=1,
        )
        alarm(
            "monitor-failed",
            f"An execution of the drift pipeline of {endpoint} failed",
            namespace=PIPELINE_NAMESPACE,
            metric_name="ExecutionFailed",
            dimensions={"PipelineName": args.get("monitor_pipeline_name", "")},
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            treat_missing_data="notBreaching",
            period=MONITOR_PERIOD_SECONDS,
            evaluation_periods=1,
            datapoints_to_alarm=1,
        )
        alarm(
            "monitor-silent",
            f"The drift monitor of {endpoint} published nothing for two hours (schedule or run not working)",
            namespace=contract.METRIC_NAMESPACE,
            metric_name=contract.RECORDS_ANALYZED_METRIC,
            dimensions=monitor_dims,
            statistic="SampleCount",
            comparison_operator="LessThanThreshold",
            threshold=1,
            # Every run publishes records_analyzed (0 when the hour had no traffic); no datapoint means no
            # run, which must alarm.
            treat_missing_data="breaching",
            period=MONITOR_PERIOD_SECONDS,
            evaluation_periods=2,
            datapoints_to_alarm=2,
        )
        return created


def _metric_query(
    query_id: str, metric: str, namespace: str, dims: dict[str, str], stat: str, settings: AlarmSettings
) -> aws.cloudwatch.MetricAlarmMetricQueryArgsDict:
    return {
        "id": query_id,
        "return_data": False,
        "metric": {
            "namespace": namespace,
            "metric_name": metric,
            "dimensions": dims,
            "stat": stat,
            "period": settings.period_seconds,
        },
    }


def _validate(args: EndpointObservabilityArgs) -> None:
    endpoint = args["endpoint_name"]
    if not _NAME.match(endpoint):
        raise ValueError(
            f"endpoint name {endpoint!r}: at most 63 letters, digits and hyphens, starting with a letter or digit"
        )
    if not args["variant_name"]:
        raise ValueError("variant name must not be empty (the endpoint's production variant)")
    backend = args["monitor_backend"]
    if backend != "none" and args.get("monitor_schedule_name") is None:
        raise ValueError(f"monitor backend {backend!r} needs monitor_schedule_name (the DriftMonitor's schedule_name)")
    if backend == "pipeline" and args.get("monitor_pipeline_name") is None:
        raise ValueError("monitor backend 'pipeline' needs monitor_pipeline_name (the DriftMonitor's pipeline_name)")
