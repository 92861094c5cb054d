"""Serving settings, parsed once from command-line flags and environment variables into a frozen object."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.model import PRECISIONS, Precision

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080  # SageMaker's hosting contract
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's payload limit for real-time endpoints
MAX_URL_BYTES = 8192  # the request target; longer is refused with 414 (RFC 9112 3: at least 8000 octets advised)
MAX_HEADER_BYTES = 32768  # request line and header fields together; more is refused with 431 (RFC 6585 5)
MAX_HEADER_FIELDS = 100

ENV_MODEL_DIR = "MLPLATFORM_MODEL_DIR"
ENV_PRECISION = "MLPLATFORM_MODEL_PRECISION"
ENV_PORT = "MLPLATFORM_SERVING_PORT"
ENV_WORKERS = "MLPLATFORM_SERVING_WORKERS"
ENV_LOAD_DELAY = "MLPLATFORM_SERVING_LOAD_DELAY_S"
ENV_DRAIN_GRACE = "MLPLATFORM_SERVING_DRAIN_GRACE_S"
ENV_METRICS = "MLPLATFORM_SERVING_METRICS"
ENV_HEADER_TIMEOUT = "MLPLATFORM_SERVING_HEADER_TIMEOUT_S"
ENV_BODY_TIMEOUT = "MLPLATFORM_SERVING_BODY_TIMEOUT_S"
ENV_MAX_CONNECTIONS = "MLPLATFORM_SERVING_MAX_CONNECTIONS"
ENV_MAX_REQUESTS = "MLPLATFORM_SERVING_MAX_REQUESTS"
ENV_ACCESS_LOG = "MLPLATFORM_SERVING_ACCESS_LOG"
ENV_CACHE_ROWS = "MLPLATFORM_SERVING_CACHE_ROWS"
ENV_CACHE_TTL = "MLPLATFORM_SERVING_CACHE_TTL_S"
MAX_CACHE_ROWS = 10_000_000
# Set by SageMaker or by its users (sagemaker-inference-toolkit, src/sagemaker_inference/environment.py
# Environment: SAGEMAKER_BIND_TO_PORT default 8080, SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT
# default 60, "timeout used for model server's backend workers before they are deemed unresponsive and rebooted").
ENV_SAGEMAKER_PORT = "SAGEMAKER_BIND_TO_PORT"
ENV_SAGEMAKER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
ENV_SAGEMAKER_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"


class SettingsError(ValueError):
    """A flag or environment variable has a value the server cannot use; the message names it."""


@dataclass(frozen=True)
class ServeSettings:
    model_dir: Path
    precision: Precision
    host: str
    port: int
    workers: int
    """Worker processes, each with its own event loop and onnxruntime session; default one per usable core."""
    load_delay_s: float
    """Test hook: seconds each worker waits before loading the model, so /ping's 503 can be observed."""
    drain_grace_s: float
    """After SIGTERM, how long idle keep-alive connections stay open for requests already on the wire."""
    record_metrics: bool = True
    """`off` only to measure what recording costs; /metrics then reports zeros."""
    header_timeout_s: float = 10.0
    """A request's line and headers must arrive within this many seconds of its first byte (or of the
    connection being opened); otherwise 408 and the connection is closed (slowloris)."""
    body_timeout_s: float = 60.0
    """A request's body must arrive within this many seconds of its headers; otherwise 408 and close."""
    max_connections: int = 1000
    """Open connections per worker; at the limit the worker stops accepting, so new connections wait in the
    kernel's backlog (or go to another worker) until one closes."""
    max_requests: int = 0
    """After this many requests (plus up to 10 % jitter) a worker finishes what it has and is replaced;
    0: never."""
    access_log: bool = False
    """One JSON line per request on stdout."""
    worker_timeout_s: float = 60.0
    """A loaded worker whose event loop has not ticked for this long is killed and replaced."""
    cache_rows: int = 0
    """Prediction cache size in rows, per worker process (serving/cache.py); 0: no cache (the default)."""
    cache_ttl_s: float = 60.0
    """Seconds a cached row's prediction is reused after it was computed."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _number(name: str, raw: str, *, minimum: float, maximum: float, integer: bool) -> float:
    allowed = f"{'an integer' if integer else 'a number'} from {minimum:g} to {maximum:g}"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not valid: expected {allowed}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw!r} is out of range: expected {allowed}")
    return value


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ServeSettings:
    """Flags win over environment variables, which win over the defaults of SageMaker's contract."""
    parser = argparse.ArgumentParser(prog="python -m serving serve", description="Serve the model over HTTP.")
    parser.add_argument("--model-dir", help=f"model directory (env {ENV_MODEL_DIR}, default {DEFAULT_MODEL_DIR})")
    parser.add_argument("--precision", help=f"fp32 or int8 (env {ENV_PRECISION}, default fp32)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", help=f"TCP port (env {ENV_PORT}, default {DEFAULT_PORT})")
    parser.add_argument("--workers", help=f"worker processes (env {ENV_WORKERS}, default: one per usable core)")
    args = parser.parse_args(list(argv))

    precision = args.precision or environ.get(ENV_PRECISION, "fp32")
    if precision not in PRECISIONS:
        source = "--precision" if args.precision else ENV_PRECISION
        raise SettingsError(f"{source}={precision!r} is not valid: expected one of {', '.join(PRECISIONS)}")
    # SageMaker's variables win over ours: the platform sets SAGEMAKER_BIND_TO_PORT in inference pipelines and
    # multi-container endpoints, and the container must listen there.
    port_name, port_raw = _first(
        ("--port", args.port),
        (ENV_SAGEMAKER_PORT, environ.get(ENV_SAGEMAKER_PORT)),
        (ENV_PORT, environ.get(ENV_PORT)),
        ("port", str(DEFAULT_PORT)),
    )
    workers_name, workers_raw = _first(
        ("--workers", args.workers),
        (ENV_WORKERS, environ.get(ENV_WORKERS)),
        (ENV_SAGEMAKER_WORKERS, environ.get(ENV_SAGEMAKER_WORKERS)),
        ("workers", str(usable_cores())),
    )
    metrics_raw = _switch(ENV_METRICS, environ.get(ENV_METRICS, "on"))
    access_log = _switch(ENV_ACCESS_LOG, environ.get(ENV_ACCESS_LOG, "off"))

    def number(name: str, default: str, *, minimum: float, maximum: float, integer: bool = False) -> float:
        return _number(name, environ.get(name, default), minimum=minimum, maximum=maximum, integer=integer)

    return ServeSettings(
        model_dir=Path(args.model_dir or environ.get(ENV_MODEL_DIR, DEFAULT_MODEL_DIR)),
        precision=precision,  # type: ignore[arg-type]  # checked against PRECISIONS above
        host=args.host,
        port=int(_number(port_name, port_raw, minimum=0, maximum=65535, integer=True)),
        workers=int(_number(workers_name, workers_raw, minimum=1, maximum=512, integer=True)),
        load_delay_s=number(ENV_LOAD_DELAY, "0", minimum=0, maximum=600),
        drain_grace_s=number(ENV_DRAIN_GRACE, "1.0", minimum=0, maximum=20),
        record_metrics=metrics_raw,
        header_timeout_s=number(ENV_HEADER_TIMEOUT, "10", minimum=0.1, maximum=600),
        body_timeout_s=number(ENV_BODY_TIMEOUT, "60", minimum=0.1, maximum=3600),
        max_connections=int(number(ENV_MAX_CONNECTIONS, "1000", minimum=1, maximum=100000, integer=True)),
        max_requests=int(number(ENV_MAX_REQUESTS, "0", minimum=0, maximum=10**9, integer=True)),
        access_log=access_log,
        worker_timeout_s=number(ENV_SAGEMAKER_TIMEOUT, "60", minimum=1, maximum=86400, integer=True),
        cache_rows=int(number(ENV_CACHE_ROWS, "0", minimum=0, maximum=MAX_CACHE_ROWS, integer=True)),
        cache_ttl_s=number(ENV_CACHE_TTL, "60", minimum=0.001, maximum=86400),
    )


def _first(*candidates: tuple[str, str | None]) -> tuple[str, str]:
    """The first (name, value) that is set, so an error names the flag or variable the value came from."""
    for name, value in candidates:
        if value:
            return name, value
    raise AssertionError("the last candidate is a default")  # pragma: no cover


def _switch(name: str, raw: str) -> bool:
    if raw not in ("on", "off"):
        raise SettingsError(f"{name}={raw!r} is not valid: expected on or off")
    return raw == "on"
