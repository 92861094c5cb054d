"""Request metrics shared by all worker processes, rendered in Prometheus text format by GET /metrics.

Each worker writes only its own slot of one anonymous shared memory map (created before the fork), so
recording a request is a few float additions with no lock; a scrape sums the slots.
"""

from __future__ import annotations

import bisect
import mmap

PATHS = ("/invocations", "/ping", "/metrics", "other")
STATUSES = (200, 400, 404, 405, 406, 408, 413, 415, 500, 503)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_READY = 0
_ROWS = 1
_COUNTS = 2  # len(PATHS) * (len(STATUSES) + 1 for "other")
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
        self._map = mmap.mmap(-1, max(1, workers) * _SLOT * 8)  # anonymous, MAP_SHARED: survives fork
        self._values = memoryview(self._map).cast("d")
        self._base = 0

    def bind(self, worker: int) -> None:
        """Make this process write into `worker`'s slot (called in the worker after the fork)."""
        self._base = worker * _SLOT
        for i in range(_SLOT):
            self._values[self._base + i] = 0.0

    def set_ready(self, ready: bool) -> None:
        self._values[self._base + _READY] = 1.0 if ready else 0.0

    def all_ready(self) -> bool:
        return all(self._values[w * _SLOT + _READY] == 1.0 for w in range(self.workers))

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

    def _skip(self, path: str, status: int, seconds: float, rows: int = 0) -> None:
        return None

    def _total(self, offset: int) -> float:
        return sum(self._values[w * _SLOT + offset] for w in range(self.workers))

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4."""
        out = [
            "# HELP mlplatform_serving_requests_total HTTP requests answered, by path and status.",
            "# TYPE mlplatform_serving_requests_total counter",
        ]
        status_names = [str(s) for s in STATUSES] + ["other"]
        for p, path in enumerate(PATHS):
            for s, status in enumerate(status_names):
                value = self._total(_COUNTS + p * (len(STATUSES) + 1) + s)
                if value:
                    out.append(f'mlplatform_serving_requests_total{{path="{path}",status="{status}"}} {value:.0f}')
        out += [
            "# HELP mlplatform_serving_request_duration_seconds Time from the first byte of a request "
            "to its response being written, by path.",
            "# TYPE mlplatform_serving_request_duration_seconds histogram",
        ]
        for p, path in enumerate(PATHS):
            h = _HIST + p * _HIST_STRIDE
            cumulative = 0.0
            for b, bound in enumerate((*BUCKETS, float("inf"))):
                cumulative += self._total(h + b)
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    f'mlplatform_serving_request_duration_seconds_bucket{{path="{path}",le="{le}"}} {cumulative:.0f}'
                )
            out.append(
                f'mlplatform_serving_request_duration_seconds_sum{{path="{path}"}} '
                f"{self._total(h + _HIST_STRIDE - 1)!r}"
            )
            out.append(f'mlplatform_serving_request_duration_seconds_count{{path="{path}"}} {cumulative:.0f}')
        out += [
            "# HELP mlplatform_serving_rows_total Rows scored by /invocations.",
            "# TYPE mlplatform_serving_rows_total counter",
            f"mlplatform_serving_rows_total {self._total(_ROWS):.0f}",
            "# HELP mlplatform_serving_workers_ready Worker processes whose model is loaded.",
            "# TYPE mlplatform_serving_workers_ready gauge",
            f"mlplatform_serving_workers_ready {self._total(_READY):.0f}",
            "# HELP mlplatform_serving_workers Worker processes configured.",
            "# TYPE mlplatform_serving_workers gauge",
            f"mlplatform_serving_workers {self.workers}",
        ]
        return ("\n".join(out) + "\n").encode()
