"""ONNX export of a trained classifier or regressor: string->index encoders in front of the torch graph, int8
quantization, and onnxruntime scoring used for the parity check and evaluation.json."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from training.data import EncodedSplit, FeatureSchema
from training.model import MixedProbabilities, NumericProbabilities, TabularClassifier
from training.model_files import CATEGORICAL_INPUT, NUMERIC_INPUT, OUTPUT, PREDICTIONS_OUTPUT

LOG = logging.getLogger(__name__)

# Name of the torch graph's index input; after composition it is an internal tensor fed by the encoders.
_INDEX_TENSOR = "categorical_index"
_ML_DOMAIN = "ai.onnx.ml"
# LabelEncoder with keys_strings/values_int64s/default_int64 exists since ai.onnx.ml opset 2.
_ML_OPSET = 3


def output_name(schema: FeatureSchema) -> str:
    """The graph output of a model with this schema: `predictions` for regression, else `probabilities`."""
    return PREDICTIONS_OUTPUT if schema.regression else OUTPUT


def _torch_graph(model: TabularClassifier, schema: FeatureSchema, example: EncodedSplit) -> onnx.ModelProto:
    """Export the module (indices in, probabilities out) with a dynamic batch dimension."""
    model = model.cpu().eval()
    # At least two example rows, so the exporter does not specialise the batch dimension to 1.
    rows = np.arange(max(2, min(len(example), 8))) % len(example)
    numeric = torch.from_numpy(example.numeric[rows])
    batch = torch.export.Dim("batch")
    wrapper: torch.nn.Module
    if schema.categorical:
        wrapper = MixedProbabilities(model)
        args: tuple[torch.Tensor, ...] = (numeric, torch.from_numpy(example.categorical_index[rows]))
        names = [NUMERIC_INPUT, _INDEX_TENSOR]
        shapes: tuple[dict[int, object], ...] = ({0: batch}, {0: batch})
    else:
        wrapper = NumericProbabilities(model)
        args = (numeric,)
        names = [NUMERIC_INPUT]
        shapes = ({0: batch},)
    # The exporter warns about optional torchvision ops and deprecations that do not concern this graph.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper.eval(),
            args,
            dynamo=True,
            input_names=names,
            output_names=[output_name(schema)],
            dynamic_shapes=shapes,
            optimize=True,
            verbose=False,
        )
    exporter_log.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _prepend_encoders(graph_model: onnx.ModelProto, schema: FeatureSchema) -> onnx.ModelProto:
    """Add one ai.onnx.ml LabelEncoder per categorical column in front of the torch graph.

    Input `categorical` (string [N, n_categorical]) -> column j (Gather) -> LabelEncoder (category ->
    index, default 0 = unknown) -> Concat -> the torch graph's `categorical_index` input.
    """
    graph = graph_model.graph
    numeric_input = next(i for i in graph.input if i.name == NUMERIC_INPUT)
    batch_dim = numeric_input.type.tensor_type.shape.dim[0]
    batch: str | int | None = batch_dim.dim_param or (batch_dim.dim_value or None)
    n_cat = len(schema.categorical)

    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    encoded: list[str] = []
    for j, (name, categories) in enumerate(zip(schema.categorical, schema.categories, strict=True)):
        column_index = f"encoder_{j}_column"
        initializers.append(numpy_helper.from_array(np.array([j], dtype=np.int64), column_index))
        strings, codes = f"encoder_{j}_strings", f"encoder_{j}_codes"
        nodes.append(
            helper.make_node("Gather", [CATEGORICAL_INPUT, column_index], [strings], axis=1, name=f"encoder_{j}_gather")
        )
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [strings],
                [codes],
                domain=_ML_DOMAIN,
                name=f"encoder_{j}_{name}"[:200],
                keys_strings=list(categories),
                values_int64s=list(range(1, len(categories) + 1)),
                default_int64=0,
            )
        )
        encoded.append(codes)
    if n_cat == 1:
        nodes.append(helper.make_node("Identity", encoded, [_INDEX_TENSOR], name="encoder_output"))
    else:
        nodes.append(helper.make_node("Concat", encoded, [_INDEX_TENSOR], axis=1, name="encoder_concat"))

    new_inputs = [i for i in graph.input if i.name != _INDEX_TENSOR]
    new_inputs.append(helper.make_tensor_value_info(CATEGORICAL_INPUT, TensorProto.STRING, [batch, n_cat]))
    new_graph = helper.make_graph(
        nodes + list(graph.node),
        graph.name,
        new_inputs,
        list(graph.output),
        initializer=initializers + list(graph.initializer),
        value_info=list(graph.value_info),
    )
    opsets = [o for o in graph_model.opset_import if o.domain != _ML_DOMAIN]
    opsets.append(helper.make_opsetid(_ML_DOMAIN, _ML_OPSET))
    composed = helper.make_model(
        new_graph,
        opset_imports=opsets,
        ir_version=graph_model.ir_version,
        producer_name="mlplatform-training",
        functions=list(graph_model.functions),
    )
    return composed


def export_onnx(model: TabularClassifier, schema: FeatureSchema, example: EncodedSplit, path: Path) -> None:
    """Write the fp32 graph: raw numeric values (and raw category strings) in, probabilities out."""
    proto = _torch_graph(model, schema, example)
    if schema.categorical:
        proto = _prepend_encoders(proto, schema)
    kind = "regressor" if schema.regression else "classifier"
    proto.graph.doc_string = f"mlplatform tabular {kind}; see docs/model-contract.md"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic quantization: MatMul/Gemm weights int8, activations quantized on the fly."""
    # The quantizer logs advice on the root logger ("consider pre-processing"), which is about CNNs.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            fp32_path,
            int8_path,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    finally:
        root.setLevel(level)


def onnx_probabilities(path: Path, split: EncodedSplit, *, chunk: int = 65536) -> np.ndarray:
    """Score a split with onnxruntime on CPU, feeding the raw values a client would send: the graph's one output
    (class probabilities [N, K], or regression predictions [N])."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_names = {i.name for i in session.get_inputs()}
    output = session.get_outputs()[0].name
    out: list[np.ndarray] = []
    for start in range(0, len(split), chunk):
        feed: dict[str, np.ndarray] = {NUMERIC_INPUT: split.numeric[start : start + chunk]}
        if CATEGORICAL_INPUT in input_names:
            feed[CATEGORICAL_INPUT] = split.categorical[start : start + chunk]
        (probabilities,) = session.run([output], feed)
        out.append(np.asarray(probabilities, dtype=np.float32))
    return np.concatenate(out, axis=0)
