"""Request metrics shared by all worker processes, rendered in Prometheus text format by GET /metrics.

Each worker writes only its own slot of one anonymous shared memory map (created before the fork), so
recording a request is a few float additions with no lock; a scrape sums the slots. A slot outlives its
process: a replacement worker keeps adding to the counts of the one it replaces, so no counter goes down when a
worker dies (Prometheus reads a decrease as a counter reset). The parent process writes the restart counts.

`METRIC_FAMILIES` is the contract of what /metrics exports: the dashboard (tools/grafana.py), the Kubernetes
autoscaler's metric (components/settings.py) and docs/serving.md rely on these names, types and labels, and
tests/test_serving_hardening.py checks that the rendered text declares exactly these families.
"""

from __future__ import annotations

import bisect
import mmap
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricFamily:
    """One family of the exposition: `# HELP` and `# TYPE` lines, then its series."""

    name: str
    type: str
    """`counter`, `gauge` or `histogram` (Prometheus text format 0.0.4)."""
    help: str
    labels: tuple[str, ...] = ()
    """Label names of its series (a histogram's `le` not included)."""


PATHS = ("/invocations", "/ping", "/metrics", "other")
STATUSES = (200, 400, 404, 405, 406, 408, 413, 414, 415, 431, 500, 503)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESTART_REASONS = ("exited", "unresponsive", "recycled")
"""Why the parent started a replacement worker: it exited on its own (crash, OOM kill), it stopped answering
for longer than SAGEMAKER_MODEL_SERVER_TIMEOUT and was killed, or it reached its request limit."""

REQUESTS = MetricFamily(
    "mlplatform_serving_requests_total", "counter", "HTTP requests answered, by path and status.", ("path", "status")
)
DURATION = MetricFamily(
    "mlplatform_serving_request_duration_seconds",
    "histogram",
    "Time from the first byte of a request to its response being written, by path.",
    ("path",),
)
ROWS = MetricFamily("mlplatform_serving_rows_total", "counter", "Rows scored by /invocations.")
WORKERS_READY = MetricFamily("mlplatform_serving_workers_ready", "gauge", "Worker processes whose model is loaded.")
WORKERS = MetricFamily("mlplatform_serving_workers", "gauge", "Worker processes configured.")
CONNECTIONS = MetricFamily("mlplatform_serving_connections", "gauge", "Client connections open, over all workers.")
WORKER_RESTARTS = MetricFamily(
    "mlplatform_serving_worker_restarts_total",
    "counter",
    "Worker processes replaced, by reason (exited, unresponsive, recycled).",
    ("reason",),
)
CACHE_HITS = MetricFamily(
    "mlplatform_serving_cache_hits_total",
    "counter",
    "Rows answered from the prediction cache (MLPLATFORM_SERVING_CACHE_ROWS; 0 when off).",
)
CACHE_MISSES = MetricFamily(
    "mlplatform_serving_cache_misses_total",
    "counter",
    "Rows the prediction cache did not hold (or held expired), scored by the model; 0 when the cache is off.",
)
CACHE_ENTRIES = MetricFamily(
    "mlplatform_serving_cache_entries", "gauge", "Rows held in the prediction caches, over all workers."
)
METRIC_FAMILIES: tuple[MetricFamily, ...] = (
    REQUESTS,
    DURATION,
    ROWS,
    WORKERS_READY,
    WORKERS,
    CONNECTIONS,
    WORKER_RESTARTS,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_ENTRIES,
)

# Layout: a global area written by the parent, then one slot per worker.
_GLOBAL = len(RESTART_REASONS)
_READY = 0
_ROWS = 1
_HEARTBEAT = 2  # time.monotonic() of the worker's last event-loop tick (CLOCK_MONOTONIC is system-wide)
_CONNECTIONS = 3
_CACHE_HITS = 4
_CACHE_MISSES = 5
_CACHE_ENTRIES = 6  # this worker's cache size now; a new process starts with an empty cache
_COUNTS = 7  # len(PATHS) * (len(STATUSES) + 1 for "other")
_HIST = _COUNTS + len(PATHS) * (len(STATUSES) + 1)  # per path: buckets + 1 (+Inf), then sum
_HIST_STRIDE = len(BUCKETS) + 2
_SLOT = _HIST + len(PATHS) * _HIST_STRIDE
_PATH_INDEX = {path: i for i, path in enumerate(PATHS)}
_STATUS_INDEX = {status: i for i, status in enumerate(STATUSES)}


class SharedMetrics:
    """Counters and a latency histogram per worker in shared memory."""

    def __init__(self, workers: int, recording: bool = True) -> None:
        self.workers = workers
        if not recording:
            # Only for measuring what recording costs (benchmarks/bench_serving.py): /metrics then shows zeros.
            self.record = self._skip  # type: ignore[method-assign]
        # Anonymous and MAP_SHARED: survives fork, starts zeroed.
        self._map = mmap.mmap(-1, (_GLOBAL + max(1, workers) * _SLOT) * 8)
        self._values = memoryview(self._map).cast("d")
        self._base = _GLOBAL

    def _slot(self, worker: int) -> int:
        return _GLOBAL + worker * _SLOT

    def bind(self, worker: int) -> None:
        """Make this process write into `worker`'s slot (called in the worker after the fork).

        The counts are kept: they belong to the worker index, not the process, so a replacement continues them.
        """
        self._base = self._slot(worker)
        self._values[self._base + _READY] = 0.0
        self._values[self._base + _CONNECTIONS] = 0.0
        self._values[self._base + _CACHE_ENTRIES] = 0.0
        self.heartbeat()

    def heartbeat(self) -> None:
        self._values[self._base + _HEARTBEAT] = time.monotonic()

    def last_heartbeat(self, worker: int) -> float:
        return self._values[self._slot(worker) + _HEARTBEAT]

    def set_ready(self, ready: bool) -> None:
        self._values[self._base + _READY] = 1.0 if ready else 0.0

    def clear_ready(self, worker: int) -> None:
        """Parent only: `worker`'s process is gone, so its model is no longer loaded."""
        self._values[self._slot(worker) + _READY] = 0.0
        self._values[self._slot(worker) + _CONNECTIONS] = 0.0
        self._values[self._slot(worker) + _CACHE_ENTRIES] = 0.0

    def is_ready(self, worker: int) -> bool:
        return self._values[self._slot(worker) + _READY] == 1.0

    def all_ready(self) -> bool:
        return all(self.is_ready(w) for w in range(self.workers))

    def set_connections(self, count: int) -> None:
        self._values[self._base + _CONNECTIONS] = float(count)

    def count_restart(self, reason: str) -> None:
        """Parent only: one more replacement worker started for `reason` (one of RESTART_REASONS)."""
        self._values[RESTART_REASONS.index(reason)] += 1.0

    def restarts(self, reason: str) -> int:
        return int(self._values[RESTART_REASONS.index(reason)])

    def record(self, path: str, status: int, seconds: float, rows: int = 0) -> None:
        base = self._base
        p = _PATH_INDEX.get(path, 3)
        values = self._values
        values[base + _COUNTS + p * (len(STATUSES) + 1) + _STATUS_INDEX.get(status, len(STATUSES))] += 1.0
        h = base + _HIST + p * _HIST_STRIDE
        values[h + bisect.bisect_left(BUCKETS, seconds)] += 1.0
        values[h + _HIST_STRIDE - 1] += seconds
        if rows:
            values[base + _ROWS] += rows

    def record_cache(self, hits: int, misses: int, entries: int) -> None:
        """One request's prediction-cache lookups (rows) and the cache's size after it."""
        values, base = self._values, self._base
        values[base + _CACHE_HITS] += hits
        values[base + _CACHE_MISSES] += misses
        values[base + _CACHE_ENTRIES] = float(entries)

    def _skip(self, path: str, status: int, seconds: float, rows: int = 0) -> None:
        return None

    def _total(self, offset: int) -> float:
        return sum(self._values[_GLOBAL + w * _SLOT + offset] for w in range(self.workers))

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4, the families of METRIC_FAMILIES in that order."""
        out: list[str] = []

        def family(spec: MetricFamily) -> None:
            out.extend((f"# HELP {spec.name} {spec.help}", f"# TYPE {spec.name} {spec.type}"))

        family(REQUESTS)
        status_names = [str(s) for s in STATUSES] + ["other"]
        for p, path in enumerate(PATHS):
            for s, status in enumerate(status_names):
                value = self._total(_COUNTS + p * (len(STATUSES) + 1) + s)
                if value:
                    out.append(f'{REQUESTS.name}{{path="{path}",status="{status}"}} {value:.0f}')
        family(DURATION)
        for p, path in enumerate(PATHS):
            h = _HIST + p * _HIST_STRIDE
            cumulative = 0.0
            for b, bound in enumerate((*BUCKETS, float("inf"))):
                cumulative += self._total(h + b)
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'{DURATION.name}_bucket{{path="{path}",le="{le}"}} {cumulative:.0f}')
            out.append(f'{DURATION.name}_sum{{path="{path}"}} {self._total(h + _HIST_STRIDE - 1)!r}')
            out.append(f'{DURATION.name}_count{{path="{path}"}} {cumulative:.0f}')
        family(ROWS)
        out.append(f"{ROWS.name} {self._total(_ROWS):.0f}")
        family(WORKERS_READY)
        out.append(f"{WORKERS_READY.name} {self._total(_READY):.0f}")
        family(WORKERS)
        out.append(f"{WORKERS.name} {self.workers}")
        family(CONNECTIONS)
        out.append(f"{CONNECTIONS.name} {self._total(_CONNECTIONS):.0f}")
        family(WORKER_RESTARTS)
        for reason in RESTART_REASONS:
            out.append(f'{WORKER_RESTARTS.name}{{reason="{reason}"}} {self.restarts(reason)}')
        for spec, offset in ((CACHE_HITS, _CACHE_HITS), (CACHE_MISSES, _CACHE_MISSES), (CACHE_ENTRIES, _CACHE_ENTRIES)):
            family(spec)
            out.append(f"{spec.name} {self._total(offset):.0f}")
        return ("\n".join(out) + "\n").encode()
