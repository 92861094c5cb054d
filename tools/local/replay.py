"""Held-out traffic for the local lifecycle: two phases replayed over HTTP, captured like SageMaker captures.

The rows are the validation split the training job held out (never trained on), with the label column
removed, in the manifest's feature order. Each row is one `text/csv` request, as a client of a real-time
endpoint sends it; the answer is asked for as `text/csv`.

Phases:

- `normal`: the held-out rows as they are. They come from the same distribution as the training rows, so the
  monitor must report no violation.
- `drifted`: the same rows with **+3 training standard deviations** (the manifest's `std`, the scaling the
  graph itself uses) added to three features: `mean radius`, `mean texture` and `worst smoothness`.
  Why these: they come from three different measurement groups of the data (tumour size, grey-level texture,
  contour smoothness), as a recalibrated imaging device would move several unrelated measurements at once,
  and none of them is derived from another shifted one. Their correlated neighbours (`mean perimeter` and
  `mean area` follow `mean radius` in real data) are left untouched, so "exactly the shifted features" is a
  sharp check: a monitor that flagged a neighbour, or missed one of the three, is wrong. Why 3 std: the
  monitor's Robust L-infinity check needs the distance between the two CDFs to exceed 0.1 plus a
  small-sample correction (1.8 * sqrt((n+m)/(n*m)), about 0.19 for 455 training and 114 replayed rows); a
  3-std shift moves nearly every value beyond the baseline's bulk (distance close to 1), so the outcome
  does not depend on the seed or on how many rows are replayed (`--rows` down to 20).

Captures: every request/response pair becomes one data-capture record (`monitoring.capture_writer`, the
format of SageMaker's data-capture records), filed by its inference time under
`{capture_root}/{phase}/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl`: one capture root per phase, so the
monitor analyzes each phase on its own even when both fall in the same hour.
"""

from __future__ import annotations

import csv
import datetime as dt
import http.client
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.capture_writer import capture_record, encode_csv, write_capture_file

ENDPOINT_NAME = "mlplatform-local"
VARIANT_NAME = "primary"  # the stack's production variant name (stack output endpointVariantName)
SHIFT_STD = 3.0
SHIFTED_FEATURES = ("mean radius", "mean texture", "worst smoothness")
REGRESSION_SHIFTED_FEATURES = ("bmi", "s5")
"""The regression demo (diabetes): body mass index and the log of serum triglycerides, the two features the
target depends on most, so the shift also moves the model's prediction distribution (which the prediction
monitor must flag) while the other eight features stay untouched."""
PHASES = ("normal", "drifted")
MIN_ROWS = 20
RECORDS_PER_FILE = 500  # SageMaker delivers capture in batches; several records per file, as it does


class ReplayError(ValueError):
    """The held-out data or the replay settings cannot be used; the message says what and what is allowed."""


@dataclass(frozen=True)
class Feature:
    name: str
    numeric: bool
    std: float


def model_features(manifest: dict[str, Any]) -> tuple[list[Feature], str]:
    """The manifest's features in request order, and the label column (never sent)."""
    features = [
        Feature(str(f["name"]), f.get("type") == "numeric", float(f.get("std") or 0.0)) for f in manifest["features"]
    ]
    return features, str(manifest.get("target", "label"))


def held_out_rows(csv_path: Path, features: Sequence[Feature], target: str, limit: int | None) -> list[list[str]]:
    """The validation rows as strings in request order, label dropped; the first `limit` rows when given."""
    if limit is not None and limit < MIN_ROWS:
        raise ReplayError(f"--rows {limit}: replay at least {MIN_ROWS} rows per phase (or leave it out for all)")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [f.name for f in features if f.name not in header]
        if missing:
            raise ReplayError(f"{csv_path} lacks the model's features {missing}; it has columns {header}")
        if target in header and target in {f.name for f in features}:
            raise ReplayError(f"the label column {target!r} is also a model feature; refusing to send labels")
        rows = [[row[f.name] for f in features] for row in reader]
    if not rows:
        raise ReplayError(f"{csv_path} holds no rows to replay")
    return rows[:limit] if limit is not None else rows


def shift_rows(
    rows: Sequence[Sequence[str]], features: Sequence[Feature], shifted: Sequence[str], std_multiple: float
) -> list[list[str]]:
    """Copies of `rows` with `std_multiple` training standard deviations added to each shifted feature."""
    by_name = {f.name: i for i, f in enumerate(features)}
    numeric = sorted(f.name for f in features if f.numeric)
    for name in shifted:
        if name not in by_name or not features[by_name[name]].numeric:
            raise ReplayError(f"shifted feature {name!r} is not a numeric feature of the model; allowed: {numeric}")
    out = [list(row) for row in rows]
    for name in shifted:
        i = by_name[name]
        delta = std_multiple * features[i].std
        for row in out:
            row[i] = repr(round(float(row[i]) + delta, 6))  # 6 decimals: the data's own precision or finer
    return out


@dataclass
class PhaseResult:
    """What one phase of the replay measured and where its captures went."""

    phase: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    predicted: dict[str, int]
    capture_root: Path
    capture_files: list[Path]
    started: dt.datetime
    ended: dt.datetime
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(self.requests / self.seconds, 1) if self.seconds > 0 else None,
            "latency_ms": {
                "p50": round(percentile(self.latencies_ms, 50), 2),
                "p99": round(percentile(self.latencies_ms, 99), 2),
                "max": round(max(self.latencies_ms, default=0.0), 2),
            },
            "predicted_labels": _predicted_summary(self.predicted),
            "capture_root": str(self.capture_root),
            "capture_files": len(self.capture_files),
            "started": iso(self.started),
            "ended": iso(self.ended),
        }


def _predicted_summary(predicted: dict[str, int]) -> dict[str, Any]:
    """Counts per predicted label; a regression model's answers (numbers, mostly distinct) as count, mean,
    min and max instead."""
    try:
        values = [float(k) for k, n in predicted.items() for _ in range(n)]
    except ValueError:
        values = []
    if len(predicted) <= 20 or not values:
        return dict(sorted(predicted.items()))
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 114 latencies is one that was measured)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def replay_phase(
    phase: str,
    rows: Sequence[Sequence[str]],
    *,
    port: int,
    capture_root: Path,
    concurrency: int = 4,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> PhaseResult:
    """Send every row as one CSV request from `concurrency` keep-alive connections; capture each exchange."""
    if concurrency < 1 or concurrency > 64:
        raise ReplayError(f"concurrency {concurrency}: allowed 1..64")
    lock = threading.Lock()
    next_index = 0
    records: list[tuple[dt.datetime, dict[str, Any]]] = []
    latencies: list[float] = []
    predicted: Counter[str] = Counter()
    errors: list[str] = []

    def worker() -> None:
        nonlocal next_index
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while True:
                with lock:
                    if next_index >= len(rows):
                        return
                    row = rows[next_index]
                    next_index += 1
                body = encode_csv([row])  # the capture holds exactly the bytes sent
                sent_at = dt.datetime.now(dt.UTC)
                started = time.perf_counter()
                try:
                    connection.request(
                        "POST",
                        "/invocations",
                        body=body.encode(),
                        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                    )
                    response = connection.getresponse()
                    answer = response.read().decode("utf-8", "replace")
                    status = response.status
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()  # a broken keep-alive connection: reconnect on the next request
                    connection = http.client.HTTPConnection(host, port, timeout=timeout)
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                with lock:
                    if status != 200:
                        errors.append(f"HTTP {status}: {answer[:300]}")
                        continue
                    latencies.append(elapsed_ms)
                    predicted[answer.split(",", 1)[0].strip()] += 1
                    records.append((sent_at, capture_record([row], sent_at, encoding="CSV", output=answer.strip())))
        finally:
            connection.close()

    phase_started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"replay-{phase}-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - clock
    phase_ended = dt.datetime.now(dt.UTC)
    files = write_captures(capture_root, records)
    return PhaseResult(
        phase=phase,
        requests=len(rows),
        errors=len(errors),
        seconds=seconds,
        latencies_ms=latencies,
        predicted=dict(predicted),
        capture_root=capture_root,
        capture_files=files,
        started=phase_started,
        ended=phase_ended,
        error_samples=errors[:5],
    )


def write_captures(root: Path, records: Sequence[tuple[dt.datetime, dict[str, Any]]]) -> list[Path]:
    """File records by the hour of their inference time, in time order, several records per file."""
    by_hour: dict[dt.datetime, list[tuple[dt.datetime, dict[str, Any]]]] = {}
    for when, record in sorted(records, key=lambda item: item[0]):
        by_hour.setdefault(when.replace(minute=0, second=0, microsecond=0), []).append((when, record))
    files: list[Path] = []
    for batch in by_hour.values():
        for start in range(0, len(batch), RECORDS_PER_FILE):
            chunk = batch[start : start + RECORDS_PER_FILE]
            files.append(
                write_capture_file(
                    root, [r for _, r in chunk], chunk[0][0], endpoint=ENDPOINT_NAME, variant=VARIANT_NAME
                )
            )
    return files


def capture_listing(root: Path) -> list[str]:
    """The capture files under a phase root, relative to it (for the summary and the tests)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl"))


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReplayError(f"{path} does not exist: the model directory has no manifest") from None
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path} is not valid JSON: {exc}") from None
