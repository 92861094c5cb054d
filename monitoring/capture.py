"""Reading SageMaker data capture: finding the hour folders of a window and decoding records into rows.

Capture files are JSON lines under ``{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/``, one invocation per
line: ``{"captureData": {"endpointInput": {"observedContentType", "mode", "data", "encoding"}, ...},
"eventMetadata": {"eventId", "inferenceTime", ...}, "eventVersion": "0"}``. Sources (a local folder or
S3) are read line by line, so memory does not grow with the window.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import functools
import json
import pathlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

try:  # orjson parses capture lines several times faster; the stdlib is the fallback.
    import orjson

    loads_json: Any = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    loads_json = json.loads
    _JSON_ERRORS = (ValueError,)

CAPTURE_INDEXES = ("endpointInput", "endpointOutput")
ENCODINGS = ("CSV", "JSON", "BASE64")
_YEAR = re.compile(r"^\d{4}$")
_TWO_DIGITS = re.compile(r"^\d{2}$")


class CaptureError(ValueError):
    """A capture record that cannot be used; the reason is counted and reported, the job goes on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_time(value: str, what: str) -> dt.datetime:
    """Parse an ISO-8601 time (``Z`` or an offset; naive means UTC) into an aware UTC datetime.

    Spaces are removed first: AWS's own contract page shows ``2019-12-01T16: 20: 00Z``.
    """
    text = value.strip().replace(" ", "")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not an ISO-8601 time such as 2024-05-01T13:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)``; either side may be open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"time window: start {self.start.isoformat()} must be before end {self.end.isoformat()}")

    def contains(self, t: dt.datetime) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def contains_text(self, text: str) -> bool:
        """``contains`` for an ISO time as text; raises ValueError when it is not one.

        SageMaker writes UTC times as ``YYYY-MM-DDTHH:MM:SS[.fff]Z``. For that shape, and window bounds on
        whole seconds, comparing the first 19 characters as strings gives the same answer as comparing
        times (a fraction of a second never crosses a whole-second bound), without building a datetime
        per record; any other shape is parsed.
        """
        keys = self.text_bounds
        if keys is not None and len(text) >= 20 and text[-1] == "Z" and text[19] in ".Z" and text[10] == "T":
            key = text[:19]
            return (keys[0] is None or key >= keys[0]) and (keys[1] is None or key < keys[1])
        return self.contains(parse_time(text, "eventMetadata.inferenceTime"))

    @functools.cached_property
    def text_bounds(self) -> tuple[str | None, str | None] | None:
        """Start and end as ``YYYY-MM-DDTHH:MM:SS`` for string comparison, or None when either has a fraction."""
        if (self.start and self.start.microsecond) or (self.end and self.end.microsecond):
            return None
        return (_key(self.start) if self.start else None, _key(self.end) if self.end else None)

    def hours(self) -> list[dt.datetime] | None:
        """Hour folders to read: from start's hour through end's hour (a record near the boundary may be
        filed in the next hour's folder, since S3 files by delivery time); None when the window is open."""
        if self.start is None or self.end is None:
            return None
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        last = self.end.replace(minute=0, second=0, microsecond=0)
        hours = []
        while hour <= last:
            hours.append(hour)
            hour += dt.timedelta(hours=1)
        return hours


def _key(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


class CaptureSource(Protocol):
    """Where capture files live: a local folder or an S3 prefix."""

    description: str

    def children(self, path: str) -> list[str]:
        """Names of the folders directly under ``path`` ('' is the root)."""
        ...

    def files(self, path: str) -> list[str]:
        """Every capture file (``*.jsonl``) under ``path``, recursively, sorted."""
        ...

    def lines(self, file: str) -> Iterator[bytes]:
        """The lines of one file, streamed."""
        ...


class LocalSource:
    """Capture files in a local folder (Model Monitor's ``dataset_source`` or a copy of the S3 prefix)."""

    def __init__(self, root: pathlib.Path) -> None:
        if not root.is_dir():
            raise ValueError(f"capture folder {str(root)!r} does not exist or is not a folder")
        self.root = root
        self.description = str(root)

    def _path(self, path: str) -> pathlib.Path:
        return self.root / path if path else self.root

    def children(self, path: str) -> list[str]:
        base = self._path(path)
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def files(self, path: str) -> list[str]:
        base = self._path(path)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*.jsonl") if p.is_file())

    def lines(self, file: str) -> Iterator[bytes]:
        with (self.root / file).open("rb") as handle:
            yield from handle


class S3Source:
    """Capture files under ``s3://bucket/prefix``, listed by folder and streamed line by line."""

    def __init__(self, uri: str, client: Any = None) -> None:
        match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
        if not match:
            raise ValueError(f"capture location {uri!r} is not an S3 URI such as s3://bucket/prefix")
        self.bucket = match.group(1)
        self.prefix = match.group(2).strip("/")
        if client is None:
            import boto3  # imported here so local runs and the baseline never need boto3

            client = boto3.client("s3")
        self.client = client
        self.description = uri

    def _key(self, path: str) -> str:
        parts = [p for p in (self.prefix, path) if p]
        return "/".join(parts) + "/" if parts else ""

    def children(self, path: str) -> list[str]:
        prefix = self._key(path)
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names.extend(cp["Prefix"][len(prefix) :].rstrip("/") for cp in page.get("CommonPrefixes", []))
        return sorted(names)

    def files(self, path: str) -> list[str]:
        prefix = self._key(path)
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".jsonl"))
        return sorted(keys)

    def lines(self, file: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=file)["Body"]
        try:
            yield from body.iter_lines(chunk_size=1 << 20)
        finally:
            body.close()


def open_source(location: str, s3_client: Any = None) -> CaptureSource:
    """A source for ``location``: ``s3://bucket/prefix`` or a local folder."""
    if location.startswith("s3://"):
        return S3Source(location, client=s3_client)
    return LocalSource(pathlib.Path(location))


def _date_roots(source: CaptureSource, path: str = "", depth: int = 0) -> list[str]:
    """Folders whose children are years: the ``{endpoint}/{variant}`` level, wherever the root points."""
    children = source.children(path)
    if any(_YEAR.match(c) for c in children):
        return [path]
    if depth >= 3:
        return []
    roots: list[str] = []
    for child in children:
        roots.extend(_date_roots(source, f"{path}/{child}" if path else child, depth + 1))
    return roots


def window_files(source: CaptureSource, window: TimeWindow) -> list[str]:
    """Capture files of the hour folders the window covers (all files when the window is open)."""
    roots = _date_roots(source)
    if not roots:
        # No yyyy/mm/dd/hh layout: a flat folder of capture files, filtered by inferenceTime only.
        return source.files("")
    hours = window.hours()
    files: list[str] = []
    for root in roots:
        if hours is None:
            files.extend(source.files(root))
            continue
        for hour in hours:
            folder = f"{hour:%Y/%m/%d/%H}"
            files.extend(source.files(f"{root}/{folder}" if root else folder))
    return files


def iter_lines(source: CaptureSource, files: Iterable[str]) -> Iterator[bytes]:
    for file in files:
        yield from source.lines(file)


@dataclass(frozen=True)
class CapturedPayload:
    """The decoded payload of one record: CSV text or a parsed JSON document."""

    inference_time: dt.datetime | None
    csv_text: str | None = None
    json_doc: Any = None


def parse_record(line: bytes) -> dict[str, Any]:
    """Parse one capture line into its JSON object; raises CaptureError ``corrupt_line``."""
    try:
        record = loads_json(line)
    except _JSON_ERRORS:
        raise CaptureError("corrupt_line", "not valid JSON") from None
    if not isinstance(record, dict):
        raise CaptureError("corrupt_line", "a capture line must be a JSON object")
    return record


def inference_time_text(record: dict[str, Any]) -> str | None:
    """``eventMetadata.inferenceTime`` as written, or None when the record has none."""
    meta = record.get("eventMetadata")
    value = meta.get("inferenceTime") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def decode_payload(record: dict[str, Any], capture_index: str = "endpointInput") -> CapturedPayload:
    """The payload of a parsed record; raises CaptureError naming what was wrong."""
    capture = record.get("captureData")
    if not isinstance(capture, dict):
        raise CaptureError("corrupt_line", "no captureData object")
    part = capture.get(capture_index)
    if not isinstance(part, dict):
        raise CaptureError("missing_capture_index", f"no captureData.{capture_index}")
    text = inference_time_text(record)
    inference_time = None
    if text is not None:
        try:
            inference_time = parse_time(text, "eventMetadata.inferenceTime")
        except ValueError:
            raise CaptureError("corrupt_line", "eventMetadata.inferenceTime is not an ISO-8601 time") from None
    data = part.get("data")
    encoding = part.get("encoding")
    content_type = str(part.get("observedContentType", "")).lower()
    if not isinstance(data, str):
        raise CaptureError("undecodable_payload", f"{capture_index}.data is not a string")
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
            data = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CaptureError("undecodable_payload", "BASE64 data does not decode to UTF-8 text") from None
        encoding = "JSON" if "json" in content_type else "CSV"
    if encoding == "CSV":
        return CapturedPayload(inference_time, csv_text=data)
    if encoding == "JSON":
        try:
            return CapturedPayload(inference_time, json_doc=loads_json(data))
        except _JSON_ERRORS:
            raise CaptureError("undecodable_payload", "JSON-encoded data is not valid JSON") from None
    raise CaptureError("undecodable_payload", f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")


def decode_record(line: bytes, capture_index: str = "endpointInput") -> CapturedPayload:
    """Decode one capture line into its payload; raises CaptureError naming what was wrong."""
    return decode_payload(parse_record(line), capture_index)


def csv_rows(text: str) -> list[str]:
    """The non-empty lines of a CSV payload (a request may hold many rows)."""
    return [row for row in text.splitlines() if row.strip()]


def csv_field_count(row: str) -> int:
    """Number of fields of a CSV line; quoted fields may hold commas."""
    if '"' not in row:
        return row.count(",") + 1
    return len(next(csv.reader([row]), []))


def json_rows(doc: Any) -> list[Any]:
    """The rows of a JSON payload: ``{"instances": [...]}``, a list of rows, or one row.

    A row is a list of values (positional), ``{"features": [...]}`` (positional), or an object of
    feature name to value.
    """
    if isinstance(doc, dict):
        if "instances" in doc:
            rows = doc["instances"]
            if not isinstance(rows, list):
                raise CaptureError("undecodable_payload", "'instances' must be a list of rows")
            return rows
        return [doc]
    if isinstance(doc, list):
        if doc and all(isinstance(r, list | dict) for r in doc):
            return doc
        return [doc]
    raise CaptureError("undecodable_payload", "JSON data must be an object or a list")
