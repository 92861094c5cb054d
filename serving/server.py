"""A minimal HTTP/1.1 server on asyncio protocols and httptools' parser, one per worker process.

Chosen over uvicorn + Starlette and granian by measurement (serving/README.md): requests are small and
answered synchronously, so parsing callbacks that call the app directly leave nothing to schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from serving.app import InferenceApp, Response, error
from serving.metrics import SharedMetrics
from serving.model import LoadedModel, ModelDirectoryError
from serving.settings import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_URL_BYTES, ServeSettings

log = logging.getLogger("serving")

LOAD_FAILED_EXIT = 3
RECYCLE_EXIT = 4  # the worker reached its request limit and finished its work: replace it
KEEP_ALIVE_S = 75.0  # above the idle timeouts of common load balancers, so they close first
SHUTDOWN_DEADLINE_S = 25.0  # SageMaker sends SIGKILL 30 s after SIGTERM
TICK_S = 1.0  # timeouts, the Date header, the heartbeat and the access log are handled once per tick
_DISCARD_LIMIT = 4 * MAX_BODY_BYTES  # after a 413, how much more body we read (and drop) before closing
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_TOO_LARGE = error(
    413,
    f"the request body is larger than {MAX_BODY_BYTES} bytes",
    f"at most {MAX_BODY_BYTES} bytes (SageMaker's payload limit); split the rows over several requests",
)
_URL_TOO_LONG = error(414, f"the request target is longer than {MAX_URL_BYTES} bytes", f"at most {MAX_URL_BYTES} bytes")
_HEADERS_TOO_LARGE = error(
    431,
    f"the request line and headers are larger than {MAX_HEADER_BYTES} bytes",
    f"at most {MAX_HEADER_BYTES} bytes of request line and headers",
)
_TOO_MANY_HEADERS = error(
    431, f"the request has more than {MAX_HEADER_FIELDS} header fields", f"at most {MAX_HEADER_FIELDS} header fields"
)
_BAD_TRANSFER_CODING = error(
    400, "unsupported Transfer-Encoding", "no Transfer-Encoding, or exactly 'chunked' (no other transfer coding)"
)
_SLICE = 16384  # reads larger than this are parsed in slices of this size
_VERSIONS = ("1.1", "1.0")
_BAD_VERSION = error(400, "unsupported HTTP version", "an HTTP/1.1 or HTTP/1.0 request line: METHOD /path HTTP/1.1")
_INF = float("inf")
_IDLE, _HEAD, _BODY = 0, 1, 2  # what a connection is waiting for


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the connection answers its `refusal` and closes."""


class _Clock:
    """The `Date` header (RFC 9110 6.6.1), formatted once per tick rather than per response."""

    def __init__(self) -> None:
        self.date = b""
        self.tick()

    def tick(self) -> None:
        self.date = b"Date: " + formatdate(usegmt=True).encode() + b"\r\n"


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
        self.clock = _Clock()
        self.served = 0
        # Jitter, so that workers started together do not all recycle at once.
        self.request_limit = (
            settings.max_requests + random.randint(0, settings.max_requests // 10) if settings.max_requests else 0
        )
        self.recycle = asyncio.Event()
        self.access_log: list[bytes] | None = [] if settings.access_log else None
        self.acceptor: Acceptor | None = None

    def connection_opened(self, connection: HttpConnection) -> None:
        self.connections.add(connection)
        self.metrics.set_connections(len(self.connections))

    def connection_closed(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        self.metrics.set_connections(len(self.connections))
        if self.acceptor is not None:
            self.acceptor.resume()
        if self.draining and not self.connections:
            self.done.set()

    def answered(self) -> None:
        """Count one response; the one that reaches the request limit already says `Connection: close`."""
        self.served += 1
        if self.served == self.request_limit:
            self.closing_idle = True
            self.recycle.set()

    def flush_access_log(self) -> None:
        if self.access_log:
            lines, self.access_log[:] = b"".join(self.access_log), []
            with contextlib.suppress(OSError):  # a closed stdout must not stop serving
                os.write(1, lines)


class Acceptor:
    """Accepts connections from the shared socket while this worker holds fewer than `max_connections`.

    At the limit it stops reading the socket: new connections wait in the kernel's backlog, or another worker
    takes them, and this worker resumes when one of its connections closes (back-pressure, not refusal).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, worker: Worker) -> None:
        self.loop = loop
        self.sock = sock
        self.worker = worker
        self.limit = worker.settings.max_connections
        self.reading = False
        self.stopped = False

    def start(self) -> None:
        self.sock.setblocking(False)
        self.resume()

    def resume(self) -> None:
        if not self.reading and not self.stopped and len(self.worker.connections) < self.limit:
            self.loop.add_reader(self.sock.fileno(), self.accept)
            self.reading = True

    def pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
            self.reading = False

    def stop(self) -> None:
        self.pause()
        self.stopped = True

    def accept(self, limit: int | None = None, burst: int = 64) -> None:
        worker = self.worker
        for _ in range(burst):  # a burst at a time, then back to the loop
            if len(worker.connections) >= (limit or self.limit):
                self.pause()
                return
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as failure:  # e.g. EMFILE: leave the rest in the backlog for now
                log.warning("accept failed: %s", failure)
                return
            client.setblocking(False)
            protocol = HttpConnection(worker)
            worker.connection_opened(protocol)  # counted from now, so the limit holds within a burst
            self.loop.create_task(self._attach(client, protocol))

    async def _attach(self, client: socket.socket, protocol: HttpConnection) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: protocol, client)
        except OSError:
            client.close()
            self.worker.connection_closed(protocol)


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
        self.last_active = time.perf_counter()
        self.paused = False
        self.waiting_for = _HEAD
        # A new connection must send a complete request head within the header timeout, like any request.
        self.deadline = self.last_active + worker.settings.header_timeout_s
        self.head_bytes = 0
        self.header_fields = 0
        self.header_bytes = 0
        self.refusal: Response | None = None
        self.peer = ""
        self.pending = b""  # received, not parsed yet (see data_received)
        self.pending_at = 0

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.worker.access_log is not None:
            peer = transport.get_extra_info("peername")
            self.peer = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.worker.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if len(data) <= _SLICE and not self.pending:
            self._feed(data)
            return
        # A large read may hold thousands of pipelined requests: parse it a slice at a time and stop while the
        # client is not reading its answers (pause_writing), so answers never pile up beyond one slice's worth.
        self.pending = self.pending[self.pending_at :] + data if self.pending else data
        self.pending_at = 0
        self._feed_pending()

    def _feed_pending(self) -> None:
        while self.pending and not self.paused and self.transport is not None and not self.transport.is_closing():
            start = self.pending_at
            self.pending_at = start + _SLICE
            if self.pending_at >= len(self.pending):
                piece, self.pending, self.pending_at = self.pending[start:], b"", 0
            else:
                piece = self.pending[start : self.pending_at]
            self._feed(piece)

    def _feed(self, data: bytes) -> None:
        counting = self.waiting_for != _BODY
        if counting:
            # httptools keeps a header until it is complete: bound what it may hold across reads.
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # CONNECT, or a request with Upgrade: it has been answered as plain HTTP (RFC 9110 7.8: a server may
            # ignore Upgrade); what follows would be another protocol, so the connection ends here.
            if self.in_request:
                self._answer_and_close(error(400, "protocol upgrades are not supported", "HTTP/1.1 requests"))
            else:
                self._close()
            return
        except httptools.HttpParserError as bad:
            if self.refusal is not None:
                self._answer_and_close(self.refusal)
            elif self.too_large:
                self._close()
            else:
                self._answer_and_close(error(400, f"malformed HTTP request: {bad}", "an HTTP/1.1 request"))
            return
        if counting and self.waiting_for == _HEAD and self.head_bytes > MAX_HEADER_BYTES and self.in_request:
            self._answer_and_close(_HEADERS_TOO_LARGE)

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        if self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self._feed_pending()
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()

    # --- httptools callbacks ---
    def on_message_begin(self) -> None:
        self.in_request = True
        self.started = time.perf_counter()
        self.waiting_for = _HEAD
        self.deadline = self.started + self.worker.settings.header_timeout_s
        self.url = b""
        self.content_type = None
        self.accept = None
        self.expect_continue = False
        self.body = []
        self.body_size = 0
        self.too_large = False
        self.header_fields = 0
        self.header_bytes = 0

    def _refuse(self, response: Response) -> None:
        self.refusal = response
        raise _Refused

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(_URL_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_fields += 1
        self.header_bytes += len(name) + len(value) + 4
        if self.header_fields > MAX_HEADER_FIELDS:
            self._refuse(_TOO_MANY_HEADERS)
        if self.header_bytes + len(self.url) > MAX_HEADER_BYTES:
            self._refuse(_HEADERS_TOO_LARGE)
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
        elif name == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                self._refuse(_BAD_TRANSFER_CODING)
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.parser.get_http_version() not in _VERSIONS:  # llhttp takes a bare "GET /" as HTTP/0.9
            self._refuse(_BAD_VERSION)
        self.waiting_for = _BODY
        self.head_bytes = 0
        self.deadline = time.perf_counter() + self.worker.settings.body_timeout_s
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
        self.waiting_for = _IDLE
        self.deadline = _INF
        if self.too_large:
            self._close()
            return
        path = self.url.partition(b"?")[0]
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        method = self.parser.get_method()
        try:
            response = self.app.handle(method, path, self.content_type, self.accept, body)
        except Exception:  # a bug of ours: answer 500, keep the worker alive, and log it for the tests to find
            log.exception("unhandled error on %r", path)
            response = error(500, "internal error", "a request the server can answer")
        self._write(response, keep_alive=self.parser.should_keep_alive(), head_only=method == b"HEAD")

    # --- writing ---
    def _write(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        transport = self.transport
        self.in_request = False
        worker = self.worker
        worker.answered()
        keep_alive = keep_alive and not worker.closing_idle and not self.too_large
        if transport is None or transport.is_closing():
            return
        head = b"HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
            response.status,
            _REASONS.get(response.status, b"Unknown"),
            worker.clock.date,
            response.content_type,
            len(response.body),
            response.headers,
            b"" if keep_alive else b"Connection: close\r\n",
        )
        # Recorded before the write: a client that has its answer must find it counted in /metrics.
        path = self.url.partition(b"?")[0].decode("latin-1")
        elapsed = time.perf_counter() - self.started
        worker.metrics.record(path, response.status, elapsed, response.rows)
        if head_only:
            transport.write(head)
        elif len(response.body) < 65536:
            transport.write(head + response.body)
        else:
            transport.writelines((head, response.body))
        self.last_active = self.started
        if worker.access_log is not None:
            self._log_access(path, response, elapsed)
        if not keep_alive and not self.too_large:
            transport.close()
        # after a 413 the rest of the body is read and dropped, then the connection is closed

    def _log_access(self, path: str, response: Response, elapsed: float) -> None:
        log_lines = self.worker.access_log
        assert log_lines is not None
        log_lines.append(
            orjson.dumps(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "remote": self.peer,
                    # before its head is complete, a refused request's method may be unparsed or garbage
                    "method": "-" if self.waiting_for == _HEAD else self.parser.get_method().decode("latin-1"),
                    "path": path[:256],
                    "status": response.status,
                    "bytes": len(response.body),
                    "rows": response.rows,
                    "duration_ms": round(elapsed * 1000, 3),
                    "pid": os.getpid(),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )
        if len(log_lines) >= 256:
            self.worker.flush_access_log()

    def _answer_and_close(self, response: Response) -> None:
        self.too_large = False
        if not self.in_request:
            self.started = time.perf_counter()
        self._write(response, keep_alive=False)
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close_if_idle(self, idle_since: float = _INF) -> None:
        if not self.in_request and self.last_active < idle_since:
            self._close()

    def check_timeouts(self, now: float) -> None:
        """Once per tick: a request whose head or body is overdue gets 408; an idle keep-alive one is closed."""
        if now > self.deadline:
            if self.in_request and not self.too_large:
                phase = "line and headers" if self.waiting_for == _HEAD else "body"
                limit = (
                    self.worker.settings.header_timeout_s
                    if self.waiting_for == _HEAD
                    else self.worker.settings.body_timeout_s
                )
                self._answer_and_close(
                    error(
                        408,
                        f"the request {phase} did not arrive within {limit:g} s",
                        f"a complete request {phase} within {limit:g} s",
                    )
                )
            else:  # opened and never used, or stalled inside a refused body
                self._close()
        elif not self.in_request and self.waiting_for == _IDLE and self.last_active < now - KEEP_ALIVE_S:
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


async def _serve(
    sock: socket.socket, settings: ServeSettings, metrics: SharedMetrics, accept_while_loading: bool = True
) -> int:
    loop = asyncio.get_running_loop()
    app = InferenceApp(metrics, settings.workers, settings.cache_rows, settings.cache_ttl_s)
    worker = Worker(app, metrics, settings)
    acceptor = worker.acceptor = Acceptor(loop, sock, worker)
    if accept_while_loading:
        acceptor.start()  # so /ping answers 503 while the first workers load
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_tick(worker))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    # Load in a thread so /ping keeps answering (503) while the graph loads.
    loading = loop.run_in_executor(None, _load, settings)
    stop_task = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loading, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    recycling = False
    if loading.done():
        try:
            # A fresh heartbeat first: a load that held the GIL may have starved the ticks, and the watchdog
            # judges a worker only once it is ready.
            metrics.heartbeat()
            app.set_model(loading.result())
        except ModelDirectoryError as bad:
            log.error("cannot load the model: %s", bad)
            acceptor.stop()
            return LOAD_FAILED_EXIT
        # Everything allocated so far lives as long as the process: keep it out of the collector's scans,
        # so a full collection does not pause requests for milliseconds.
        gc.collect()
        gc.freeze()
        log.info("model loaded (%s), serving on port %s", settings.precision, settings.port)
        if not accept_while_loading:
            acceptor.start()
        recycle_task = asyncio.ensure_future(worker.recycle.wait())
        await asyncio.wait({stop_task, recycle_task}, return_when=asyncio.FIRST_COMPLETED)
        recycling = not stop.is_set()
        recycle_task.cancel()
        if recycling:
            log.info("worker answered %d requests, its limit: finishing them and handing over", worker.served)

    # SIGTERM (or the request limit): finish every request already sent, then exit.
    worker.draining = True
    if recycling:
        acceptor.stop()  # the other workers and the replacement take the backlog
    else:
        _accept_backlog(acceptor)
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
    ticker.cancel()
    worker.flush_access_log()
    return RECYCLE_EXIT if recycling else 0


async def _tick(worker: Worker) -> None:
    """Once per TICK_S: heartbeat for the parent's watchdog, the Date header, timeouts, the access log.
    One pass over the connections per second is cheaper than a timer per request."""
    while True:
        await asyncio.sleep(TICK_S)
        worker.metrics.heartbeat()
        worker.clock.tick()
        now = time.perf_counter()
        for connection in list(worker.connections):
            connection.check_timeouts(now)
        worker.flush_access_log()


def _accept_backlog(acceptor: Acceptor) -> None:
    """Connections the kernel completed before SIGTERM carry requests sent before it: take them all."""
    acceptor.accept(limit=1 << 30, burst=1 << 30)
    acceptor.stop()
    # Close this process's copy of the listening socket: once the supervisor's and every worker's copy is closed
    # the kernel refuses new connections at once, instead of completing them into a backlog nobody reads, where
    # they hang until the client times out or the socket is reset.
    acceptor.sock.close()


def run_worker(
    sock: socket.socket, settings: ServeSettings, metrics: SharedMetrics, index: int, replacement: bool = False
) -> int:
    """Serve on `sock` until SIGTERM; returns the process exit code. A replacement worker accepts only once its
    model is loaded: until then its connections wait in the backlog instead of getting 503."""
    metrics.bind(index)
    loop = _event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(sock, settings, metrics, accept_while_loading=not replacement))
    finally:
        loop.close()


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
