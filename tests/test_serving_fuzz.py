"""Property-based fuzzing of the running server: over 1000 generated requests (the max_examples below add up
to 1150), none may get a 5xx, and every 200 must be a valid, finite answer in the negotiated type."""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

CONTENT_TYPES = st.one_of(
    st.sampled_from(["text/csv", "application/json", "application/jsonlines", "text/csv; charset=utf-8"]),
    st.sampled_from(["application/xml", "text/plain", "", "text/csv; charset=utf-16", "multipart/form-data"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
ACCEPTS = st.one_of(
    st.none(),
    st.sampled_from(["*/*", "application/json", "text/csv", "application/jsonlines", "text/*", "text/html"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["red", "blue", "purple", "", "nan", "-inf", "1e39", "1_0", " 3 ", '"a,b"', '"', "true"]),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
ROW_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-100, 100),
    st.sampled_from(["red", "blue", "unseen", ""]),
    st.booleans(),
    st.none(),
)
ROWS = st.lists(
    st.one_of(
        st.lists(ROW_VALUES, min_size=3, max_size=5),
        st.fixed_dictionaries(
            {"age": ROW_VALUES, "income": ROW_VALUES, "score": ROW_VALUES, "colour": ROW_VALUES},
            optional={"extra": ROW_VALUES},
        ),
    ),
    max_size=6,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model_dir: Path = write_model_dir(tmp_path_factory.mktemp("model"))
    process = ServerProcess(model_dir, tmp_path_factory.mktemp("log") / "server.log", workers=1)
    try:
        process.wait_until(200)
        yield process
        metrics = process.request("GET", "/metrics")[2].decode()
        assert 'status="500"' not in metrics, metrics
    finally:
        assert process.terminate() == 0
        assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module")
def connection(server: ServerProcess) -> Iterator[list[http.client.HTTPConnection]]:
    holder = [server.connection(timeout=10)]
    yield holder
    holder[0].close()


def check(
    server: ServerProcess, holder: list[http.client.HTTPConnection], body: bytes, content_type: str, accept: str | None
) -> None:
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    try:
        holder[0].request("POST", "/invocations", body=body, headers=headers)
        response = holder[0].getresponse()
        answer = response.read()
    except (http.client.HTTPException, OSError):
        # The client library refuses some generated headers; the server must still be healthy afterwards.
        holder[0].close()
        holder[0] = server.connection(timeout=10)
        assert server.request("GET", "/ping")[0] == 200
        return
    if response.getheader("Connection", "").lower() == "close":
        holder[0].close()
        holder[0] = server.connection(timeout=10)
    status = response.status
    assert status < 500, answer
    media = (response.getheader("Content-Type") or "").split(";")[0]
    if status != 200:
        assert media == "application/json"
        assert isinstance(orjson.loads(answer)["error"]["message"], str)
        return
    if media == "application/json":
        document: Any = orjson.loads(answer)
        probabilities = [p for row in document["predictions"] for p in row["probabilities"]]
    elif media == "application/jsonlines":
        probabilities = [p for line in answer.splitlines() for p in orjson.loads(line)["probabilities"]]
    else:
        assert media == "text/csv"
        probabilities = [float(v) for line in answer.decode().splitlines() for v in line.rsplit(",", 2)[1:]]
    assert probabilities and all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities)


@FUZZ
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_arbitrary_bytes_never_get_a_5xx(
    server: ServerProcess,
    connection: list[http.client.HTTPConnection],
    body: bytes,
    content_type: str,
    accept: str | None,
) -> None:
    check(server, connection, body, content_type, accept)


@FUZZ
@given(
    rows=st.lists(st.lists(CELLS, min_size=0, max_size=6), min_size=0, max_size=8),
    line_end=st.sampled_from(["\n", "\r\n"]),
    accept=ACCEPTS,
)
def test_csv_like_bodies_never_get_a_5xx(
    server: ServerProcess,
    connection: list[http.client.HTTPConnection],
    rows: list[list[str]],
    line_end: str,
    accept: str | None,
) -> None:
    body = line_end.join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
    check(server, connection, body, "text/csv", accept)


@settings(FUZZ, max_examples=300)
@given(
    document=st.one_of(
        JSON_VALUES, st.fixed_dictionaries({"instances": ROWS}), st.fixed_dictionaries({"instances": JSON_VALUES})
    ),
    accept=ACCEPTS,
)
def test_json_documents_never_get_a_5xx(
    server: ServerProcess, connection: list[http.client.HTTPConnection], document: object, accept: str | None
) -> None:
    check(server, connection, json.dumps(document).encode(), "application/json", accept)


@settings(FUZZ, max_examples=250)
@given(rows=ROWS, accept=ACCEPTS)
def test_jsonlines_bodies_never_get_a_5xx(
    server: ServerProcess, connection: list[http.client.HTTPConnection], rows: list[object], accept: str | None
) -> None:
    body = "\n".join(json.dumps(row) for row in rows).encode()
    check(server, connection, body, "application/jsonlines", accept)
