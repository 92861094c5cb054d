"""Score CSV rows with an mlplatform edge bundle; needs nothing beyond onnxruntime (and numpy, which it requires).

Usage: python score.py [rows.csv]   (rows from stdin when no file is given)

Each input line is one row, no header, the features in manifest.json `features` order (RFC 4180 quoting allowed).
Each output line answers one row as JSON: `{"label": ..., "probabilities": {class: p, ...}}` for a classifier,
`{"prediction": x}` for a regressor. Before scoring, every file is checked against SHA256SUMS; a bundle whose
files do not match is refused (exit status 3), a bad row is refused with its row and column (exit status 2).

This file is copied verbatim into every bundle by training/edge.py; it imports only the standard library,
numpy and onnxruntime.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import onnxruntime as ort

SUMS_FILE = "SHA256SUMS"
MANIFEST_FILE = "manifest.json"


class BundleError(Exception):
    """The bundle is incomplete or was modified after training wrote it."""


class RowError(Exception):
    """An input row does not have the shape manifest.json describes."""


def verify(bundle: Path) -> None:
    """Every file SHA256SUMS lists must be present with that digest, and the scoring files must be listed."""
    sums = bundle / SUMS_FILE
    if not sums.is_file():
        raise BundleError(f"{sums} is missing: cannot verify the bundle")
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise BundleError(f"{sums} line {number} is not '<sha256>  <file>': {line!r}")
        listed[name] = digest
    manifest_path = bundle / MANIFEST_FILE
    if MANIFEST_FILE not in listed:
        raise BundleError(f"{MANIFEST_FILE} is not listed in {SUMS_FILE}")
    for name, digest in sorted(listed.items()):
        path = bundle / name
        if not path.is_file():
            raise BundleError(f"{name} is listed in {SUMS_FILE} but missing from the bundle")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise BundleError(
                f"{name} does not match its checksum in {SUMS_FILE} (expected {digest}, found {actual}): "
                f"the bundle was modified after training wrote it; refusing to score"
            )
    model = json.loads(manifest_path.read_text(encoding="utf-8"))["edge"]["model"]
    if model not in listed:
        raise BundleError(f"the model file {model} is not listed in {SUMS_FILE}")


def read_rows(stream: TextIO, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """CSV rows to the graph's inputs: raw numeric values (float32) and raw category strings."""
    features = manifest["features"]
    numeric_count = sum(1 for f in features if f["type"] == "numeric")
    categorical_count = len(features) - numeric_count
    numeric_rows: list[list[float]] = []
    categorical_rows: list[list[str]] = []
    try:
        for row in csv.reader(stream, strict=True):
            index = len(numeric_rows)
            if len(row) != len(features):
                raise RowError(f"row {index}: {len(row)} values, expected {len(features)} (manifest.json features)")
            numbers = [0.0] * numeric_count
            strings = [""] * categorical_count
            for feature, cell in zip(features, row, strict=True):
                if feature["type"] == "numeric":
                    try:
                        numbers[feature["index"]] = float(cell)
                    except ValueError:
                        raise RowError(f"row {index}, column {feature['name']!r}: {cell!r} is not a number") from None
                else:
                    strings[feature["index"]] = cell
            numeric_rows.append(numbers)
            categorical_rows.append(strings)
    except csv.Error as error:
        raise RowError(f"row {len(numeric_rows)}: malformed CSV: {error}") from None
    numeric = np.array(numeric_rows, dtype=np.float32).reshape(len(numeric_rows), numeric_count)
    if not categorical_count:
        return numeric, None
    return numeric, np.array(categorical_rows, dtype=object).reshape(len(categorical_rows), categorical_count)


def answers(output: np.ndarray, manifest: dict[str, Any]) -> list[str]:
    """One JSON line per row."""
    if manifest.get("task") == "regression":
        return [json.dumps({"prediction": float(v)}) for v in output]
    classes = manifest["classes"]
    return [
        json.dumps(
            {
                "label": classes[int(np.argmax(p))],
                "probabilities": {c: float(v) for c, v in zip(classes, p, strict=True)},
            }
        )
        for p in output
    ]


def main(argv: list[str]) -> int:
    bundle = Path(__file__).resolve().parent
    try:
        verify(bundle)
    except BundleError as error:
        print(f"score.py: refusing this bundle: {error}", file=sys.stderr)
        return 3
    manifest = json.loads((bundle / MANIFEST_FILE).read_text(encoding="utf-8"))
    session = ort.InferenceSession(str(bundle / manifest["edge"]["model"]), providers=["CPUExecutionProvider"])
    try:
        if len(argv) > 1:
            with open(argv[1], encoding="utf-8", newline="") as stream:
                numeric, categorical = read_rows(stream, manifest)
        else:
            numeric, categorical = read_rows(sys.stdin, manifest)
    except RowError as error:
        print(f"score.py: {error}", file=sys.stderr)
        return 2
    if not len(numeric):
        return 0
    feeds: dict[str, np.ndarray] = {"numeric": numeric}
    if categorical is not None:
        feeds["categorical"] = categorical
    output_name = next(iter(manifest["outputs"]))
    (output,) = session.run([output_name], feeds)
    sys.stdout.write("".join(line + "\n" for line in answers(np.asarray(output, dtype=np.float32), manifest)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
