"""Ground truth for model-quality monitoring: SageMaker Model Monitor's format, written and read.

Labels arrive after the predictions they judge. Each label is one JSON line keyed by the capture record's id
(AWS developer guide, "Ingest Ground Truth labels and merge them with predictions",
model-monitor-model-quality-merge)::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the capture's inferenceId, or its eventId>"}, "eventVersion": "0"}

``data`` holds the label (CSV: the label text; JSON: a label, or an object with ``label`` and extra columns
such as a sensitive attribute for bias monitoring). Files live under the same path format as the capture,
``{prefix}/yyyy/mm/dd/hh/*.jsonl``, filed by the hour they were uploaded: that hour is how the monitor tells
a label that came in time from a late one.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import pathlib
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.capture import CaptureSource, loads_json

GROUND_TRUTH_ENCODINGS = ("CSV", "JSON")
_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})(?:/|$)")


class GroundTruthError(ValueError):
    """A ground-truth input the user gave cannot be used; the message names what and what is allowed."""


def ground_truth_record(event_id: str, label: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One ground-truth record. A plain label is CSV-encoded; with ``extra`` columns it is a JSON object."""
    if not isinstance(event_id, str) or not event_id.strip():
        raise GroundTruthError(f"ground truth: event id {event_id!r} must be a non-empty string (the capture's id)")
    if extra:
        data = json.dumps({"label": label, **extra}, allow_nan=False)
        encoding = "JSON"
    else:
        text = str(label)
        if not text or "\n" in text:
            raise GroundTruthError(f"ground truth for {event_id!r}: label {text!r} must be one non-empty line")
        data, encoding = text, "CSV"
    return {
        "groundTruthData": {"data": data, "encoding": encoding},
        "eventMetadata": {"eventId": event_id},
        "eventVersion": "0",
    }


def hour_key(when: dt.datetime) -> str:
    """``yyyy/mm/dd/hh`` of a time, in UTC: the folder of an upload."""
    return f"{when.astimezone(dt.UTC):%Y/%m/%d/%H}"


def write_ground_truth_file(
    root: pathlib.Path, records: Iterable[dict[str, Any]], uploaded: dt.datetime, name: str | None = None
) -> pathlib.Path:
    """Write records as one file in the hour folder of ``uploaded``; written to a temporary name, then renamed,
    so a reader never sees half a file."""
    folder = root / hour_key(uploaded)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{uploaded:%M-%S}-{uuid.uuid4().hex[:8]}.jsonl")
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_labels_csv(path: pathlib.Path, extra_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Ground-truth records from a CSV with a header: ``inference_id`` (or ``event_id``), ``label``, extras."""
    extras = list(extra_columns)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise GroundTruthError(f"labels file {str(path)!r} does not exist") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        id_column = next((c for c in ("inference_id", "event_id") if c in header), None)
        if id_column is None or "label" not in header:
            raise GroundTruthError(
                f"labels file {str(path)!r} has columns {header}; it needs 'inference_id' (or 'event_id') and 'label'"
            )
        missing = [c for c in extras if c not in header]
        if missing:
            raise GroundTruthError(f"labels file {str(path)!r} lacks the extra columns {missing}; it has {header}")
        records = []
        for line, row in enumerate(reader, start=2):
            if not (row.get(id_column) or "").strip() or (row.get("label") or "") == "":
                raise GroundTruthError(f"labels file {str(path)!r} line {line}: {id_column} and label are required")
            extra = {c: row[c] for c in extras}
            records.append(ground_truth_record(row[id_column].strip(), row["label"], extra or None))
    return records


@dataclass(frozen=True)
class Label:
    """One label as read: the value, extra columns, and the hour folder it was uploaded in (None if flat)."""

    value: str
    extra: Mapping[str, str]
    uploaded_hour: dt.datetime | None


@dataclass
class GroundTruthCounts:
    """What happened to every ground-truth line; reported so that nothing is silently dropped."""

    lines_read: int = 0
    labels: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Lines skipped, by reason: corrupt_line, missing_event_id, undecodable_label."""
    duplicates: int = 0
    """Labels for an id that already had one (the later upload wins)."""
    conflicting_duplicates: int = 0
    """... of which gave a different value."""
    after_deadline: int = 0
    """Labels uploaded after the window's deadline: late, not used for this window."""

    def to_json(self) -> dict[str, Any]:
        return {
            "lines_read": self.lines_read,
            "labels": self.labels,
            "skipped": dict(self.skipped),
            "duplicates": self.duplicates,
            "conflicting_duplicates": self.conflicting_duplicates,
            "after_deadline": self.after_deadline,
        }


def uploaded_hour(file: str) -> dt.datetime | None:
    """The upload hour from a file's ``yyyy/mm/dd/hh`` folder, or None for a flat folder."""
    found = None
    for match in _HOUR_PATH.finditer(file.replace("\\", "/")):
        found = match
    if found is None:
        return None
    year, month, day, hour = (int(g) for g in found.groups())
    try:
        return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)
    except ValueError:
        return None


def parse_label(record: Any) -> tuple[str, str, dict[str, str]]:
    """(event id, label, extra columns) of one parsed line; raises GroundTruthError naming the problem."""
    if not isinstance(record, dict):
        raise GroundTruthError("corrupt_line: a ground-truth line must be a JSON object")
    meta = record.get("eventMetadata")
    event_id = meta.get("eventId") if isinstance(meta, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise GroundTruthError("missing_event_id: eventMetadata.eventId is missing")
    part = record.get("groundTruthData")
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise GroundTruthError("undecodable_label: groundTruthData.data must be a string")
    data, encoding = part["data"], part.get("encoding", "CSV")
    if encoding == "CSV":
        label = data.strip()
        if not label:
            raise GroundTruthError("undecodable_label: empty label")
        return event_id, label, {}
    if encoding == "JSON":
        try:
            doc = loads_json(data)
        except ValueError:
            raise GroundTruthError("undecodable_label: JSON-encoded data is not valid JSON") from None
        if isinstance(doc, dict):
            if "label" not in doc:
                raise GroundTruthError("undecodable_label: a JSON object label needs a 'label' key")
            extra = {str(k): _text(v) for k, v in doc.items() if k != "label"}
            return event_id, _text(doc["label"]), extra
        return event_id, _text(doc), {}
    raise GroundTruthError(
        f"undecodable_label: encoding {encoding!r} is not one of {', '.join(GROUND_TRUTH_ENCODINGS)}"
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ground_truth_files(source: CaptureSource, first_hour: dt.datetime | None) -> list[str]:
    """Every ground-truth file under the source from ``first_hour`` on (labels never arrive before their
    prediction), including late ones, so that they can be counted. Flat folders: every file."""
    files = source.files("")
    if first_hour is None:
        return files
    start = first_hour.replace(minute=0, second=0, microsecond=0)
    kept = []
    for file in files:
        hour = uploaded_hour(file)
        if hour is None or hour >= start:
            kept.append(file)
    return kept


def read_ground_truth(
    source: CaptureSource, files: Iterable[str], deadline: dt.datetime | None, counts: GroundTruthCounts
) -> tuple[dict[str, Label], dict[str, Label]]:
    """Labels by event id, and the late ones. A label uploaded in an hour folder at or after ``deadline`` is
    late: kept apart (counted, never used), so a rerun of a window after more labels came in gives the
    same result."""
    labels: dict[str, Label] = {}
    late_labels: dict[str, Label] = {}
    for file in files:
        hour = uploaded_hour(file)
        late = deadline is not None and hour is not None and hour >= deadline
        for line in _lines(source, file):
            if not line.strip():
                continue
            counts.lines_read += 1
            try:
                event_id, value, extra = parse_label(loads_json(line))
            except GroundTruthError as err:
                counts.skipped[str(err).split(":", 1)[0]] += 1
                continue
            except ValueError:
                counts.skipped["corrupt_line"] += 1
                continue
            if late:
                counts.after_deadline += 1
                late_labels[event_id] = Label(value, extra, hour)
                continue
            previous = labels.get(event_id)
            if previous is not None:
                counts.duplicates += 1
                if previous.value != value:
                    counts.conflicting_duplicates += 1
            else:
                counts.labels += 1
            labels[event_id] = Label(value, extra, hour)
    return labels, late_labels


def _lines(source: CaptureSource, file: str) -> Iterator[bytes]:
    yield from source.lines(file)
