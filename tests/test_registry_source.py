"""`mlplatform:modelSource registry` (components/registry_source.py): deploy an Approved model package version.

The registry is moto's SageMaker (moto 5: CreateModelPackageGroup, CreateModelPackage, UpdateModelPackage,
ListModelPackages with its ModelApprovalStatus filter and CreationTime sort, DescribeModelPackage), which
answers with the members of botocore's sagemaker model (ModelPackageSummary: ModelPackageVersion,
ModelPackageArn, ModelApprovalStatus; DescribeModelPackageOutput: InferenceSpecification, ModelMetrics). The
packages are registered the way the training pipeline's Register step does (components/pipeline.py):
uncompressed model files as ModelDataSource.S3DataSource, the baseline as ModelMetrics.ModelDataQuality.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.registry_source import RegistrySourceError, artifacts_of, find_approved_package
from components.settings import SettingsError, load_settings
from tests.conftest import plan_with
from tools.plan import stack_config

GROUP = "mlplatform-dev"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:" + "b" * 64


def _register(client: Any, version_tag: str, status: str) -> str:
    prefix = f"s3://mlplatform-dev-models/lifecycle/models/{version_tag}/output/model/"
    answer = client.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataSource": {
                        "S3DataSource": {"S3Uri": prefix, "S3DataType": "S3Prefix", "CompressionType": "None"}
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"{prefix}baseline/statistics.json"},
                "Constraints": {"ContentType": "application/json", "S3Uri": f"{prefix}baseline/constraints.json"},
            }
        },
    )
    return str(answer["ModelPackageArn"])


@pytest.fixture
def registry() -> Iterator[Any]:
    """Versions 1 and 2 approved, version 3 pending (the newest candidate, not yet reviewed)."""
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model_package_group(ModelPackageGroupName=GROUP)
        _register(client, "job-1", "Approved")
        _register(client, "job-2", "Approved")
        _register(client, "job-3", "PendingManualApproval")
        yield client


def _model_inputs(plan: Any) -> str:
    return json.dumps([r["inputs"] for r in plan.of_type("aws:sagemaker/model:Model")])


def test_latest_approved_version_is_deployed_not_the_newer_pending_one(registry: Any) -> None:
    plan = plan_with("dev", {"mlplatform:modelSource": "registry", "mlplatform:modelPackageGroup": GROUP})
    models = _model_inputs(plan)
    assert "lifecycle/models/job-2/output/model/" in models
    assert "job-3" not in models
    assert not plan.of_type("aws:sagemaker/trainingJob:TrainingJob")
    assert plan.outputs["modelDataUri"] == "s3://mlplatform-dev-models/lifecycle/models/job-2/output/model/"


def test_pinned_approved_version_is_deployed(registry: Any) -> None:
    plan = plan_with(
        "dev",
        {
            "mlplatform:modelSource": "registry",
            "mlplatform:modelPackageGroup": GROUP,
            "mlplatform:modelPackageVersion": "1",
        },
    )
    assert "lifecycle/models/job-1/output/model/" in _model_inputs(plan)


def test_unapproved_version_is_refused_with_the_command_that_approves_it(registry: Any) -> None:
    with pytest.raises(Exception, match=r"modelPackageVersion 3 .* is PendingManualApproval, not Approved") as info:
        plan_with(
            "dev",
            {
                "mlplatform:modelSource": "registry",
                "mlplatform:modelPackageGroup": GROUP,
                "mlplatform:modelPackageVersion": "3",
            },
        )
    assert "update-model-package --model-package-arn arn:aws:sagemaker:" in str(info.value)
    assert "--model-approval-status Approved" in str(info.value)


def test_group_without_an_approved_version_is_refused(registry: Any) -> None:
    registry.create_model_package_group(ModelPackageGroupName="empty")
    _ = registry  # versions only in GROUP
    with pytest.raises(RegistrySourceError, match=r"'empty' \(mlplatform:modelPackageGroup\) has no Approved version"):
        find_approved_package(registry, "empty", None)
    with pytest.raises(RegistrySourceError, match=r"has no such version \(it has \[1, 2, 3\]\)"):
        find_approved_package(registry, GROUP, 9)


def test_package_without_a_baseline_names_the_missing_member() -> None:
    description = {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package/g/4",
        "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}]},
    }
    with pytest.raises(RegistrySourceError) as info:
        artifacts_of(description)
    message = str(info.value)
    assert "model-package/g/4 cannot be deployed" in message
    assert "compressed archive" in message
    assert "no ModelMetrics.ModelDataQuality.Statistics.S3Uri" in message


def test_prod_must_pin_a_registry_version() -> None:
    raw = dict(stack_config("prod"))
    raw.update({"mlplatform:modelSource": "registry", "mlplatform:modelPackageGroup": GROUP})
    with pytest.raises(SettingsError, match=r"prod environment needs mlplatform:modelPackageVersion"):
        load_settings(raw, "prod")
    raw["mlplatform:modelPackageGroup"] = ""
    with pytest.raises(SettingsError, match=r"'registry' needs mlplatform:modelPackageGroup"):
        load_settings(raw, "prod")
