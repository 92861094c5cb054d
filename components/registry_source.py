"""`mlplatform:modelSource registry`: deploy an *Approved* version of a model package group.

The version is pinned (`mlplatform:modelPackageVersion`, reviewed in a pull request; required in prod) or the
latest approved one (dev). A version that is not `Approved` is refused before anything is deployed, with the
command that approves it. pulumi-aws has no model-package data source, so the program reads the registry with
the SageMaker API itself, once, when it starts (the same credentials and region as the provider):

- ListModelPackages (ModelPackageGroupName, ModelApprovalStatus Approved, SortBy CreationTime, SortOrder
  Descending) for the latest approved version; for a pinned version, the group's list (every status) to find
  that version's ARN and status;
- DescribeModelPackage for the chosen ARN: the serving image and model files of InferenceSpecification's first
  container (ModelDataSource.S3DataSource.S3Uri as the pipeline's Register step writes it, or ModelDataUrl) and
  the baseline of ModelMetrics.ModelDataQuality (Statistics, Constraints).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from components.settings import image_by_digest, s3_uri

APPROVED = "Approved"
GROUP_KEY = "mlplatform:modelPackageGroup"
VERSION_KEY = "mlplatform:modelPackageVersion"


class RegistrySourceError(ValueError):
    """The registry cannot give a deployable approved version; the message says which and what to do."""


class SageMakerReader(Protocol):
    """The two read calls this needs (a boto3 SageMaker client has them)."""

    def list_model_packages(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def describe_model_package(self, **kwargs: Any) -> Mapping[str, Any]: ...


def approve_command(arn: str) -> str:
    return f"aws sagemaker update-model-package --model-package-arn {arn} --model-approval-status Approved"


def _all_versions(client: SageMakerReader, group: str) -> list[Mapping[str, Any]]:
    summaries: list[Mapping[str, Any]] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {"ModelPackageGroupName": group, "MaxResults": 100}
        if token:
            request["NextToken"] = token
        page = client.list_model_packages(**request)
        summaries += list(page.get("ModelPackageSummaryList", []))
        token = page.get("NextToken")
        if not token:
            return summaries


def find_approved_package(client: SageMakerReader, group: str, version: int | None) -> Mapping[str, Any]:
    """DescribeModelPackage of the pinned version (refused unless Approved) or of the latest approved one."""
    if version is None:
        page = client.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
        found = list(page.get("ModelPackageSummaryList", []))
        if not found:
            raise RegistrySourceError(
                f"model package group {group!r} ({GROUP_KEY}) has no Approved version to deploy; approve one "
                f"(`aws sagemaker list-model-packages --model-package-group-name {group}`, then "
                f"{approve_command('ARN')}) or pin {VERSION_KEY}"
            )
        arn = str(found[0]["ModelPackageArn"])
    else:
        versions = {int(s["ModelPackageVersion"]): s for s in _all_versions(client, group)}
        summary = versions.get(version)
        if summary is None:
            raise RegistrySourceError(
                f"{VERSION_KEY} {version}: model package group {group!r} has no such version "
                f"(it has {sorted(versions) or 'none'})"
            )
        arn = str(summary["ModelPackageArn"])
        status = summary.get("ModelApprovalStatus")
        if status != APPROVED:
            raise RegistrySourceError(
                f"{VERSION_KEY} {version} of model package group {group!r} is {status}, not Approved: only an "
                f"approved version is deployed; approve it after reviewing its evaluation ({approve_command(arn)}) "
                "or pin another version"
            )
    description = client.describe_model_package(ModelPackageName=arn)
    if description.get("ModelApprovalStatus") != APPROVED:  # changed between the two calls
        raise RegistrySourceError(f"model package {arn} is {description.get('ModelApprovalStatus')}, not Approved")
    return description


def artifacts_of(description: Mapping[str, Any]) -> dict[str, str]:
    """The serving image, model prefix and baseline URIs of a DescribeModelPackage answer; every missing or
    malformed member is named in one error."""
    arn = description.get("ModelPackageArn", "the model package")
    problems: list[str] = []
    containers = (description.get("InferenceSpecification") or {}).get("Containers") or []
    container: Mapping[str, Any] = containers[0] if containers else {}
    if not containers:
        problems.append("InferenceSpecification.Containers is empty")
    image = container.get("Image")
    data = ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get("S3Uri") or container.get(
        "ModelDataUrl"
    )
    quality = (description.get("ModelMetrics") or {}).get("ModelDataQuality") or {}
    found = {
        "serving_image": image,
        "model_data_uri": data,
        "baseline_statistics_uri": (quality.get("Statistics") or {}).get("S3Uri"),
        "baseline_constraints_uri": (quality.get("Constraints") or {}).get("S3Uri"),
    }
    members = {
        "serving_image": "InferenceSpecification.Containers[0].Image",
        "model_data_uri": "InferenceSpecification.Containers[0].ModelDataSource.S3DataSource.S3Uri",
        "baseline_statistics_uri": "ModelMetrics.ModelDataQuality.Statistics.S3Uri",
        "baseline_constraints_uri": "ModelMetrics.ModelDataQuality.Constraints.S3Uri",
    }
    checked: dict[str, str] = {}
    for key, value in found.items():
        if not isinstance(value, str) or not value:
            problems.append(f"no {members[key]}")
            continue
        try:
            if key == "serving_image":
                checked[key] = image_by_digest(value)
            elif key == "model_data_uri":
                if value.endswith(".tar.gz"):
                    raise ValueError(f"is a compressed archive {value!r}; this platform serves uncompressed prefixes")
                checked[key] = s3_uri(value if value.endswith("/") else value + "/")
            else:
                checked[key] = s3_uri(value)
        except ValueError as exc:
            problems.append(f"{members[key]} {exc}")
    if problems:
        raise RegistrySourceError(f"{arn} cannot be deployed: " + "; ".join(problems))
    return checked
