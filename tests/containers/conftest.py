"""Fixtures of the container tests: the local base image, the build secret, and the project's images built once.

These tests need root, buildah and debootstrap. Where they are missing the tests FAIL with the command that
installs them; `MLPLATFORM_SKIP_CONTAINERS=1` (set on purpose, never in CI) skips them instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.helpers import (
    IMAGE_NAMES,
    LOG_DIR,
    ProjectImages,
    host_ca_bundle,
    secret_bundle,
    tool_gate,
)
from tools import images


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test in this folder drives buildah: mark them so `-m "not containers"` can leave them out locally.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.containers)


@pytest.fixture(scope="session")
def container_tools() -> None:
    """Skip (outside CI) or fail (CI=true) where the machine cannot build images: see `tool_gate`."""
    verdict = tool_gate(os.environ, shutil.which, os.geteuid())
    if verdict is None:
        return
    action, message = verdict
    if action == "skip":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def base_image(container_tools: None) -> str:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / "base.log", "a") as log:
        return images.ensure_base(log=log)


@pytest.fixture(scope="session")
def pip_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build secret: the host CA bundle plus a canary line, so a leak is found on any machine."""
    return secret_bundle(host_ca_bundle(), tmp_path_factory.mktemp("secret"))


@pytest.fixture(scope="session")
def project_images(base_image: str, pip_cert: Path, request: pytest.FixtureRequest) -> Iterator[ProjectImages]:
    """Builds each project image on first use (sizes go to build/containers/images.json as they are built)."""
    built = ProjectImages(base_image=base_image, pip_cert=pip_cert)
    # The selected tests' images build in the background while the first tests run (the pipeline needs all).
    selected = [item.nodeid for item in request.session.items]
    everything = any("test_containers_pipeline" in nodeid for nodeid in selected)
    built.start(tuple(name for name in IMAGE_NAMES if everything or any(name in nodeid for nodeid in selected)))
    yield built
    built.close()
