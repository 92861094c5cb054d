"""Typed, validated hyperparameters parsed from SageMaker's hyperparameters.json (all values are strings).

Every error names the key, the bad value and what is allowed; keys SageMaker tooling injects
(`sagemaker_*`) are ignored with a log line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import TrainingInputError

LOG = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
SWITCHES = ("auto", "true", "false")
LR_SCALINGS = ("sqrt", "linear", "none")
TASKS = ("auto", "classification", "regression")
"""`auto` detects the task from the target column (training/data.py, `detect_task`)."""
REFERENCE_BATCH = 256
"""The global batch at which `learning_rate` applies as given; other batches scale it (`learning_rate_scaling`)."""
DEFAULT_BATCH = {"cpu": 1024, "cuda": 8192}
"""`batch_size` 0 (auto) per device type: large on GPUs, where a small step leaves the GPU waiting on Python."""


@dataclass(frozen=True)
class Hyperparameters:
    """The settings of one training run, parsed once at the edge."""

    target: str = "label"
    """Name of the label column."""
    task: str = "auto"
    """classification, regression, or auto: regression when the target is numeric with more than
    REGRESSION_MIN_DISTINCT distinct values (training/data.py), else classification."""
    epochs: int = 30
    """Number of passes over the training data."""
    learning_rate: float = 1e-3
    """AdamW learning rate at a global batch of 256 (REFERENCE_BATCH); see `learning_rate_scaling`."""
    batch_size: int = 0
    """Rows per optimizer step in each process; 0 picks the device's default (DEFAULT_BATCH)."""
    learning_rate_scaling: str = "sqrt"
    """How the learning rate follows the global batch (batch x processes) relative to 256: sqrt, linear, none."""
    hidden_units: tuple[int, ...] = (256, 256)
    """Widths of the hidden layers, written as "256,256"."""
    dropout: float = 0.1
    """Dropout probability after each hidden layer."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    embedding_dim: int = 8
    """Width of each categorical feature's embedding."""
    categorical_columns: tuple[str, ...] = ()
    """Columns to treat as categorical even though their values are numbers (codes, zip codes), "a,b"."""
    max_categories: int = 1000
    """Most frequent categories kept per categorical column; rarer ones map to the unknown index."""
    patience: int = 0
    """Stop after this many epochs without a better validation loss; 0 disables early stopping."""
    validation_interval: int = 0
    """Validate every this many epochs (and always after the last); 0 = auto (AUTO_VALIDATION_ROWS)."""
    checkpoint_epochs: int = 10
    """Write a checkpoint at least every this many epochs; 0 = only by time, on stop and at the end."""
    checkpoint_seconds: int = 300
    """Write a checkpoint at least every this many seconds, also within an epoch; 0 = not by time."""
    seed: int = 42
    """Seed for weights, batch order and dropout."""
    device: str = "auto"
    """auto (CUDA when present, required on GPU instance types), cpu or cuda."""
    cuda_graph: str = "auto"
    """Replay the training step as a CUDA graph: auto (on for a single CUDA process), true, false."""
    processes_per_host: int = 0
    """Training processes per host; 0 = one per GPU (one on CPU)."""
    num_threads: int = 0
    """CPU threads for PyTorch; 0 keeps PyTorch's default (one per core). Small models train faster on 1."""
    rendezvous_timeout_seconds: int = 1800
    """How long hosts wait for each other at start (and while they read their data)."""
    collective_timeout_seconds: int = 45
    """How long one collective may wait for a peer during training before the job fails."""
    positive_label: str = ""
    """The positive class of a binary model in the model-quality baseline; empty = the second class (sorted)."""
    prune_fraction: float = 0.0
    """Share of each hidden layer's units removed after training (structured pruning, training/pruning.py);
    0 = off, allowed [0, 1)."""
    prune_finetune_epochs: int = 1
    """Epochs of fine-tuning after pruning (0: none)."""
    sensitive_feature: str = ""
    """A feature whose groups the bias baseline compares (the stack passes mlplatform:monitorSensitiveAttribute);
    empty = no bias baseline."""

    def as_strings(self) -> dict[str, str]:
        """The hyperparameters as SageMaker passes them (strings), e.g. for a demo hyperparameters.json."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        return out

    def as_json(self) -> dict[str, Any]:
        """The hyperparameters with their types, for the manifest."""
        out = dataclasses.asdict(self)
        out["hidden_units"] = list(self.hidden_units)
        out["categorical_columns"] = list(self.categorical_columns)
        return out


def _parse_int(key: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise TrainingInputError(
            f"hyperparameter {key!r}: {raw!r} is not an integer; allowed: an integer in [{low}, {high}]"
        ) from None
    if not low <= value <= high:
        raise TrainingInputError(
            f"hyperparameter {key!r}: {raw!r} is out of range; allowed: an integer in [{low}, {high}]"
        )
    return value


def _parse_float(key: str, raw: str, low: float, high: float, *, low_open: bool = False) -> float:
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    try:
        value = float(raw.strip())
    except ValueError:
        raise TrainingInputError(
            f"hyperparameter {key!r}: {raw!r} is not a number; allowed: a number in {interval}"
        ) from None
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is out of range; allowed: a number in {interval}")
    return value


def _parse_prune_fraction(key: str, raw: str) -> float:
    allowed = "allowed: a number in [0, 1), 0 = no pruning"
    try:
        value = float(raw.strip())
    except ValueError:
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is not a number; {allowed}") from None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is out of range; {allowed}")
    return value


def _parse_hidden_units(key: str, raw: str) -> tuple[int, ...]:
    allowed = 'allowed: 1 to 8 comma-separated integers in [1, 65536], e.g. "256,256"'
    parts = [p.strip() for p in raw.split(",")]
    if not 1 <= len(parts) <= 8 or any(not p for p in parts):
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is not a list of layer widths; {allowed}")
    widths: list[int] = []
    for part in parts:
        try:
            width = int(part)
        except ValueError:
            raise TrainingInputError(
                f"hyperparameter {key!r}: {raw!r} has a non-integer width {part!r}; {allowed}"
            ) from None
        if not 1 <= width <= 65536:
            raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} has an out-of-range width; {allowed}")
        widths.append(width)
    return tuple(widths)


def _parse_target(key: str, raw: str) -> str:
    if not raw.strip():
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is empty; allowed: a column name")
    return raw.strip()


def _parse_columns(key: str, raw: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in raw.split(",")) if raw.strip() else ()
    if any(not name for name in names) or len(set(names)) != len(names):
        raise TrainingInputError(
            f"hyperparameter {key!r}: {raw!r} is not a list of column names; "
            f'allowed: distinct comma-separated column names, e.g. "zip,store_id", or empty'
        )
    return names


def _parse_optional_name(key: str, raw: str) -> str:
    value = raw.strip()
    if len(value) > 128:
        raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is too long; allowed: up to 128 characters or empty")
    return value


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise TrainingInputError(f"hyperparameter {key!r}: {raw!r} is not allowed; allowed: {', '.join(choices)}")
        return value

    return parse


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "target": _parse_target,
    "task": _parse_choice(TASKS),
    "epochs": lambda k, v: _parse_int(k, v, 1, 100_000),
    "learning_rate": lambda k, v: _parse_float(k, v, 0.0, 10.0, low_open=True),
    "batch_size": lambda k, v: _parse_int(k, v, 0, 4_194_304),
    "learning_rate_scaling": _parse_choice(LR_SCALINGS),
    "hidden_units": _parse_hidden_units,
    "dropout": lambda k, v: _parse_float(k, v, 0.0, 0.9),
    "weight_decay": lambda k, v: _parse_float(k, v, 0.0, 1.0),
    "embedding_dim": lambda k, v: _parse_int(k, v, 1, 1024),
    "categorical_columns": _parse_columns,
    "max_categories": lambda k, v: _parse_int(k, v, 1, 1_000_000),
    "patience": lambda k, v: _parse_int(k, v, 0, 100_000),
    "validation_interval": lambda k, v: _parse_int(k, v, 0, 100_000),
    "checkpoint_epochs": lambda k, v: _parse_int(k, v, 0, 100_000),
    "checkpoint_seconds": lambda k, v: _parse_int(k, v, 0, 86_400),
    "seed": lambda k, v: _parse_int(k, v, 0, 2**32 - 1),
    "device": _parse_choice(DEVICES),
    "cuda_graph": _parse_choice(SWITCHES),
    "processes_per_host": lambda k, v: _parse_int(k, v, 0, 64),
    "num_threads": lambda k, v: _parse_int(k, v, 0, 1024),
    "rendezvous_timeout_seconds": lambda k, v: _parse_int(k, v, 30, 86_400),
    "collective_timeout_seconds": lambda k, v: _parse_int(k, v, 5, 3_600),
    "positive_label": _parse_optional_name,
    "sensitive_feature": _parse_optional_name,
    "prune_fraction": _parse_prune_fraction,
    "prune_finetune_epochs": lambda k, v: _parse_int(k, v, 0, 1000),
}


def _as_string(key: str, value: object) -> str:
    # SageMaker passes strings; the SageMaker Python SDK JSON-encodes them a second time ("\"label\"").
    # Plain JSON numbers are accepted too, for hand-written local files.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TrainingInputError(
            f"hyperparameter {key!r}: {value!r} has type {type(value).__name__}; allowed: a string"
        )
    text = str(value)
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def parse_hyperparameters(raw: Mapping[str, object]) -> Hyperparameters:
    """Parse and validate raw hyperparameters; unknown keys and bad values raise TrainingInputError."""
    values: dict[str, Any] = {}
    for key in sorted(raw):
        if key.startswith("sagemaker_"):
            LOG.info("ignoring hyperparameter %r: set by SageMaker tooling, not used by this container", key)
            continue
        parser = _PARSERS.get(key)
        if parser is None:
            raise TrainingInputError(
                f"hyperparameter {key!r}: {raw[key]!r} is not a known hyperparameter; "
                f"allowed keys: {', '.join(sorted(_PARSERS))}"
            )
        values[key] = parser(key, _as_string(key, raw[key]))
    return Hyperparameters(**values)


def load_hyperparameters(path: Path) -> Hyperparameters:
    """Read hyperparameters.json; a missing file means all defaults (SageMaker omits it when none are set)."""
    if not path.exists():
        LOG.info("no %s: using default hyperparameters", path)
        return Hyperparameters()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingInputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TrainingInputError(f"{path} must hold a JSON object of strings, not {type(raw).__name__}")
    return parse_hyperparameters(raw)
