"""The container harness proves itself on a tiny image: builds, runs, and reports each broken contract.

A check that cannot fail proves nothing, so each check here also meets an image broken on purpose (a shell-form
entrypoint that ignores `serve`, a build secret copied into a layer, missing OCI labels) and must report it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.containers.helpers import (
    LOG_DIR,
    REPO,
    SKIP_ENV,
    ProjectImages,
    base_ca_bundle,
    base_layer_count,
    build_variant,
    secret_needles,
    tool_gate,
)
from tools import image_checks, images

TINY = REPO / "tests" / "containers" / "fixtures" / "Dockerfile.tiny"
TINY_TAG = "localhost/mlplatform-tiny:test"
REQUESTS = [
    image_checks.Request("csv", b"1,2\n3,4\n", "text/csv"),
    image_checks.Request("empty body", b"", "text/csv", expect="client-error"),
]


def _which_without(*absent: str) -> Callable[[str], str | None]:
    return lambda tool: None if tool in absent else f"/usr/bin/{tool}"


def test_missing_buildah_fails_in_ci_with_the_install_command() -> None:
    verdict = tool_gate({"CI": "true"}, _which_without("buildah", "debootstrap"), 0)
    assert verdict is not None
    action, message = verdict
    assert action == "fail"
    assert "buildah, debootstrap not found" in message
    assert "apt-get install -y --no-install-recommends buildah debootstrap" in message
    # An explicit skip does not excuse CI.
    assert tool_gate({"CI": "true", SKIP_ENV: "1"}, _which_without("buildah"), 0)[0] == "fail"  # type: ignore[index]


def test_missing_tools_skip_outside_ci_with_one_line_saying_what_to_install() -> None:
    assert tool_gate({}, _which_without("buildah"), 0) == (
        "skip",
        f"container tests cannot run: buildah not found on PATH; install with: {images.INSTALL_HINT} "
        "(skipped outside CI; CI=true makes this a failure)",
    )
    assert tool_gate({SKIP_ENV: "1"}, _which_without("buildah"), 0) == (
        "skip",
        f"container tests cannot run: buildah not found on PATH; install with: {images.INSTALL_HINT} "
        f"(skipped because {SKIP_ENV}=1)",
    )


def test_non_root_fails_in_ci_with_the_reason() -> None:
    verdict = tool_gate({"CI": "true"}, _which_without(), 1000)
    assert verdict is not None
    assert verdict[0] == "fail"
    assert "needs root" in verdict[1]


def test_no_tool_problem_means_the_tests_run() -> None:
    assert tool_gate({}, _which_without(), 0) is None


def test_base_image_is_rebuilt_from_the_cached_rootfs_without_debootstrap(
    base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = "localhost/mlplatform-pybase:reuse-check"
    images.remove_image(tag)
    # The base image may come from buildah's store (machine-wide) without this cache ever holding its rootfs:
    # make sure the tar exists first, so what is checked is its reuse, not the state of the machine.
    images._make_rootfs_tar(  # pyright: ignore[reportPrivateUsage]
        images.base_cache_dir(),
        images.base_key(),
        os.environ.get(images.MIRROR_ENV) or images.DEFAULT_MIRROR,
        None,
    )
    real_which = images.shutil.which
    # With the rootfs tar cached, debootstrap (and the Debian mirror) must not be needed again.
    monkeypatch.setattr(images.shutil, "which", lambda tool: None if tool == "debootstrap" else real_which(tool))
    try:
        assert images.ensure_base(tag) == tag
        assert images.image_config(tag).labels[images.BASE_KEY_LABEL] == images.base_key()
        assert (images.base_cache_dir() / f"rootfs-{images.base_key()}.tar").is_file()
        result = images.run_in_container(
            tag, ["python3", "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])"]
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "(3, 11)"
    finally:
        images.remove_image(tag)


@pytest.fixture(scope="module")
def tiny(base_image: str, pip_cert: Path, project_images: ProjectImages) -> Iterator[tuple[str, str]]:
    # Asking for project_images starts the real images' builds in the background while these tests run.
    args = images.provenance_args(TINY)
    built = images.build_image(
        TINY,
        TINY_TAG,
        base_image=base_image,
        build_args=args,
        secrets={"pip_cert": pip_cert},
        log_path=LOG_DIR / "tiny.log",
    )
    yield built.tag, args["REVISION"]
    images.remove_image(built.tag)


@pytest.fixture(scope="module")
def needles(base_image: str, pip_cert: Path) -> dict[str, bytes]:
    return secret_needles(pip_cert, base_ca_bundle(base_image))


def test_secret_needles_name_the_host_only_cas_and_the_canary(needles: dict[str, bytes]) -> None:
    assert "the build secret's canary line" in needles
    assert all(len(needle) >= 32 for needle in needles.values())


def test_tiny_image_keeps_every_contract(
    tiny: tuple[str, str], base_image: str, needles: dict[str, bytes], tmp_path: Path
) -> None:
    tag, revision = tiny
    config = images.image_config(tag)
    assert image_checks.entrypoint_problems(config, TINY.read_text()) == []
    assert image_checks.label_problems(config) == []
    assert config.labels["org.opencontainers.image.revision"] == revision
    assert image_checks.config_secret_problems(config) == []
    with images.exported_layers(tag) as layers:
        assert image_checks.layer_secret_problems(layers, needles, skip_layers=base_layer_count(base_image)) == []
    report = image_checks.check_serving(tag, tmp_path, REQUESTS, log_path=LOG_DIR / "tiny-serve.log")
    assert report.problems == [], report.log
    assert report.answers["csv"].status == 200
    assert report.answers["csv"].body == b'{"rows": 2}'
    assert report.answers["empty body"].status == 400
    assert report.exit_code == 0  # the server's own clean exit after SIGTERM, passed through buildah


def test_shell_form_entrypoint_that_ignores_serve_is_reported(base_image: str, pip_cert: Path, tmp_path: Path) -> None:
    broken = TINY.read_text().replace(
        'ENTRYPOINT ["python3", "/app/tiny_server.py"]', "ENTRYPOINT python3 /app/tiny_server.py"
    )
    assert broken != TINY.read_text()
    tag = "localhost/mlplatform-tiny:shell-form"
    build_variant(broken, tag, base_image, pip_cert, tmp_path, "tiny-shell-form")
    try:
        config = images.image_config(tag)
        assert config.entrypoint == ["/bin/sh", "-c", "python3 /app/tiny_server.py"]
        problems = image_checks.entrypoint_problems(config, broken)
        assert len(problems) == 2
        assert "shell form" in problems[0]
        assert "not in exec (JSON) form" in problems[1]
        report = image_checks.check_serving(
            tag, tmp_path, REQUESTS, log_path=LOG_DIR / "tiny-shell-form-serve.log", ready_deadline_s=20
        )
        assert len(report.problems) == 1
        assert "never answered GET /ping with 200 (exited with" in report.problems[0]
    finally:
        images.remove_image(tag)


def test_secret_copied_into_a_layer_is_found_even_when_deleted_later(
    base_image: str, pip_cert: Path, needles: dict[str, bytes], tmp_path: Path
) -> None:
    leaky = TINY.read_text().replace(
        "COPY tests/",
        "RUN --mount=type=secret,id=pip_cert cp /run/secrets/pip_cert /opt/leak.pem\n"
        "RUN rm /opt/leak.pem && mkdir -p /etc/xdg/pip"
        " && printf '[global]\\ncert = /opt/leak.pem\\n' > /etc/xdg/pip/pip.conf\n"
        "ENV PIP_CERT=/run/secrets/pip_cert\n"
        "COPY tests/",
    )
    tag = "localhost/mlplatform-tiny:leaky"
    build_variant(leaky, tag, base_image, pip_cert, tmp_path, "tiny-leaky")
    try:
        config = images.image_config(tag)
        assert image_checks.config_secret_problems(config) == [
            "config environment sets PIP_CERT: build secrets and credentials must not be baked into the image",
            "config environment PIP_CERT='/run/secrets/pip_cert' points at a build secret",
        ]
        with images.exported_layers(tag) as layers:
            problems = image_checks.layer_secret_problems(layers, needles, skip_layers=base_layer_count(base_image))
        leak = [p for p in problems if "/opt/leak.pem contains" in p]
        assert len(leak) == len(needles), problems  # every host-only CA and the canary, in the layer that added it
        assert any(p.endswith("/etc/xdg/pip/pip.conf sets pip's cert: the CA must be a build secret") for p in problems)
    finally:
        images.remove_image(tag)


def test_missing_oci_labels_are_reported(base_image: str, pip_cert: Path, tmp_path: Path) -> None:
    text = TINY.read_text()
    start = text.index("LABEL ")
    end = text.index("\n", text.index("org.opencontainers.image.revision")) + 1
    tag = "localhost/mlplatform-tiny:unlabelled"
    build_variant(text[:start] + text[end:], tag, base_image, pip_cert, tmp_path, "tiny-unlabelled")
    try:
        problems = image_checks.label_problems(images.image_config(tag))
        assert [p.split(" is missing")[0] for p in problems] == [
            "OCI label org.opencontainers.image.source",
            "OCI label org.opencontainers.image.revision",
        ]
    finally:
        images.remove_image(tag)
