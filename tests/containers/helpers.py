"""Helpers of the container tests: which images to build and how, the build secret, SageMaker layouts.

Kept apart from conftest.py so the test files can import them (and so pyright sees their types).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.images import content_hash
from tools import image_checks, images

REPO = images.REPO
BUILD_DIR = REPO / "build" / "containers"
LOG_DIR = BUILD_DIR / "logs"
IMAGES_JSON = BUILD_DIR / "images.json"
SKIP_ENV = "MLPLATFORM_SKIP_CONTAINERS"
WHEELS_ENV = images.WHEELS_ENV
IMAGE_NAMES = ("training", "serving", "monitoring")
SERVING_SIZE_LIMIT_MB = 400  # contract of the serving image (MB as Docker shows them: 10**6 bytes)
CANARY_FILE = "secret-canary"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


# --- machine ----------------------------------------------------------------------------------------------


def tool_gate(env: Mapping[str, str], which: Callable[[str], str | None], euid: int) -> tuple[str, str] | None:
    """None when the machine can build images; else ("skip" | "fail", message naming what to install).

    Outside CI a machine without the tools skips the container tests with that message (pytest's `-ra` summary
    shows it once, as every test reaches it through one session fixture); in CI (`CI=true`) they fail."""
    missing = [tool for tool in images.REQUIRED_TOOLS if which(tool) is None]
    problems: list[str] = []
    if missing:
        problems.append(f"{', '.join(missing)} not found on PATH; install with: {images.INSTALL_HINT}")
    if euid != 0:
        problems.append("the container tests run buildah with chroot isolation, which needs root")
    if not problems:
        return None
    message = "container tests cannot run: " + "; ".join(problems)
    if env.get("CI") == "true":
        # CI installs the tools itself (.ci/run, as root with apt): a missing one there is a broken machine.
        return "fail", f"{message}. CI must run them: .ci/run installs the tools as root with apt."
    if env.get(SKIP_ENV) == "1":
        return "skip", f"{message} (skipped because {SKIP_ENV}=1)"
    return "skip", f"{message} (skipped outside CI; CI=true makes this a failure)"


def host_ca_bundle() -> Path:
    """The CA bundle the host's own pip trusts (it includes a re-signing proxy's CA where there is one)."""
    return images.host_ca_bundle() or DEFAULT_CA_BUNDLE


def canary() -> str:
    """A random marker, stable per machine (kept beside the base cache) so cached layers are checked too."""
    folder = images.base_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CANARY_FILE
    if not path.is_file():
        path.write_text(f"mlplatform-build-secret-canary-{uuid.uuid4().hex}\n")
    return path.read_text().strip()


def secret_bundle(host_bundle: Path, folder: Path) -> Path:
    """The file passed as the `pip_cert` build secret: the host bundle plus a comment line with the canary.

    OpenSSL skips text between PEM blocks, so pip trusts the same CAs; the canary finds a leak even where the
    host bundle is byte-identical to Debian's own.
    """
    path = folder / "pip_cert.pem"
    content = host_bundle.read_bytes() if host_bundle.is_file() else b""
    path.write_bytes(content.rstrip(b"\n") + f"\n# {canary()}\n".encode())
    return path


def public_ca_bundle() -> bytes:
    """Mozilla's public CA store as certifi ships it (the dev lock pins certifi).

    A public CA is no build secret, and images legitimately carry it: certifi's `cacert.pem` comes into an image
    with requests (the training image's MLflow client). A host whose CA bundle is newer than the base image's has
    public CAs the base lacks; without this they would read as leaked host CAs."""
    import certifi

    return Path(certifi.where()).read_bytes()


def secret_needles(pip_cert: Path, base_bundle: bytes) -> dict[str, bytes]:
    """What must never appear in a layer: each host CA that is neither in the base image's bundle nor a public
    CA (Mozilla's store), and the canary line only the build secret holds."""
    needles = image_checks.certificate_needles(pip_cert.read_bytes(), base_bundle + b"\n" + public_ca_bundle())
    needles["the build secret's canary line"] = canary().encode()
    return needles


def local_wheels() -> Path | None:
    """A local folder with a CPU torch wheel (pip's find-links on our machines), so builds skip CUDA torch."""
    return images.local_torch_wheels()


# --- builds -----------------------------------------------------------------------------------------------


@dataclass
class ImageRecord:
    name: str
    tag: str
    image_id: str
    build_seconds: float
    revision: str = ""
    source: str = ""
    layer_bytes: list[int] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(self.layer_bytes)

    def as_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "image_id": self.image_id,
            "build_seconds": round(self.build_seconds, 1),
            "revision": self.revision,
            "size_bytes": self.size_bytes,
            "size_mb": round(self.size_bytes / 1e6, 1),
            "layers": len(self.layer_bytes),
            "layer_bytes": self.layer_bytes,
        }


def build_options(name: str, dockerfile: Path, labels: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Build args and volumes for one image: provenance labels, and for training the local CPU torch wheels."""
    args = images.provenance_args(dockerfile, labels)
    volumes: list[str] = []
    if name == "training":
        wheels = local_wheels()
        if wheels is not None:
            if "PIP_FIND_LINKS" not in images.declared_args(dockerfile):
                raise images.ImageToolError(
                    f"{dockerfile} does not declare ARG PIP_FIND_LINKS, so the local CPU torch wheels in {wheels} "
                    "cannot be used and the build would download CUDA torch (several GB)"
                )
            volumes.append(f"{wheels}:/wheels:ro")
            args["PIP_FIND_LINKS"] = "/wheels"
    return args, volumes


@dataclass
class ProjectImages:
    """The project's images, each built once per test session from its real Dockerfile.

    `start()` builds them in the background on two workers (training, the long one, on its own), so the
    session waits for about the training build rather than the sum of all three.
    """

    base_image: str
    pip_cert: Path
    source: str = field(default_factory=images.git_source)
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mlp-layers-")))
    layer_paths: dict[str, list[Path]] = field(default_factory=dict)
    _futures: dict[str, Future[ImageRecord]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=2))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def dockerfile(self, name: str) -> Path:
        return REPO / name / "Dockerfile"

    def labels(self, name: str) -> dict[str, str]:
        """REVISION as the stack passes it (components.images.content_hash of the image's inputs), so an
        unrelated commit keeps the layer cache valid; SOURCE from git (the stack does not pass one)."""
        with self._lock:
            # Computed once per session: files may change while the tests run, and a variant built later
            # must get the same args to reuse the image's cached layers.
            if name not in self._labels:
                self._labels[name] = {"REVISION": content_hash(REPO, f"{name}/Dockerfile"), "SOURCE": self.source}
            return dict(self._labels[name])

    def start(self, names: tuple[str, ...] = IMAGE_NAMES) -> None:
        with self._lock:
            for name in names:
                if name not in self._futures:
                    self._futures[name] = self._pool.submit(self._build, name)

    def get(self, name: str) -> ImageRecord:
        """The built image (waits for its build); raises ImageToolError with the build log's tail on failure."""
        self.start((name,))
        return self._futures[name].result()

    def _build(self, name: str) -> ImageRecord:
        dockerfile = self.dockerfile(name)
        log = LOG_DIR / f"{name}.log"
        try:
            if not dockerfile.is_file():
                raise images.ImageToolError(f"{dockerfile.relative_to(REPO)} does not exist yet")
            args, volumes = build_options(name, dockerfile, self.labels(name))
            built = images.build_image(
                dockerfile,
                f"localhost/mlplatform-{name}:test",
                base_image=self.base_image,
                build_args=args,
                volumes=volumes,
                secrets={"pip_cert": self.pip_cert},
                log_path=log,
            )
            layers = images.export_layers(built.tag, self.scratch / name)
        except images.ImageToolError as error:
            raise images.ImageToolError(f"building {name} failed (log: {log}): {error}") from None
        record = ImageRecord(
            name=name,
            tag=built.tag,
            image_id=built.image_id,
            build_seconds=built.seconds,
            revision=args.get("REVISION", ""),
            source=args.get("SOURCE", ""),
            layer_bytes=[path.stat().st_size for path in layers],
        )
        with self._lock:
            self.layer_paths[name] = layers
            record_sizes(self.base_image, record)
        return record

    def layers(self, record: ImageRecord) -> list[Path]:
        """The image's layer tars, exported once after its build, kept until the session ends."""
        return self.layer_paths[record.name]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def record_sizes(base_image: str, record: ImageRecord) -> None:
    """Merge one image's size into build/containers/images.json (other images' entries are kept)."""
    IMAGES_JSON.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"images": {}}
    if IMAGES_JSON.is_file():
        doc = json.loads(IMAGES_JSON.read_text())
    doc["base_image"] = base_image
    doc.setdefault("images", {})[record.name] = record.as_json()
    IMAGES_JSON.write_text(json.dumps(doc, indent=2) + "\n")


def base_layer_count(base_image: str) -> int:
    doc = images.inspect_image(base_image)
    return len(((doc.get("OCIv1") or {}).get("rootfs") or {}).get("diff_ids") or [])


def base_ca_bundle(base_image: str) -> bytes:
    with images.mounted_image(base_image) as root:
        path = root / "etc/ssl/certs/ca-certificates.crt"
        return path.read_bytes() if path.is_file() else b""


def build_variant(
    dockerfile_text: str,
    tag: str,
    base_image: str,
    pip_cert: Path,
    folder: Path,
    name: str,
    labels: Mapping[str, str] | None = None,
) -> images.BuiltImage:
    """Build a Dockerfile written to a temporary folder, with the repository root as context (broken variants)."""
    path = folder / f"Dockerfile.{name}"
    path.write_text(dockerfile_text)
    return images.build_image(
        path,
        tag,
        base_image=base_image,
        build_args=images.provenance_args(path, labels),
        secrets={"pip_cert": pip_cert},
        log_path=LOG_DIR / f"{name}.log",
    )


# --- SageMaker layouts --------------------------------------------------------------------------------------


def lay_out_training(ml_root: Path, epochs: int = 3) -> None:
    """`python -m training demo-data` on the host, then few epochs so the container trains in seconds."""
    proc = subprocess.run(
        [sys.executable, "-m", "training", "demo-data", "--ml-root", str(ml_root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m training demo-data failed: {proc.stderr[-2000:]}")
    hp_path = ml_root / "input" / "config" / "hyperparameters.json"
    hp = json.loads(hp_path.read_text())
    hp.update({"epochs": str(epochs), "device": "cpu", "num_threads": "2"})  # SageMaker passes strings
    hp_path.write_text(json.dumps(hp, indent=2))


def feature_rows(ml_root: Path, manifest: Mapping[str, Any]) -> list[list[str]]:
    """Validation rows as raw strings in the manifest's request order (no label)."""
    names = [feature["name"] for feature in manifest["features"]]
    with (ml_root / "input" / "data" / "validation" / "validation.csv").open(newline="") as handle:
        return [[row[name] for name in names] for row in csv.DictReader(handle)]


def csv_body(rows: list[list[str]]) -> bytes:
    return "".join(",".join(row) + "\n" for row in rows).encode()


def json_body(rows: list[list[str]]) -> bytes:
    return json.dumps({"instances": [[float(v) for v in row] for row in rows]}).encode()


@dataclass(frozen=True)
class Captured:
    """One invocation as SageMaker data capture records it."""

    content_type: str
    body: bytes
    response_type: str
    response: bytes


def write_capture(root: Path, endpoint: str, variant: str, when: dt.datetime, calls: list[Captured]) -> Path:
    """Capture JSONL in SageMaker's layout `{endpoint}/{variant}/yyyy/mm/dd/hh/<file>.jsonl`; returns the file."""
    folder = root / endpoint / variant / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    with path.open("w") as handle:
        for number, call in enumerate(calls):
            record = {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": call.content_type,
                        "mode": "INPUT",
                        "data": call.body.decode(),
                        "encoding": "JSON" if "json" in call.content_type else "CSV",
                    },
                    "endpointOutput": {
                        "observedContentType": call.response_type,
                        "mode": "OUTPUT",
                        "data": call.response.decode(),
                        "encoding": "JSON" if "json" in call.response_type else "CSV",
                    },
                },
                "eventMetadata": {
                    "eventId": str(uuid.uuid4()),
                    "inferenceTime": (when + dt.timedelta(seconds=number)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                "eventVersion": "0",
            }
            handle.write(json.dumps(record) + "\n")
    return path


def scratch_dir(prefix: str) -> Path:
    """A folder for container mounts that is world-writable, in case an image runs as a non-root user."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
