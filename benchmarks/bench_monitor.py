"""Benchmark of the drift monitor; writes build/bench/monitor.json.

1. Drift check of 100k baseline rows x 10k current rows x 30 numerical features (6 shifted by 0.5 sd):
   ours (statistics of both sides + comparison) vs Evidently's DataDriftPreset, NannyML's univariate drift
   (Kolmogorov-Smirnov) and alibi-detect's KSDrift, each with its defaults, and the set of drifted
   features each reports. The other libraries run from their own virtual environments under build/
   (they pin pandas < 3), created with, for each NAME/PACKAGE pair (evidently/evidently==0.7.23,
   nannyml/"nannyml==0.13.1 statsmodels" (nannyml imports it without requiring it),
   alibi/alibi-detect==0.13.0):
       python -m venv build/bench-venv-NAME && build/bench-venv-NAME/bin/pip install PACKAGE "pandas<3"
   A missing environment is reported as skipped.
3. Scale-out (`--shards 4 --shard-records 10000000`): the capture split over 4 shard folders (what each
   instance of a ShardedByS3Key input downloads), each analyzed into a mergeable partial in its own process
   on one core (time, CPU, peak memory per shard), then the merge of the partials into the statistics,
   violations and drifted set (time, peak memory), and the drifted set compared with the planted one.
2. End to end on 1M capture records (one CSV row of 30 features each, one hour folder): parse, statistics,
   drift, on one core (CPU affinity 0), in a fresh process: wall time, CPU time and peak memory (max RSS).

Run: .venv/bin/python benchmarks/bench_monitor.py [--records 1000000] [--skip-compare]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitoring.analysis import CaptureCounts, evaluate  # noqa: E402
from monitoring.baseline import write_baseline  # noqa: E402
from monitoring.constraints import parse_constraints, suggest_constraints  # noqa: E402
from monitoring.statistics import parse_statistics, profile_frame  # noqa: E402

OUT = REPO / "build" / "bench"
N_FEATURES = 30
DRIFTED = (1, 5, 9, 14, 22, 27)
SHIFT_SD = 0.5
T0 = dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)


def _names() -> list[str]:
    return [f"f{i}" for i in range(N_FEATURES)]


def comparison_data(work: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    rng = np.random.default_rng(42)
    baseline = rng.normal(size=(100_000, N_FEATURES))
    current = rng.normal(size=(10_000, N_FEATURES))
    current[:, list(DRIFTED)] += SHIFT_SD
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "baseline.npy", baseline)
    np.save(work / "current.npy", current)
    return work / "baseline.npy", work / "current.npy"


def run_ours(baseline_path: pathlib.Path, current_path: pathlib.Path, repeats: int = 3) -> dict[str, Any]:
    names = _names()
    baseline = pd.DataFrame(np.load(baseline_path), columns=names)
    current = pd.DataFrame(np.load(current_path), columns=names)
    best = float("inf")
    drifted: list[str] = []
    for _ in range(repeats):
        start = time.perf_counter()
        base_profile = profile_frame(baseline)
        base_stats = parse_statistics(base_profile.to_json())
        constraints = parse_constraints(suggest_constraints(base_profile))
        window = profile_frame(current)
        counts = CaptureCounts(rows_analyzed=len(current))
        result = evaluate(base_stats, constraints, window, counts)
        best = min(best, time.perf_counter() - start)
        drifted = sorted(
            (v.feature_name for v in result.violations if v.constraint_check_type == "baseline_drift_check"),
            key=lambda n: int(n[1:]),
        )
    return {"seconds": best, "drifted": drifted, "method": "L-infinity on KLL sketches, Robust, threshold 0.1"}


EVIDENTLY = """
import json, sys, time
import numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
names = [f"f{i}" for i in range(30)]
ref = pd.DataFrame(np.load(sys.argv[1]), columns=names)
cur = pd.DataFrame(np.load(sys.argv[2]), columns=names)
best, drifted, method = float("inf"), [], ""
for _ in range(2):
    t = time.perf_counter()
    snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    d = snap.dict()
    best = min(best, time.perf_counter() - t)
    drifted = []
    for m in d["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            method = cfg["method"]
            is_p = "p_value" in method
            v = m["value"]
            if (v < cfg["threshold"]) if is_p else (v >= cfg["threshold"]):
                drifted.append(cfg["column"])
print(json.dumps({"seconds": best, "drifted": drifted, "method": method + " (Evidently's default)"}))
"""

NANNYML = """
import json, sys, time
import numpy as np, pandas as pd
import nannyml as nml
names = [f"f{i}" for i in range(30)]
ref = pd.DataFrame(np.load(sys.argv[1]), columns=names)
cur = pd.DataFrame(np.load(sys.argv[2]), columns=names)
best, drifted = float("inf"), []
for _ in range(2):
    t = time.perf_counter()
    # Alert thresholds come from the statistic's spread over reference chunks, so both sides need chunks of
    # one size (NannyML's default, 10 chunks per side, compares 10k-row with 1k-row chunks and alerts on all).
    calc = nml.UnivariateDriftCalculator(
        column_names=names, continuous_methods=["kolmogorov_smirnov"], chunk_size=1000
    )
    calc.fit(ref)
    res = calc.calculate(cur).filter(period="analysis").to_df()
    best = min(best, time.perf_counter() - t)
    drifted = [n for n in names if bool(res[(n, "kolmogorov_smirnov", "alert")].any())]
method = "Kolmogorov-Smirnov, 1000-row chunks, NannyML's default thresholds, alert in any chunk"
print(json.dumps({"seconds": best, "drifted": drifted, "method": method}))
"""

ALIBI = """
import json, sys, time
import numpy as np
from alibi_detect.cd import KSDrift
ref = np.load(sys.argv[1]).astype("float32")
cur = np.load(sys.argv[2]).astype("float32")
best, drifted = float("inf"), []
for _ in range(2):
    t = time.perf_counter()
    cd = KSDrift(ref, p_val=0.05)
    pred = cd.predict(cur, drift_type="feature", return_p_val=True)
    best = min(best, time.perf_counter() - t)
    drifted = [f"f{i}" for i, flag in enumerate(pred["data"]["is_drift"]) if flag]
method = "KS test per feature, p < 0.05 (alibi-detect's default)"
print(json.dumps({"seconds": best, "drifted": drifted, "method": method}))
"""


def run_external(name: str, script: str, baseline_path: pathlib.Path, current_path: pathlib.Path) -> dict[str, Any]:
    python = REPO / "build" / f"bench-venv-{name}" / "bin" / "python"
    if not python.exists():
        return {"skipped": f"no environment at {python.relative_to(REPO)} (see this script's docstring)"}
    proc = subprocess.run(
        [str(python), "-c", textwrap.dedent(script), str(baseline_path), str(current_path)],
        env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},  # NannyML reports usage over the network otherwise
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        return {"failed": proc.stderr[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    version = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=False
    )
    pins = {p["name"].lower(): p["version"] for p in json.loads(version.stdout or "[]")}
    package = {"evidently": "evidently", "nannyml": "nannyml", "alibi": "alibi-detect"}[name]
    result["version"] = pins.get(package, "?")
    return result


def write_capture(
    work: pathlib.Path, records: int, capture: str = "capture", first: int = 0, seed: int = 7
) -> pathlib.Path:
    """One hour folder with ``records`` single-row CSV capture records; baseline from 100k rows."""
    rng = np.random.default_rng(seed)
    names = _names()
    if not (work / "baseline" / "constraints.json").is_file() or capture == "capture":
        base_rng = np.random.default_rng(7)
        write_baseline(pd.DataFrame(base_rng.normal(size=(100_000, N_FEATURES)), columns=names), work / "baseline")
    hour = work / capture / "ep" / "AllTraffic" / f"{T0:%Y/%m/%d/%H}"
    hour.mkdir(parents=True, exist_ok=True)
    path = hour / "capture.jsonl"
    marker = work / f"{capture}-records.txt"
    # The data is deterministic (seeded): reuse the file of an earlier run with the same record count.
    if path.is_file() and marker.is_file() and marker.read_text() == str(records):
        return path
    template = (
        '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"%s",'
        '"encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv","mode":"OUTPUT","data":"0.73",'
        '"encoding":"CSV"}},"eventMetadata":{"eventId":"%s","inferenceTime":"%s"},"eventVersion":"0"}\n'
    )
    chunk = 100_000
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, records, chunk):
            n = min(chunk, records - start)
            values = rng.normal(size=(n, N_FEATURES))
            values[:, list(DRIFTED)] += SHIFT_SD
            rows = pd.DataFrame(values).to_csv(header=False, index=False, float_format="%.6g").splitlines()
            lines = []
            for i, row in enumerate(rows):
                k = first + start + i
                # Spread over the hour whatever the count (10M records: one every 0.36 ms).
                when = T0 + dt.timedelta(microseconds=k * 3_590_000_000 // max(records * 4, 1))
                stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
                lines.append(template % (row, f"{k:032x}", stamp))
            handle.write("".join(lines))
    marker.write_text(str(records))
    return path


E2E = """
import datetime as dt, json, os, pathlib, sys, time
os.sched_setaffinity(0, {0})
sys.path.insert(0, sys.argv[2])
from monitoring.capture import LocalSource, TimeWindow
from monitoring.job import analyze
work = pathlib.Path(sys.argv[1])
t0 = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)
wall, cpu = time.perf_counter(), time.process_time()
res = analyze(LocalSource(work / "capture"), work / "baseline/statistics.json", work / "baseline/constraints.json",
              TimeWindow(t0, t0 + dt.timedelta(hours=1)))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
drifted = [v.feature_name for v in res.evaluation.violations if v.constraint_check_type == "baseline_drift_check"]
# VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's over fork and exec.
status = pathlib.Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "peak_rss_mib": peak, "rows_analyzed": res.counts.rows_analyzed,
                  "drifted": sorted(drifted, key=lambda n: int(n[1:]))}))
"""


SHARD = """
import datetime as dt, json, os, pathlib, sys, time
os.sched_setaffinity(0, {0})
sys.path.insert(0, sys.argv[2])
from monitoring.capture import LocalSource, TimeWindow
from monitoring.job import analyze
from monitoring.shards import partial_document, write_partial
work, index = pathlib.Path(sys.argv[1]), sys.argv[3]
t0 = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)
window = TimeWindow(t0, t0 + dt.timedelta(hours=1))
wall, cpu = time.perf_counter(), time.process_time()
res = analyze(LocalSource(work / f"shard-{index}"), work / "baseline/statistics.json",
              work / "baseline/constraints.json", window)
write_partial(work / "partials" / f"partial-algo-{index}.json",
              partial_document(res.profile, res.counts, res.files_read, f"algo-{index}", window))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
status = pathlib.Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
out = {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mib": peak, "rows_analyzed": res.counts.rows_analyzed}
print(json.dumps(out))
"""

MERGE = """
import json, os, pathlib, sys, time
os.sched_setaffinity(0, {0})
sys.path.insert(0, sys.argv[2])
from monitoring.job import merged_result
from monitoring.shards import read_partials
work = pathlib.Path(sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
res = merged_result(read_partials(work / "partials"), work / "baseline/statistics.json",
                    work / "baseline/constraints.json", "bench")
stats = res.profile.to_json()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
drifted = [v.feature_name for v in res.evaluation.violations if v.constraint_check_type == "baseline_drift_check"]
status = pathlib.Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "peak_rss_mib": peak, "rows": stats["dataset"]["item_count"],
                  "drifted": sorted(drifted, key=lambda n: int(n[1:]))}))
"""


def run_shards(work: pathlib.Path, records: int, shards: int) -> dict[str, Any]:
    """Each shard's partial in its own one-core process (one after the other: the machine has 2 cores),
    then the merge."""
    per = records // shards
    sizes = []
    for i in range(shards):
        path = write_capture(work, per, capture=f"shard-{i}", first=i * per, seed=100 + i)
        sizes.append(path.stat().st_size)
    runs = []
    for i in range(shards):
        proc = subprocess.run(
            [sys.executable, "-c", SHARD, str(work), str(REPO), str(i)],
            capture_output=True, text=True, check=True, timeout=3600,
        )  # fmt: skip
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    merge = subprocess.run(
        [sys.executable, "-c", MERGE, str(work), str(REPO)], capture_output=True, text=True, check=True, timeout=900
    )
    merged = json.loads(merge.stdout.strip().splitlines()[-1])
    return {
        "records": per * shards,
        "shards": shards,
        "capture_bytes": sum(sizes),
        "per_shard": runs,
        "slowest_shard_seconds": max(r["seconds"] for r in runs),
        "max_shard_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "merge": merged,
        "merge_share_of_slowest_shard": merged["seconds"] / max(r["seconds"] for r in runs),
        "same_drifted_set_as_planted": merged["drifted"] == [f"f{i}" for i in DRIFTED],
    }


def run_end_to_end(work: pathlib.Path, records: int, repeats: int = 2) -> dict[str, Any]:
    capture = write_capture(work, records)
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", E2E, str(work), str(REPO)], capture_output=True, text=True, check=True, timeout=900
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {
        "records": records,
        "capture_bytes": capture.stat().st_size,
        "features": N_FEATURES,
        "cores": 1,
        **best,
        "all_runs_seconds": [r["seconds"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-records", type=int, default=10_000_000)
    parser.add_argument("--skip-shards", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=OUT / "monitor.json")
    args = parser.parse_args()
    work = REPO / "build" / "bench" / "monitor-work"
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "planted_drift": [f"f{i}" for i in DRIFTED],
    }
    if not args.skip_compare:
        baseline_path, current_path = comparison_data(work / "compare")
        compare: dict[str, Any] = {"ours": run_ours(baseline_path, current_path)}
        for name, script in (("evidently", EVIDENTLY), ("nannyml", NANNYML), ("alibi", ALIBI)):
            compare[name] = run_external(name, script, baseline_path, current_path)
        ours = compare["ours"]["seconds"]
        for name in ("evidently", "nannyml", "alibi"):
            if "seconds" in compare[name]:
                compare[name]["ours_faster_by"] = compare[name]["seconds"] / ours
                compare[name]["same_drifted_set_as_ours"] = compare[name]["drifted"] == compare["ours"]["drifted"]
        report["compare_100k_x_10k_x_30"] = compare
    if not args.skip_end_to_end:
        report["end_to_end"] = run_end_to_end(work / "e2e", args.records)
    if not args.skip_shards:
        report["shards"] = run_shards(work / "shards", args.shard_records, args.shards)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    # A partial run (--skip-...) keeps the other section of an earlier run, each with its own time.
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key in ("compare_100k_x_10k_x_30", "end_to_end", "shards"):
        if key in report:
            report[key]["measured_at"] = now
    if args.out.is_file():
        previous = json.loads(args.out.read_text())
        for key in ("compare_100k_x_10k_x_30", "end_to_end", "shards"):
            if key not in report and key in previous:
                report[key] = previous[key]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
