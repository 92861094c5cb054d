"""Build and run the project's images with buildah, on machines without a Docker daemon.

Used by the container tests (tests/containers/) and by local runs. Three steps, each reusable on its own:

1. `ensure_base()`: a local Debian base with Python 3.11 made with debootstrap (minbase), imported into
   buildah's store as `localhost/mlplatform-pybase:bookworm`. Its root filesystem tar is cached under
   /var/tmp/mlplatform-base (env MLPLATFORM_BASE_CACHE) so that a rerun, even after `buildah rmi`, takes seconds.
2. `build_image()`: `buildah bud` of a real Dockerfile with the repository root as context and
   `--build-arg BASE_IMAGE=<local base>`, chroot isolation and the host network, build secrets and volumes.
3. `working_container()` / `run_in_container()` / `start_in_container()`: `buildah run` of an image. `buildah run`
   ignores ENTRYPOINT, so callers pass the image's entrypoint explicitly (`image_config(tag).entrypoint`).

Why buildah: it builds and runs images as root without a daemon or an OCI runtime (chroot isolation), which is
all our build machines offer (podman fails there on setrlimit). tests/containers/README.md says how to build a base and
run them by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
BASE_CACHE_ENV = "MLPLATFORM_BASE_CACHE"
DEFAULT_BASE_CACHE = Path("/var/tmp/mlplatform-base")
MIRROR_ENV = "MLPLATFORM_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # Debian 12: Python 3.11, the same minor version as the public default python:3.11-slim
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
BASE_TAG = "localhost/mlplatform-pybase:bookworm"
BASE_KEY_LABEL = "org.mlplatform.base-key"
REQUIRED_TOOLS = ("buildah", "debootstrap")
INSTALL_HINT = "apt-get install -y --no-install-recommends buildah debootstrap"
ISOLATION = ("--isolation", "chroot")


class ImageToolError(RuntimeError):
    """A buildah/debootstrap step failed; the message carries the command and the end of its output."""


WHEELS_ENV = "MLPLATFORM_WHEELS"


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (a re-signing proxy's CA where there is one), for build secrets."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default if default.is_file() else None


def local_torch_wheels() -> Path | None:
    """A folder with a CPU torch wheel (pip's find-links on our machines), so builds skip CUDA torch (GBs)."""
    import shlex
    import sys

    candidates = [os.environ.get(WHEELS_ENV, ""), *os.environ.get("PIP_FIND_LINKS", "").split()]
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            candidates += shlex.split(value.strip().strip("'\""))
    for candidate in candidates:
        folder = Path(candidate.removeprefix("file://")) if candidate else None
        if folder and folder.is_dir() and any(folder.glob("torch-*.whl")):
            return folder
    return None


def missing_tools() -> list[str]:
    """The command line tools this module needs that are not on PATH."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def base_cache_dir() -> Path:
    return Path(os.environ.get(BASE_CACHE_ENV) or DEFAULT_BASE_CACHE)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: Sequence[str], *, log: IO[str] | None = None, timeout: float | None = None) -> str:
    """Run a command, return its stdout; raise ImageToolError with the output's tail when it fails."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if log is not None:
        log.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}\n")
        log.flush()
    if proc.returncode != 0:
        raise ImageToolError(f"`{' '.join(argv)}` exited with {proc.returncode}:\n{_tail(proc.stdout + proc.stderr)}")
    return proc.stdout


def image_exists(tag: str) -> bool:
    proc = subprocess.run(["buildah", "inspect", "--type", "image", tag], capture_output=True, text=True, check=False)
    return proc.returncode == 0


def inspect_image(tag: str) -> dict[str, Any]:
    """`buildah inspect` of an image: the raw document (keys OCIv1, Docker, History, ...)."""
    return json.loads(_run(["buildah", "inspect", "--type", "image", tag]))


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's OCI config the contracts care about."""

    entrypoint: list[str] | None
    cmd: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    workdir: str
    user: str
    history: list[str] = field(default_factory=list)


def image_config(tag: str) -> ImageConfig:
    doc = inspect_image(tag)
    config = (doc.get("OCIv1") or {}).get("config") or {}
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    history = [h.get("created_by", "") for h in (doc.get("OCIv1") or {}).get("history") or []]
    return ImageConfig(
        entrypoint=config.get("Entrypoint"),
        cmd=config.get("Cmd"),
        env=env,
        labels=dict(config.get("Labels") or {}),
        workdir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
        history=history,
    )


# --- 1. the local base image -----------------------------------------------------------------------------


def base_key(packages: Sequence[str] = BASE_PACKAGES, suite: str = SUITE) -> str:
    """Identifies a base build: a change of packages or suite makes a new rootfs instead of reusing the cache."""
    text = json.dumps({"suite": suite, "variant": "minbase", "packages": sorted(packages), "format": 1})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One base build at a time per cache folder (two test sessions may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_rootfs_tar(cache: Path, key: str, mirror: str, log: IO[str] | None) -> Path:
    tar = cache / f"rootfs-{key}.tar"
    if tar.is_file():
        return tar
    if shutil.which("debootstrap") is None:
        raise ImageToolError(f"debootstrap is not installed and no cached base is in {cache}; run: {INSTALL_HINT}")
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(work),
                mirror,
            ],
            log=log,
            timeout=900,
        )
        # Package downloads and indexes only make the base bigger; images install with pip, not apt.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (work / sub).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = cache / f".rootfs-{key}.tar.partial"
        _run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], log=log)
        partial.rename(tar)  # atomic: a crash never leaves a truncated tar under the final name
    finally:
        _remove_tree(work)
    return tar


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Remove a debootstrap target. An interrupted debootstrap can leave /proc (or, in a container, the host's
    /dev) mounted inside it: unmount those first and never delete through a mount point."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if _mounts_under(path):
        raise ImageToolError(f"{path} still has mounts under it ({_mounts_under(path)}); remove it by hand")
    shutil.rmtree(path, ignore_errors=True)


def ensure_base(
    tag: str = BASE_TAG, *, cache: Path | None = None, mirror: str | None = None, log: IO[str] | None = None
) -> str:
    """Make sure the local base image exists in buildah's store; returns its tag.

    Reuses, in order: the image in the store (if its key label matches), the cached rootfs tar, and only then
    runs debootstrap (about a minute, needs the Debian mirror).
    """
    missing = [t for t in missing_tools() if t == "buildah"]
    if missing:
        raise ImageToolError(f"buildah is not installed; run: {INSTALL_HINT}")
    key = base_key()
    if image_exists(tag) and image_config(tag).labels.get(BASE_KEY_LABEL) == key:
        return tag
    cache = cache or base_cache_dir()
    with _locked(cache):
        if image_exists(tag) and image_config(tag).labels.get(BASE_KEY_LABEL) == key:
            return tag
        tar = _make_rootfs_tar(cache, key, mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR, log)
        with tempfile.TemporaryDirectory(dir=cache) as ctx:
            os.link(tar, Path(ctx) / "rootfs.tar")  # same filesystem: no copy of 300 MB
            (Path(ctx) / "Containerfile").write_text(
                f'FROM scratch\nADD rootfs.tar /\nLABEL {BASE_KEY_LABEL}="{key}"\nCMD ["/bin/bash"]\n'
            )
            _run(["buildah", "bud", *ISOLATION, "--layers=false", "-t", tag, ctx], log=log, timeout=600)
    return tag


# --- 2. builds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    seconds: float


def declared_args(dockerfile: Path) -> set[str]:
    """The ARG names a Dockerfile declares (so only those get a --build-arg and buildah does not warn)."""
    names: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        words = line.strip().split()
        if len(words) >= 2 and words[0].upper() == "ARG":
            names.add(words[1].split("=", 1)[0])
    return names


def provenance(repo: Path = REPO) -> dict[str, str]:
    """The values of the OCI revision and source labels, as build args (read once per run: HEAD may move)."""
    return {"REVISION": git_revision(repo), "SOURCE": git_source(repo)}


def provenance_args(dockerfile: Path, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build args for the OCI labels (revision, source) where the Dockerfile declares them."""
    declared = declared_args(dockerfile)
    return {name: value for name, value in (values or provenance()).items() if name in declared}


def git_source(repo: Path = REPO) -> str:
    """Where the source lives (OCI source label): the origin remote, else the checkout's path as a file URL."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else repo.resolve().as_uri()


def git_revision(repo: Path = REPO) -> str:
    """The commit the images are built from (OCI revision label); 'unknown' outside a git checkout."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def build_image(
    dockerfile: Path,
    tag: str,
    *,
    base_image: str,
    context: Path = REPO,
    build_args: Mapping[str, str] | None = None,
    volumes: Sequence[str] = (),
    secrets: Mapping[str, Path] | None = None,
    log_path: Path | None = None,
    timeout: float = 1200,
) -> BuiltImage:
    """`buildah bud` one Dockerfile against the local base; the layer cache makes unchanged rebuilds quick.

    `volumes` are `HOST:CONTAINER[:OPTIONS]` bind mounts for RUN steps (never part of a layer), `secrets` map
    an id to a host file (mounted at /run/secrets/<id> only while a `RUN --mount=type=secret` step runs).
    """
    if not dockerfile.is_file():
        raise ImageToolError(f"Dockerfile {dockerfile} does not exist")
    args = {"BASE_IMAGE": base_image, **(build_args or {})}
    argv = [
        "buildah",
        "bud",
        *ISOLATION,
        "--network",
        "host",
        "--layers",
        "--pull=never",  # the base is local; an image that names another registry must fail here, not download
        "-f",
        str(dockerfile),
        "-t",
        tag,
    ]
    for name, value in args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for volume in volumes:
        argv += ["-v", volume]
    for secret_id, path in (secrets or {}).items():
        argv += ["--secret", f"id={secret_id},src={path}"]
    with tempfile.TemporaryDirectory() as scratch:
        iidfile = Path(scratch) / "iid"
        argv += ["--iidfile", str(iidfile), str(context)]
        started = time.monotonic()
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path or os.devnull, "w") as log:
            _run(argv, log=log, timeout=timeout)
        return BuiltImage(tag=tag, image_id=iidfile.read_text().strip(), seconds=time.monotonic() - started)


def remove_image(tag: str) -> None:
    subprocess.run(["buildah", "rmi", "-f", tag], capture_output=True, check=False)


# --- 3. running --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def working_container(image: str) -> Iterator[str]:
    """A buildah working container of `image`, removed afterwards."""
    name = f"mlp-{uuid.uuid4().hex[:12]}"
    _run(["buildah", "from", "--pull=never", "--name", name, image])
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def _run_argv(
    container: str, command: Sequence[str], volumes: Sequence[str], env: Mapping[str, str] | None
) -> list[str]:
    argv = ["buildah", "run", *ISOLATION, "--network", "host"]
    for volume in volumes:
        argv += ["-v", volume]
    for name, value in (env or {}).items():
        argv += ["-e", f"{name}={value}"]
    return [*argv, container, "--", *command]


def run_in_container(
    image: str,
    command: Sequence[str],
    *,
    volumes: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `command` (give the entrypoint explicitly) in a fresh container of `image`; never raises on exit status."""
    with working_container(image) as container:
        return subprocess.run(
            _run_argv(container, command, volumes, env), capture_output=True, text=True, timeout=timeout, check=False
        )


def child_pids(pid: int) -> list[int]:
    """The direct children of a process, from /proc."""
    kids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            # the command name may hold spaces and parentheses: the ppid is the 2nd field after the last ')'
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(entry.name))
    return sorted(kids)


def descendant_pids(pid: int) -> list[int]:
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in child_pids(queue.pop(0)):
            found.append(child)
            queue.append(child)
    return found


@contextlib.contextmanager
def start_in_container(
    image: str,
    command: Sequence[str],
    *,
    volumes: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    output: IO[Any] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` in a container and yield the `buildah run` process; on exit it is stopped and removed.

    The process runs in its own session so that cleanup can end exactly the processes this call started
    (its process group), even when `buildah run` did not pass a signal on to the command.
    """
    with working_container(image) as container:
        proc = subprocess.Popen(
            _run_argv(container, command, volumes, env),
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            # End exactly what this call started: `buildah run`, its helpers and the command's processes (found
            # by parentage, in case one left the process group), then the group for anything reparented.
            for pid in [*reversed(descendant_pids(proc.pid)), proc.pid]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


@contextlib.contextmanager
def mounted_image(image: str) -> Iterator[Path]:
    """The merged root filesystem of `image`, read through `buildah mount` (root, overlay driver)."""
    with working_container(image) as container:
        path = Path(_run(["buildah", "mount", container]).strip())
        try:
            yield path
        finally:
            subprocess.run(["buildah", "umount", container], capture_output=True, check=False)


def export_layers(image: str, target: Path) -> list[Path]:
    """Every layer of `image` as an uncompressed tar under `target`, base first (`buildah push` to `dir:`)."""
    _run(["buildah", "push", "--quiet", "--disable-compression", image, f"dir:{target}"], timeout=600)
    manifest = json.loads((target / "manifest.json").read_text())
    return [target / layer["digest"].partition(":")[2] for layer in manifest["layers"]]


@contextlib.contextmanager
def exported_layers(image: str) -> Iterator[list[Path]]:
    """`export_layers` into a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="layers-") as scratch:
        yield export_layers(image, Path(scratch) / "image")


# --- housekeeping ------------------------------------------------------------------------------------------


def _diff_ids(image: str) -> list[str]:
    doc = inspect_image(image)
    return list(((doc.get("OCIv1") or {}).get("rootfs") or {}).get("diff_ids") or [])


def prune_derived(base: str = BASE_TAG) -> list[str]:
    """Remove the untagged images built on `base` (the layer cache of earlier builds); returns their ids.

    Only images whose first layer is the base's own are touched, so other users of buildah on the machine
    keep theirs. Rebuilds after this run without cache.
    """
    if not image_exists(base):
        return []
    base_layer = _diff_ids(base)[:1]
    listing = json.loads(_run(["buildah", "images", "--json", "--filter", "dangling=true"]) or "[]")
    removed: list[str] = []
    for entry in listing:
        image_id = entry.get("id", "")
        with contextlib.suppress(ImageToolError):
            if image_id and _diff_ids(image_id)[:1] == base_layer:
                subprocess.run(["buildah", "rmi", image_id], capture_output=True, check=False)
                removed.append(image_id)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.images base|prune`: make the local base image, or drop the build cache built on it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.images", description=main.__doc__)
    parser.add_argument("command", choices=("base", "prune"))
    args = parser.parse_args(argv)
    if missing_tools():
        print(f"missing {', '.join(missing_tools())}; install with: {INSTALL_HINT}")
        return 2
    if args.command == "base":
        print(ensure_base())
    else:
        print(f"removed {len(prune_derived())} cached images built on {BASE_TAG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
