"""The serving process from start to SIGTERM: readiness, startup errors, precision choice, graceful shutdown."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from serving import codec
from serving.model import LoadedModel
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import REPO_ROOT, ServerProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


def run_to_exit(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
    child_env.update(env, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_ping_is_503_while_loading_then_200(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", workers=2, env={"MLPLATFORM_SERVING_LOAD_DELAY_S": "2"})
    try:
        server.wait_until(503)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)  # the contract's 2 s
        connection.request("GET", "/ping")
        response = connection.getresponse()
        assert (response.status, orjson.loads(response.read())) == (503, {"status": "loading"})
        connection.request("POST", "/invocations", body=b"1,2,3,red", headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        assert response.status == 503
        assert orjson.loads(response.read())["error"]["message"] == "the model is still loading"
        connection.close()
        server.wait_until(200)
        status, _, _ = server.request("POST", "/invocations", b"1,2,3,red", {"Content-Type": "text/csv"})
        assert status == 200
    finally:
        assert server.terminate() == 0


def test_sigterm_while_loading_exits_cleanly(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_SERVING_LOAD_DELAY_S": "60"})
    server.wait_until(503)
    assert server.terminate(timeout=30) == 0


def test_sigterm_under_load_answers_every_request_sent_before_it(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", workers=2)
    server.wait_until(200)
    rng = np.random.default_rng(3)
    body = "\n".join(f"{a:.4f},{b:.4f},{c:.4f},red" for a, b, c in rng.normal(0, 5, (1000, 3))).encode()
    results: list[tuple[float, int | str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        connection = server.connection(timeout=30)
        while not stop.is_set():
            sent = time.monotonic()
            try:
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
                response = connection.getresponse()
                response.read()
                outcome: int | str = response.status
            except OSError as error:  # refused or closed: only allowed for requests sent after SIGTERM
                outcome = type(error).__name__
                connection.close()
                connection = server.connection(timeout=30)
                time.sleep(0.01)
            with lock:
                results.append((sent, outcome))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        while len(results) < 50:
            time.sleep(0.05)
        killed_at = time.monotonic()
        code = server.terminate(timeout=30)
        stopped_at = time.monotonic()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    before = [outcome for sent, outcome in results if sent < killed_at]
    assert len(before) >= 50
    assert all(outcome == 200 for outcome in before), [o for o in before if o != 200]
    assert code == 0, server.log()
    assert stopped_at - killed_at < 30


def test_int8_precision_serves_the_quantized_graph(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_MODEL_PRECISION": "int8"})
    try:
        server.wait_until(200)
        status, _, body = server.request("POST", "/invocations", b"1,2,3,red\n", {"Content-Type": "text/csv"})
    finally:
        server.terminate()
    int8 = LoadedModel(model_dir, "int8")
    expected = int8.predict(codec.decode_csv(b"1,2,3,red\n", int8.manifest))
    assert status == 200
    got = np.array(orjson.loads(body)["predictions"][0]["probabilities"], dtype=np.float32)
    np.testing.assert_array_equal(got, expected[0])


def test_invalid_precision_is_a_clear_startup_error(model_dir: Path) -> None:
    result = run_to_exit(
        ["serve", "--model-dir", str(model_dir), "--port", "0"], {"MLPLATFORM_MODEL_PRECISION": "fp16"}
    )
    assert result.returncode == 2
    assert "MLPLATFORM_MODEL_PRECISION='fp16' is not valid: expected one of fp32, int8" in result.stderr


def test_missing_model_directory_is_a_clear_startup_error(tmp_path: Path) -> None:
    result = run_to_exit(["serve", "--model-dir", str(tmp_path / "none"), "--port", "0"], {})
    assert result.returncode == 2
    assert "manifest.json is missing" in result.stderr


def test_a_graph_onnxruntime_cannot_load_stops_the_server(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_bytes((model_dir / "manifest.json").read_bytes())
    (broken / "model.onnx").write_bytes(b"not a graph")
    (broken / "model.int8.onnx").write_bytes(b"not a graph")
    result = run_to_exit(["serve", "--model-dir", str(broken), "--port", "0", "--workers", "1"], {})
    assert result.returncode == 3
    assert "onnxruntime cannot load the graph" in result.stderr


def test_the_serve_command_is_required() -> None:
    result = run_to_exit(["train"], {})
    assert result.returncode == 2
    assert "expected the command 'serve' or 'batch', got 'train'" in result.stderr


def test_workers_stop_when_the_parent_is_killed(model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(model_dir, tmp_path / "log", workers=2)
    try:
        server.wait_until(200)
        pid = server.process.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert len(children) == 2
        server.process.kill()
        server.process.wait(10)
        deadline = time.monotonic() + 20
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [c for c in alive if Path(f"/proc/{c}").exists() and "zombie" not in _state(c)]
            time.sleep(0.05)
        assert alive == [], "workers outlived their killed parent"
    finally:
        server.terminate()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_after_sigterm_new_connections_are_refused_not_left_hanging(model_dir: Path, tmp_path: Path) -> None:
    """A listening socket stays open while any process holds it: the kernel then completes new connections
    into a backlog nobody accepts, and they hang until reset. After SIGTERM the supervisor and each worker (once
    it took the backlog) close their copies; an idle keep-alive connection keeps the worker draining meanwhile."""
    import socket

    server = ServerProcess(model_dir, tmp_path / "log", env={"MLPLATFORM_SERVING_DRAIN_GRACE_S": "6"})
    server.wait_until(200)
    idle = server.connection(timeout=10)
    idle.request("GET", "/ping")
    idle.getresponse().read()
    server.process.send_signal(15)
    time.sleep(1.5)
    assert server.process.poll() is None  # still draining the idle connection
    probe = socket.socket()
    probe.settimeout(3)
    try:
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", server.port))
    finally:
        probe.close()
        idle.close()
        assert server.terminate() == 0
