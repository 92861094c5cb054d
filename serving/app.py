"""The routes of the hosting contract, independent of the HTTP server: method, path, headers and body in,
status, headers and body out. Every error a client can cause is a 4xx with a JSON body saying what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from serving import codec
from serving.cache import PredictionCache, subset
from serving.metrics import SharedMetrics
from serving.model import Batch, LoadedModel

JSON_TYPE = b"application/json"
OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON_TYPE
    headers: bytes = b""
    """Extra header lines, each ending in CRLF."""
    rows: int = 0


def error(status: int, message: str, expected: str, headers: bytes = b"", **where: object) -> Response:
    fields = {"message": message, "row": None, "column": None, "feature": None, "expected": expected, "got": None}
    fields.update(where)
    return Response(status, orjson.dumps({"error": fields}), headers=headers)


NOT_READY = error(503, "the model is still loading", "a request after GET /ping answers 200")
ALIVE = b'{"status":"alive"}'
GET_ROUTES = (b"/ping", b"/livez", b"/metrics", b"/openapi.json", b"/execution-parameters")
ROUTES = "GET /ping, GET /livez, POST /invocations, GET /metrics, GET /execution-parameters or GET /openapi.json"
ALLOW_GET = b"Allow: GET, HEAD\r\n"
MAX_PAYLOAD_MB = 6
SUPPORTED_REQUESTS = ", ".join(sorted(codec.REQUEST_TYPES))
SUPPORTED_RESPONSES = ", ".join(codec.RESPONSE_TYPES)


class InferenceApp:
    """One worker's view: its model (once loaded) and the shared metrics."""

    def __init__(
        self, metrics: SharedMetrics, workers: int = 1, cache_rows: int = 0, cache_ttl_s: float = 60.0
    ) -> None:
        self.metrics = metrics
        self.workers = workers
        self.cache_rows = cache_rows
        self.cache_ttl_s = cache_ttl_s
        self.cache: PredictionCache | None = None
        self.model: LoadedModel | None = None
        self.encoder: codec.ResponseEncoder | None = None
        self._openapi: bytes | None = None

    def set_model(self, model: LoadedModel) -> None:
        self.encoder = codec.ResponseEncoder(model.manifest)
        # A new model (or precision) starts a new cache: entries are outputs of exactly one onnxruntime session.
        self.cache = PredictionCache(self.cache_rows, self.cache_ttl_s) if self.cache_rows else None
        self.model = model
        self.metrics.set_ready(True)

    def ping(self) -> Response:
        # Every worker must have its model: SageMaker sends traffic as soon as /ping says 200.
        if self.model is not None and self.metrics.all_ready():
            return Response(200, b'{"status":"ready"}')
        return Response(503, b'{"status":"loading"}')

    def invocations(self, content_type: str | None, accept: str | None, body: bytes) -> Response:
        media_in = codec.request_type(content_type)
        if media_in is None:
            return error(
                415,
                f"unsupported Content-Type {content_type!r}",
                f"one of {SUPPORTED_REQUESTS} (charset utf-8)",
                got=content_type,
            )
        media_out = codec.response_type(accept)
        if media_out is None:
            return error(406, f"cannot answer in any type of Accept {accept!r}", f"one of {SUPPORTED_RESPONSES}")
        model, encoder = self.model, self.encoder
        if model is None or encoder is None:
            return NOT_READY
        try:
            batch = codec.DECODERS[media_in](body, model.manifest)
            cache = self.cache
            if cache is None:
                probabilities = model.predict(batch)
                codec.check_finite(probabilities, model.manifest)
            else:
                probabilities = self._predict_cached(cache, model, batch)
        except codec.InputError as bad:
            return Response(bad.status, orjson.dumps(bad.to_json()))
        return Response(
            200,
            encoder.encode(media_out, probabilities, batch),
            content_type=media_out.encode(),
            rows=batch.rows,
        )

    def _predict_cached(self, cache: PredictionCache, model: LoadedModel, batch: Batch) -> np.ndarray:
        """Cached rows from the cache, the others from one onnxruntime call, in request order. The output is
        checked as a whole before anything is stored, so a failing request stores nothing and fails as it would
        without the cache (a cached row is always finite, so the first non-finite row is the same)."""
        keys = cache.keys(batch)
        found, misses = cache.lookup(keys)
        if not misses:
            output = cache.rows(found)  # type: ignore[arg-type]  # no None left
            computed = None
        else:
            computed = model.predict(batch if len(misses) == batch.rows else subset(batch, misses))
            if len(misses) == batch.rows:
                output = computed
            else:
                output = np.empty((batch.rows, *computed.shape[1:]), dtype=computed.dtype)
                hits = [i for i, row in enumerate(found) if row is not None]
                output[hits] = cache.rows([found[i] for i in hits])  # type: ignore[misc]  # hits are not None
                output[misses] = computed
            codec.check_finite(output, model.manifest)
            cache.store([keys[i] for i in misses], computed)
        self.metrics.record_cache(batch.rows - len(misses), len(misses), len(cache))
        return output

    def execution_parameters(self) -> Response:
        """Batch Transform asks this before sending work when the job leaves these settings unset: one request
        per worker at a time, as many records per request as fit in SageMaker's 6 MB payload."""
        return Response(
            200,
            orjson.dumps(
                {
                    "MaxConcurrentTransforms": self.workers,
                    "BatchStrategy": "MultiRecord",
                    "MaxPayloadInMB": MAX_PAYLOAD_MB,
                }
            ),
        )

    def openapi(self) -> Response:
        if self._openapi is None:
            self._openapi = OPENAPI_PATH.read_bytes()
        return Response(200, self._openapi)

    def handle(self, method: bytes, path: bytes, content_type: str | None, accept: str | None, body: bytes) -> Response:
        """HEAD is answered as GET (RFC 9110 9.3.2); the server leaves the body out."""
        if path == b"/invocations":
            if method != b"POST":
                return error(
                    405, f"{method.decode('latin-1')} is not allowed on /invocations", "POST", b"Allow: POST\r\n"
                )
            return self.invocations(content_type, accept, body)
        if path in GET_ROUTES:
            if method not in (b"GET", b"HEAD"):
                return error(
                    405, f"{method.decode('latin-1')} is not allowed on {path.decode()}", "GET or HEAD", ALLOW_GET
                )
            if path == b"/ping":
                return self.ping()
            if path == b"/livez":
                # Liveness, apart from readiness: this worker's event loop answers, whether or not it has loaded.
                return Response(200, ALIVE)
            if path == b"/metrics":
                return Response(200, self.metrics.render(), content_type=b"text/plain; version=0.0.4; charset=utf-8")
            if path == b"/execution-parameters":
                return self.execution_parameters()
            return self.openapi()
        return error(404, f"no route {path.decode('latin-1')[:60]!r}", ROUTES)
