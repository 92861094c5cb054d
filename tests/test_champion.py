"""The pipeline's ResolveChampion step (training/champion.py): a pin, else the group's latest Approved version.

The SageMaker client is real boto3 with botocore's Stubber: each expected request is validated against the
ListModelPackages / DescribeModelPackage input shapes of the installed botocore model, and each canned response
against the output shapes (botocore/stub.py, Stubber.add_response -> _validate_operation_response). The responses
carry the members the API returns (ModelPackageSummaryList items with ModelPackageGroupName, ModelPackageVersion,
ModelPackageArn, CreationTime, ModelPackageStatus, ModelApprovalStatus; DescribeModelPackage with the
InferenceSpecification the pipeline's Register step writes).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from training.__main__ import main
from training.champion import LATEST_APPROVED, resolve
from training.errors import TrainingInputError

GROUP = "mlplatform-dev"
ARN = "arn:aws:sagemaker:us-east-1:111122223333:model-package/mlplatform-dev/7"
NO_CHAMPION = "s3://models/lifecycle/no-champion/"
PREFIX = "s3://models/lifecycle/models/pipelines-abc-Train/output/model"
LIST_REQUEST = {
    "ModelPackageGroupName": GROUP,
    "ModelApprovalStatus": "Approved",
    "SortBy": "CreationTime",
    "SortOrder": "Descending",
    "MaxResults": 1,
}


def _client() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _summary() -> dict[str, Any]:
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 7,
        "ModelPackageArn": ARN,
        "CreationTime": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }


def _package(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 7,
        "ModelPackageArn": ARN,
        "CreationTime": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": "123.dkr.ecr.us-east-1.amazonaws.com/serving@sha256:" + "a" * 64, **source}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }


def _prefix_source(uri: str = PREFIX) -> dict[str, Any]:
    return {"ModelDataSource": {"S3DataSource": {"S3Uri": uri, "S3DataType": "S3Prefix", "CompressionType": "None"}}}


def test_latest_approved_version_is_the_champion() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary()]}, LIST_REQUEST)
        stub.add_response("describe_model_package", _package(_prefix_source()), {"ModelPackageName": ARN})
        record = resolve(LATEST_APPROVED, GROUP, NO_CHAMPION, client)
        stub.assert_no_pending_responses()
    assert record == {"model_data_url": PREFIX + "/", "source": LATEST_APPROVED, "model_package_arn": ARN}


def test_nothing_approved_means_the_no_champion_marker() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []}, LIST_REQUEST)
        record = resolve(LATEST_APPROVED, GROUP, NO_CHAMPION, client)
    assert record == {"model_data_url": NO_CHAMPION, "source": "none", "model_package_arn": None}


def test_a_pinned_prefix_is_used_without_asking_the_registry() -> None:
    client = _client()
    with Stubber(client):  # no response queued: any call would fail the test
        record = resolve("s3://models/approved/v3/", GROUP, NO_CHAMPION, client)
    assert record["model_data_url"] == "s3://models/approved/v3/"
    assert record["source"] == "pinned"
    with pytest.raises(TrainingInputError, match=r"champion 'v3': allowed: an S3 prefix"):
        resolve("v3", GROUP, NO_CHAMPION, client)


def test_an_approved_tarball_is_refused_naming_the_version() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary()]}, LIST_REQUEST)
        tarball = {"ModelDataUrl": "s3://models/other/model.tar.gz"}
        stub.add_response("describe_model_package", _package(tarball), {"ModelPackageName": ARN})
        with pytest.raises(TrainingInputError, match=r"model package .*/7 holds its model as 's3://models/other/"):
            resolve(LATEST_APPROVED, GROUP, NO_CHAMPION, client)


def test_champion_command_writes_the_record_the_pipeline_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client()
    monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
    record_path = tmp_path / "out" / "champion.json"
    argv = ["champion", "--group", GROUP, "--no-champion", NO_CHAMPION, "--region", "us-east-1"]
    with Stubber(client) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary()]}, LIST_REQUEST)
        stub.add_response("describe_model_package", _package(_prefix_source()), {"ModelPackageName": ARN})
        assert main([*argv, "--record", str(record_path)]) == 0
    assert json.loads(record_path.read_text())["model_data_url"] == PREFIX + "/"
    with Stubber(client) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary()]}, LIST_REQUEST)
        stub.add_response(
            "describe_model_package", _package({"ModelDataUrl": "s3://m/model.tar.gz"}), {"ModelPackageName": ARN}
        )
        assert main([*argv, "--record", str(tmp_path / "bad.json")]) == 1
    assert not (tmp_path / "bad.json").exists()


def test_the_pipeline_uses_the_containers_champion_names() -> None:
    """components/pipeline.py may not import training.champion (not a stdlib-only contract module)."""
    from components import pipeline
    from training import champion

    assert (pipeline.LATEST_APPROVED, pipeline.CHAMPION_FILE) == (champion.LATEST_APPROVED, champion.CHAMPION_FILE)
