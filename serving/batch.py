"""`python -m serving batch`: score a local CSV or JSON Lines file with the serving model, offline.

One record per line, like SageMaker Batch Transform's `SplitType: Line`; a line is decoded by the same codec
that answers POST /invocations (serving/codec.py), so batch and online accept exactly the same rows. The file is
read in blocks and scored `--batch-size` lines at a time: memory stays the same whatever the file's size.

Rows in = rows out: the output holds one line per input line, in order. A line the codec refuses (or whose
probabilities are not finite) is a *bad row*: its output line is empty answers (CSV: empty cells; JSON Lines:
`{"error": ...}`), and it is written to the error file with its 1-based line number and the reason. The run fails
(exit 1, no output file) only when bad rows exceed `--max-bad-rows`; usage errors exit 2.

Output and error file are written to temporary files next to their destination and renamed into place at the
end: an interrupted or failed run leaves no half-written output.

`--join-input` joins each answer to its input line the way Batch Transform's `DataProcessing.JoinSource: Input`
does (AWS docs, "Associate Prediction Results with Input Records" and API_DataProcessing JoinSource): CSV
appends the answer's cells to the input row; JSON Lines adds the answer under `SageMakerOutput` to an input
object, or stores a non-object input under `SageMakerInput` beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from serving import codec
from serving.model import PRECISIONS, LoadedModel, ModelDirectoryError

FORMATS = {"csv": codec.CSV, "jsonl": codec.JSONLINES}
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".jsonlines": "jsonl", ".ndjson": "jsonl"}
BLOCK_BYTES = 1 << 20
DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAX_LINE_BYTES = 1 << 20
USAGE_EXIT = 2
TOO_MANY_BAD_ROWS_EXIT = 1
TOO_LONG = None
"""Stands for a line longer than --max-line-bytes in a chunk of lines (its bytes are not kept)."""


class UsageError(Exception):
    """A flag, path or model the run cannot use; the message names it and what is allowed."""


class TooManyBadRows(Exception):
    """Bad rows went past --max-bad-rows."""


@dataclass(frozen=True)
class BatchOptions:
    model_dir: Path
    input: Path
    output: Path
    errors: Path
    input_format: str
    """`csv` or `jsonl`."""
    output_format: str
    precision: str = "fp32"
    batch_size: int = DEFAULT_BATCH_SIZE
    max_bad_rows: int | None = None
    """None: any number of bad rows is reported, the run still succeeds."""
    join_input: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    progress: bool = False


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    bad: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def line(self, options: BatchOptions) -> str:
        text = f"batch: {self.rows} rows in, {self.rows} rows out: {self.scored} scored, {self.bad} bad"
        if self.bad:
            text += f" (line numbers and reasons in {options.errors})"
        return text + f"; {self.seconds:.3f} s"


def read_chunks(stream: IO[bytes], batch_size: int, max_line_bytes: int) -> Iterator[list[bytes | None]]:
    """Lines (without their line ending) `batch_size` at a time, read in fixed blocks. A line longer than
    `max_line_bytes` comes back as TOO_LONG and its bytes are skipped, so memory stays bounded."""
    pending = b""
    skipping = False
    lines: list[bytes | None] = []
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            break
        parts: list[bytes] = data.split(b"\n")
        if skipping:
            if len(parts) == 1:
                continue  # still inside the long line
            lines.append(TOO_LONG)
            skipping = False
            parts = parts[1:]
        else:
            parts[0] = pending + parts[0]
        pending = parts.pop()
        if parts and max(map(len, parts)) > max_line_bytes:
            lines.extend(TOO_LONG if len(part) > max_line_bytes else part for part in parts)
        else:
            lines.extend(parts)
        if len(pending) > max_line_bytes:
            skipping, pending = True, b""
        while len(lines) >= batch_size:
            yield lines[:batch_size]
            del lines[:batch_size]
    if skipping:
        lines.append(TOO_LONG)
    elif pending:
        lines.append(pending)
    if lines:
        yield lines


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


class Scorer:
    """Decodes, scores and encodes one chunk of lines; bad lines are answered with empty answers."""

    def __init__(self, model: LoadedModel, options: BatchOptions) -> None:
        self.model = model
        self.manifest = model.manifest
        self.encoder = codec.ResponseEncoder(model.manifest)
        self.options = options
        self.media_in = FORMATS[options.input_format]
        self.media_out = FORMATS[options.output_format]
        self.decode = codec.DECODERS[self.media_in]
        n_classes = len(self.manifest.classes)
        self.empty_csv = b"," * n_classes  # an empty label and empty probabilities: the columns stay aligned

    def chunk(self, lines: list[bytes | None], first_line: int, errors: list[tuple[int, str, bytes]]) -> bytes:
        """The output lines for `lines` (numbered from `first_line`, 1-based); bad rows are appended to
        `errors` as (line number, reason, input)."""
        if None not in lines and b"" not in lines:
            # The common case: the whole chunk as one body through the codec's fast paths, answered in one piece.
            body = b"\n".join(lines)  # type: ignore[arg-type]  # no None here
            if b"\r" not in body:
                answer = self._whole(body, len(lines))
                if answer is not None:
                    return answer
        clean = [_strip_cr(x) if x is not None else None for x in lines]
        good: list[int] = list(range(len(clean)))
        batch = None
        if None not in clean and b"" not in clean:
            try:
                batch = self.decode(b"\n".join(clean), self.manifest)  # type: ignore[arg-type]  # no None here
            except codec.InputError:
                batch = None
            if batch is not None and batch.rows != len(clean):
                batch = None  # never expected; the row-by-row path keeps rows in = rows out regardless
        reasons: dict[int, str] = {}
        if batch is None:
            batch, good = self._row_by_row(clean, reasons)
        probabilities = self.model.predict(batch) if good else np.empty((0, len(self.manifest.classes)))
        if good:
            finite = np.isfinite(probabilities).all(axis=1)
            if not finite.all():
                for position in np.flatnonzero(~finite).tolist():
                    reasons[good[position]] = (
                        "the model produced no finite probabilities for these values; "
                        "they are far outside the range the model was trained on"
                    )
                keep = np.flatnonzero(finite)
                good = [good[k] for k in keep.tolist()]
                probabilities = probabilities[keep]
                batch = _take(batch, keep)
        answers = self._answers(probabilities, batch) if good else []
        out: list[bytes] = [b""] * len(clean)
        for position, answer in zip(good, answers, strict=True):
            out[position] = answer
        for position, reason in sorted(reasons.items()):
            errors.append((first_line + position, reason, clean[position] or b""))
            out[position] = self._bad_answer(reason)
        if self.options.join_input:
            out = [self._join(clean[i], out[i]) for i in range(len(clean))]
        return b"\n".join(out) + b"\n"

    def _whole(self, body: bytes, count: int) -> bytes | None:
        """The answer to a chunk without bad rows, or None (some row is bad: the caller finds which)."""
        if self.options.join_input:
            return None
        try:
            batch = self.decode(body, self.manifest)
        except codec.InputError:
            return None
        if batch.rows != count:
            return None
        probabilities = self.model.predict(batch)
        if not np.isfinite(probabilities).all():
            return None
        if self.media_out == codec.CSV:
            return self.encoder.encode_csv(probabilities)
        return self.encoder.encode(codec.JSONLINES, probabilities, batch)

    def _row_by_row(self, clean: list[bytes | None], reasons: dict[int, str]) -> tuple[codec.Batch, list[int]]:
        """Decode each line alone, to say which lines are bad and why; the good ones are scored together."""
        good: list[int] = []
        numeric: list[np.ndarray] = []
        categorical: list[np.ndarray] = []
        for i, line in enumerate(clean):
            if line is None:
                reasons[i] = f"the line is longer than {self.options.max_line_bytes} bytes (--max-line-bytes)"
                continue
            if not line.strip():
                reasons[i] = "the line is empty"
                continue
            try:
                one = self.decode(line, self.manifest)
            except codec.InputError as bad:
                reasons[i] = _reason(bad)
                continue
            good.append(i)
            numeric.append(one.numeric)
            if one.categorical is not None:
                categorical.append(one.categorical)
        width = len(self.manifest.numeric_columns)
        batch = codec.Batch(
            numeric=np.concatenate(numeric) if numeric else np.empty((0, width), dtype=np.float32),
            categorical=np.concatenate(categorical) if categorical else None,
        )
        return batch, good

    def _answers(self, probabilities: np.ndarray, batch: codec.Batch) -> list[bytes]:
        if self.media_out == codec.CSV:
            return self.encoder.encode_csv(probabilities).rstrip(b"\n").split(b"\n")
        return self.encoder.encode(codec.JSONLINES, probabilities, batch).rstrip(b"\n").split(b"\n")

    def _bad_answer(self, reason: str) -> bytes:
        if self.media_out == codec.CSV:
            return self.empty_csv
        return orjson.dumps({"error": reason})

    def _join(self, line: bytes | None, answer: bytes) -> bytes:
        if self.media_out == codec.CSV:
            return (line or b"") + b"," + answer
        parsed: Any = None
        if line:
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(line)
        output = orjson.loads(answer)
        if isinstance(parsed, dict):
            return orjson.dumps({**parsed, "SageMakerOutput": output})
        stored = parsed if parsed is not None else (line or b"").decode("utf-8", "replace")
        return orjson.dumps({"SageMakerInput": stored, "SageMakerOutput": output})


def _reason(bad: codec.InputError) -> str:
    """The codec's message for a one-row body, without its "row 0" (the error file names the line)."""
    message = bad.message
    for prefix in ("row 0: ", "row 0, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _take(batch: codec.Batch, keep: np.ndarray) -> codec.Batch:
    return codec.Batch(
        numeric=batch.numeric[keep],
        categorical=batch.categorical[keep] if batch.categorical is not None else None,
    )


class Progress:
    """A one-line progress report on stderr, redrawn at most twice a second; silent when off."""

    def __init__(self, enabled: bool, total_bytes: int) -> None:
        self.enabled = enabled
        self.total = max(total_bytes, 1)
        self.last = 0.0

    def update(self, rows: int, position: int, bad: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.5:
            return
        self.last = now
        share = min(position / self.total, 1.0)
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {rows} rows, {bad} bad")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _temporary(destination: Path) -> tuple[IO[bytes], Path]:
    descriptor, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    # mkstemp makes the file private (0600); the output gets the permissions a plain open() would give it.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(descriptor, 0o666 & ~umask)
    return os.fdopen(descriptor, "wb"), Path(name)


def run(options: BatchOptions) -> Summary:
    """Score options.input into options.output (and options.errors); raises UsageError or TooManyBadRows."""
    try:
        model = LoadedModel(options.model_dir, options.precision)  # type: ignore[arg-type]  # checked by the parser
    except ModelDirectoryError as bad:
        raise UsageError(f"--model-dir: {bad}") from None
    try:
        source = options.input.open("rb")
    except OSError as bad:
        raise UsageError(f"--input: cannot read {options.input}: {bad.strerror}") from None
    for flag, path in (("--output", options.output), ("--errors", options.errors)):
        if not path.parent.is_dir():
            raise UsageError(f"{flag}: the folder {path.parent} does not exist")
    scorer = Scorer(model, options)
    summary = Summary()
    started = time.perf_counter()
    progress = Progress(options.progress, _size(options.input))
    out, out_tmp = _temporary(options.output)
    err, err_tmp = _temporary(options.errors)
    finished = False
    try:
        with source, out, err:
            for lines in read_chunks(source, options.batch_size, options.max_line_bytes):
                errors: list[tuple[int, str, bytes]] = []
                out.write(scorer.chunk(lines, summary.rows + 1, errors))
                summary.rows += len(lines)
                summary.bad += len(errors)
                for number, reason, raw in errors:
                    shown = raw[:200].decode("utf-8", "replace")
                    err.write(orjson.dumps({"line": number, "error": reason, "input": shown}) + b"\n")
                    key = reason.split(":", 1)[0]
                    summary.reasons[key] = summary.reasons.get(key, 0) + 1
                if options.max_bad_rows is not None and summary.bad > options.max_bad_rows:
                    err.flush()
                    raise TooManyBadRows(
                        f"{summary.bad} bad rows by line {summary.rows}, more than --max-bad-rows "
                        f"{options.max_bad_rows}; no output written, the bad rows so far are in {options.errors}"
                    )
                progress.update(summary.rows, source.tell(), summary.bad)
        summary.scored = summary.rows - summary.bad
        progress.update(summary.rows, progress.total, summary.bad, final=True)
        os.replace(out_tmp, options.output)
        os.replace(err_tmp, options.errors)
        finished = True
    except TooManyBadRows:
        # The error file is whole for the rows read, and says why the run stopped: keep it.
        os.replace(err_tmp, options.errors)
        raise
    finally:
        if not finished:
            for partial in (out_tmp, err_tmp):
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
    summary.seconds = time.perf_counter() - started
    return summary


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _format(flag: str, value: str | None, path: Path) -> str:
    if value is not None:
        return value
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise UsageError(
            f"{flag}: cannot tell the format of {path.name} from its suffix; name it with "
            f"{flag} {{csv,jsonl}} (suffixes known: {', '.join(SUFFIXES)})"
        )
    return found


def parse_options(argv: list[str], stderr_is_tty: bool) -> BatchOptions:
    parser = argparse.ArgumentParser(
        prog="python -m serving batch",
        description="Score a CSV or JSON Lines file (one record per line) with the serving model.",
    )
    parser.add_argument("--model-dir", required=True, type=Path, help="model directory (docs/model-contract.md)")
    parser.add_argument("--input", required=True, type=Path, help="CSV (no header) or JSON Lines file")
    parser.add_argument("--output", required=True, type=Path, help="one answer per input line, in order")
    parser.add_argument("--errors", type=Path, help="bad rows as JSON Lines (default: OUTPUT.errors.jsonl)")
    parser.add_argument("--input-format", choices=sorted(FORMATS), help="default: from the input's suffix")
    parser.add_argument("--output-format", choices=sorted(FORMATS), help="default: the input's format")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="lines scored at a time")
    parser.add_argument("--max-bad-rows", type=int, help="fail (exit 1, no output) past this many bad rows")
    parser.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES)
    parser.add_argument("--join-input", action="store_true", help="join answers to input rows (JoinSource)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (off anyway without a TTY)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        raise UsageError("see the usage above") from exit_
    if args.batch_size < 1 or args.batch_size > 100_000:
        raise UsageError(f"--batch-size {args.batch_size}: expected an integer from 1 to 100000")
    if args.max_bad_rows is not None and args.max_bad_rows < 0:
        raise UsageError(f"--max-bad-rows {args.max_bad_rows}: expected 0 or more")
    if args.max_line_bytes < 64:
        raise UsageError(f"--max-line-bytes {args.max_line_bytes}: expected at least 64")
    input_format = _format("--input-format", args.input_format, args.input)
    output_format = args.output_format or input_format
    if args.join_input and output_format != input_format:
        raise UsageError(
            f"--join-input joins rows of one format: the output format must be the input's ({input_format}), "
            f"got --output-format {output_format}"
        )
    output: Path = args.output
    if output.resolve() == args.input.resolve():
        raise UsageError("--output must not be the input file")
    return BatchOptions(
        model_dir=args.model_dir,
        input=args.input,
        output=output,
        errors=args.errors or output.with_name(output.name + ".errors.jsonl"),
        input_format=input_format,
        output_format=output_format,
        precision=args.precision,
        batch_size=args.batch_size,
        max_bad_rows=args.max_bad_rows,
        join_input=args.join_input,
        max_line_bytes=args.max_line_bytes,
        progress=stderr_is_tty and not args.no_progress,
    )


def main(argv: list[str]) -> int:
    try:
        options = parse_options(argv, sys.stderr.isatty())
        summary = run(options)
    except UsageError as bad:
        print(f"batch: {bad}", file=sys.stderr)
        return USAGE_EXIT
    except TooManyBadRows as bad:
        print(f"batch: {bad}", file=sys.stderr)
        return TOO_MANY_BAD_ROWS_EXIT
    print(summary.line(options), file=sys.stderr)
    return 0
