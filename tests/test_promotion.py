"""Prod owns what it serves (issue 15 E): promotion copies the model files and the image into prod's own bucket and
repository, keeps them for every version, and `mlplatform:modelCopyArtifacts false` turns it off."""

from __future__ import annotations

import pytest

from components.image_promotion import ImagePromotionError, promoted_ref
from components.promotion import PromotionError, copy_plan, promoted_prefix
from tests.conftest import plan_with
from tools.example_outputs import dev_outputs
from tools.plan import Plan

OBJECT_COPY = "aws:s3/objectCopy:ObjectCopy"
REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
DYNAMIC = "pulumi-python:dynamic:Resource"


def test_copy_plan_maps_every_contract_file_under_promoted() -> None:
    plan = copy_plan(
        "s3://dev-models/training/job-1/output/model/",
        "s3://dev-models/training/job-1/output/model/baseline/statistics.json",
        "s3://elsewhere/constraints.json",
    )
    dest = "promoted/dev-models/training/job-1/output/model/"
    assert plan["model-onnx"] == ("dev-models/training/job-1/output/model/model.onnx", dest + "model.onnx")
    assert plan["model-int8-onnx"][1] == dest + "model.int8.onnx"
    assert plan["baseline-constraints-json"] == ("elsewhere/constraints.json", dest + "baseline/constraints.json")
    assert len(plan) == 6
    assert promoted_prefix("s3://dev-models/training/job-1/output/model") == dest


def test_bad_promoted_uris_are_named() -> None:
    with pytest.raises(PromotionError, match="model data URI must be an S3 URI"):
        promoted_prefix("https://example.com/model/")
    with pytest.raises(ImagePromotionError, match="ECR image by digest, got 'repo:latest'"):
        promoted_ref("111122223333.dkr.ecr.us-east-1.amazonaws.com/prod", "repo:latest")


def test_prod_copies_into_its_own_bucket_and_repository_and_keeps_them(prod_plan: Plan) -> None:
    copies = prod_plan.of_type(OBJECT_COPY)
    assert len(copies) == 6
    assert all(c["options"].get("retainOnDelete") for c in copies)
    assert {c["inputs"]["bucket"] for c in copies} == {prod_plan.outputs["modelBucket"]}
    repository = next(
        r for r in prod_plan.of_type(REPOSITORY) if str(r["inputs"].get("name", "")).endswith("-serving-promoted")
    )
    assert repository["options"].get("protect") is True
    assert repository["inputs"]["forceDelete"] is False
    # No expiry rule on the promoted repository: a retained config may pull any promoted digest.
    assert [p for p in prod_plan.of_type(LIFECYCLE) if p["parent"] == repository["parent"]] == []
    (copy,) = prod_plan.of_type(DYNAMIC)
    digest = dev_outputs()["servingImage"].partition("@")[2]
    assert copy["inputs"]["source_image"] == dev_outputs()["servingImage"]
    served = prod_plan.one("aws:sagemaker/model:Model")["inputs"]["primaryContainer"]
    assert served["image"] == copy["inputs"]["target_ref"]
    assert served["image"].endswith(f"/mlplatform-prod-serving-promoted@{digest}")
    # The outputs name the model as promoted (the source's URIs), as before.
    assert prod_plan.outputs["servingImage"] == dev_outputs()["servingImage"]


def test_dev_trains_and_copies_nothing(dev_plan: Plan) -> None:
    assert dev_plan.of_type(OBJECT_COPY) == []
    assert dev_plan.of_type(DYNAMIC) == []


def test_copy_switch_off_serves_the_source_stacks_artifacts() -> None:
    plan = plan_with("prod", {"mlplatform:modelCopyArtifacts": "false"})
    assert plan.of_type(OBJECT_COPY) == []
    assert plan.of_type(DYNAMIC) == []
    container = plan.one("aws:sagemaker/model:Model")["inputs"]["primaryContainer"]
    assert container["image"] == dev_outputs()["servingImage"]
    assert container["modelDataSource"]["s3DataSources"][0]["s3Uri"] == dev_outputs()["modelDataUri"]
