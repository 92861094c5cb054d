"""Scale-out: each processing instance analyzes its shard of the window and writes a mergeable partial; one
merge step folds the partials into the statistics, violations and metrics one instance would have produced.

A partial holds the accumulators' state, not the statistics.json a shard would write: counts and sums add,
means and variances combine exactly (Chan et al.'s parallel formula), KLL sketches merge (so a merged
distribution is within the sketch's rank error of the one-instance result), category counts add, and so do
the capture counts that drive the column and completeness checks.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitoring.analysis import CaptureCounts
from monitoring.capture import TimeWindow, parse_time
from monitoring.kll import KLLSketch
from monitoring.statistics import (
    MAX_TRACKED_CATEGORIES,
    OVERFLOW_CATEGORY,
    DatasetProfile,
    FeatureAccumulator,
    NumericAccumulator,
    StringAccumulator,
    TypeCounts,
)

PARTIAL_VERSION = 1
PARTIAL_PATTERN = "partial-*.json"


def _types(t: TypeCounts) -> list[int]:
    return [t.integral, t.fractional, t.string]


def accumulator_state(acc: FeatureAccumulator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "name": acc.name,
        "inferred_type": acc.inferred_type,
        "num_present": acc.num_present,
        "num_missing": acc.num_missing,
        "types": _types(acc.types),
    }
    if isinstance(acc, NumericAccumulator):
        state.update(
            {
                "kind": "numeric",
                "n_numbers": acc.n_numbers,
                "total": acc.total,
                "mean": acc.mean,
                "m2": acc.m2,
                # JSON has no infinity: an empty accumulator's extremes are written as null.
                "minimum": acc.minimum if acc.n_numbers else None,
                "maximum": acc.maximum if acc.n_numbers else None,
                "sketch": {"k": acc.sketch.k, "c": acc.sketch.c, "data": acc.sketch.to_data()},
            }
        )
    else:
        state.update({"kind": "string", "counts": acc.counts})
    return state


def counts_state(counts: CaptureCounts) -> dict[str, Any]:
    return {
        "lines_read": counts.lines_read,
        "records_in_window": counts.records_in_window,
        "records_outside_window": counts.records_outside_window,
        "skipped": dict(counts.skipped),
        "rows_seen": counts.rows_seen,
        "rows_analyzed": counts.rows_analyzed,
        "rows_wrong_column_count": counts.rows_wrong_column_count,
        "column_counts": {str(k): v for k, v in counts.column_counts.items()},
        "named_rows": counts.named_rows,
        "names_seen": dict(counts.names_seen),
    }


def partial_document(
    profile: DatasetProfile, counts: CaptureCounts, files_read: int, shard: str, window: TimeWindow | None = None
) -> dict[str, Any]:
    """One shard's mergeable state (with the window, so the merge stamps the metrics like one instance would)."""
    window = window or TimeWindow()
    return {
        "mlplatform_partial": PARTIAL_VERSION,
        "shard": shard,
        "window": {
            "start": window.start.isoformat() if window.start else None,
            "end": window.end.isoformat() if window.end else None,
        },
        "files_read": files_read,
        "item_count": profile.item_count,
        "features": [accumulator_state(a) for a in profile.features],
        "counts": counts_state(counts),
    }


def write_partial(path: pathlib.Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, allow_nan=False), encoding="utf-8")
    tmp.replace(path)


def read_partials(folder: pathlib.Path) -> list[dict[str, Any]]:
    """Every partial in ``folder`` (recursively: each instance's output may land in a subfolder)."""
    if not folder.is_dir():
        raise ValueError(f"partials folder {str(folder)!r} does not exist")
    docs = []
    for path in sorted(folder.rglob(PARTIAL_PATTERN)):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"partial {str(path)!r} is not valid JSON: {err}") from None
        if not isinstance(doc, dict) or doc.get("mlplatform_partial") != PARTIAL_VERSION:
            raise ValueError(f"{str(path)!r} is not a version-{PARTIAL_VERSION} monitor partial")
        docs.append(doc)
    if not docs:
        raise ValueError(f"no {PARTIAL_PATTERN} files under {str(folder)!r}: did every shard run?")
    return docs


def _merge_numeric(acc: NumericAccumulator, s: Mapping[str, Any]) -> None:
    acc.num_present += int(s["num_present"])
    acc.num_missing += int(s["num_missing"])
    acc.types.integral += s["types"][0]
    acc.types.fractional += s["types"][1]
    acc.types.string += s["types"][2]
    n_b = int(s["n_numbers"])
    if n_b == 0:
        return
    n_a = acc.n_numbers
    n = n_a + n_b
    delta = float(s["mean"]) - acc.mean
    acc.mean += delta * n_b / n
    acc.m2 += float(s["m2"]) + delta * delta * n_a * n_b / n
    acc.n_numbers = n
    acc.total += float(s["total"])
    acc.minimum = min(acc.minimum, float(s["minimum"]))
    acc.maximum = max(acc.maximum, float(s["maximum"]))
    sketch = s["sketch"]
    acc.sketch.merge(KLLSketch.from_data(sketch["data"], k=int(sketch["k"]), c=float(sketch["c"])))


def _merge_string(acc: StringAccumulator, s: Mapping[str, Any]) -> None:
    acc.num_present += int(s["num_present"])
    acc.num_missing += int(s["num_missing"])
    acc.types.string += s["types"][2]
    for value, count in s["counts"].items():
        if value in acc.counts or len(acc.counts) < MAX_TRACKED_CATEGORIES:
            acc.counts[value] = acc.counts.get(value, 0) + int(count)
        else:
            acc.counts[OVERFLOW_CATEGORY] = acc.counts.get(OVERFLOW_CATEGORY, 0) + int(count)


def partials_window(docs: Sequence[Mapping[str, Any]]) -> TimeWindow:
    """The window every partial analyzed; partials of different windows are refused."""
    windows = {(d.get("window") or {}).get("start") for d in docs}, {(d.get("window") or {}).get("end") for d in docs}
    if len(windows[0]) != 1 or len(windows[1]) != 1:
        raise ValueError(f"partials analyzed different windows (starts {windows[0]}, ends {windows[1]})")
    start, end = next(iter(windows[0])), next(iter(windows[1]))
    return TimeWindow(
        parse_time(start, "partial window start") if start else None,
        parse_time(end, "partial window end") if end else None,
    )


def merge_partials(
    docs: Sequence[Mapping[str, Any]], specs: Iterable[tuple[str, str]]
) -> tuple[DatasetProfile, CaptureCounts, int]:
    """Fold the partials into one profile (in the baseline's feature order), capture counts and files read."""
    profile = DatasetProfile.for_features(list(specs))
    counts = CaptureCounts()
    files = 0
    names = profile.names
    for doc in docs:
        shard = doc.get("shard", "?")
        states = doc["features"]
        if [s["name"] for s in states] != names:
            raise ValueError(f"partial of shard {shard} has features {[s['name'] for s in states]}; baseline {names}")
        for acc, state in zip(profile.features, states, strict=True):
            if isinstance(acc, NumericAccumulator):
                _merge_numeric(acc, state)
            else:
                _merge_string(acc, state)
        profile.item_count += int(doc["item_count"])
        c = doc["counts"]
        counts.lines_read += c["lines_read"]
        counts.records_in_window += c["records_in_window"]
        counts.records_outside_window += c["records_outside_window"]
        counts.skipped.update(Counter(c["skipped"]))
        counts.rows_seen += c["rows_seen"]
        counts.rows_analyzed += c["rows_analyzed"]
        counts.rows_wrong_column_count += c["rows_wrong_column_count"]
        counts.column_counts.update(Counter({int(k): v for k, v in c["column_counts"].items()}))
        counts.named_rows += c["named_rows"]
        counts.names_seen.update(Counter(c["names_seen"]))
        files += int(doc.get("files_read", 0))
    return profile, counts, files


def shard_of(files: Sequence[str], index: int, count: int) -> list[str]:
    """Files of shard ``index`` of ``count``: every count-th file in key order, as ShardedByS3Key deals the
    objects of a prefix out to the instances (so every instance gets about the same number of files)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: allowed 0 <= index < count")
    ordered = sorted(files)
    return [f for i, f in enumerate(ordered) if i % count == index]


def host_index(resource_config: Mapping[str, Any]) -> tuple[int, int]:
    """(index, count) of this instance from /opt/ml/config/resourceconfig.json (``current_host``, ``hosts``)."""
    hosts = resource_config.get("hosts")
    current = resource_config.get("current_host")
    if not isinstance(hosts, list) or current not in hosts:
        raise ValueError("resourceconfig.json needs 'hosts' (a list) holding 'current_host'")
    ordered = sorted(str(h) for h in hosts)
    return ordered.index(str(current)), len(ordered)
