"""Models and data with known quality for the lifecycle tests: logistic-regression graphs whose weights are
chosen by hand (so a "worse" or a "biased" model is worse or biased by construction), and held-out rows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

FEATURES = ("signal", "proxy", "noise")


def held_out(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """`label` is 1 where `signal` > 0; `proxy` is the group (site b = 1) plus a little noise; `noise` is noise.
    The label does not depend on the site, so a model that uses `proxy` is unfair by construction."""
    rng = np.random.default_rng(seed)
    site = np.where(rng.random(rows) < 0.5, "a", "b")
    signal = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "signal": signal,
            "proxy": (site == "b").astype(float) + rng.normal(scale=0.05, size=rows),
            "noise": rng.normal(size=rows),
            "site": site,
            "label": (signal > 0).astype(int).astype(str),
        }
    )


def write_logistic_model(path: Path, weights: Sequence[float], bias: float = 0.0) -> Path:
    """A model directory whose fp32 (and "int8", the same graph) computes softmax([0, w.x + b])."""
    path.mkdir(parents=True, exist_ok=True)
    w = np.zeros((len(FEATURES), 2), dtype=np.float32)
    w[:, 1] = np.asarray(weights, dtype=np.float32)
    b = np.array([0.0, bias], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["numeric", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "logistic",
        [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [None, len(FEATURES)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path / "model.onnx")
    shutil.copy(path / "model.onnx", path / "model.int8.onnx")
    manifest = {
        "format_version": 1,
        "target": "label",
        "features": [
            {"name": n, "type": "numeric", "input": "numeric", "index": i, "mean": 0.0, "std": 1.0}
            for i, n in enumerate(FEATURES)
        ],
        "classes": ["0", "1"],
        "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path
