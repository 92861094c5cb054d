"""`python -m tools.validate PLAN...`: exit status, violations on stderr, the coverage line on stdout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.plan import Plan
from tools.validate import main


def _write(tmp_path: Path, data: dict[str, object], name: str = "dev.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_valid_plan_exits_0_and_prints_coverage(
    dev_plan: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, dev_plan.as_json())
    assert main([str(path), "--table"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("validate dev: 0 violation(s); ")
    assert "aws:s3/bucket:Bucket" in out.out
    assert out.err == ""


def test_violation_exits_1_naming_stack_resource_field_value_and_allowed(
    dev_plan: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = dev_plan.as_json()
    data = json.loads(json.dumps(data))
    ownership = next(
        r for r in data["resources"] if r["type"].endswith("bucketOwnershipControls:BucketOwnershipControls")
    )
    ownership["inputs"]["rule"]["objectOwnership"] = "BucketOwnerEnforcd"
    path = _write(tmp_path, data)
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        f"dev: aws:s3/bucketOwnershipControls:BucketOwnershipControls {ownership['name']}: rule.objectOwnership = "
        '"BucketOwnerEnforcd"; allowed: one of BucketOwnerPreferred, ObjectWriter, BucketOwnerEnforced '
        "[s3 PutBucketOwnershipControls.OwnershipControls.Rules[0].ObjectOwnership]"
    ) in err


def test_unmapped_aws_type_is_reported_and_fails_only_with_strict_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "stack": "dev",
        "resources": [
            {"type": "aws:ec2/vpc:Vpc", "name": "vpc", "parent": None, "custom": True, "inputs": {}, "options": {}}
        ],
        "outputs": {},
    }
    path = _write(tmp_path, data)
    assert main([str(path)]) == 0
    assert "NOT COVERED: aws:ec2/vpc:Vpc" in capsys.readouterr().out
    assert main([str(path), "--strict-coverage"]) == 1


def test_missing_plan_file_exits_2_saying_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "python -m tools.plan --stack" in capsys.readouterr().err


def test_resources_the_program_only_reads_are_not_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    read = {
        "type": "aws:sagemaker/endpoint:Endpoint",
        "name": "existing",
        "parent": None,
        "custom": True,
        "inputs": {},
        "options": {"read": "existing-endpoint"},
    }
    path = _write(tmp_path, {"stack": "dev", "resources": [read], "outputs": {}})
    assert main([str(path)]) == 0
    assert "1 read, not created" in capsys.readouterr().out


def test_skipped_inputs_are_listed_with_the_reason(
    dev_plan: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, dev_plan.as_json())
    assert main([str(path), "--skipped"]) == 0
    out = capsys.readouterr().out
    bucket = next(r for r in dev_plan.resources if r["type"] == "aws:s3/bucket:Bucket")
    assert (
        f"  skipped aws:s3/bucket:Bucket {bucket['name']}: forceDestroy: not sent: provider behaviour on delete" in out
    )


def test_generated_names_are_deploy_time_and_configured_names_are_not() -> None:
    from tools.validate import deploy_time_values

    resources = [
        {"type": "aws:s3/bucket:Bucket", "name": "data", "custom": True, "inputs": {"forceDestroy": True}},
        {"type": "aws:sns/topic:Topic", "name": "alarms", "custom": True, "inputs": {"name": "mlplatform-alarms"}},
    ]
    unknown = deploy_time_values(resources, "us-east-1")
    (generated,) = [v for v in unknown if re.fullmatch(r"data-[0-9a-f]{7}", v)]  # the name Pulumi would make
    assert f"arn:aws:s3:::{generated}" in unknown
    assert "arn:aws:sns:us-east-1:111122223333:mlplatform-alarms" in unknown  # an ARN AWS assigns
    assert "mlplatform-alarms" not in unknown  # a name the program chose is known now
    assert "us-east-1" not in unknown
