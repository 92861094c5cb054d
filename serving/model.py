"""Reads a model directory (docs/model-contract.md) and scores decoded rows with onnxruntime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import onnxruntime as ort

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")


class ModelDirectoryError(Exception):
    """The model directory does not follow docs/model-contract.md; the message says what and where."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a request row, and where it goes in the graph's inputs."""

    name: str
    kind: Literal["numeric", "categorical"]
    index: int
    """Column of the graph input (`numeric` or `categorical`) that this feature fills."""
    categories: tuple[str, ...]
    """Categories seen in training (categorical features only); others are answered as "unknown"."""


@dataclass(frozen=True)
class ModelManifest:
    """The parts of manifest.json that serving needs, validated."""

    features: tuple[FeatureSpec, ...]
    """In request order: a CSV row or JSON list row holds the features in exactly this order."""
    classes: tuple[str, ...]
    files: dict[str, str]
    numeric_columns: tuple[int, ...]
    """Request columns that fill graph input `numeric`, in graph column order."""
    categorical_columns: tuple[int, ...]
    """Request columns that fill graph input `categorical`, in graph column order."""
    regression: bool = False
    """`task: regression`: no classes, the graph's output `predictions` is float32 [N] in the target's units."""

    @property
    def output(self) -> str:
        """The graph output serving reads."""
        return "predictions" if self.regression else "probabilities"

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def numeric_in_request_order(self) -> bool:
        """True when the request's columns are exactly the graph's numeric input (no reordering needed)."""
        return self.numeric_columns == tuple(range(len(self.features)))

    @cached_property
    def row_shape(self) -> str:
        """What one request row must hold, for error messages."""
        names = self.feature_names
        shown = ", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + ", ..."
        return f"{len(names)} values in this order: {shown}"


@dataclass(frozen=True)
class Batch:
    """Decoded rows, shaped like the graph's inputs."""

    numeric: np.ndarray
    """float32 [N, n_numeric], finite."""
    categorical: np.ndarray | None
    """object (str) [N, n_categorical], or None when the model has no categorical features."""

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])


def _fail(path: Path, what: str) -> ModelDirectoryError:
    return ModelDirectoryError(f"{path}: {what} (see docs/model-contract.md)")


def parse_manifest(document: Any, path: Path) -> ModelManifest:
    """Validate a loaded manifest.json document; `path` is only used in error messages."""
    if not isinstance(document, dict):
        raise _fail(path, "manifest must be a JSON object")
    if document.get("format_version") != 1:
        raise _fail(path, f"format_version must be 1, got {document.get('format_version')!r}")
    raw_features = document.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise _fail(path, "features must be a non-empty list")
    features: list[FeatureSpec] = []
    for position, raw in enumerate(raw_features):
        if not isinstance(raw, dict):
            raise _fail(path, f"features[{position}] must be an object")
        name, kind, graph_input, index = raw.get("name"), raw.get("type"), raw.get("input"), raw.get("index")
        if not isinstance(name, str) or not name:
            raise _fail(path, f"features[{position}].name must be a non-empty string")
        if kind not in ("numeric", "categorical"):
            raise _fail(path, f"features[{position}].type must be 'numeric' or 'categorical', got {kind!r}")
        if graph_input != kind:
            raise _fail(path, f"features[{position}].input must be {kind!r} for a {kind} feature")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise _fail(path, f"features[{position}].index must be a non-negative integer")
        categories: tuple[str, ...] = ()
        if kind == "categorical":
            raw_categories = raw.get("categories", [])
            if not isinstance(raw_categories, list) or not all(isinstance(c, str) for c in raw_categories):
                raise _fail(path, f"features[{position}].categories must be a list of strings")
            categories = tuple(raw_categories)
        features.append(FeatureSpec(name=name, kind=kind, index=index, categories=categories))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise _fail(path, "feature names must be unique")
    columns: dict[str, tuple[int, ...]] = {}
    for kind in ("numeric", "categorical"):
        by_index = {f.index: position for position, f in enumerate(features) if f.kind == kind}
        count = sum(1 for f in features if f.kind == kind)
        if sorted(by_index) != list(range(count)):
            raise _fail(path, f"{kind} feature indexes must be 0..{count - 1} without gaps or repeats")
        columns[kind] = tuple(by_index[i] for i in range(count))
    if not columns["numeric"]:
        # The contract's graph always has a `numeric` input; a model without one is outside it.
        raise _fail(path, "the model needs at least one numeric feature")
    regression = document.get("task") == "regression"
    classes = document.get("classes", []) if regression else document.get("classes")
    if regression and classes:
        raise _fail(path, "a regression model (task: regression) has no classes")
    if not regression and (
        not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes)
    ):
        raise _fail(path, "classes must be a list of at least two strings")
    files = document.get("files")
    if not isinstance(files, dict) or not all(isinstance(files.get(p), str) for p in PRECISIONS):
        raise _fail(path, "files must map 'fp32' and 'int8' to file names")
    return ModelManifest(
        features=tuple(features),
        classes=tuple(cast(list[str], classes)),
        regression=regression,
        files={p: files[p] for p in PRECISIONS},
        numeric_columns=columns["numeric"],
        categorical_columns=columns["categorical"],
    )


def read_manifest(model_dir: Path) -> ModelManifest:
    """Read and validate `model_dir/manifest.json`."""
    path = model_dir / "manifest.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "manifest.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(path, f"cannot read manifest.json: {error}") from None
    return parse_manifest(document, path)


def model_file(model_dir: Path, manifest: ModelManifest, precision: Precision) -> Path:
    """The graph file for `precision`; it must exist."""
    path = model_dir / manifest.files[precision]
    if not path.is_file():
        raise _fail(path, f"the {precision} model file named in manifest.json is missing")
    return path


class LoadedModel:
    """An onnxruntime session for one worker process, fed by `Batch`es."""

    def __init__(self, model_dir: Path, precision: Precision) -> None:
        self.manifest = read_manifest(model_dir)
        path = model_file(model_dir, self.manifest, precision)
        options = ort.SessionOptions()
        # One worker process per core: a second intra-op thread would only compete with the other workers.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several unrelated types for a bad file
            raise _fail(path, f"onnxruntime cannot load the graph: {error}") from None
        inputs = {i.name for i in self.session.get_inputs()}
        expected = {"numeric"} | ({"categorical"} if self.manifest.categorical_columns else set())
        if inputs != expected:
            raise _fail(path, f"graph inputs are {sorted(inputs)}, manifest.json implies {sorted(expected)}")
        output = self.manifest.output
        if output not in {o.name for o in self.session.get_outputs()}:
            raise _fail(path, f"graph has no output named {output!r}")
        self.precision = precision
        self._outputs = [output]
        # The binding's run skips the Python wrapper's per-call checks (a few microseconds of a 1-row request);
        # inputs are already validated here. Falls back to the public method if the binding changes.
        binding = getattr(self.session, "_sess", None)
        self._run = getattr(binding, "run", None) or (lambda outputs, feeds, _: self.session.run(outputs, feeds))

    def predict(self, batch: Batch) -> np.ndarray:
        """Class probabilities, float32 [N, n_classes], columns in manifest `classes` order; for a regression
        model the predictions, float32 [N]."""
        feeds: dict[str, np.ndarray] = {"numeric": batch.numeric}
        if batch.categorical is not None:
            feeds["categorical"] = batch.categorical
        (probabilities,) = self._run(self._outputs, feeds, None)
        return np.asarray(probabilities, dtype=np.float32)
