"""Structured pruning of hidden units: the layers really get narrower, so the exported graph does less work.

`torch.nn.utils.prune` is no substitute: it keeps every weight tensor at its full shape, stores the original as
`<name>_orig` and a 0/1 buffer `<name>_mask`, and multiplies them in a forward pre-hook (PyTorch docs,
torch.nn.utils.prune.custom_from_mask and BasePruningMethod.apply / apply_mask), so the exported MatMuls keep
their sizes and run no faster.
Here each hidden `nn.Linear` of the model's body (training/model.py: Linear, ReLU, Dropout per layer; no
BatchNorm or LayerNorm to shrink with it) is rebuilt with fewer output units, and the next Linear (or the head)
with the matching input columns removed.

Importance of hidden unit j of a layer: ||W_in[j, :]||_2 * ||W_out[:, j]||_2, the norm of the weights that
feed it times the norm of the weights that read it (a unit whose input or output weights are small moves the
next layer little). Ties keep the lower index. Layers are pruned front to back, each ranking its units with the
next layer's weights as they are at that moment. After pruning the model is fine-tuned for
`prune_finetune_epochs` epochs with the run's optimiser settings on the training split.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from training.data import EncodedSplit, TrainingData
from training.export import CATEGORICAL_INPUT, NUMERIC_INPUT
from training.hyperparameters import Hyperparameters
from training.model import TabularClassifier
from training.trainer import to_device

LOG = logging.getLogger(__name__)

LATENCY_BATCH = 256
"""Rows per timed run of the exported graph."""
LATENCY_RUNS = 30
"""Timed runs per repeat; the figure is the median over LATENCY_REPEATS repeats of their mean."""
LATENCY_REPEATS = 7


def _linears(model: TabularClassifier) -> list[nn.Linear]:
    return [m for m in model.body if isinstance(m, nn.Linear)]


def hidden_widths(model: TabularClassifier) -> list[int]:
    return [layer.out_features for layer in _linears(model)]


def unit_importance(layer: nn.Linear, following: nn.Linear) -> torch.Tensor:
    """||incoming weights|| x ||outgoing weights|| of each output unit of `layer`."""
    return layer.weight.detach().norm(dim=1) * following.weight.detach().norm(dim=0)


def kept_units(width: int, fraction: float) -> int:
    """Units left of `width` after pruning `fraction` of them (at least one)."""
    return max(1, math.ceil(width * (1.0 - fraction) - 1e-9))


def _rows(layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
    out = nn.Linear(layer.in_features, len(index))
    with torch.no_grad():
        out.weight.copy_(layer.weight[index])
        out.bias.copy_(layer.bias[index])
    return out


def _columns(layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
    out = nn.Linear(len(index), layer.out_features)
    with torch.no_grad():
        out.weight.copy_(layer.weight[:, index])
        out.bias.copy_(layer.bias)
    return out


def prune_model(model: TabularClassifier, fraction: float) -> TabularClassifier:
    """A copy of `model` with the least important (1 - fraction share kept) units of every hidden layer removed."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune fraction {fraction!r} is outside [0, 1)")
    pruned = copy.deepcopy(model).cpu().eval()
    positions = [i for i, m in enumerate(pruned.body) if isinstance(m, nn.Linear)]
    for n, position in enumerate(positions):
        layer = pruned.body[position]
        assert isinstance(layer, nn.Linear)
        following_position = positions[n + 1] if n + 1 < len(positions) else None
        following = pruned.head if following_position is None else pruned.body[following_position]
        assert isinstance(following, nn.Linear)
        keep = kept_units(layer.out_features, fraction)
        scores = unit_importance(layer, following)
        # Stable sort on the negated score: equal scores keep the lower index.
        order = torch.sort(-scores, stable=True).indices[:keep]
        index = torch.sort(order).values
        pruned.body[position] = _rows(layer, index)
        if following_position is None:
            pruned.head = _columns(following, index)
        else:
            pruned.body[following_position] = _columns(following, index)
    return pruned


def finetune(model: TabularClassifier, data: TrainingData, hp: Hyperparameters, epochs: int) -> TabularClassifier:
    """Train the pruned model a little on the CPU: the run's loss, AdamW with its learning rate and decay."""
    if epochs <= 0:
        return model
    split = to_device(data.train, torch.device("cpu"))
    generator = torch.Generator().manual_seed(hp.seed)
    torch.manual_seed(hp.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    batch = hp.batch_size or 256
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            categorical = None if split.categorical_index is None else split.categorical_index[index]
            out = model(split.numeric[index], categorical).float()
            labels = split.labels[index]
            if model.regression:
                mean, std = data.schema.target_mean, data.schema.target_std
                loss = F.mse_loss(out[:, 0], (labels - mean) / std)
            else:
                loss = F.cross_entropy(out, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def graph_latency_ms(path: Path, split: EncodedSplit, batch_rows: int = LATENCY_BATCH) -> dict[str, Any]:
    """Median milliseconds of one run of the graph on a fixed batch of `batch_rows` rows, one thread."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = np.arange(batch_rows) % len(split)
    feed: dict[str, np.ndarray] = {NUMERIC_INPUT: np.ascontiguousarray(split.numeric[rows])}
    if CATEGORICAL_INPUT in {i.name for i in session.get_inputs()}:
        feed[CATEGORICAL_INPUT] = split.categorical[rows]
    output = session.get_outputs()[0].name
    for _ in range(5):
        session.run([output], feed)
    repeats: list[float] = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        for _ in range(LATENCY_RUNS):
            session.run([output], feed)
        repeats.append((time.perf_counter() - started) * 1000 / LATENCY_RUNS)
    return {"median_ms": statistics.median(repeats), "batch_rows": batch_rows, "threads": 1}


def pruning_facts(
    *,
    hp: Hyperparameters,
    widths_before: list[int],
    widths_after: list[int],
    unpruned: dict[str, float],
    pruned: dict[str, float],
    latency_unpruned: dict[str, Any],
    latency_pruned: dict[str, Any],
) -> dict[str, Any]:
    """evaluation.json `pruning`: widths, validation metrics of both exported fp32 graphs and their latency."""
    return {
        "fraction": hp.prune_fraction,
        "finetune_epochs": hp.prune_finetune_epochs,
        "importance": "l2(incoming weights) * l2(outgoing weights) per hidden unit",
        "widths_before": widths_before,
        "widths_after": widths_after,
        "unpruned": unpruned,
        "pruned": pruned,
        "pruned_minus_unpruned": {name: pruned[name] - unpruned[name] for name in pruned},
        "latency": {
            "unpruned_ms": latency_unpruned["median_ms"],
            "pruned_ms": latency_pruned["median_ms"],
            "speedup": latency_unpruned["median_ms"] / latency_pruned["median_ms"],
            "batch_rows": latency_pruned["batch_rows"],
            "threads": latency_pruned["threads"],
            "graph": "fp32",
            "statistic": f"median of {LATENCY_REPEATS} repeats of the mean of {LATENCY_RUNS} runs",
        },
    }
