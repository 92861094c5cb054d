"""Reading the `train` and `validation` channels (CSV or Parquet with a header row) into model-ready arrays.

Column types are inferred: a column whose values all parse as numbers is numeric, anything else is
categorical. For classification the label stays a string, as it appeared in the data, because the manifest's
classes are strings; for regression it is a number (`detect_task` decides which, or the `task` hyperparameter).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from training.errors import TrainingInputError
from training.layout import MLRoot

LOG = logging.getLogger(__name__)

CHANNELS = ("train", "validation")
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ALLOWED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
CLASSIFICATION = "classification"
REGRESSION = "regression"
REGRESSION_MIN_DISTINCT = 20
"""With `task` auto, a numeric target with more than this many distinct values is a regression target; fewer
(0/1, 1..5 ratings, class codes) is a classification one. Set `task` to override."""


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
    task: str = CLASSIFICATION
    """`classification` or `regression` (then `classes` is empty)."""
    target_mean: float = 0.0
    """Regression: the training target's mean; the model learns (y - mean) / std and the graph undoes it."""
    target_std: float = 1.0
    """Regression: the training target's (population) standard deviation."""

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION

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
    """int64 [N], position of the label in `FeatureSchema.classes` (zeros for regression)."""
    targets: np.ndarray | None = None
    """Regression: float32 [N], the target in its own units; None for classification."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TrainingData:
    """Everything the trainer needs from the channels."""

    schema: FeatureSchema
    train: EncodedSplit
    """This process's share of the `train` channel."""
    validation: EncodedSplit | None
    """The whole `validation` channel, where it was read (the first process validates)."""
    train_features: pd.DataFrame
    """This process's training features as read (numeric columns numeric, categorical as strings), for the
    drift baseline."""
    fingerprint: str
    """`fingerprint_of` every train file of the job and the validation files, where they were read."""
    train_rows_total: int = 0
    """Rows of the `train` channel across all processes."""


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


@dataclass(frozen=True)
class ChannelFile:
    """One data file of a channel: its path relative to the channel folder and its size."""

    name: str
    size: int


@dataclass(frozen=True)
class Sharding:
    """Which rows of the `train` channel this process trains on, among all processes of the job.

    SageMaker gives every host every file (`FullyReplicated`) or each host a disjoint set of whole files
    (`ShardedByS3Key`, CreateTrainingJob's S3DataSource.S3DataDistributionType). The processes that share a
    set of files split it by whole files when there are at least as many files as processes, else by rows
    (a seeded permutation, `rank::world`), so no process parses rows it does not train on unless it must.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    host: str = "algo-1"
    train_distribution: str = "FullyReplicated"


Exchange = Callable[[str, Any], list[Any]]
"""All-gather of a picklable value among every process of the job, by key: element i comes from rank i."""


def local_exchange(key: str, value: Any) -> list[Any]:
    """The exchange of a job with one process."""
    return [value]


def channel_listing(ml: MLRoot, channel: str) -> list[ChannelFile]:
    directory = ml.channel(channel)
    return [ChannelFile(p.relative_to(directory).as_posix(), p.stat().st_size) for p in channel_files(ml, channel)]


def assign_files(files: list[ChannelFile], readers: int) -> list[list[ChannelFile]]:
    """Whole files to `readers` processes, largest first to the least loaded, so shares are balanced."""
    shares: list[list[ChannelFile]] = [[] for _ in range(readers)]
    loads = [0] * readers
    for item in sorted(files, key=lambda f: (-f.size, f.name)):
        target = min(range(readers), key=lambda r: (loads[r], r))
        shares[target].append(item)
        loads[target] += item.size
    return [sorted(share, key=lambda f: f.name) for share in shares]


def _read_file(channel: str, name: str, raw: bytes, as_text: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one file. CSV numbers become numbers (a column is read as text only where it holds anything
    else, or is named in `as_text`), and text cells keep the exact characters of the file."""
    lower = name.lower()
    try:
        if lower.endswith(PARQUET_SUFFIXES):
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            frame = pd.read_csv(
                io.BytesIO(raw),
                dtype=dict.fromkeys(as_text, str),
                keep_default_na=False,
                na_values=[""],
                low_memory=False,
                compression="gzip" if lower.endswith(".gz") else None,
            )
    except Exception as exc:
        kind = "Parquet" if lower.endswith(PARQUET_SUFFIXES) else "CSV"
        raise TrainingInputError(
            f"channel {channel!r}: file {name!r} could not be read as {kind}: {_first_line(exc)}"
        ) from None
    if not lower.endswith(PARQUET_SUFFIXES):
        # The CSV parser turns True/False into booleans, which would lose their spelling: read them as text.
        flags = [str(c) for c in frame.columns if pd.api.types.is_bool_dtype(frame[c]) and c not in as_text]
        if flags:
            return _read_file(channel, name, raw, (*as_text, *flags))
    if frame.empty:
        raise TrainingInputError(f"channel {channel!r}: file {name!r} has no data rows")
    if any(str(c).startswith("Unnamed: ") for c in frame.columns) or frame.columns.has_duplicates:
        raise TrainingInputError(
            f"channel {channel!r}: file {name!r} needs a header row with a unique, non-empty name per column"
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame


@dataclass
class _ReadFiles:
    frames: list[pd.DataFrame]
    names: list[str]
    digests: list[tuple[str, int, str]]
    """(name, size, sha256) per file."""


def _read_files(ml: MLRoot, channel: str, files: list[ChannelFile], as_text: tuple[str, ...]) -> _ReadFiles:
    directory = ml.channel(channel)
    out = _ReadFiles([], [], [])
    for item in files:
        raw = (directory / item.name).read_bytes()
        frame = _read_file(channel, item.name, raw, as_text)
        if out.frames and list(frame.columns) != list(out.frames[0].columns):
            raise TrainingInputError(
                f"channel {channel!r}: file {item.name!r} has columns {list(frame.columns)}, "
                f"but file {out.names[0]!r} has {list(out.frames[0].columns)}; all files need the same header"
            )
        out.frames.append(frame)
        out.names.append(item.name)
        out.digests.append((f"{channel}/{item.name}", len(raw), hashlib.sha256(raw).hexdigest()))
    return out


def fingerprint_of(digests: list[tuple[str, int, str]]) -> str:
    """sha256 over every data file's (channel/path, size, sha256), in path order: the same whichever
    process read which file, so a run keeps its identity when the number of processes changes."""
    hasher = hashlib.sha256()
    for name, size, digest in sorted(digests):
        hasher.update(f"{name}\0{size}\0{digest}\n".encode())
    return hasher.hexdigest()


def read_channel(ml: MLRoot, channel: str) -> pd.DataFrame:
    """A whole channel as one frame (all its files, numbers as numbers)."""
    read = _read_files(ml, channel, channel_listing(ml, channel), ())
    return pd.concat(read.frames, ignore_index=True) if len(read.frames) > 1 else read.frames[0]


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


def _sorted_classes(labels: set[str] | list[str]) -> tuple[str, ...]:
    values = sorted(set(labels))
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(values)


def _target_numbers(labels: pd.Series) -> tuple[np.ndarray | None, str | None]:
    """The target as float64 numbers, or (None, the first cell that is not a finite number)."""
    converted = cast(pd.Series, pd.to_numeric(labels, errors="coerce")).to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(converted)
    if finite.all():
        return converted, None
    return None, str(labels.iloc[int(np.argmin(finite))])


def detect_task(requested: str, target: str, non_number: str | None, distinct: int) -> str:
    """The task of a run: `requested` unless it is `auto`, then regression for a numeric target with more than
    REGRESSION_MIN_DISTINCT distinct values (`distinct`; `non_number` is a cell that is not a finite number, or
    None when every cell is one), else classification."""
    if requested == REGRESSION:
        if non_number is not None:
            raise TrainingInputError(
                f"hyperparameter 'task': 'regression' needs a numeric target, but target column {target!r} in "
                f"channel 'train' has the value {non_number!r}, which is not a finite number; allowed: a number in "
                f"every row of {target!r}, or task 'classification' or 'auto'"
            )
        return REGRESSION
    if requested == CLASSIFICATION:
        return CLASSIFICATION
    if requested != "auto":
        raise TrainingInputError(
            f"hyperparameter 'task': {requested!r} is not allowed; allowed: auto, classification, regression"
        )
    if non_number is None and distinct > REGRESSION_MIN_DISTINCT:
        LOG.info(
            "task auto: target column %r is numeric with more than %d distinct values: regression",
            target,
            REGRESSION_MIN_DISTINCT,
        )
        return REGRESSION
    return CLASSIFICATION


def _require_target(channel: str, frame: pd.DataFrame, target: str) -> None:
    if target not in frame.columns:
        raise TrainingInputError(
            f"target column {target!r} not found in channel {channel!r}; its columns are "
            f"{', '.join(map(repr, frame.columns[:20]))} "
            f"(set the 'target' hyperparameter to the label column)"
        )


def _my_train_files(ml: MLRoot, sharding: Sharding, exchange: Exchange) -> tuple[list[ChannelFile], int, int]:
    """This process's train files, and how its rows are split further: (files, row_part, row_parts)."""
    listing = channel_listing(ml, "train")
    listings: list[tuple[str, list[ChannelFile]]] = exchange("train-files", (sharding.host, listing))
    if sharding.train_distribution == "ShardedByS3Key":
        host_files = listing
        if not host_files:
            raise TrainingInputError(f"host {sharding.host!r} received no file of channel 'train'")
        group_rank, group_size = sharding.local_rank, sharding.local_world
    else:
        first_host, first = listings[0]
        for host, files in listings:
            if files != first:
                raise TrainingInputError(
                    f"host {host!r} sees other files in channel 'train' than host {first_host!r} although the "
                    f"channel is FullyReplicated (every host gets every file); check the channel's "
                    f"S3DataDistributionType"
                )
        host_files = listing
        group_rank, group_size = sharding.rank, sharding.world
    if len(host_files) >= group_size:
        return assign_files(host_files, group_size)[group_rank], 0, 1
    return host_files, group_rank, group_size


def _numeric_moments(values: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) of one column, in float64."""
    n = int(values.shape[0])
    if n == 0:
        return 0, 0.0, 0.0
    mean = float(values.mean())
    return n, mean, float(((values - mean) ** 2).sum())


def merge_moments(parts: list[tuple[int, float, float]]) -> tuple[int, float, float]:
    """Combine (count, mean, M2) of disjoint parts (Chan, Golub and LeVeque's pairwise update)."""
    n, mean, m2 = 0, 0.0, 0.0
    for n_b, mean_b, m2_b in parts:
        if n_b == 0:
            continue
        total = n + n_b
        delta = mean_b - mean
        mean += delta * n_b / total
        m2 += m2_b + delta * delta * n * n_b / total
        n = total
    return n, mean, m2


def load_training_data(
    ml: MLRoot,
    target: str,
    max_categories: int,
    categorical_columns: tuple[str, ...] = (),
    *,
    sharding: Sharding | None = None,
    exchange: Exchange = local_exchange,
    seed: int = 0,
    read_validation: bool = True,
    task: str = "auto",
) -> TrainingData:
    """Read this process's share of `train` (and, when asked, all of `validation`), infer the schema from
    the whole `train` channel across all processes (`exchange`) and encode both splits with it.

    Columns named in `categorical_columns` are categorical whatever their values look like. `task` is the
    hyperparameter: `classification`, `regression` or `auto` (`detect_task`).
    """
    sharding = sharding or Sharding()
    my_files, row_part, row_parts = _my_train_files(ml, sharding, exchange)
    forced = tuple(categorical_columns)
    read = _read_files(ml, "train", my_files, forced)
    columns = list(read.frames[0].columns) if read.frames else []
    headers: list[list[str]] = exchange("train-header", columns)
    header = next((h for h in headers if h), [])
    for other in headers:
        if other and other != header:
            raise TrainingInputError(
                f"channel 'train': files have columns {other} and {header}; all files need the same header"
            )
    frame = pd.concat(read.frames, ignore_index=True) if len(read.frames) > 1 else read.frames[0]
    _require_target("train", frame, target)
    features = tuple(c for c in header if c != target)
    if not features:
        raise TrainingInputError(f"channel 'train' has no feature columns besides the target {target!r}")
    not_features = [c for c in categorical_columns if c not in features]
    if not_features:
        raise TrainingInputError(
            f"hyperparameter 'categorical_columns': {', '.join(map(repr, not_features))} "
            f"{'is not a feature column' if len(not_features) == 1 else 'are not feature columns'} "
            f"of channel 'train'; allowed: {', '.join(map(repr, features[:20]))}"
        )

    # A column is numeric only if it is numbers in every file of every process; where one process read a
    # column as numbers that is text elsewhere, it reads that column again as text to keep its spelling.
    local_text = {name for name in features if name in forced or _as_numeric(_column(frame, name)) is None}
    everywhere_text = set().union(*exchange("train-text-columns", sorted(local_text)))
    if everywhere_text - local_text - set(forced):
        read = _read_files(ml, "train", my_files, tuple(sorted(everywhere_text | set(forced))))
        frame = pd.concat(read.frames, ignore_index=True) if len(read.frames) > 1 else read.frames[0]
    if row_parts > 1:
        order = np.random.default_rng(seed).permutation(len(frame))
        frame = frame.iloc[np.sort(order[row_part::row_parts])].reset_index(drop=True)

    numeric = [name for name in features if name not in everywhere_text]
    categorical = [name for name in features if name in everywhere_text]
    train_columns: dict[str, pd.Series] = {}
    for name in features:
        column = _column(frame, name)
        if name in categorical:
            train_columns[name] = _as_strings(column)
            continue
        as_number = _as_numeric(column)
        assert as_number is not None  # numeric in every file, so here too
        _require_finite("train", name, as_number)
        train_columns[name] = as_number
    if not numeric:
        raise TrainingInputError(
            "the training data has no numeric feature; this model needs at least one numeric column"
        )
    train_labels = _label_strings("train", _column(frame, target), target)
    target_values, target_bad = _target_numbers(train_labels)
    distinct = sorted(set(train_labels.tolist()))
    if task != CLASSIFICATION and target_bad is None and len(distinct) > REGRESSION_MIN_DISTINCT:
        # Enough to tell a regression target; the full set is only needed for classes.
        distinct = distinct[: REGRESSION_MIN_DISTINCT + 1]

    local_stats = {
        "rows": len(frame),
        "moments": [_numeric_moments(train_columns[n].to_numpy(dtype=np.float64)) for n in numeric],
        "counts": [train_columns[n].value_counts().to_dict() for n in categorical],
        "classes": distinct,
        "target_bad": target_bad,
        "target_moments": _numeric_moments(target_values) if target_values is not None else None,
        "digests": read.digests,
    }
    stats: list[dict[str, Any]] = exchange("train-statistics", local_stats)
    labels_seen = {c for s in stats for c in s["classes"]}
    bad = next((s["target_bad"] for s in stats if s["target_bad"] is not None), None)
    task = detect_task(task, target, bad, len(labels_seen))
    classes: tuple[str, ...] = ()
    target_mean, target_std = 0.0, 1.0
    if task == REGRESSION:
        count, target_mean, m2 = merge_moments([s["target_moments"] for s in stats])
        target_std = math.sqrt(m2 / count) if count else 0.0
        if not target_std > 1e-12:
            raise TrainingInputError(
                f"target column {target!r} is constant in channel 'train' (every value {target_mean:g}); "
                f"a regression needs a varying target"
            )
    else:
        classes = _sorted_classes(labels_seen)
        if len(classes) < 2:
            raise TrainingInputError(
                f"target column {target!r} has a single class {list(classes)} in channel 'train'; "
                f"a classifier needs at least two"
            )
    moments = [merge_moments([s["moments"][i] for s in stats]) for i in range(len(numeric))]
    means = np.array([m[1] for m in moments])
    stds = np.sqrt(np.array([m[2] / m[0] for m in moments]))
    # A constant column would divide by zero; scaling it by 1 keeps it constant (and harmless).
    stds = np.where(stds > 1e-12, stds, 1.0)
    categories: list[tuple[str, ...]] = []
    for i, name in enumerate(categorical):
        counts: dict[str, int] = {}
        for s in stats:
            for value, count in s["counts"][i].items():
                counts[str(value)] = counts.get(str(value), 0) + int(count)
        # Most frequent first, ties by value, so the kept set does not depend on row order.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if len(ranked) > max_categories:
            LOG.info(
                "column %r: keeping the %d most frequent of %d categories; the rest map to unknown",
                name,
                max_categories,
                len(ranked),
            )
        categories.append(tuple(sorted(value for value, _ in ranked[:max_categories])))

    schema = FeatureSchema(
        target=target,
        features=features,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        categories=tuple(categories),
        classes=classes,
        means=tuple(float(m) for m in means),
        stds=tuple(float(s) for s in stds),
        task=task,
        target_mean=float(target_mean),
        target_std=float(target_std),
    )
    digests = [d for s in stats for d in s["digests"]]
    validation_split: EncodedSplit | None = None
    if read_validation:
        validation_split, validation_digests = _load_validation(ml, schema)
        digests += validation_digests
    return TrainingData(
        schema=schema,
        train=encode(schema, train_columns, train_labels),
        validation=validation_split,
        train_features=pd.DataFrame({name: train_columns[name] for name in features}),
        fingerprint=fingerprint_of(digests),
        train_rows_total=sum(int(s["rows"]) for s in stats),
    )


def _require_finite(channel: str, name: str, values: pd.Series) -> None:
    bad = int((~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
    if bad:
        raise TrainingInputError(
            f"channel {channel!r}: numeric column {name!r} has {bad} missing or non-finite value(s); "
            f"numeric features must be complete (the model does not impute)"
        )


def _load_validation(ml: MLRoot, schema: FeatureSchema) -> tuple[EncodedSplit, list[tuple[str, int, str]]]:
    read = _read_files(ml, "validation", channel_listing(ml, "validation"), schema.categorical)
    frame = pd.concat(read.frames, ignore_index=True) if len(read.frames) > 1 else read.frames[0]
    _require_target("validation", frame, schema.target)
    missing = [c for c in schema.features if c not in frame.columns]
    if missing:
        raise TrainingInputError(
            f"channel 'validation' lacks feature column(s) {', '.join(map(repr, missing))} that channel 'train' has"
        )
    columns: dict[str, pd.Series] = {}
    for name in schema.features:
        if name in schema.categorical:
            columns[name] = _as_strings(_column(frame, name))
            continue
        as_number = _as_numeric(_column(frame, name))
        if as_number is None:
            raise TrainingInputError(
                f"column {name!r} is numeric in channel 'train' but has non-numeric values in channel 'validation'"
            )
        _require_finite("validation", name, as_number)
        columns[name] = as_number
    labels = _label_strings("validation", _column(frame, schema.target), schema.target)
    if schema.regression:
        _, bad = _target_numbers(labels)
        if bad is not None:
            raise TrainingInputError(
                f"channel 'validation': target column {schema.target!r} has the value {bad!r}, which is not a finite "
                f"number; a regression target must be a number in every row"
            )
        return encode(schema, columns, labels), read.digests
    unseen = sorted(set(labels.tolist()) - set(schema.classes))
    if unseen:
        raise TrainingInputError(
            f"channel 'validation': target column {schema.target!r} has class(es) {unseen[:5]} absent from channel "
            f"'train'"
        )
    return encode(schema, columns, labels), read.digests


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
    targets = None
    if labels is None or schema.regression:
        label_index = np.zeros(n, dtype=np.int64)
        if labels is not None:
            targets = np.asarray(cast(pd.Series, pd.to_numeric(labels.str.strip())).to_numpy(), dtype=np.float32)
    else:
        lookup = {c: i for i, c in enumerate(schema.classes)}
        label_index = labels.map(lookup).to_numpy(dtype=np.int64)
    return EncodedSplit(numeric=numeric, categorical=raw, categorical_index=index, labels=label_index, targets=targets)
