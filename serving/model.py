"""Reads a model directory (docs/model-contract.md) and scores decoded rows with onnxruntime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from serving.contract import Contract, ContractError, check_graph, validate_manifest

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
    files: dict[str, str | None]
    """Precision -> graph file; None where the model has none of that precision (contract.int8_note says why)."""
    numeric_columns: tuple[int, ...]
    """Request columns that fill graph input `numeric`, in graph column order."""
    categorical_columns: tuple[int, ...]
    """Request columns that fill graph input `categorical`, in graph column order."""
    contract: Contract
    """The validated manifest (serving/contract.py): task, output, graph inputs and outputs."""

    @property
    def regression(self) -> bool:
        """`task: regression`: no classes, the graph's output `predictions` is float32 [N] in the target's units."""
        return self.contract.task == "regression"

    @property
    def output(self) -> str:
        """The graph output serving reads."""
        return self.contract.output

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
    """Validate a loaded manifest.json document (serving/contract.py); `path` is only used in error messages,
    which name the offending field, e.g. `features[3].categories: expected a list of strings`."""
    try:
        contract = validate_manifest(document)
    except ContractError as error:
        raise _fail(path, str(error)) from None
    features: list[FeatureSpec] = []
    for raw in document["features"]:
        kind = raw["type"]
        categories = tuple(raw.get("categories", [])) if kind == "categorical" else ()
        features.append(FeatureSpec(name=raw["name"], kind=kind, index=raw["index"], categories=categories))
    columns: dict[str, tuple[int, ...]] = {}
    for kind in ("numeric", "categorical"):
        by_index = {f.index: position for position, f in enumerate(features) if f.kind == kind}
        columns[kind] = tuple(by_index[i] for i in range(len(by_index)))
    return ModelManifest(
        features=tuple(features),
        classes=contract.classes,
        files=dict(contract.files),
        numeric_columns=columns["numeric"],
        categorical_columns=columns["categorical"],
        contract=contract,
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
    name = manifest.files[precision]
    if name is None:
        raise _fail(
            model_dir / "manifest.json",
            f"files.{precision} is null: this model has no {precision} graph ({manifest.contract.int8_note}); "
            f"serve it with precision fp32",
        )
    path = model_dir / name
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
        try:
            check_graph(
                self.manifest.contract,
                [(i.name, i.type, i.shape) for i in self.session.get_inputs()],
                [(o.name, o.type, o.shape) for o in self.session.get_outputs()],
            )
        except ContractError as error:
            raise _fail(path, f"the graph does not match manifest.json: {error}") from None
        self.precision = precision
        self._outputs = [self.manifest.contract.output]
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
