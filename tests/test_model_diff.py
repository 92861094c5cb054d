"""`make diff` shows a registry pin change as "model A -> model B" with both versions' held-out figures.

Offline, from `make local`'s registry (tools/local/registry.py), whose package.json records carry the members
DescribeModelPackage returns; the version's ModelMetrics.ModelQuality.Statistics names the figures' document
(the pipeline's gate record, `evaluation.candidate`, or a model directory's evaluation.json, `fp32`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.diff import StackDiff, render_markdown
from tools.local.registry import Registry
from tools.model_diff import LocalRegistryMetrics, ModelPin, model_change, quality_figures, registry_pin

GROUP = "mlplatform-dev"


def _version(registry: Registry, tmp_path: Path, name: str, auc: float, accuracy: float, loss: float) -> int:
    model = tmp_path / name
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    (model / "evaluation.json").write_text(json.dumps({"fp32": {"auc": auc, "accuracy": accuracy, "log_loss": loss}}))
    record = {"decision": "pass", "failed_checks": [], "evaluation": {"candidate": {"auc": auc}}}
    return int(registry.register(model, record, image="img", lineage={})["ModelPackageVersion"])


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry", GROUP)
    _version(registry, tmp_path, "a", 0.91, 0.85, 0.31)
    _version(registry, tmp_path, "b", 0.95, 0.88, 0.22)
    registry.set_status(1, "Approved")
    return registry


def _config(version: int | None) -> dict[str, str]:
    config = {"mlplatform:modelSource": "registry", "mlplatform:modelPackageGroup": GROUP}
    if version is not None:
        config["mlplatform:modelPackageVersion"] = str(version)
    return config


def test_a_pin_change_shows_both_versions_metrics(registry: Registry) -> None:
    change = model_change("prod", _config(1), _config(2), LocalRegistryMetrics(registry.root))
    assert change is not None
    assert change.before == ModelPin(GROUP, 1) and change.after == ModelPin(GROUP, 2)
    assert change.metrics == {
        "before": {"auc": 0.91, "accuracy": 0.85, "log_loss": 0.31},
        "after": {"auc": 0.95, "accuracy": 0.88, "log_loss": 0.22},
    }
    markdown = render_markdown([StackDiff("prod", changed=[], model=change, added=[{"type": "t", "name": "n"}])], "A")
    assert f"#### Model: {GROUP} version 1 -> {GROUP} version 2" in markdown
    assert "| auc | 0.9100 | 0.9500 (+0.0400) |" in markdown
    assert "| log loss | 0.3100 | 0.2200 (-0.0900) |" in markdown


def test_latest_approved_reads_the_newest_approved_version(registry: Registry) -> None:
    change = model_change("dev", _config(2), _config(None), LocalRegistryMetrics(registry.root))
    assert change is not None
    assert change.metrics["after"]["auc"] == 0.91  # version 1 is the approved one; 2 is pending


def test_unchanged_pin_or_other_source_is_no_model_change(registry: Registry) -> None:
    source = LocalRegistryMetrics(registry.root)
    assert model_change("prod", _config(1), _config(1), source) is None
    assert (
        model_change("prod", {"mlplatform:modelSource": "train"}, {"mlplatform:modelSource": "stack"}, source) is None
    )
    assert registry_pin({"mlplatform:modelSource": "train"}) is None


def test_unknown_version_shows_a_dash_and_why(registry: Registry) -> None:
    change = model_change("prod", _config(1), _config(9), LocalRegistryMetrics(registry.root))
    assert change is not None
    assert change.metrics["after"] == {}
    assert change.notes == [f"{GROUP} version 9 is not in the local registry {registry.root}"]
    markdown = render_markdown([StackDiff("prod", model=change, added=[{"type": "t", "name": "n"}])], "A")
    assert "| auc | 0.9100 | - |" in markdown


def test_gate_record_and_evaluation_documents_both_read() -> None:
    assert quality_figures({"evaluation": {"candidate": {"auc": 0.9, "accuracy": 0.8, "log_loss": 0.3}}}) == {
        "auc": 0.9,
        "accuracy": 0.8,
        "log_loss": 0.3,
    }
    assert quality_figures({"fp32": {"auc": 0.7, "accuracy": True}}) == {"auc": 0.7, "accuracy": None, "log_loss": None}


def test_sagemaker_source_reads_the_versions_model_quality_statistics() -> None:
    """ListModelPackages -> DescribeModelPackage -> S3 GetObject of ModelMetrics.ModelQuality.Statistics.S3Uri,
    through botocore's Stubber (requests and responses validated against the installed service models)."""
    import datetime as dt
    import io

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from tools.model_diff import SageMakerMetrics

    creds = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sagemaker, s3 = boto3.client("sagemaker", **creds), boto3.client("s3", **creds)
    arn = f"arn:aws:sagemaker:us-east-1:111122223333:model-package/{GROUP}/2"
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    summary = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 2,
        "ModelPackageArn": arn,
        "CreationTime": when,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }
    package = {
        "ModelPackageName": GROUP,
        "ModelPackageArn": arn,
        "CreationTime": when,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": "s3://models/lifecycle/gate.json"}
            }
        },
    }
    body = json.dumps({"evaluation": {"candidate": {"auc": 0.93, "accuracy": 0.9, "log_loss": 0.25}}}).encode()
    with Stubber(sagemaker) as sm, Stubber(s3) as store:
        sm.add_response(
            "list_model_packages",
            {"ModelPackageSummaryList": [summary]},
            {"ModelPackageGroupName": GROUP, "MaxResults": 100},
        )
        sm.add_response("describe_model_package", package, {"ModelPackageName": arn})
        store.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(body), len(body))},
            {"Bucket": "models", "Key": "lifecycle/gate.json"},
        )
        figures, why = SageMakerMetrics(sagemaker, s3).metrics(ModelPin(GROUP, 2))
    assert why is None
    assert figures == {"auc": 0.93, "accuracy": 0.9, "log_loss": 0.25}
    assert SageMakerMetrics(sagemaker, s3).metrics(ModelPin(GROUP, None))[0] == {}
