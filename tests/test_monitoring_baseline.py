"""Baseline files: Model Monitor's statistics.json and constraints.json written from a training DataFrame."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import write_baseline
from monitoring.constraints import parse_constraints
from monitoring.kll import KLLSketch
from monitoring.statistics import parse_statistics


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 5000
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 12_000, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "score": rng.uniform(-1, 1, n),
        }
    )
    df.loc[[3, 10], "income"] = np.nan
    return df


def _load(out: pathlib.Path) -> tuple[dict, dict]:
    return (
        json.loads((out / "statistics.json").read_text()),
        json.loads((out / "constraints.json").read_text()),
    )


def test_statistics_list_features_in_column_order_with_inferred_types(
    frame: pd.DataFrame, tmp_path: pathlib.Path
) -> None:
    write_baseline(frame, tmp_path)
    stats, _ = _load(tmp_path)
    assert stats["version"] == 0
    assert stats["dataset"] == {"item_count": 5000}
    assert [(f["name"], f["inferred_type"]) for f in stats["features"]] == [
        ("age", "Integral"),
        ("income", "Fractional"),
        ("colour", "String"),
        ("score", "Fractional"),
    ]


def test_numerical_statistics_match_the_data(frame: pd.DataFrame, tmp_path: pathlib.Path) -> None:
    write_baseline(frame, tmp_path)
    stats, _ = _load(tmp_path)
    income = stats["features"][1]["numerical_statistics"]
    values = frame["income"].dropna()
    assert income["common"] == {"num_present": 4998, "num_missing": 2}
    assert income["mean"] == pytest.approx(values.mean())
    assert income["sum"] == pytest.approx(values.sum())
    assert income["std_dev"] == pytest.approx(values.std(ddof=0))
    assert income["min"] == values.min()
    assert income["max"] == values.max()


def test_kll_distribution_has_ten_buckets_and_a_sketch_with_deequ_parameters(
    frame: pd.DataFrame, tmp_path: pathlib.Path
) -> None:
    write_baseline(frame, tmp_path)
    stats, _ = _load(tmp_path)
    kll = stats["features"][0]["numerical_statistics"]["distribution"]["kll"]
    assert len(kll["buckets"]) == 10
    assert kll["buckets"][0]["lower_bound"] == 18
    assert kll["buckets"][-1]["upper_bound"] == frame["age"].max()
    assert sum(b["count"] for b in kll["buckets"]) == 5000
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048}
    data = kll["sketch"]["data"]
    assert all(isinstance(level, list) for level in data)
    assert sum(len(level) << h for h, level in enumerate(data)) == 5000


def test_bucket_counts_estimate_the_true_histogram(frame: pd.DataFrame, tmp_path: pathlib.Path) -> None:
    write_baseline(frame, tmp_path)
    stats, _ = _load(tmp_path)
    kll = stats["features"][3]["numerical_statistics"]["distribution"]["kll"]
    edges = [kll["buckets"][0]["lower_bound"]] + [b["upper_bound"] for b in kll["buckets"]]
    true_counts, _ = np.histogram(frame["score"], bins=edges)
    estimated = [b["count"] for b in kll["buckets"]]
    # 5000 items fit the sketch's lower levels exactly at weights <= 2; allow a small rank error.
    assert np.abs(np.array(estimated) - true_counts).max() <= 0.01 * 5000


def test_string_statistics_count_categories(frame: pd.DataFrame, tmp_path: pathlib.Path) -> None:
    write_baseline(frame, tmp_path)
    stats, _ = _load(tmp_path)
    colour = stats["features"][2]["string_statistics"]
    assert colour["distinct_count"] == 3
    counts = {b["value"]: b["count"] for b in colour["distribution"]["categorical"]["buckets"]}
    assert counts == frame["colour"].value_counts().to_dict()
    assert colour["common"] == {"num_present": 5000, "num_missing": 0}


def test_constraints_suggest_completeness_non_negativity_domains_and_default_config(
    frame: pd.DataFrame, tmp_path: pathlib.Path
) -> None:
    write_baseline(frame, tmp_path)
    _, constraints = _load(tmp_path)
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["age"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["score"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["income"]["completeness"] == pytest.approx(4998 / 5000)
    assert by_name["colour"]["string_constraints"] == {"domains": ["blue", "green", "red"]}
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity",
        },
    }


def test_written_files_parse_back_with_the_same_sketches(frame: pd.DataFrame, tmp_path: pathlib.Path) -> None:
    write_baseline(frame, tmp_path)
    stats, constraints = _load(tmp_path)
    parsed = parse_statistics(stats)
    assert [f.name for f in parsed] == ["age", "income", "colour", "score"]
    sketch = parsed[1].sketch
    assert isinstance(sketch, KLLSketch)
    assert sketch.count == 4998
    assert sketch.quantile(0.5) == pytest.approx(frame["income"].median(), rel=0.01)
    assert parse_constraints(constraints).config.comparison_method == "Robust"


def test_text_columns_of_numbers_are_numeric_features(tmp_path: pathlib.Path) -> None:
    write_baseline(pd.DataFrame({"n": ["1", "2", None], "f": ["1.5", "2", "3"]}), tmp_path)
    stats, _ = _load(tmp_path)
    assert [f["inferred_type"] for f in stats["features"]] == ["Integral", "Fractional"]
    assert stats["features"][0]["numerical_statistics"]["common"] == {"num_present": 2, "num_missing": 1}


def test_duplicate_column_names_are_refused(tmp_path: pathlib.Path) -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError, match="duplicated: a"):
        write_baseline(frame, tmp_path)
