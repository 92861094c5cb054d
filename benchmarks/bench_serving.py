"""Serving benchmark: our server against the servers SageMaker's own containers use, same ONNX model and CSV.

Writes build/bench/serving.json and prints a Markdown table. Each server is pinned to core 0 (`taskset -c 0`),
wrk to core 1, loopback only. Competitors run from their own virtual environments under build/bench-envs
(created by this script when missing): (b) nginx + gunicorn (gevent) + Flask, (c) Multi Model Server with one
worker via sagemaker-inference, (d) MLServer with default settings. Also measured: the HTTP stacks we chose
between (uvicorn + Starlette, granian, ours), our echo ceiling (/ping), raw onnxruntime per row, and what
metrics recording costs.

    .venv/bin/python benchmarks/bench_serving.py [--duration 5] [--only ours,flask,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.serving_model_fixture import write_model_dir  # noqa: E402

BUILD = REPO / "build"
ENVS = BUILD / "bench-envs"
OUT = BUILD / "bench"
SERVER_CORE = "0"
CLIENT_CORE = "1"
N_FEATURES = 30
HIDDEN = (256, 256)  # the tabular MLP of DESIGN.md's performance facts: 30 -> 256 -> 256 -> 2
ENV_PINS = {
    "flask": ["flask==3.1.3", "gunicorn==23.0.0", "gevent==25.9.1", "onnxruntime==1.32.0", "numpy==2.4.6"],
    "mms": ["multi-model-server==1.1.11", "sagemaker-inference==1.10.1", "onnxruntime==1.32.0", "numpy==2.4.6"],
    # uvloop 0.22 made asyncio.get_event_loop() raise where MLServer 1.7.1 workers call it: pin the last that works.
    "mlserver": ["mlserver==1.7.1", "onnxruntime==1.32.0", "uvloop==0.21.0"],
}
WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
"""


_next_port = [21000]


def free_port() -> int:
    """A free port below 32768: Multi Model Server refuses higher ones ("Invalid port number")."""
    while True:
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", _next_port[0]))
            except OSError:
                continue
            return _next_port[0]


@dataclass
class Server:
    name: str
    label: str
    commands: list[list[str]]
    port: int
    ready_path: str = "/ping"
    invoke_path: str = "/invocations"
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    content_type: str = "text/csv"
    wrap: Callable[[bytes], bytes] | None = None
    """How this server's protocol carries the CSV payload (None: as the body)."""

    def body_file(self, csv_file: Path) -> Path:
        if self.wrap is None:
            return csv_file
        wrapped = csv_file.with_name(f"{self.name}-{csv_file.stem}.body")
        wrapped.write_bytes(self.wrap(csv_file.read_bytes()))
        return wrapped


@contextlib.contextmanager
def running(server: Server, log_dir: Path, timeout: float = 120) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
    env.update(server.env)
    processes = []
    logs = []
    try:
        for i, command in enumerate(server.commands):
            log = (log_dir / f"{server.name}-{i}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    ["taskset", "-c", SERVER_CORE, *command],
                    cwd=server.cwd,
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
            time.sleep(0.5)
        deadline = time.monotonic() + timeout
        while True:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"{server.name} exited early; see {log_dir}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{server.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready after {timeout} s; see {log_dir}")
            time.sleep(0.2)
        yield
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str, body: Path | None, connections: int, duration: float, content_type: str = "text/csv"
) -> dict[str, Any]:
    """rps, p50 and p99 (ms) from `wrk --latency`, one thread on the client core."""

    def command(seconds: float) -> list[str]:
        return [
            "taskset",
            "-c",
            CLIENT_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "10s",
            *extra,
            url,
        ]

    extra: list[str] = []
    env = dict(os.environ)
    if body is not None:
        script = OUT / "wrk_post.lua"
        script.write_text(WRK_SCRIPT)
        extra = ["-s", str(script)]
        env["BENCH_BODY"] = str(body)
        env["BENCH_CONTENT_TYPE"] = content_type
    # A short run first warms caches and connection pools of every server alike.
    subprocess.run(command(1), env=env, capture_output=True, check=True)
    output = subprocess.run(command(duration), env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "connections": connections,
        "rps": round(rps, 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def check_answer(server: Server, body_file: Path) -> None:
    """Each server must answer the payload with probabilities before it is timed."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{server.invoke_path}",
        data=body_file.read_bytes(),
        headers={"Content-Type": server.content_type},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if "outputs" in answer:  # V2 protocol
        ok = answer["outputs"][0]["name"] == "probabilities" and len(answer["outputs"][0]["data"]) == 2
    else:
        ok = "probabilities" in answer["predictions"][0]
    if not ok:
        raise RuntimeError(f"{server.name} answered {str(answer)[:200]}")


def ensure_env(name: str) -> Path:
    python = ENVS / name / "bin" / "python"
    if not python.exists():
        subprocess.run([sys._base_executable, "-m", "venv", str(ENVS / name)], check=True)  # type: ignore[attr-defined]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ENV_PINS[name]], check=True)
    return python


def payloads(directory: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    files = {}
    for rows in (1, 100, 1000):
        values = rng.normal(0, 1, (rows, N_FEATURES))
        path = directory / f"rows{rows}.csv"
        path.write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in values) + "\n")
        files[f"rows{rows}"] = path
    return files


def raw_onnxruntime(model_dir: Path, files: dict[str, Path]) -> dict[str, float]:
    """Time per row of session.run alone, with the session options every server here uses (one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    result = {}
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        for rows in (1, 1000):
            batch = np.loadtxt(files[f"rows{rows}"], delimiter=",", dtype=np.float32, ndmin=2)
            repeats = 20000 if rows == 1 else 300
            for _ in range(repeats // 10):
                session.run(["probabilities"], {"numeric": batch})
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(repeats // 5):
                    session.run(["probabilities"], {"numeric": batch})
                best = min(best, (time.perf_counter() - start) / (repeats // 5))
            result[f"batch{rows}_us_per_row"] = round(best / rows * 1e6, 3)
    finally:
        os.sched_setaffinity(0, {0, 1})
    return result


def our_server(model_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "serving", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
    return Server(
        "ours",
        "ours (httptools + uvloop, 1 worker)",
        [[*command, "--port", str(port), "--workers", "1"]],
        port,
        env={"PYTHONPATH": str(REPO), **(extra_env or {})},
    )


def candidate_servers(model_dir: Path) -> list[Server]:
    env = {"PYTHONPATH": str(REPO), "BENCH_MODEL_DIR": str(model_dir)}
    venv = Path(sys.executable).parent
    p1, p2 = free_port(), free_port()
    return [
        Server(
            "uvicorn-starlette",
            "uvicorn 0.54 (httptools, uvloop) + Starlette",
            [
                [
                    str(venv / "uvicorn"),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(p1),
                    "benchmarks.serving_candidates.starlette_app:app",
                ]
            ],
            p1,
            env=env,
        ),
        Server(
            "granian",
            "granian 2.8 (RSGI, uvloop)",
            [
                [
                    str(venv / "granian"),
                    "--interface",
                    "rsgi",
                    "--loop",
                    "uvloop",
                    "--workers",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(p2),
                    "--no-ws",
                    "benchmarks.serving_candidates.granian_app:app",
                ]
            ],
            p2,
            env=env,
        ),
    ]


def flask_server(model_dir: Path, work: Path) -> Server:
    python = ensure_env("flask")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    sock = work / "gunicorn.sock"
    conf = work / "nginx.conf"
    (work / "nginx").mkdir(exist_ok=True)
    # The shape of SageMaker's scikit-learn container's nginx.conf: one worker, proxy to gunicorn's socket.
    conf.write_text(
        f"""worker_processes 1;
user root;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx/error.log;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx; proxy_temp_path {work}/nginx;
  fastcgi_temp_path {work}/nginx; uwsgi_temp_path {work}/nginx; scgi_temp_path {work}/nginx;
  upstream gunicorn {{ server unix:{sock}; }}
  server {{
    listen 127.0.0.1:{port} deferred;
    client_max_body_size 6m;
    keepalive_timeout 5;
    proxy_read_timeout 1200s;
    location ~ ^/(ping|invocations) {{
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_pass http://gunicorn;
    }}
    location / {{ return 404 "{{}}"; }}
  }}
}}
"""
    )
    gunicorn = python.parent / "gunicorn"
    return Server(
        "nginx-gunicorn-flask",
        "nginx 1.22 + gunicorn 23 (gevent, 1 worker) + Flask 3.1",
        [
            [
                str(gunicorn),
                "-k",
                "gevent",
                "-w",
                "1",
                "--timeout",
                "60",
                "--bind",
                f"unix:{sock}",
                "benchmarks.serving_flask.app:app",
            ],
            [nginx, "-c", str(conf), "-p", str(work)],
        ],
        port,
        env={"PYTHONPATH": str(REPO), "BENCH_MODEL_DIR": str(model_dir)},
    )


def mms_server(model_dir: Path, work: Path) -> Server:
    python = ensure_env("mms")
    port = free_port()
    return Server(
        "multi-model-server",
        "Multi Model Server 1.1 via sagemaker-inference 1.10 (1 worker)",
        [[str(python), "-m", "benchmarks.serving_mms.start", str(model_dir), str(work), str(port)]],
        port,
        env={
            "PYTHONPATH": str(REPO),
            "BENCH_MODEL_DIR": str(model_dir),
            "PATH": f"{python.parent}:{os.environ['PATH']}",
        },
        cwd=work,  # MMS writes logs/ into its working directory
    )


def mlserver_server(model_dir: Path, work: Path) -> Server:
    python = ensure_env("mlserver")
    port = free_port()
    folder = work / "mlserver"
    folder.mkdir(exist_ok=True)
    # Default settings apart from where to listen; metrics on another free port so runs never collide.
    (folder / "settings.json").write_text(
        json.dumps({"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1"})
    )
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "model", "implementation": "benchmarks.serving_mlserver.runtime.OnnxRuntimeModel"})
    )
    return Server(
        "mlserver",
        "MLServer 1.7 (default settings)",
        [[str(python.parent / "mlserver"), "start", str(folder)]],
        port,
        ready_path="/v2/health/ready",
        invoke_path="/v2/models/model/infer",
        content_type="application/json",
        wrap=lambda csv: json.dumps(
            {"inputs": [{"name": "csv", "shape": [1], "datatype": "BYTES", "data": [csv.decode()]}]}
        ).encode(),
        env={"PYTHONPATH": str(REPO), "BENCH_MODEL_DIR": str(model_dir)},
    )


SCENARIOS = (("rows1", 1), ("rows1", 16), ("rows100", 16))


def measure(server: Server, files: dict[str, Path], duration: float, log_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"label": server.label}
    try:
        with running(server, log_dir):
            check_answer(server, server.body_file(files["rows1"]))
            url = f"http://127.0.0.1:{server.port}{server.invoke_path}"
            for payload, connections in SCENARIOS:
                result[f"{payload}_c{connections}"] = wrk(
                    url, server.body_file(files[payload]), connections, duration, server.content_type
                )
                print(server.name, payload, connections, result[f"{payload}_c{connections}"], flush=True)
    except Exception as error:  # record why a competitor could not be measured and keep the others
        result["error"] = f"{type(error).__name__}: {error}"
        print(server.name, "FAILED", result["error"], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--only", default="", help="comma-separated server names to run (default: all)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-", dir=BUILD))
    model_dir = write_model_dir(
        work / "model", numeric=[f"f{i}" for i in range(N_FEATURES)], categorical={}, hidden=HIDDEN
    )
    files = payloads(work)
    only = set(filter(None, args.only.split(",")))
    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine skews every figure; the ratios are taken from the same run.
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "model": {"features": N_FEATURES, "hidden": list(HIDDEN), "classes": 2, "file": "model.onnx (fp32)"},
        "method": "server on core 0 (taskset -c 0), wrk -t1 on core 1, loopback, 1 s warm-up then "
        f"{args.duration:g} s per run; latencies from wrk --latency",
        "raw_onnxruntime": raw_onnxruntime(model_dir, files),
        "servers": {},
    }
    print("raw onnxruntime", report["raw_onnxruntime"], flush=True)

    builders = {
        "ours": lambda: our_server(model_dir),
        "nginx-gunicorn-flask": lambda: flask_server(model_dir, work),
        "multi-model-server": lambda: mms_server(model_dir, work),
        "mlserver": lambda: mlserver_server(model_dir, work),
    }
    for name, build in builders.items():
        if only and name not in only:
            continue
        try:
            server = build()
        except Exception as error:
            report["servers"][name] = {"error": f"setup failed: {type(error).__name__}: {error}"}
            continue
        report["servers"][name] = measure(server, files, args.duration, work)

    if not only or "ours" in only:
        ours = our_server(model_dir)
        with running(ours, work):
            base = f"http://127.0.0.1:{ours.port}"
            report["ours_echo_ceiling"] = wrk(f"{base}/ping", None, 16, args.duration)
            big = wrk(f"{base}/invocations", files["rows1000"], 1, args.duration)
            report["ours_rows1000_c1"] = big
        quiet = our_server(model_dir, {"MLPLATFORM_SERVING_METRICS": "off"})
        with running(quiet, work):
            report["ours_metrics_off_rows1_c16"] = wrk(
                f"http://127.0.0.1:{quiet.port}/invocations", files["rows1"], 16, args.duration
            )
        stacks: dict[str, Any] = {}
        for candidate in [*candidate_servers(model_dir), our_server(model_dir)]:
            entry: dict[str, Any] = {"label": candidate.label}
            try:
                with running(candidate, work):
                    entry["echo_c16"] = wrk(f"http://127.0.0.1:{candidate.port}/ping", None, 16, args.duration)
                    entry["rows1_c16"] = wrk(
                        f"http://127.0.0.1:{candidate.port}/invocations", files["rows1"], 16, args.duration
                    )
            except Exception as error:
                entry["error"] = f"{type(error).__name__}: {error}"
            stacks[candidate.name] = entry
            print("stack", candidate.name, entry, flush=True)
        report["stack_candidates"] = stacks

    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summarise(report)
    (OUT / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"wrote {OUT / 'serving.json'}")


def summarise(report: dict[str, Any]) -> None:
    servers = report["servers"]
    ours = servers.get("ours", {}).get("rows1_c16")
    others = [s["rows1_c16"]["rps"] for n, s in servers.items() if n != "ours" and "rows1_c16" in s]
    summary: dict[str, Any] = {}
    if ours and others:
        summary["rps_ratio_vs_best_other_rows1_c16"] = round(ours["rps"] / max(others), 2)
        summary["target_4x_met"] = ours["rps"] >= 4 * max(others)
        summary["p99_ms_rows1_c16"] = ours["p99_ms"]
        summary["target_p99_3ms_met"] = ours["p99_ms"] <= 3.0
    big = report.get("ours_rows1000_c1")
    raw = report["raw_onnxruntime"]
    if big:
        per_row_us = 1e6 / big["rps"] / 1000
        summary["ours_rows1000_us_per_row"] = round(per_row_us, 3)
        summary["ratio_vs_raw_batch1000_per_row"] = round(per_row_us / raw["batch1000_us_per_row"], 2)
        summary["ratio_vs_raw_batch1_per_row"] = round(per_row_us / raw["batch1_us_per_row"], 3)
        summary["target_2x_raw_met"] = per_row_us <= 2 * raw["batch1000_us_per_row"]
    off = report.get("ours_metrics_off_rows1_c16")
    if off and ours:
        summary["metrics_recording_cost_pct"] = round((off["rps"] - ours["rps"]) / off["rps"] * 100, 1)
    report["summary"] = summary


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| server | 1 row, 1 conn: rps / p50 / p99 | 1 row, 16 conn: rps / p50 / p99 "
        "| 100 rows, 16 conn: rps / p50 / p99 |",
        "|---|---|---|---|",
    ]
    for name, entry in report["servers"].items():
        if "error" in entry and "rows1_c1" not in entry:
            lines.append(f"| {entry.get('label', name)} | not measured: {entry['error']} | | |")
            continue
        cells = []
        for payload, connections in SCENARIOS:
            m = entry.get(f"{payload}_c{connections}")
            cells.append(f"{m['rps']:,.0f} / {m['p50_ms']:.2f} ms / {m['p99_ms']:.2f} ms" if m else "-")
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
