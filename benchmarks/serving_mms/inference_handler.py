"""model_fn / input_fn / predict_fn / output_fn for sagemaker-inference, as SageMaker's framework containers
write them: sagemaker-inference's own CSV decoder (numpy.genfromtxt), onnxruntime, JSON out."""

# This module runs in its own virtual environment under build/bench-envs (see bench_serving.py),
# so the project's type checker cannot see its imports.
# pyright: reportMissingImports=false

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
from sagemaker_inference import decoder
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler


class OnnxInferenceHandler(DefaultInferenceHandler):
    def default_model_fn(self, model_dir: str, context: Any = None) -> tuple[ort.InferenceSession, list[str]]:
        with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as file:
            classes = json.load(file)["classes"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        return session, classes

    def default_input_fn(self, input_data: Any, content_type: str, context: Any = None) -> np.ndarray:
        return np.atleast_2d(decoder.decode(input_data, content_type)).astype(np.float32)

    def default_predict_fn(self, data: np.ndarray, model: Any, context: Any = None) -> np.ndarray:
        session, _ = model
        return session.run(["probabilities"], {"numeric": data})[0]

    def default_output_fn(self, prediction: np.ndarray, accept: str, context: Any = None) -> str:
        return json.dumps({"predictions": [{"probabilities": p.tolist()} for p in prediction]})
