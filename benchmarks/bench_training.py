"""Training-loop throughput on synthetic data, written to build/bench/training.json.

Measures the loop the training container uses (data resident on the device, random-permutation batches,
bf16 autocast on GPUs) against the textbook PyTorch DataLoader loop, on the DESIGN.md model
(30 numeric features -> 256 -> 256 -> 2). Also times the demo end to end (demo-data + train).
Runs on CPU or CUDA: `python benchmarks/bench_training.py [--rows N] [--device auto|cpu|cuda]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from training.__main__ import main as training_main  # noqa: E402
from training.demo import write_demo_data  # noqa: E402
from training.layout import MLRoot  # noqa: E402
from training.model import TabularClassifier  # noqa: E402
from training.trainer import (  # noqa: E402
    DeviceSplit,
    autocast_dtype,
    epoch_generator,
    resolve_device,
    train_one_epoch,
)

FEATURES = 30
HIDDEN = (256, 256)


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


def _data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x @ rng.normal(size=FEATURES) + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    return x, y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_resident(x: np.ndarray, y: np.ndarray, device: torch.device, batch: int, epochs: int) -> dict[str, Any]:
    """The container's loop: whole split on the device, random-permutation batches."""
    split = DeviceSplit(torch.from_numpy(x).to(device), None, torch.from_numpy(y).to(device))
    model = _model(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp = autocast_dtype(device)
    steps = -(-len(split) // batch)

    def run(epoch: int, n_steps: int) -> None:
        total = train_one_epoch(
            model,
            optimizer,
            split,
            batch_size=batch,
            steps=n_steps,
            generator=epoch_generator(0, epoch, 0),
            amp_dtype=amp,
        )
        total.item()

    run(0, min(steps, 5))  # warm-up: allocator, kernels, autocast caches
    _sync(device)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        run(epoch, steps)
    _sync(device)
    seconds = time.perf_counter() - start
    samples = min(steps * batch, len(split)) * epochs
    return {
        "loop": "resident-permutation",
        "batch_size": batch,
        "autocast": str(amp) if amp else "none",
        "samples": samples,
        "seconds": round(seconds, 4),
        "samples_per_s": round(samples / seconds),
    }


def bench_dataloader(x: np.ndarray, y: np.ndarray, device: torch.device, batch: int) -> dict[str, Any]:
    """The textbook loop, for comparison: DataLoader over CPU tensors, each batch copied to the device."""
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch, shuffle=True)
    model = _model(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    _sync(device)
    start = time.perf_counter()
    samples = 0
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
        "loop": "dataloader",
        "batch_size": batch,
        "autocast": "none",
        "samples": samples,
        "seconds": round(seconds, 4),
        "samples_per_s": round(samples / seconds),
    }


def bench_demo_end_to_end() -> dict[str, Any]:
    """demo-data + train with default hyperparameters, as `python -m training` runs them (in process)."""
    with tempfile.TemporaryDirectory() as tmp:
        ml = MLRoot(Path(tmp))
        start = time.perf_counter()
        write_demo_data(ml)
        code = training_main(["train", "--ml-root", tmp])
        seconds = time.perf_counter() - start
        if code != 0:
            raise RuntimeError(f"demo training failed: {ml.failure.read_text(encoding='utf-8')}")
        manifest = json.loads((ml.model / "manifest.json").read_text(encoding="utf-8"))
    return {"seconds": round(seconds, 2), "val_auc": manifest["metrics"]["val_auc"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of the resident loop")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dataloader-rows", type=int, default=200_000, help="rows for the DataLoader loop")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "training.json")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    x, y = _data(args.rows)
    batches = [8192, 65536] if device.type == "cuda" else [8192]
    results = [bench_resident(x, y, device, batch, args.epochs) for batch in batches]
    results.append(bench_dataloader(x[: args.dataloader_rows], y[: args.dataloader_rows], device, 256))
    report: dict[str, Any] = {
        "benchmark": "training loop, synthetic data",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "device_type": device.type,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "rows": args.rows,
        "features": FEATURES,
        "hidden_units": list(HIDDEN),
        "results": results,
    }
    if not args.skip_demo:
        report["demo_end_to_end"] = bench_demo_end_to_end()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
