"""Classification metrics AUC (one-vs-rest macro for several classes), accuracy, log loss."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """`auc`, `accuracy` and `log_loss` of class probabilities [N, K] against label indices [N]."""
    n_classes = probabilities.shape[1]
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    accuracy = float((p.argmax(axis=1) == labels).mean())
    loss = float(log_loss(labels, p, labels=list(range(n_classes))))
    return {"auc": _auc(p, labels, n_classes), "accuracy": accuracy, "log_loss": loss}


def _auc(p: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    if n_classes == 2:
        if len(np.unique(labels)) < 2:
            return math.nan
        return float(roc_auc_score(labels, p[:, 1]))
    # One-vs-rest macro over the classes present in this split: sklearn's multiclass AUC needs every class
    # to appear, which a small validation split cannot promise.
    scores = [
        float(roc_auc_score(labels == k, p[:, k]))
        for k in range(n_classes)
        if 0 < int((labels == k).sum()) < len(labels)
    ]
    return float(np.mean(scores)) if scores else math.nan
