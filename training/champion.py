"""Which model a pipeline run compares against: the pinned champion, else the group's latest Approved version.

A run started by a schedule, a drift alarm or new data passes no champion, and a pipeline parameter's default is
fixed when the stack is deployed: it would go stale with the next approval. The pipeline's first step
(`python -m training champion`) therefore resolves the champion when the run starts:

- `--pinned` an S3 prefix (the ChampionModelDataUrl parameter: `mlplatform:lifecycleChampionModelDataUrl` or
  what a start passed): that prefix;
- `--pinned latest-approved` (the default): the model files of the newest version of the model package group
  whose status is Approved (ListModelPackages, ModelApprovalStatus Approved, SortBy CreationTime Descending,
  then DescribeModelPackage), or the stack's no-champion marker prefix when no version is approved.

It writes `champion.json` (`model_data_url`, `source`, `model_package_arn`), which the validate and evaluate
steps read through the pipeline's property file. An approved version whose model is not an uncompressed S3
prefix (as the pipeline's Register step writes it) is an error naming the version: the steps cannot read a
tarball as a model directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.errors import TrainingInputError

LATEST_APPROVED = "latest-approved"
CHAMPION_FILE = "champion.json"


def latest_approved_package(client: Any, group: str) -> dict[str, Any] | None:
    """DescribeModelPackage of the group's newest Approved version, or None when none is approved."""
    listed = client.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = listed.get("ModelPackageSummaryList") or []
    if not summaries:
        return None
    return client.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def model_prefix(package: dict[str, Any]) -> str:
    """The S3 prefix of an approved version's uncompressed model files (its first container's data source)."""
    arn = package.get("ModelPackageArn", "?")
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise TrainingInputError(f"model package {arn} has no inference containers: it cannot be a champion")
    source = (containers[0].get("ModelDataSource") or {}).get("S3DataSource") or {}
    if source.get("S3DataType") == "S3Prefix" and source.get("CompressionType") == "None" and source.get("S3Uri"):
        uri = str(source["S3Uri"])
        return uri if uri.endswith("/") else uri + "/"
    found = containers[0].get("ModelDataUrl") or source.get("S3Uri") or "no model data"
    raise TrainingInputError(
        f"model package {arn} holds its model as {found!r}; a champion must be an uncompressed S3 prefix "
        "(ModelDataSource.S3DataSource with S3DataType S3Prefix and CompressionType None, as the pipeline's "
        "Register step writes it); pass the champion's prefix as the ChampionModelDataUrl parameter instead"
    )


def resolve(pinned: str, group: str, no_champion: str, client: Any) -> dict[str, Any]:
    """The champion record: a pinned prefix as it is, else the latest approved version's, else no champion."""
    if pinned and pinned != LATEST_APPROVED:
        if not pinned.startswith("s3://"):
            raise TrainingInputError(
                f"champion {pinned!r}: allowed: an S3 prefix 's3://bucket/prefix/' or {LATEST_APPROVED!r}"
            )
        return {"model_data_url": pinned, "source": "pinned", "model_package_arn": None}
    package = latest_approved_package(client, group)
    if package is None:
        return {"model_data_url": no_champion, "source": "none", "model_package_arn": None}
    return {
        "model_data_url": model_prefix(package),
        "source": LATEST_APPROVED,
        "model_package_arn": package.get("ModelPackageArn"),
    }


def write_champion(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
