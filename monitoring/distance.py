"""Drift distances between a baseline and a current distribution, after Deequ's ``Distance.scala``.

Small pure functions, each with its formula; the monitor picks one per feature from constraints.json
(``comparison_method`` Simple|Robust for numbers, ``categorical_drift_method`` LInfinity|ChiSquared).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from monitoring.kll import KLLSketch

ROBUST_FACTOR = 1.8
"""Deequ's constant: 1.8 * sqrt((n+m)/(n*m)) is about the two-sample KS critical value at alpha ~ 0.003."""


def linf_from_cdfs(
    points_a: npt.NDArray[np.float64],
    cum_a: npt.NDArray[np.float64],
    points_b: npt.NDArray[np.float64],
    cum_b: npt.NDArray[np.float64],
) -> float:
    """L-infinity distance between two empirical CDFs given as (sorted points, cumulative weights).

    ``linf = max over x in points_a ∪ points_b of |F_a(x) - F_b(x)|`` with ``F(x) = weight(<= x) / total``.
    Both step functions only change at their own points, so the union of points is where the supremum is.
    """
    if points_a.size == 0 or points_b.size == 0:
        raise ValueError("L-infinity distance needs two non-empty distributions")
    union = np.union1d(points_a, points_b)
    f_a = np.concatenate(([0.0], cum_a / cum_a[-1]))[np.searchsorted(points_a, union, side="right")]
    f_b = np.concatenate(([0.0], cum_b / cum_b[-1]))[np.searchsorted(points_b, union, side="right")]
    return float(np.max(np.abs(f_a - f_b)))


def linf_samples(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """L-infinity distance between the empirical CDFs of two plain samples (every item weight 1).

    Example: ``[1, 2, 3, 4]`` vs ``[2, 3, 4, 5]``: at x = 1, F_a = 1/4 and F_b = 0, and no point differs
    more, so the distance is 0.25.
    """
    points_a, counts_a = np.unique(np.asarray(a, dtype=np.float64), return_counts=True)
    points_b, counts_b = np.unique(np.asarray(b, dtype=np.float64), return_counts=True)
    return linf_from_cdfs(
        points_a, np.cumsum(counts_a).astype(np.float64), points_b, np.cumsum(counts_b).astype(np.float64)
    )


def linf_sketches(a: KLLSketch, b: KLLSketch) -> float:
    """L-infinity distance between the CDFs two KLL sketches estimate (item at level h weighs 2**h)."""
    points_a, cum_a = a.weighted_points()
    points_b, cum_b = b.weighted_points()
    return linf_from_cdfs(points_a, cum_a, points_b, cum_b)


def robust(linf: float, n: float, m: float) -> float:
    """Deequ's robust variant: ``max(0, linf - 1.8 * sqrt((n + m) / (n * m)))`` for sample sizes n and m.

    Subtracting the sampling noise expected of two samples of these sizes keeps small windows from
    flagging drift that is only chance. Example: linf 0.5, n = m = 100 gives 0.5 - 1.8 * sqrt(0.02) = 0.2454.
    """
    if n <= 0 or m <= 0:
        raise ValueError(f"sample sizes must be positive, got n={n}, m={m}")
    return max(0.0, linf - ROBUST_FACTOR * math.sqrt((n + m) / (n * m)))


def linf_categorical(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """L-infinity distance between two category frequency tables: ``max_v |a[v]/|a| - b[v]/|b||``.

    Categories absent from one side count 0 there. Example: {x: 3, y: 1} vs {x: 1, y: 1} gives
    max(|0.75 - 0.5|, |0.25 - 0.5|) = 0.25.
    """
    total_a = float(sum(a.values()))
    total_b = float(sum(b.values()))
    if total_a <= 0 or total_b <= 0:
        raise ValueError("categorical distance needs two non-empty frequency tables")
    return max(abs(a.get(v, 0) / total_a - b.get(v, 0) / total_b) for v in set(a) | set(b))


def chi_squared_p_value(baseline: Mapping[str, float], current: Mapping[str, float]) -> float:
    """P-value of Pearson's chi-squared test of ``current`` counts against ``baseline`` proportions.

    ``stat = sum_v (O_v - E_v)**2 / E_v`` with ``E_v = |current| * baseline[v] / |baseline|`` over the
    baseline's categories; a category never seen in the baseline makes the p-value 0 (impossible under
    the baseline). Degrees of freedom: categories - 1. Small p-values mean drift.
    Example: baseline {x: 50, y: 50}, current {x: 60, y: 40}: E = 50 each, stat = 100/50 + 100/50 = 4.0,
    dof = 1, p = 0.0455.
    """
    total_base = float(sum(baseline.values()))
    total_cur = float(sum(current.values()))
    if total_base <= 0 or total_cur <= 0:
        raise ValueError("chi-squared test needs two non-empty frequency tables")
    if any(count > 0 and baseline.get(v, 0) <= 0 for v, count in current.items()):
        return 0.0
    cats = [v for v, count in baseline.items() if count > 0]
    if len(cats) < 2:
        return 1.0
    stat = 0.0
    for v in cats:
        expected = total_cur * baseline[v] / total_base
        stat += (current.get(v, 0) - expected) ** 2 / expected
    return chi2_sf(stat, len(cats) - 1)


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-squared distribution: ``Q(dof/2, x/2)``, the regularized upper gamma.

    Computed with the series (x < a + 1) or Lentz's continued fraction (otherwise), as in Numerical Recipes,
    so the monitor needs no scipy.
    """
    if x <= 0:
        return 1.0
    a = dof / 2.0
    z = x / 2.0
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
