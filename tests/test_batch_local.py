"""`python -m serving batch` (serving/batch.py): a local file scored with the serving codec and model.

The join format follows Batch Transform's `DataProcessing.JoinSource: Input` as AWS documents it (SageMaker API
reference, API_DataProcessing, JoinSource; developer guide "Associate Prediction Results with Input Records"):
CSV appends the transformed row to the end of the input row; for JSON Lines the answer goes under
`SageMakerOutput` of an input object, and a non-object input is stored under `SageMakerInput` beside it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import batch, codec
from serving.batch import TOO_LONG, read_chunks
from serving.model import LoadedModel
from tests.serving_model_fixture import write_model_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def mixed_model(mixed_dir: Path) -> LoadedModel:
    return LoadedModel(mixed_dir, "fp32")


@pytest.fixture(scope="module")
def numeric_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("numeric"), categorical={})


def _run(*args: str | Path) -> int:
    return batch.main([str(a) for a in args])


def _online_csv(model_dir: Path, lines: list[str]) -> list[str]:
    """What POST /invocations answers for these rows (text/csv in, text/csv out), one answer per line."""
    model = LoadedModel(model_dir, "fp32")
    decoded = codec.decode_csv("\n".join(lines).encode(), model.manifest)
    answer = codec.ResponseEncoder(model.manifest).encode(codec.CSV, model.predict(decoded), decoded)
    return answer.decode().splitlines()


def test_every_input_line_gets_one_output_line_in_order_with_the_online_answer(mixed_dir: Path, tmp_path: Path) -> None:
    good = ["1,2,3,blue", "4,5,6,red", "7.5,-8,9e3,purple", "0,0,0,green"]
    lines = [good[0], "4,5,x,red", good[1], "", good[2], "1e39,1,1,red", good[3]]
    source = tmp_path / "rows.csv"
    source.write_text("\r\n".join(lines))  # CRLF endings, no final newline
    assert _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "out.csv") == 0
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert len(out) == len(lines)
    online = _online_csv(mixed_dir, good)
    assert [out[0], out[2], out[4], out[6]] == online
    assert out[1] == out[3] == out[5] == ",,"  # empty label and probabilities: columns stay aligned
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it


def test_bad_rows_are_kept_in_the_error_file_with_line_numbers_and_the_codec_reason(
    mixed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("1,2,3,blue\n4,5,x,red\n\n1,2\n1e39,1,1,red\n1,2,3,red\n")
    assert _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "out.csv") == 0
    errors = [orjson.loads(x) for x in (tmp_path / "out.csv.errors.jsonl").read_bytes().splitlines()]
    assert [e["line"] for e in errors] == [2, 3, 4, 5]
    assert errors[0] == {
        "line": 2,
        "error": "column 2 ('score'): expected a finite number (within float32 range), got 'x'",
        "input": "4,5,x,red",
    }
    assert errors[1]["error"] == "the line is empty"
    assert errors[2]["error"] == "expected 4 values, got 2"
    assert "'1e39'" in errors[3]["error"]
    summary = capsys.readouterr().err
    assert "6 rows in, 6 rows out: 2 scored, 4 bad" in summary


def test_jsonl_rows_are_decoded_like_online_requests_and_joined_like_join_source(
    mixed_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(
        '[1,2,3,"blue"]\n{"age":1,"income":2,"score":3,"colour":"red","id":7}\n'
        '{"age":1,"income":2,"score":3,"colour":"red"}\nnot json\n'
    )
    assert _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "o.jsonl", "--join-input") == 0
    out = [orjson.loads(x) for x in (tmp_path / "o.jsonl").read_bytes().splitlines()]
    assert len(out) == 4
    assert out[0]["SageMakerInput"] == [1, 2, 3, "blue"]
    assert set(out[0]["SageMakerOutput"]) == {"label", "probabilities"}
    # An unknown key is refused online ("unknown feature 'id'"), so here too: the input stays, with the reason.
    assert out[1] == {
        "age": 1,
        "income": 2,
        "score": 3,
        "colour": "red",
        "id": 7,
        "SageMakerOutput": {"error": "unknown feature 'id'"},
    }
    assert out[2]["colour"] == "red" and out[2]["SageMakerOutput"]["label"] in ("0", "1")
    assert out[3]["SageMakerInput"] == "not json"
    assert out[3]["SageMakerOutput"]["error"].startswith("malformed JSON")
    errors = [orjson.loads(x)["line"] for x in (tmp_path / "o.jsonl.errors.jsonl").read_bytes().splitlines()]
    assert errors == [2, 4]


def test_csv_join_appends_the_answer_cells_to_the_input_row(mixed_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("1,2,3,blue\nbad\n")
    assert _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "o.csv", "--join-input") == 0
    first, second = (tmp_path / "o.csv").read_text().splitlines()
    assert first == "1,2,3,blue," + _online_csv(mixed_dir, ["1,2,3,blue"])[0]
    assert second == "bad,,,"


def test_too_many_bad_rows_fail_the_run_and_leave_the_previous_output_untouched(
    mixed_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("1,2,3,blue\nx\ny\n1,2,3,red\n")
    output = tmp_path / "out.csv"
    output.write_text("last run's answers\n")
    code = _run("--model-dir", mixed_dir, "--input", source, "--output", output, "--max-bad-rows", "1")
    assert code == batch.TOO_MANY_BAD_ROWS_EXIT
    assert output.read_text() == "last run's answers\n"
    assert [orjson.loads(x)["line"] for x in (tmp_path / "out.csv.errors.jsonl").read_bytes().splitlines()] == [2, 3]
    assert not list(tmp_path.glob("*.partial"))
    # At the threshold the run still succeeds.
    assert _run("--model-dir", mixed_dir, "--input", source, "--output", output, "--max-bad-rows", "2") == 0
    assert len(output.read_text().splitlines()) == 4


def test_a_failure_mid_file_leaves_no_output_and_no_partial_files(
    mixed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("1,2,3,blue\n" * 50)
    calls = []
    real = batch.Scorer.chunk

    def failing(self: batch.Scorer, lines: list[bytes | None], first: int, errors: list[object]) -> bytes:
        calls.append(first)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, lines, first, errors)  # type: ignore[arg-type]

    monkeypatch.setattr(batch.Scorer, "chunk", failing)
    with pytest.raises(OSError, match="disk full"):
        _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "out.csv", "--batch-size", "10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{tmp}/rows.txt", "--output", "{tmp}/o.csv"], "cannot tell the format of rows.txt"),
        (["--input", "{tmp}/missing.csv", "--output", "{tmp}/o.csv"], "--input: cannot read"),
        (["--input", "{tmp}/rows.csv", "--output", "{tmp}/nope/o.csv"], "--output: the folder"),
        (
            ["--input", "{tmp}/rows.csv", "--output", "{tmp}/o.jsonl", "--output-format", "jsonl", "--join-input"],
            "the output format must be the input's (csv)",
        ),
        (["--input", "{tmp}/rows.csv", "--output", "{tmp}/o.csv", "--batch-size", "0"], "--batch-size 0"),
        (["--input", "{tmp}/rows.csv", "--output", "{tmp}/rows.csv"], "must not be the input file"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(
    mixed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "rows.txt").write_text("1,2,3,blue\n")
    (tmp_path / "rows.csv").write_text("1,2,3,blue\n")
    argv = ["--model-dir", str(mixed_dir), *(a.format(tmp=tmp_path) for a in args)]
    assert batch.main(argv) == batch.USAGE_EXIT
    assert message in capsys.readouterr().err


def test_a_model_directory_outside_the_contract_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("1\n")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "serving", "batch", "--model-dir", str(tmp_path)),
            *("--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "o.csv")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--model-dir:" in result.stderr and "manifest.json is missing" in result.stderr


@pytest.mark.parametrize("block", [1, 3, 7, 64])
def test_lines_are_reassembled_across_read_blocks_and_long_lines_are_cut_out(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(batch, "BLOCK_BYTES", block)
    data = b"a,1\n" + b"x" * 40 + b"\nbb,2\n\ncc,3"
    chunks = list(read_chunks(io.BytesIO(data), batch_size=2, max_line_bytes=10))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [line for chunk in chunks for line in chunk] == [b"a,1", TOO_LONG, b"bb,2", b"", b"cc,3"]


def test_a_line_longer_than_the_limit_is_a_bad_row(mixed_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_bytes(b"1,2,3,blue\n" + b"9," * 5000 + b"\n1,2,3,red\n")
    code = _run("--model-dir", mixed_dir, "--input", source, "--output", tmp_path / "o.csv", "--max-line-bytes", "1000")
    assert code == 0
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 3
    (error,) = [orjson.loads(x) for x in (tmp_path / "o.csv.errors.jsonl").read_bytes().splitlines()]
    assert error["line"] == 2 and "longer than 1000 bytes" in error["error"]


_PEAK_RSS_PROBE = """
import os, resource, sys
sys.path.insert(0, {repo!r})
from serving.__main__ import main
code = main(sys.argv[1:])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _scored_with_peak_rss(model_dir: Path, source: Path, output: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    result = subprocess.run(
        [
            *(sys.executable, "-c", _PEAK_RSS_PROBE.format(repo=str(REPO)), "batch", "--model-dir", str(model_dir)),
            *("--input", str(source), "--output", str(output), "--batch-size", "1000"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    peak = int(result.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) * 1024
    return result, peak


def test_a_file_larger_than_the_memory_allowance_streams_in_constant_memory(numeric_dir: Path, tmp_path: Path) -> None:
    """The allowance: what the same tool needs for a 100-line file, plus a quarter of the big file's size. A
    tool that read the file (or its answers) whole would need more than the whole file on top."""
    block_lines = [f"{i % 97}.2512345678,{-i % 13}.0000000001,{i % 1000}.123456789e-2" for i in range(10_000)]
    block_lines[1234] = "1,2,oops"  # one bad row per block, at a known line
    block = ("\n".join(block_lines) + "\n").encode()
    big = tmp_path / "big.csv"
    with big.open("wb") as sink:
        for _ in range(160):
            sink.write(block)
    size = big.stat().st_size
    small = tmp_path / "small.csv"
    small.write_bytes(b"".join(block.splitlines(keepends=True)[:100]))

    _, baseline = _scored_with_peak_rss(numeric_dir, small, tmp_path / "small.out.csv")
    result, peak = _scored_with_peak_rss(numeric_dir, big, tmp_path / "big.out.csv")
    assert result.returncode == 0, result.stderr
    allowance = baseline + size // 4
    assert size > 40 * 1024 * 1024
    assert peak < allowance, f"peak RSS {peak >> 20} MiB over {allowance >> 20} MiB for a {size >> 20} MiB file"
    assert "\r" not in result.stderr  # no progress bar without a terminal
    rows = 160 * 10_000
    assert f"{rows} rows in, {rows} rows out: {rows - 160} scored, 160 bad" in result.stderr
    with (tmp_path / "big.out.csv").open("rb") as answers:
        assert sum(1 for _ in answers) == rows
    errors = (tmp_path / "big.out.csv.errors.jsonl").read_bytes().splitlines()
    assert [orjson.loads(e)["line"] for e in errors[:3]] == [1235, 11235, 21235]
    assert len(errors) == 160
    assert os.path.getsize(tmp_path / "big.out.csv") > size // 2


_CELLS = st.sampled_from(["1", "-2.5", "3e2", "3e38", "x", "", "nan", "1e39", " 4", "blue", "red", "purple", '"5"'])
_NUMBERS = st.sampled_from(["1", "-2.5", "3e2", "+.5", " 4", "0"])
# Mostly rows of the right shape (so chunks often decode whole), some of anything.
_GOOD = st.tuples(_NUMBERS, _NUMBERS, _NUMBERS, st.sampled_from(["blue", "red", "purple"])).map(list)
# Good rows, good rows with one thing wrong (a cell replaced, one cell more or less), and anything.
_ROWS = st.one_of(
    _GOOD,
    st.tuples(_GOOD, st.integers(0, 3), _CELLS).map(lambda t: [*t[0][: t[1]], t[2], *t[0][t[1] + 1 :]]),
    st.tuples(_GOOD, _CELLS).map(lambda t: [*t[0], t[1]]),
    _GOOD.map(lambda row: row[:3]),
    st.lists(_CELLS, min_size=0, max_size=5),
)


@given(rows=st.lists(_ROWS, min_size=1, max_size=30))
@settings(max_examples=150, deadline=None)
def test_batch_refuses_exactly_the_lines_post_invocations_refuses(
    mixed_model: LoadedModel, rows: list[list[str]]
) -> None:
    """Each line alone, as a text/csv request body, against the same line inside a batch chunk."""
    lines = [",".join(cells).encode() for cells in rows]
    options = batch.BatchOptions(
        model_dir=Path("."),
        input=Path("in.csv"),
        output=Path("out.csv"),
        errors=Path("e"),
        input_format="csv",
        output_format="csv",
    )
    errors: list[tuple[int, str, bytes]] = []
    out = batch.Scorer(mixed_model, options).chunk(list(lines), 1, errors)
    assert out.count(b"\n") == len(lines)
    refused = {number for number, _, _ in errors}
    for number, line in enumerate(lines, start=1):
        try:
            decoded = codec.decode_csv(line, mixed_model.manifest)
            codec.check_finite(mixed_model.predict(decoded), mixed_model.manifest)
            online_ok = True
        except codec.InputError:
            online_ok = False
        assert online_ok == (number not in refused), (line, errors)


def test_a_row_without_finite_probabilities_is_a_bad_row_with_the_online_reason(
    mixed_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture's graph saturates instead of overflowing, so the model's answer is made non-finite for one row:
    online, codec.check_finite refuses such a request (400); in a batch only that row is refused."""
    real = mixed_model.predict

    def second_row_nan(decoded: codec.Batch) -> np.ndarray:
        probabilities = real(decoded).copy()
        if decoded.rows > 1:
            probabilities[1] = np.nan
        return probabilities

    monkeypatch.setattr(mixed_model, "predict", second_row_nan)
    options = batch.BatchOptions(
        model_dir=Path("."),
        input=Path("in.csv"),
        output=Path("out.csv"),
        errors=Path("e"),
        input_format="csv",
        output_format="csv",
    )
    errors: list[tuple[int, str, bytes]] = []
    out = batch.Scorer(mixed_model, options).chunk([b"1,2,3,red", b"4,5,6,blue", b"7,8,9,red"], 10, errors)
    first, second, third = out.decode().splitlines()
    assert second == ",,"
    assert first != ",," and third != ",,"
    assert [(n, raw) for n, _, raw in errors] == [(11, b"4,5,6,blue")]
    assert "no finite probabilities" in errors[0][1]
