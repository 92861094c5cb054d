"""The training image's Dockerfile and pins keep the container contract (static checks; the image build itself
runs in the container tests)."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "training" / "Dockerfile").read_text(encoding="utf-8")


def _instructions() -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_base_image_is_an_argument_with_a_public_default() -> None:
    instructions = _instructions()
    assert instructions[0] == "ARG BASE_IMAGE=python:3.11-slim"
    assert "FROM ${BASE_IMAGE}" in instructions


def test_entrypoint_is_exec_form_so_train_is_the_argument() -> None:
    (entrypoint,) = [i for i in _instructions() if i.startswith("ENTRYPOINT")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT")) == ["python", "-m", "training"]


def test_pip_install_uses_cache_and_optional_cert_secret_mounts() -> None:
    (install,) = [i for i in _instructions() if i.startswith("RUN") and "pip install" in i]
    assert "--mount=type=cache,target=/root/.cache/pip" in install
    assert "--mount=type=secret,id=pip_cert,required=false" in install
    assert "export PIP_CERT=/run/secrets/pip_cert" in install
    assert "-r /opt/program/training/requirements.txt" in install
    assert 'ARG PIP_FIND_LINKS=""' in _instructions()


def test_image_carries_oci_source_and_revision_labels() -> None:
    labels = " ".join(i for i in _instructions() if i.startswith("LABEL"))
    assert 'org.opencontainers.image.source="${SOURCE}"' in labels
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels


def test_context_is_the_repository_root_with_training_and_monitoring() -> None:
    copies = [i for i in _instructions() if i.startswith("COPY")]
    assert "COPY training /opt/program/training" in copies
    assert "COPY monitoring /opt/program/monitoring" in copies


def test_requirements_pin_the_versions_the_tests_run_with() -> None:
    lines = (REPO / "training" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    # The libraries that shape the model and its export; transitive pins are aligned across the containers
    # in requirements-dev.txt and may lead the local environment by a patch release.
    direct = ("torch", "onnx", "onnxruntime", "onnxscript", "pandas", "pyarrow", "scikit-learn", "numpy")
    assert set(direct) <= set(pins)
    for name in direct:
        installed = metadata.version(name).split("+")[0]  # torch's local build label (+cpu) is not pinned
        assert installed == pins[name], (name, installed, pins[name])
