"""Runs `python -m serving serve` in a subprocess on a free loopback port, for the serving tests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """The serving container's entrypoint as a child process, with helpers to talk to it over HTTP."""

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
        child_env.update(env or {})
        child_env["PYTHONPATH"] = str(REPO_ROOT)
        self._log = log_path.open("wb")
        args = [sys.executable, "-m", "serving", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--workers", str(workers), *extra_args]
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, env=child_env, stdout=self._log, stderr=self._log)

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def ping_status(self) -> int | None:
        try:
            return self.request("GET", "/ping")[0]
        except OSError:
            return None

    def wait_until(self, status: int, timeout: float = 30.0) -> None:
        """Poll /ping until it answers `status`; fail with the server's log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            if self.ping_status() == status:
                return
            time.sleep(0.05)
        raise AssertionError(f"/ping never answered {status} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as SageMaker sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()
