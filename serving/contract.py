"""The model contract (docs/model-contract.md) as code: manifest.json's schema, versioned, and the graph check.

One module for both sides: serving validates every manifest it loads with `validate_manifest` and every graph
with `check_graph`; `python -m training package` validates what it writes with the same functions before it
writes the manifest, so a packaged model is one the server accepts. Standard library only, so the serving
image needs nothing more (and nothing here knows about the infrastructure code).

Errors are `ContractError`s whose `field` is the path of the offending value (`features[3].categories`) and
whose message says what was expected.

Extending: a new task is one entry in `TASK_OUTPUTS` (the graph output it must have) plus the checks of its
own fields in `_check_task_fields`; a new format version is one entry in `FORMAT_VERSIONS` and the changes it
makes to the checks below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMAT_VERSIONS = (1,)
"""Manifest format versions this code reads. A newer one is refused: its meaning is unknown here."""
CURRENT_FORMAT_VERSION = 1

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
FEATURE_TYPES = (NUMERIC_INPUT, CATEGORICAL_INPUT)
INPUT_DTYPES = {NUMERIC_INPUT: "float32", CATEGORICAL_INPUT: "string"}
"""Graph input name -> element type, as the manifest spells it."""

TASK_OUTPUTS: dict[str, str] = {
    "binary_classification": "probabilities",
    "multiclass_classification": "probabilities",
    "regression": "predictions",
}
"""Task -> the graph output serving reads for it (float32 [N, n] for classification, float32 [N] for
regression). Add a task here to extend the contract."""
OUTPUT_RANK: dict[str, int] = {"probabilities": 2, "predictions": 1}
"""Graph output -> its rank: class probabilities are [N, n_classes], regression predictions are [N]."""
CLASSIFICATION_TASKS = ("binary_classification", "multiclass_classification")

UNKNOWN_CATEGORY_POLICIES: dict[str, str] = {
    "map-to-unknown": "an unseen category maps to a reserved 'unknown' index inside the graph (our trainer)",
    "zero-encoding": "an unseen category one-hot encodes to all zeros (OneHotEncoder(handle_unknown='ignore'))",
}
"""What the graph does with a category it was not trained on; either way it answers, never rejects."""

PRECISIONS = ("fp32", "int8")

ORT_TYPES = {"float32": "tensor(float)", "string": "tensor(string)"}
"""Manifest dtype -> onnxruntime's NodeArg.type spelling."""


class ContractError(ValueError):
    """A manifest or graph breaks the contract; `field` is where, the message says what was expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the manifest (or the graph) describes it."""

    dtype: str
    width: int | None
    """The second dimension; None when the graph leaves it symbolic (or the tensor is rank 1)."""
    rank: int = 2


@dataclass(frozen=True)
class Contract:
    """A validated manifest: the fields serving relies on, with defaults filled in for older writers."""

    format_version: int
    task: str
    output: str
    """The graph output serving reads (TASK_OUTPUTS[task])."""
    n_numeric: int
    n_categorical: int
    classes: tuple[str, ...]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    files: dict[str, str | None]
    """Precision -> file name; None where the model has no graph of that precision (then `int8_note` says why)."""
    int8_note: str
    unknown_category_policy: str


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_list(field: str, value: Any, *, min_items: int = 0, unique: bool = False) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContractError(field, f"expected a list of strings, got {_type_name(value)}")
    if len(value) < min_items:
        raise ContractError(field, f"expected at least {min_items} entries, got {len(value)}")
    if unique and len(set(value)) != len(value):
        duplicated = sorted({v for v in value if value.count(v) > 1})
        raise ContractError(field, f"entries must be unique; repeated: {duplicated[:5]}")
    return list(value)


def _tensor(field: str, value: Any, dtype: str, rank: int = 2) -> TensorSpec:
    if not isinstance(value, dict):
        raise ContractError(field, f"expected an object with dtype and shape, got {_type_name(value)}")
    if value.get("dtype") != dtype:
        raise ContractError(f"{field}.dtype", f"expected {dtype!r}, got {value.get('dtype')!r}")
    shape = value.get("shape")
    if rank == 1:
        if shape != [None]:
            raise ContractError(f"{field}.shape", f"expected [null] (one value per row), got {shape!r}")
        return TensorSpec(dtype=dtype, width=None, rank=1)
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or shape[0] is not None
        or not (shape[1] is None or (_is_int(shape[1]) and shape[1] >= 0))
    ):
        raise ContractError(f"{field}.shape", f"expected [null, <columns>] (any batch size), got {shape!r}")
    return TensorSpec(dtype=dtype, width=shape[1])


def _check_feature(position: int, raw: Any) -> tuple[str, str, int]:
    field = f"features[{position}]"
    if not isinstance(raw, dict):
        raise ContractError(field, f"expected an object, got {_type_name(raw)}")
    name, kind, graph_input, index = raw.get("name"), raw.get("type"), raw.get("input"), raw.get("index")
    if not isinstance(name, str) or not name:
        raise ContractError(f"{field}.name", f"expected a non-empty string, got {name!r}")
    if kind not in FEATURE_TYPES:
        raise ContractError(f"{field}.type", f"expected 'numeric' or 'categorical', got {kind!r}")
    if graph_input != kind:
        raise ContractError(f"{field}.input", f"expected {kind!r} for a {kind} feature, got {graph_input!r}")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ContractError(f"{field}.index", f"expected a non-negative integer, got {index!r}")
    if kind == CATEGORICAL_INPUT:
        _string_list(f"{field}.categories", raw.get("categories", []))
    else:
        for key in ("mean", "std"):
            if key in raw and not (
                isinstance(raw[key], int | float) and not isinstance(raw[key], bool) and math.isfinite(raw[key])
            ):
                raise ContractError(f"{field}.{key}", f"expected a finite number, got {raw[key]!r}")
    return name, str(kind), index


def _check_task_fields(task: str, document: Mapping[str, Any]) -> tuple[str, ...]:
    """The task's own fields; returns the output's column labels (classes for classification)."""
    if task in CLASSIFICATION_TASKS:
        classes = _string_list("classes", document.get("classes"), min_items=2, unique=True)
        if task == "binary_classification" and len(classes) != 2:
            raise ContractError("classes", f"expected 2 classes for task 'binary_classification', got {len(classes)}")
        if task == "multiclass_classification" and len(classes) < 3:
            raise ContractError(
                "classes", f"expected at least 3 classes for task 'multiclass_classification', got {len(classes)}"
            )
        return tuple(classes)
    if task == "regression":
        if document.get("classes"):
            raise ContractError("classes", "a regression model (task 'regression') has no classes; remove the field")
        return ()
    raise ContractError("task", f"no checks for task {task!r}")  # pragma: no cover - TASK_OUTPUTS lists each


def validate_manifest(document: Any) -> Contract:
    """Validate a loaded manifest.json; raises ContractError naming the first field that is wrong.

    format_version 1 fields `task`, `inputs`, `outputs` and `unknown_category_policy` are optional (early
    writers left them out): when absent they are derived from `features` and `classes`; when present they must
    agree with them."""
    if not isinstance(document, dict):
        raise ContractError("manifest", f"expected a JSON object, got {_type_name(document)}")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ContractError("format_version", f"expected an integer, got {version!r}")
    if version not in FORMAT_VERSIONS:
        newer = version > max(FORMAT_VERSIONS)
        raise ContractError(
            "format_version",
            f"{version} is not supported: this code reads format_version {', '.join(map(str, FORMAT_VERSIONS))}"
            + ("; the model was written for a newer contract, serve it with a newer serving image" if newer else ""),
        )

    raw_features = document.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise ContractError("features", f"expected a non-empty list, got {_type_name(raw_features)}")
    checked = [_check_feature(i, raw) for i, raw in enumerate(raw_features)]
    names = [name for name, _, _ in checked]
    for position, name in enumerate(names):
        if names.index(name) != position:
            raise ContractError(f"features[{position}].name", f"{name!r} repeats features[{names.index(name)}]")
    counts: dict[str, int] = {}
    for kind in FEATURE_TYPES:
        indexes = sorted(index for _, k, index in checked if k == kind)
        if indexes != list(range(len(indexes))):
            raise ContractError(
                "features", f"{kind} feature indexes must be 0..{len(indexes) - 1} without gaps or repeats"
            )
        counts[kind] = len(indexes)
    if not counts[NUMERIC_INPUT]:
        raise ContractError("features", "expected at least one numeric feature (the graph always has `numeric`)")

    classes = document.get("classes")
    default_task = "binary_classification" if isinstance(classes, list) and len(classes) == 2 else None
    task = document.get("task", default_task or "multiclass_classification")
    if task not in TASK_OUTPUTS:
        raise ContractError("task", f"expected one of {', '.join(sorted(TASK_OUTPUTS))}, got {task!r}")
    labels = _check_task_fields(task, document)
    output = TASK_OUTPUTS[task]

    expected_inputs = {NUMERIC_INPUT: counts[NUMERIC_INPUT]}
    if counts[CATEGORICAL_INPUT]:
        expected_inputs[CATEGORICAL_INPUT] = counts[CATEGORICAL_INPUT]
    raw_inputs = document.get("inputs")
    inputs: dict[str, TensorSpec] = {}
    if raw_inputs is None:
        inputs = {name: TensorSpec(INPUT_DTYPES[name], width) for name, width in expected_inputs.items()}
    else:
        if not isinstance(raw_inputs, dict):
            raise ContractError("inputs", f"expected an object, got {_type_name(raw_inputs)}")
        if sorted(raw_inputs) != sorted(expected_inputs):
            raise ContractError(
                "inputs", f"expected {sorted(expected_inputs)} (from features), got {sorted(raw_inputs)}"
            )
        for name, width in expected_inputs.items():
            spec = _tensor(f"inputs.{name}", raw_inputs[name], INPUT_DTYPES[name])
            if spec.width != width:
                raise ContractError(
                    f"inputs.{name}.shape",
                    f"expected [null, {width}] ({width} {name} features), got width {spec.width}",
                )
            inputs[name] = spec
    raw_outputs = document.get("outputs")
    rank = OUTPUT_RANK[output]
    if raw_outputs is None:
        outputs = {output: TensorSpec("float32", len(labels) if rank == 2 else None, rank)}
    else:
        if not isinstance(raw_outputs, dict) or output not in raw_outputs:
            got = sorted(raw_outputs) if isinstance(raw_outputs, dict) else _type_name(raw_outputs)
            raise ContractError("outputs", f"expected an entry {output!r} for task {task!r}, got {got}")
        spec = _tensor(f"outputs.{output}", raw_outputs[output], "float32", rank)
        if rank == 2 and spec.width != len(labels):
            raise ContractError(
                f"outputs.{output}.shape",
                f"expected [null, {len(labels)}] (one column per class), got width {spec.width}",
            )
        outputs = {output: spec}

    policy = document.get("unknown_category_policy", "map-to-unknown")
    if policy not in UNKNOWN_CATEGORY_POLICIES:
        raise ContractError(
            "unknown_category_policy", f"expected one of {', '.join(UNKNOWN_CATEGORY_POLICIES)}, got {policy!r}"
        )

    raw_files = document.get("files")
    if not isinstance(raw_files, dict):
        raise ContractError(
            "files", f"expected an object mapping 'fp32' and 'int8' to file names, got {_type_name(raw_files)}"
        )
    fp32 = raw_files.get("fp32")
    if not isinstance(fp32, str) or not fp32:
        raise ContractError("files.fp32", f"expected a file name, got {fp32!r}")
    int8 = raw_files.get("int8")
    int8_note = ""
    if int8 is None:
        int8_note = raw_files.get("int8_note", "")
        if not isinstance(int8_note, str) or not int8_note:
            raise ContractError("files.int8_note", "expected a reason (a string) when files.int8 is null")
    elif not isinstance(int8, str) or not int8:
        raise ContractError("files.int8", f"expected a file name or null, got {int8!r}")
    for precision, name in (("fp32", fp32), ("int8", int8)):
        if isinstance(name, str) and (name.startswith("/") or ".." in name.split("/")):
            raise ContractError(f"files.{precision}", f"expected a file inside the model directory, got {name!r}")

    return Contract(
        format_version=version,
        task=task,
        output=output,
        n_numeric=counts[NUMERIC_INPUT],
        n_categorical=counts[CATEGORICAL_INPUT],
        classes=labels,
        inputs=inputs,
        outputs=outputs,
        files={"fp32": fp32, "int8": int8},
        int8_note=int8_note,
        unknown_category_policy=policy,
    )


def _width(shape: Sequence[Any], rank: int = 2) -> int | None:
    if len(shape) != rank:
        return -1
    return shape[1] if rank == 2 and _is_int(shape[1]) else None


def check_graph(
    contract: Contract,
    inputs: Sequence[tuple[str, str, Sequence[Any]]],
    outputs: Sequence[tuple[str, str, Sequence[Any]]],
) -> None:
    """Check a graph's inputs and outputs, as (name, onnxruntime type, shape) triples, against the manifest.

    The graph must have exactly the manifest's inputs, of its element types and rank 2 with the manifest's
    column count (or a symbolic one), and the task's output as float32 [N, n]. Raises ContractError naming
    `graph.inputs.<name>` or `graph.outputs.<name>`."""
    got_inputs = {name: (kind, shape) for name, kind, shape in inputs}
    if sorted(got_inputs) != sorted(contract.inputs):
        raise ContractError(
            "graph.inputs", f"the graph's inputs are {sorted(got_inputs)}, manifest.json says {sorted(contract.inputs)}"
        )
    for name, spec in contract.inputs.items():
        kind, shape = got_inputs[name]
        _check_tensor(f"graph.inputs.{name}", spec, kind, shape)
    got_outputs = {name: (kind, shape) for name, kind, shape in outputs}
    if contract.output not in got_outputs:
        raise ContractError(
            "graph.outputs",
            f"the graph has no output {contract.output!r} (task {contract.task!r} reads it); "
            f"it has {sorted(got_outputs)}",
        )
    kind, shape = got_outputs[contract.output]
    _check_tensor(f"graph.outputs.{contract.output}", contract.outputs[contract.output], kind, shape)


def _check_tensor(field: str, spec: TensorSpec, kind: str, shape: Sequence[Any]) -> None:
    if kind != ORT_TYPES[spec.dtype]:
        raise ContractError(field, f"the graph's type is {kind}, manifest.json says {ORT_TYPES[spec.dtype]}")
    width = _width(shape, spec.rank)
    if width == -1:
        expected = "[batch, columns]" if spec.rank == 2 else "[batch]"
        raise ContractError(field, f"the graph's shape is {list(shape)}, expected {expected}")
    if width is not None and spec.width is not None and width != spec.width:
        raise ContractError(field, f"the graph has {width} columns, manifest.json says {spec.width}")
