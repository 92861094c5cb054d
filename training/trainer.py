"""One training process: the data-resident loop, CUDA graphs, data parallelism, checkpoints, validation,
early stopping, and the stop request (SIGTERM).

The whole training share stays on the device and each epoch draws random-permutation batches from it: the
textbook DataLoader loop spends its time in Python and leaves a GPU waiting (benchmarks/bench_training.py
measures both). On a single GPU the step (forward, backward, fused AdamW) is captured once as a CUDA graph
and replayed, so a step costs one launch instead of dozens; nothing in the loop waits for the GPU except
validations and checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from training.checkpoint import FORMAT_VERSION, HISTORY_LIMIT, load_newest_checkpoint, save_checkpoint
from training.data import EncodedSplit, TrainingData
from training.errors import TrainingInputError
from training.evaluation import device_metrics, device_regression_metrics
from training.hyperparameters import DEFAULT_BATCH, REFERENCE_BATCH, Hyperparameters
from training.layout import MLRoot
from training.metrics import format_epoch_line
from training.model import TabularClassifier
from training.runtime import StopFlag, WorkerIdentity

LOG = logging.getLogger(__name__)

AUTO_VALIDATION_ROWS = 65_536
"""With `validation_interval` 0, validate once at least this many rows were trained on since the last
validation (every epoch on larger data): a validation costs a fixed host round trip, which would dominate
epochs of a few thousand rows on a GPU."""
CHECK_ROWS = 1 << 20
"""Poll the stop request and the checkpoint clock about every this many rows (at least every 64 steps)."""
GRAPH_WARMUP_STEPS = 3


@dataclass(frozen=True)
class DeviceSplit:
    """A split's tensors, resident on the training device."""

    numeric: torch.Tensor
    categorical_index: torch.Tensor | None
    labels: torch.Tensor
    """int64 class indices, or for regression float32 targets in their own units."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TrainResult:
    """What the run produced: the selected weights (best validation loss) and the per-validation history."""

    model: TabularClassifier | None
    """The best weights so far, or None when the run stopped before it trained anything."""
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    device: str
    world_size: int
    stop: dict[str, Any] | None = None
    """Set when a stop request (SIGTERM) ended the run: the signal and the position reached."""
    timings: dict[str, float] = field(default_factory=dict)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; fp32 elsewhere (CPU, or pre-Ampere GPUs such as the T4)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return None


def resolve_batch(hp: Hyperparameters, device: torch.device) -> int:
    return hp.batch_size or DEFAULT_BATCH["cuda" if device.type == "cuda" else "cpu"]


def scaled_learning_rate(hp: Hyperparameters, global_batch: int) -> float:
    """`learning_rate` is the rate at a global batch of 256; larger batches take larger steps. Square-root
    scaling is the rule for Adam-type optimizers (Malladi et al., "On the SDEs and Scaling Rules for
    Adaptive Gradient Algorithms", NeurIPS 2022); linear scaling (Goyal et al. 2017) is for SGD."""
    ratio = global_batch / REFERENCE_BATCH
    if hp.learning_rate_scaling == "sqrt":
        return hp.learning_rate * math.sqrt(ratio)
    if hp.learning_rate_scaling == "linear":
        return hp.learning_rate * ratio
    return hp.learning_rate


def validation_interval(hp: Hyperparameters, global_rows_per_epoch: int) -> int:
    if hp.validation_interval:
        return hp.validation_interval
    return max(1, math.ceil(AUTO_VALIDATION_ROWS / max(1, global_rows_per_epoch)))


def build_model(data: TrainingData, hp: Hyperparameters) -> TabularClassifier:
    schema = data.schema
    return TabularClassifier(
        means=schema.means,
        stds=schema.stds,
        cardinalities=schema.cardinalities,
        embedding_dim=hp.embedding_dim,
        hidden_units=hp.hidden_units,
        dropout=hp.dropout,
        n_classes=1 if schema.regression else len(schema.classes),
        target_scale=(schema.target_mean, schema.target_std) if schema.regression else None,
    )


def to_device(split: EncodedSplit, device: torch.device) -> DeviceSplit:
    """Copy a split to the device once, for the whole run."""

    def tensor(array: np.ndarray) -> torch.Tensor:
        # A copy: pandas may hand out read-only arrays, which torch refuses to share.
        return torch.from_numpy(np.array(array, copy=True, order="C")).to(device)

    categorical = tensor(split.categorical_index) if split.categorical_index.shape[1] else None
    labels = tensor(split.targets if split.targets is not None else split.labels)
    return DeviceSplit(numeric=tensor(split.numeric), categorical_index=categorical, labels=labels)


def epoch_generator(seed: int, epoch: int, rank: int, device: torch.device | None = None) -> torch.Generator:
    """The batch-order generator of one epoch in one process: a function of (seed, epoch, rank) only, so a
    resumed run draws exactly the batches the interrupted one would have."""
    generator = torch.Generator(device=device or "cpu")
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63))
    return generator


def dropout_seed(seed: int, rank: int) -> int:
    """Each process draws its own dropout masks: the same masks on every replica would correlate them."""
    return (seed * 2_654_435_761 + (rank + 1) * 40_503) % (2**63)


def epoch_order(rows: int, seed: int, epoch: int, rank: int, device: torch.device) -> torch.Tensor:
    """The epoch's random permutation of this process's rows, drawn on the device."""
    return torch.randperm(rows, generator=epoch_generator(seed, epoch, rank, device), device=device)


# --- the step ---------------------------------------------------------------------------------------------


class StepRunner:
    """One optimizer step on the rows `index` of the device-resident split, eager.

    The step reads its batch through the fixed `index` buffer and adds its loss into the fixed `loss_sum`
    buffer, so the same code can be captured as a CUDA graph (GraphStepRunner) and replayed.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: DeviceSplit,
        *,
        batch_size: int,
        amp_dtype: torch.dtype | None,
        autocast_cache: bool = True,
        target_scale: tuple[float, float] | None = None,
    ) -> None:
        self.net = net
        self.target_scale = target_scale
        """Regression: (mean, std) of the target; the loss is the MSE of the standardised target."""
        self.optimizer = optimizer
        self.data = data
        self.batch_size = batch_size
        self.amp_dtype = amp_dtype
        self.autocast_cache = autocast_cache
        device = data.labels.device
        self.index = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)

    def _step(self) -> None:
        data, index = self.data, self.index
        # Zeroed in place rather than set to None: the gradients keep their addresses across graph replays.
        self.optimizer.zero_grad(set_to_none=False)
        numeric = data.numeric.index_select(0, index)
        labels = data.labels.index_select(0, index)
        device_type = data.labels.device.type
        with torch.autocast(
            device_type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
            cache_enabled=self.autocast_cache,
        ):
            if data.categorical_index is None:
                logits = self.net(numeric)
            else:
                logits = self.net(numeric, data.categorical_index.index_select(0, index))
        if self.target_scale is None:
            loss = F.cross_entropy(logits.float(), labels)
        else:
            mean, std = self.target_scale
            loss = F.mse_loss(logits.float()[:, 0], (labels - mean) / std)
        loss.backward()
        self.optimizer.step()
        self.loss_sum.add_(loss.detach() * self.batch_size)

    def run(self, index: torch.Tensor) -> None:
        self.index.copy_(index)
        self._step()


class GraphBackend(Protocol):
    """Captures a step function; `CudaGraphs` on a GPU, a stand-in that replays eagerly in CPU tests."""

    def capture(self, step: Callable[[], None]) -> Callable[[], None]: ...

    def warmup(self, step: Callable[[], None], times: int) -> None: ...


class CudaGraphs:
    """Whole-step capture as in PyTorch's CUDA semantics notes ("CUDA Graphs", whole-network capture):
    warm up on a side stream, then capture the step once; each replay runs it with one launch."""

    def warmup(self, step: Callable[[], None], times: int) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(times):
                step()
        torch.cuda.current_stream().wait_stream(stream)

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph.replay


class GraphStepRunner(StepRunner):
    """The step replayed from a capture. Warm-up steps are real optimizer steps, so the model, optimizer
    and RNG state are put back afterwards: a graphed run trains exactly the steps an eager one does."""

    def __init__(self, *args: Any, backend: GraphBackend, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index.copy_(torch.arange(self.batch_size, device=self.index.device) % len(self.data))
        saved = self._snapshot()
        backend.warmup(self._step, GRAPH_WARMUP_STEPS)
        self._restore(saved)
        self._replay = backend.capture(self._step)

    def _tensors(self) -> list[torch.Tensor]:
        """Every tensor a step changes, as the objects themselves (stable identities across the warm-up)."""
        module = self.net.module if isinstance(self.net, nn.parallel.DistributedDataParallel) else self.net
        state = list(module.state_dict(keep_vars=True).values())
        for per_param in self.optimizer.state.values():
            state += [v for v in per_param.values() if isinstance(v, torch.Tensor)]
        return state

    def _snapshot(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if self.index.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.index.device)
        return {
            "tensors": {id(t): (t, t.detach().clone()) for t in self._tensors()},
            "rng": rng,
            "loss_sum": self.loss_sum.clone(),
        }

    @torch.no_grad()
    def _restore(self, saved: dict[str, Any]) -> None:
        for tensor in self._tensors():
            entry = saved["tensors"].get(id(tensor))
            if entry is not None and entry[0] is tensor:
                tensor.copy_(entry[1])
            else:
                # Optimizer state the warm-up created did not exist before: a fresh AdamW state is all zeros.
                tensor.zero_()
        torch.set_rng_state(saved["rng"]["cpu"])
        if "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], self.index.device)
        self.loss_sum.copy_(saved["loss_sum"])

    def run(self, index: torch.Tensor) -> None:
        self.index.copy_(index)
        self._replay()


# --- predictions and checkpoints --------------------------------------------------------------------------


@torch.no_grad()
def predict_tensor(model: nn.Module, data: DeviceSplit, *, chunk: int = 65536) -> torch.Tensor:
    """Class probabilities [N, K] (regression: predictions [N] in target units) in fp32 on the data's device
    (no autocast: they are compared with the export)."""
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    for start in range(0, len(data), chunk):
        numeric = data.numeric[start : start + chunk]
        categorical = None if data.categorical_index is None else data.categorical_index[start : start + chunk]
        out.append(_unwrapped(model).predict(numeric, categorical))
    model.train(was_training)
    return torch.cat(out, dim=0)


def _unwrapped(model: nn.Module) -> TabularClassifier:
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, TabularClassifier)
    return inner


def validation_scores(model: nn.Module, data: DeviceSplit) -> dict[str, float]:
    """The validation figures of an epoch line, with `val_loss`, the figure the best epoch minimises: log loss
    for a classifier, RMSE (target units) for a regressor."""
    predicted = predict_tensor(model, data)
    if _unwrapped(model).regression:
        r = device_regression_metrics(predicted, data.labels)
        return {"val_rmse": r["rmse"], "val_mae": r["mae"], "val_r2": r["r2"], "val_loss": r["rmse"]}
    c = device_metrics(predicted, data.labels)
    return {"val_loss": c["log_loss"], "val_auc": c["auc"], "val_accuracy": c["accuracy"]}


def predict_probabilities(model: TabularClassifier, data: DeviceSplit, *, chunk: int = 65536) -> np.ndarray:
    """Class probabilities (regression: predictions) in fp32 as numpy."""
    return predict_tensor(model, data, chunk=chunk).cpu().numpy()


def run_key(data: TrainingData, hp: Hyperparameters) -> str:
    """Identifies what a checkpoint was trained on; a checkpoint of other data or settings is not resumed."""
    # Where and how the run executes does not change what it computes: device, threads, graphs, process
    # count, timeouts and checkpoint cadence may differ on resume.
    ignored = {
        "device",
        "num_threads",
        "cuda_graph",
        "processes_per_host",
        "rendezvous_timeout_seconds",
        "collective_timeout_seconds",
        "checkpoint_epochs",
        "checkpoint_seconds",
    }
    settings = {k: v for k, v in hp.as_json().items() if k not in ignored}
    text = json.dumps({"data": data.fingerprint, "hyperparameters": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parameters_digest(module: nn.Module) -> str:
    """sha256 over the module's state (names, shapes and bytes), in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the loop ---------------------------------------------------------------------------------------------


class _Group:
    """Collectives of a run, or their one-process identities when the run has a single process."""

    def __init__(self, identity: WorkerIdentity, device: torch.device) -> None:
        self.identity = identity
        self.device = device
        self.distributed = identity.distributed

    def broadcast(self, value: Any) -> Any:
        if not self.distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list[Any]:
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.identity.world_size
        dist.all_gather_object(out, value)
        return out

    def max_flags(self, *flags: bool) -> list[bool]:
        if not self.distributed:
            return list(flags)
        tensor = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [bool(v) for v in tensor.tolist()]

    def min_int(self, value: int) -> int:
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return int(tensor.item())

    def sum_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor


def use_cuda_graph(hp: Hyperparameters, device: torch.device, world_size: int) -> bool:
    if hp.cuda_graph == "false":
        return False
    if hp.cuda_graph == "true":
        if device.type != "cuda":
            raise TrainingInputError(
                "hyperparameter 'cuda_graph': 'true' needs device 'cuda'; allowed here: auto, false"
            )
        if world_size > 1:
            raise TrainingInputError(
                "hyperparameter 'cuda_graph': 'true' is for a single process; with several, a collective "
                "captured in a graph is not watched by the NCCL watchdog, so a failed peer would hang the job "
                "instead of ending it; allowed here: auto, false"
            )
        return True
    return device.type == "cuda" and world_size == 1


def train(
    data: TrainingData,
    hp: Hyperparameters,
    ml: MLRoot,
    *,
    identity: WorkerIdentity,
    device: torch.device,
    stop: StopFlag,
    graph_backend: GraphBackend | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train with resume from the newest valid checkpoint; returns the best weights (on the first process).

    `graph_backend` replaces the CUDA-graph capture (tests replay eagerly on the CPU through it).
    """
    group = _Group(identity, device)
    world, rank = identity.world_size, identity.rank
    amp_dtype = autocast_dtype(device)
    graphed = graph_backend is not None or use_cuda_graph(hp, device, world)
    backend: GraphBackend | None = graph_backend or (CudaGraphs() if graphed else None)

    torch.manual_seed(hp.seed)  # the same initial weights in every process
    model = build_model(data, hp).to(device)
    key = run_key(data, hp) if rank == 0 else ""
    checkpoint = load_newest_checkpoint(ml.checkpoints, key) if rank == 0 else None
    checkpoint = group.broadcast(checkpoint)

    history: list[dict[str, float]] = []
    epoch, step0 = 1, 0
    best: dict[str, Any] = {"val_loss": math.inf, "epoch": 0, "model": None, "since": 0}
    stopped = False
    loss_carry: torch.Tensor | None = None
    torch.manual_seed(dropout_seed(hp.seed, rank))
    if device.type == "cuda":
        torch.cuda.manual_seed(dropout_seed(hp.seed, rank))
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        history = list(checkpoint["history"])
        best = dict(checkpoint["best"])
        stopped = bool(checkpoint["stopped"])
        epoch, step0 = int(checkpoint["epoch"]), int(checkpoint["step"])
        same_world = int(checkpoint["world_size"]) == world
        if same_world:
            _restore_rng(checkpoint["rng"][rank], device)
            if step0 > 0:
                loss_carry = checkpoint["epoch_loss"][rank].to(device)
        else:
            # Another process count shards the data differently: continue from the weights and optimizer
            # at the start of the interrupted epoch (its partial loss belongs to the old shards).
            torch.manual_seed(dropout_seed(hp.seed + epoch, rank))
            step0 = 0
            LOG.warning(
                "the checkpoint was written by %d processes, this run has %d: resuming the weights and optimizer "
                "at the start of epoch %d",
                int(checkpoint["world_size"]),
                world,
                epoch,
            )
        LOG.info("resumed from checkpoint at epoch %d step %d; continuing there", epoch, step0)

    split = to_device(data.train, device)
    rows_per_process = group.min_int(len(split))
    if rows_per_process == 0:
        raise TrainingInputError(f"channel 'train' has fewer rows ({data.train_rows_total}) than processes ({world})")
    batch = min(resolve_batch(hp, device), rows_per_process)
    steps = rows_per_process // batch  # whole batches only: a graph replays one fixed shape
    global_batch = batch * world
    lr = scaled_learning_rate(hp, global_batch)
    interval = validation_interval(hp, steps * global_batch)
    check_every = max(1, min(64, CHECK_ROWS // batch))
    LOG.info(
        "process %d of %d trains on %d rows: %d steps of %d rows per epoch (global batch %d, learning rate %.6g), "
        "validation every %d epoch(s), %s step",
        rank,
        world,
        len(split),
        steps,
        batch,
        global_batch,
        lr,
        interval,
        "CUDA-graph" if graphed else "eager",
    )

    net: nn.Module = model
    if world > 1:
        # find_unused_parameters keeps DDP's gradient buckets as first laid out: otherwise the reducer
        # rebuilds them once after the first step (torch/csrc/distributed/c10d/reducer.hpp,
        # should_rebuild_buckets), so a resumed run's first step would sum gradients over more than two
        # processes in another order than the uninterrupted run, and resume would not be bit-exact.
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    # Fused AdamW: one kernel for the whole update; capturable keeps its step counter on the GPU for graphs.
    optimizer = torch.optim.AdamW(
        net.parameters(),
        lr=lr,
        weight_decay=hp.weight_decay,
        fused=True,
        capturable=graphed and device.type == "cuda",
    )
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group_params in optimizer.param_groups:
            group_params["lr"] = lr  # the global batch may differ from the interrupted run's
    validation = to_device(data.validation, device) if rank == 0 and data.validation is not None else None

    runner: StepRunner
    scale = (data.schema.target_mean, data.schema.target_std) if data.schema.regression else None
    if backend is not None:
        runner = GraphStepRunner(
            net,
            optimizer,
            split,
            batch_size=batch,
            amp_dtype=amp_dtype,
            autocast_cache=False,
            backend=backend,
            target_scale=scale,
        )
    else:
        runner = StepRunner(net, optimizer, split, batch_size=batch, amp_dtype=amp_dtype, target_scale=scale)

    timings = {"validation_s": 0.0, "checkpoint_s": 0.0, "shuffle_s": 0.0, "validations": 0, "checkpoints": 0}
    last_checkpoint = {"time": clock(), "epoch": epoch - 1}
    stop_info: dict[str, Any] | None = None
    completed = epoch - 1

    def save(at_epoch: int, at_step: int) -> None:
        started = time.perf_counter()
        rng = group.gather({k: v.cpu() for k, v in _rng_state(device).items()})
        losses = group.gather(runner.loss_sum.detach().cpu())
        if rank == 0:
            save_checkpoint(
                ml.checkpoints,
                {
                    "format_version": FORMAT_VERSION,
                    "run_key": key,
                    "epoch": at_epoch,
                    "step": at_step,
                    "epoch_loss": losses,
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "rng": rng,
                    "best": best,
                    "stopped": stopped,
                    "history": history[-HISTORY_LIMIT:],
                    "world_size": world,
                },
            )
        last_checkpoint.update(time=clock(), epoch=at_epoch - 1)
        timings["checkpoint_s"] += time.perf_counter() - started
        timings["checkpoints"] += 1

    def time_due() -> bool:
        return rank == 0 and hp.checkpoint_seconds > 0 and clock() - last_checkpoint["time"] >= hp.checkpoint_seconds

    model.train()
    while epoch <= hp.epochs and not stopped:
        started = time.perf_counter()
        order = epoch_order(len(split), hp.seed, epoch, rank, device)
        timings["shuffle_s"] += time.perf_counter() - started
        if loss_carry is not None:
            runner.loss_sum.copy_(loss_carry)
            loss_carry = None
        else:
            runner.loss_sum.zero_()
        halted = False
        for step in range(step0, steps):
            runner.run(order[step * batch : (step + 1) * batch])
            done = step + 1
            if done % check_every and done != steps:
                continue
            halt, due = group.max_flags(bool(stop), time_due() and done != steps)
            if halt:
                save(epoch, done)
                stop_info = {"signal": stop.signal, "epoch": epoch, "step": done, "steps_per_epoch": steps}
                halted = True
                break
            if due:
                save(epoch, done)
        step0 = 0
        if halted:
            break

        report: dict[str, float] | None = None
        if epoch % interval == 0 or epoch == hp.epochs:
            started = time.perf_counter()
            total = group.sum_tensor(runner.loss_sum)
            if rank == 0 and validation is not None:
                report = {
                    "epoch": float(epoch),
                    "train_loss": float(total.item()) / (steps * global_batch),
                    **validation_scores(model, validation),
                }
                if report["val_loss"] < best["val_loss"]:
                    best = {"val_loss": report["val_loss"], "epoch": epoch, "model": _cpu_state(model), "since": 0}
                stopped = hp.patience > 0 and epoch - int(best["epoch"]) >= hp.patience
                print(format_epoch_line(epoch, report), flush=True)
            report, stopped = group.broadcast((report, stopped))
            assert report is not None
            history.append(report)
            timings["validation_s"] += time.perf_counter() - started
            timings["validations"] += 1

        epochs_due = hp.checkpoint_epochs > 0 and epoch - last_checkpoint["epoch"] >= hp.checkpoint_epochs
        due = epochs_due or epoch == hp.epochs or stopped or group.max_flags(time_due())[0]
        if due:
            save(epoch + 1, 0)
        completed = epoch
        if stopped:
            LOG.info(
                "early stopping after epoch %d: no better validation loss for %d epochs (best epoch %d)",
                epoch,
                hp.patience,
                best["epoch"],
            )
        epoch += 1

    if stop_info is not None and rank == 0 and validation is not None:
        # The best model so far includes the weights reached at the stop, when they validate better.
        stop_loss = validation_scores(model, validation)["val_loss"]
        stop_info["val_loss"] = stop_loss
        if stop_loss < best["val_loss"] and (stop_info["epoch"] > 1 or stop_info["step"] > 0):
            best = {"val_loss": stop_loss, "epoch": stop_info["epoch"], "model": _cpu_state(model), "since": 0}
        LOG.warning(
            "stopped by %s at epoch %d step %d of %d: checkpoint written; best validation loss %.4f (epoch %d)",
            signal.Signals(stop_info["signal"] or signal.SIGTERM).name,
            stop_info["epoch"],
            stop_info["step"],
            steps,
            best["val_loss"],
            best["epoch"],
        )

    # Every replica must hold the same weights (data parallelism averages the gradients): each process logs a
    # digest of its final parameters, so a divergence shows in the logs of a real job as in the tests.
    LOG.info("process %d: final parameters sha256 %s", rank, parameters_digest(model))
    result_model: TabularClassifier | None = None
    if rank == 0 and best["model"] is not None:
        model.load_state_dict(best["model"])
        result_model = model
    return TrainResult(
        model=result_model,
        best_epoch=int(best["epoch"]),
        epochs_run=completed,
        stopped_early=stopped,
        history=history[-HISTORY_LIMIT:],
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        world_size=world,
        stop=stop_info,
        timings=timings,
    )
