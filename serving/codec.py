"""Request decoding and response encoding: pure functions from bytes to `Batch` and from probabilities to bytes.

Accepted numbers are what Python's `float()` reads, finite and within float32 range. Categorical values are
strings; a value not seen in training is answered (the graph maps it to its "unknown" index) and the JSON
response names it under `unknown_categories` for that row.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from serving.model import Batch, ModelManifest

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
REQUEST_TYPES: dict[str, str] = {
    CSV: CSV,
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
}
RESPONSE_TYPES = (JSON, CSV, JSONLINES)
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBER = "a finite number (within float32 range)"
CATEGORY = "a string"

# Bytes a plain numeric CSV body is made of; such a body takes the vectorised path (JSON parser + numpy).
_NUMERIC_CSV_BYTES = b"0123456789+-.eE, \t\n\r"


@dataclass
class InputError(Exception):
    """A request the client must fix: answered with 400 and this as the JSON error."""

    message: str
    expected: str
    row: int | None = None
    """0-based row of the request (CSV line, JSON instance, JSON Lines line)."""
    column: int | None = None
    """0-based column in request order (the manifest's feature order)."""
    feature: str | None = None
    got: str | None = None
    status: int = field(default=400)

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "row": self.row,
                "column": self.column,
                "feature": self.feature,
                "expected": self.expected,
                "got": self.got,
            }
        }


def _shown(value: object) -> str:
    """A client's value as it appears in an error message, cut so errors stay small."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(row: int | None, column: int | None, manifest: ModelManifest) -> str:
    if row is None:
        return "request"
    if column is None:
        return f"row {row}"
    return f"row {row}, column {column} ({manifest.features[column].name!r})"


def _row_shape(manifest: ModelManifest) -> str:
    return manifest.row_shape


def _bad_value(manifest: ModelManifest, row: int, column: int, value: object) -> InputError:
    spec = manifest.features[column]
    expected = NUMBER if spec.kind == "numeric" else CATEGORY
    got = _shown(value)
    return InputError(
        message=f"{_where(row, column, manifest)}: expected {expected}, got {got!r}",
        expected=expected,
        row=row,
        column=column,
        feature=spec.name,
        got=got,
    )


def _wrong_length(manifest: ModelManifest, row: int, count: int) -> InputError:
    expected = _row_shape(manifest)
    return InputError(
        message=f"row {row}: expected {len(manifest.features)} values, got {count}",
        expected=expected,
        row=row,
        got=f"{count} values",
    )


def _empty_body(expected: str) -> InputError:
    return InputError(message="the request body is empty", expected=expected)


def _number(text: str | float | int) -> float | None:
    """`text` as a finite float32-range number, or None."""
    try:
        value = float(text)
    except (ValueError, TypeError, OverflowError):
        return None
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        return None
    return value


def _assemble(manifest: ModelManifest, numeric: np.ndarray, categorical: list[list[str]] | None) -> Batch:
    cat = None
    if manifest.categorical_columns:
        cat = np.array(categorical, dtype=object).reshape(numeric.shape[0], len(manifest.categorical_columns))
    return Batch(numeric=numeric, categorical=cat)


def _rows_to_batch(manifest: ModelManifest, rows: list[list[Any]], from_text: bool) -> Batch:
    """Validate rows of request-order values one by one; the path that finds and names every error.

    from_text: values are CSV cells (numbers as text); otherwise JSON values (numbers must be JSON numbers).
    """
    n = len(manifest.features)
    numeric = np.empty((len(rows), len(manifest.numeric_columns)), dtype=np.float32)
    categorical: list[list[str]] = []
    for r, row in enumerate(rows):
        if len(row) != n:
            raise _wrong_length(manifest, r, len(row))
        for j, column in enumerate(manifest.numeric_columns):
            value = row[column]
            # JSON numbers must be int or float: bool is an int subclass and is refused on purpose.
            number = _number(value) if from_text or type(value) in (int, float) else None
            if number is None:
                raise _bad_value(manifest, r, column, value)
            numeric[r, j] = number
        if manifest.categorical_columns:
            values = [row[c] for c in manifest.categorical_columns]
            for c, value in zip(manifest.categorical_columns, values, strict=True):
                if not isinstance(value, str):
                    raise _bad_value(manifest, r, c, value)
            categorical.append(values)
    return _assemble(manifest, numeric, categorical)


def _fast_numeric(manifest: ModelManifest, values: Any) -> Batch | None:
    """All-numeric rows as one numpy conversion; None when anything is off (the slow path then says what).

    Callers make sure `values` can hold no booleans or strings, which numpy would quietly turn into numbers.
    """
    try:
        wide = np.array(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged rows, nested lists, objects, huge integers
        return None
    # One comparison rejects NaN (max is NaN), infinities and values beyond float32 (which would cast to inf).
    if wide.ndim != 2 or wide.shape[1] != len(manifest.features) or not np.abs(wide).max() <= FLOAT32_MAX:
        return None
    numeric = wide.astype(np.float32)
    if not manifest.numeric_in_request_order:
        numeric = np.ascontiguousarray(numeric[:, manifest.numeric_columns])
    return Batch(numeric=numeric, categorical=None)


def decode_csv(body: bytes, manifest: ModelManifest) -> Batch:
    """text/csv: no header, one row per line, features in manifest order; RFC 4180 quoting allowed."""
    expected = f"CSV rows of {_row_shape(manifest)}"
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    body = body.rstrip(b"\n")
    if not body.strip():
        raise _empty_body(expected)
    if not manifest.categorical_columns and not body.translate(None, _NUMERIC_CSV_BYTES):
        try:
            rows = orjson.loads(b"[[" + body.replace(b"\n", b"],[") + b"]]")
        except orjson.JSONDecodeError:
            rows = None  # e.g. "+1", ".5" or an empty cell: the slow path accepts or names it
        if rows is not None:
            batch = _fast_numeric(manifest, rows)
            if batch is not None:
                return batch
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        row = body[: error.start].count(b"\n")
        raise InputError(
            message=f"row {row}: the body is not UTF-8 text (byte {error.start})",
            expected="UTF-8 text",
            row=row,
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows_text: list[list[str]] = []
    try:
        for row in reader:
            if not row:
                line = reader.line_num - 1
                raise InputError(
                    message=f"row {len(rows_text)} (line {line}) is empty",
                    expected=expected,
                    row=len(rows_text),
                    got="an empty line",
                )
            rows_text.append(row)
    except csv.Error as error:
        raise InputError(
            message=f"row {len(rows_text)}: malformed CSV: {error}",
            expected=expected,
            row=len(rows_text),
        ) from None
    return _rows_to_batch(manifest, rows_text, from_text=True)


def _json_rows(manifest: ModelManifest, instances: list[Any]) -> Batch:
    """JSON instances (lists in request order, or objects keyed by feature name) to a Batch."""
    names = manifest.feature_names
    rows: list[list[Any]] = []
    for r, instance in enumerate(instances):
        if isinstance(instance, list):
            rows.append(instance)
        elif isinstance(instance, dict):
            missing = [name for name in names if name not in instance]
            if missing:
                raise InputError(
                    message=f"row {r}: missing feature {missing[0]!r}",
                    expected=f"an object with the keys {', '.join(names)}",
                    row=r,
                    column=names.index(missing[0]),
                    feature=missing[0],
                    got="no value",
                )
            if len(instance) != len(names):
                extra = sorted(key for key in instance if key not in names)
                raise InputError(
                    message=f"row {r}: unknown feature {_shown(extra[0])!r}",
                    expected=f"an object with the keys {', '.join(names)}",
                    row=r,
                    got=_shown(extra[0]),
                )
            rows.append([instance[name] for name in names])
        else:
            raise InputError(
                message=f"row {r}: expected a list of values or an object keyed by feature name, "
                f"got {_shown(instance)!r}",
                expected=f"a list of {_row_shape(manifest)}, or an object keyed by feature name",
                row=r,
                got=_shown(instance),
            )
    return _rows_to_batch(manifest, rows, from_text=False)


def decode_json(body: bytes, manifest: ModelManifest) -> Batch:
    """application/json: {"instances": [[...], ...]} or {"instances": [{"feature": value}, ...]}."""
    expected = 'a JSON object {"instances": [row, ...]}'
    if not body.strip():
        raise _empty_body(expected)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError(message=f"malformed JSON: {error}", expected=expected) from None
    if not isinstance(document, dict) or "instances" not in document:
        raise InputError(
            message='the body must be a JSON object with the key "instances"',
            expected=expected,
            got=_shown(document),
        )
    extra = [key for key in document if key != "instances"]
    if extra:
        raise InputError(message=f"unknown key {_shown(extra[0])!r}", expected=expected, got=_shown(extra[0]))
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise InputError(
            message='"instances" must be a non-empty list of rows',
            expected=expected,
            got=_shown(instances),
        )
    # Booleans and strings would pass numpy's conversion as numbers; a body that may hold them (beyond the
    # "instances" key) takes the checking path.
    if not manifest.categorical_columns and _no_bools_or_strings(body, quotes=2):
        batch = _fast_numeric(manifest, instances)
        if batch is not None:
            return batch
    return _json_rows(manifest, instances)


def decode_jsonlines(body: bytes, manifest: ModelManifest) -> Batch:
    """application/jsonlines: one row per line, each a JSON list or object."""
    expected = "one JSON list or object per line"
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    body = body.rstrip(b"\n")
    if not body.strip():
        raise _empty_body(expected)
    instances: list[Any] = []
    for r, line in enumerate(body.split(b"\n")):
        try:
            instances.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            raise InputError(message=f"row {r}: malformed JSON: {error}", expected=expected, row=r) from None
    if not manifest.categorical_columns and _no_bools_or_strings(body, quotes=0):
        batch = _fast_numeric(manifest, instances)
        if batch is not None:
            return batch
    return _json_rows(manifest, instances)


def _no_bools_or_strings(body: bytes, quotes: int) -> bool:
    return body.count(b'"') == quotes and b"true" not in body and b"false" not in body


Decoder = Callable[[bytes, ModelManifest], Batch]
DECODERS: dict[str, Decoder] = {CSV: decode_csv, JSON: decode_json, JSONLINES: decode_jsonlines}


def request_type(content_type: str | None) -> str | None:
    """The supported media type named by a Content-Type header, or None (answered with 415)."""
    if not content_type:
        return None
    media, _, params = content_type.partition(";")
    charset = params.lower().replace(" ", "").partition("charset=")[2].strip('"')
    if charset and charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        return None
    return REQUEST_TYPES.get(media.strip().lower())


def response_type(accept: str | None) -> str | None:
    """The response media type for an Accept header (JSON when absent or */*), or None (406)."""
    if not accept or not accept.strip():
        return JSON
    choices: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            choices.append((-quality, position, media.lower()))
    for _, _, media in sorted(choices):
        if media in RESPONSE_TYPES:
            return media
        if media in ("application/jsonl", "application/x-jsonlines"):
            return JSONLINES
        if media in ("*/*", "application/*"):
            return JSON
        if media == "text/*":
            return CSV
    return None


@dataclass(frozen=True)
class ResponseEncoder:
    """Precomputed per-model pieces of the response encoders."""

    manifest: ModelManifest
    classes: np.ndarray = field(init=False)
    csv_labels: np.ndarray = field(init=False)
    known: tuple[frozenset[str], ...] = field(init=False)
    label_prefixes: np.ndarray = field(init=False)
    json_head: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", np.array(self.manifest.classes, dtype=object))
        object.__setattr__(
            self,
            "csv_labels",
            np.array([_csv_cell(c).encode() for c in self.manifest.classes], dtype=object),
        )
        object.__setattr__(
            self,
            "label_prefixes",
            np.array(
                [orjson.dumps({"label": c})[:-1] + b',"probabilities":[' for c in self.manifest.classes],
                dtype=object,
            ),
        )
        object.__setattr__(
            self, "json_head", b'{"classes":' + orjson.dumps(list(self.manifest.classes)) + b',"predictions":['
        )
        object.__setattr__(
            self,
            "known",
            tuple(frozenset(self.manifest.features[c].categories) for c in self.manifest.categorical_columns),
        )

    def unknown_categories(self, batch: Batch) -> list[list[str]] | None:
        """Per row, the categorical features whose value was not seen in training; None if none anywhere."""
        if batch.categorical is None:
            return None
        names = [self.manifest.features[c].name for c in self.manifest.categorical_columns]
        found: list[list[str]] = [[] for _ in range(batch.rows)]
        any_found = False
        for j, known in enumerate(self.known):
            for r, value in enumerate(batch.categorical[:, j].tolist()):
                if value not in known:
                    found[r].append(names[j])
                    any_found = True
        return found if any_found else None

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities.argmax(axis=1)

    def encode(self, media: str, probabilities: np.ndarray, batch: Batch) -> bytes:
        if self.manifest.regression:
            return self.encode_regression(media, probabilities, batch)
        if media == CSV:
            return self.encode_csv(probabilities)
        unknown = self.unknown_categories(batch)
        if unknown is None:
            # The common case, spliced from one serialisation of the whole array: a dict per row costs
            # more than the rest of a 1000-row answer.
            rows = self._spliced_rows(probabilities)
            if media == JSONLINES:
                return b"}\n".join(rows) + b"}\n"
            return self.json_head + b"},".join(rows) + b"}]}"
        records = self.records(probabilities, unknown)
        if media == JSONLINES:
            return b"\n".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) for r in records) + b"\n"
        return orjson.dumps(
            {"classes": self.manifest.classes, "predictions": records}, option=orjson.OPT_SERIALIZE_NUMPY
        )

    def encode_regression(self, media: str, predictions: np.ndarray, batch: Batch) -> bytes:
        """A regression model's answer, in the target's units: CSV one value per line; JSON
        `{"predictions": [v, ...]}` (with `unknown_categories`, a list per row, when any row has one); JSON Lines
        `{"prediction": v}` per row (with that row's `unknown_categories` when it has any)."""
        values = np.ascontiguousarray(predictions.reshape(-1), dtype=np.float32)
        numbers = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)  # b"[1.5,2.0]", shortest float32 form
        cells = numbers[1:-1].split(b",") if values.size else []
        if media == CSV:
            return b"".join(cell + b"\n" for cell in cells)
        unknown = self.unknown_categories(batch)
        if media == JSONLINES:
            if unknown is None:
                return b"".join(b'{"prediction":' + cell + b"}\n" for cell in cells)
            return b"".join(
                b'{"prediction":' + cell + (b',"unknown_categories":' + orjson.dumps(names) if names else b"") + b"}\n"
                for cell, names in zip(cells, unknown, strict=True)
            )
        if unknown is None:
            return b'{"predictions":' + numbers + b"}"
        return b'{"predictions":' + numbers + b',"unknown_categories":' + orjson.dumps(unknown) + b"}"

    def _spliced_rows(self, probabilities: np.ndarray) -> list[bytes]:
        """Per row `{"label":...,"probabilities":[...]` (without the closing brace)."""
        numbers = orjson.dumps(np.ascontiguousarray(probabilities), option=orjson.OPT_SERIALIZE_NUMPY)
        labels = self.label_prefixes[self.labels(probabilities)].tolist()
        return [label + row + b"]" for label, row in zip(labels, numbers[2:-2].split(b"],["), strict=True)]

    def records(self, probabilities: np.ndarray, unknown: list[list[str]] | None) -> list[dict[str, Any]]:
        labels = self.classes[self.labels(probabilities)].tolist()
        # Rows of a C-contiguous float32 array serialise in orjson's shortest float32 form (0.9, not 0.8999...).
        records: list[dict[str, Any]] = [
            {"label": label, "probabilities": row}
            for label, row in zip(labels, np.ascontiguousarray(probabilities), strict=True)
        ]
        if unknown is not None:
            for record, names in zip(records, unknown, strict=True):
                if names:
                    record["unknown_categories"] = names
        return records

    def encode_csv(self, probabilities: np.ndarray) -> bytes:
        """One line per row: label, then the class probabilities in `classes` order; no header."""
        labels = self.csv_labels[self.labels(probabilities)].tolist()
        numbers = orjson.dumps(np.ascontiguousarray(probabilities), option=orjson.OPT_SERIALIZE_NUMPY)
        lines = numbers[2:-2].split(b"],[")
        return b"".join(label + b"," + line + b"\n" for label, line in zip(labels, lines, strict=True))


def _csv_cell(value: str) -> str:
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def check_finite(probabilities: np.ndarray, manifest: ModelManifest) -> None:
    """Non-finite output comes from inputs far outside what the model was trained on: the client's to fix."""
    if np.isfinite(probabilities).all():
        return
    finite = np.isfinite(probabilities).reshape(probabilities.shape[0], -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        what = "prediction" if manifest.regression else "probabilities"
        raise InputError(
            message=f"row {row}: the model produced no finite {what} for these values; "
            "they are far outside the range the model was trained on",
            expected="feature values in the range the model was trained on",
            row=row,
        )
