"""Builds model directories that follow docs/model-contract.md with onnx.helper, for the serving tests and
benchmark: numeric input scaled in the graph, categorical strings through ai.onnx.ml LabelEncoder (unknown
values map to index 0), optional hidden layers, a linear layer and Softmax; plus the int8 graph and manifest."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

EMBEDDING_WIDTH = 3


def _const(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def build_graph(
    numeric: Sequence[str],
    categorical: Mapping[str, Sequence[str]],
    classes: Sequence[str],
    means: np.ndarray,
    stds: np.ndarray,
    hidden: Sequence[int] = (),
    seed: int = 0,
) -> onnx.ModelProto:
    """The graph: (numeric - mean) / std, concatenated with one embedding per categorical feature, an MLP
    with `hidden` ReLU layers, then Softmax."""
    rng = np.random.default_rng(seed)
    n_num = len(numeric)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = [
        _const("mean", means.astype(np.float32).reshape(1, n_num)),
        _const("std", stds.astype(np.float32).reshape(1, n_num)),
    ]
    nodes += [
        helper.make_node("Sub", ["numeric", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["scaled"]),
    ]
    parts = ["scaled"]
    width = n_num
    inputs = [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [None, n_num])]
    if categorical:
        inputs.append(helper.make_tensor_value_info("categorical", TensorProto.STRING, [None, len(categorical)]))
        for j, (name, cats) in enumerate(categorical.items()):
            inits += [
                _const(f"start_{j}", np.array([j], dtype=np.int64)),
                _const(f"end_{j}", np.array([j + 1], dtype=np.int64)),
                _const(f"axis_{j}", np.array([1], dtype=np.int64)),
                # Row 0 is the reserved "unknown" embedding.
                _const(f"embedding_{j}", rng.normal(0, 0.5, (len(cats) + 1, EMBEDDING_WIDTH)).astype(np.float32)),
            ]
            nodes += [
                helper.make_node("Slice", ["categorical", f"start_{j}", f"end_{j}", f"axis_{j}"], [f"column_{j}"]),
                helper.make_node(
                    "LabelEncoder",
                    [f"column_{j}"],
                    [f"code_{j}"],
                    domain="ai.onnx.ml",
                    keys_strings=list(cats),
                    values_int64s=list(range(1, len(cats) + 1)),
                    default_int64=0,
                    name=f"encode_{name}",
                ),
                helper.make_node("Gather", [f"embedding_{j}", f"code_{j}"], [f"embedded3_{j}"]),
                helper.make_node("Flatten", [f"embedded3_{j}"], [f"embedded_{j}"], axis=1),
            ]
            parts.append(f"embedded_{j}")
            width += EMBEDDING_WIDTH
    nodes.append(helper.make_node("Concat", parts, ["features"], axis=1))
    current = "features"
    for k, size in enumerate([*hidden, len(classes)]):
        inits += [
            _const(f"w_{k}", (rng.normal(0, 1.0 / np.sqrt(width), (width, size))).astype(np.float32)),
            _const(f"b_{k}", rng.normal(0, 0.1, size).astype(np.float32)),
        ]
        nodes.append(helper.make_node("Gemm", [current, f"w_{k}", f"b_{k}"], [f"dense_{k}"]))
        current = f"dense_{k}"
        if k < len(hidden):
            nodes.append(helper.make_node("Relu", [current], [f"relu_{k}"]))
            current = f"relu_{k}"
        width = size
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "fixture",
        inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(classes)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model_dir(
    path: Path,
    *,
    numeric: Sequence[str] = ("age", "income", "score"),
    categorical: Mapping[str, Sequence[str]] | None = None,
    classes: Sequence[str] = ("0", "1"),
    hidden: Sequence[int] = (),
    seed: int = 0,
) -> Path:
    """Write model.onnx, model.int8.onnx and manifest.json into `path` and return it.

    Features are in request order: the numeric ones first, then the categorical ones.
    """
    categorical = dict(categorical if categorical is not None else {"colour": ("blue", "red", "green")})
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 10, len(numeric))
    stds = rng.uniform(1, 5, len(numeric))
    model = build_graph(numeric, categorical, classes, means, stds, hidden, seed)
    onnx.save(model, path / "model.onnx")
    quantize_dynamic(path / "model.onnx", path / "model.int8.onnx", weight_type=QuantType.QInt8)
    features: list[dict[str, object]] = [
        {"name": n, "type": "numeric", "input": "numeric", "index": i, "mean": float(means[i]), "std": float(stds[i])}
        for i, n in enumerate(numeric)
    ]
    features += [
        {"name": n, "type": "categorical", "input": "categorical", "index": j, "categories": list(cats)}
        for j, (n, cats) in enumerate(categorical.items())
    ]
    manifest = {
        "format_version": 1,
        "task": "binary_classification" if len(classes) == 2 else "multiclass_classification",
        "target": "label",
        "features": features,
        "classes": list(classes),
        "inputs": {
            "numeric": {"dtype": "float32", "shape": [None, len(numeric)]},
            **({"categorical": {"dtype": "string", "shape": [None, len(categorical)]}} if categorical else {}),
        },
        "outputs": {"probabilities": {"dtype": "float32", "shape": [None, len(classes)]}},
        "unknown_category_policy": "map-to-unknown",
        "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
        "versions": {"onnx": onnx.__version__},
        "data_fingerprint": "fixture",
        "metrics": {},
        "hyperparameters": {"hidden": list(hidden), "seed": seed},
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path
