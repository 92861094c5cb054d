"""The optional prediction cache (serving/cache.py) over real HTTP: hits counted in /metrics, answers identical to
an uncached server for classification and regression, normalized variants of a row hit, TTL expiry, LRU eviction
at the size bound, errors never cached, and settings errors that name the variable."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from serving.cache import PredictionCache
from serving.model import Batch
from serving.settings import ENV_CACHE_ROWS, ENV_CACHE_TTL, SettingsError, parse_settings
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess

ROW_A = b"1,2,3,red\n"
ROW_B = b"40,-2,0.5,blue\n"
ROW_C = b"-7,0.25,9,green\n"
ACCEPTS = ("application/json", "text/csv", "application/jsonlines")


def write_regression_dir(path: Path) -> Path:
    """A `task: regression` model directory: `predictions` = numeric @ [1, 2, -1], float32 [N]; the same graph
    serves as the int8 file (the contract only needs it to exist)."""
    path.mkdir(parents=True, exist_ok=True)
    weights = numpy_helper.from_array(np.array([[1.0], [2.0], [-1.0]], dtype=np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["numeric", "w"], ["column"]),
            helper.make_node("Reshape", ["column", "shape"], ["predictions"]),
        ],
        "regression",
        [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, [None])],
        [weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path / "model.onnx")
    onnx.save(model, path / "model.int8.onnx")
    manifest = {
        "format_version": 1,
        "task": "regression",
        "features": [{"name": n, "type": "numeric", "input": "numeric", "index": i} for i, n in enumerate("xyz")],
        "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_regression_dir(tmp_path_factory.mktemp("regression"))


def start(model_dir: Path, log_dir: Path, **env: str) -> ServerProcess:
    process = ServerProcess(model_dir, log_dir / f"server-{time.monotonic_ns()}.log", workers=1, env=env)
    process.wait_until(200)
    return process


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Collects the servers a test starts and stops them all cleanly afterwards."""
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for process in started:
            assert process.terminate() == 0
            assert "Traceback" not in process.log(), process.log()


def invoke(server: ServerProcess, body: bytes, content_type: str = "text/csv", accept: str = "application/json"):
    return server.request("POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept})


def cache_counts(server: ServerProcess) -> tuple[int, int, int]:
    """(hits, misses, entries) from /metrics."""
    text = server.request("GET", "/metrics")[2].decode()

    def value(name: str) -> int:
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} missing from /metrics:\n{text}"
        return int(float(found.group(1)))

    return (
        value("mlplatform_serving_cache_hits_total"),
        value("mlplatform_serving_cache_misses_total"),
        value("mlplatform_serving_cache_entries"),
    )


def test_repeated_rows_are_hits_and_metrics_count_them_per_row(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start(model_dir, tmp_path, **{ENV_CACHE_ROWS: "100"})
    servers.append(server)
    assert cache_counts(server) == (0, 0, 0)
    assert invoke(server, ROW_A + ROW_B)[0] == 200
    assert cache_counts(server) == (0, 2, 2)
    # A batch with two known rows and one new one: two hits, one miss, one more entry.
    assert invoke(server, ROW_B + ROW_C + ROW_A)[0] == 200
    assert cache_counts(server) == (2, 3, 3)


def test_cache_off_by_default_reports_zero_and_stores_nothing(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start(model_dir, tmp_path)
    servers.append(server)
    for _ in range(3):
        assert invoke(server, ROW_A)[0] == 200
    assert cache_counts(server) == (0, 0, 0)


@pytest.mark.parametrize("which", ["classification", "regression"])
def test_answers_are_byte_identical_with_and_without_the_cache(
    which: str, model_dir: Path, regression_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    directory = model_dir if which == "classification" else regression_dir
    rows = [ROW_A, ROW_B, ROW_C, b"5,5,5,teal\n"]  # teal: an unknown category, named in the answer
    if which == "regression":
        rows = [r.rsplit(b",", 1)[0] + b"\n" for r in rows]
    plain = start(directory, tmp_path)
    cached = start(directory, tmp_path, **{ENV_CACHE_ROWS: "100"})
    servers.extend((plain, cached))
    # First all misses, then a mix of hits and misses in another order, then all hits, in every response type.
    bodies = [rows[0] + rows[1], rows[2] + rows[0] + rows[3] + rows[1], rows[1] + rows[0], rows[3]]
    for accept in ACCEPTS:
        for body in bodies:
            expected = invoke(plain, body, accept=accept)
            got = invoke(cached, body, accept=accept)
            assert expected[0] == got[0] == 200
            assert got[2] == expected[2], (accept, body)
    hits, misses, _ = cache_counts(cached)
    assert misses == 4 and hits == 3 * sum(body.count(b"\n") for body in bodies) - misses


def test_normalized_variants_of_a_row_hit_the_same_entry(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start(model_dir, tmp_path, **{ENV_CACHE_ROWS: "100"})
    servers.append(server)
    first = invoke(server, ROW_A)
    assert first[0] == 200
    variants = [
        (b"1.0,2.00,3e0,red\n", "text/csv"),
        (b'{"instances": [[1, 2.0, 3, "red"]]}', "application/json"),
        (b'{"instances": [{"age": 1, "income": 2, "score": 3, "colour": "red"}]}', "application/json"),
        (b'[1.0, 2, 3, "red"]\n', "application/jsonlines"),
    ]
    for body, content_type in variants:
        answer = invoke(server, body, content_type)
        assert answer[0] == 200, answer
        assert answer[2] == first[2]
    assert cache_counts(server) == (len(variants), 1, 1)
    # A different category is a different row.
    assert invoke(server, b"1,2,3,blue\n")[0] == 200
    assert cache_counts(server) == (len(variants), 2, 2)


def test_an_entry_older_than_the_ttl_is_a_miss_again(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start(model_dir, tmp_path, **{ENV_CACHE_ROWS: "100", ENV_CACHE_TTL: "0.2"})
    servers.append(server)
    assert invoke(server, ROW_A)[0] == 200
    time.sleep(0.5)  # past the TTL (monotonic clock); not a speed assertion
    assert invoke(server, ROW_A)[0] == 200
    assert cache_counts(server) == (0, 2, 1)


def test_ttl_with_an_injected_clock_expires_exactly_at_the_deadline() -> None:
    now = [100.0]
    cache = PredictionCache(10, 5.0, clock=lambda: now[0])
    batch = Batch(numeric=np.array([[1, 2, 3]], dtype=np.float32), categorical=None)
    keys = cache.keys(batch)
    cache.store(keys, np.array([[0.25, 0.75]], dtype=np.float32))
    now[0] = 104.999
    found, misses = cache.lookup(keys)
    assert misses == [] and found[0] is not None and cache.rows([found[0]]).tolist() == [[0.25, 0.75]]
    now[0] = 105.0
    assert cache.lookup(keys)[1] == [0]
    assert len(cache) == 0  # the expired entry is dropped, not kept


def test_the_size_bound_evicts_the_least_recently_used_row(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start(model_dir, tmp_path, **{ENV_CACHE_ROWS: "2"})
    servers.append(server)
    for row in (ROW_A, ROW_B, ROW_A, ROW_C):  # A is used again after B, so C pushes B out
        assert invoke(server, row)[0] == 200
    assert cache_counts(server) == (1, 3, 2)
    assert invoke(server, ROW_A)[0] == 200  # still there
    assert cache_counts(server) == (2, 3, 2)
    assert invoke(server, ROW_B)[0] == 200  # evicted
    assert cache_counts(server) == (2, 4, 2)


def test_a_bad_row_fails_exactly_as_without_cache_and_nothing_is_cached(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    plain = start(model_dir, tmp_path)
    cached = start(model_dir, tmp_path, **{ENV_CACHE_ROWS: "100"})
    servers.extend((plain, cached))
    bad = ROW_A + b"40,x,0.5,blue\n"
    expected = invoke(plain, bad)
    assert expected[0] == 400
    got = invoke(cached, bad)
    assert (got[0], got[2]) == (expected[0], expected[2])
    assert cache_counts(cached) == (0, 0, 0)


def test_a_non_finite_prediction_fails_as_without_cache_and_stores_no_row_of_that_request(
    regression_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    plain = start(regression_dir, tmp_path)
    cached = start(regression_dir, tmp_path, **{ENV_CACHE_ROWS: "100"})
    servers.extend((plain, cached))
    assert invoke(cached, b"0,0,0\n")[0] == 200  # a cached row before the failing one
    body = b"0,0,0\n1,2,3\n3e38,3e38,-3e38\n"  # 3e38 + 6e38 + 3e38 overflows float32: row 2 is infinite
    expected = invoke(plain, body)
    assert expected[0] == 400 and json.loads(expected[2])["error"]["row"] == 2
    got = invoke(cached, body)
    assert (got[0], got[2]) == (expected[0], expected[2])
    # The good new row of the failed request (1,2,3) was not stored: asking for it again is a miss.
    before = cache_counts(cached)
    assert invoke(cached, b"1,2,3\n")[0] == 200
    after = cache_counts(cached)
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        (ENV_CACHE_ROWS, "-1", "an integer from 0 to 1e+07"),
        (ENV_CACHE_ROWS, "lots", "an integer from 0 to 1e+07"),
        (ENV_CACHE_ROWS, "2.5", "an integer from 0 to 1e+07"),
        (ENV_CACHE_TTL, "0", "a number from 0.001 to 86400"),
        (ENV_CACHE_TTL, "soon", "a number from 0.001 to 86400"),
    ],
)
def test_bad_cache_settings_name_the_variable_and_the_allowed_range(name: str, raw: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings([], {name: raw})
    assert str(caught.value).startswith(f"{name}={raw!r}")
    assert expected in str(caught.value)


def test_cache_settings_default_to_off_and_parse_when_set() -> None:
    default = parse_settings([], {})
    assert (default.cache_rows, default.cache_ttl_s) == (0, 60.0)
    chosen = parse_settings([], {ENV_CACHE_ROWS: "5000", ENV_CACHE_TTL: "2.5"})
    assert (chosen.cache_rows, chosen.cache_ttl_s) == (5000, 2.5)


def test_two_workers_keep_their_own_caches_and_metrics_sum_them(
    model_dir: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """Each worker process builds its own cache after the fork (serving/server.py builds one InferenceApp per
    worker), and /metrics sums the workers' slots (serving/metrics.py SharedMetrics._total)."""
    server = ServerProcess(model_dir, tmp_path / "two.log", workers=2, env={ENV_CACHE_ROWS: "100"})
    servers.append(server)
    server.wait_until(200)
    for _ in range(20):  # a new connection each time: the kernel spreads them over the workers
        assert invoke(server, ROW_A)[0] == 200
    hits, misses, entries = cache_counts(server)
    assert hits + misses == 20
    assert 1 <= misses <= 2  # at most one miss per worker for the same row
    assert entries == misses  # one entry in each worker that saw the row
