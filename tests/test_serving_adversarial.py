"""Hostile clients against the real server over raw sockets: oversized heads, huge URLs, slowloris, smuggling
attempts, bad chunking, pipelining abuse and many connections. None may get a 5xx or crash the worker, and
the worker's memory stays bounded through all of them.

What the server must do is HTTP/1.1's own rules: RFC 9112 (message syntax: 2.2 a bare request line is not
HTTP/1.1; 3 a server answers 414 to a request target longer than it accepts; 6.1 a request with both
Transfer-Encoding and Content-Length, or a Transfer-Encoding whose final coding is not chunked, is refused;
6.3 a message with invalid or duplicate conflicting Content-Length is unrecoverable; 7.1 chunk sizes are hex;
9.3 the server may close an idle connection), RFC 9110 (15.5.9 408; 15.5.14 413) and RFC 6585 5 (431).
httptools (llhttp) enforces the syntax; serving/server.py adds the size limits and timeouts these tests name.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from serving.settings import MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_URL_BYTES
from tests.serving_model_fixture import write_model_dir
from tests.serving_raw_http import exchange, header, rss_bytes, statuses, worker_pids
from tests.serving_server_process import ServerProcess

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 64
RSS_GROWTH_LIMIT = 40 * 1024 * 1024
ROW = b"1,2,3,red\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model_dir: Path = write_model_dir(tmp_path_factory.mktemp("model"))
    process = ServerProcess(
        model_dir,
        tmp_path_factory.mktemp("log") / "server.log",
        workers=1,
        env={
            "MLPLATFORM_SERVING_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "MLPLATFORM_SERVING_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "MLPLATFORM_SERVING_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        },
    )
    try:
        process.wait_until(200)
        yield process
    finally:
        assert process.terminate() == 0
        assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module")
def worker_before(server: ServerProcess) -> tuple[int, int]:
    """The worker's pid and its RSS before the first hostile case (after some warm-up traffic)."""
    for _ in range(50):
        assert server.request("POST", "/invocations", ROW * 10, {"Content-Type": "text/csv"})[0] == 200
    (pid,) = worker_pids(server.process.pid)
    return pid, rss_bytes(pid)


def request(method: bytes, target: bytes, headers: bytes = b"", body: bytes = b"") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n%s" % (method, target, headers, body)


def post(body: bytes, extra: bytes = b"", content_type: bytes = b"text/csv") -> bytes:
    return request(
        b"POST",
        b"/invocations",
        b"Content-Type: %s\r\nContent-Length: %d\r\n%s" % (content_type, len(body), extra),
        body,
    )


def chunked(body: bytes, extra: bytes = b"") -> bytes:
    return request(b"POST", b"/invocations", b"Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n" + extra) + body


# name -> (bytes sent at once, the status the first answer must have)
SINGLE_SHOT: dict[str, tuple[bytes, int]] = {
    "url_over_the_limit": (request(b"GET", b"/ping?" + b"a" * MAX_URL_BYTES), 414),
    "one_header_of_64_kib": (request(b"GET", b"/ping", b"X-Big: " + b"v" * 65536 + b"\r\n"), 431),
    "too_many_header_fields": (
        request(b"GET", b"/ping", b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADER_FIELDS + 1))),
        431,
    ),
    "many_medium_headers_over_the_byte_limit": (
        request(b"GET", b"/ping", b"".join(b"X-%d: %s\r\n" % (i, b"v" * 600) for i in range(60))),
        431,
    ),
    "nul_byte_in_a_header_value": (request(b"GET", b"/ping", b"X-A: a\x00b\r\n"), 400),
    "space_before_the_header_colon": (request(b"GET", b"/ping", b"X-A : b\r\n"), 400),
    "obsolete_line_folding": (request(b"GET", b"/ping", b"X-A: a\r\n folded\r\n"), 400),
    "content_length_and_transfer_encoding": (
        request(b"POST", b"/invocations", b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    "conflicting_content_lengths": (
        request(b"POST", b"/invocations", b"Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"),
        400,
    ),
    "negative_content_length": (request(b"POST", b"/invocations", b"Content-Length: -1\r\n"), 400),
    "content_length_with_a_plus_sign": (request(b"POST", b"/invocations", b"Content-Length: +3\r\n", b"1,2"), 400),
    "content_length_beyond_64_bits": (
        request(b"POST", b"/invocations", b"Content-Length: 99999999999999999999\r\n"),
        400,
    ),
    "gzip_then_chunked_transfer_coding": (
        request(b"POST", b"/invocations", b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    "chunked_then_gzip_transfer_coding": (
        request(b"POST", b"/invocations", b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
        400,
    ),
    "chunk_size_not_hex": (chunked(b"zz\r\n1,2\r\n0\r\n\r\n"), 400),
    "chunk_size_overflowing_64_bits": (chunked(b"fffffffffffffffffffff\r\n1\r\n0\r\n\r\n"), 400),
    "chunk_data_longer_than_its_size": (chunked(b"2\r\n1,2,3,red\r\n0\r\n\r\n"), 400),
    "empty_chunked_body": (chunked(b"0\r\n\r\n"), 400),
    "chunked_body_with_trailers_answered": (chunked(b"a\r\n1,2,3,red\n\r\n0\r\nX-Trailer: 1\r\n\r\n"), 200),
    "http_0_9_request_line": (b"GET /ping\r\n\r\n", 400),
    "http_2_preface_on_http_1": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "unknown_method": (request(b"BREW", b"/ping"), 400),
    "connect_tunnel": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 404),
    # RFC 9110 7.8: a server may ignore Upgrade and answer as HTTP/1.1 (the connection is closed after it)
    "websocket_upgrade_ignored": (
        request(b"GET", b"/ping", b"Connection: Upgrade\r\nUpgrade: websocket\r\n") + b"\x81\x85garbage",
        200,
    ),
    "lowercase_protocol_name": (b"GET /ping http/1.1\r\nHost: x\r\n\r\n", 400),
    "control_character_in_the_target": (b"GET /pi\x01ng HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "absolute_form_target_to_another_host": (request(b"GET", b"http://evil.example/ping"), 404),
    "dot_segments_in_the_target": (request(b"GET", b"/../../etc/passwd"), 404),
    "invalid_percent_encoding": (request(b"GET", b"/%zz%ff"), 404),
    "raw_non_ascii_bytes_in_the_target": (request(b"GET", b"/\xc3\x28"), 400),
    "over_limit_length_with_expect_continue": (
        request(
            b"POST", b"/invocations", b"Content-Type: text/csv\r\nContent-Length: 7000000\r\nExpect: 100-continue\r\n"
        ),
        413,
    ),
    "accept_header_of_20_kib": (post(ROW, b"Accept: " + b"x/y," * 5000 + b"\r\n"), 406),
    "charset_the_server_cannot_read": (post(ROW, content_type=b"text/csv; charset=utf-16"), 415),
    "json_nested_100000_deep": (post(b"[" * 100000 + b"]" * 100000, content_type=b"application/json"), 400),
    "csv_row_of_a_million_commas": (post(b"," * 1_000_000), 400),
    "get_with_a_body": (request(b"GET", b"/ping", b"Content-Length: 5\r\n", b"hello"), 200),
}


@pytest.mark.parametrize("case", list(SINGLE_SHOT))
def test_hostile_request_gets_its_4xx_and_never_a_5xx(server: ServerProcess, worker_before: object, case: str) -> None:
    data, expected = SINGLE_SHOT[case]
    answer = exchange(server.port, data, read_timeout_s=3)
    codes = statuses(answer)
    assert codes, f"{case}: no answer at all: {answer[:200]!r}"
    assert codes[0] == expected, f"{case}: {answer[:400]!r}"
    assert all(code < 500 for code in codes)
    if expected >= 400:
        body = answer.split(b"\r\n\r\n", 1)[1]
        message = orjson.loads(body[: int(header(answer, "content-length") or 0)])["error"]["message"]
        assert isinstance(message, str) and message
        if expected in (413, 414, 431):  # the rest of such a request is not read: the connection must end
            assert header(answer, "connection") == "close"


def test_a_48_mib_header_is_cut_off_near_the_limit(server: ServerProcess, worker_before: tuple[int, int]) -> None:
    """The issue's case: one header of 48 MiB. The server answers 431 once it has more than MAX_HEADER_BYTES
    and closes; it never holds the rest."""
    pid, _ = worker_before
    before = rss_bytes(pid)
    head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Huge: "
    parts = [head, *(b"v" * (1024 * 1024) for _ in range(48))]
    answer = exchange(server.port, parts, read_timeout_s=5)
    assert statuses(answer) in ([431], []), answer[:300]  # [] when the reset overtook the answer
    assert rss_bytes(pid) - before < 8 * 1024 * 1024
    assert server.request("GET", "/ping")[0] == 200


def test_a_10_mib_url_is_cut_off_with_414(server: ServerProcess, worker_before: object) -> None:
    parts = [b"GET /", *(b"a" * (1024 * 1024) for _ in range(10))]
    answer = exchange(server.port, parts, read_timeout_s=5)
    assert statuses(answer) in ([414], [])
    assert MAX_HEADER_BYTES < 10 * 1024 * 1024


def test_slowloris_headers_get_408_after_the_header_timeout(server: ServerProcess, worker_before: object) -> None:
    trickle = [b"GET /ping HTTP/1.1\r\n", *(b"X-%d: 1\r\n" % i for i in range(40))]
    answer = exchange(server.port, trickle, pause_s=0.1, read_timeout_s=5)
    assert statuses(answer) == [408]
    assert b"did not arrive within 1 s" in answer
    assert header(answer, "connection") == "close"


def test_slowloris_body_gets_408_after_the_body_timeout(server: ServerProcess, worker_before: object) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n"
    answer = exchange(server.port, [head, *(b"1" for _ in range(40))], pause_s=0.1, read_timeout_s=5)
    assert statuses(answer) == [408]
    assert b"request body did not arrive" in answer


def test_a_stalled_body_gets_408(server: ServerProcess, worker_before: object) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n1,2"
    assert statuses(exchange(server.port, head, read_timeout_s=5)) == [408]


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess, worker_before: object) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert sock.recv(100) == b""  # closed by the server (a timeout here would raise)


def test_two_hundred_pipelined_requests_are_all_answered_in_order(server: ServerProcess, worker_before: object) -> None:
    batch = (request(b"GET", b"/ping") + post(ROW, b"Accept: text/csv\r\n")) * 100
    answer = exchange(server.port, batch + request(b"GET", b"/ping", b"Connection: close\r\n"), read_timeout_s=5)
    assert statuses(answer) == [200] * 201


def test_a_malformed_request_in_a_pipeline_ends_the_connection_after_the_good_ones(
    server: ServerProcess, worker_before: object
) -> None:
    answer = exchange(server.port, request(b"GET", b"/ping") + b"GARBAGE\r\n\r\n" + request(b"GET", b"/ping"))
    assert statuses(answer) == [200, 400]


def test_a_client_that_pipelines_megabytes_without_reading_is_throttled_not_buffered(
    server: ServerProcess, worker_before: tuple[int, int]
) -> None:
    """Responses are written only as fast as the client reads them: the worker stops reading from a client whose
    answers pile up (pause_writing), so sending 20 MB of requests does not make the worker hold 20 MB."""
    pid, _ = worker_before
    before = rss_bytes(pid)
    one = request(b"GET", b"/openapi.json")
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            while sent < 20_000_000:
                sock.sendall(one * 1000)
                sent += len(one) * 1000
        except (TimeoutError, OSError):
            pass  # the server stopped reading: back-pressure reached the client
        assert rss_bytes(pid) - before < 16 * 1024 * 1024
    assert sent < 20_000_000, "the server kept reading requests whose answers nobody read"
    assert server.request("GET", "/ping")[0] == 200


def test_expect_continue_gets_100_then_the_answer(server: ServerProcess, worker_before: object) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n" % len(ROW)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(ROW)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert statuses(answer) == [200]


def test_a_client_that_closes_mid_body_leaves_the_worker_healthy(server: ServerProcess, worker_before: object) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 5000\r\n\r\n1,2"
        )
    assert server.request("GET", "/ping")[0] == 200


def test_a_half_closed_client_still_gets_its_answer(server: ServerProcess, worker_before: object) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(post(ROW))
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert statuses(answer) == [200]


def test_many_connections_beyond_the_limit_wait_and_are_then_served(
    server: ServerProcess, worker_before: object
) -> None:
    """Three times the per-worker limit at once: the worker holds at most MAX_CONNECTIONS, the rest wait in the
    kernel's backlog, and every one is answered once earlier ones close."""
    socks = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(request(b"GET", b"/ping", b"Connection: close\r\n"))
            socks.append(sock)
        answers = []
        for sock in socks:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            answers.append(statuses(answer))
    finally:
        for sock in socks:
            sock.close()
    assert answers == [[200]] * (3 * MAX_CONNECTIONS)


def test_idle_connections_over_the_limit_do_not_lock_out_others_forever(
    server: ServerProcess, worker_before: object
) -> None:
    """MAX_CONNECTIONS idle sockets fill the worker; the header timeout frees it, so a new client is served."""
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        answer = exchange(server.port, request(b"GET", b"/ping", b"Connection: close\r\n"), read_timeout_s=10)
        assert statuses(answer) == [200]
    finally:
        for sock in idle:
            sock.close()


def test_after_every_hostile_case_the_same_worker_serves_with_bounded_memory(
    server: ServerProcess, worker_before: tuple[int, int]
) -> None:
    pid, rss_before = worker_before
    time.sleep(0.2)
    assert worker_pids(server.process.pid) == [pid], "the worker was replaced: it crashed on a hostile request"
    assert rss_bytes(pid) - rss_before < RSS_GROWTH_LIMIT
    metrics = server.request("GET", "/metrics")[2].decode()
    assert 'status="500"' not in metrics and 'status="other"' not in metrics
    assert 'mlplatform_serving_worker_restarts_total{reason="exited"} 0' in metrics
    assert server.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})[0] == 200
