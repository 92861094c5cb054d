"""The versioned model contract (serving/contract.py): each wrong manifest field is named by its path, and the
server refuses a model it cannot serve (a newer format, a graph that does not match its manifest, a precision
the model does not have) with a message that says why, before it answers any request."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from serving.contract import TASK_OUTPUTS, ContractError, check_graph, validate_manifest
from serving.model import LoadedModel, ModelDirectoryError
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # numeric age, income, score (features[0..2]); categorical colour (features[3]); classes "0", "1".
    return write_model_dir(tmp_path_factory.mktemp("contract") / "model")


def _manifest(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `document` with the value at `path` ("features.3.categories") replaced, or removed for ...."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is Ellipsis:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format_version", "1", r"^format_version: expected an integer, got '1'$"),
        ("format_version", 0, r"^format_version: 0 is not supported: this code reads format_version 1$"),
        ("features.3.categories", "red", r"^features\[3\]\.categories: expected a list of strings, got str$"),
        ("features.3.categories", ["red", 1], r"^features\[3\]\.categories: expected a list of strings, got list$"),
        ("features.1.type", "text", r"^features\[1\]\.type: expected 'numeric' or 'categorical', got 'text'$"),
        ("features.1.input", "categorical", r"^features\[1\]\.input: expected 'numeric' for a numeric feature"),
        ("features.2.index", -1, r"^features\[2\]\.index: expected a non-negative integer, got -1$"),
        ("features.0.name", "", r"^features\[0\]\.name: expected a non-empty string, got ''$"),
        ("features.2.name", "age", r"^features\[2\]\.name: 'age' repeats features\[0\]$"),
        ("features.0.std", "wide", r"^features\[0\]\.std: expected a finite number, got 'wide'$"),
        ("features.2.index", 5, r"^features: numeric feature indexes must be 0\.\.2 without gaps or repeats$"),
        ("features", [], r"^features: expected a non-empty list, got list$"),
        (
            "task",
            "ranking",
            r"^task: expected one of binary_classification, multiclass_classification, regression, got 'ranking'$",
        ),
        ("classes", ["0"], r"^classes: expected at least 2 entries, got 1$"),
        ("classes", ["0", "0"], r"^classes: entries must be unique; repeated: \['0'\]$"),
        ("classes", ["0", "1", "2"], r"^classes: expected 2 classes for task 'binary_classification', got 3$"),
        ("inputs.numeric.shape", [None, 4], r"^inputs\.numeric\.shape: expected \[null, 3\] \(3 numeric features\)"),
        ("inputs.numeric.shape", [8, 3], r"^inputs\.numeric\.shape: expected \[null, <columns>\]"),
        ("inputs.categorical.dtype", "float32", r"^inputs\.categorical\.dtype: expected 'string', got 'float32'$"),
        (
            "inputs.categorical",
            ...,
            r"^inputs: expected \['categorical', 'numeric'\] \(from features\), got \['numeric'\]$",
        ),
        ("outputs.probabilities.shape", [None, 3], r"^outputs\.probabilities\.shape: expected \[null, 2\]"),
        ("outputs", {"scores": {}}, r"^outputs: expected an entry 'probabilities' for task 'binary_classification'"),
        ("unknown_category_policy", "drop", r"^unknown_category_policy: expected one of map-to-unknown, zero-encoding"),
        ("files.fp32", ..., r"^files\.fp32: expected a file name, got None$"),
        ("files.fp32", "../model.onnx", r"^files\.fp32: expected a file inside the model directory"),
        ("files.int8", None, r"^files\.int8_note: expected a reason \(a string\) when files\.int8 is null$"),
        ("files.int8", 8, r"^files\.int8: expected a file name or null, got 8$"),
    ],
)
def test_each_contract_error_names_the_field(model_dir: Path, path: str, value: Any, message: str) -> None:
    document = _manifest(model_dir)
    validate_manifest(document)  # the unchanged manifest is valid: only the change below breaks it
    with pytest.raises(ContractError, match=message) as caught:
        validate_manifest(_set(document, path, value))
    assert caught.value.field == str(caught.value).split(": ")[0]


def test_a_newer_format_version_is_refused_saying_a_newer_server_is_needed(model_dir: Path) -> None:
    with pytest.raises(ContractError, match=r"2 is not supported.*written for a newer contract, serve it with a newer"):
        validate_manifest(_set(_manifest(model_dir), "format_version", 2))


def test_format_version_1_manifests_without_the_later_fields_still_load(model_dir: Path) -> None:
    """Early writers (and the serving tests' manifests) leave out task, inputs, outputs and the policy."""
    document = _manifest(model_dir)
    for key in ("task", "inputs", "outputs", "unknown_category_policy", "versions", "metrics"):
        del document[key]
    contract = validate_manifest(document)
    assert (contract.task, contract.output, contract.unknown_category_policy) == (
        "binary_classification",
        "probabilities",
        "map-to-unknown",
    )
    assert {name: (spec.dtype, spec.width) for name, spec in contract.inputs.items()} == {
        "numeric": ("float32", 3),
        "categorical": ("string", 1),
    }


def test_each_task_names_the_graph_output_serving_reads() -> None:
    assert TASK_OUTPUTS == {
        "binary_classification": "probabilities",
        "multiclass_classification": "probabilities",
        "regression": "predictions",
    }


def _copy_dir(model_dir: Path, into: Path, manifest: dict[str, Any]) -> Path:
    into.mkdir()
    for name in ("model.onnx", "model.int8.onnx"):
        (into / name).write_bytes((model_dir / name).read_bytes())
    (into / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return into


def test_graph_with_other_inputs_than_the_manifest_is_refused(model_dir: Path, tmp_path: Path) -> None:
    manifest = _manifest(model_dir)
    manifest["features"].insert(3, {"name": "height", "type": "numeric", "input": "numeric", "index": 3})
    manifest["inputs"]["numeric"]["shape"] = [None, 4]
    directory = _copy_dir(model_dir, tmp_path / "model", manifest)
    with pytest.raises(
        ModelDirectoryError,
        match=r"model\.onnx: the graph does not match manifest\.json: graph\.inputs\.numeric: "
        r"the graph has 3 columns, manifest\.json says 4",
    ):
        LoadedModel(directory, "fp32")


def test_graph_without_the_task_output_is_refused(model_dir: Path, tmp_path: Path) -> None:
    directory = _copy_dir(model_dir, tmp_path / "model", _manifest(model_dir))
    graph = onnx.load(str(directory / "model.onnx"))
    for node in graph.graph.node:
        node.output[:] = ["scores" if o == "probabilities" else o for o in node.output]
    graph.graph.output[0].name = "scores"
    onnx.save(graph, str(directory / "model.onnx"))
    with pytest.raises(ModelDirectoryError, match=r"graph\.outputs: the graph has no output 'probabilities'"):
        LoadedModel(directory, "fp32")


def test_missing_int8_graph_is_refused_for_int8_naming_the_reason(model_dir: Path, tmp_path: Path) -> None:
    manifest = _manifest(model_dir)
    manifest["files"] = {"fp32": "model.onnx", "int8": None, "int8_note": "no MatMul/Gemm to quantize"}
    directory = _copy_dir(model_dir, tmp_path / "model", manifest)
    assert LoadedModel(directory, "fp32").manifest.files["int8"] is None
    with pytest.raises(
        ModelDirectoryError,
        match=r"files\.int8 is null: this model has no int8 graph \(no MatMul/Gemm to quantize\); "
        r"serve it with precision fp32",
    ):
        LoadedModel(directory, "int8")


@pytest.mark.parametrize(
    ("change", "precision", "reason"),
    [
        ("newer format", "fp32", "format_version: 2 is not supported"),
        ("graph mismatch", "fp32", "graph.inputs.numeric: the graph has 3 columns, manifest.json says 4"),
        ("no int8", "int8", "files.int8 is null: this model has no int8 graph"),
    ],
)
def test_server_refuses_a_model_it_cannot_serve_and_says_why(
    model_dir: Path, tmp_path: Path, change: str, precision: str, reason: str
) -> None:
    manifest = _manifest(model_dir)
    if change == "newer format":
        manifest["format_version"] = 2
    elif change == "graph mismatch":
        manifest["features"].append({"name": "height", "type": "numeric", "input": "numeric", "index": 3})
        manifest["inputs"]["numeric"]["shape"] = [None, 4]
    else:
        manifest["files"] = {"fp32": "model.onnx", "int8": None, "int8_note": "tree ensemble"}
    directory = _copy_dir(model_dir, tmp_path / "model", manifest)
    server = ServerProcess(directory, tmp_path / "server.log", extra_args=("--precision", precision))
    code = server.process.wait(60)
    server.terminate()
    assert code != 0
    assert reason in server.log()


def _regression(document: dict[str, Any]) -> dict[str, Any]:
    """The fixture's manifest as a regression model's (what training/artifacts.py `build_manifest` writes)."""
    changed = copy.deepcopy(document)
    changed["task"] = "regression"
    del changed["classes"]
    changed["outputs"] = {"predictions": {"dtype": "float32", "shape": [None]}}
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("classes", ["0", "1"], r"^classes: a regression model \(task 'regression'\) has no classes"),
        (
            "outputs.predictions.shape",
            [None, 1],
            r"^outputs\.predictions\.shape: expected \[null\] \(one value per row\)",
        ),
        ("outputs", {"probabilities": {}}, r"^outputs: expected an entry 'predictions' for task 'regression'"),
    ],
)
def test_a_regression_manifest_is_checked_for_its_own_fields(
    model_dir: Path, path: str, value: Any, message: str
) -> None:
    """Regression (task `regression`): no classes, output `predictions` float32 [N] (docs/model-contract.md)."""
    document = _regression(_manifest(model_dir))
    contract = validate_manifest(document)
    assert (contract.task, contract.output, contract.classes) == ("regression", "predictions", ())
    with pytest.raises(ContractError, match=message):
        validate_manifest(_set(document, path, value))


def test_a_regression_graph_must_answer_one_value_per_row(model_dir: Path) -> None:
    """check_graph: a regressor's `predictions` is rank 1; a [N, 1] output is refused, naming the graph output."""
    contract = validate_manifest(_regression(_manifest(model_dir)))
    inputs = [("numeric", "tensor(float)", ["N", 3]), ("categorical", "tensor(string)", ["N", 1])]
    check_graph(contract, inputs, [("predictions", "tensor(float)", ["N"])])
    with pytest.raises(
        ContractError, match=r"^graph\.outputs\.predictions: the graph's shape is \['N', 1\], expected \[batch\]$"
    ):
        check_graph(contract, inputs, [("predictions", "tensor(float)", ["N", 1])])
