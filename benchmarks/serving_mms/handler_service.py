"""The handler service MMS loads (it must define exactly one class)."""

# This module runs in its own virtual environment under build/bench-envs (see bench_serving.py),
# so the project's type checker cannot see its imports.
# pyright: reportMissingImports=false

from __future__ import annotations

from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.transformer import Transformer

from benchmarks.serving_mms.inference_handler import OnnxInferenceHandler


class HandlerService(DefaultHandlerService):
    def __init__(self) -> None:
        super().__init__(transformer=Transformer(default_inference_handler=OnnxInferenceHandler()))
