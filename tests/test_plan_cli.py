"""`make plan`: the offline plan writes build/plan/<stack>.json, prints a tree, and refuses bad config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools.plan import REPO, main


def _checkout_copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "__main__.py"):
        shutil.copy(REPO / name, root / name)
    return root


def test_plan_writes_json_of_the_documented_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    plan = json.loads((tmp_path / "dev.json").read_text())
    assert plan["stack"] == "dev"
    assert set(plan) == {"stack", "resources", "outputs"}
    store = [r for r in plan["resources"] if r["type"] == "mlplatform:storage:ArtifactStore"]
    assert store and store[0]["parent"] is None
    bucket = next(r for r in plan["resources"] if r["type"] == "aws:s3/bucket:Bucket")
    assert bucket["parent"] == "mlplatform:storage:ArtifactStore::mlplatform-dev"
    assert {"type", "name", "parent", "inputs"} <= set(bucket)
    printed = capsys.readouterr().out
    assert "* mlplatform:storage:ArtifactStore mlplatform-dev" in printed
    assert "3  aws:s3/bucket:Bucket" in printed


def test_invalid_config_exits_nonzero_and_writes_no_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _checkout_copy(tmp_path)
    out = tmp_path / "plan"
    out.mkdir()
    (out / "dev.json").write_text("{}")  # a stale plan from an earlier, valid config
    stack_file = root / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text().replace("mlplatform:rolloutStyle: ALL_AT_ONCE", "mlplatform:rolloutStyle: SIDEWAYS")
    )
    assert main(["--stack", "dev", "--root", str(root), "--out", str(out)]) == 2
    assert "mlplatform:rolloutStyle: got 'SIDEWAYS'" in capsys.readouterr().err
    assert not (out / "dev.json").exists()


def test_unknown_stack_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "qa", "--out", str(tmp_path)]) == 2
    assert "Pulumi.qa.yaml" in capsys.readouterr().err


def test_plans_are_deterministic(tmp_path: Path) -> None:
    assert main(["--stack", "prod", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["--stack", "prod", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "a" / "prod.json").read_text() == (tmp_path / "b" / "prod.json").read_text()


def test_plan_prints_coverage_and_fails_on_what_aws_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _checkout_copy(tmp_path)
    for name in ("training", "serving", "monitoring"):
        (root / name).symlink_to(REPO / name)
    out = tmp_path / "plan"
    assert main(["--stack", "dev", "--root", str(root), "--out", str(out), "--quiet"]) == 0
    assert "AWS types covered" in capsys.readouterr().out
    stack_file = root / "Pulumi.dev.yaml"
    # A valid-looking instance type that SageMaker offers for endpoints but not for training jobs.
    stack_file.write_text(
        stack_file.read_text().replace("trainingInstanceType: ml.g5.xlarge", "trainingInstanceType: ml.m5d.large")
    )
    assert main(["--stack", "dev", "--root", str(root), "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "plan invalid:" in captured.err
    assert "ml.m5d.large" in captured.err


def test_set_plans_a_stack_with_extra_config_and_names_a_malformed_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make plan STACK=dev SET=...`: what the committed stack leaves off (the lifecycle) can be planned without
    editing Pulumi.dev.yaml; the values reach the program as `pulumi config set` would put them."""
    assert main(["--stack", "dev", "--out", str(tmp_path), "--quiet"]) == 0
    group = "aws:sagemaker/modelPackageGroup:ModelPackageGroup"
    assert group not in {r["type"] for r in json.loads((tmp_path / "dev.json").read_text())["resources"]}

    assert main(["--stack", "dev", "--out", str(tmp_path), "--quiet", "--set", "lifecycleEnabled=true"]) == 0
    types = {r["type"] for r in json.loads((tmp_path / "dev.json").read_text())["resources"]}
    assert group in types

    capsys.readouterr()
    assert main(["--stack", "dev", "--out", str(tmp_path), "--set", "lifecycleEnabled"]) == 2
    assert "--set 'lifecycleEnabled': expected key=value" in capsys.readouterr().err
    assert not (tmp_path / "dev.json").exists()
