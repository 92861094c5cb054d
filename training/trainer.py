"""One training run: device, data-parallel setup, the data-resident loop, checkpoints, early stopping.

The loop keeps the whole training split on the device and draws random-permutation batches from it: the
textbook DataLoader loop spends its time in Python and starves a GPU (see DESIGN.md, performance facts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from training.checkpoint import FORMAT_VERSION, load_newest_checkpoint, save_checkpoint
from training.data import EncodedSplit, TrainingData
from training.errors import TrainingInputError
from training.evaluation import classification_metrics
from training.hyperparameters import Hyperparameters
from training.layout import Cluster, MLRoot
from training.metrics import format_epoch_line
from training.model import TabularClassifier

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceSplit:
    """A split's tensors, resident on the training device."""

    numeric: torch.Tensor
    categorical_index: torch.Tensor | None
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TrainResult:
    """What the run produced: the selected weights (best validation loss) and the per-epoch history."""

    model: TabularClassifier
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    device: str
    world_size: int


def resolve_device(choice: str) -> torch.device:
    """The device named by the `device` hyperparameter; `auto` takes CUDA when there is one."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingInputError(
            "hyperparameter 'device': 'cuda' was requested but no CUDA device is available; allowed here: auto, cpu"
        )
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; fp32 elsewhere (CPU, or pre-Ampere GPUs such as the T4)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return None


def build_model(data: TrainingData, hp: Hyperparameters) -> TabularClassifier:
    schema = data.schema
    return TabularClassifier(
        means=schema.means,
        stds=schema.stds,
        cardinalities=schema.cardinalities,
        embedding_dim=hp.embedding_dim,
        hidden_units=hp.hidden_units,
        dropout=hp.dropout,
        n_classes=len(schema.classes),
    )


def to_device(split: EncodedSplit, device: torch.device, rows: np.ndarray | None = None) -> DeviceSplit:
    """Copy a split (or some of its rows) to the device once, for the whole run."""

    def pick(array: np.ndarray) -> np.ndarray:
        # A copy: pandas may hand out read-only arrays, which torch refuses to share.
        return np.array(array if rows is None else array[rows], copy=True, order="C")

    categorical = None
    if split.categorical_index.shape[1]:
        categorical = torch.from_numpy(pick(split.categorical_index)).to(device)
    return DeviceSplit(
        numeric=torch.from_numpy(pick(split.numeric)).to(device),
        categorical_index=categorical,
        labels=torch.from_numpy(pick(split.labels)).to(device),
    )


def epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The batch-order generator of one epoch on one host: a function of (seed, epoch, rank) only, so a
    resumed run draws exactly the batches the interrupted one would have."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63))
    return generator


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DeviceSplit,
    *,
    batch_size: int,
    steps: int,
    generator: torch.Generator,
    amp_dtype: torch.dtype | None,
) -> torch.Tensor:
    """Run `steps` optimizer steps on random-permutation batches; return the summed loss (on the device,
    so the loop never waits for the GPU to report a number)."""
    model.train()
    device = data.labels.device
    order = torch.randperm(len(data), generator=generator).to(device)
    total = torch.zeros((), device=device)
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        numeric = data.numeric.index_select(0, index)
        labels = data.labels.index_select(0, index)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            if data.categorical_index is None:
                logits = model(numeric)
            else:
                logits = model(numeric, data.categorical_index.index_select(0, index))
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * index.numel()
    return total


@torch.no_grad()
def predict_probabilities(model: TabularClassifier, data: DeviceSplit, *, chunk: int = 65536) -> np.ndarray:
    """Class probabilities in fp32 (no autocast: these numbers are compared with the exported graph)."""
    model.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(data), chunk):
        numeric = data.numeric[start : start + chunk]
        categorical = None if data.categorical_index is None else data.categorical_index[start : start + chunk]
        logits = model(numeric, categorical)
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out, axis=0)


def run_key(data: TrainingData, hp: Hyperparameters) -> str:
    """Identifies what a checkpoint was trained on; a checkpoint of other data or settings is not resumed."""
    # Where the run executes does not change what it computes: device and threads may differ on resume.
    settings = {k: v for k, v in hp.as_json().items() if k not in {"device", "num_threads"}}
    text = json.dumps({"data": data.fingerprint, "hyperparameters": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    # Dropout draws from the global torch RNG (the CUDA one on a GPU); batch order has its own generator.
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _init_distributed(cluster: Cluster, device: torch.device) -> None:
    if cluster.network_interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", cluster.network_interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", cluster.network_interface)
    backend = "nccl" if device.type == "cuda" else "gloo"
    LOG.info(
        "joining %d hosts as rank %d (%s), master %s:%d",
        cluster.world_size,
        cluster.rank,
        backend,
        cluster.master_addr,
        cluster.master_port,
    )
    dist.init_process_group(
        backend,
        init_method=f"tcp://{cluster.master_addr}:{cluster.master_port}",
        rank=cluster.rank,
        world_size=cluster.world_size,
        timeout=timedelta(minutes=20),
        device_id=device if device.type == "cuda" else None,
    )


def _broadcast(value: Any, distributed: bool) -> Any:
    if not distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def train(data: TrainingData, hp: Hyperparameters, cluster: Cluster, ml: MLRoot) -> TrainResult:
    """Train with resume from the newest valid checkpoint; returns the best weights on every host."""
    device = resolve_device(hp.device)
    if hp.num_threads:
        torch.set_num_threads(hp.num_threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = cluster.world_size > 1
    if distributed:
        _init_distributed(cluster, device)
    try:
        return _train(data, hp, cluster, ml, device=device, distributed=distributed)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    data: TrainingData,
    hp: Hyperparameters,
    cluster: Cluster,
    ml: MLRoot,
    *,
    device: torch.device,
    distributed: bool,
) -> TrainResult:
    world, rank = cluster.world_size, cluster.rank
    if distributed:
        master_fingerprint = _broadcast(data.fingerprint, distributed)
        if master_fingerprint != data.fingerprint:
            raise TrainingInputError(
                f"host {cluster.current_host!r} read other training data than the first host "
                f"(fingerprint {data.fingerprint[:12]} vs {master_fingerprint[:12]}); "
                f"use FullyReplicated distribution for the train and validation channels"
            )
    amp_dtype = autocast_dtype(device)
    LOG.info(
        "device %s%s, autocast %s, %d train rows, %d validation rows, %d numeric and %d categorical features",
        device,
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "",
        amp_dtype,
        len(data.train),
        len(data.validation),
        len(data.schema.numeric),
        len(data.schema.categorical),
    )

    torch.manual_seed(hp.seed)
    model = build_model(data, hp).to(device)
    key = run_key(data, hp)

    checkpoint = load_newest_checkpoint(ml.checkpoints, key) if rank == 0 else None
    checkpoint = _broadcast(checkpoint, distributed)
    history: list[dict[str, float]] = []
    start_epoch = 1
    best: dict[str, Any] = {"val_loss": math.inf, "epoch": 0, "model": None, "since": 0}
    stopped = False
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        history = list(checkpoint["history"])
        best = dict(checkpoint["best"])
        stopped = bool(checkpoint["stopped"])
        start_epoch = int(checkpoint["epoch"]) + 1
        LOG.info("resumed from checkpoint of epoch %d; continuing at epoch %d", checkpoint["epoch"], start_epoch)

    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(net.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        states = checkpoint["rng"]
        if len(states) == world:
            _restore_rng(states[rank], device)
        else:
            torch.manual_seed(hp.seed + start_epoch * 7_919 + rank)

    # Each host trains on its own share of a seeded shuffle of the data; all hosts take the same number of
    # steps per epoch, because every step ends in an all-reduce of the gradients.
    if distributed:
        shuffled = np.random.default_rng(hp.seed).permutation(len(data.train))
        shares = [shuffled[r::world] for r in range(world)]
        train_split = to_device(data.train, device, np.sort(shares[rank]))
        rows_per_host = min(len(s) for s in shares)
    else:
        train_split = to_device(data.train, device)
        rows_per_host = len(train_split)
    if rows_per_host == 0:
        raise TrainingInputError(f"channel 'train' has fewer rows ({len(data.train)}) than hosts ({world})")
    steps = math.ceil(rows_per_host / hp.batch_size)
    LOG.info(
        "this host trains on %d of %d rows, %d steps of %d rows per epoch",
        len(train_split),
        len(data.train),
        steps,
        hp.batch_size,
    )
    validation_split = to_device(data.validation, device) if rank == 0 else None

    for epoch in range(start_epoch, hp.epochs + 1):
        if stopped:
            break
        total = train_one_epoch(
            net,
            optimizer,
            train_split,
            batch_size=hp.batch_size,
            steps=steps,
            generator=epoch_generator(hp.seed, epoch, rank),
            amp_dtype=amp_dtype,
        )
        rows = torch.tensor(float(min(steps * hp.batch_size, len(train_split))), device=device)
        if distributed:
            dist.all_reduce(total)
            dist.all_reduce(rows)
        train_loss = float(total.item() / rows.item())

        report: dict[str, float] | None = None
        if rank == 0 and validation_split is not None:
            scores = classification_metrics(predict_probabilities(model, validation_split), data.validation.labels)
            report = {
                "epoch": float(epoch),
                "train_loss": train_loss,
                "val_loss": scores["log_loss"],
                "val_auc": scores["auc"],
                "val_accuracy": scores["accuracy"],
            }
            if report["val_loss"] < best["val_loss"]:
                best = {
                    "val_loss": report["val_loss"],
                    "epoch": epoch,
                    "model": _cpu_state(model),
                    "since": 0,
                }
            else:
                best["since"] = int(best["since"]) + 1
            stopped = hp.patience > 0 and int(best["since"]) >= hp.patience
            print(format_epoch_line(epoch, report), flush=True)
        report = _broadcast(report, distributed)
        stopped = bool(_broadcast(stopped, distributed))
        assert report is not None
        history.append(report)

        rng_states = [_rng_state(device)]
        if distributed:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rng_states[0])
            rng_states = [{k: v.cpu() for k, v in s.items()} for s in gathered]
        if rank == 0:
            save_checkpoint(
                ml.checkpoints,
                {
                    "format_version": FORMAT_VERSION,
                    "run_key": key,
                    "epoch": epoch,
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "rng": rng_states,
                    "best": best,
                    "stopped": stopped,
                    "history": history,
                },
            )
        if stopped:
            LOG.info(
                "early stopping after epoch %d: no better validation loss for %d epochs (best epoch %d)",
                epoch,
                hp.patience,
                best["epoch"],
            )
            break

    if rank == 0 and best["model"] is not None:
        model.load_state_dict(best["model"])
    return TrainResult(
        model=model,
        best_epoch=int(best["epoch"]),
        epochs_run=len(history),
        stopped_early=stopped,
        history=history,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        world_size=world,
    )
