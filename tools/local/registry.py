"""The local model registry of `make local`: SageMaker's model package group, as folders and JSON records.

One folder per group under the registry root (default `build/local/registry/`, kept between runs), one
folder per version holding a copy of the model directory and `package.json`, a record with the members
DescribeModelPackage returns (ModelPackageGroupName, ModelPackageVersion, ModelApprovalStatus,
InferenceSpecification, ModelMetrics, CustomerMetadataProperties), with local file URIs in place of S3 ones.

- `register` refuses a candidate whose gate record is not `pass` (so a candidate worse than the champion,
  or one that breaks a fairness limit, never becomes a version) and registers the rest as
  `PendingManualApproval`, as the pipeline's register step does.
- `set_status` approves or rejects a version (the local `aws sagemaker update-model-package`):
  `python -m tools.local.registry approve --version 1`.
- `latest_approved` is the champion the next run's validate and evaluate steps compare against.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.local.runners import REPO

DEFAULT_ROOT = REPO / "build" / "local" / "registry"
DEFAULT_GROUP = "mlplatform-local"
PACKAGE_FILE = "package.json"
MODEL_DIR = "model"
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
"""ModelApprovalStatus values of the SageMaker API (botocore's sagemaker model, shape ModelApprovalStatus)."""


class RegistryError(Exception):
    """The registry cannot do what was asked; the message says what and what is allowed."""


@dataclass(frozen=True)
class Registry:
    root: Path = DEFAULT_ROOT
    group: str = DEFAULT_GROUP

    @property
    def directory(self) -> Path:
        return self.root / self.group

    def versions(self) -> list[dict[str, Any]]:
        """Every version's record, oldest first."""
        if not self.directory.is_dir():
            return []
        records = []
        for path in self.directory.glob(f"*/{PACKAGE_FILE}"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise RegistryError(f"registry record {path} cannot be read: {exc}") from None
            records.append(record)
        return sorted(records, key=lambda r: int(r["ModelPackageVersion"]))

    def get(self, version: int) -> dict[str, Any]:
        for record in self.versions():
            if int(record["ModelPackageVersion"]) == version:
                return record
        known = [int(r["ModelPackageVersion"]) for r in self.versions()]
        raise RegistryError(f"model package group {self.group!r} has no version {version}; it has {known or 'none'}")

    def model_dir(self, version: int) -> Path:
        return self.directory / str(version) / MODEL_DIR

    def latest_approved(self) -> dict[str, Any] | None:
        approved = [r for r in self.versions() if r["ModelApprovalStatus"] == APPROVED]
        return approved[-1] if approved else None

    def register(
        self,
        model_dir: Path,
        gate_record: Mapping[str, Any],
        *,
        image: str,
        lineage: Mapping[str, str],
        gate_path: Path | None = None,
    ) -> dict[str, Any]:
        """A new version (PendingManualApproval) from a model that passed the gate; refuses any other."""
        decision = gate_record.get("decision")
        if decision != "pass":
            failed = ", ".join(gate_record.get("failed_checks", [])) or "no decision recorded"
            raise RegistryError(f"the gate decided {decision!r} ({failed}); only a candidate that passed is registered")
        if not (model_dir / "manifest.json").is_file():
            raise RegistryError(f"{model_dir} is not a complete model directory (no manifest.json)")
        existing = self.versions()
        version = int(existing[-1]["ModelPackageVersion"]) + 1 if existing else 1
        target = self.directory / str(version)
        staging = self.directory / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model_dir, staging / MODEL_DIR)
        if gate_path is not None:
            shutil.copy2(gate_path, staging / "gate.json")
        stored = staging / MODEL_DIR
        uri = (target / MODEL_DIR).resolve().as_uri()
        evaluation = gate_record.get("evaluation", {})
        record = {
            "ModelPackageGroupName": self.group,
            "ModelPackageVersion": version,
            "ModelPackageArn": f"local:model-package/{self.group}/{version}",
            "ModelPackageDescription": f"candidate registered after gate decision {decision}",
            "CreationTime": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "ModelApprovalStatus": PENDING,
            "InferenceSpecification": {
                # As the pipeline's Register step writes it: uncompressed model files under a prefix.
                "Containers": [
                    {
                        "Image": image,
                        "ModelDataSource": {
                            "S3DataSource": {"S3Uri": f"{uri}/", "S3DataType": "S3Prefix", "CompressionType": "None"}
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json", "application/jsonlines"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            "ModelMetrics": {
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{uri}/evaluation.json"}},
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{uri}/baseline/statistics.json"},
                    "Constraints": {"ContentType": "application/json", "S3Uri": f"{uri}/baseline/constraints.json"},
                },
            },
            "CustomerMetadataProperties": {
                **{k: str(v) for k, v in lineage.items()},
                "gate_decision": str(decision),
                "gate_champion_compared": str(bool(gate_record.get("champion_compared"))).lower(),
                "candidate_auc": str((evaluation.get("candidate") or {}).get("auc")),
            },
        }
        if "fairness" in evaluation:
            record["ModelMetrics"]["Bias"] = {
                "Report": {"ContentType": "application/json", "S3Uri": (target / "gate.json").resolve().as_uri()}
            }
        (staging / PACKAGE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if not (stored / "manifest.json").is_file():
            raise RegistryError(f"copying {model_dir} into the registry left no manifest.json")
        staging.replace(target)  # the version appears complete or not at all
        return record

    def set_status(self, version: int, status: str) -> dict[str, Any]:
        if status not in STATUSES:
            raise RegistryError(f"approval status {status!r}; allowed: {', '.join(STATUSES)}")
        record = self.get(version)
        record["ModelApprovalStatus"] = status
        record["LastModifiedTime"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        path = self.directory / str(version) / PACKAGE_FILE
        tmp = path.with_name(f".{PACKAGE_FILE}.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local.registry", description="List, approve or reject versions in the local registry."
    )
    parser.add_argument("command", choices=("list", "approve", "reject"))
    parser.add_argument("--version", type=int, help="the model package version (approve, reject)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="registry root (default build/local/registry)")
    parser.add_argument("--group", default=DEFAULT_GROUP, help=f"model package group (default {DEFAULT_GROUP})")
    args = parser.parse_args(argv)
    registry = Registry(args.root, args.group)
    try:
        if args.command == "list":
            for r in registry.versions():
                print(f"{r['ModelPackageVersion']}\t{r['ModelApprovalStatus']}\t{r['CreationTime']}")
            return 0
        if args.version is None:
            print(f"registry: {args.command} needs --version N", file=sys.stderr)
            return 2
        record = registry.set_status(args.version, APPROVED if args.command == "approve" else REJECTED)
    except RegistryError as exc:
        print(f"registry: {exc}", file=sys.stderr)
        return 1
    print(f"{registry.group} version {record['ModelPackageVersion']}: {record['ModelApprovalStatus']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
