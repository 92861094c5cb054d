"""The per-epoch log line format and the SageMaker metric regexes that parse it (one source of truth).

Kept free of torch imports: the Pulumi component imports `METRIC_DEFINITIONS` for the training job's
`metric_definitions`, and the training loop formats its lines with `format_epoch_line`.
"""

from __future__ import annotations

from collections.abc import Mapping

# Fields of the epoch line, in the order they are written. Each becomes one SageMaker metric.
EPOCH_LINE_FIELDS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_auc",
    "val_accuracy",
    "val_loss",
)

REGRESSION_LINE_FIELDS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_rmse",
    "val_mae",
    "val_r2",
    "val_loss",
)
"""A regression run's epoch line: train_loss is the MSE of the standardised target, val_loss the validation
RMSE in target units (what early stopping and the best-epoch choice follow)."""

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"

# SageMaker applies each regex to every log line and takes the first capture group as the value.
# The leading `(?:^|;)` stops `epoch=` from matching inside another key such as `best_epoch=`.
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"(?:^|;){name}={_NUMBER};"} for name in EPOCH_LINE_FIELDS
]
REGRESSION_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"(?:^|;){name}={_NUMBER};"} for name in REGRESSION_LINE_FIELDS
]


def format_epoch_line(epoch: int, values: Mapping[str, float]) -> str:
    """Return the log line for one epoch, e.g. `epoch=3;train_loss=0.1234;val_auc=0.9876;`."""
    parts = [f"epoch={epoch};"]
    fields = REGRESSION_LINE_FIELDS if "val_rmse" in values else EPOCH_LINE_FIELDS
    for name in fields[1:]:
        if name in values:
            parts.append(f"{name}={values[name]:.4f};")
    return "".join(parts)
