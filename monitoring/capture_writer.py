"""Writing data-capture records the way SageMaker does: for tests, benchmarks and local demos.

The inverse of ``monitoring.capture``: rows in, JSON lines out, under ``{endpoint}/{variant}/yyyy/mm/dd/hh/``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import pathlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

CONTENT_TYPES = {"CSV": "text/csv", "JSON": "application/json"}


def encode_csv(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue().rstrip("\n")


def capture_record(
    rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
    inference_time: dt.datetime,
    encoding: str = "CSV",
    base64_wrap: bool = False,
    output: str = "0.5",
    event_id: str | None = None,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """One capture record holding ``rows`` as a CSV payload or as ``{"instances": rows}`` JSON.

    ``event_id`` defaults to a new UUID (SageMaker generates one per invocation); ``inference_id`` is the id a
    caller may pass with InvokeEndpoint, which Model Monitor prefers when joining ground truth."""
    if encoding == "CSV":
        data = encode_csv(rows)  # type: ignore[arg-type]
    elif encoding == "JSON":
        data = json.dumps({"instances": list(rows)})
    else:
        raise ValueError(f"encoding {encoding!r}: allowed CSV or JSON (BASE64 wraps either)")
    content_type = CONTENT_TYPES[encoding]
    if base64_wrap:
        data = base64.b64encode(data.encode("utf-8")).decode("ascii")
        encoding = "BASE64"
    meta: dict[str, Any] = {
        "eventId": event_id or str(uuid.uuid4()),
        "inferenceTime": inference_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
    }
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": output, "encoding": "CSV"},
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }


def hour_folder(root: pathlib.Path, endpoint: str, variant: str, when: dt.datetime) -> pathlib.Path:
    return root / endpoint / variant / f"{when.astimezone(dt.UTC):%Y/%m/%d/%H}"


def write_capture_file(
    root: pathlib.Path,
    records: Iterable[dict[str, Any] | str],
    when: dt.datetime,
    endpoint: str = "ep",
    variant: str = "AllTraffic",
    name: str | None = None,
) -> pathlib.Path:
    """Write records (dicts, or raw lines to plant corrupt ones) into the hour folder of ``when``."""
    folder = hour_folder(root, endpoint, variant, when)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{when:%M-%S}-{uuid.uuid4().hex[:8]}.jsonl")
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path
