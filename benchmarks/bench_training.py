"""Training throughput and quality, the container's loop against the textbook DataLoader loop, written to
build/bench/training.json.

Same data for both (1M rows of 30 numeric features with a non-linear, noisy label, so the validation AUC
has a ceiling below 1), same model (30 -> 256 -> 256 -> 2, dropout 0.1), same validation split:

- textbook: `DataLoader(TensorDataset)` with shuffle, batch 256, AdamW, fp32, each batch copied to the device;
- ours: the container's step (training/trainer.py): the split resident on the device, random-permutation
  batches of the device's default size, fused AdamW with the learning rate scaled to the batch, bf16
  autocast and a CUDA-graph replay of the whole step on GPUs; eager on the CPU.

Per run: samples/s over the timed epochs and the validation AUC after training. Also the per-epoch host
work of our loop (shuffle, a validation on the device, an fsync'd checkpoint). On a machine with CUDA the
same runs go on the GPU, then the real container (`python -m training train`) trains once on one GPU and,
with several GPUs, once with one process per GPU (torchrun, NCCL). Without CUDA the GPU figures are
recorded as not measured. One command, under 5 minutes on an H100/H200:

    python benchmarks/bench_training.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.checkpoint import FORMAT_VERSION, save_checkpoint  # noqa: E402
from training.evaluation import device_metrics  # noqa: E402
from training.hyperparameters import DEFAULT_BATCH, Hyperparameters  # noqa: E402
from training.model import TabularClassifier  # noqa: E402
from training.trainer import (  # noqa: E402
    CudaGraphs,
    DeviceSplit,
    GraphStepRunner,
    StepRunner,
    autocast_dtype,
    epoch_order,
    predict_tensor,
    scaled_learning_rate,
)

FEATURES = 30
HIDDEN = (256, 256)
TARGET_GPU_SAMPLES_PER_S = 5_000_000


def make_data(rows: int, validation_rows: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Features N(0,1); label ~ Bernoulli(sigmoid(linear + interactions + a sine)), so AUC tops out < 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows + validation_rows, FEATURES)).astype(np.float32)
    w = rng.normal(size=FEATURES) / np.sqrt(FEATURES)
    logit = x @ w + 0.8 * x[:, 0] * x[:, 1] - 0.6 * np.sin(2 * x[:, 2]) + 0.5 * np.abs(x[:, 3]) - 0.4
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-2 * logit))).astype(np.int64)
    return x[:rows], y[:rows], x[rows:], y[rows:]


def _model(device: torch.device) -> TabularClassifier:
    torch.manual_seed(0)
    return TabularClassifier(
        means=[0.0] * FEATURES,
        stds=[1.0] * FEATURES,
        cardinalities=[],
        embedding_dim=8,
        hidden_units=HIDDEN,
        dropout=0.1,
        n_classes=2,
    ).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _auc(model: torch.nn.Module, validation: DeviceSplit) -> float:
    return round(device_metrics(predict_tensor(model, validation), validation.labels)["auc"], 5)


def _split(x: np.ndarray, y: np.ndarray, device: torch.device) -> DeviceSplit:
    return DeviceSplit(torch.from_numpy(x).to(device), None, torch.from_numpy(y).to(device))


def bench_textbook(data: tuple[np.ndarray, ...], device: torch.device, epochs: int) -> dict[str, Any]:
    """DataLoader over CPU tensors, batch 256, each batch copied to the device; fp32, AdamW lr 1e-3."""
    x, y, vx, vy = data
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=256, shuffle=True)
    model = _model(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    _sync(device)
    start = time.perf_counter()
    samples = 0
    for _ in range(epochs):
        for features, labels in loader:
            features, labels = features.to(device), labels.to(device)
            loss = F.cross_entropy(model(features), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += labels.shape[0]
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "loop": "textbook DataLoader",
        "batch_size": 256,
        "epochs": epochs,
        "autocast": "none",
        "cuda_graph": False,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds),
        "val_auc": _auc(model, _split(vx, vy, device)),
    }


def bench_ours(
    data: tuple[np.ndarray, ...], device: torch.device, epochs: int, *, batch: int, graph: bool
) -> dict[str, Any]:
    """The container's step on the device-resident split (one warm-up epoch is not timed)."""
    x, y, vx, vy = data
    split, validation = _split(x, y, device), _split(vx, vy, device)
    model = _model(device)
    lr = scaled_learning_rate(Hyperparameters(), batch)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=1e-4, fused=True, capturable=graph and device.type == "cuda"
    )
    amp = autocast_dtype(device)
    runner: StepRunner
    if graph:
        runner = GraphStepRunner(
            model, optimizer, split, batch_size=batch, amp_dtype=amp, autocast_cache=False, backend=CudaGraphs()
        )
    else:
        runner = StepRunner(model, optimizer, split, batch_size=batch, amp_dtype=amp)
    steps = len(split) // batch
    model.train()

    def epoch(number: int) -> None:
        order = epoch_order(len(split), 0, number, 0, device)
        for step in range(steps):
            runner.run(order[step * batch : (step + 1) * batch])

    epoch(0)
    _sync(device)
    start = time.perf_counter()
    for number in range(1, epochs + 1):
        epoch(number)
    _sync(device)
    seconds = time.perf_counter() - start
    samples = steps * batch * epochs
    return {
        "loop": "ours (device-resident, fused AdamW" + (", CUDA graph)" if graph else ", eager)"),
        "batch_size": batch,
        "learning_rate": round(lr, 6),
        "epochs": epochs + 1,
        "timed_epochs": epochs,
        "autocast": str(amp) if amp else "none",
        "cuda_graph": graph,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds),
        "val_auc": _auc(model, validation),
        "host_work_per_epoch_s": host_work(model, optimizer, split, validation, device),
    }


def host_work(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    split: DeviceSplit,
    validation: DeviceSplit,
    device: torch.device,
) -> dict[str, float]:
    """What an epoch of our loop costs besides its steps: the shuffle, one validation, one checkpoint."""
    _sync(device)
    start = time.perf_counter()
    order = epoch_order(len(split), 0, 99, 0, device)
    _sync(device)
    shuffle = time.perf_counter() - start
    start = time.perf_counter()
    device_metrics(predict_tensor(model, validation), validation.labels)
    validate = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(
            Path(folder),
            {
                "format_version": FORMAT_VERSION,
                "run_key": "bench",
                "epoch": 2,
                "step": 0,
                "epoch_loss": [torch.zeros(())],
                "model": state,
                "optimizer": optimizer.state_dict(),
                "rng": [{"cpu": torch.get_rng_state()}],
                "best": {"val_loss": 0.5, "epoch": 1, "model": state, "since": 0},
                "stopped": False,
                "history": [],
                "world_size": 1,
            },
        )
    checkpoint = time.perf_counter() - start
    del order
    return {"shuffle": round(shuffle, 5), "validation": round(validate, 5), "checkpoint": round(checkpoint, 5)}


def run_container(rows: int, epochs: int, env: dict[str, str], extra: dict[str, str]) -> dict[str, Any]:
    """`python -m training demo`-style run of the real container code on synthetic data."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run(
            [sys.executable, "-m", "training", "synthetic", "--ml-root", folder, "--rows", str(rows)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        hp_path = root / "input" / "config" / "hyperparameters.json"
        hp = {**json.loads(hp_path.read_text()), "epochs": str(epochs), **extra}
        hp_path.write_text(json.dumps(hp))
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "training", "train", "--ml-root", folder],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        seconds = time.perf_counter() - start
        result: dict[str, Any] = {"exit_code": run.returncode, "seconds": round(seconds, 1)}
        digests = set(re.findall(r"final parameters sha256 ([0-9a-f]{64})", run.stderr))
        result["replicas"] = len(re.findall(r"final parameters sha256", run.stderr))
        result["replicas_identical"] = len(digests) == 1
        step_line = re.search(r"(process 0 of \d+ trains on .*)", run.stderr)
        result["plan"] = step_line.group(1) if step_line else None
        if run.returncode == 0:
            evaluation = json.loads((root / "model" / "evaluation.json").read_text())
            result.update(val_auc=evaluation["fp32"]["auc"], device=evaluation["training"]["device"])
        else:
            failure = root / "output" / "failure"
            result["failure"] = failure.read_text() if failure.exists() else run.stderr[-2000:]
        return result


def bench_device(data: tuple[np.ndarray, ...], device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    default_batch = DEFAULT_BATCH[device.type]
    if device.type == "cuda":
        runs = [
            bench_textbook(data, device, args.textbook_epochs),
            bench_ours(data, device, args.gpu_epochs, batch=default_batch, graph=False),
            bench_ours(data, device, args.gpu_epochs, batch=default_batch, graph=True),
            bench_ours(data, device, args.gpu_epochs, batch=65536, graph=True),
        ]
    else:
        runs = [
            bench_textbook(data, device, args.textbook_epochs),
            bench_ours(data, device, args.cpu_epochs, batch=default_batch, graph=False),
        ]
    textbook, ours = runs[0], max(runs[1:], key=lambda r: r["samples_per_s"] if r["batch_size"] == default_batch else 0)
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "runs": runs,
        "ours_over_textbook_samples_per_s": round(ours["samples_per_s"] / textbook["samples_per_s"], 2),
        "ours_minus_textbook_val_auc": round(ours["val_auc"] - textbook["val_auc"], 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--validation-rows", type=int, default=200_000)
    parser.add_argument("--textbook-epochs", type=int, default=2)
    parser.add_argument("--cpu-epochs", type=int, default=6)
    parser.add_argument("--gpu-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    parser.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "training.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = make_data(args.rows, args.validation_rows)
    report: dict[str, Any] = {
        "benchmark": "training loop: textbook DataLoader vs the container's loop, same data and model",
        "rows": args.rows,
        "validation_rows": args.validation_rows,
        "features": FEATURES,
        "hidden_units": list(HIDDEN),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    if not args.skip_cpu:
        report["cpu"] = bench_device(data, torch.device("cpu"), args)
    if torch.cuda.is_available():
        gpu = bench_device(data, torch.device("cuda", 0), args)
        best = max(r["samples_per_s"] for r in gpu["runs"][1:] if r["batch_size"] == DEFAULT_BATCH["cuda"])
        gpu["target_samples_per_s"] = TARGET_GPU_SAMPLES_PER_S
        gpu["meets_target"] = best >= TARGET_GPU_SAMPLES_PER_S and gpu["ours_minus_textbook_val_auc"] >= 0
        gpu["bf16"] = torch.cuda.is_bf16_supported(including_emulation=False)
        gpu["container_one_gpu"] = run_container(args.rows, 10, {"CUDA_VISIBLE_DEVICES": "0"}, {"device": "cuda"})
        count = torch.cuda.device_count()
        if count > 1:
            gpu["container_torchrun_nccl"] = {"gpus": count, **run_container(200_000, 3, {}, {"device": "cuda"})}
        else:
            gpu["container_torchrun_nccl"] = "not measured: one GPU (the NCCL path needs two or more)"
        report["gpu"] = gpu
        report["note"] = "GPU figures measured on this machine"
    else:
        report["gpu"] = "not measured: no CUDA device on this machine"
        report["note"] = "CPU figures only; GPU figures not measured (run this script on a GPU machine)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
