"""Contract checks of built images: each returns a list of problems (empty means the image keeps the contract).

Functions return problems instead of asserting so that the same checks serve the tests, `make local`, and the
tests that build deliberately broken images and expect a problem to be reported.

- `entrypoint_problems`: exec-form ENTRYPOINT (a shell-form one is `["/bin/sh", "-c", ...]` in the config, and
  `docker stop`/SageMaker's SIGTERM then reaches the shell, not the server).
- `label_problems`: OCI labels org.opencontainers.image.source and .revision.
- `config_secret_problems`: no build secret or credential in the config's environment.
- `layer_secret_problems`: no secret bytes in any layer tar (a file deleted later still ships in its layer),
  nothing left under /run/secrets, no pip.conf that points pip at a certificate.
- `check_serving`: the image's own ENTRYPOINT followed by `serve` answers /ping, /invocations, rejects a bad
  request with 4xx and exits within the grace period after SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tools.images import ImageConfig, child_pids, image_config, start_in_container

OCI_LABELS = ("org.opencontainers.image.source", "org.opencontainers.image.revision")
SHELL_FORMS = (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"], ["bash", "-c"])
SECRET_ENV = re.compile(r"(PIP_CERT|PIP_CLIENT_CERT|SECRET|PASSWORD|TOKEN|AWS_ACCESS_KEY_ID|PRIVATE_KEY)", re.I)
PIP_CONFIG_PATHS = re.compile(r"(^|/)(pip\.conf|pip\.ini)$")
SERVING_PORT = 8080  # SageMaker's hosting contract
PORT_ENV = "MLPLATFORM_SERVING_PORT"
SIGTERM_GRACE_S = 30.0  # SageMaker sends SIGKILL 30 s after SIGTERM
CHUNK = 8 * 1024 * 1024


# --- config --------------------------------------------------------------------------------------------------


def entrypoint_problems(config: ImageConfig, dockerfile_text: str | None = None) -> list[str]:
    problems: list[str] = []
    entry = config.entrypoint
    if not entry:
        problems.append("the image has no ENTRYPOINT: SageMaker runs `docker run IMAGE train|serve`")
    elif not isinstance(entry, list) or not all(isinstance(part, str) for part in entry):
        problems.append(f"ENTRYPOINT in the config is not a JSON list of strings: {entry!r}")
    elif any(entry[: len(form)] == form for form in SHELL_FORMS):
        problems.append(
            f"ENTRYPOINT is shell form {entry!r}: the shell is PID 1, ignores the command argument and gets SIGTERM "
            'instead of the server; write it in exec form, e.g. ENTRYPOINT ["python", "-m", "serving"]'
        )
    if dockerfile_text is not None:
        lines = [
            line.strip() for line in _logical_lines(dockerfile_text) if line.strip().upper().startswith("ENTRYPOINT")
        ]
        if lines and not lines[-1][len("ENTRYPOINT") :].strip().startswith("["):
            problems.append(f"the Dockerfile's last ENTRYPOINT is not in exec (JSON) form: {lines[-1]!r}")
    return problems


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\s*\n", " ", text)
    return [line for line in joined.splitlines() if not line.lstrip().startswith("#")]


def label_problems(config: ImageConfig) -> list[str]:
    return [
        f"OCI label {name} is missing or empty (labels: {sorted(config.labels)})"
        for name in OCI_LABELS
        if not config.labels.get(name, "").strip()
    ]


def config_secret_problems(config: ImageConfig, secret_paths: Iterable[str] = ()) -> list[str]:
    problems = [
        f"config environment sets {name}: build secrets and credentials must not be baked into the image"
        for name in config.env
        if SECRET_ENV.search(name)
    ]
    for name, value in config.env.items():
        if "/run/secrets" in value or any(path and path in value for path in secret_paths):
            problems.append(f"config environment {name}={value!r} points at a build secret")
    return problems


# --- layers ------------------------------------------------------------------------------------------------


def pem_certificates(bundle: bytes) -> list[bytes]:
    """The PEM certificate blocks of a CA bundle, normalised to LF line ends."""
    text = bundle.replace(b"\r\n", b"\n")
    return re.findall(rb"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----", text, re.S)


def certificate_needles(host_bundle: bytes, base_bundle: bytes) -> dict[str, bytes]:
    """Byte strings that identify the host's own CAs (those not in the base's bundle): a middle line of each
    certificate body, which is unique to that certificate and survives re-wrapping of the surrounding file."""
    base = set(pem_certificates(base_bundle))
    needles: dict[str, bytes] = {}
    for index, cert in enumerate(pem_certificates(host_bundle)):
        if cert in base:
            continue
        body = cert.split(b"\n")[1:-1]
        needles[f"host CA certificate #{index} (not in the base image's bundle)"] = body[len(body) // 2]
    return needles


def _scan(handle: IO[bytes], needles: Mapping[str, bytes]) -> list[str]:
    """Names of the needles found in a stream, read in overlapping chunks so big files never sit in memory."""
    overlap = max((len(n) for n in needles.values()), default=1)
    found: set[str] = set()
    tail = b""
    while chunk := handle.read(CHUNK):
        window = tail + chunk
        found.update(name for name, needle in needles.items() if needle in window)
        tail = window[-overlap:]
    return sorted(found)


def layer_secret_problems(layers: Sequence[Path], needles: Mapping[str, bytes], *, skip_layers: int = 0) -> list[str]:
    """Scan every file of every layer tar after the first `skip_layers` (the base's own) for secret bytes.

    Also reports anything left under /run/secrets and a pip config file that names a certificate.
    """
    problems: list[str] = []
    for number, layer in enumerate(layers):
        if number < skip_layers:
            continue
        with tarfile.open(layer) as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                if path.startswith("run/secrets/") and not member.isdir():
                    problems.append(f"layer {number}: /{path} is left in the image (a build secret must be a mount)")
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                with handle:
                    hits = _scan(handle, needles)
                problems.extend(f"layer {number}: /{path} contains {name}" for name in hits)
                if PIP_CONFIG_PATHS.search(path):
                    with tar.extractfile(member) as again:  # type: ignore[union-attr] - a file member
                        if re.search(rb"^\s*cert\s*=", again.read(), re.M):
                            problems.append(f"layer {number}: /{path} sets pip's cert: the CA must be a build secret")
    return problems


# --- serving -------------------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    body: bytes
    content_type: str


def http(
    method: str, url: str, body: bytes | None = None, content_type: str | None = None, timeout: float = 10
) -> HttpAnswer:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read(), error.headers.get("Content-Type", ""))


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServingReport:
    """What `check_serving` saw; `problems` empty means the image kept the hosting contract."""

    problems: list[str] = field(default_factory=list)
    port: int = SERVING_PORT
    ready_s: float | None = None
    answers: dict[str, HttpAnswer] = field(default_factory=dict)
    sigterm_exit_s: float | None = None
    exit_code: int | None = None
    log: str = ""


@dataclass(frozen=True)
class Request:
    """One request the check sends: `expect` is 'ok' (2xx) or 'client-error' (4xx)."""

    name: str
    body: bytes
    content_type: str
    expect: str = "ok"
    accept: str | None = None


def wait_ready(proc: Any, base_url: str, deadline_s: float) -> float | None:
    """Seconds until /ping answered 200, or None when the process ended or the deadline passed first."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if proc.poll() is not None:
            return None
        with contextlib.suppress(OSError):
            if http("GET", f"{base_url}/ping", timeout=2).status == 200:
                return time.monotonic() - started
        time.sleep(0.25)
    return None


def check_serving(
    image: str,
    model_dir: Path,
    requests: Sequence[Request],
    *,
    log_path: Path,
    ready_deadline_s: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> ServingReport:
    """Run the image's ENTRYPOINT + `serve` with `model_dir` at /opt/ml/model, on loopback, and check it.

    Port 8080 (the contract) is used when free; where something else holds it, the server is moved with
    MLPLATFORM_SERVING_PORT so the check still runs (the report says which port).
    """
    report = ServingReport()
    config = image_config(image)
    if not config.entrypoint:
        report.problems.append("the image has no ENTRYPOINT, so `serve` cannot be run the way SageMaker does")
        return report
    run_env = dict(env or {})
    if not port_is_free(SERVING_PORT):
        report.port = free_port()
        run_env[PORT_ENV] = str(report.port)
    base_url = f"http://127.0.0.1:{report.port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "wb") as log,
        start_in_container(
            image, [*config.entrypoint, "serve"], volumes=[f"{model_dir}:/opt/ml/model:ro"], env=run_env, output=log
        ) as proc,
    ):
        report.ready_s = wait_ready(proc, base_url, ready_deadline_s)
        if report.ready_s is None:
            state = (
                f"exited with {proc.poll()}"
                if proc.poll() is not None
                else f"still running after {ready_deadline_s:.0f} s"
            )
            report.problems.append(
                f"`{' '.join([*config.entrypoint, 'serve'])}` never answered GET /ping with 200 ({state}): "
                "the entrypoint must start the server for the `serve` command"
            )
        else:
            _check_requests(report, base_url, requests)
            report.sigterm_exit_s, report.exit_code = _sigterm(proc)
            if report.sigterm_exit_s is None:
                report.problems.append(f"the server did not exit within {SIGTERM_GRACE_S:.0f} s of SIGTERM")
            elif report.exit_code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                report.problems.append(f"after SIGTERM the server exited with status {report.exit_code}")
    report.log = log_path.read_text(errors="replace")[-4000:]
    return report


def _check_requests(report: ServingReport, base_url: str, requests: Sequence[Request]) -> None:
    for request in requests:
        answer = http("POST", f"{base_url}/invocations", request.body, request.content_type, timeout=60)
        report.answers[request.name] = answer
        ok = 200 <= answer.status < 300 if request.expect == "ok" else 400 <= answer.status < 500
        if not ok:
            wanted = "2xx" if request.expect == "ok" else "4xx"
            report.problems.append(
                f"POST /invocations {request.name} ({request.content_type}) answered {answer.status}, "
                f"expected {wanted}: {answer.body[:300]!r}"
            )


def entrypoint_pid(runner_pid: int) -> int | None:
    """The process that runs the image's entrypoint under `buildah run` (the container's PID 1 under Docker).

    `buildah run --isolation chroot` forks buildah-chroot-runtime, which forks buildah-chroot-exec, which
    forks the command: the first descendant that is not buildah's own helper is the entrypoint.
    """
    queue = [runner_pid]
    while queue:
        pid = queue.pop(0)
        for child in child_pids(pid):
            with contextlib.suppress(OSError):
                argv0 = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")[0]
                if not os.path.basename(argv0.decode(errors="replace")).startswith("buildah"):
                    return child
            queue.append(child)
    return None


def _sigterm(proc: Any) -> tuple[float | None, int | None]:
    """SIGTERM the entrypoint process (what `docker stop` and SageMaker signal) and measure until it has exited.

    Not `buildah run` itself: on SIGTERM buildah SIGKILLs its child, which would prove nothing about the server.
    """
    target = entrypoint_pid(proc.pid)
    if target is None:
        return None, None
    started = time.monotonic()
    os.kill(target, signal.SIGTERM)
    try:
        code = proc.wait(timeout=SIGTERM_GRACE_S)
    except Exception:
        return None, None
    return time.monotonic() - started, code


@contextlib.contextmanager
def env_override(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def as_json(report: ServingReport) -> dict[str, Any]:
    return {
        "problems": report.problems,
        "port": report.port,
        "ready_s": report.ready_s,
        "sigterm_exit_s": report.sigterm_exit_s,
        "exit_code": report.exit_code,
        "answers": {
            name: {"status": a.status, "body": a.body[:500].decode(errors="replace")}
            for name, a in report.answers.items()
        },
    }
