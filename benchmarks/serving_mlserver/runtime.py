"""An MLServer runtime for the ONNX model. The CSV payload travels as one BYTES element of a V2 inference
request: MLServer's custom REST handlers cannot take a raw body with its default parallel worker pool (the
request object is sent to the worker by pickling, which fails), and the brief asks for default settings.

mlserver start DIR   (DIR holds settings.json and model-settings.json naming this class)
"""

# This module runs in its own virtual environment under build/bench-envs (see bench_serving.py),
# so the project's type checker cannot see its imports.
# pyright: reportMissingImports=false

from __future__ import annotations

import io
import json
import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        model_dir = os.environ["BENCH_MODEL_DIR"]
        with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as file:
            self._classes = json.load(file)["classes"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # The CSV payload arrives as one BYTES element of a V2 request (MLServer's own protocol).
        text = StringCodec.decode_input(payload.inputs[0])[0]
        rows = np.loadtxt(io.StringIO(text), dtype=np.float32, delimiter=",", ndmin=2)
        probabilities = self._session.run(["probabilities"], {"numeric": rows})[0]
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("probabilities", probabilities)]
        )
