"""The KLL sketch: exact weight, bounded size, rank accuracy, merging and the statistics.json layout."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.kll import KLLSketch


def _max_rank_error(sketch: KLLSketch, data: np.ndarray) -> float:
    qs = np.quantile(data, np.linspace(0.01, 0.99, 99))
    true = np.searchsorted(np.sort(data), qs, side="right") / data.size
    return float(np.abs(sketch.rank(qs) / sketch.count - true).max())


def test_small_streams_are_kept_exactly_at_level_zero() -> None:
    sketch = KLLSketch()
    sketch.update([5.0, 1.0, 3.0])
    assert sketch.to_data() == [[5.0, 1.0, 3.0]]
    assert sketch.count == 3
    assert sketch.rank([0.0, 1.0, 3.0, 9.0]).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("batch", [1_000_000, 65_536, 997])
def test_weight_is_exact_and_rank_error_small_for_any_batch_size(batch: int) -> None:
    data = np.random.default_rng(3).lognormal(size=1_000_000)
    sketch = KLLSketch()
    for start in range(0, data.size, batch):
        sketch.update(data[start : start + batch])
    assert sketch.count == 1_000_000
    assert _max_rank_error(sketch, data) < 0.005
    # Memory stays bounded: about k / (1 - c) items, far below the stream's size.
    assert sum(len(level) for level in sketch.compactors) < 8_000


def test_merged_sketches_summarize_both_streams() -> None:
    rng = np.random.default_rng(4)
    left, right = rng.normal(size=300_000), rng.normal(5, 1, size=100_000)
    a, b = KLLSketch(), KLLSketch()
    a.update(left)
    b.update(right)
    a.merge(b)
    assert a.count == 400_000
    assert _max_rank_error(a, np.concatenate([left, right])) < 0.005


def test_data_round_trips_through_the_file_layout() -> None:
    sketch = KLLSketch()
    sketch.update(np.arange(100_000, dtype=float))
    copy = KLLSketch.from_data(sketch.to_data(), k=2048, c=0.64)
    assert copy.count == sketch.count
    assert copy.quantile(0.5) == sketch.quantile(0.5)
    assert copy.quantile(0.5) == pytest.approx(50_000, rel=0.01)


def test_same_data_gives_the_same_sketch() -> None:
    data = np.random.default_rng(5).normal(size=200_000)
    a, b = KLLSketch(), KLLSketch()
    a.update(data)
    b.update(data)
    assert a.to_data() == b.to_data()


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        KLLSketch(k=1)
    with pytest.raises(ValueError, match=r"c must be in \[0.5, 1.0\)"):
        KLLSketch(c=1.5)
