"""Bias drift: per-group rates and the post-training bias metrics of SageMaker Clarify, checked against a baseline.

For a sensitive attribute with groups ``d`` (each value in turn) and ``a`` (every other row), after Clarify's
definitions (developer guide, "Post-training data and model bias metrics", clarify-measure-post-training-bias):

- ``DPPL`` (difference in positive proportions in predicted labels, i.e. the demographic parity difference):
  ``q'_a - q'_d`` where ``q'`` is the share of rows predicted positive.
- ``RD`` (recall difference, i.e. the equal opportunity difference): ``TPR_a - TPR_d``.
- ``AD`` (accuracy difference): ``ACC_a - ACC_d``.

The files follow Clarify's analysis layout (``post_training_bias_metrics.facets.<attribute>[]`` with
``value_or_threshold`` and ``metrics[{name, description, value}]``), and violations its bias-drift layout
(``facet``, ``facet_value``, ``metric_name``, ``constraint_check_type: bias_drift_check``, ``description``).
A baseline metric carries our ``threshold``: the largest absolute value the window may show, the baseline's
absolute value plus a tolerance. Groups with fewer rows than ``min_group_rows`` are reported, not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BIAS_METRICS = {
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "RD": "Recall Difference (RD)",
    "AD": "Accuracy Difference (AD)",
}
DEFAULT_TOLERANCE = 0.1
DEFAULT_MIN_GROUP_ROWS = 30
BIAS_CHECK = "bias_drift_check"


@dataclass(frozen=True)
class GroupRates:
    """One group's figures over the window."""

    group: str
    rows: int
    positive_prediction_rate: float
    true_positive_rate: float
    false_positive_rate: float
    error_rate: float
    metrics: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "rows": self.rows,
            "positive_prediction_rate": _num(self.positive_prediction_rate),
            "true_positive_rate": _num(self.true_positive_rate),
            "false_positive_rate": _num(self.false_positive_rate),
            "error_rate": _num(self.error_rate),
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
        }


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else "NaN"


def _rate(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _rates(actual: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float, float]:
    """(positive prediction rate, TPR, FPR, accuracy) of boolean arrays."""
    n = float(actual.size)
    tp = float(np.count_nonzero(actual & predicted))
    fp = float(np.count_nonzero(~actual & predicted))
    return (
        _rate(float(np.count_nonzero(predicted)), n),
        _rate(tp, float(np.count_nonzero(actual))),
        _rate(fp, float(np.count_nonzero(~actual))),
        _rate(float(np.count_nonzero(actual == predicted)), n),
    )


def group_rates(groups: Sequence[str], actual: np.ndarray, predicted: np.ndarray) -> list[GroupRates]:
    """Per group: rates of the group and its bias metrics against all other rows (Clarify's d vs a)."""
    g = np.asarray(groups, dtype=object)
    out: list[GroupRates] = []
    for value in sorted(set(groups)):
        inside = g == value
        q_d, tpr_d, fpr_d, acc_d = _rates(actual[inside], predicted[inside])
        q_a, tpr_a, _, acc_a = _rates(actual[~inside], predicted[~inside])
        out.append(
            GroupRates(
                group=str(value),
                rows=int(inside.sum()),
                positive_prediction_rate=q_d,
                true_positive_rate=tpr_d,
                false_positive_rate=fpr_d,
                error_rate=1.0 - acc_d if math.isfinite(acc_d) else math.nan,
                metrics={"DPPL": q_a - q_d, "RD": tpr_a - tpr_d, "AD": acc_a - acc_d},
            )
        )
    return out


def bias_report(
    attribute: str,
    label: str,
    positive_label: str,
    rates: Sequence[GroupRates],
    thresholds: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Clarify's analysis layout of the window's (or the baseline's) bias metrics, plus the group rates."""
    facets = []
    for r in rates:
        metrics = []
        for name, description in BIAS_METRICS.items():
            entry: dict[str, Any] = {"name": name, "description": description, "value": _num(r.metrics[name])}
            if thresholds is not None:
                entry["threshold"] = thresholds[r.group][name]
            metrics.append(entry)
        facets.append({"value_or_threshold": r.group, "metrics": metrics})
    return {
        "version": "1.0",
        "post_training_bias_metrics": {
            "label": label,
            "label_value_or_threshold": positive_label,
            "facets": {attribute: facets},
        },
        "group_rates": {attribute: [r.to_json() for r in rates]},
    }


def suggest_bias_constraints(
    attribute: str,
    label: str,
    positive_label: str,
    rates: Sequence[GroupRates],
    tolerance: float = DEFAULT_TOLERANCE,
    min_group_rows: int = DEFAULT_MIN_GROUP_ROWS,
) -> dict[str, Any]:
    """The baseline: each group's metrics and the largest absolute value a window may show for them."""
    if not 0 < tolerance <= 1:
        raise ValueError(f"bias tolerance {tolerance!r}: allowed a number in (0, 1]")
    thresholds = {
        r.group: {
            name: round(abs(v) + tolerance, 6) if math.isfinite(v) else tolerance for name, v in r.metrics.items()
        }
        for r in rates
    }
    doc = bias_report(attribute, label, positive_label, rates, thresholds)
    doc["monitoring_config"] = {"tolerance": tolerance, "min_group_rows": min_group_rows}
    return doc


@dataclass(frozen=True)
class BiasBaseline:
    attribute: str
    positive_label: str
    thresholds: Mapping[str, Mapping[str, float]]
    tolerance: float
    min_group_rows: int


def parse_bias_constraints(doc: Mapping[str, Any], source: str) -> BiasBaseline:
    """Read a bias baseline (ours, Clarify's layout); errors name the file and the part that is wrong."""
    try:
        post = doc["post_training_bias_metrics"]
        facets = post["facets"]
        (attribute, groups), *rest = facets.items()
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{source}: expected post_training_bias_metrics.facets with one attribute") from None
    if rest:
        raise ValueError(f"{source}: one sensitive attribute per baseline; found {sorted(facets)}")
    config = doc.get("monitoring_config", {}) or {}
    tolerance = float(config.get("tolerance", DEFAULT_TOLERANCE))
    min_rows = int(config.get("min_group_rows", DEFAULT_MIN_GROUP_ROWS))
    thresholds: dict[str, dict[str, float]] = {}
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or "value_or_threshold" not in group:
            raise ValueError(f"{source}: facets.{attribute}[{i}] needs value_or_threshold and metrics")
        per: dict[str, float] = {}
        for metric in group.get("metrics", []):
            name = metric.get("name")
            if name not in BIAS_METRICS:
                continue
            if "threshold" in metric:
                per[name] = float(metric["threshold"])
            else:
                # A plain Clarify analysis has values only: the allowed band is the value plus the tolerance.
                value = metric.get("value")
                per[name] = abs(float(value)) + tolerance if isinstance(value, int | float) else tolerance
        thresholds[str(group["value_or_threshold"])] = per
    return BiasBaseline(str(attribute), str(post.get("label_value_or_threshold", "1")), thresholds, tolerance, min_rows)


def bias_violations(baseline: BiasBaseline, rates: Sequence[GroupRates]) -> list[dict[str, str]]:
    """A violation per group and metric whose absolute value exceeds the baseline's threshold for it."""
    out: list[dict[str, str]] = []
    for r in rates:
        if r.rows < baseline.min_group_rows:
            continue
        limits = baseline.thresholds.get(r.group)
        for name in BIAS_METRICS:
            value = r.metrics[name]
            limit = limits.get(name, baseline.tolerance) if limits is not None else baseline.tolerance
            if math.isfinite(value) and abs(value) > limit:
                where = "" if limits is not None else " (group not in the baseline: default tolerance)"
                out.append(
                    {
                        "facet": baseline.attribute,
                        "facet_value": r.group,
                        "metric_name": name,
                        "constraint_check_type": BIAS_CHECK,
                        "description": f"Value {value:.6g} of {name} for {baseline.attribute}={r.group} exceeds "
                        f"the allowed absolute value {limit:.6g}{where}",
                    }
                )
    return out
