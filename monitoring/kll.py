"""A mergeable KLL quantile sketch in numpy, with the layout Deequ's KLLSketch writes into statistics.json.

Model Monitor's analyzer (built on Deequ) stores each numerical feature's distribution as a KLL sketch:
``{"parameters": {"c": 0.64, "k": 2048}, "data": [[...], [...], ...]}`` where ``data[h]`` is the buffer of
compactor ``h`` and every item kept at level ``h`` stands for ``2**h`` items of the stream. This module
writes and reads that layout, so our baselines feed the built-in analyzer and its baselines feed ours.

Why our own sketch and not Apache DataSketches: its serialized form is an opaque binary blob, while the
file format needs the compactor buffers themselves; and the monitor must stay numpy-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DEFAULT_K = 2048
"""Capacity of the top compactor (Deequ's ``sketchSize``)."""
DEFAULT_C = 0.64
"""Each compactor below the top holds ``c`` times the capacity of the one above (``shrinkingFactor``)."""

FloatArray = npt.NDArray[np.float64]


class KLLSketch:
    """KLL sketch (Karnin, Lang, Liberty 2016) with deterministic alternating compaction offsets.

    ``update`` takes whole numpy batches: the batch is appended to level 0 and compacted level by level,
    which keeps the per-item cost in numpy's sort instead of Python. The total weight of the sketch is
    always exactly the number of items seen (an odd item left over by a compaction stays at its level).
    """

    def __init__(self, k: int = DEFAULT_K, c: float = DEFAULT_C) -> None:
        if k < 2:
            raise ValueError(f"KLL parameter k must be an integer >= 2, got {k!r}")
        if not 0.5 <= c < 1.0:
            raise ValueError(f"KLL parameter c must be in [0.5, 1.0), got {c!r}")
        self.k = k
        self.c = c
        self._levels: list[FloatArray] = [np.empty(0, dtype=np.float64)]
        # Small batches wait here and enter level 0 together: one compaction pass per ~64k items keeps the
        # per-update Python work small next to numpy's sort. Every read flushes first.
        self._pending: list[FloatArray] = []
        self._pending_size = 0
        # Which end of each level the next compaction takes (alternating, so both tails get compacted).
        self._offsets: list[int] = [0]
        # Which half (even or odd positions) a compaction promotes is a coin flip, as in KLL: the rank
        # errors of successive compactions then cancel instead of adding up. A fixed seed keeps the files
        # reproducible: the same data in the same batches always gives the same sketch.
        self._coins = np.random.default_rng(0x4B4C4C)

    PENDING_LIMIT = 65_536

    @property
    def compactors(self) -> list[FloatArray]:
        """The compactor buffers, level 0 first (flushes pending items)."""
        self._flush()
        return self._levels

    @compactors.setter
    def compactors(self, levels: list[FloatArray]) -> None:
        self._pending, self._pending_size = [], 0
        self._levels = levels

    def _flush(self) -> None:
        if self._pending:
            batch = np.concatenate([self._levels[0], *self._pending])
            self._pending, self._pending_size = [], 0
            self._levels[0] = batch
            self._compress()

    @property
    def count(self) -> int:
        """Number of items the sketch stands for (sum of item weights)."""
        return int(sum(len(buf) << h for h, buf in enumerate(self.compactors)))

    def capacity(self, height: int) -> int:
        """Capacity of compactor ``height``: ``max(2, ceil(k * c ** (H - height - 1)))`` for ``H`` levels."""
        depth = len(self._levels) - height - 1
        return max(2, math.ceil(self.k * self.c**depth))

    def update(self, values: npt.ArrayLike) -> None:
        """Add a batch of finite numbers."""
        batch = np.asarray(values, dtype=np.float64).ravel()
        if batch.size == 0:
            return
        self._pending.append(batch)
        self._pending_size += batch.size
        if self._pending_size >= self.PENDING_LIMIT:
            self._flush()

    def merge(self, other: KLLSketch) -> None:
        """Fold ``other`` into this sketch; the result summarizes both streams."""
        self._flush()
        theirs = other.compactors
        while len(self._levels) < len(theirs):
            self._levels.append(np.empty(0, dtype=np.float64))
            self._offsets.append(0)
        for h, buf in enumerate(theirs):
            if buf.size:
                self._levels[h] = np.concatenate((self._levels[h], buf))
        self._compress()

    def _compress(self) -> None:
        # A compaction may halve any sorted contiguous run of a level; its rank error at any query point is
        # at most that level's weight, as for a whole-buffer compaction. Compacting the overflow from one
        # end (alternately the smallest and the largest items) lets a large batch fill every level up to its
        # capacity instead of pushing all of it to the top, so batch updates stay as accurate as updates one
        # item at a time while the work stays in numpy's sort.
        changed = True
        while changed:
            changed = False
            for height in range(len(self._levels)):
                buf = self._levels[height]
                cap = self.capacity(height)
                if buf.size <= cap:
                    continue
                changed = True
                if height + 1 == len(self._levels):
                    self._levels.append(np.empty(0, dtype=np.float64))
                    self._offsets.append(0)
                    cap = self.capacity(height)
                # Above level 0 a buffer is two sorted runs (what it kept and what was promoted into it), which
                # a stable sort (timsort) merges in linear time; level 0 holds raw batches.
                ordered = np.sort(buf, kind="stable" if height else "quicksort")
                excess = ordered.size - cap
                # Compact at least half the level: fewer, larger compactions keep the accumulated error
                # at KLL's bound (many tiny compactions would each add up to a full weight of error).
                n_compact = max(excess, ordered.size // 2)
                n_compact = min(n_compact + (n_compact % 2), ordered.size - (ordered.size % 2))
                offset = self._offsets[height]
                self._offsets[height] ^= 1
                if offset == 0:
                    run, kept = ordered[:n_compact], ordered[n_compact:]
                else:
                    run, kept = ordered[ordered.size - n_compact :], ordered[: ordered.size - n_compact]
                self._levels[height] = kept
                parity = int(self._coins.integers(2))
                self._levels[height + 1] = np.concatenate((self._levels[height + 1], run[parity::2]))

    def weighted_points(self) -> tuple[FloatArray, FloatArray]:
        """Sorted distinct item values and the cumulative weight of items ``<= value`` at each one."""
        return cumulative_weights(self.compactors)

    def rank(self, x: npt.ArrayLike) -> FloatArray:
        """Estimated number of stream items ``<= x`` (vectorized over ``x``)."""
        values, cum = self.weighted_points()
        idx = np.searchsorted(values, np.asarray(x, dtype=np.float64), side="right")
        padded = np.concatenate(([0.0], cum))
        return padded[idx]

    def quantile(self, q: float) -> float:
        """Smallest item whose estimated normalized rank is ``>= q``."""
        values, cum = self.weighted_points()
        if values.size == 0:
            raise ValueError("quantile of an empty sketch")
        target = q * cum[-1]
        idx = int(np.searchsorted(cum, target, side="left"))
        return float(values[min(idx, values.size - 1)])

    def to_data(self) -> list[list[float]]:
        """The compactor buffers, level 0 first, as Model Monitor's ``sketch.data``."""
        return [buf.tolist() for buf in self.compactors]

    @classmethod
    def from_data(cls, data: Sequence[Sequence[float]], k: int = DEFAULT_K, c: float = DEFAULT_C) -> KLLSketch:
        """Rebuild a sketch from ``sketch.data`` (as written by us or by Model Monitor)."""
        sketch = cls(k=k, c=c)
        sketch.compactors = [np.asarray(level, dtype=np.float64).ravel() for level in data] or [
            np.empty(0, dtype=np.float64)
        ]
        sketch._offsets = [0] * len(sketch.compactors)
        return sketch


def cumulative_weights(levels: Sequence[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Distinct values of a compactor hierarchy and the cumulative weight ``sum(2**h)`` up to each."""
    parts = [lvl for lvl in levels if lvl.size]
    if not parts:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    values = np.concatenate(parts)
    weights = np.concatenate([np.full(lvl.size, float(1 << h)) for h, lvl in enumerate(levels) if lvl.size])
    order = np.argsort(values, kind="stable")
    values = values[order]
    cum = np.cumsum(weights[order])
    # Keep the last position of every distinct value: its cumulative weight counts all items <= value.
    last = np.ones(values.size, dtype=bool)
    last[:-1] = values[1:] != values[:-1]
    return values[last], cum[last]
