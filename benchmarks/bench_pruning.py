"""Structured pruning: exported-graph latency and validation metrics of pruned models against the unpruned one.

Writes build/bench/pruning.json and prints a Markdown table. One run: the container trains the breast cancer demo
(`python -m training train`, hidden units 256,256, seed 7) three times, with `prune_fraction` 0 (the anchor),
0.5 and 0.75 (fine-tuned `prune_finetune_epochs` 2). Training is deterministic on the CPU, so every pruned run
starts from the anchor's weights. Then the three fp32 graphs are timed here side by side, in interleaved rounds
(onnxruntime, one thread, sequential; batch of 256 rows and of 1 row; training/pruning.py `graph_latency_ms`),
and the median round is reported. What to compare: latency ratio anchor / pruned (the speedup) and the metric
deltas pruned minus anchor.

    .venv/bin/python benchmarks/bench_pruning.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import onnxruntime  # noqa: E402

from training.__main__ import main as training_main  # noqa: E402
from training.demo import breast_cancer_frame, split_frame, write_layout  # noqa: E402
from training.layout import MLRoot  # noqa: E402
from training.pruning import graph_latency_ms  # noqa: E402

OUT = REPO / "build" / "bench"
FRACTIONS = (0.0, 0.5, 0.75)
HP = {"epochs": "40", "batch_size": "64", "hidden_units": "256,256", "num_threads": "1", "seed": "7"}


def _train(root: Path, fraction: float) -> MLRoot:
    ml = MLRoot(root)
    train, validation = split_frame(breast_cancer_frame(), seed=7)
    write_layout(ml, train, validation, {**HP, "prune_fraction": str(fraction), "prune_finetune_epochs": "2"})
    if training_main(["train", "--ml-root", str(ml.root)]) != 0:
        raise SystemExit(f"training with prune_fraction {fraction} failed")
    return ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from training.data import load_training_data

    with tempfile.TemporaryDirectory() as scratch:
        models = {f: _train(Path(scratch) / f"prune-{f}", f) for f in FRACTIONS}
        anchor = models[0.0]
        validation = load_training_data(anchor, "label", 1000).validation
        assert validation is not None
        latency: dict[int, dict[float, list[float]]] = {256: {f: [] for f in FRACTIONS}, 1: {f: [] for f in FRACTIONS}}
        for _ in range(args.rounds):
            for batch in latency:
                for f in FRACTIONS:
                    timed = graph_latency_ms(models[f].model / "model.onnx", validation, batch)
                    latency[batch][f].append(timed["median_ms"])
        evaluations = {
            f: json.loads((m.model / "evaluation.json").read_text(encoding="utf-8")) for f, m in models.items()
        }
    base = evaluations[0.0]["fp32"]
    rows: list[dict[str, Any]] = []
    for f in FRACTIONS:
        ev = evaluations[f]
        ms = {b: statistics.median(latency[b][f]) for b in latency}
        rows.append(
            {
                "prune_fraction": f,
                "hidden_widths": ev.get("pruning", {}).get("widths_after", [256, 256]),
                "fp32_model_bytes": ev["edge"]["fp32_model_bytes"],
                "auc": ev["fp32"]["auc"],
                "accuracy": ev["fp32"]["accuracy"],
                "auc_delta_vs_unpruned": ev["fp32"]["auc"] - base["auc"],
                "accuracy_delta_vs_unpruned": ev["fp32"]["accuracy"] - base["accuracy"],
                "latency_ms_batch256": ms[256],
                "latency_ms_batch1": ms[1],
                "speedup_batch256": statistics.median(latency[256][0.0]) / ms[256],
                "speedup_batch1": statistics.median(latency[1][0.0]) / ms[1],
                "in_run_speedup_recorded_by_training": ev.get("pruning", {}).get("latency", {}).get("speedup"),
            }
        )
    report = {
        "benchmark": "pruning",
        "data": "breast cancer demo (sklearn), 455 train / 114 validation rows",
        "anchor": "the same model unpruned (prune_fraction 0), same run",
        "timing": f"onnxruntime {onnxruntime.__version__}, 1 thread, fp32 graph, median of {args.rounds} "
        "interleaved rounds, each the median of 7 repeats of 30 runs",
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "results": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pruning.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("| prune fraction | widths | AUC delta | accuracy delta | speedup batch 256 | speedup batch 1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['prune_fraction']} | {r['hidden_widths']} | {r['auc_delta_vs_unpruned']:+.4f} | "
            f"{r['accuracy_delta_vs_unpruned']:+.4f} | {r['speedup_batch256']:.2f}x | {r['speedup_batch1']:.2f}x |"
        )
    print("build/bench/pruning.json")


if __name__ == "__main__":
    main()
