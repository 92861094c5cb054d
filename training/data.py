"""Reading the `train` and `validation` channels (CSV or Parquet with a header row) into model-ready arrays.

Column types are inferred: a column whose values all parse as numbers is numeric, anything else is
categorical. The label stays a string, as it appeared in the data, because the manifest's classes are strings.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from training.errors import TrainingInputError
from training.layout import MLRoot

LOG = logging.getLogger(__name__)

CHANNELS = ("train", "validation")
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ALLOWED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


@dataclass(frozen=True)
class FeatureSchema:
    """What the model was trained on: feature names and types in request order, categories, classes."""

    target: str
    features: tuple[str, ...]
    """All features in request order (the training data's column order, label removed)."""
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    """Per categorical feature, the known categories; category i has embedding index i + 1 (0 = unknown)."""
    classes: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical feature: the known categories plus the reserved unknown index 0."""
        return [len(c) + 1 for c in self.categories]


@dataclass(frozen=True)
class EncodedSplit:
    """One channel as arrays: raw numeric values, raw category strings, their indices and the label index."""

    numeric: np.ndarray
    """float32 [N, n_numeric], unscaled (standardisation happens inside the model)."""
    categorical: np.ndarray
    """object (str) [N, n_categorical], the raw strings the ONNX graph receives."""
    categorical_index: np.ndarray
    """int64 [N, n_categorical], 0 for categories unknown to the model."""
    labels: np.ndarray
    """int64 [N], position of the label in `FeatureSchema.classes`."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TrainingData:
    """Everything the trainer needs from the channels."""

    schema: FeatureSchema
    train: EncodedSplit
    validation: EncodedSplit
    train_features: pd.DataFrame
    """The training features as read (numeric columns numeric, categorical as strings), for the baseline."""
    fingerprint: str
    """sha256 over the channel files' bytes as read, with their channel and relative path."""


def channel_files(ml: MLRoot, channel: str) -> list[Path]:
    """The data files of one channel, sorted; a missing or empty channel is an input error."""
    directory = ml.channel(channel)
    if not directory.is_dir():
        raise TrainingInputError(
            f"channel {channel!r} is missing: no directory {directory}; "
            f"expected CSV or Parquet files with a header row there"
        )
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )
    if not files:
        raise TrainingInputError(f"channel {channel!r} is empty: no files in {directory}")
    unsupported = [p.relative_to(directory).as_posix() for p in files if not _suffix_allowed(p)]
    if unsupported:
        raise TrainingInputError(
            f"channel {channel!r}: unsupported file(s) {', '.join(map(repr, unsupported[:5]))}; "
            f"allowed: {', '.join(ALLOWED_SUFFIXES)}"
        )
    return files


def _suffix_allowed(path: Path) -> bool:
    return path.name.lower().endswith(ALLOWED_SUFFIXES)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_file(channel: str, name: str, raw: bytes) -> pd.DataFrame:
    """Read one file; CSV cells stay strings so categorical values keep the exact text a client will send."""
    lower = name.lower()
    try:
        if lower.endswith(PARQUET_SUFFIXES):
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            frame = pd.read_csv(
                io.BytesIO(raw),
                dtype=str,
                keep_default_na=False,
                compression="gzip" if lower.endswith(".gz") else None,
            )
    except Exception as exc:
        kind = "Parquet" if lower.endswith(PARQUET_SUFFIXES) else "CSV"
        raise TrainingInputError(
            f"channel {channel!r}: file {name!r} could not be read as {kind}: {_first_line(exc)}"
        ) from None
    if frame.empty:
        raise TrainingInputError(f"channel {channel!r}: file {name!r} has no data rows")
    if any(str(c).startswith("Unnamed: ") for c in frame.columns) or frame.columns.has_duplicates:
        raise TrainingInputError(
            f"channel {channel!r}: file {name!r} needs a header row with a unique, non-empty name per column"
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def read_channel(ml: MLRoot, channel: str, hasher: hashlib._Hash) -> pd.DataFrame:
    """Read and concatenate a channel's files, feeding their bytes to the data fingerprint."""
    directory = ml.channel(channel)
    frames: list[pd.DataFrame] = []
    for path in channel_files(ml, channel):
        name = path.relative_to(directory).as_posix()
        raw = path.read_bytes()
        hasher.update(f"{channel}/{name}\0{len(raw)}\0".encode())
        hasher.update(raw)
        frame = _read_file(channel, name, raw)
        if frames and list(frame.columns) != list(frames[0].columns):
            raise TrainingInputError(
                f"channel {channel!r}: file {name!r} has columns {list(frame.columns)}, "
                f"but the channel's first file has {list(frames[0].columns)}; all files need the same header"
            )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _as_numeric(series: pd.Series) -> pd.Series | None:
    """The column as numbers if every value is one (CSV strings or Parquet numbers), else None."""
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_numeric_dtype(series):
        return series
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return None
    text = series.astype(str).str.strip()
    converted = cast(pd.Series, pd.to_numeric(text.where(text != "", None), errors="coerce"))
    # A value that is present but not a number makes the whole column categorical.
    if bool((converted.isna() & (text != "")).any()):
        return None
    if bool(converted.isna().all()):
        return None
    return converted


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return cast(pd.Series, frame[name])


def _as_strings(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str)


def _label_strings(channel: str, series: pd.Series, target: str) -> pd.Series:
    labels = _as_strings(series).str.strip()
    missing = int((labels == "").sum())
    if missing:
        raise TrainingInputError(f"channel {channel!r}: target column {target!r} has {missing} empty value(s)")
    return labels


def _sorted_classes(labels: pd.Series) -> tuple[str, ...]:
    values = sorted(set(labels.tolist()))
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(values)


def _require_target(channel: str, frame: pd.DataFrame, target: str) -> None:
    if target not in frame.columns:
        raise TrainingInputError(
            f"target column {target!r} not found in channel {channel!r}; its columns are "
            f"{', '.join(map(repr, frame.columns[:20]))} "
            f"(set the 'target' hyperparameter to the label column)"
        )


def load_training_data(
    ml: MLRoot, target: str, max_categories: int, categorical_columns: tuple[str, ...] = ()
) -> TrainingData:
    """Read both channels, infer the schema from `train` and encode both splits with it.

    Columns named in `categorical_columns` are categorical whatever their values look like.
    """
    hasher = hashlib.sha256()
    train_frame = read_channel(ml, "train", hasher)
    validation_frame = read_channel(ml, "validation", hasher)
    _require_target("train", train_frame, target)
    _require_target("validation", validation_frame, target)

    features = tuple(c for c in train_frame.columns if c != target)
    if not features:
        raise TrainingInputError(f"channel 'train' has no feature columns besides the target {target!r}")
    missing_in_validation = [c for c in features if c not in validation_frame.columns]
    if missing_in_validation:
        raise TrainingInputError(
            f"channel 'validation' lacks feature column(s) {', '.join(map(repr, missing_in_validation))} "
            f"that channel 'train' has"
        )

    not_features = [c for c in categorical_columns if c not in features]
    if not_features:
        raise TrainingInputError(
            f"hyperparameter 'categorical_columns': {', '.join(map(repr, not_features))} "
            f"{'is not a feature column' if len(not_features) == 1 else 'are not feature columns'} "
            f"of channel 'train'; allowed: {', '.join(map(repr, features[:20]))}"
        )

    numeric: list[str] = []
    categorical: list[str] = []
    train_columns: dict[str, pd.Series] = {}
    validation_columns: dict[str, pd.Series] = {}
    for name in features:
        as_number = None if name in categorical_columns else _as_numeric(_column(train_frame, name))
        if as_number is None:
            categorical.append(name)
            train_columns[name] = _as_strings(_column(train_frame, name))
            validation_columns[name] = _as_strings(_column(validation_frame, name))
            continue
        numeric.append(name)
        validation_number = _as_numeric(_column(validation_frame, name))
        if validation_number is None:
            raise TrainingInputError(
                f"column {name!r} is numeric in channel 'train' but has non-numeric values in channel 'validation'"
            )
        for channel, values in (("train", as_number), ("validation", validation_number)):
            bad = int((~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
            if bad:
                raise TrainingInputError(
                    f"channel {channel!r}: numeric column {name!r} has {bad} missing or non-finite value(s); "
                    f"numeric features must be complete (the model does not impute)"
                )
        train_columns[name] = as_number
        validation_columns[name] = validation_number
    if not numeric:
        raise TrainingInputError(
            "the training data has no numeric feature; this model needs at least one numeric column"
        )

    train_labels = _label_strings("train", _column(train_frame, target), target)
    validation_labels = _label_strings("validation", _column(validation_frame, target), target)
    classes = _sorted_classes(train_labels)
    if len(classes) < 2:
        raise TrainingInputError(
            f"target column {target!r} has a single class {list(classes)} in channel 'train'; "
            f"a classifier needs at least two"
        )
    unseen = sorted(set(validation_labels.tolist()) - set(classes))
    if unseen:
        raise TrainingInputError(
            f"channel 'validation': target column {target!r} has class(es) {unseen[:5]} absent from channel 'train'"
        )

    categories: list[tuple[str, ...]] = []
    for name in categorical:
        counts = train_columns[name].value_counts()
        # Most frequent first, ties by value, so the kept set does not depend on row order.
        ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
        kept = sorted(str(value) for value, _ in ranked[:max_categories])
        if len(ranked) > max_categories:
            LOG.info(
                "column %r: keeping the %d most frequent of %d categories; the rest map to unknown",
                name,
                max_categories,
                len(ranked),
            )
        categories.append(tuple(kept))

    numeric_train = np.column_stack([train_columns[n].to_numpy(dtype=np.float64) for n in numeric])
    means = numeric_train.mean(axis=0)
    stds = numeric_train.std(axis=0)
    # A constant column would divide by zero; scaling it by 1 keeps it constant (and harmless).
    stds = np.where(stds > 1e-12, stds, 1.0)

    schema = FeatureSchema(
        target=target,
        features=features,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        categories=tuple(categories),
        classes=classes,
        means=tuple(float(m) for m in means),
        stds=tuple(float(s) for s in stds),
    )
    train_split = encode(schema, train_columns, train_labels)
    validation_split = encode(schema, validation_columns, validation_labels)
    train_features = pd.DataFrame({name: train_columns[name] for name in features})
    return TrainingData(
        schema=schema,
        train=train_split,
        validation=validation_split,
        train_features=train_features,
        fingerprint=hasher.hexdigest(),
    )


def encode(schema: FeatureSchema, columns: dict[str, pd.Series], labels: pd.Series | None) -> EncodedSplit:
    """Turn typed columns into arrays; categories not in the schema get the unknown index 0."""
    n = len(next(iter(columns.values())))
    numeric = np.column_stack([columns[name].to_numpy(dtype=np.float32) for name in schema.numeric])
    if schema.categorical:
        raw = np.column_stack([columns[name].to_numpy(dtype=object) for name in schema.categorical])
        index = np.column_stack(
            [
                pd.Categorical(columns[name], categories=list(cats)).codes.astype(np.int64) + 1
                for name, cats in zip(schema.categorical, schema.categories, strict=True)
            ]
        )
    else:
        raw = np.empty((n, 0), dtype=object)
        index = np.empty((n, 0), dtype=np.int64)
    if labels is None:
        label_index = np.zeros(n, dtype=np.int64)
    else:
        lookup = {c: i for i, c in enumerate(schema.classes)}
        label_index = labels.map(lookup).to_numpy(dtype=np.int64)
    return EncodedSplit(numeric=numeric, categorical=raw, categorical_index=index, labels=label_index)
