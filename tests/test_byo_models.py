"""Bring your own model, end to end, once per library: train a small scikit-learn / XGBoost / LightGBM pipeline
with numeric and categorical columns, `python -m training package` it, serve it with the real server process
over HTTP (CSV and JSON), compare the answers with the library's own `predict_proba`, and run the monitor over
the captures of that traffic.

The pipelines follow sklearn-onnx's documented pattern for boosters inside a pipeline (sklearn-onnx docs,
tutorial "Convert a pipeline with a LightGBM classifier" and "Convert a pipeline with a XGBoost model":
`update_registered_converter` with onnxmltools' `convert_lightgbm` / `convert_xgboost`); the categorical column
is one-hot encoded in the pipeline with `OneHotEncoder(handle_unknown="ignore")`, so a category never seen in
training encodes to all zeros (scikit-learn docs, `OneHotEncoder`, `handle_unknown`) — what the packaged graph
must do too, and what the manifest's `unknown_category_policy: zero-encoding` says. The one-hot output is
dense (`sparse_output=False`): XGBoost reads a sparse matrix's absent entries as missing, not as 0
(dmlc/xgboost issue #1634, a maintainer's answer: sparse elements are treated as missing by the tree
booster), which an ONNX graph fed dense zeros would not reproduce.

Captures are written the way SageMaker writes an endpoint's data capture (monitoring.capture_writer): the
request body as the client sent it and the server's answer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.cli import main as monitor
from serving.model import read_manifest
from tests.serving_server_process import ServerProcess
from training.__main__ import main as training
from training.model_files import COMPLETE_MODEL_FILES

NUMERIC = ["x1", "x2"]
CATEGORICAL = ["colour", "size"]
REQUEST_ORDER = ["x1", "colour", "x2", "size"]
"""The data's column order (label last): numeric and categorical interleaved, so request order differs from the
order of either graph input."""
UNSEEN = "ultraviolet"
SHIFT = 6.0
"""Training standard deviations added to x1 in the drifted window."""


def _frame(rows: int, seed: int, labels: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(0, 1, rows).round(3),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "x2": rng.normal(5, 2, rows).round(3),
            "size": rng.choice(["S", "M", "L", "XL"], rows),
        }
    )
    score = (
        frame["x1"].to_numpy()
        + 1.5 * (frame["colour"] == "red").to_numpy()
        - 0.8 * (frame["size"] == "S").to_numpy()
        + 0.3 * (frame["x2"].to_numpy() - 5)
        + rng.normal(0, 0.4, rows)
    )
    frame["label"] = labels(score)
    return frame


def _binary_ints(score: np.ndarray) -> np.ndarray:
    return (score > 0.5).astype(int)


def _binary_words(score: np.ndarray) -> np.ndarray:
    return np.where(score > 0.5, "yes", "no")


def _three_words(score: np.ndarray) -> np.ndarray:
    return np.select([score < 0.0, score < 1.0], ["low", "mid"], "high")


def _preprocess(scale: bool) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler() if scale else "passthrough", NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )


def _sklearn() -> Any:
    return Pipeline([("prep", _preprocess(True)), ("clf", LogisticRegression(max_iter=500))])


def _xgboost() -> Any:
    return Pipeline([("prep", _preprocess(False)), ("clf", XGBClassifier(n_estimators=25, max_depth=3))])


def _lightgbm() -> Any:
    booster = LGBMClassifier(n_estimators=25, num_leaves=7, min_child_samples=5, verbose=-1)
    return Pipeline([("prep", _preprocess(False)), ("clf", booster)])


LIBRARIES = {
    "sklearn": (_sklearn, _three_words, "multiclass_classification"),
    "xgboost": (_xgboost, _binary_ints, "binary_classification"),
    "lightgbm": (_lightgbm, _binary_words, "binary_classification"),
}


def _layout(root: Path, labels: Callable[[np.ndarray], np.ndarray]) -> Path:
    data = root / "data"
    for channel, rows, seed in (("train", 600, 1), ("validation", 150, 2)):
        (data / channel).mkdir(parents=True)
        _frame(rows, seed, labels).to_csv(data / channel / f"{channel}.csv", index=False)
    return data


def _csv_body(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(frame[REQUEST_ORDER].itertuples(index=False))
    return out.getvalue().encode()


def _library_answer(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """predict_proba on the values the server received: numbers as float32 (the contract's numeric input)."""
    typed = frame[REQUEST_ORDER].astype({n: np.float32 for n in NUMERIC})
    return model.predict_proba(typed)


def _capture(root: Path, body: bytes, answer: bytes, when: dt.datetime) -> None:
    rows = list(csv.reader(io.StringIO(body.decode())))
    record = capture_record(rows, when, encoding="CSV", output=answer.decode().split("\n")[0])
    write_capture_file(root, [record], when, endpoint="byo", variant="primary")


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_byo_model_is_packaged_served_and_monitored(library: str, tmp_path: Path) -> None:
    build, labels, task = LIBRARIES[library]
    data = _layout(tmp_path, labels)
    train = pd.read_csv(data / "train" / "train.csv")
    model = build().fit(train[REQUEST_ORDER], train["label"])
    model_file = tmp_path / f"{library}.joblib"
    joblib.dump(model, model_file)

    out = tmp_path / "model"
    assert training(["package", "--model", str(model_file), "--data", str(data), "--output", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["task"] == task
    assert manifest["classes"] == [str(c) for c in model.classes_]
    assert [f["name"] for f in manifest["features"]] == REQUEST_ORDER
    assert [(f["type"], f["index"]) for f in manifest["features"]] == [
        ("numeric", 0),
        ("categorical", 0),
        ("numeric", 1),
        ("categorical", 1),
    ]
    assert manifest["unknown_category_policy"] == "zero-encoding"
    assert manifest["files"]["int8"] is None and "MatMul/Gemm" in manifest["files"]["int8_note"]
    assert manifest["model"]["library"] == {"sklearn": "scikit-learn"}.get(library, library)
    assert read_manifest(out).feature_names == tuple(REQUEST_ORDER)
    for name in ("statistics.json", "constraints.json", "model_quality/constraints.json"):
        assert (out / "baseline" / name).is_file(), name
    # Everything the stack's training check requires of a model directory (components/training_check.py),
    # the edge bundle included.
    assert [name for name in COMPLETE_MODEL_FILES if not (out / name).is_file()] == []

    validation = pd.read_csv(data / "validation" / "validation.csv", dtype={n: str for n in CATEGORICAL})
    evaluation = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    expected = _library_answer(model, validation)
    accuracy = float((np.asarray(model.classes_)[expected.argmax(axis=1)] == validation["label"].to_numpy()).mean())
    assert evaluation["fp32"]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert accuracy > 0.6  # the model learned something; a class swap would show

    unseen = validation.head(20).copy()
    unseen["colour"] = UNSEEN

    server = ServerProcess(out, tmp_path / "server.log")
    captures = tmp_path / "capture"
    normal_time = dt.datetime(2026, 1, 5, 10, 15, tzinfo=dt.UTC)
    try:
        server.wait_until(200)
        # CSV in, CSV out: label, then one probability per class in manifest order.
        body = _csv_body(validation)
        status, _, answer = server.request(
            "POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        assert status == 200, answer
        lines = [line.split(",") for line in answer.decode().strip().split("\n")]
        served = np.array([[float(v) for v in line[1:]] for line in lines])
        np.testing.assert_allclose(served, expected, atol=1e-5)
        assert [line[0] for line in lines] == [manifest["classes"][i] for i in expected.argmax(axis=1)]
        for row in range(len(validation)):  # one request per row, as an endpoint's clients send them
            single = body.split(b"\n")[row] + b"\n"
            _capture(captures / "normal", single, lines[row][0].encode(), normal_time + dt.timedelta(seconds=row))

        # JSON objects keyed by feature name, including a category the model never saw: answered, not refused,
        # with the library's own answer for it (all-zero one-hot), and the unseen value named.
        instances = [
            {"x1": float(x1), "colour": str(colour), "x2": float(x2), "size": str(size)}
            for x1, colour, x2, size in unseen[REQUEST_ORDER].itertuples(index=False)
        ]
        status, _, answer = server.request(
            "POST", "/invocations", json.dumps({"instances": instances}).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, answer
        document = json.loads(answer)
        served = np.array([p["probabilities"] for p in document["predictions"]])
        np.testing.assert_allclose(served, _library_answer(model, unseen), atol=1e-5)
        assert all(p["unknown_categories"] == ["colour"] for p in document["predictions"]), document["predictions"][0]

        # A drifted window: x1 moved by SHIFT training standard deviations.
        drifted = validation.copy()
        x1 = next(f for f in manifest["features"] if f["name"] == "x1")
        drifted["x1"] = (drifted["x1"] + SHIFT * x1["std"]).round(3)
        body = _csv_body(drifted)
        status, _, answer = server.request(
            "POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        assert status == 200, answer
        np.testing.assert_allclose(
            np.array([[float(v) for v in line.split(",")[1:]] for line in answer.decode().strip().split("\n")]),
            _library_answer(model, drifted),
            atol=1e-5,
        )
        _capture(captures / "drifted", body, answer, normal_time)
    finally:
        assert server.terminate() == 0, server.log()

    results = {}
    for phase in ("normal", "drifted"):
        report = tmp_path / phase / "report.html"
        code = monitor(
            ["analyze", "--baseline", str(out / "baseline"), "--capture", str(captures / phase),
             "--output", str(tmp_path / phase), "--report", str(report)]
        )  # fmt: skip
        assert code == 0
        assert report.is_file()
        statistics = json.loads((tmp_path / phase / "statistics.json").read_text(encoding="utf-8"))
        assert statistics["dataset"]["item_count"] == len(validation)
        assert {f["name"] for f in statistics["features"]} == set(REQUEST_ORDER)
        violations = json.loads((tmp_path / phase / "constraint_violations.json").read_text(encoding="utf-8"))
        results[phase] = {v["feature_name"] for v in violations["violations"]}
    assert results == {"normal": set(), "drifted": {"x1"}}


def _packaged(tmp_path: Path, model: Any, labels: Callable[[np.ndarray], np.ndarray] = _binary_ints) -> list[str]:
    data = _layout(tmp_path, labels)
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    return ["package", "--model", str(model_file), "--data", str(data), "--output", str(tmp_path / "out")]


def _fitted(model: Any, tmp_path: Path, columns: list[str] = REQUEST_ORDER) -> Any:
    frame = _frame(200, 7, _binary_ints)
    return model.fit(frame[columns], frame["label"])


def test_package_refuses_an_encoder_that_fails_on_unseen_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = ColumnTransformer(
        [("num", "passthrough", NUMERIC), ("cat", OneHotEncoder(sparse_output=False), CATEGORICAL)]
    )
    model = _fitted(Pipeline([("prep", encoder), ("clf", LogisticRegression())]), tmp_path)
    assert training(_packaged(tmp_path, model)) == 2
    err = capsys.readouterr().err
    assert "OneHotEncoder 'prep.cat' has handle_unknown='error'" in err
    assert "handle_unknown='ignore'" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_package_refuses_an_unsupported_estimator_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.linear_model import LinearRegression

    model = Pipeline([("prep", _preprocess(False)), ("reg", LinearRegression())])
    model = _fitted(model, tmp_path)
    assert training(_packaged(tmp_path, model)) == 2
    err = capsys.readouterr().err
    assert "unsupported estimator sklearn.linear_model._base.LinearRegression" in err
    assert "supported: scikit-learn classifiers" in err


def test_package_names_a_missing_target_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _packaged(tmp_path, _fitted(_sklearn(), tmp_path))
    assert training([*args, "--target", "outcome"]) == 2
    assert "'outcome'" in capsys.readouterr().err


def test_package_names_mismatched_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prep = ColumnTransformer(
        [
            ("num", "passthrough", ["x1"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    model = _fitted(Pipeline([("prep", prep), ("clf", LogisticRegression())]), tmp_path, ["x1", "colour", "size"])
    assert training(_packaged(tmp_path, model)) == 2
    err = capsys.readouterr().err
    assert "mismatched features" in err and "not in the model: ['x2']" in err


def test_package_names_mismatched_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _packaged(tmp_path, _fitted(_sklearn(), tmp_path), labels=_binary_words)
    assert training(args) == 2
    assert "mismatched classes: the model predicts ['0', '1']" in capsys.readouterr().err


def test_package_refuses_a_model_its_graph_does_not_reproduce_and_keeps_the_old_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """XGBoost's tree booster reads a sparse matrix's absent entries as missing values, not zeros (dmlc/xgboost
    issue #1634; a forced-sparse ColumnTransformer output makes every one-hot zero absent), while the ONNX graph
    compares dense zeros with the split thresholds: the answers differ and the parity check must say so."""
    prep = ColumnTransformer(
        [("num", "passthrough", NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)],
        sparse_threshold=1.0,
    )
    model = _fitted(Pipeline([("prep", prep), ("clf", XGBClassifier(n_estimators=25, max_depth=3))]), tmp_path)
    args = _packaged(tmp_path, model)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}", encoding="utf-8")  # a previous model's: must survive
    assert training(args) == 2
    err = capsys.readouterr().err
    assert "the ONNX graph differs from the model's predict_proba by" in err
    assert "(allowed <= 0.0001)" in err
    assert (out / "manifest.json").read_text(encoding="utf-8") == "{}"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_gate_evaluates_a_packaged_model_that_has_no_int8_graph(tmp_path: Path) -> None:
    """The lifecycle's evaluate step (training/gate.py) reads `files.int8: null` as "no int8 figures" and scores
    the fp32 graph the same as package's evaluation did."""
    args = _packaged(tmp_path, _fitted(_sklearn(), tmp_path))
    assert training(args) == 0
    ml = tmp_path / "ml"
    (ml / "input" / "data" / "validation").mkdir(parents=True)
    source = tmp_path / "data" / "validation" / "validation.csv"
    (ml / "input" / "data" / "validation" / "validation.csv").write_bytes(source.read_bytes())
    record_path = tmp_path / "record.json"
    code = training(
        ["evaluate", "--ml-root", str(ml), "--candidate", str(tmp_path / "out"), "--record", str(record_path)]
    )
    assert code == 0
    record = json.loads(record_path.read_text(encoding="utf-8"))
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text(encoding="utf-8"))
    candidate = record["evaluation"]["candidate"]
    assert candidate["int8_minus_fp32"] is None
    assert candidate["accuracy"] == pytest.approx(evaluation["fp32"]["accuracy"], abs=1e-9)


def test_package_and_gate_load_without_torch() -> None:
    """`python -m training package` and the lifecycle's gate run on machines that need no PyTorch: importing
    them must not import it (torch is imported inside the trainer's functions that use it)."""
    import subprocess
    import sys

    code = "import sys, training.__main__, training.package, training.gate; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_manifest_lists_the_categories_the_encoder_knows(tmp_path: Path) -> None:
    """An encoder fitted with a category the training rows lack still encodes it: the manifest (what serving
    reports unknown categories against) lists the encoder's `categories_`, not only the data's."""
    colours = ["blue", "green", "purple", "red"]
    known: Any = [colours, ["L", "M", "S", "XL"]]  # scikit-learn types the argument as str ("auto")
    encoder = OneHotEncoder(categories=known, handle_unknown="ignore", sparse_output=False)
    prep = ColumnTransformer([("num", "passthrough", NUMERIC), ("cat", encoder, CATEGORICAL)])
    model = _fitted(Pipeline([("prep", prep), ("clf", LogisticRegression())]), tmp_path)
    assert training(_packaged(tmp_path, model)) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    categories = {f["name"]: f["categories"] for f in manifest["features"] if f["type"] == "categorical"}
    assert categories == {"colour": colours, "size": ["L", "M", "S", "XL"]}
