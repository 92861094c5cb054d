"""The edge bundle (training/edge.py, docs/model-contract.md "Edge bundle"): score.py runs with nothing but
onnxruntime and numpy on its import path, answers what serving answers, refuses a modified bundle, and the
archive's bytes depend on the model only.

onnxruntime's own runtime import needs numpy alone (its wheel metadata also lists flatbuffers, packaging, protobuf
and sympy, used by its tools and quantizer, not by `import onnxruntime` + `InferenceSession`:
microsoft/onnxruntime onnxruntime/__init__.py imports only `onnxruntime.capi` modules); the subprocess below proves
it by running score.py with `-S -s` (no site-packages) and a PYTHONPATH holding links to those two packages only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from serving.codec import decode_csv
from serving.model import LoadedModel, read_manifest
from training.__main__ import main
from training.demo import regression_frame, split_frame, synthetic_frame, write_layout
from training.edge import write_edge_bundle
from training.layout import MLRoot

HP = {"epochs": "3", "batch_size": "128", "hidden_units": "32,16", "num_threads": "1"}


def _train(root: Path, frame: pd.DataFrame, *, stratify: bool) -> MLRoot:
    ml = MLRoot(root)
    train, validation = split_frame(frame, seed=5, stratify=stratify)
    write_layout(ml, train, validation, HP)
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    return ml


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    """Three classes, numeric and categorical features."""
    frame = synthetic_frame(1200, numeric=4, categorical=2, classes=3, seed=11)
    return _train(tmp_path_factory.mktemp("edge-classifier"), frame, stratify=True)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> MLRoot:
    frame = regression_frame(1200, numeric=4, categorical=1, seed=11)
    return _train(tmp_path_factory.mktemp("edge-regressor"), frame, stratify=False)


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding links to onnxruntime and numpy (and numpy's bundled libraries) only."""
    site = Path(np.__file__).parent.parent
    assert Path(onnxruntime.__file__).parent.parent == site
    bare = tmp_path_factory.mktemp("bare-site")
    for name in ("onnxruntime", "numpy", "numpy.libs"):
        if (site / name).exists():
            (bare / name).symlink_to(site / name)
    return bare


def _rows(ml: MLRoot, limit: int = 50) -> str:
    """Validation rows as a client sends them: CSV, no header, features in manifest order."""
    manifest = json.loads((ml.model / "manifest.json").read_text(encoding="utf-8"))
    frame = pd.read_csv(next(ml.channel("validation").glob("*.csv")))
    names = [f["name"] for f in manifest["features"]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(frame[names].head(limit).astype(str).itertuples(index=False))
    return out.getvalue()


def _score(bundle: Path, bare: Path, rows: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(bare)}
    return subprocess.run(
        [sys.executable, "-S", "-s", str(bundle / "score.py")],
        input=rows,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _serving_answers(ml: MLRoot, rows: str) -> np.ndarray:
    model = LoadedModel(ml.model, "int8")
    return model.predict(decode_csv(rows.encode(), read_manifest(ml.model)))


def test_score_py_answers_what_serving_answers_for_a_classifier_with_only_onnxruntime_and_numpy(
    classifier: MLRoot, bare_path: Path
) -> None:
    rows = _rows(classifier)
    done = _score(classifier.model / "edge", bare_path, rows)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    expected = _serving_answers(classifier, rows)
    classes = read_manifest(classifier.model).classes
    assert len(answers) == len(expected) == 50
    got = np.array([[a["probabilities"][c] for c in classes] for a in answers], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert [a["label"] for a in answers] == [classes[int(i)] for i in expected.argmax(axis=1)]


def test_score_py_answers_what_serving_answers_for_a_regressor(regressor: MLRoot, bare_path: Path) -> None:
    rows = _rows(regressor)
    done = _score(regressor.model / "edge", bare_path, rows)
    assert done.returncode == 0, done.stderr
    got = np.array([json.loads(line)["prediction"] for line in done.stdout.splitlines()], dtype=np.float32)
    np.testing.assert_array_equal(got, _serving_answers(regressor, rows))


def test_the_bundle_holds_the_int8_graph_and_evaluation_records_its_size_and_delta(classifier: MLRoot) -> None:
    edge = classifier.model / "edge"
    assert sorted(p.name for p in edge.iterdir()) == [
        "README.md",
        "SHA256SUMS",
        "manifest.json",
        "model.int8.onnx",
        "score.py",
    ]
    assert (edge / "model.int8.onnx").read_bytes() == (classifier.model / "model.int8.onnx").read_bytes()
    for line in (edge / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((edge / name).read_bytes()).hexdigest() == digest
    evaluation = json.loads((classifier.model / "evaluation.json").read_text(encoding="utf-8"))
    facts = evaluation["edge"]
    assert facts["bundle_bytes"] == (classifier.model / "edge.tar.gz").stat().st_size
    assert facts["precision"] == "int8"
    assert facts["metric_delta_vs_fp32"] == evaluation["int8_minus_fp32"]
    assert set(facts["metric_delta_vs_fp32"]) >= {"auc", "accuracy"}
    with tarfile.open(classifier.model / "edge.tar.gz") as tar:
        assert tar.getnames() == [f"edge/{n}" for n in sorted(p.name for p in edge.iterdir())]
        assert {(m.mtime, m.uid, m.gid) for m in tar.getmembers()} == {(0, 0, 0)}


def test_a_tampered_bundle_is_refused_with_the_file_named(classifier: MLRoot, bare_path: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "edge"
    shutil.copytree(classifier.model / "edge", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["classes"] = list(reversed(manifest["classes"]))
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    done = _score(bundle, bare_path, _rows(classifier, 3))
    assert done.returncode == 3
    assert done.stdout == ""
    assert "manifest.json does not match its checksum in SHA256SUMS" in done.stderr
    assert "refusing" in done.stderr


def test_a_bad_row_is_refused_with_row_and_column(classifier: MLRoot, bare_path: Path) -> None:
    manifest: dict[str, Any] = json.loads((classifier.model / "manifest.json").read_text(encoding="utf-8"))
    numeric = next(f for f in manifest["features"] if f["type"] == "numeric")
    row = next(csv.reader(io.StringIO(_rows(classifier, 1))))
    row[[f["name"] for f in manifest["features"]].index(numeric["name"])] = "abc"
    done = _score(classifier.model / "edge", bare_path, ",".join(row) + "\n")
    assert done.returncode == 2
    assert f"row 0, column {numeric['name']!r}: 'abc' is not a number" in done.stderr


def test_the_archive_bytes_are_the_same_across_writes(classifier: MLRoot, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(classifier.model, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    first = (copy / "edge.tar.gz").read_bytes()
    os.utime(copy / "model.int8.onnx", (1, 1))  # file times must not reach the archive
    write_edge_bundle(copy, manifest)
    assert (copy / "edge.tar.gz").read_bytes() == first
