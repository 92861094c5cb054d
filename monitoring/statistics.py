"""Streaming per-feature statistics in Model Monitor's statistics.json format.

The same accumulators compute the baseline (from a training DataFrame) and each monitoring window (from
capture batches), so both sides of every comparison come out of one code path. Memory is bounded by the
KLL sketch per numerical feature and by ``MAX_TRACKED_CATEGORIES`` per string feature, however many
rows stream through.

Type semantics (used by the data type check): a value that parses as a whole number is Integral, another
finite number is Fractional, anything else non-empty is String; an empty cell, null, or NaN is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitoring.kll import DEFAULT_C, DEFAULT_K, KLLSketch

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"
UNKNOWN = "Unknown"
INFERRED_TYPES = (INTEGRAL, FRACTIONAL, STRING, UNKNOWN)
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)

N_BUCKETS = 10
"""Model Monitor materializes every numerical distribution in 10 equal-width buckets (not configurable)."""
MAX_TRACKED_CATEGORIES = 10_000
"""Distinct string values counted exactly per feature; beyond this, new values go to one overflow count."""
OVERFLOW_CATEGORY = "__other__"


@dataclass
class TypeCounts:
    """How many non-missing values of a feature looked Integral, Fractional or String."""

    integral: int = 0
    fractional: int = 0
    string: int = 0

    def matching(self, expected: str) -> int:
        """Values compatible with ``expected``: a whole number is also a valid Fractional value."""
        if expected == INTEGRAL:
            return self.integral
        if expected == FRACTIONAL:
            return self.integral + self.fractional
        return self.integral + self.fractional + self.string

    @property
    def total(self) -> int:
        return self.integral + self.fractional + self.string


@dataclass
class NumericAccumulator:
    """Count, moments, extremes and a KLL sketch of one numerical feature, mergeable batch by batch."""

    name: str
    inferred_type: str
    num_present: int = 0
    num_missing: int = 0
    n_numbers: int = 0
    total: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    types: TypeCounts = field(default_factory=TypeCounts)
    sketch: KLLSketch = field(default_factory=KLLSketch)

    def add_numbers(self, values: npt.NDArray[np.float64], n_missing: int, n_strings: int) -> None:
        """Add finite numbers, plus counts of missing cells and of cells that were not numbers."""
        self.num_missing += n_missing
        self.num_present += int(values.size) + n_strings
        self.types.string += n_strings
        if values.size == 0:
            return
        whole = int(np.count_nonzero(np.floor(values) == values))
        self.types.integral += whole
        self.types.fractional += int(values.size) - whole
        # Chan et al.'s parallel update keeps the variance exact across batches without a second pass.
        n_b = int(values.size)
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n_a = self.n_numbers
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.n_numbers = n
        self.total += float(values.sum())
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        self.sketch.update(values)

    def to_json(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "common": {"num_present": self.num_present, "num_missing": self.num_missing},
        }
        if self.n_numbers:
            stats.update(
                {
                    "mean": self.mean,
                    "sum": self.total,
                    "std_dev": math.sqrt(max(self.m2, 0.0) / self.n_numbers),
                    "min": self.minimum,
                    "max": self.maximum,
                    "distribution": {
                        "kll": {
                            "buckets": kll_buckets(self.sketch, self.minimum, self.maximum),
                            "sketch": {
                                "parameters": {"c": self.sketch.c, "k": self.sketch.k},
                                "data": self.sketch.to_data(),
                            },
                        }
                    },
                }
            )
        else:
            stats["sum"] = 0.0
        return {"name": self.name, "inferred_type": self.inferred_type, "numerical_statistics": stats}


@dataclass
class StringAccumulator:
    """Counts of the distinct values of one string feature (bounded by ``MAX_TRACKED_CATEGORIES``)."""

    name: str
    inferred_type: str = STRING
    num_present: int = 0
    num_missing: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    types: TypeCounts = field(default_factory=TypeCounts)

    def add_strings(self, values: pd.Series, n_missing: int) -> None:
        """Add non-missing values (as strings) and a count of missing cells."""
        self.num_missing += n_missing
        self.num_present += len(values)
        self.types.string += len(values)
        for value, count in values.value_counts(sort=False).items():
            key = str(value)
            if key in self.counts or len(self.counts) < MAX_TRACKED_CATEGORIES:
                self.counts[key] = self.counts.get(key, 0) + int(count)
            else:
                self.counts[OVERFLOW_CATEGORY] = self.counts.get(OVERFLOW_CATEGORY, 0) + int(count)

    def to_json(self) -> dict[str, Any]:
        buckets = [{"value": v, "count": c} for v, c in sorted(self.counts.items(), key=lambda kv: -kv[1])]
        return {
            "name": self.name,
            "inferred_type": self.inferred_type,
            "string_statistics": {
                "common": {"num_present": self.num_present, "num_missing": self.num_missing},
                "distinct_count": len(self.counts),
                "distribution": {"categorical": {"buckets": buckets}},
            },
        }


FeatureAccumulator = NumericAccumulator | StringAccumulator


def new_accumulator(name: str, inferred_type: str, k: int = DEFAULT_K, c: float = DEFAULT_C) -> FeatureAccumulator:
    """An empty accumulator for a feature of the given Model Monitor type."""
    if inferred_type not in INFERRED_TYPES:
        raise ValueError(f"feature {name!r}: inferred_type {inferred_type!r} is not one of {', '.join(INFERRED_TYPES)}")
    if inferred_type in NUMERIC_TYPES:
        return NumericAccumulator(name=name, inferred_type=inferred_type, sketch=KLLSketch(k=k, c=c))
    return StringAccumulator(name=name, inferred_type=inferred_type)


def kll_buckets(sketch: KLLSketch, minimum: float, maximum: float) -> list[dict[str, float]]:
    """Ten equal-width buckets over ``[min, max]`` with counts estimated from the sketch.

    Bucket ``i`` holds items in ``(lower_i, upper_i]``; the first also holds ``min`` itself, so the counts
    add up to the sketch's item count.
    """
    edges = np.linspace(minimum, maximum, N_BUCKETS + 1)
    ranks = sketch.rank(edges)
    counts = np.diff(ranks)
    counts[0] += ranks[0]
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
        for i in range(N_BUCKETS)
    ]


def ingest_column(acc: FeatureAccumulator, column: pd.Series) -> None:
    """Add one column of raw cells (numbers, strings, None/NaN) to ``acc`` with the module's type rules."""
    if isinstance(acc, NumericAccumulator):
        values, n_missing, n_strings = parse_numeric(column)
        acc.add_numbers(values, n_missing, n_strings)
        return
    cells = np.asarray(column, dtype=object)
    present_mask = ~pd.isna(cells)
    if column.dtype == object:
        present_mask &= cells != ""
    present = pd.Series(cells[present_mask], dtype=object).astype(str)
    acc.add_strings(present, int(cells.size - present.size))


def parse_numeric(column: pd.Series) -> tuple[npt.NDArray[np.float64], int, int]:
    """Finite numbers of a column, and how many cells were missing and how many were not numbers."""
    kind = column.dtype.kind
    if kind in "iufb":
        values = np.asarray(column, dtype=np.float64)
        finite = np.isfinite(values)
        return values[finite], int(values.size - finite.sum()), 0
    cells = np.asarray(column, dtype=object)
    missing_mask = np.asarray(pd.isna(cells), dtype=bool) | (cells == "")
    numbers = np.asarray(pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce"), dtype=np.float64)
    finite = np.isfinite(numbers)
    # NaN/inf written as text ("nan", "inf") count as missing, like an empty cell; other text is a String.
    not_number = ~finite & ~missing_mask
    if not_number.any():
        lowered = np.char.lower(cells[not_number].astype(str))
        textual_nonfinite = np.isin(lowered, ["nan", "-nan", "inf", "-inf", "+inf", "infinity", "-infinity"])
        n_nonfinite = int(textual_nonfinite.sum())
        n_strings = int(not_number.sum()) - n_nonfinite
    else:
        n_nonfinite = n_strings = 0
    return numbers[finite], int(missing_mask.sum()) + n_nonfinite, n_strings


def infer_column_type(column: pd.Series) -> str:
    """Model Monitor type of a training column: its dtype, or for text columns what its values parse as."""
    kind = column.dtype.kind
    if kind in "iu":
        return INTEGRAL
    if kind == "f":
        return FRACTIONAL
    if kind == "b":
        return STRING
    cells = np.asarray(column, dtype=object)
    non_null = cells[~np.asarray(pd.isna(cells), dtype=bool)]
    if non_null.size == 0:
        return UNKNOWN
    values = np.asarray(pd.to_numeric(pd.Series(non_null, dtype=object), errors="coerce"), dtype=np.float64)
    if np.isnan(values).any():
        return STRING
    finite = values[np.isfinite(values)]
    return INTEGRAL if np.all(np.floor(finite) == finite) else FRACTIONAL


@dataclass
class DatasetProfile:
    """Accumulators for every feature of a dataset, in column order, plus the dataset's item count."""

    features: list[FeatureAccumulator]
    item_count: int = 0

    @classmethod
    def for_features(cls, specs: Sequence[tuple[str, str]], k: int = DEFAULT_K, c: float = DEFAULT_C) -> DatasetProfile:
        return cls(features=[new_accumulator(name, typ, k=k, c=c) for name, typ in specs])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def ingest_frame(self, frame: pd.DataFrame) -> None:
        """Add a batch whose columns are positional, in the profile's feature order."""
        self.item_count += len(frame)
        for position, acc in enumerate(self.features[: frame.shape[1]]):
            ingest_column(acc, frame.iloc[:, position])

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 0,
            "dataset": {"item_count": self.item_count},
            "features": [f.to_json() for f in self.features],
        }


def profile_frame(frame: pd.DataFrame) -> DatasetProfile:
    """Statistics of a whole DataFrame (column types inferred from dtypes and values)."""
    specs: list[tuple[str, str]] = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise ValueError(f"column names must be strings (feature names), got {name!r}")
        specs.append((name, infer_column_type(frame.iloc[:, len(specs)])))
    profile = DatasetProfile.for_features(specs)
    profile.ingest_frame(frame)
    return profile


@dataclass(frozen=True)
class FeatureStatistics:
    """One feature of a statistics.json, parsed for comparison (read side of the format)."""

    name: str
    inferred_type: str
    num_present: int
    num_missing: int
    sketch: KLLSketch | None = None
    categories: Mapping[str, int] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_numeric(self) -> bool:
        return self.inferred_type in NUMERIC_TYPES


def parse_statistics(doc: Mapping[str, Any], source: str = "statistics.json") -> list[FeatureStatistics]:
    """Parse Model Monitor's statistics.json; errors name the file and the feature that was wrong."""
    features = doc.get("features")
    if not isinstance(features, list):
        raise ValueError(f"{source}: expected a 'features' list at the top level")
    parsed: list[FeatureStatistics] = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or not isinstance(feat.get("name"), str):
            raise ValueError(f"{source}: features[{i}] must be an object with a string 'name'")
        name = feat["name"]
        typ = feat.get("inferred_type", UNKNOWN)
        if typ not in INFERRED_TYPES:
            raise ValueError(f"{source}: feature {name!r} has inferred_type {typ!r}; allowed: {INFERRED_TYPES}")
        if "numerical_statistics" in feat:
            num = feat["numerical_statistics"]
            common = num.get("common", {})
            kll = num.get("distribution", {}).get("kll")
            sketch = None
            if kll and "sketch" in kll:
                params = kll["sketch"].get("parameters", {})
                sketch = KLLSketch.from_data(
                    kll["sketch"].get("data", []),
                    k=int(params.get("k", DEFAULT_K)),
                    c=float(params.get("c", DEFAULT_C)),
                )
            parsed.append(
                FeatureStatistics(
                    name,
                    typ,
                    int(common.get("num_present", 0)),
                    int(common.get("num_missing", 0)),
                    sketch=sketch,
                    raw=feat,
                )
            )
        elif "string_statistics" in feat:
            st = feat["string_statistics"]
            common = st.get("common", {})
            buckets = st.get("distribution", {}).get("categorical", {}).get("buckets", [])
            cats = {str(b["value"]): int(b["count"]) for b in buckets}
            parsed.append(
                FeatureStatistics(
                    name,
                    typ,
                    int(common.get("num_present", 0)),
                    int(common.get("num_missing", 0)),
                    categories=cats,
                    raw=feat,
                )
            )
        else:
            parsed.append(FeatureStatistics(name, typ, 0, 0, raw=feat))
    return parsed
