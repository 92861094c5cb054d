"""CloudWatch metrics of a monitoring run: the cloudwatch_metrics.jsonl lines and, optionally, PutMetricData.

Each line is one PutMetricData datum (MetricName, Timestamp, Dimensions, Value or StatisticValues, Unit),
the schema Model Monitor reads from a bring-your-own container. Names come from ``metrics_contract``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

from monitoring import metrics_contract as contract
from monitoring.analysis import Evaluation
from monitoring.quality import QualityResult
from monitoring.statistics import DatasetProfile, NumericAccumulator


def build_metric_data(
    profile: DatasetProfile,
    evaluation: Evaluation,
    *,
    endpoint_name: str,
    schedule_name: str,
    timestamp: dt.datetime,
    dimension_names: tuple[str, str] = (contract.ENDPOINT_DIMENSION, contract.SCHEDULE_DIMENSION),
) -> list[dict[str, Any]]:
    """The run's metric data: per feature data/non-null/drift, plus violations and rows analyzed."""
    if not endpoint_name or not schedule_name:
        raise ValueError(
            "metrics need the endpoint name and the schedule name (sagemaker_endpoint_name and "
            "sagemaker_monitoring_schedule_name) for their dimensions"
        )
    stamp = timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dims = [{"Name": dimension_names[0], "Value": endpoint_name}, {"Name": dimension_names[1], "Value": schedule_name}]

    def datum(
        name: str, unit: str, value: float | None = None, stats: dict[str, float] | None = None
    ) -> dict[str, Any]:
        d: dict[str, Any] = {"MetricName": name, "Timestamp": stamp, "Dimensions": dims}
        if stats is not None:
            d["StatisticValues"] = stats
        else:
            d["Value"] = float(value if value is not None else 0.0)
        d["Unit"] = unit
        return d

    data: list[dict[str, Any]] = []
    if not evaluation.no_data:
        for acc in profile.features:
            total = acc.num_present + acc.num_missing
            if total:
                data.append(datum(contract.feature_non_null_metric(acc.name), "None", acc.num_present / total))
            if isinstance(acc, NumericAccumulator) and acc.n_numbers:
                data.append(
                    datum(
                        contract.feature_data_metric(acc.name),
                        "None",
                        stats={
                            "SampleCount": float(acc.n_numbers),
                            "Sum": acc.total,
                            "Minimum": acc.minimum,
                            "Maximum": acc.maximum,
                        },
                    )
                )
            comparison = evaluation.comparisons.get(acc.name)
            if comparison is not None and comparison.distance is not None:
                data.append(datum(contract.feature_baseline_drift_metric(acc.name), "None", comparison.distance))
    data.append(datum(contract.VIOLATIONS_METRIC, "Count", float(len(evaluation.violations))))
    data.append(datum(contract.RECORDS_ANALYZED_METRIC, "Count", float(profile.item_count)))
    return data


def write_metric_lines(path: pathlib.Path, data: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, as Model Monitor expects in /opt/ml/output/metrics/cloudwatch/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for d in data:
            handle.write(json.dumps(d, allow_nan=False) + "\n")


def put_metric_data(client: Any, data: Sequence[dict[str, Any]], namespace: str = contract.METRIC_NAMESPACE) -> int:
    """Publish with PutMetricData in batches within the API's limit; returns the number of requests."""
    requests = 0
    for start in range(0, len(data), contract.MAX_DATUMS_PER_PUT):
        batch = []
        for d in data[start : start + contract.MAX_DATUMS_PER_PUT]:
            item = dict(d)
            item["Timestamp"] = dt.datetime.strptime(d["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            batch.append(item)
        client.put_metric_data(Namespace=namespace, MetricData=batch)
        requests += 1
    return requests


def build_quality_metric_data(
    result: QualityResult, *, endpoint_name: str, schedule_name: str, timestamp: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(model-quality data, bias data) of a quality run, in Model Monitor's and Clarify's namespaces' shapes."""
    if not endpoint_name or not schedule_name:
        raise ValueError(
            "metrics need the endpoint name and the schedule name (sagemaker_endpoint_name and "
            "sagemaker_monitoring_schedule_name) for their dimensions"
        )
    stamp = timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dims = [
        {"Name": contract.QUALITY_ENDPOINT_DIMENSION, "Value": endpoint_name},
        {"Name": contract.QUALITY_SCHEDULE_DIMENSION, "Value": schedule_name},
    ]

    def datum(name: str, value: float, unit: str = "None", dimensions: list[dict[str, str]] = dims) -> dict[str, Any]:
        if math.isinf(value):
            value = math.copysign(contract.INFINITY_STAND_IN, value)
        return {"MetricName": name, "Timestamp": stamp, "Dimensions": dimensions, "Value": float(value), "Unit": unit}

    quality = [datum(name, v) for name, v in sorted(result.metric_values.items()) if not math.isnan(v)]
    c = result.counts
    quality += [
        datum(contract.QUALITY_VIOLATIONS_METRIC, float(len(result.violations)), "Count"),
        datum(contract.LABELED_METRIC, float(c.labeled), "Count"),
        datum(contract.UNLABELED_METRIC, float(c.unlabeled), "Count"),
        datum(contract.LATE_LABELS_METRIC, float(c.late_labels), "Count"),
    ]
    bias: list[dict[str, Any]] = []
    if result.sensitive is not None and result.bias is not None:
        post = result.bias["post_training_bias_metrics"]
        for rates in result.bias_rates:
            group_dims = [
                *dims,
                {"Name": "BiasStage", "Value": contract.BIAS_STAGE},
                {"Name": "Label", "Value": str(post["label"])},
                {"Name": "LabelValue", "Value": str(post["label_value_or_threshold"])},
                {"Name": "Facet", "Value": result.sensitive},
                {"Name": "FacetValue", "Value": rates.group},
            ]
            for name, value in rates.metrics.items():
                if not math.isnan(value):
                    bias.append(datum(contract.bias_metric(name), value, dimensions=group_dims))
        bias.append(datum(contract.BIAS_VIOLATIONS_METRIC, float(len(result.bias_violations)), "Count"))
    return quality, bias
