"""Demo and synthetic data laid out the way SageMaker would: channels, hyperparameters, resourceconfig. The demo
data is scikit-learn's breast cancer table (classification) or its diabetes table (regression), files that ship
inside the scikit-learn package, so nothing is downloaded at run time. The synthetic generator makes any number
of seeded rows with numeric and categorical columns, for tests and benchmarks.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

from training.hyperparameters import Hyperparameters
from training.layout import MLRoot

VALIDATION_FRACTION = 0.2
TASKS = ("classification", "regression")


def breast_cancer_frame() -> pd.DataFrame:
    """The Wisconsin breast cancer data (569 rows, 30 numeric features), label `malignant`/`benign`."""
    bunch: Any = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns=["target"]).copy()
    frame["label"] = [str(bunch.target_names[t]) for t in bunch.target]
    return frame


def diabetes_frame() -> pd.DataFrame:
    """The diabetes data (442 rows, 10 numeric features, scaled as scikit-learn ships them), target `label`: a
    measure of disease progression one year after baseline (25 to 346)."""
    bunch: Any = load_diabetes(as_frame=True)
    frame = bunch.frame.drop(columns=["target"]).copy()
    frame["label"] = bunch.target.astype(float)
    return frame


def regression_frame(rows: int, *, numeric: int = 8, categorical: int = 2, seed: int = 0) -> pd.DataFrame:
    """Seeded rows whose numeric target `label` is a smooth function of the numeric columns plus per-category
    offsets and noise (signal to noise about 10:1), in units far from standardised (mean about 200)."""
    if rows < 1 or numeric < 1 or categorical < 0:
        raise ValueError("need rows >= 1, numeric >= 1 and categorical >= 0")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, numeric)) * rng.uniform(0.5, 20.0, size=numeric) + rng.uniform(-50, 50, size=numeric)
    scaled = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    y = scaled @ rng.normal(size=numeric) + 0.5 * np.tanh(scaled[:, 0] * scaled[:, -1])
    frame = pd.DataFrame({f"num_{i}": np.round(x[:, i], 4) for i in range(numeric)})
    for j in range(categorical):
        cardinality = 3 + (j * 4) % 10
        codes = rng.integers(0, cardinality, size=rows)
        y = y + rng.normal(scale=0.7, size=cardinality)[codes]
        frame[f"cat_{j}"] = [f"c{c}" for c in codes]
    y = y + rng.normal(scale=0.3 * float(np.std(y)), size=rows)
    frame["label"] = np.round(200.0 + 40.0 * y, 3)
    return frame


def synthetic_frame(
    rows: int,
    *,
    numeric: int = 8,
    categorical: int = 3,
    classes: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Seeded rows whose label depends on both numeric and categorical columns (plus noise).

    Numeric columns are `num_0..`, categorical ones `cat_0..` with 3 to 12 categories each (`c0`, `c1`, ...),
    the label column `label` holds the class number as text.
    """
    if rows < 1 or numeric < 1 or categorical < 0 or classes < 2:
        raise ValueError("need rows >= 1, numeric >= 1, categorical >= 0 and classes >= 2")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, numeric)) * rng.uniform(0.5, 20.0, size=numeric) + rng.uniform(-50, 50, size=numeric)
    scaled = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    weights = rng.normal(size=(numeric, classes))
    logits = scaled @ weights + 0.5 * np.tanh(scaled[:, :1] * scaled[:, -1:])
    frame = pd.DataFrame({f"num_{i}": np.round(x[:, i], 4) for i in range(numeric)})
    for j in range(categorical):
        cardinality = 3 + (j * 4) % 10
        codes = rng.integers(0, cardinality, size=rows)
        effects = rng.normal(scale=1.5, size=(cardinality, classes))
        logits += effects[codes]
        frame[f"cat_{j}"] = [f"c{c}" for c in codes]
    logits += rng.gumbel(size=logits.shape) * 0.7
    frame["label"] = logits.argmax(axis=1).astype(str)
    return frame


def split_frame(
    frame: pd.DataFrame, *, seed: int, fraction: float = VALIDATION_FRACTION, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/validation split, stratified by `label` unless `stratify` is False (a regression target)."""
    train, validation = train_test_split(
        frame, test_size=fraction, random_state=seed, stratify=frame["label"] if stratify else None
    )
    return (
        cast(pd.DataFrame, train).reset_index(drop=True),
        cast(pd.DataFrame, validation).reset_index(drop=True),
    )


def write_layout(
    ml: MLRoot,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    hyperparameters: dict[str, str],
    *,
    hosts: tuple[str, ...] = ("algo-1",),
    current_host: str = "algo-1",
) -> None:
    """Write channels, hyperparameters.json and resourceconfig.json under an ml root."""
    for channel, frame in (("train", train), ("validation", validation)):
        directory = ml.channel(channel)
        directory.mkdir(parents=True, exist_ok=True)
        frame.to_csv(directory / f"{channel}.csv", index=False)
    ml.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    ml.hyperparameters.write_text(json.dumps(hyperparameters, indent=2) + "\n", encoding="utf-8")
    resource = {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "eth0"}
    ml.resource_config.write_text(json.dumps(resource, indent=2) + "\n", encoding="utf-8")


def write_demo_data(ml: MLRoot, *, seed: int = 42, task: str = "classification") -> None:
    """Lay out the breast cancer demo (or for `task` regression the diabetes demo, with `task` set in the
    hyperparameters) with default hyperparameters."""
    if task == "regression":
        train, validation = split_frame(diabetes_frame(), seed=seed, stratify=False)
        write_layout(ml, train, validation, Hyperparameters(seed=seed, task="regression").as_strings())
        return
    train, validation = split_frame(breast_cancer_frame(), seed=seed)
    write_layout(ml, train, validation, Hyperparameters(seed=seed).as_strings())


def write_synthetic_data(
    ml: MLRoot,
    rows: int,
    *,
    numeric: int = 8,
    categorical: int = 3,
    classes: int = 2,
    seed: int = 0,
    task: str = "classification",
) -> None:
    """Lay out synthetic data (`rows` in total, split 80/20) with default hyperparameters (`task` regression:
    `regression_frame`, `classes` unused)."""
    if task == "regression":
        frame = regression_frame(rows, numeric=numeric, categorical=categorical, seed=seed)
        train, validation = split_frame(frame, seed=seed, stratify=False)
        write_layout(ml, train, validation, Hyperparameters(seed=seed, task="regression").as_strings())
        return
    frame = synthetic_frame(rows, numeric=numeric, categorical=categorical, classes=classes, seed=seed)
    train, validation = split_frame(frame, seed=seed)
    write_layout(ml, train, validation, Hyperparameters(seed=seed).as_strings())
