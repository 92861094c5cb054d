"""ContainerImage under the mock runtime: ECR settings, the digest reference, the content-hash tag, prebuilt images."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

from components.images import (
    CACHE_TAG,
    ContainerImage,
    ContainerImageArgs,
    ImageBuildError,
    content_hash,
    dockerfile_sources,
    ecr_repository_arn,
)
from tests.conftest import run_components
from tools.plan import Plan

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
REPO = "aws:ecr/repository:Repository"
POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
IMAGE = "docker-build:index:Image"
PREBUILT = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-serving@sha256:" + "c" * 64


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A small build context: a Dockerfile copying one folder and one file, plus unrelated files."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print('hello')\n")
    (tmp_path / "app" / "util.py").write_text("X = 1\n")
    (tmp_path / "requirements.txt").write_text("numpy==2.1.0\n")
    (tmp_path / "README.md").write_text("not copied into the image\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not copied either\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\n"
        "FROM ${BASE_IMAGE} AS base\n"
        "# a comment\n"
        "COPY requirements.txt /tmp/\n"
        "COPY --chown=1000:1000 app/ \\\n"
        "     /opt/app/\n"
        "FROM base\n"
        "COPY --from=base /opt/app /srv/app\n"
    )
    return tmp_path


def _build(
    context: Path, name: str = "img", *, keep_last: int = 20, protect: bool = False
) -> tuple[Plan, ContainerImage]:
    holder: list[ContainerImage] = []

    def program() -> None:
        args: ContainerImageArgs = {
            "dockerfile": "Dockerfile",
            "context": str(context),
            "kms_key_arn": KEY_ARN,
            "keep_last": keep_last,
            "protect": protect,
        }
        image = ContainerImage(name, args)
        holder.append(image)
        pulumi.export("image_ref", image.image_ref)
        if image.repository_arn is not None:
            pulumi.export("repository_arn", image.repository_arn)

    return run_components(program), holder[0]


def _repo(plan: Plan, suffix: str) -> dict:
    return next(r for r in plan.of_type(REPO) if r["name"].endswith(suffix))


def test_dockerfile_sources_are_the_context_paths_copied_not_other_stages(context: Path) -> None:
    assert dockerfile_sources(context / "Dockerfile") == ["requirements.txt", "app/"]


def test_dockerfile_sources_read_exec_form_and_skip_urls(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM scratch\nCOPY ["a.txt", "b dir/", "/dst/"]\nADD https://example.com/x.tgz /x.tgz\nADD c.tar /c/\n'
    )
    assert dockerfile_sources(dockerfile) == ["a.txt", "b dir/", "c.tar"]


def test_a_copy_source_with_a_variable_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY ${SRC}/ /app/\n")
    with pytest.raises(ImageBuildError, match=r"\$\{SRC\}/.*literal paths"):
        content_hash(tmp_path, "Dockerfile")


def test_a_missing_copy_source_is_refused_with_its_path(context: Path) -> None:
    (context / "app" / "main.py").unlink()
    (context / "app" / "util.py").unlink()
    (context / "app").rmdir()
    with pytest.raises(ImageBuildError, match=r"'app/' does not exist"):
        content_hash(context, "Dockerfile")


def test_content_hash_is_stable_for_an_unchanged_tree(context: Path) -> None:
    first = content_hash(context, "Dockerfile")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert content_hash(context, "Dockerfile") == first


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c / "app" / "main.py").write_text("print('changed')\n"),
        lambda c: (c / "app" / "new_module.py").write_text("Y = 2\n"),
        lambda c: (c / "requirements.txt").write_text("numpy==2.2.0\n"),
        lambda c: (c / "Dockerfile").write_text((c / "Dockerfile").read_text() + "ENV A=1\n"),
        lambda c: os.chmod(c / "app" / "main.py", 0o755),
        lambda c: (c / "app" / "util.py").rename(c / "app" / "helpers.py"),
        lambda c: (c / "Dockerfile.dockerignore").write_text("*\n!app/\n!requirements.txt\n"),
    ],
    ids=[
        "file-edited",
        "file-added",
        "copied-file-edited",
        "dockerfile-edited",
        "made-executable",
        "renamed",
        "ignore-file-added",
    ],
)
def test_content_hash_changes_when_a_file_in_the_image_changes(context: Path, change: Callable[[Path], object]) -> None:
    before = content_hash(context, "Dockerfile")
    change(context)
    assert content_hash(context, "Dockerfile") != before


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c / "README.md").write_text("edited docs\n"),
        lambda c: (c / "other" / "notes.txt").write_text("edited\n"),
        lambda c: (c / "app" / "__pycache__").mkdir() or (c / "app" / "__pycache__" / "main.pyc").write_bytes(b"x"),
        lambda c: (c / "app" / "main.pyc").write_bytes(b"\x00bytecode"),
    ],
    ids=["readme", "uncopied-folder", "pycache", "pyc"],
)
def test_content_hash_ignores_files_outside_the_image_and_bytecode(
    context: Path, change: Callable[[Path], object]
) -> None:
    before = content_hash(context, "Dockerfile")
    change(context)
    assert content_hash(context, "Dockerfile") == before


def test_content_hash_does_not_depend_on_where_the_checkout_lives(
    context: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import shutil

    copy = tmp_path_factory.mktemp("elsewhere") / "checkout"
    shutil.copytree(context, copy)
    assert content_hash(copy, "Dockerfile") == content_hash(context, "Dockerfile")


def test_repository_has_immutable_tags_scan_on_push_and_the_project_key(context: Path) -> None:
    plan, _ = _build(context)
    repo = _repo(plan, "-repo")["inputs"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": KEY_ARN}]


def test_lifecycle_policy_keeps_the_newest_n_images(context: Path) -> None:
    plan, _ = _build(context, keep_last=7)
    repo_name = plan.outputs["image_ref"].split("/", 1)[1].split("@")[0]
    policy = next(p for p in plan.of_type(POLICY) if p["inputs"]["repository"] == repo_name)
    rules = json.loads(policy["inputs"]["policy"])["rules"]
    assert rules == [
        {
            "rulePriority": 1,
            "description": "keep the newest 7 images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 7},
            "action": {"type": "expire"},
        }
    ]


def test_build_cache_lives_in_a_separate_mutable_repository(context: Path) -> None:
    plan, _ = _build(context)
    cache = _repo(plan, "-cache")
    assert cache["inputs"]["imageTagMutability"] == "MUTABLE"
    assert cache["inputs"]["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": KEY_ARN}]
    image = plan.one(IMAGE)["inputs"]
    cache_ref = image["cacheTo"][0]["registry"]["ref"]
    assert re.fullmatch(
        rf"111122223333\.dkr\.ecr\.us-east-1\.amazonaws\.com/{cache['name']}-[0-9a-f]{{7}}:{CACHE_TAG}", cache_ref
    )
    assert image["cacheFrom"] == [{"registry": {"ref": cache_ref}}]
    assert image["cacheTo"][0]["registry"]["mode"] == "max"
    assert image["cacheTo"][0]["registry"]["imageManifest"] is True
    assert image["cacheTo"][0]["registry"]["ociMediaTypes"] is True
    image_repo_url = image["tags"][0].rsplit(":", 1)[0]
    assert cache_ref.rsplit(":", 1)[0] != image_repo_url


def test_image_is_pushed_for_amd64_tagged_with_the_content_hash(context: Path) -> None:
    plan, image = _build(context)
    inputs = plan.one(IMAGE)["inputs"]
    assert inputs["push"] is True
    assert inputs["platforms"] == ["linux/amd64"]
    assert image.content_hash == content_hash(context, "Dockerfile")
    assert image.tag is not None and image.content_hash is not None
    assert re.fullmatch(r"[0-9a-f]{32}", image.tag)
    assert len(inputs["tags"]) == 1
    assert inputs["tags"][0].split("/", 1)[1].startswith(_repo(plan, "-repo")["name"] + "-")
    assert inputs["tags"][0].endswith(f":{image.tag}")
    assert "latest" not in inputs["tags"][0]
    assert inputs["buildArgs"] == {"REVISION": image.content_hash}
    assert "BASE_IMAGE" not in inputs["buildArgs"]
    assert inputs["labels"] == {"org.opencontainers.image.revision": image.content_hash}
    assert not os.path.isabs(inputs["context"]["location"])
    assert Path(inputs["context"]["location"]).resolve() == context.resolve()
    assert Path(inputs["dockerfile"]["location"]).resolve() == (context / "Dockerfile").resolve()


def test_registry_login_uses_the_ecr_token_for_the_repository_registry(context: Path) -> None:
    plan, _ = _build(context)
    registries = plan.one(IMAGE)["inputs"]["registries"]
    assert registries == [
        {"address": "111122223333.dkr.ecr.us-east-1.amazonaws.com", "username": "AWS", "password": "mock-ecr-password"}
    ]


def test_image_ref_is_the_repository_url_at_the_pushed_digest(context: Path) -> None:
    plan, _ = _build(context)
    ref = plan.outputs["image_ref"]
    repo_url = plan.one(IMAGE)["inputs"]["tags"][0].rsplit(":", 1)[0]
    assert re.fullmatch(re.escape(repo_url) + r"@sha256:[0-9a-f]{64}", ref)
    assert plan.outputs["repository_arn"] == ecr_repository_arn(ref)


def test_a_changed_file_changes_the_tag_and_the_digest(context: Path) -> None:
    before, _ = _build(context)
    (context / "app" / "main.py").write_text("print('v2')\n")
    after, _ = _build(context)
    assert before.one(IMAGE)["inputs"]["tags"] != after.one(IMAGE)["inputs"]["tags"]
    assert before.outputs["image_ref"] != after.outputs["image_ref"]


def test_protected_repository_is_never_force_deleted(context: Path) -> None:
    plan, _ = _build(context, protect=True)
    repo = _repo(plan, "-repo")
    assert repo["options"].get("protect") is True
    assert repo["inputs"]["forceDelete"] is False


def test_unprotected_repository_may_be_emptied_on_destroy(context: Path) -> None:
    plan, _ = _build(context)
    repo = _repo(plan, "-repo")
    assert not repo["options"].get("protect")
    assert repo["inputs"]["forceDelete"] is True


def test_every_child_is_parented_and_named_after_the_component(context: Path) -> None:
    plan, _ = _build(context, name="mlplatform-dev-training")
    children = plan.children("mlplatform:images:ContainerImage::mlplatform-dev-training")
    assert sorted(c["type"] for c in children) == sorted([REPO, REPO, POLICY, POLICY, IMAGE])
    assert all(c["name"].startswith("mlplatform-dev-training-") for c in children)


def test_prebuilt_reference_creates_no_repository_and_no_build() -> None:
    def program() -> None:
        image = ContainerImage("served", {"dockerfile": "serving/Dockerfile", "prebuilt_ref": PREBUILT})
        pulumi.export("image_ref", image.image_ref)
        assert image.repository_arn is not None
        pulumi.export("repository_arn", image.repository_arn)

    plan = run_components(program)
    assert plan.of_type(REPO) == [] and plan.of_type(IMAGE) == [] and plan.of_type(POLICY) == []
    assert [r["type"] for r in plan.resources] == ["mlplatform:images:ContainerImage"]
    assert plan.outputs["image_ref"] == PREBUILT
    assert plan.outputs["repository_arn"] == "arn:aws:ecr:us-east-1:111122223333:repository/mlplatform-serving"


def test_prebuilt_reference_by_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="by digest"):
        run_components(lambda: ContainerImage("x", {"dockerfile": "D", "prebuilt_ref": "repo/image:latest"}))


def test_building_without_a_kms_key_is_refused(context: Path) -> None:
    with pytest.raises(ValueError, match="kms_key_arn is required"):
        run_components(lambda: ContainerImage("x", {"dockerfile": "Dockerfile", "context": str(context)}))


def test_ecr_repository_arn_is_none_outside_ecr() -> None:
    assert ecr_repository_arn("ghcr.io/org/image@sha256:" + "d" * 64) is None
    assert (
        ecr_repository_arn("111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn/a/b@sha256:" + "d" * 64)
        == "arn:aws-cn:ecr:cn-north-1:111122223333:repository/a/b"
    )


def test_a_dockerfile_without_its_own_ignore_file_is_warned_about(
    context: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _build(context)
    assert any("no Dockerfile.dockerignore beside it" in r.getMessage() for r in caplog.records)
    caplog.clear()
    (context / "Dockerfile.dockerignore").write_text("*\n!app/\n!requirements.txt\n")
    with caplog.at_level(logging.WARNING):
        _build(context)
    assert not any("dockerignore" in r.getMessage() for r in caplog.records)


def test_source_url_becomes_the_oci_source_label() -> None:
    from components.images import ContainerImage

    plan = run_components(
        lambda: ContainerImage(
            "img-src",
            {
                "dockerfile": "serving/Dockerfile",
                "kms_key_arn": "arn:aws:kms:us-east-1:111122223333:key/k",
                "source_url": "https://github.com/acme/mlplatform",
            },
        )
    )
    image = plan.one("docker-build:index:Image")["inputs"]
    assert image["buildArgs"]["SOURCE"] == "https://github.com/acme/mlplatform"
    assert image["labels"]["org.opencontainers.image.source"] == "https://github.com/acme/mlplatform"
