"""The process model: one listening socket, one worker process per core forked from here.

The parent binds the socket, forks the workers (they share it, so the kernel spreads connections), restarts a
worker that dies after loading, and on SIGTERM passes the signal on and exits when all workers have finished.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time

from serving.metrics import SharedMetrics
from serving.model import ModelDirectoryError, model_file, read_manifest
from serving.server import LOAD_FAILED_EXIT, RECYCLE_EXIT, SHUTDOWN_DEADLINE_S, configure_logging, run_worker
from serving.settings import ServeSettings

log = logging.getLogger("serving")

STARTUP_ERROR_EXIT = 2
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_PDEATHSIG = 1


def _listen(settings: ServeSettings) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _fork_worker(
    sock: socket.socket, settings: ServeSettings, metrics: SharedMetrics, index: int, replacement: bool = False
) -> int:
    # Signals stay blocked across the fork so the child never runs the parent's handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _stop_with_parent(parent)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            code = run_worker(sock, settings, metrics, index, replacement)
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            logging.shutdown()
            # Skip interpreter teardown: it would wait for a model-loading thread that no longer matters.
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    return pid


def _stop_with_parent(parent: int) -> None:
    """Ask Linux to send this worker SIGTERM when the parent dies, so a killed parent leaves no orphans."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: orphans are then possible, nothing else changes
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def serve(settings: ServeSettings) -> int:
    """Run the server until SIGTERM; returns the process exit code."""
    configure_logging()
    try:
        # Checked before binding, so a wrong directory or precision fails at once with a clear message.
        model_file(settings.model_dir, read_manifest(settings.model_dir), settings.precision)
    except ModelDirectoryError as bad:
        log.error("cannot serve: %s", bad)
        return STARTUP_ERROR_EXIT
    try:
        sock = _listen(settings)
    except OSError as bad:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, bad)
        return STARTUP_ERROR_EXIT
    metrics = SharedMetrics(settings.workers, recording=settings.record_metrics)
    log.info("listening on %s:%d with %d worker(s)", settings.host, settings.port, settings.workers)

    stopping: list[float] = []

    def on_stop(signum: int, _frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            for pid in workers:
                _signal(pid, signal.SIGTERM)
            # No worker is started after this, so the supervisor's copy of the listening socket goes now: the
            # workers close theirs once they took the backlog, and then new connections are refused instead of
            # hanging in a backlog nobody reads (Kubernetes and SageMaker stop routing to a terminating pod
            # only eventually).
            sock.close()

    workers: dict[int, int] = {}  # pid -> worker index
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    for index in range(settings.workers):
        workers[_fork_worker(sock, settings, metrics, index)] = index

    exit_code = 0
    killed: set[int] = set()  # workers the watchdog killed for not answering
    while workers:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stopping and time.monotonic() - stopping[0] > SHUTDOWN_DEADLINE_S + 2:
                for straggler in workers:
                    _signal(straggler, signal.SIGKILL)
            elif not stopping:
                killed |= _kill_unresponsive(workers, metrics, settings.worker_timeout_s, killed)
            time.sleep(0.05)
            continue
        index = workers.pop(pid)
        metrics.clear_ready(index)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            if code != 0:
                log.error("worker %d exited with %d during shutdown", index, code)
                exit_code = 1
            continue
        if code == LOAD_FAILED_EXIT:
            log.error("worker %d could not load the model; stopping", index)
            exit_code = LOAD_FAILED_EXIT
            on_stop(signal.SIGTERM, None)
            continue
        if pid in killed:
            killed.discard(pid)
            reason = "unresponsive"
        elif code == RECYCLE_EXIT:
            reason = "recycled"
            log.info("worker %d reached its request limit; starting its replacement", index)
        else:
            reason = "exited"
            log.error("worker %d exited unexpectedly with %d; starting a new one", index, code)
        metrics.count_restart(reason)
        workers[_fork_worker(sock, settings, metrics, index, replacement=True)] = index
    sock.close()
    return exit_code


def _kill_unresponsive(
    workers: dict[int, int], metrics: SharedMetrics, timeout_s: float, already: set[int]
) -> set[int]:
    """SIGKILL each loaded worker whose event loop has not ticked for `timeout_s` (SAGEMAKER_MODEL_SERVER_TIMEOUT:
    "deemed unresponsive and rebooted"); returns their pids. A loading worker is left alone: a large graph may
    take longer than the timeout to load."""
    now = time.monotonic()
    stuck = set()
    for pid, index in workers.items():
        if pid not in already and metrics.is_ready(index) and now - metrics.last_heartbeat(index) > timeout_s:
            log.error("worker %d has not answered for %.0f s; killing and replacing it", index, timeout_s)
            _signal(pid, signal.SIGKILL)
            stuck.add(pid)
    return stuck


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited already
        os.kill(pid, signum)


def main_serve(settings: ServeSettings) -> None:
    code = serve(settings)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
