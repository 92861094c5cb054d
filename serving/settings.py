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

ENV_MODEL_DIR = "MLPLATFORM_MODEL_DIR"
ENV_PRECISION = "MLPLATFORM_MODEL_PRECISION"
ENV_PORT = "MLPLATFORM_SERVING_PORT"
ENV_WORKERS = "MLPLATFORM_SERVING_WORKERS"
ENV_LOAD_DELAY = "MLPLATFORM_SERVING_LOAD_DELAY_S"
ENV_DRAIN_GRACE = "MLPLATFORM_SERVING_DRAIN_GRACE_S"
ENV_METRICS = "MLPLATFORM_SERVING_METRICS"


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
    port_raw = args.port or environ.get(ENV_PORT, str(DEFAULT_PORT))
    workers_raw = args.workers or environ.get(ENV_WORKERS) or str(usable_cores())
    metrics_raw = environ.get(ENV_METRICS, "on")
    if metrics_raw not in ("on", "off"):
        raise SettingsError(f"{ENV_METRICS}={metrics_raw!r} is not valid: expected on or off")
    return ServeSettings(
        model_dir=Path(args.model_dir or environ.get(ENV_MODEL_DIR, DEFAULT_MODEL_DIR)),
        precision=precision,  # type: ignore[arg-type]  # checked against PRECISIONS above
        host=args.host,
        port=int(_number("port", port_raw, minimum=0, maximum=65535, integer=True)),
        workers=int(_number("workers", workers_raw, minimum=1, maximum=512, integer=True)),
        load_delay_s=_number(ENV_LOAD_DELAY, environ.get(ENV_LOAD_DELAY, "0"), minimum=0, maximum=600, integer=False),
        drain_grace_s=_number(
            ENV_DRAIN_GRACE, environ.get(ENV_DRAIN_GRACE, "1.0"), minimum=0, maximum=20, integer=False
        ),
        record_metrics=metrics_raw == "on",
    )
