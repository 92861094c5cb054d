"""Benchmark: how long the offline plan of both committed stacks takes (target: under 5 s together).

Both stacks are planned the way `python -m tools.plan --stack dev --stack prod` does it: one fresh interpreter
(imports included), with and without the validation against AWS's API models. Writes build/bench/plan.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "bench" / "plan.json"
RUNS = 3


def plan_seconds(validate: bool) -> float:
    args = [
        sys.executable,
        "-m",
        "tools.plan",
        "--stack",
        "dev",
        "--stack",
        "prod",
        "--quiet",
        "--out",
        str(REPO / "build" / "bench"),
    ]
    if not validate:
        args.append("--no-validate")
    started = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    results: dict[str, dict[str, object]] = {}
    best: dict[str, float] = {}
    for validate in (False, True):
        key = "with_validation" if validate else "plan_only"
        totals = []
        for _ in range(RUNS):
            totals.append(plan_seconds(validate))
        best[key] = round(min(totals), 2)
        results[key] = {"best_seconds_both_stacks": best[key], "runs": [round(t, 2) for t in totals]}
    report = {
        "benchmark": "offline plan of dev and prod in one fresh interpreter",
        "target_seconds_both_stacks": 5.0,
        "results": results,
        "met": best["plan_only"] < 5.0,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0], "python": platform.python_version()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
