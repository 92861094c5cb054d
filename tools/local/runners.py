"""How the lifecycle runs the three containers' code: as local processes, or inside the images built with buildah.

Both runners start the same entrypoints with the same contracts (the training ml root, the serving model
directory and port, the monitor's Model Monitor environment), so the only difference is where the code runs:

- `LocalRunner`: `python -m training train --ml-root DIR`, `python -m serving serve --model-dir DIR ...` and
  `python -m monitoring.entrypoint` with the contract's environment, from this checkout's interpreter.
- `ContainerRunner`: the images of training/, serving/ and monitoring/ Dockerfiles, built with
  `tools.images` (buildah, chroot isolation, host network) and run with the folders mounted where SageMaker
  puts them (`/opt/ml`, `/opt/ml/model`, `/opt/ml/processing/...`).

Every process a runner starts runs in its own session, so stopping it ends exactly its process group (and,
for buildah, the processes `tools.images.start_in_container` tracks), also on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent.parent
IMAGE_NAMES = ("training", "serving", "monitoring")
IMAGE_TAG = "localhost/mlplatform-{name}:local"
STOP_GRACE_S = 30.0  # the server drains for at most 25 s after SIGTERM (SageMaker kills at 30 s)


class RunnerError(RuntimeError):
    """A container's code failed or could not be started; the message carries the end of its log."""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Runner(Protocol):
    mode: str

    def prepare(self, log_dir: Path) -> dict[str, Any]:
        """Whatever must exist before the first stage (the images); returns facts for the summary."""
        ...

    def demo_data(self, ml_root: Path, seed: int, log_path: Path, task: str = "classification") -> None:
        """`python -m training demo-data`: the demo data laid out as SageMaker's training channels (`task`
        regression: the diabetes demo)."""
        ...

    def train(self, ml_root: Path, log_path: Path) -> None: ...

    def training_step(
        self, args: Sequence[str], ml_root: Path, log_path: Path, *, tracking_dir: Path | None = None
    ) -> int:
        """`python -m training <args>` (validate, evaluate) with `ml_root` as /opt/ml; `args` name container
        paths under /opt/ml. With `tracking_dir`, the step records its MLflow run in that file store
        (MLFLOW_TRACKING_URI). Returns the exit status (these steps report a verdict by status)."""
        ...

    def serve(self, model_dir: Path, port: int, workers: int, log_path: Path) -> contextlib.AbstractContextManager[Any]:
        """A context manager: the server runs inside it and is stopped (its whole process group) on exit."""
        ...

    def monitor(self, env: Mapping[str, str], mounts: Mapping[str, Path], log_path: Path) -> Path:
        """Run the monitor entrypoint; `mounts` maps contract paths (`/opt/ml/...`) to local folders.

        Returns the local folder of `output_path`."""
        ...


CONTAINER_MLRUNS = "/opt/mlruns"
"""Where the container runner mounts the local MLflow file store."""
LOCAL_EXPERIMENT = "mlplatform-local"


def tracking_env(uri: str) -> dict[str, str]:
    """The environment that makes a training step record its MLflow run (training/tracking.py) at `uri`."""
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": LOCAL_EXPERIMENT}


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without our own MLPLATFORM_ settings (they would change the children's behaviour),
    with the checkout on PYTHONPATH so `python -m training` works from any working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group (the server drains), SIGKILL it if it is not gone within `grace`."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Workers left behind by a parent that died: the group outlives its leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def run_logged(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str], what: str, timeout: float, *, check: bool = True
) -> int:
    """Run a command to completion in its own process group, output to `log_path`; raise RunnerError on failure
    (with `check=False` a non-zero status is returned instead; a timeout is always an error)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RunnerError(
                f"{what} did not finish within {timeout:.0f} s (log {log_path}):\n{log_tail(log_path)}"
            ) from None
        finally:
            stop_process_group(proc, grace=5)
    if code != 0 and check:
        raise RunnerError(f"{what} exited with status {code} (log {log_path}):\n{log_tail(log_path)}")
    return code


@dataclass
class LocalRunner:
    """The containers' code as processes of this interpreter."""

    python: str = sys.executable
    train_timeout: float = 1800
    monitor_timeout: float = 600
    mode: str = "local"

    def prepare(self, log_dir: Path) -> dict[str, Any]:
        return {"python": self.python}

    def demo_data(self, ml_root: Path, seed: int, log_path: Path, task: str = "classification") -> None:
        run_logged(
            [
                self.python,
                "-m",
                "training",
                "demo-data",
                "--ml-root",
                str(ml_root),
                "--seed",
                str(seed),
                "--task",
                task,
            ],
            log_path,
            child_env(),
            "demo data",
            600,
        )

    def train(self, ml_root: Path, log_path: Path) -> None:
        run_logged(
            [self.python, "-m", "training", "train", "--ml-root", str(ml_root)],
            log_path,
            child_env(),
            "training",
            self.train_timeout,
        )

    def training_step(
        self, args: Sequence[str], ml_root: Path, log_path: Path, *, tracking_dir: Path | None = None
    ) -> int:
        argv = [self.python, "-m", "training", *(_map_path(a, {"/opt/ml": ml_root}) for a in args)]
        env = child_env(tracking_env(tracking_dir.resolve().as_uri()) if tracking_dir is not None else None)
        return run_logged(argv, log_path, env, f"training {args[0]}", self.train_timeout, check=False)

    @contextlib.contextmanager
    def serve(self, model_dir: Path, port: int, workers: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
        argv = [self.python, "-m", "serving", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", str(workers)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                yield proc
            finally:
                stop_process_group(proc)

    def monitor(self, env: Mapping[str, str], mounts: Mapping[str, Path], log_path: Path) -> Path:
        # The contract's paths are container paths; locally each one is replaced by its mounted folder.
        local_env = {key: _map_path(value, mounts) for key, value in env.items()}
        local_env["MLPLATFORM_OPT_ML"] = str(mounts["/opt/ml"])
        run_logged(
            [self.python, "-m", "monitoring.entrypoint"],
            log_path,
            child_env(local_env),
            "the monitor",
            self.monitor_timeout,
        )
        return Path(local_env["output_path"])


def _map_path(value: str, mounts: Mapping[str, Path]) -> str:
    """A container path rewritten onto the local folder of the longest mount that contains it."""
    for point in sorted(mounts, key=len, reverse=True):
        if value == point or value.startswith(point.rstrip("/") + "/"):
            return str(mounts[point]) + value[len(point.rstrip("/")) :]
    return value


# --- containers ------------------------------------------------------------------------------------------


@dataclass
class ContainerRunner:
    """The three images, built from their Dockerfiles with buildah and run with SageMaker's mounts."""

    train_timeout: float = 1800
    monitor_timeout: float = 600
    build_timeout: float = 1800
    mode: str = "containers"
    tags: dict[str, str] = field(default_factory=dict)

    def prepare(self, log_dir: Path) -> dict[str, Any]:
        from tools import images

        missing = images.missing_tools()
        if missing:
            raise RunnerError(f"{', '.join(missing)} not found on PATH; install with: {images.INSTALL_HINT}")
        if os.geteuid() != 0:
            raise RunnerError("buildah with chroot isolation needs root; run `make local CONTAINERS=1` as root")
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "base.log").open("a") as log:
            base = images.ensure_base(log=log)
        from components.images import content_hash

        source = images.git_source()
        cert = images.host_ca_bundle()
        built: dict[str, Any] = {"base_image": base}
        for name in IMAGE_NAMES:
            dockerfile = REPO / name / "Dockerfile"
            # REVISION as the stack passes it: a hash of the image's own inputs, so a commit that does not touch
            # them keeps buildah's layer cache (and the container tests' builds share it).
            values = {"REVISION": content_hash(REPO, f"{name}/Dockerfile"), "SOURCE": source}
            args = images.provenance_args(dockerfile, values)
            volumes: list[str] = []
            if name == "training":
                wheels = images.local_torch_wheels()
                if wheels is not None and "PIP_FIND_LINKS" in images.declared_args(dockerfile):
                    volumes.append(f"{wheels}:/wheels:ro")
                    args["PIP_FIND_LINKS"] = "/wheels"
            print(f"      building {name} image ({dockerfile.relative_to(REPO)}) ...", flush=True)
            try:
                image = images.build_image(
                    dockerfile,
                    IMAGE_TAG.format(name=name),
                    base_image=base,
                    build_args=args,
                    volumes=volumes,
                    secrets={"pip_cert": cert} if cert else None,
                    log_path=log_dir / f"build-{name}.log",
                    timeout=self.build_timeout,
                )
            except images.ImageToolError as exc:
                raise RunnerError(
                    f"building the {name} image failed (log {log_dir / f'build-{name}.log'}): {exc}"
                ) from None
            self.tags[name] = image.tag
            built[name] = {"tag": image.tag, "image_id": image.image_id, "build_seconds": round(image.seconds, 1)}
        return {"images": built}

    def _entrypoint(self, name: str) -> list[str]:
        """`buildah run` ignores ENTRYPOINT: read it from the image so the contract is the image's own."""
        from tools import images

        entrypoint = images.image_config(self.tags[name]).entrypoint
        if not entrypoint:
            raise RunnerError(f"the {name} image has no ENTRYPOINT")
        return list(entrypoint)

    def demo_data(self, ml_root: Path, seed: int, log_path: Path, task: str = "classification") -> None:
        """The demo data laid out by the training image itself (the host needs no scikit-learn)."""
        args = ["demo-data", "--ml-root", "/opt/ml", "--seed", str(seed), "--task", task]
        self._run("training", args, ml_root, log_path, 600)

    def train(self, ml_root: Path, log_path: Path) -> None:
        self._run("training", ["train"], ml_root, log_path, self.train_timeout)

    def training_step(
        self, args: Sequence[str], ml_root: Path, log_path: Path, *, tracking_dir: Path | None = None
    ) -> int:
        return self._run(
            "training", list(args), ml_root, log_path, self.train_timeout, check=False, tracking_dir=tracking_dir
        )

    def _run(
        self,
        name: str,
        args: list[str],
        ml_root: Path,
        log_path: Path,
        timeout: float,
        *,
        check: bool = True,
        tracking_dir: Path | None = None,
    ) -> int:
        from tools import images

        argv = [*self._entrypoint(name), *args]
        ml_root.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        volumes, env = [f"{ml_root}:/opt/ml"], None
        if tracking_dir is not None:
            tracking_dir.mkdir(parents=True, exist_ok=True)
            volumes.append(f"{tracking_dir.resolve()}:{CONTAINER_MLRUNS}")
            env = tracking_env(f"file://{CONTAINER_MLRUNS}")
        with log_path.open("a") as log:
            log.write(f"$ buildah run {self.tags[name]} {shlex.join(argv)}  (-v {' -v '.join(volumes)})\n")
        proc = images.run_in_container(self.tags[name], argv, volumes=volumes, env=env, timeout=timeout)
        with log_path.open("a") as log:
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0 and check:
            raise RunnerError(
                f"{name} {args[0]} exited with status {proc.returncode} (log {log_path}):\n{log_tail(log_path)}"
            )
        return proc.returncode

    @contextlib.contextmanager
    def serve(self, model_dir: Path, port: int, workers: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
        from tools import images

        argv = [*self._entrypoint("serving"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", str(workers)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ buildah run {self.tags['serving']} {shlex.join(argv)}\n".encode())
            log.flush()
            volumes = [f"{model_dir}:/opt/ml/model:ro"]
            with images.start_in_container(self.tags["serving"], argv, volumes=volumes, output=log) as proc:
                yield proc

    def monitor(self, env: Mapping[str, str], mounts: Mapping[str, Path], log_path: Path) -> Path:
        from tools import images

        argv = self._entrypoint("monitoring")
        # /opt/ml itself is not mounted: only the message and metrics files land there, and a bind mount
        # holding the processing mounts would nest them; the results are under output_path.
        volumes = [f"{local}:{point}" for point, local in mounts.items() if point != "/opt/ml"]
        proc = images.run_in_container(
            self.tags["monitoring"], argv, volumes=volumes, env=env, timeout=self.monitor_timeout
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"$ buildah run {self.tags['monitoring']} {shlex.join(argv)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise RunnerError(
                f"the monitor exited with status {proc.returncode} (log {log_path}):\n{log_tail(log_path)}"
            )
        return Path(_map_path(env["output_path"], mounts))


def wait_for_ping(proc: subprocess.Popen[bytes], port: int, timeout: float, log_path: Path, poll: float = 0.1) -> float:
    """Poll GET /ping until 200; returns the seconds it took. Fails when the server exits or time runs out."""
    import http.client

    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < timeout:
        code = proc.poll()
        if code is not None:
            raise RunnerError(
                f"the server exited with status {code} before /ping answered 200 (log {log_path}):\n"
                f"{log_tail(log_path)}"
            )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/ping")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return time.monotonic() - started
            last = f"/ping answered {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        time.sleep(poll)
    raise RunnerError(
        f"/ping did not answer 200 within {timeout:.0f} s ({last}; log {log_path}):\n{log_tail(log_path)}"
    )


def port_is_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0
