"""Prediction cache benchmark: the real server (`python -m serving serve`, one worker) with the cache off and on,
same run, same requests, rounds alternating between the two.

Mixes: requests of 1 row and of 100 rows, where each row is, with probability `repeat`, one of 50 distinct rows
(the repeat-heavy case, 0.9), and otherwise a row never sent before (0.0 is the no-repeat case). One keep-alive
connection, one request at a time, client on core 1 and server on core 0 (as bench_serving.py). Reports per mix
and server req/s, p50 and p99 latency, the cache's hit rate from /metrics, the on/off ratios, and the repeat rate
at which the cache breaks even (interpolated between the measured mixes). Writes build/bench/cache.json.

    .venv/bin/python benchmarks/bench_cache.py [--rounds 3] [--requests 1500]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_serving import BUILD, CLIENT_CORE, HIDDEN, N_FEATURES, OUT, our_server, running  # noqa: E402
from serving.settings import ENV_CACHE_ROWS  # noqa: E402
from tests.serving_model_fixture import write_model_dir  # noqa: E402

DISTINCT = 50
REPEATS = (0.0, 0.5, 0.9)
CACHE_ROWS = "10000"


def bodies(rng: np.random.Generator, pool: np.ndarray, count: int, rows: int, repeat: float) -> list[bytes]:
    """`count` CSV bodies of `rows` rows; each row from `pool` with probability `repeat`, else fresh."""
    out = []
    for _ in range(count):
        fresh = rng.normal(0, 1, (rows, N_FEATURES))
        chosen = pool[rng.integers(0, len(pool), rows)]
        values = np.where((rng.random(rows) < repeat)[:, None], chosen, fresh)
        out.append(("\n".join(",".join(f"{v:.6f}" for v in row) for row in values) + "\n").encode())
    return out


def drive(port: int, payload: list[bytes]) -> dict[str, float]:
    """Send `payload` one request at a time on one keep-alive connection; req/s and latency percentiles."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "text/csv", "Accept": "application/json"}
    latencies = np.empty(len(payload))
    started = time.perf_counter()
    for i, body in enumerate(payload):
        t0 = time.perf_counter()
        connection.request("POST", "/invocations", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"answer {response.status}")
        latencies[i] = time.perf_counter() - t0
    elapsed = time.perf_counter() - started
    connection.close()
    return {
        "rps": len(payload) / elapsed,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
    }


def cache_counts(port: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()

    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    return value("mlplatform_serving_cache_hits_total"), value("mlplatform_serving_cache_misses_total")


def break_even(results: dict[str, Any], rows: int) -> float | None:
    """The repeat rate where cache-on req/s equals cache-off req/s, linearly interpolated; None if not crossed."""
    points = [(r, results[f"rows{rows}_repeat{r:g}"]["ratio_rps"]) for r in REPEATS]
    for (r0, q0), (r1, q1) in itertools.pairwise(points):
        if q0 <= 1.0 <= q1 and q1 != q0:
            return round(r0 + (1.0 - q0) * (r1 - r0) / (q1 - q0), 3)
    return 0.0 if points[0][1] > 1.0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating off/on; medians reported")
    parser.add_argument("--requests", type=int, default=1500, help="1-row requests per measurement (100-row: /5)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=BUILD))
    model_dir = write_model_dir(
        work / "model", numeric=[f"f{i}" for i in range(N_FEATURES)], categorical={}, hidden=HIDDEN
    )
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(CLIENT_CORE)})  # the client, apart from the server's core
    rng = np.random.default_rng(11)
    pool = rng.normal(0, 1, (DISTINCT, N_FEATURES))
    mixes = {
        (rows, repeat): (args.requests if rows == 1 else max(50, args.requests // 5))
        for rows in (1, 100)
        for repeat in REPEATS
    }
    servers = {"off": our_server(model_dir), "on": our_server(model_dir, {ENV_CACHE_ROWS: CACHE_ROWS})}
    runs: dict[tuple[int, float, str], list[dict[str, float]]] = {}
    hit_rates: dict[tuple[int, float], list[float]] = {}
    logs = work / "logs"
    logs.mkdir()
    with running(servers["off"], logs), running(servers["on"], logs):
        for server in servers.values():  # warm-up: first connections, allocator, the pool in the cache
            drive(server.port, bodies(np.random.default_rng(1), pool, 200, 1, 1.0))
        for _ in range(args.rounds):
            for (rows, repeat), count in mixes.items():
                payload = bodies(rng, pool, count, rows, repeat)
                for name, server in servers.items():
                    before = cache_counts(server.port)
                    runs.setdefault((rows, repeat, name), []).append(drive(server.port, payload))
                    if name == "on":
                        hits, misses = (a - b for a, b in zip(cache_counts(server.port), before, strict=True))
                        hit_rates.setdefault((rows, repeat), []).append(hits / max(1.0, hits + misses))
    results: dict[str, Any] = {}
    for (rows, repeat), _ in mixes.items():
        off = {k: float(np.median([r[k] for r in runs[(rows, repeat, "off")]])) for k in ("rps", "p50_ms", "p99_ms")}
        on = {k: float(np.median([r[k] for r in runs[(rows, repeat, "on")]])) for k in ("rps", "p50_ms", "p99_ms")}
        results[f"rows{rows}_repeat{repeat:g}"] = {
            "rows_per_request": rows,
            "repeat_rate": repeat,
            "hit_rate": round(float(np.median(hit_rates[(rows, repeat)])), 3),
            "off": off,
            "on": on,
            "ratio_rps": round(on["rps"] / off["rps"], 3),
            "ratio_p50": round(on["p50_ms"] / off["p50_ms"], 3),
            "ratio_p99": round(on["p99_ms"] / off["p99_ms"], 3),
        }
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "model": f"MLP {N_FEATURES} -> {' -> '.join(map(str, HIDDEN))} -> 2, fp32, one worker",
        "cache_rows": int(CACHE_ROWS),
        "distinct_repeated_rows": DISTINCT,
        "rounds": args.rounds,
        "results": results,
        "break_even_repeat_rate": {f"rows{rows}": break_even(results, rows) for rows in (1, 100)},
    }
    (OUT / "cache.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| rows/request | repeat | hit rate | req/s on/off | p50 on/off | p99 on/off |")
    print("|---|---|---|---|---|---|")
    for r in results.values():
        print(
            f"| {r['rows_per_request']} | {r['repeat_rate']:.0%} | {r['hit_rate']:.0%} | {r['ratio_rps']:.2f} "
            f"| {r['ratio_p50']:.2f} | {r['ratio_p99']:.2f} |"
        )
    print("break-even repeat rate:", json.dumps(report["break_even_repeat_rate"]))


if __name__ == "__main__":
    main()
