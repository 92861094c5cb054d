"""The production-server behaviour of the serving container, each over a real socket: Date and HEAD, liveness
apart from readiness, Batch Transform's execution parameters, SageMaker's environment variables, the access
log, the per-worker connection limit, worker replacement (crash, watchdog, request limit) with counters that
never go down, and the metric families contract.

Sources: RFC 9110 6.6.1 (an origin server with a clock sends Date), 9.3.2 (HEAD: the same header fields as GET,
no content); SageMaker's developer guide, "Run Real-time Predictions with an Inference Pipeline"
(inference-pipeline-real-time.html: listen on SAGEMAKER_BIND_TO_PORT when set, else 8080, and declare the
Dockerfile label com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true); aws/sagemaker-inference-toolkit
src/sagemaker_inference/environment.py Environment (SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT
default 60: "timeout ... before [workers] are deemed unresponsive and rebooted"); "Custom Inference Code with
Batch Transform" (your-algorithms-batch-code.html) and aws/sagemaker-python-sdk src/sagemaker/local/entities.py
_LocalTransformJob.start, which reads BatchStrategy and MaxPayloadInMB from GET /execution-parameters
(TransformJobDefinition: BatchStrategy is MultiRecord or SingleRecord). Prometheus text format 0.0.4: a counter
only goes up, a decrease is read as a restart of the process.
"""

from __future__ import annotations

import email.utils
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from serving.metrics import METRIC_FAMILIES
from serving.settings import SettingsError, parse_settings
from tests.serving_model_fixture import write_model_dir
from tests.serving_raw_http import exchange, header, statuses, worker_pids
from tests.serving_server_process import REPO_ROOT, ServerProcess, free_port

ROW = b"1,2,3,red\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(model_dir, tmp_path_factory.mktemp("log") / "server.log", workers=2)
    try:
        process.wait_until(200)
        yield process
    finally:
        assert process.terminate() == 0


def metric(text: str, series: str) -> float:
    """The value of one series (name with its labels, exactly as rendered), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- Date and HEAD ---


def test_every_response_carries_an_imf_fixdate_date_header(server: ServerProcess) -> None:
    for method, path in (("GET", "/ping"), ("GET", "/nowhere"), ("POST", "/invocations")):
        _, headers, _ = server.request(method, path, ROW if method == "POST" else None, {"Content-Type": "text/csv"})
        date = headers["date"]
        assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", date), date
        assert email.utils.parsedate_to_datetime(date).tzname() == "UTC"


@pytest.mark.parametrize("path", ["/ping", "/livez", "/metrics", "/openapi.json", "/execution-parameters"])
def test_head_answers_wherever_get_does_with_the_same_headers_and_no_body(server: ServerProcess, path: str) -> None:
    get_status, get_headers, get_body = server.request("GET", path)
    # HEAD then GET on one connection: if HEAD sent a body, the GET's answer would be misread.
    data = (
        b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        % path.encode()
    )
    answer = exchange(server.port, data)
    head, after_head = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 %d " % get_status)
    assert header(head, "content-type") == get_headers["content-type"]
    if path != "/metrics":  # the metrics text changes between the two requests
        assert header(head, "content-length") == str(len(get_body))
    assert after_head.startswith(b"HTTP/1.1 200 OK")  # no body between HEAD's answer and the next one
    assert after_head.endswith(b'{"status":"alive"}')


def test_wrong_method_on_a_get_route_names_get_and_head_in_allow(server: ServerProcess) -> None:
    status, headers, body = server.request("DELETE", "/livez")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert orjson.loads(body)["error"]["expected"] == "GET or HEAD"


# --- liveness, Batch Transform ---


def test_livez_answers_200_while_ping_is_still_503(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_SERVING_LOAD_DELAY_S": "3"})
    try:
        server.wait_until(503)
        status, _, body = server.request("GET", "/livez")
        assert (status, orjson.loads(body)) == (200, {"status": "alive"})
        assert server.request("GET", "/ping")[0] == 503
    finally:
        assert server.terminate() == 0


def test_execution_parameters_offer_one_request_per_worker_and_the_6_mb_payload(server: ServerProcess) -> None:
    status, headers, body = server.request("GET", "/execution-parameters")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert orjson.loads(body) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 6}


# --- SageMaker's environment ---


def start_plain(model_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m serving serve --model-dir DIR` with no --port/--workers, as SageMaker starts the image."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "SAGEMAKER_"))}
    child_env |= {"PYTHONPATH": str(REPO_ROOT), **env}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "serving", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"],
            cwd=REPO_ROOT,
            env=child_env,
            stdout=out,
            stderr=out,
        )


def test_sagemaker_bind_to_port_and_workers_are_honoured(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    process = start_plain(
        model_dir,
        tmp_path / "log",
        {"SAGEMAKER_BIND_TO_PORT": str(port), "MLPLATFORM_SERVING_PORT": "1", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"},
    )
    try:
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline and statuses(answer) != [200]:
            try:
                answer = exchange(port, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            except OSError:
                time.sleep(0.1)
        assert statuses(answer) == [200], (tmp_path / "log").read_text()
        metrics = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").decode()
        assert "mlplatform_serving_workers 3" in metrics
        assert len(worker_pids(process.pid)) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_settings_precedence_flag_then_sagemaker_then_ours() -> None:
    env = {"SAGEMAKER_BIND_TO_PORT": "9001", "MLPLATFORM_SERVING_PORT": "9002", "SAGEMAKER_MODEL_SERVER_WORKERS": "5"}
    assert parse_settings([], env).port == 9001
    assert parse_settings(["--port", "9003"], env).port == 9003
    assert parse_settings([], {"MLPLATFORM_SERVING_PORT": "9002"}).port == 9002
    assert parse_settings([], env).workers == 5
    assert parse_settings([], env | {"MLPLATFORM_SERVING_WORKERS": "2"}).workers == 2
    assert parse_settings([], {}).worker_timeout_s == 60  # the toolkit's default
    assert parse_settings([], {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "120"}).worker_timeout_s == 120


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT='http' is not valid: expected an integer"),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "SAGEMAKER_MODEL_SERVER_WORKERS='0' is out of range"),
        ({"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1.5"}, "SAGEMAKER_MODEL_SERVER_TIMEOUT='1.5' is not valid"),
        ({"MLPLATFORM_SERVING_HEADER_TIMEOUT_S": "0"}, "MLPLATFORM_SERVING_HEADER_TIMEOUT_S='0' is out of range"),
        ({"MLPLATFORM_SERVING_MAX_CONNECTIONS": "lots"}, "MLPLATFORM_SERVING_MAX_CONNECTIONS='lots' is not valid"),
        (
            {"MLPLATFORM_SERVING_ACCESS_LOG": "yes"},
            "MLPLATFORM_SERVING_ACCESS_LOG='yes' is not valid: expected on or off",
        ),
    ],
)
def test_invalid_server_settings_name_the_variable_and_what_is_allowed(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse_settings([], env)


def test_the_dockerfile_declares_that_it_accepts_bind_to_port() -> None:
    dockerfile = (REPO_ROOT / "serving" / "Dockerfile").read_text()
    assert re.search(r"^\s+com\.amazonaws\.sagemaker\.capabilities\.accept-bind-to-port=true$", dockerfile, re.M)


# --- access log ---


def test_access_log_writes_one_json_line_per_request_when_on(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_SERVING_ACCESS_LOG": "on"})
    try:
        server.wait_until(200)
        server.request("POST", "/invocations", ROW * 3, {"Content-Type": "text/csv"})
        server.request("GET", "/nowhere?secret=1")
        assert statuses(exchange(server.port, b"BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n")) == [400]
    finally:
        assert server.terminate() == 0
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    by_path = {entry["path"]: entry for entry in lines}
    invocation = by_path["/invocations"]
    assert (invocation["method"], invocation["status"], invocation["rows"]) == ("POST", 200, 3)
    assert invocation["remote"] == "127.0.0.1" and invocation["duration_ms"] > 0 and invocation["bytes"] > 0
    assert by_path["/nowhere"]["status"] == 404  # the query string is left out of the log
    refused = [entry for entry in lines if entry["status"] == 400]
    assert [entry["method"] for entry in refused] == ["-"]  # never a guess at a method that did not parse
    assert all(set(entry) == {*invocation} for entry in lines)


def test_access_log_is_off_by_default(server: ServerProcess) -> None:
    server.request("GET", "/ping")
    assert not [line for line in server.log().splitlines() if line.startswith("{")]


# --- connections and workers ---


def test_at_the_connection_limit_a_new_connection_waits_until_one_closes(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_SERVING_MAX_CONNECTIONS": "2"})
    try:
        server.wait_until(200)
        held = [server.connection() for _ in range(2)]
        for connection in held:  # both accepted and served, then kept open
            connection.request("GET", "/ping")
            assert connection.getresponse().read() == b'{"status":"ready"}'
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as third:
            third.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with pytest.raises(TimeoutError):
                third.recv(100)  # queued in the backlog, not answered, not refused
            held[0].close()
            third.settimeout(10)
            assert third.recv(100).startswith(b"HTTP/1.1 200 OK")
        held[1].close()
    finally:
        assert server.terminate() == 0


def requests_total(server: ServerProcess) -> float:
    text = server.request("GET", "/metrics")[2].decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlplatform_serving_requests_total{")
    )


def test_a_killed_worker_is_replaced_and_no_counter_goes_down(model_dir: Path, tmp_path: Path) -> None:
    """One worker, so the killed one is surely the one that counted the requests."""
    server = ServerProcess(model_dir, tmp_path / "log", workers=1)
    try:
        server.wait_until(200)
        for _ in range(20):
            server.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
        before = requests_total(server)
        victim = worker_pids(server.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: worker_pids(server.process.pid) not in ([], [victim]))
        server.wait_until(200)
        text = server.request("GET", "/metrics")[2].decode()
        assert metric(text, 'mlplatform_serving_worker_restarts_total{reason="exited"}') == 1
        assert requests_total(server) >= before
        assert "mlplatform_serving_workers_ready 1" in text
    finally:
        assert server.terminate() == 0


def test_a_worker_that_stops_answering_is_killed_after_the_sagemaker_timeout(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"})
    try:
        server.wait_until(200)
        (stuck,) = worker_pids(server.process.pid)
        os.kill(stuck, signal.SIGSTOP)  # alive, but its event loop no longer runs
        wait_for(lambda: worker_pids(server.process.pid) not in ([], [stuck]))
        server.wait_until(200)
        text = server.request("GET", "/metrics")[2].decode()
        assert metric(text, 'mlplatform_serving_worker_restarts_total{reason="unresponsive"}') == 1
        assert "has not answered for 2 s; killing and replacing it" in server.log()
    finally:
        assert server.terminate() == 0


def test_a_worker_is_recycled_after_its_request_limit_without_failing_a_request(
    model_dir: Path, tmp_path: Path
) -> None:
    """MAX_REQUESTS=10 (jitter 10 % of 10 rounds down to 0): 44 requests on a keep-alive client that reconnects
    when told `Connection: close` all succeed, and each `Connection: close` was a worker reaching its limit."""
    server = ServerProcess(
        model_dir,
        tmp_path / "log",
        env={"MLPLATFORM_SERVING_MAX_REQUESTS": "10", "MLPLATFORM_SERVING_DRAIN_GRACE_S": "0"},
    )
    try:
        server.wait_until(200)  # 1 request
        first = worker_pids(server.process.pid)
        connection = server.connection()
        closes = 0
        for _ in range(44):
            connection.request("POST", "/invocations", body=ROW, headers={"Content-Type": "text/csv"})
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            if response.getheader("Connection") == "close":
                closes += 1
                connection.close()
                connection = server.connection()
        connection.close()
        assert closes >= 4  # 44 requests, plus the /ping polls while loading, over workers of 10 each
        wait_for(lambda: metric(server.request("GET", "/metrics")[2].decode(), RECYCLED) >= closes)
        assert worker_pids(server.process.pid) != first
    finally:
        assert server.terminate() == 0


RECYCLED = 'mlplatform_serving_worker_restarts_total{reason="recycled"}'


# --- the metrics contract ---


def test_metrics_declare_exactly_the_metric_families_contract(server: ServerProcess) -> None:
    text = server.request("GET", "/metrics")[2].decode()
    declared = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
    assert declared == [(family.name, family.type) for family in METRIC_FAMILIES]
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, flags=re.MULTILINE))
    assert helps == {family.name: family.help for family in METRIC_FAMILIES}
    for family in METRIC_FAMILIES:
        for labels in re.findall(rf"^{family.name}(?:_bucket|_sum|_count)?\{{([^}}]*)\}}", text, flags=re.MULTILINE):
            names = {pair.split("=", 1)[0] for pair in labels.split(",")} - {"le"}
            assert names == set(family.labels), (family.name, labels)
    assert 'mlplatform_serving_worker_restarts_total{reason="exited"} 0' in text
    assert metric(text, "mlplatform_serving_connections") >= 1  # this scrape's own connection
