"""Drift distances: hand-computed cases of each formula (Deequ's Distance.scala semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.distance import (
    chi2_sf,
    chi_squared_p_value,
    linf_categorical,
    linf_samples,
    linf_sketches,
    robust,
)
from monitoring.kll import KLLSketch


def test_linf_of_shifted_four_point_samples_is_a_quarter() -> None:
    assert linf_samples([1, 2, 3, 4], [2, 3, 4, 5]) == pytest.approx(0.25)


def test_linf_of_identical_samples_is_zero() -> None:
    assert linf_samples([3, 1, 2], [1, 2, 3]) == 0.0


def test_linf_of_disjoint_samples_is_one() -> None:
    assert linf_samples([1, 2], [10, 11, 12]) == 1.0


def test_linf_with_repeated_values_uses_weights() -> None:
    # F_a: 1 -> 3/4, 2 -> 1; F_b: 1 -> 1/4, 2 -> 1. Largest gap at x = 1: 0.5.
    assert linf_samples([1, 1, 1, 2], [1, 2, 2, 2]) == pytest.approx(0.5)


def test_linf_of_sketches_equals_the_exact_value_while_they_hold_every_item() -> None:
    a, b = KLLSketch(), KLLSketch()
    a.update([1, 2, 3, 4])
    b.update([2, 3, 4, 5])
    assert linf_sketches(a, b) == pytest.approx(0.25)


def test_linf_of_large_sketches_is_close_to_the_exact_ks_statistic() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=200_000)
    y = rng.normal(0.3, 1.0, size=50_000)
    a, b = KLLSketch(), KLLSketch()
    a.update(x)
    b.update(y)
    assert linf_sketches(a, b) == pytest.approx(linf_samples(x, y), abs=0.01)


def test_robust_subtracts_the_sampling_allowance() -> None:
    # 0.5 - 1.8 * sqrt((100 + 100) / (100 * 100)) = 0.5 - 1.8 * sqrt(0.02)
    assert robust(0.5, 100, 100) == pytest.approx(0.5 - 1.8 * math.sqrt(0.02))
    assert robust(0.5, 100, 100) == pytest.approx(0.24544, abs=1e-5)


def test_robust_never_goes_below_zero() -> None:
    # The four-point case: 0.25 - 1.8 * sqrt(8 / 16) < 0.
    assert robust(0.25, 4, 4) == 0.0


def test_robust_rejects_empty_samples() -> None:
    with pytest.raises(ValueError, match="sample sizes must be positive"):
        robust(0.3, 0, 10)


def test_categorical_linf_compares_shares() -> None:
    assert linf_categorical({"x": 3, "y": 1}, {"x": 1, "y": 1}) == pytest.approx(0.25)


def test_categorical_linf_counts_a_new_category_as_zero_in_the_baseline() -> None:
    # baseline x: 1.0; current x: 0.5, z: 0.5 -> gap 0.5 on both.
    assert linf_categorical({"x": 10}, {"x": 5, "z": 5}) == pytest.approx(0.5)


def test_chi_squared_p_value_of_a_hand_computed_table() -> None:
    # E = 50 each; stat = 100/50 + 100/50 = 4.0 with 1 degree of freedom -> p = 0.0455.
    assert chi_squared_p_value({"x": 50, "y": 50}, {"x": 60, "y": 40}) == pytest.approx(0.0455003, abs=1e-6)


def test_chi_squared_p_value_is_one_for_proportional_counts() -> None:
    assert chi_squared_p_value({"x": 20, "y": 60}, {"x": 5, "y": 15}) == pytest.approx(1.0)


def test_chi_squared_p_value_is_zero_for_a_category_unseen_in_the_baseline() -> None:
    assert chi_squared_p_value({"x": 20, "y": 60}, {"x": 5, "q": 1}) == 0.0


@pytest.mark.parametrize(
    ("x", "dof", "expected"),
    [(2.0, 1, 0.1572992), (0.5, 3, 0.9188914), (30.0, 10, 0.000856641), (5.0, 2, 0.0820850), (100.0, 50, 3.4549e-05)],
)
def test_chi2_survival_function_matches_tables(x: float, dof: int, expected: float) -> None:
    assert chi2_sf(x, dof) == pytest.approx(expected, rel=1e-4)
