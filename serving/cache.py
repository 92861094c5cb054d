"""Optional per-worker prediction cache: the model's output per decoded row, LRU-bounded, each entry with a TTL.

A row's key is its normalized form after decoding: the bytes of its float32 numeric values plus its categorical
strings, so `1` and `1.0` in CSV, or the same row sent as CSV and as JSON, find the same entry. The cache stores
the model's raw output row (probabilities or a regression prediction) and the response is encoded afterwards,
so every response type is answered from the same entries. One cache belongs to one loaded model (one
onnxruntime session, fp32 or int8), so the precision is part of its identity. Each worker process has its own:
hit rates are per worker.

Off by default (size 0): InferenceApp then never builds one, and the request path is one `is None` branch.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from serving.model import Batch

Key = bytes | tuple[bytes, tuple[str, ...]]


class PredictionCache:
    """Maps a row key to (expiry time, output row). Insertion order is recency order: a hit moves the entry to
    the end, and a full cache drops from the front (least recently used)."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError("a PredictionCache holds at least one row; size 0 means no cache at all")
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        # Each output row as its float32 bytes: 2-3x cheaper to store than an ndarray copy per row, and the hits
        # of a request become one array with one np.frombuffer.
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self._row_shape: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def keys(batch: Batch) -> list[Key]:
        numeric = np.ascontiguousarray(batch.numeric, dtype=np.float32)
        width = numeric.shape[1] * 4
        raw = numeric.tobytes()
        numeric_keys = [raw[i * width : (i + 1) * width] for i in range(batch.rows)]
        if batch.categorical is None:
            return list(numeric_keys)
        return [
            (k, tuple(str(v) for v in row)) for k, row in zip(numeric_keys, batch.categorical.tolist(), strict=True)
        ]

    def lookup(self, keys: list[Key]) -> tuple[list[bytes | None], list[int]]:
        """The cached output per row as bytes (None for a miss; `rows` makes them an array) and the indexes of
        the misses, in order."""
        now = self.clock()
        entries = self._entries
        found: list[bytes | None] = []
        misses: list[int] = []
        for i, key in enumerate(keys):
            entry = entries.get(key)
            if entry is not None and entry[0] > now:
                entries.move_to_end(key)
                found.append(entry[1])
            else:
                if entry is not None:
                    del entries[key]  # expired
                found.append(None)
                misses.append(i)
        return found, misses

    def store(self, keys: list[Key], outputs: np.ndarray) -> None:
        """Remember `outputs[i]` for `keys[i]`; only called with output the server is about to answer 200 with."""
        expires = self.clock() + self.ttl_s
        entries = self._entries
        self._row_shape = outputs.shape[1:]
        for key, row in zip(keys, np.ascontiguousarray(outputs, dtype=np.float32), strict=True):
            entries[key] = (expires, row.tobytes())
            entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)

    def rows(self, found: list[bytes]) -> np.ndarray:
        """Cached output rows as one float32 array, in the given order."""
        return np.frombuffer(b"".join(found), dtype=np.float32).reshape(len(found), *self._row_shape)


def subset(batch: Batch, rows: list[int]) -> Batch:
    """The rows of `batch` at `rows`, as one batch for one onnxruntime call."""
    index = np.asarray(rows, dtype=np.intp)
    return Batch(
        numeric=batch.numeric[index], categorical=None if batch.categorical is None else batch.categorical[index]
    )
