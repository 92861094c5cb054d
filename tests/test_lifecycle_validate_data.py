"""Data validation before training (training/validate_data.py, `python -m training validate`).

The champion's baseline is written by the monitor's own `write_baseline` (what the training container writes
beside every model), and the statistics checks are the monitor's (`monitoring.analysis.evaluate`), so a
feature the monitor would flag as drifted in traffic is flagged the same way in new training data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.baseline import write_baseline
from training.errors import TrainingInputError
from training.layout import MLRoot
from training.validate_data import validate

REPO = Path(__file__).resolve().parent.parent


def _frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "label": rng.choice(["yes", "no"], rows),
        }
    )


def _layout(root: Path, *frames: pd.DataFrame) -> MLRoot:
    ml = MLRoot(root)
    directory = ml.channel("train")
    directory.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        frame.to_csv(directory / f"part-{i}.csv", index=False)
    return ml


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    write_baseline(_frame(seed=1).drop(columns=["label"]), tmp_path / "baseline")
    return tmp_path / "baseline"


def test_new_data_like_the_champions_passes(tmp_path: Path, baseline: Path) -> None:
    report = validate(_layout(tmp_path / "ml", _frame(seed=2)), "label", baseline)
    assert report.passed, report.summary()
    assert report.rows == 300
    assert set(report.distances) == {"age", "income", "colour"}


def test_non_numeric_cell_is_named_by_file_row_and_column(tmp_path: Path, baseline: Path) -> None:
    bad = _frame(seed=2).astype({"income": object})
    bad.loc[[3, 41], "income"] = "n/a"
    report = validate(_layout(tmp_path / "ml", _frame(seed=3), bad), "label", baseline)
    assert not report.passed
    (violation,) = report.violations
    assert (violation.check, violation.feature, violation.file) == ("data_type_check", "income", "train/part-1.csv")
    assert violation.rows == (4, 42)  # 1-based data rows (CSV lines 5 and 43)
    assert "part-1.csv: column 'income': data_type_check" in report.summary()


def test_missing_feature_stops_the_run_naming_the_feature(tmp_path: Path, baseline: Path) -> None:
    report = validate(_layout(tmp_path / "ml", _frame(seed=2).drop(columns=["colour"])), "label", baseline)
    checks = {(v.check, v.feature) for v in report.violations}
    assert ("missing_column_check", "colour") in checks


def test_empty_numeric_cell_fails_completeness_with_its_row(tmp_path: Path, baseline: Path) -> None:
    frame = _frame(seed=2)
    frame.loc[10, "age"] = np.nan
    (violation,) = validate(_layout(tmp_path / "ml", frame), "label", baseline).violations
    assert (violation.check, violation.feature, violation.rows) == ("completeness_check", "age", (11,))


def test_shifted_feature_fails_the_monitors_drift_check_on_that_feature_only(tmp_path: Path, baseline: Path) -> None:
    frame = _frame(seed=2)
    frame["income"] = frame["income"] + 15_000  # 1.5 standard deviations
    report = validate(_layout(tmp_path / "ml", frame), "label", baseline)
    assert [(v.check, v.feature) for v in report.violations] == [("baseline_drift_check", "income")]
    assert report.distances["income"] is not None
    assert report.distances["income"] > 0.1
    relaxed = validate(_layout(tmp_path / "ml", frame), "label", baseline, max_drift_distance=1.0)
    assert relaxed.passed
    assert relaxed.drift_threshold == 1.0


def test_category_outside_the_baseline_domain_is_flagged(tmp_path: Path, baseline: Path) -> None:
    frame = _frame(seed=2)
    frame.loc[:29, "colour"] = "purple"  # 10% of rows
    report = validate(_layout(tmp_path / "ml", frame), "label", baseline)
    checks = {(v.check, v.feature) for v in report.violations}
    assert ("categorical_values_check", "colour") in checks
    assert "'purple'" in next(v.description for v in report.violations if v.check == "categorical_values_check")


def test_without_a_champion_only_file_checks_apply(tmp_path: Path) -> None:
    frame = _frame(seed=2)
    frame["income"] = frame["income"] * 10  # would be drift against any baseline; there is none
    assert validate(_layout(tmp_path / "ok", frame), "label", None).passed
    report = validate(_layout(tmp_path / "bad", frame.rename(columns={"label": "y"})), "label", None)
    ((check, feature, file),) = [(v.check, v.feature, v.file) for v in report.violations]
    assert (check, feature, file) == ("missing_target_check", "label", "train/part-0.csv")


def test_unreadable_baseline_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "statistics.json").write_text("{not json")
    with pytest.raises(TrainingInputError, match=r"statistics\.json is not valid JSON"):
        validate(_layout(tmp_path / "ml", _frame()), "label", tmp_path / "b")


def test_command_exits_1_and_writes_the_report_when_data_is_bad(tmp_path: Path, baseline: Path) -> None:
    _layout(tmp_path / "ml", _frame(seed=2).drop(columns=["age"]))
    report_path = tmp_path / "out" / "validation.json"
    argv = [sys.executable, "-m", "training", "validate", "--ml-root", str(tmp_path / "ml")]
    argv += ["--baseline", str(baseline), "--report", str(report_path)]
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stderr
    assert "column 'age': missing_column_check" in run.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert report["violations"][0]["feature"] == "age"
