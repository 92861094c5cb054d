"""A minimal HTTP/1.1 server on asyncio protocols and httptools' parser, one per worker process.

Chosen over uvicorn + Starlette and granian by measurement (serving/README.md): requests are small and
answered synchronously, so parsing callbacks that call the app directly leave nothing to schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
import time
from http import HTTPStatus
from typing import cast

import httptools

from serving.app import InferenceApp, Response, error
from serving.metrics import SharedMetrics
from serving.model import LoadedModel, ModelDirectoryError
from serving.settings import MAX_BODY_BYTES, ServeSettings

log = logging.getLogger("serving")

LOAD_FAILED_EXIT = 3
KEEP_ALIVE_S = 75.0  # above the idle timeouts of common load balancers, so they close first
SHUTDOWN_DEADLINE_S = 25.0  # SageMaker sends SIGKILL 30 s after SIGTERM
_DISCARD_LIMIT = 4 * MAX_BODY_BYTES  # after a 413, how much more body we read (and drop) before closing
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_TOO_LARGE = error(
    413,
    f"the request body is larger than {MAX_BODY_BYTES} bytes",
    f"at most {MAX_BODY_BYTES} bytes (SageMaker's payload limit); split the rows over several requests",
)


class Worker:
    """One process's server: connections, the app, and the shutdown sequence."""

    def __init__(self, app: InferenceApp, metrics: SharedMetrics, settings: ServeSettings) -> None:
        self.app = app
        self.metrics = metrics
        self.settings = settings
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.closing_idle = False
        self.done = asyncio.Event()

    def connection_closed(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        if self.draining and not self.connections:
            self.done.set()


class HttpConnection(asyncio.Protocol):
    """One client connection: httptools calls back per request part; the app answers synchronously."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.in_request = False
        self.url = b""
        self.content_type: str | None = None
        self.accept: str | None = None
        self.expect_continue = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.too_large = False
        self.started = 0.0
        self.last_active = time.monotonic()
        self.paused = False

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.worker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.worker.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._answer_and_close(error(400, "protocol upgrades are not supported", "HTTP/1.1 requests"))
        except httptools.HttpParserError as bad:
            if self.too_large:
                self._close()
            else:
                self._answer_and_close(error(400, f"malformed HTTP request: {bad}", "an HTTP/1.1 request"))

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        if self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    # --- httptools callbacks ---
    def on_message_begin(self) -> None:
        self.in_request = True
        self.started = time.perf_counter()
        self.url = b""
        self.content_type = None
        self.accept = None
        self.expect_continue = False
        self.body = []
        self.body_size = 0
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name == b"accept":
            self.accept = value.decode("latin-1") if self.accept is None else f"{self.accept},{value.decode('latin-1')}"
        elif name == b"content-length":
            try:
                too_large = int(value) > MAX_BODY_BYTES
            except ValueError:
                too_large = False  # httptools rejects a malformed length itself
            if too_large:
                self.too_large = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.too_large:
            # Answer before the body arrives, so a client does not upload megabytes that are refused anyway.
            self._write(_TOO_LARGE, keep_alive=False)
        elif self.expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.too_large:
            if self.body_size > _DISCARD_LIMIT:
                self._close()
            return
        if self.body_size > MAX_BODY_BYTES:
            # Chunked bodies carry no length: the limit is enforced while reading, and nothing more is kept.
            self.too_large = True
            self.body = []
            self._write(_TOO_LARGE, keep_alive=False)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.too_large:
            self._close()
            return
        path = self.url.partition(b"?")[0]
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        try:
            response = self.app.handle(self.parser.get_method(), path, self.content_type, self.accept, body)
        except Exception:  # a bug of ours: answer 500, keep the worker alive, and log it for the tests to find
            log.exception("unhandled error on %r", path)
            response = error(500, "internal error", "a request the server can answer")
        self._write(response, keep_alive=self.parser.should_keep_alive())

    # --- writing ---
    def _write(self, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        self.in_request = False
        keep_alive = keep_alive and not self.worker.closing_idle and not self.too_large
        if transport is None or transport.is_closing():
            return
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
            response.status,
            _REASONS.get(response.status, b"Unknown"),
            response.content_type,
            len(response.body),
            response.headers,
            b"" if keep_alive else b"Connection: close\r\n",
        )
        # Recorded before the write: a client that has its answer must find it counted in /metrics.
        path = self.url.partition(b"?")[0].decode("latin-1")
        self.worker.metrics.record(path, response.status, time.perf_counter() - self.started, response.rows)
        if len(response.body) < 65536:
            transport.write(head + response.body)
        else:
            transport.writelines((head, response.body))
        self.last_active = time.monotonic()
        if not keep_alive and not self.too_large:
            transport.close()
        # after a 413 the rest of the body is read and dropped, then the connection is closed

    def _answer_and_close(self, response: Response) -> None:
        self.too_large = False
        self._write(response, keep_alive=False)
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close_if_idle(self, idle_since: float = float("inf")) -> None:
        if not self.in_request and self.last_active < idle_since:
            self._close()


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: the pure asyncio loop works, only slower
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _load(settings: ServeSettings) -> LoadedModel:
    if settings.load_delay_s:
        time.sleep(settings.load_delay_s)
    return LoadedModel(settings.model_dir, settings.precision)


async def _serve(sock: socket.socket, settings: ServeSettings, metrics: SharedMetrics) -> int:
    loop = asyncio.get_running_loop()
    app = InferenceApp(metrics)
    worker = Worker(app, metrics, settings)
    server = await loop.create_server(lambda: HttpConnection(worker), sock=sock, backlog=2048)
    stop = asyncio.Event()
    sweeper = asyncio.ensure_future(_close_idle_connections(worker))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    # Load in a thread so /ping keeps answering (503) while the graph loads.
    loading = loop.run_in_executor(None, _load, settings)
    stop_task = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loading, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        try:
            app.set_model(loading.result())
        except ModelDirectoryError as bad:
            log.error("cannot load the model: %s", bad)
            server.close()
            return LOAD_FAILED_EXIT
        # Everything allocated so far lives as long as the process: keep it out of the collector's scans,
        # so a full collection does not pause requests for milliseconds.
        gc.collect()
        gc.freeze()
        log.info("model loaded (%s), serving on port %s", settings.precision, settings.port)
        await stop_task

    # SIGTERM: finish every request already sent, then exit.
    sweeper.cancel()
    worker.draining = True
    _accept_backlog(sock, loop, worker)
    server.close()
    deadline = loop.time() + SHUTDOWN_DEADLINE_S
    # Requests already on the wire on idle keep-alive connections still arrive during the grace period.
    await asyncio.sleep(settings.drain_grace_s)
    worker.closing_idle = True
    for connection in list(worker.connections):
        connection.close_if_idle()
    if worker.connections:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.done.wait(), max(0.0, deadline - loop.time()))
    for connection in list(worker.connections):
        connection._close()
    return 0


async def _close_idle_connections(worker: Worker) -> None:
    """Close keep-alive connections idle for KEEP_ALIVE_S; one sweep a while is cheaper than a timer per request."""
    while True:
        await asyncio.sleep(KEEP_ALIVE_S / 5)
        idle_since = time.monotonic() - KEEP_ALIVE_S
        for connection in list(worker.connections):
            connection.close_if_idle(idle_since)


def _accept_backlog(sock: socket.socket, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    """Connections the kernel completed before SIGTERM carry requests sent before it: take them all."""
    sock.setblocking(False)
    while True:
        try:
            client, _ = sock.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        client.setblocking(False)
        loop.create_task(loop.connect_accepted_socket(lambda: HttpConnection(worker), client))


def run_worker(sock: socket.socket, settings: ServeSettings, metrics: SharedMetrics, index: int) -> int:
    """Serve on `sock` until SIGTERM; returns the process exit code."""
    metrics.bind(index)
    loop = _event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(sock, settings, metrics))
    finally:
        loop.close()


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
