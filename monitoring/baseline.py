"""Write a training set's baseline (statistics.json and constraints.json) in Model Monitor's format.

The training container calls ``write_baseline`` beside the model, so the baseline travels with the model
version; both the built-in analyzer and our monitor read these files. Only numpy and pandas are needed.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pandas

from monitoring.constraints import suggest_constraints
from monitoring.statistics import profile_frame

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"


def write_json(path: pathlib.Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as strict JSON (NaN/Infinity are not JSON and Model Monitor's readers reject them)."""
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_baseline(frame: pandas.DataFrame, out_dir: pathlib.Path) -> None:
    """Write ``out_dir/statistics.json`` and ``out_dir/constraints.json`` for ``frame``.

    Features follow the frame's column order (the order of a CSV row sent to the endpoint). Integer
    columns are Integral, float columns Fractional, text columns String (or a number type if every
    value parses as one); NaN/None are missing values.
    """
    if not isinstance(frame, pandas.DataFrame):
        raise TypeError(f"write_baseline expects a pandas DataFrame, got {type(frame).__name__}")
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"baseline columns must be unique feature names; duplicated: {', '.join(dupes)}")
    profile = profile_frame(frame)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / STATISTICS_FILE, profile.to_json())
    write_json(out_dir / CONSTRAINTS_FILE, suggest_constraints(profile))
