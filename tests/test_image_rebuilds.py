"""Rebuilds across deployments: the tag changes whenever pulumi-docker-build would rebuild (ECR tags are
immutable), and a rebuild that changes no file of an image keeps the digest the stack used before (no
retraining, no rollout).

Models pulumi/pulumi-docker-build `provider/internal/image.go`, `(*Image) Diff`: a rebuild follows any change of
buildArgs, labels, cacheFrom/cacheTo, context location or files, dockerfile, platforms, push, registries (and
Create then pushes a new digest under the same tags); and ECR's PutImage with IMMUTABLE tag mutability, which
refuses an existing tag for another digest (ImageTagAlreadyExistsException, Amazon ECR API reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import images
from components.images import image_tag, unchanged_image_ref
from tools.example_outputs import example_stack_outputs
from tools.plan import Plan, run_program
from tools.preflight import preflight

SELF = "organization/mlplatform/dev"
JOB = "aws:sagemaker/trainingJob:TrainingJob"
MODEL = "aws:sagemaker/model:Model"
IMAGE = "docker-build:index:Image"
BUILD = {"context": ".", "dockerfile": "training/Dockerfile", "labels": {"a": "1"}, "build_args": {"R": "x"}}


def test_equal_content_and_build_inputs_give_the_same_tag() -> None:
    assert image_tag("c" * 64, dict(BUILD)) == image_tag("c" * 64, dict(BUILD))


@pytest.mark.parametrize(
    "change",
    [
        {"labels": {"a": "2"}},
        {"build_args": {"R": "y"}},
        {"dockerfile": "serving/Dockerfile"},
        {"context": "other"},
        {"platforms": ["linux/arm64"]},
        {"cache": {"mode": "min"}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_input_docker_build_rebuilds_on_changes_the_tag(change: dict[str, Any]) -> None:
    assert image_tag("c" * 64, {**BUILD, **change}) != image_tag("c" * 64, dict(BUILD))


def test_a_provider_upgrade_changes_the_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new provider version may hash the context differently and rebuild everything."""
    before = image_tag("c" * 64, dict(BUILD))
    monkeypatch.setattr(images.importlib.metadata, "version", lambda _name: "99.0.0")
    assert image_tag("c" * 64, dict(BUILD)) != before


def test_the_previous_digest_is_reused_only_for_the_same_content() -> None:
    prior = {"training": {"contentHash": "abc", "ref": "repo@sha256:" + "1" * 64}}
    assert unchanged_image_ref(prior, "training", "abc") == "repo@sha256:" + "1" * 64
    assert unchanged_image_ref(prior, "training", "abd") is None
    assert unchanged_image_ref(prior, "serving", "abc") is None
    assert unchanged_image_ref(None, "training", "abc") is None


def _dev(changes: dict[str, str] | None = None, previous: dict[str, Any] | None = None) -> Plan:
    values = dict(preflight("dev", Path(images.REPO_ROOT)).values)
    values.update(changes or {})
    outputs = example_stack_outputs()
    if previous is not None:
        outputs[SELF] = previous
    return run_program("dev", values, stack_outputs=outputs)


def _training_image(plan: Plan) -> str:
    return plan.one(JOB)["inputs"]["algorithmSpecification"]["trainingImage"]


def test_a_rebuild_without_content_change_neither_retrains_nor_rolls_out() -> None:
    """Deploy, then deploy again with a new image label (imagesSourceUrl): docker-build rebuilds every image
    (labels and build args changed) under new tags, but the training job and the model keep last update's
    digests, so SageMaker sees no change."""
    first = _dev()
    source = {"mlplatform:imagesSourceUrl": "https://example.com/acme/mlplatform"}
    second = _dev(source, previous=first.outputs)
    first_tags = sorted(t for r in first.of_type(IMAGE) for t in r["inputs"]["tags"])
    second_tags = sorted(t for r in second.of_type(IMAGE) for t in r["inputs"]["tags"])
    assert set(first_tags).isdisjoint(second_tags)  # never the same tag for a rebuilt digest
    assert _training_image(second) == _training_image(first)
    assert second.one(JOB)["inputs"]["trainingJobName"] == first.one(JOB)["inputs"]["trainingJobName"]
    assert second.outputs["imageBuilds"] == first.outputs["imageBuilds"]
    assert second.one(MODEL)["inputs"]["primaryContainer"] == first.one(MODEL)["inputs"]["primaryContainer"]
    # Without the previous outputs (what a stack without this mechanism did) the job would be replaced.
    assert _training_image(_dev(source)) != _training_image(first)


def test_a_content_change_deploys_the_new_digest() -> None:
    """Last update recorded another content hash for the image: its digest is stale and must not be reused."""
    first = _dev()
    stale = dict(first.outputs)
    stale["imageBuilds"] = {"training": {"contentHash": "0" * 64, "ref": "repo@sha256:" + "9" * 64}}
    assert _training_image(_dev(previous=stale)) == _training_image(first)
    assert _training_image(_dev(previous=stale)) != "repo@sha256:" + "9" * 64
