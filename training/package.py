"""`python -m training package`: bring your own tabular classifier (docs/model-contract.md, "Bring your own model").

A fitted scikit-learn pipeline or estimator, including XGBoost's `XGBClassifier` and LightGBM's `LGBMClassifier`
(the scikit-learn API of both), saved with joblib or pickle, becomes a model directory like the trainer's:

1. The data folder is read by the trainer's own reader (`training.data.load_training_data`): the same
   numeric/categorical inference, the same checks, the same fingerprint.
2. The model is converted with skl2onnx (XGBoost and LightGBM through onnxmltools' converters registered with
   skl2onnx, as sklearn-onnx's tutorial "Convert a pipeline with a LightGBM classifier" /
   "... with a XGBoost model" does), probabilities as a plain tensor (`zipmap: False`).
3. The converted graph is wrapped so it follows the serving contract: inputs `numeric` float32 [N, n_numeric]
   and `categorical` string [N, n_categorical] are split into the per-column inputs the converted pipeline
   takes; its only output is `probabilities`.
4. Parity: onnxruntime's answers must match the library's `predict_proba` on the validation split, and again
   with every categorical value replaced by one never seen in training (the manifest's
   `unknown_category_policy: zero-encoding` claim), within `PARITY_TOLERANCE`.
5. evaluation.json, the drift baseline and the model-quality baseline are written by the trainer's functions;
   manifest.json last, after `serving.contract` accepted it and the graph.

Loading a pickle runs code from the file: package only models you trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from serving.contract import ContractError, check_graph, validate_manifest
from training.artifacts import (
    PARITY_TOLERANCE,  # max abs probability difference, library vs onnxruntime: the trainer's export tolerance
    _write_json,
    manifest_features,
    prepare_model_directory,
    write_evaluation_baseline,
)
from training.data import FeatureSchema, TrainingData, load_training_data
from training.errors import TrainingInputError
from training.layout import MLRoot

LOG = logging.getLogger(__name__)

UNSEEN_CATEGORY = "__mlplatform_unseen_category__"
"""Stands in for a category the model never saw, in the unknown-category parity check."""
NUMERIC_INPUT, CATEGORICAL_INPUT, OUTPUT = "numeric", "categorical", "probabilities"
RESERVED_NAMES = (NUMERIC_INPUT, CATEGORICAL_INPUT, OUTPUT, "label")
UNLIMITED_CATEGORIES = 1_000_000
"""The manifest lists every category seen in training: what the model's encoders were fitted on."""
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
SUPPORTED = (
    "scikit-learn classifiers skl2onnx converts (alone or as the last step of a Pipeline), "
    "xgboost.XGBClassifier and lightgbm.LGBMClassifier"
)


class PackageError(TrainingInputError):
    """The model or data cannot be packaged; the message says what was wrong and what is allowed."""


class DataDir(MLRoot):
    """A data folder holding the channels `train/` and `validation/` directly (or an ml root with input/data/)."""

    def channel(self, name: str) -> Path:
        nested = self.root / "input" / "data" / name
        return nested if nested.is_dir() else self.root / name


@dataclass(frozen=True)
class Packaged:
    """What `package` wrote, for the command line's summary."""

    out_dir: Path
    library: str
    parity: float
    unseen_parity: float
    metrics: dict[str, float]


def load_model(path: Path) -> Any:
    """The fitted model from a joblib or pickle file."""
    import joblib

    if not path.is_file():
        raise PackageError(f"--model {str(path)!r}: no such file")
    try:
        return joblib.load(path)
    except Exception as error:  # unpickling raises whatever the pickled classes raise
        raise PackageError(
            f"--model {str(path)!r}: cannot load it with joblib ({type(error).__name__}: {error}); "
            f"expected a fitted scikit-learn pipeline or estimator saved with joblib.dump or pickle"
        ) from None


def _final_estimator(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def _library(estimator: Any) -> str:
    root = type(estimator).__module__.split(".")[0]
    return {"sklearn": "scikit-learn"}.get(root, root)


def _selects_columns_by_name(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    return isinstance(first, ColumnTransformer)


def _check_encoders(model: Any) -> None:
    """Every OneHotEncoder must ignore unknown categories: the graph answers them, never fails on them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    def walk(node: Any, where: str) -> None:
        if isinstance(node, Pipeline):
            for name, step in node.steps:
                walk(step, f"{where}.{name}" if where else name)
        elif isinstance(node, ColumnTransformer):
            for name, transformer, _ in node.transformers_:
                walk(transformer, f"{where}.{name}" if where else name)
        elif isinstance(node, OneHotEncoder) and node.handle_unknown != "ignore":
            raise PackageError(
                f"OneHotEncoder {where or 'model'!r} has handle_unknown={node.handle_unknown!r}: a category not "
                f"seen in training would fail the request; refit it with handle_unknown='ignore' (an unseen "
                f"category then encodes to all zeros, the manifest's unknown_category_policy 'zero-encoding')"
            )

    walk(model, "")


def _check_model(model: Any, data: TrainingData) -> tuple[str, ...]:
    """The model's classes as strings, in its probability column order; refuses what cannot be packaged."""
    estimator = _final_estimator(model)
    if not hasattr(model, "predict_proba") or not hasattr(estimator, "classes_"):
        raise PackageError(
            f"unsupported estimator {type(estimator).__module__}.{type(estimator).__name__}: package takes fitted "
            f"classifiers with predict_proba; supported: {SUPPORTED}"
        )
    schema = data.schema
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        model_features = [str(n) for n in names]
        if sorted(model_features) != sorted(schema.features):
            missing = sorted(set(model_features) - set(schema.features))
            extra = sorted(set(schema.features) - set(model_features))
            raise PackageError(
                f"mismatched features: the model was fitted on {model_features}; the data's feature columns (all "
                f"but target {schema.target!r}) are {list(schema.features)}"
                + (f"; missing from the data: {missing}" if missing else "")
                + (f"; not in the model: {extra}" if extra else "")
            )
    elif schema.categorical:
        raise PackageError(
            f"the data has categorical columns {list(schema.categorical)} but the model does not select columns by "
            f"name; fit a Pipeline whose first step is a ColumnTransformer on a pandas DataFrame"
        )
    if _selects_columns_by_name(model) and names is None:
        raise PackageError("the model's ColumnTransformer was fitted without column names; fit it on a DataFrame")
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and n_in != len(schema.features):
        raise PackageError(
            f"mismatched features: the model takes {n_in} features, the data has {len(schema.features)} "
            f"({', '.join(schema.features[:12])})"
        )
    clashes = [n for n in schema.features if n in RESERVED_NAMES]
    if clashes and _selects_columns_by_name(model):
        raise PackageError(f"feature column(s) {clashes} clash with graph names {list(RESERVED_NAMES)}; rename them")
    classes = tuple(str(c) for c in estimator.classes_)
    if sorted(classes) != sorted(schema.classes):
        raise PackageError(
            f"mismatched classes: the model predicts {list(classes)}, target column {schema.target!r} of the data "
            f"holds {list(schema.classes)}; fit the model on the data's labels (as strings they must be equal)"
        )
    _check_encoders(model)
    return classes


def encoder_categories(model: Any) -> dict[str, tuple[str, ...]]:
    """Per column, the categories a ColumnTransformer's OneHotEncoder was fitted with (`categories_`): what the
    graph encodes, so what serving must not report as unknown. Columns encoded otherwise are absent."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    found: dict[str, tuple[str, ...]] = {}
    if not isinstance(first, ColumnTransformer):
        return found
    for _, transformer, columns in first.transformers_:
        if isinstance(transformer, OneHotEncoder) and isinstance(columns, list | tuple):
            for column, categories in zip(columns, transformer.categories_, strict=True):
                found[str(column)] = tuple(str(c) for c in categories if isinstance(c, str))
    return found


def _register_converters() -> None:
    """Let skl2onnx convert XGBClassifier / LGBMClassifier with onnxmltools' converters (sklearn-onnx tutorial,
    "Convert a pipeline with a LightGBM classifier" and "... with a XGBoost model")."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if "xgboost" in sys.modules:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=options,
        )
    if "lightgbm" in sys.modules:
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=options,
        )


def convert(model: Any, data: TrainingData) -> onnx.ModelProto:
    """The served graph: the converted model behind the contract's `numeric` / `categorical` inputs."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    _register_converters()
    schema = data.schema
    by_name = _selects_columns_by_name(model)
    if by_name:
        initial: list[tuple[str, Any]] = [(n, FloatTensorType([None, 1])) for n in schema.numeric]
        initial += [(n, StringTensorType([None, 1])) for n in schema.categorical]
    else:
        initial = [(NUMERIC_INPUT, FloatTensorType([None, len(schema.numeric)]))]
    estimator = _final_estimator(model)
    try:
        result = convert_sklearn(
            model, initial_types=initial, options={id(estimator): {"zipmap": False}}, target_opset=TARGET_OPSET
        )
    except Exception as error:  # skl2onnx raises RuntimeError/MissingShapeCalculator/... for what it cannot do
        raise PackageError(
            f"cannot convert {type(estimator).__module__}.{type(estimator).__name__} to ONNX "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); supported: {SUPPORTED}"
        ) from None
    if not isinstance(result, onnx.ModelProto):  # convert_sklearn returns a ModelProto unless asked otherwise
        raise PackageError(f"skl2onnx returned {type(result).__name__}, expected an ONNX model")
    converted = result
    outputs = [o.name for o in converted.graph.output]
    if OUTPUT not in outputs:
        raise PackageError(f"the converted graph has outputs {outputs}, none named {OUTPUT!r}")
    if by_name:
        expected = [name for name, _ in initial]
        got = [i.name for i in converted.graph.input]
        if got != expected:
            raise PackageError(f"the converter renamed the inputs {expected} to {got}; rename the columns")
        converted = _contract_inputs(converted, schema.numeric, schema.categorical)
    graph = converted.graph
    keep = [o for o in graph.output if o.name == OUTPUT]
    del graph.output[:]
    graph.output.extend(keep)
    graph.doc_string = "mlplatform bring-your-own model; see docs/model-contract.md"
    onnx.checker.check_model(converted, full_check=True)
    return converted


def _contract_inputs(
    converted: onnx.ModelProto, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> onnx.ModelProto:
    """Replace the per-column inputs by the contract's two matrices: column j of `numeric` (Gather on axis 1,
    indices [j], so it stays [N, 1]) becomes the input that was named after the j-th numeric feature."""
    graph = converted.graph
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    for source, names in ((NUMERIC_INPUT, numeric), (CATEGORICAL_INPUT, categorical)):
        for j, name in enumerate(names):
            index = f"mlplatform_{source}_column_{j}"
            initializers.append(numpy_helper.from_array(np.array([j], dtype=np.int64), index))
            nodes.append(helper.make_node("Gather", [source, index], [name], axis=1, name=f"{index}_gather"))
    inputs = [helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.FLOAT, [None, len(numeric)])]
    if categorical:
        inputs.append(helper.make_tensor_value_info(CATEGORICAL_INPUT, TensorProto.STRING, [None, len(categorical)]))
    new_graph = helper.make_graph(
        nodes + list(graph.node),
        graph.name,
        inputs,
        list(graph.output),
        initializer=initializers + list(graph.initializer),
        value_info=list(graph.value_info),
    )
    return helper.make_model(
        new_graph,
        opset_imports=list(converted.opset_import),
        ir_version=converted.ir_version,
        producer_name="mlplatform-package",
    )


def _with_encoder_categories(schema: FeatureSchema, fitted: dict[str, tuple[str, ...]]) -> FeatureSchema:
    """The manifest lists the categories the model's encoder knows, where it has one; else those of the data."""
    categories = tuple(fitted.get(name, seen) for name, seen in zip(schema.categorical, schema.categories, strict=True))
    return dataclasses.replace(schema, categories=categories)


def _frame(data: TrainingData, *, unseen: bool) -> Any:
    """The validation split as the library sees it: numeric values as float32 (what the graph receives)."""
    import pandas as pd

    assert data.validation is not None
    split, schema = data.validation, data.schema
    columns: dict[str, Any] = {}
    for name in schema.features:
        if name in schema.numeric:
            columns[name] = split.numeric[:, schema.numeric.index(name)].astype(np.float32)
        else:
            values = split.categorical[:, schema.categorical.index(name)]
            columns[name] = np.full(len(values), UNSEEN_CATEGORY, dtype=object) if unseen else values
    return pd.DataFrame(columns)


def _session(graph: Path | bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    source = graph if isinstance(graph, bytes) else str(graph)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _onnx_probabilities(session: onnxruntime.InferenceSession, frame: Any, data: TrainingData) -> np.ndarray:
    schema = data.schema
    feed = {NUMERIC_INPUT: frame[list(schema.numeric)].to_numpy(dtype=np.float32)}
    if schema.categorical:
        feed[CATEGORICAL_INPUT] = frame[list(schema.categorical)].to_numpy(dtype=object)
    (probabilities,) = session.run([OUTPUT], feed)
    return np.asarray(probabilities, dtype=np.float32)


def _library_probabilities(model: Any, frame: Any, by_name: bool) -> np.ndarray:
    return np.asarray(model.predict_proba(frame if by_name else frame.to_numpy(dtype=np.float32)), dtype=np.float64)


def _parity(model: Any, session: onnxruntime.InferenceSession, data: TrainingData, *, unseen: bool) -> float:
    frame = _frame(data, unseen=unseen)
    try:
        expected = _library_probabilities(model, frame, _selects_columns_by_name(model))
    except Exception as error:
        raise PackageError(
            f"the model's predict_proba fails on the validation split{' with unseen categories' if unseen else ''} "
            f"({type(error).__name__}: {error})"
        ) from None
    got = _onnx_probabilities(session, frame, data)
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= PARITY_TOLERANCE:
        rows = int((np.abs(got - expected).max(axis=1) > PARITY_TOLERANCE).sum())
        raise PackageError(
            f"the ONNX graph differs from the model's predict_proba by {difference:.3g} on {rows} of {len(frame)} "
            f"validation rows{' with every category replaced by an unseen one' if unseen else ''} "
            f"(allowed <= {PARITY_TOLERANCE:g}); the converter does not reproduce this model"
        )
    return difference


def _versions(library: str) -> dict[str, str]:
    """Versions of what produced the graph: the converters, scikit-learn and the model's own library."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    boosters = {"xgboost": ("xgboost", "xgboost-cpu"), "lightgbm": ("lightgbm",)}
    for dist in ("skl2onnx", "onnxmltools", "scikit-learn", *boosters.get(library, ())):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return versions


def package(model_path: Path, data_dir: Path, out_dir: Path, target: str = "label") -> Packaged:
    """Convert, verify and describe a fitted model; raises PackageError with what was wrong."""
    from training.evaluation import classification_metrics
    from training.model_files import EVALUATION_FILE, FP32_FILE, INT8_FILE, MANIFEST_FILE

    if not data_dir.is_dir():
        raise PackageError(f"--data {str(data_dir)!r}: no such folder; it holds train/ and validation/ (CSV/Parquet)")
    data = load_training_data(DataDir(data_dir), target, UNLIMITED_CATEGORIES)
    if data.validation is None:
        raise PackageError(f"--data {str(data_dir)!r}: no validation split was read")
    model = load_model(model_path)
    classes = _check_model(model, data)
    library = _library(_final_estimator(model))
    proto = convert(model, data)

    # Parity before anything is written: a model that fails it leaves the output folder as it was.
    session = _session(proto.SerializeToString())
    parity = _parity(model, session, data, unseen=False)
    unseen_parity = _parity(model, session, data, unseen=True) if data.schema.categorical else 0.0
    LOG.info("max abs difference %s vs onnxruntime: %.3g (unseen categories %.3g)", library, parity, unseen_parity)
    prepare_model_directory(data, out_dir)  # drops an old manifest (written again last), writes the drift baseline
    fp32_path = out_dir / FP32_FILE
    onnx.save(proto, str(fp32_path))

    # Probability columns in the data's class order, as the trainer's metrics and baselines expect them.
    order = [classes.index(c) for c in data.schema.classes]
    assert data.validation is not None
    fp32_probabilities = _onnx_probabilities(session, _frame(data, unseen=False), data)[:, order]
    fp32 = classification_metrics(fp32_probabilities, data.validation.labels)
    int8_path = out_dir / INT8_FILE
    int8_path.unlink(missing_ok=True)
    quantizable = sorted({n.op_type for n in proto.graph.node} & {"MatMul", "Gemm"})
    files: dict[str, Any] = {"fp32": FP32_FILE, "int8": None}
    int8: dict[str, float] | None = None
    if quantizable:
        from training.export import quantize_int8  # imports torch; only graphs with MatMul/Gemm get here

        quantize_int8(fp32_path, int8_path)
        int8_probabilities = _onnx_probabilities(_session(int8_path), _frame(data, unseen=False), data)[:, order]
        int8 = classification_metrics(int8_probabilities, data.validation.labels)
        files["int8"] = INT8_FILE
    else:
        ops = sorted({n.op_type for n in proto.graph.node if n.domain == "ai.onnx.ml"})
        files["int8_note"] = (
            f"no int8 graph: dynamic quantization rewrites MatMul/Gemm weights and this graph has none "
            f"(its model is {', '.join(ops) or 'other'} operators)"
        )
    evaluation = {
        "validation_rows": len(data.validation),
        "fp32": fp32,
        "int8": int8,
        "parity": {
            f"max_abs_diff_{library}_vs_onnxruntime": parity,
            "max_abs_diff_unseen_categories": unseen_parity,
            "tolerance": PARITY_TOLERANCE,
        },
    }
    write_evaluation_baseline(fp32_probabilities, data, out_dir / "baseline")

    schema = data.schema
    inputs: dict[str, Any] = {NUMERIC_INPUT: {"dtype": "float32", "shape": [None, len(schema.numeric)]}}
    if schema.categorical:
        inputs[CATEGORICAL_INPUT] = {"dtype": "string", "shape": [None, len(schema.categorical)]}
    estimator = _final_estimator(model)
    metrics = {"val_auc": fp32["auc"], "val_accuracy": fp32["accuracy"], "val_log_loss": fp32["log_loss"]}
    manifest = {
        "format_version": 1,
        "task": "binary_classification" if len(classes) == 2 else "multiclass_classification",
        "target": schema.target,
        "features": manifest_features(_with_encoder_categories(schema, encoder_categories(model))),
        "classes": list(classes),
        "inputs": inputs,
        "outputs": {OUTPUT: {"dtype": "float32", "shape": [None, len(classes)]}},
        "unknown_category_policy": "zero-encoding",
        "files": files,
        "versions": _versions(library),
        "data_fingerprint": data.fingerprint,
        "metrics": metrics,
        "model": {
            "library": library,
            "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
            "pipeline": type(model).__name__,
            "source_file": model_path.name,
            "source_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        },
    }
    try:
        contract = validate_manifest(manifest)
        check_graph(
            contract,
            [(i.name, i.type, i.shape) for i in session.get_inputs()],
            [(o.name, o.type, o.shape) for o in session.get_outputs()],
        )
    except ContractError as error:  # a bug here, not the user's: still say what the server would refuse
        raise PackageError(f"the packaged model would be refused by serving: {error}") from None
    # The edge bundle (training/edge.py), as the trainer writes it: the stack's training check requires it.
    from training.edge import write_edge_bundle

    edge = write_edge_bundle(out_dir, manifest)
    edge["metric_delta_vs_fp32"] = None if int8 is None else {name: int8[name] - fp32[name] for name in fp32}
    evaluation["edge"] = edge
    _write_json(out_dir / EVALUATION_FILE, evaluation)
    _write_json(out_dir / MANIFEST_FILE, manifest)  # last: its presence says the directory is complete
    return Packaged(out_dir, library, parity, unseen_parity, metrics)
