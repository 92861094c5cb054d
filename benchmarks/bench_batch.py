"""Batch scoring benchmark: `python -m serving batch` against raw onnxruntime on the same batches.

Writes build/bench/batch.json and prints a Markdown table. Same model as bench_serving.py (a 30 -> 256 -> 256
-> 2 MLP, fp32), same CSV file, same batch size (1000 rows). Each side runs in its own process pinned to core 0
(`taskset -c 0`), in interleaved rounds; the median round is reported:

- ours: the batch tool end to end (read, decode with the serving codec, score, encode, write), timed by the
  tool itself from the first read to the rename of the output (model load excluded);
- anchor: `InferenceSession.run` over the file's rows already parsed into float32 arrays, with the same session
  options as serving/model.py (one thread, sequential), batch by batch; nothing read, parsed or written.

The ratio (anchor seconds / ours seconds, i.e. our rows/s per core as a share of raw onnxruntime's) is what to
compare; the issue's target is >= 0.70.

    .venv/bin/python benchmarks/bench_batch.py [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.serving_model_fixture import write_model_dir  # noqa: E402

BUILD = REPO / "build"
OUT = BUILD / "bench"
CORE = "0"
N_FEATURES = 30
HIDDEN = (256, 256)
BATCH = 1000

_ANCHOR = """
import sys, time
import numpy as np
sys.path.insert(0, {repo!r})
from serving.model import LoadedModel
model = LoadedModel(__import__("pathlib").Path({model!r}), "fp32")
rows = np.loadtxt({data!r}, delimiter=",", dtype=np.float32, ndmin=2)
batches = [rows[i : i + {batch}] for i in range(0, len(rows), {batch})]
session = model.session
started = time.perf_counter()
for numeric in batches:
    session.run(["probabilities"], {{"numeric": numeric}})
print("SECONDS", time.perf_counter() - started, "ROWS", len(rows))
# Where a batch's time goes in the tool: the same batches through the codec's decode and encode.
from serving import codec
lines = open({data!r}, "rb").read().splitlines()
bodies = [bytes([10]).join(lines[i : i + {batch}]) for i in range(0, len(lines), {batch})]
encoder = codec.ResponseEncoder(model.manifest)
started = time.perf_counter()
decoded = [codec.decode_csv(body, model.manifest) for body in bodies]
print("DECODE", time.perf_counter() - started)
probabilities = [model.predict(b) for b in decoded]
started = time.perf_counter()
for p in probabilities:
    encoder.encode_csv(p)
print("ENCODE", time.perf_counter() - started)
"""


def _pinned(command: list[str]) -> list[str]:
    return ["taskset", "-c", CORE, *command] if shutil.which("taskset") else command


def run_ours(model_dir: Path, data: Path, work: Path) -> float:
    output = work / "scored.csv"
    result = subprocess.run(
        _pinned(
            [
                *(sys.executable, "-m", "serving", "batch", "--model-dir", str(model_dir), "--input", str(data)),
                *("--output", str(output), "--batch-size", str(BATCH), "--no-progress"),
            ]
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"; ([0-9.]+) s$", result.stderr.strip())
    if found is None:
        raise RuntimeError(f"no timing in the batch tool's summary: {result.stderr[-500:]}")
    return float(found.group(1))


def run_anchor(model_dir: Path, data: Path) -> dict[str, float]:
    """Seconds of raw session.run over the pre-parsed batches, and of the codec's decode and encode of them."""
    script = _ANCHOR.format(repo=str(REPO), model=str(model_dir), data=str(data), batch=BATCH)
    result = subprocess.run(_pinned([sys.executable, "-c", script]), capture_output=True, text=True, check=True)
    return {key: float(result.stdout.split(key, 1)[1].split()[0]) for key in ("SECONDS", "DECODE", "ENCODE")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-batch-", dir=BUILD))
    try:
        model_dir = write_model_dir(
            work / "model", numeric=[f"f{i}" for i in range(N_FEATURES)], categorical={}, hidden=HIDDEN
        )
        rng = np.random.default_rng(7)
        data = work / "rows.csv"
        np.savetxt(data, rng.normal(0, 10, (args.rows, N_FEATURES)), delimiter=",", fmt="%.6g")
        ours: list[float] = []
        anchor: list[float] = []
        decode: list[float] = []
        encode: list[float] = []
        for _ in range(args.rounds):
            ours.append(run_ours(model_dir, data, work))
            parts = run_anchor(model_dir, data)
            anchor.append(parts["SECONDS"])
            decode.append(parts["DECODE"])
            encode.append(parts["ENCODE"])

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        ours_s, anchor_s = median(ours), median(anchor)
        per_row_us = {
            "tool_end_to_end": round(ours_s / args.rows * 1e6, 2),
            "codec_decode_csv": round(median(decode) / args.rows * 1e6, 2),
            "onnxruntime_run": round(anchor_s / args.rows * 1e6, 2),
            "codec_encode_csv": round(median(encode) / args.rows * 1e6, 2),
        }
        report: dict[str, Any] = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            "model": {"features": N_FEATURES, "hidden": list(HIDDEN), "classes": 2, "file": "model.onnx (fp32)"},
            "data": {"rows": args.rows, "bytes": data.stat().st_size, "batch_size": BATCH},
            "method": f"each side in its own process pinned to core {CORE} (taskset); {args.rounds} interleaved "
            "rounds, medians; ours = `python -m serving batch` from first read to renamed output; anchor = "
            "InferenceSession.run over pre-parsed float32 batches",
            "ours": {"seconds": ours_s, "rows_per_s_per_core": round(args.rows / ours_s), "all_rounds": ours},
            "raw_onnxruntime": {
                "seconds": anchor_s,
                "rows_per_s_per_core": round(args.rows / anchor_s),
                "all_rounds": anchor,
            },
            "ratio_ours_to_raw": round(anchor_s / ours_s, 3),
            "per_row_microseconds": per_row_us,
            "target_ratio": 0.70,
        }
        (OUT / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"| side | rows/s per core ({args.rows} rows x {N_FEATURES} features, batches of {BATCH}) |")
        print("|---|---|")
        print(f"| ours (`python -m serving batch`, CSV in, CSV out) | {report['ours']['rows_per_s_per_core']:,} |")
        print(f"| raw onnxruntime on pre-parsed arrays | {report['raw_onnxruntime']['rows_per_s_per_core']:,} |")
        print(f"ratio ours / raw: {report['ratio_ours_to_raw']} (target 0.70); build/bench/batch.json")
        print("per row, microseconds: " + ", ".join(f"{k} {v}" for k, v in per_row_us.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
