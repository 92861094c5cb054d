"""Regression metrics RMSE, MAE, R2 (`regression_metrics`, `device_regression_metrics`), and classification
metrics AUC (one-vs-rest macro for several classes), accuracy, log loss.

`classification_metrics` (numpy, scikit-learn) scores the exported graph once; `device_metrics` computes the
same figures on the training device for the validations during training, so they cost a few kernels and
one transfer of three numbers instead of copying every probability to the host.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

if TYPE_CHECKING:  # imported where used, so the gate and `package` load without torch
    import torch

CLIP = 1e-12


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """`auc`, `accuracy` and `log_loss` of class probabilities [N, K] against label indices [N]."""
    n_classes = probabilities.shape[1]
    p = np.clip(probabilities.astype(np.float64), CLIP, 1.0)
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


def rank_auc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (what roc_auc_score computes)."""
    import torch

    sorted_scores, order = torch.sort(scores.double())
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    ranks = ((ends - counts.double() + 1 + ends) / 2)[inverse]
    hits = positive[order]
    n_pos = hits.sum().double()
    n_neg = hits.numel() - n_pos
    return (ranks[hits].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def device_metrics(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """`classification_metrics` on the device: the same clipping, renormalisation and one-vs-rest AUC."""
    import torch

    with torch.no_grad():
        return _device_metrics(probabilities, labels)


def _device_metrics(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    import torch

    n_classes = probabilities.shape[1]
    p = probabilities.double().clamp(CLIP, 1.0)
    p = p / p.sum(dim=1, keepdim=True)
    accuracy = (p.argmax(dim=1) == labels).double().mean()
    loss = -torch.log(p.gather(1, labels.view(-1, 1))).mean()
    counts = torch.bincount(labels, minlength=n_classes).tolist()
    classes = [1] if n_classes == 2 else range(n_classes)
    present = [k for k in classes if 0 < counts[k] < labels.numel()]
    aucs = [rank_auc(p[:, k], labels == k) for k in present]
    auc = torch.stack(aucs).mean() if aucs else torch.tensor(math.nan, device=p.device, dtype=torch.float64)
    values = torch.stack([auc, accuracy, loss]).tolist()
    return {"auc": values[0], "accuracy": values[1], "log_loss": values[2]}


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """`rmse`, `mae` and `r2` (1 - SSE / SST; NaN when the targets are constant) of predictions [N] in target
    units against the targets [N]."""
    p = predictions.astype(np.float64).reshape(-1)
    y = targets.astype(np.float64).reshape(-1)
    error = p - y
    sse = float((error * error).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": math.sqrt(sse / len(y)),
        "mae": float(np.abs(error).mean()),
        "r2": 1.0 - sse / sst if sst > 0 else math.nan,
    }


def device_regression_metrics(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """`regression_metrics` on the device, in float64; one transfer of three numbers."""
    import torch

    with torch.no_grad():
        return _device_regression_metrics(predictions, targets)


def _device_regression_metrics(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    import torch

    p, y = predictions.double().reshape(-1), targets.double().reshape(-1)
    error = p - y
    sse = (error * error).sum()
    sst = ((y - y.mean()) ** 2).sum()
    values = torch.stack([torch.sqrt(sse / y.numel()), error.abs().mean(), 1.0 - sse / sst]).tolist()
    return {"rmse": values[0], "mae": values[1], "r2": values[2] if math.isfinite(values[2]) else math.nan}
