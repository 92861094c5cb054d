"""The CloudWatch contract of the drift monitor: namespace, dimension names and metric names, in one place.

Both monitor backends publish these metrics and the Pulumi alarms import this module, so the alarms do not
care which backend ran. Importable without numpy, pandas or boto3.

AWS documents two different namespaces (docs/architecture.md, decision 9):

- ``/aws/sagemaker/Endpoints/data-metric`` with dimensions ``EndpointName`` and ``ScheduleName``: what the
  built-in analyzer publishes for real-time endpoints (developer guide, "CloudWatch Metrics for ... Model
  Monitor"; batch transform uses ``/aws/sagemaker/ModelMonitoring/data-metric`` with ``MonitoringSchedule``).
- ``/aws/sagemaker/Endpoint/data-metrics``, recommended dimensions ``Endpoint`` and ``MonitoringSchedule``:
  where Model Monitor publishes a bring-your-own container's metrics file (model-monitor-byoc-cloudwatch).

The ``model-monitor`` backend runs the built-in analyzer, so the default is the first; the ``pipeline``
backend publishes our metrics itself into the same namespace with the same dimensions. Override with the
``metric_namespace`` setting only if your alarms watch another namespace.
"""

from __future__ import annotations

BUILT_IN_NAMESPACE = "/aws/sagemaker/Endpoints/data-metric"
"""Namespace of the built-in analyzer's metrics for real-time endpoints."""
BATCH_TRANSFORM_NAMESPACE = "/aws/sagemaker/ModelMonitoring/data-metric"
"""Namespace of the built-in analyzer's metrics for batch transform monitoring."""
BYOC_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
"""Namespace Model Monitor uses for a bring-your-own container's cloudwatch_metrics.jsonl."""

METRIC_NAMESPACE = BUILT_IN_NAMESPACE
"""The namespace our alarms watch and our pipeline backend publishes to."""

ENDPOINT_DIMENSION = "EndpointName"
"""Dimension holding the endpoint's name."""
SCHEDULE_DIMENSION = "ScheduleName"
"""Dimension holding the monitoring schedule's name (the pipeline backend uses its schedule's name)."""
BYOC_ENDPOINT_DIMENSION = "Endpoint"
BYOC_SCHEDULE_DIMENSION = "MonitoringSchedule"

FEATURE_DATA_PREFIX = "feature_data_"
"""Per numerical feature: the window's mean (the built-in analyzer's ``feature_data_<name>``)."""
FEATURE_NON_NULL_PREFIX = "feature_non_null_"
"""Per feature: the window's completeness, the share of non-missing values in [0, 1]."""
FEATURE_BASELINE_DRIFT_PREFIX = "feature_baseline_drift_"
"""Per feature: the drift distance from the baseline (the value compared with the threshold)."""
VIOLATIONS_METRIC = "constraint_violations"
"""Per run: the number of violations in constraint_violations.json (0 when none). Alarm on this."""
RECORDS_ANALYZED_METRIC = "records_analyzed"
"""Per run: rows analyzed in the window (0 means no data, never a violation)."""

MAX_METRIC_NAME_LENGTH = 255
"""CloudWatch's limit on MetricName (PutMetricData)."""
MAX_DATUMS_PER_PUT = 1000
"""PutMetricData accepts at most 1000 metric data per request."""


def feature_data_metric(feature: str) -> str:
    return _bounded(FEATURE_DATA_PREFIX + feature)


def feature_non_null_metric(feature: str) -> str:
    return _bounded(FEATURE_NON_NULL_PREFIX + feature)


def feature_baseline_drift_metric(feature: str) -> str:
    return _bounded(FEATURE_BASELINE_DRIFT_PREFIX + feature)


def _bounded(name: str) -> str:
    if len(name) > MAX_METRIC_NAME_LENGTH:
        raise ValueError(
            f"metric name {name[:40]!r}... is {len(name)} characters; CloudWatch allows {MAX_METRIC_NAME_LENGTH}"
            " (shorten the feature name)"
        )
    return name


# --- model quality and bias drift ---------------------------------------------------------------------------
# Model Monitor's model-quality jobs publish each metric under its own name (accuracy, auc, f1, rmse, ...) in
# this namespace with dimensions Endpoint and MonitoringSchedule (developer guide, "Model quality metrics and
# Amazon CloudWatch monitoring"; the SageMaker SDK's model-quality dashboard searches
# {aws/sagemaker/Endpoints/model-metrics,Endpoint,MonitoringSchedule}). Our image publishes the same.
QUALITY_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
"""Namespace of the model-quality metrics of a real-time endpoint."""
QUALITY_ENDPOINT_DIMENSION = "Endpoint"
QUALITY_SCHEDULE_DIMENSION = "MonitoringSchedule"
QUALITY_VIOLATIONS_METRIC = "quality_constraint_violations"
"""Our image, per run: model-quality violations (0 when none). Alarm on this."""
LABELED_METRIC = "labeled_predictions"
"""Our image, per run: predictions of the window joined with a label."""
UNLABELED_METRIC = "unlabeled_predictions"
"""Our image, per run: predictions still without a label at the deadline."""
LATE_LABELS_METRIC = "late_labels"
"""Our image, per run: labels that came after the window's deadline."""

# Clarify's bias-drift jobs publish `bias_metric_<NAME>` in this namespace with dimensions Endpoint,
# MonitoringSchedule, BiasStage, Label, LabelValue, Facet and FacetValue (developer guide, "CloudWatch Metrics
# for Bias Drift Analysis", clarify-model-monitor-bias-drift-cw).
BIAS_NAMESPACE = "aws/sagemaker/Endpoints/bias-metrics"
BIAS_METRIC_PREFIX = "bias_metric_"
BIAS_STAGE = "Post-training"
BIAS_VIOLATIONS_METRIC = "bias_drift_violations"
"""Our image, per run: bias-drift violations over all groups (dimensions Endpoint, MonitoringSchedule)."""
INFINITY_STAND_IN = 2.348543e108
"""Clarify publishes +/- infinity as this number; we do the same (CloudWatch takes no infinities)."""


def bias_metric(name: str) -> str:
    return _bounded(BIAS_METRIC_PREFIX + name)
