"""Model-quality metrics in Model Monitor's statistics.json layout, as small pure functions of arrays.

The layout is the one the model-quality monitor writes (AWS developer guide, "Model quality metrics and
Amazon CloudWatch monitoring", model-monitor-model-quality-metrics): ``binary_classification_metrics``,
``multiclass_classification_metrics`` or ``regression_metrics``, each metric ``{"value", "standard_deviation"}``,
a ``confusion_matrix`` keyed by actual then predicted label, and for binary classification the ROC and
precision-recall curves. "Best constant classifier" figures are those of a model that always answers the
positive class (AWS's example: precision_best_constant_classifier is the positive base rate, recall 1).
The standard deviation is AWS's: the metric on five random 80% samples, only when there are at least 200
rows (else the string "NaN", as AWS writes it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

BINARY = "BinaryClassification"
MULTICLASS = "MulticlassClassification"
REGRESSION = "Regression"
PROBLEM_TYPES = (BINARY, MULTICLASS, REGRESSION)
"""SageMaker's ``ProblemType`` values (ModelQualityAppSpecification)."""

SECTION = {
    BINARY: "binary_classification_metrics",
    MULTICLASS: "multiclass_classification_metrics",
    REGRESSION: "regression_metrics",
}
CONSTRAINTS_SECTION = {
    BINARY: "binary_classification_constraints",
    MULTICLASS: "multiclass_classification_constraints",
    REGRESSION: "regression_constraints",
}
MIN_ROWS_FOR_STD = 200
STD_SAMPLES = 5
STD_FRACTION = 0.8
MAX_CURVE_POINTS = 101
"""ROC and precision-recall curves are thinned to this many points (the file stays small for any window)."""

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

LOWER_IS_BETTER = frozenset({"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"})
"""Metrics that get worse when they grow: their constraints use GreaterThanThreshold."""


def f_beta(precision: float, recall: float, beta: float) -> float:
    """``(1 + b^2) p r / (b^2 p + r)``; 0 when both are 0. Example: p = 1/3, r = 1, b = 1 gives 0.5."""
    denominator = beta * beta * precision + recall
    return (1 + beta * beta) * precision * recall / denominator if denominator > 0 else 0.0


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def auc(positive: BoolArray, scores: FloatArray) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random negative (ties
    count half), computed from average ranks (Mann-Whitney U). NaN when a class is absent."""
    n_pos = int(positive.sum())
    n_neg = int(positive.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Average rank of each run of tied scores.
    starts = np.flatnonzero(np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1])))
    ends = np.concatenate((starts[1:], [scores.size]))
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_scalars(positive: BoolArray, predicted: BoolArray, scores: FloatArray | None) -> dict[str, float]:
    """Every scalar binary metric Model Monitor reports, for actual and predicted positive flags."""
    tp = float(np.count_nonzero(positive & predicted))
    fp = float(np.count_nonzero(~positive & predicted))
    fn = float(np.count_nonzero(positive & ~predicted))
    tn = float(np.count_nonzero(~positive & ~predicted))
    n = tp + fp + fn + tn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    base_rate = _ratio(tp + fn, n)
    out = {
        "recall": recall,
        "precision": precision,
        "accuracy": _ratio(tp + tn, n),
        "true_positive_rate": recall,
        "true_negative_rate": _ratio(tn, tn + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "false_negative_rate": _ratio(fn, fn + tp),
        "recall_best_constant_classifier": 1.0 if tp + fn > 0 else math.nan,
        "precision_best_constant_classifier": base_rate,
        "accuracy_best_constant_classifier": base_rate,
    }
    p0 = 0.0 if math.isnan(precision) else precision
    r0 = 0.0 if math.isnan(recall) else recall
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = f_beta(p0, r0, beta)
        out[f"{name}_best_constant_classifier"] = (
            f_beta(base_rate, 1.0, beta) if not math.isnan(base_rate) else math.nan
        )
    if scores is not None:
        out["auc"] = auc(positive, scores)
    return out


def multiclass_scalars(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy and support-weighted precision, recall and F scores over the classes present in ``actual``."""
    classes, support = np.unique(actual, return_counts=True)
    n = float(actual.size)
    out: dict[str, float] = {"accuracy": _ratio(float(np.count_nonzero(actual == predicted)), n)}
    weighted = {"weighted_recall": 0.0, "weighted_precision": 0.0, "weighted_f0_5": 0.0, "weighted_f1": 0.0}
    weighted["weighted_f2"] = 0.0
    for cls, count in zip(classes, support, strict=True):
        is_actual = actual == cls
        is_pred = predicted == cls
        tp = float(np.count_nonzero(is_actual & is_pred))
        p = _ratio(tp, float(np.count_nonzero(is_pred)))
        p = 0.0 if math.isnan(p) else p
        r = tp / float(count)
        w = float(count) / n
        weighted["weighted_recall"] += w * r
        weighted["weighted_precision"] += w * p
        weighted["weighted_f0_5"] += w * f_beta(p, r, 0.5)
        weighted["weighted_f1"] += w * f_beta(p, r, 1.0)
        weighted["weighted_f2"] += w * f_beta(p, r, 2.0)
    out.update(weighted)
    majority = float(support.max()) / n if n else math.nan
    out["accuracy_best_constant_classifier"] = majority
    return out


def regression_scalars(actual: FloatArray, predicted: FloatArray) -> dict[str, float]:
    """MAE, MSE, RMSE and R2 (``1 - SS_res / SS_tot``; NaN when every actual value is the same)."""
    errors = predicted - actual
    mse = float(np.mean(errors**2)) if errors.size else math.nan
    ss_tot = float(np.sum((actual - actual.mean()) ** 2)) if actual.size else 0.0
    return {
        "mae": float(np.mean(np.abs(errors))) if errors.size else math.nan,
        "mse": mse,
        "rmse": math.sqrt(mse) if not math.isnan(mse) else math.nan,
        "r2": 1.0 - float(np.sum(errors**2)) / ss_tot if ss_tot > 0 else math.nan,
    }


def standard_deviations(
    n: int, scalars: Callable[[npt.NDArray[np.int64]], dict[str, float]], seed: int = 0
) -> dict[str, float | str]:
    """AWS's spread of each metric: its standard deviation over five random 80% samples (n >= 200)."""
    if n < MIN_ROWS_FOR_STD:
        return {}
    rng = np.random.default_rng(seed)
    runs = [scalars(rng.choice(n, size=int(n * STD_FRACTION), replace=False)) for _ in range(STD_SAMPLES)]
    out: dict[str, float | str] = {}
    for name in runs[0]:
        values = np.array([r[name] for r in runs], dtype=np.float64)
        out[name] = float(np.std(values)) if np.isfinite(values).all() else "NaN"
    return out


def _json_number(value: float) -> float | str:
    """AWS writes undefined figures as the string "NaN" (strict JSON has no NaN)."""
    return value if math.isfinite(value) else "NaN"


def with_spread(values: dict[str, float], spread: dict[str, float | str]) -> dict[str, Any]:
    return {
        name: {"value": _json_number(v), "standard_deviation": spread.get(name, "NaN")} for name, v in values.items()
    }


def confusion_matrix(actual: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{actual: {predicted: count}}`` over every label seen on either side (AWS's orientation: in its
    example, recall 1.0 and precision 1/3 come from {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}})."""
    labels = sorted(set(actual) | set(predicted))
    matrix = {a: dict.fromkeys(labels, 0) for a in labels}
    for a, p in zip(actual, predicted, strict=True):
        matrix[a][p] += 1
    return matrix


def _thin(values: FloatArray) -> list[float]:
    if values.size <= MAX_CURVE_POINTS:
        return [float(v) for v in values]
    idx = np.linspace(0, values.size - 1, MAX_CURVE_POINTS).round().astype(int)
    return [float(v) for v in values[idx]]


def curves(positive: BoolArray, scores: FloatArray) -> dict[str, Any]:
    """ROC (false/true positive rates) and precision-recall points over every score threshold, thinned."""
    order = np.argsort(-scores, kind="mergesort")
    hits = positive[order].astype(np.float64)
    tps = np.cumsum(hits)
    fps = np.cumsum(1.0 - hits)
    n_pos = max(float(positive.sum()), 1.0)
    n_neg = max(float(positive.size - positive.sum()), 1.0)
    tpr = np.concatenate(([0.0], tps / n_pos))
    fpr = np.concatenate(([0.0], fps / n_neg))
    precision = np.concatenate(([1.0], tps / np.maximum(tps + fps, 1.0)))
    return {
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": _thin(fpr),
            "true_positive_rates": _thin(tpr),
        },
        "precision_recall_curve": {"precisions": _thin(precision), "recalls": _thin(tpr)},
    }


def binary_metrics(
    actual: Sequence[str], predicted: Sequence[str], positive_label: str, scores: FloatArray | None
) -> dict[str, Any]:
    """The ``binary_classification_metrics`` section."""
    pos = np.array([a == positive_label for a in actual], dtype=bool)
    pred = np.array([p == positive_label for p in predicted], dtype=bool)
    values = binary_scalars(pos, pred, scores)
    spread = standard_deviations(
        pos.size, lambda i: binary_scalars(pos[i], pred[i], scores[i] if scores is not None else None)
    )
    section: dict[str, Any] = {"confusion_matrix": confusion_matrix(actual, predicted), **with_spread(values, spread)}
    if scores is not None and pos.size:
        section.update(curves(pos, scores))
    return section


def multiclass_metrics(actual: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    a = np.array(actual, dtype=object)
    p = np.array(predicted, dtype=object)
    spread = standard_deviations(a.size, lambda i: multiclass_scalars(a[i], p[i]))
    return {"confusion_matrix": confusion_matrix(actual, predicted), **with_spread(multiclass_scalars(a, p), spread)}


def regression_metrics(actual: FloatArray, predicted: FloatArray) -> dict[str, Any]:
    spread = standard_deviations(actual.size, lambda i: regression_scalars(actual[i], predicted[i]))
    return with_spread(regression_scalars(actual, predicted), spread)


def metric_values(section: dict[str, Any]) -> dict[str, float]:
    """Scalar metric values of a statistics section (curves and the confusion matrix left out; "NaN" -> nan)."""
    out: dict[str, float] = {}
    for name, entry in section.items():
        if isinstance(entry, dict) and "value" in entry:
            value = entry["value"]
            try:
                out[name] = float(value)
            except (TypeError, ValueError):
                out[name] = math.nan
    return out
