"""The serving container over real HTTP on 127.0.0.1: routes, content types, batches and every refusal."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from serving import codec
from serving.model import LoadedModel
from serving.settings import MAX_BODY_BYTES
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess

CSV_ROWS = b"1,2,3,red\n40,-2,0.5,blue\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> LoadedModel:
    return LoadedModel(model_dir, "fp32")


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(model_dir, tmp_path_factory.mktemp("log") / "server.log", workers=2)
    try:
        process.wait_until(200)
        yield process
    finally:
        assert process.terminate() == 0
        assert "Traceback" not in process.log(), process.log()


def invoke(
    server: ServerProcess, body: bytes, content_type: str | None = "text/csv", accept: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return server.request("POST", "/invocations", body, headers)


def error_of(body: bytes) -> dict[str, object]:
    return orjson.loads(body)["error"]


def expected_probabilities(reference: LoadedModel, csv_body: bytes) -> np.ndarray:
    return reference.predict(codec.decode_csv(csv_body, reference.manifest))


# --- routes ---


def test_ping_answers_200_once_loaded(server: ServerProcess) -> None:
    status, headers, body = server.request("GET", "/ping")
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"status": "ready"})


def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(server: ServerProcess) -> None:
    status, _, body = server.request("GET", "/nowhere")
    assert status == 404 and "no route '/nowhere'" in str(error_of(body)["message"])
    status, headers, _ = server.request("GET", "/invocations")
    assert (status, headers["allow"]) == (405, "POST")
    status, headers, _ = server.request("POST", "/ping", b"")
    assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_openapi_document_is_served_and_lists_the_routes(server: ServerProcess) -> None:
    status, _, body = server.request("GET", "/openapi.json")
    assert status == 200
    assert set(json.loads(body)["paths"]) == {
        "/ping",
        "/livez",
        "/invocations",
        "/metrics",
        "/execution-parameters",
        "/openapi.json",
    }


# --- content types in, content types out ---


def test_csv_request_gets_json_predictions_matching_onnxruntime(server: ServerProcess, reference: LoadedModel) -> None:
    status, headers, body = invoke(server, CSV_ROWS)
    assert (status, headers["content-type"]) == (200, "application/json")
    answer = orjson.loads(body)
    expected = expected_probabilities(reference, CSV_ROWS)
    assert answer["classes"] == ["0", "1"]
    got = np.array([p["probabilities"] for p in answer["predictions"]], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert [p["label"] for p in answer["predictions"]] == [["0", "1"][i] for i in expected.argmax(axis=1)]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"instances": [[1, 2, 3, "red"], [40, -2, 0.5, "blue"]]}'),
        (
            "application/json",
            b'{"instances": [{"age": 1, "income": 2, "score": 3, "colour": "red"},'
            b' {"colour": "blue", "age": 40, "income": -2, "score": 0.5}]}',
        ),
        ("application/jsonlines", b'[1, 2, 3, "red"]\n{"age": 40, "income": -2, "score": 0.5, "colour": "blue"}\n'),
        ("text/csv; charset=utf-8", CSV_ROWS),
    ],
)
def test_every_request_type_gives_the_same_predictions(
    server: ServerProcess, reference: LoadedModel, content_type: str, body: bytes
) -> None:
    status, _, answer = invoke(server, body, content_type)
    assert status == 200, answer
    got = np.array([p["probabilities"] for p in orjson.loads(answer)["predictions"]], dtype=np.float32)
    np.testing.assert_array_equal(got, expected_probabilities(reference, CSV_ROWS))


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/csv", "text/csv"),
        ("application/jsonlines", "application/jsonlines"),
        ("text/html, text/csv;q=0.8", "text/csv"),
    ],
)
def test_accept_chooses_the_response_type(server: ServerProcess, accept: str | None, content_type: str) -> None:
    status, headers, _ = invoke(server, CSV_ROWS, accept=accept)
    assert (status, headers["content-type"]) == (200, content_type)


def test_csv_response_has_label_and_probabilities_per_line(server: ServerProcess, reference: LoadedModel) -> None:
    _, _, body = invoke(server, CSV_ROWS, accept="text/csv")
    lines = body.decode().splitlines()
    expected = expected_probabilities(reference, CSV_ROWS)
    assert len(lines) == 2
    for line, row in zip(lines, expected, strict=True):
        label, *probabilities = line.split(",")
        assert label == ["0", "1"][int(row.argmax())]
        np.testing.assert_array_equal(np.array(probabilities, dtype=np.float32), row)


def test_unknown_category_is_answered_and_named_in_the_response(server: ServerProcess) -> None:
    status, _, body = invoke(server, b"1,2,3,purple\n1,2,3,red\n")
    assert status == 200
    first, second = orjson.loads(body)["predictions"]
    assert first["unknown_categories"] == ["colour"]
    assert "unknown_categories" not in second


def test_a_1000_row_batch_is_answered_row_for_row(server: ServerProcess, reference: LoadedModel) -> None:
    rng = np.random.default_rng(1)
    colours = np.array(["red", "blue", "green", "unseen"])
    rows = [
        f"{a:.5f},{b:.5f},{c:.5f},{colours[k]}"
        for a, b, c, k in zip(*rng.normal(0, 20, (3, 1000)), rng.integers(0, 4, 1000), strict=True)
    ]
    body = ("\n".join(rows) + "\n").encode()
    status, _, answer = invoke(server, body)
    assert status == 200
    predictions = orjson.loads(answer)["predictions"]
    assert len(predictions) == 1000
    got = np.array([p["probabilities"] for p in predictions], dtype=np.float32)
    np.testing.assert_array_equal(got, expected_probabilities(reference, body))


def test_body_of_exactly_the_limit_is_accepted(server: ServerProcess) -> None:
    row = b"1,2,3,red\n"
    body = row * (MAX_BODY_BYTES // len(row))
    body += b"\n" * (MAX_BODY_BYTES - len(body))  # trailing line breaks are allowed
    assert len(body) == MAX_BODY_BYTES
    status, _, answer = invoke(server, body, accept="text/csv")
    assert status == 200
    assert answer.count(b"\n") == MAX_BODY_BYTES // len(row)


# --- refusals: 4xx with a JSON error, never 5xx ---


@pytest.mark.parametrize(
    ("body", "content_type", "row", "column", "expected"),
    [
        (b"1,2,x,red\n", "text/csv", 0, 2, codec.NUMBER),
        (b"1,2,3,red\n1,2\n", "text/csv", 1, None, "4 values in this order: age, income, score, colour"),
        (b"1,2,3,red\nnan,2,3,red\n", "text/csv", 1, 0, codec.NUMBER),
        (b"1,2,-inf,red\n", "text/csv", 0, 2, codec.NUMBER),
        (b'{"instances": [[1, 2, 3, "red"], [1, true, 3, "red"]]}', "application/json", 1, 1, codec.NUMBER),
        (b'{"instances": [[1, 2, 3, 4]]}', "application/json", 0, 3, codec.CATEGORY),
        (b'{"instances": [[1, 2, 3', "application/json", None, None, 'a JSON object {"instances": [row, ...]}'),
        (
            b'[1, 2, 3, "red"]\n[1, 2]\n',
            "application/jsonlines",
            1,
            None,
            "4 values in this order: age, income, score, colour",
        ),
    ],
)
def test_bad_input_is_400_naming_row_column_and_expectation(
    server: ServerProcess, body: bytes, content_type: str, row: int | None, column: int | None, expected: str
) -> None:
    status, headers, answer = invoke(server, body, content_type)
    assert (status, headers["content-type"]) == (400, "application/json")
    error = error_of(answer)
    assert (error["row"], error["column"], error["expected"]) == (row, column, expected)


@pytest.mark.parametrize("content_type", ["text/csv", "application/json", "application/jsonlines"])
def test_empty_body_is_400(server: ServerProcess, content_type: str) -> None:
    status, _, answer = invoke(server, b"", content_type)
    assert status == 400
    assert error_of(answer)["message"] == "the request body is empty"


@pytest.mark.parametrize("content_type", [None, "application/xml", "text/plain", "text/csv; charset=utf-16"])
def test_unsupported_content_type_is_415(server: ServerProcess, content_type: str | None) -> None:
    status, _, answer = invoke(server, CSV_ROWS, content_type)
    assert status == 415
    assert "text/csv" in str(error_of(answer)["expected"])


def test_unsupported_accept_is_406(server: ServerProcess) -> None:
    status, _, answer = invoke(server, CSV_ROWS, accept="text/html")
    assert status == 406
    assert error_of(answer)["expected"] == "one of application/json, text/csv, application/jsonlines"


def test_declared_body_over_6_mib_is_413_before_it_is_sent(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)
        )
        answer = sock.recv(65536)  # no body sent: the server answers from the headers alone
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer
    assert b"larger than 6291456 bytes" in answer


def test_chunked_body_over_6_mib_is_413_while_reading(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"1,2,3,red\n" * 104858  # about 1 MiB each

    connection = server.connection()
    try:
        connection.request(
            "POST", "/invocations", body=chunks(), headers={"Content-Type": "text/csv"}, encode_chunked=True
        )
        response = connection.getresponse()
        assert response.status == 413
        assert "larger than 6291456 bytes" in str(error_of(response.read())["message"])
    finally:
        connection.close()


def test_malformed_http_is_400_and_the_server_keeps_serving(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert server.request("GET", "/ping")[0] == 200


def test_keep_alive_connection_survives_a_refused_request(server: ServerProcess) -> None:
    connection = server.connection()
    try:
        connection.request("POST", "/invocations", body=b"oops", headers={"Content-Type": "text/csv"})
        first = connection.getresponse()
        first.read()
        connection.request("POST", "/invocations", body=CSV_ROWS, headers={"Content-Type": "text/csv"})
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()
    assert (first.status, second.status) == (400, 200)


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
        b"Content-Length: %d\r\n\r\n%s"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request % (10, b"1,2,3,red\n") + request % (4, b"oops"))
        reader = sock.makefile("rb")
        statuses = []
        for _ in range(2):
            status = int(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            statuses.append(status)
    assert statuses == [200, 400]


# --- metrics ---


def test_metrics_count_requests_by_status_and_time_them(server: ServerProcess) -> None:
    def counter(text: str, status: str) -> float:
        prefix = f'mlplatform_serving_requests_total{{path="/invocations",status="{status}"}} '
        return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))

    before = server.request("GET", "/metrics")[2].decode()
    for _ in range(6):  # spread over both workers
        invoke(server, CSV_ROWS)
    invoke(server, b"x", "text/csv")
    status, headers, body = server.request("GET", "/metrics")
    after = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert counter(after, "200") - counter(before, "200") == 6
    assert counter(after, "400") - counter(before, "400") == 1
    assert "# TYPE mlplatform_serving_request_duration_seconds histogram" in after
    assert 'mlplatform_serving_request_duration_seconds_bucket{path="/invocations",le="+Inf"}' in after
    assert "mlplatform_serving_workers_ready 2" in after
