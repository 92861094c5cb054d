"""A Flask app in the style of SageMaker's scikit-learn container: /ping and /invocations, CSV decoded the way
sagemaker-inference's decoder does (numpy.genfromtxt), onnxruntime for the model, JSON out.

gunicorn -k gevent -w 1 --bind unix:SOCKET benchmarks.serving_flask.app:app   (BENCH_MODEL_DIR=...)
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
from flask import Flask, Response, request

_model_dir = os.environ["BENCH_MODEL_DIR"]
with open(os.path.join(_model_dir, "manifest.json"), encoding="utf-8") as _file:
    _classes = json.load(_file)["classes"]
_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_session = ort.InferenceSession(os.path.join(_model_dir, "model.onnx"), _options, providers=["CPUExecutionProvider"])

app = Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping() -> Response:
    return Response("", status=200, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations() -> Response:
    if request.content_type != "text/csv":
        return Response("text/csv only", status=415)
    rows = np.genfromtxt(io.StringIO(request.get_data(as_text=True)), dtype=np.float32, delimiter=",", ndmin=2)
    probabilities = np.asarray(_session.run(["probabilities"], {"numeric": rows})[0])
    predictions = [{"label": _classes[int(p.argmax())], "probabilities": p.tolist()} for p in probabilities]
    return Response(json.dumps({"predictions": predictions}), status=200, mimetype="application/json")
