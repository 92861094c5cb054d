"""Checks of a window against the baseline: drift, types, completeness, domains, columns, no data."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import write_baseline
from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.job import RunResult, analyze, write_results

T0 = dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)
WINDOW = TimeWindow(T0, T0 + dt.timedelta(hours=1))
N_FEATURES = 8


def _frame(rng: np.random.Generator, n: int, shifted: tuple[int, ...] = (), with_colour: bool = True) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for i in range(N_FEATURES):
        columns[f"f{i}"] = rng.normal(0.5 if i in shifted else 0.0, 1.0, n)
    columns["count"] = rng.integers(0, 20, n)
    if with_colour:
        columns["colour"] = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame(columns)


@pytest.fixture
def baseline_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "baseline"
    write_baseline(_frame(np.random.default_rng(10), 20_000), out)
    return out


def _write_window(root: pathlib.Path, frame: pd.DataFrame, rows_per_request: int = 25, **kwargs: Any) -> None:
    records = [
        capture_record(frame.iloc[i : i + rows_per_request].values.tolist(), T0 + dt.timedelta(seconds=i), **kwargs)
        for i in range(0, len(frame), rows_per_request)
    ]
    write_capture_file(root, records, T0)


def _run(baseline_dir: pathlib.Path, capture: pathlib.Path) -> RunResult:
    return analyze(LocalSource(capture), baseline_dir / "statistics.json", baseline_dir / "constraints.json", WINDOW)


def _checks(result: RunResult) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in result.evaluation.violations}


@pytest.mark.parametrize("shifted", [(), (2,), (0, 3, 7)])
def test_planted_drift_flags_exactly_the_shifted_features(
    baseline_dir: pathlib.Path, tmp_path: pathlib.Path, shifted: tuple[int, ...]
) -> None:
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(11), 5_000, shifted=shifted))
    result = _run(baseline_dir, tmp_path / "cap")
    assert _checks(result) == {(f"f{i}", "baseline_drift_check") for i in shifted}
    for i in range(N_FEATURES):
        comparison = result.evaluation.comparisons[f"f{i}"]
        assert comparison.method == "Robust"
        assert comparison.drifted == (i in shifted)
    assert result.message.startswith("CompletedWithViolations" if shifted else "Completed: no violations")


def test_categorical_drift_is_flagged_with_linf(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    frame = _frame(np.random.default_rng(12), 5_000)
    frame["colour"] = np.random.default_rng(13).choice(["red", "green", "blue"], 5_000, p=[0.2, 0.3, 0.5])
    _write_window(tmp_path / "cap", frame)
    result = _run(baseline_dir, tmp_path / "cap")
    assert _checks(result) == {("colour", "baseline_drift_check")}
    assert result.evaluation.comparisons["colour"].kind == "categorical"


def _set_config(baseline_dir: pathlib.Path, **distribution: Any) -> None:
    path = baseline_dir / "constraints.json"
    doc = json.loads(path.read_text())
    doc["monitoring_config"]["distribution_constraints"].update(distribution)
    path.write_text(json.dumps(doc))


def test_chi_squared_method_flags_small_p_values(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _set_config(baseline_dir, categorical_drift_method="ChiSquared", categorical_comparison_threshold=0.01)
    frame = _frame(np.random.default_rng(14), 5_000)
    frame["colour"] = np.random.default_rng(15).choice(["red", "green", "blue"], 5_000, p=[0.45, 0.3, 0.25])
    _write_window(tmp_path / "cap", frame)
    result = _run(baseline_dir, tmp_path / "cap")
    comparison = result.evaluation.comparisons["colour"]
    assert comparison.method == "ChiSquared"
    assert comparison.distance is not None and comparison.distance < 0.01
    assert ("colour", "baseline_drift_check") in _checks(result)


def test_simple_method_and_threshold_come_from_the_constraints(
    baseline_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # A small shift: under the Robust allowance at threshold 0.1, over a Simple threshold of 0.02.
    _write_window(
        tmp_path / "cap", _frame(np.random.default_rng(16), 5_000, shifted=()).assign(f1=lambda d: d.f1 + 0.1)
    )
    assert ("f1", "baseline_drift_check") not in _checks(_run(baseline_dir, tmp_path / "cap"))
    _set_config(baseline_dir, comparison_method="Simple", comparison_threshold=0.02)
    result = _run(baseline_dir, tmp_path / "cap")
    assert result.evaluation.comparisons["f1"].method == "Simple"
    assert ("f1", "baseline_drift_check") in _checks(result)


def test_disabled_comparison_reports_no_drift(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _set_config(baseline_dir, perform_comparison="Disabled")
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(17), 2_000, shifted=(1,)))
    result = _run(baseline_dir, tmp_path / "cap")
    assert result.evaluation.violations == []
    assert result.evaluation.comparisons == {}


def test_text_in_a_numeric_column_fails_the_data_type_check(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    frame = _frame(np.random.default_rng(18), 2_000).astype({"count": object})
    frame.loc[:9, "count"] = "many"
    _write_window(tmp_path / "cap", frame)
    result = _run(baseline_dir, tmp_path / "cap")
    [violation] = [v for v in result.evaluation.violations if v.constraint_check_type == "data_type_check"]
    assert violation.feature_name == "count"
    assert "Expected data type: Integral" in violation.description
    assert "Only 99.5% of data is Integral" in violation.description


def test_fractions_in_an_integral_column_fail_the_data_type_check(
    baseline_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    frame = _frame(np.random.default_rng(19), 2_000).astype({"count": float})
    frame.loc[:1, "count"] = 2.5
    _write_window(tmp_path / "cap", frame)
    assert ("count", "data_type_check") in _checks(_run(baseline_dir, tmp_path / "cap"))


def test_missing_values_fail_the_completeness_check(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    frame = _frame(np.random.default_rng(20), 2_000)
    frame.loc[:99, "f4"] = np.nan
    _write_window(tmp_path / "cap", frame)
    result = _run(baseline_dir, tmp_path / "cap")
    [violation] = [v for v in result.evaluation.violations if v.constraint_check_type == "completeness_check"]
    assert violation.feature_name == "f4"
    assert "Observed: Only 95% of data is present" in violation.description


def test_unknown_categories_fail_the_categorical_values_check(
    baseline_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    frame = _frame(np.random.default_rng(21), 2_000)
    frame.loc[:4, "colour"] = "purple"
    _write_window(tmp_path / "cap", frame)
    result = _run(baseline_dir, tmp_path / "cap")
    [violation] = [v for v in result.evaluation.violations if v.constraint_check_type == "categorical_values_check"]
    assert violation.feature_name == "colour"
    assert "'purple'" in violation.description


def test_rows_missing_a_column_give_missing_column_checks(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(22), 500, with_colour=False))
    result = _run(baseline_dir, tmp_path / "cap")
    assert _checks(result) == {("colour", "missing_column_check")}
    assert result.counts.rows_wrong_column_count == 500
    assert "Number of columns in current dataset: 9" in result.evaluation.violations[0].description


def test_rows_with_an_extra_column_give_extra_column_checks(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(23), 500).assign(extra=1.0))
    assert _checks(_run(baseline_dir, tmp_path / "cap")) == {("_c10", "extra_column_check")}


def test_an_empty_window_is_no_data_not_a_violation(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "cap").mkdir()
    result = _run(baseline_dir, tmp_path / "cap")
    assert result.evaluation.violations == []
    assert result.evaluation.no_data
    assert result.message.startswith("Completed: no data in the window")


def test_a_window_of_only_corrupt_lines_is_no_data(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    write_capture_file(tmp_path / "cap", ["not json", '{"captureData": 1}'], T0)
    result = _run(baseline_dir, tmp_path / "cap")
    assert result.evaluation.violations == []
    assert result.counts.skipped["corrupt_line"] == 2
    assert "2 records and 0 rows skipped" in result.message


def test_output_files_use_model_monitor_formats(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(24), 1_000, shifted=(5,)))
    result = _run(baseline_dir, tmp_path / "cap")
    write_results(result, tmp_path / "out")
    violations = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert violations == {
        "violations": [
            {
                "feature_name": "f5",
                "constraint_check_type": "baseline_drift_check",
                "description": violations["violations"][0]["description"],
            }
        ]
    }
    assert violations["violations"][0]["description"].startswith("Baseline drift distance: ")
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    baseline_stats = json.loads((baseline_dir / "statistics.json").read_text())
    assert stats["dataset"] == {"item_count": 1_000}
    assert [f["name"] for f in stats["features"]] == [f["name"] for f in baseline_stats["features"]]
    assert stats["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]["parameters"] == {
        "c": 0.64,
        "k": 2048,
    }


def test_a_window_compared_with_itself_as_baseline_has_no_drift(tmp_path: pathlib.Path) -> None:
    frame = _frame(np.random.default_rng(25), 3_000)
    write_baseline(frame, tmp_path / "baseline")
    _write_window(tmp_path / "cap", frame)
    result = _run(tmp_path / "baseline", tmp_path / "cap")
    assert result.evaluation.violations == []
    assert all(c.distance == 0.0 for c in result.evaluation.comparisons.values())


def test_statistics_of_the_window_can_serve_as_a_baseline(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(26), 2_000))
    write_results(_run(baseline_dir, tmp_path / "cap"), tmp_path / "out")
    second = tmp_path / "second"
    second.mkdir()
    (second / "statistics.json").write_text((tmp_path / "out" / "statistics.json").read_text())
    constraints = json.loads((baseline_dir / "constraints.json").read_text())
    (second / "constraints.json").write_text(json.dumps(copy.deepcopy(constraints)))
    result = _run(second, tmp_path / "cap")
    assert result.evaluation.violations == []


def test_a_bad_constraints_setting_names_the_setting(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    _set_config(baseline_dir, comparison_method="Fancy")
    (tmp_path / "cap").mkdir()
    with pytest.raises(ValueError, match="comparison_method is 'Fancy'; allowed: Simple, Robust"):
        _run(baseline_dir, tmp_path / "cap")


def test_a_feature_override_changes_its_threshold(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = baseline_dir / "constraints.json"
    doc = json.loads(path.read_text())
    doc["features"][2]["monitoringConfigOverrides"] = {"comparison_threshold": 0.9}
    path.write_text(json.dumps(doc))
    _write_window(tmp_path / "cap", _frame(np.random.default_rng(27), 3_000, shifted=(1, 2)))
    result = _run(baseline_dir, tmp_path / "cap")
    assert _checks(result) == {("f1", "baseline_drift_check")}
    assert result.evaluation.comparisons["f2"].threshold == 0.9


def test_a_bad_override_names_the_feature(baseline_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = baseline_dir / "constraints.json"
    doc = json.loads(path.read_text())
    doc["features"][0]["monitoringConfigOverrides"] = {"comparison_threshold": "high"}
    path.write_text(json.dumps(doc))
    (tmp_path / "cap").mkdir()
    with pytest.raises(ValueError, match=r"feature 'f0' monitoringConfigOverrides.comparison_threshold is 'high'"):
        _run(baseline_dir, tmp_path / "cap")


def test_a_baseline_in_the_built_in_analyzers_shape_is_read_and_compared(tmp_path: pathlib.Path) -> None:
    # Model Monitor writes a sketch as compactor buffers; an item at level h stands for 2**h values.
    # Here: level 0 holds 0..99 once, level 1 holds 100..199 (each counts twice): 300 values in all.
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    stats = {
        "version": 0,
        "dataset": {"item_count": 300},
        "features": [
            {
                "name": "x",
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": 300, "num_missing": 0},
                    "mean": 132.8,
                    "sum": 39850.0,
                    "std_dev": 55.0,
                    "min": 0.0,
                    "max": 199.0,
                    "distribution": {
                        "kll": {
                            "buckets": [],
                            "sketch": {
                                "parameters": {"c": 0.64, "k": 2048.0},
                                "data": [[float(v) for v in range(100)], [float(v) for v in range(100, 200)]],
                            },
                        }
                    },
                },
            }
        ],
    }
    constraints = {
        "version": 0,
        "features": [{"name": "x", "inferred_type": "Fractional", "completeness": 1.0}],
        "monitoring_config": {"distribution_constraints": {"comparison_method": "Simple"}},
    }
    (baseline / "statistics.json").write_text(json.dumps(stats))
    (baseline / "constraints.json").write_text(json.dumps(constraints))
    # Current: 0..199 once each. Baseline CDF at 99 is 100/300, current 100/200: distance 1/6.
    rows = [[float(v)] for v in range(200)]
    write_capture_file(tmp_path / "cap", [capture_record(rows, T0)], T0)
    result = _run(baseline, tmp_path / "cap")
    assert result.evaluation.comparisons["x"].distance == pytest.approx(1 / 6)
    assert _checks(result) == {("x", "baseline_drift_check")}
