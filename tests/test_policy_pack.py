"""The Pulumi policy pack loads in its own virtualenv and runs the rules through the engine's analyzer API."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from policy.rules import RULES
from tools.plan import REPO, Plan

VENV = REPO / "build" / "policy-venv"

# Advisory findings of the committed plans, (rule, resource), explained in docs/policy.md: the build-cache
# repositories hold cache layers, no runnable image, so they are not scanned (components/images.py). Prod builds
# only the monitoring image; its training and serving images are dev's, promoted by digest.
EXPECTED_ADVISORIES: dict[str, list[tuple[str, str]]] = {
    "dev": [
        ("ecr-scan-on-push", "mlplatform-dev-monitoring-cache"),
        ("ecr-scan-on-push", "mlplatform-dev-serving-cache"),
        ("ecr-scan-on-push", "mlplatform-dev-training-cache"),
    ],
    "prod": [("ecr-scan-on-push", "mlplatform-prod-monitoring-cache")],
}


@pytest.fixture(scope="module")
def policy_python() -> Path:
    """The pack's own environment (pulumi-policy pins protobuf 5, which onnx in ours cannot use)."""
    requirements = REPO / "policy" / "requirements.txt"
    stamp = VENV / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    if not (python.exists() and stamp.exists() and stamp.read_text() == digest):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            check=True,
        )
        stamp.write_text(digest)
    return python


def analyze(python: Path, plan: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    plan_file = tmp_path / f"{plan['stack']}.json"
    plan_file.write_text(json.dumps(plan))
    result = subprocess.run(
        [str(python), str(REPO / "tests" / "policy_pack_probe.py"), str(REPO / "policy"), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_pack_loads_with_every_rule_at_its_enforcement_level(
    policy_python: Path, dev_plan: Plan, tmp_path: Path
) -> None:
    report = analyze(policy_python, dev_plan.as_json(), tmp_path)
    assert report["name"] == "mlplatform-policies"
    assert report["policies"] == {name: r.enforcement for name, r in RULES.items()}


def test_committed_plans_pass_the_pack(policy_python: Path, any_plan: Plan, tmp_path: Path) -> None:
    report = analyze(policy_python, any_plan.as_json(), tmp_path)
    assert [d for d in report["diagnostics"] if d["level"] == "mandatory"] == []
    # Advisory results are part of the contract too: each one known and explained in docs/policy.md.
    advisories = sorted((d["policy"], d["urn"].rsplit("::", 1)[-1]) for d in report["diagnostics"])
    assert advisories == EXPECTED_ADVISORIES[any_plan.stack], advisories
    assert report["resource_diagnostics"] == []  # the pack has stack policies only


def test_pack_reports_a_violation_through_the_engine_api(policy_python: Path, dev_plan: Plan, tmp_path: Path) -> None:
    plan = dev_plan.as_json()
    block = next(r for r in plan["resources"] if r["type"] == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    block["inputs"]["restrictPublicBuckets"] = False
    report = analyze(policy_python, plan, tmp_path)
    hits = [d for d in report["diagnostics"] if d["policy"] == "s3-block-public-access"]
    assert len(hits) == 1
    assert hits[0]["level"] == "mandatory"
    assert "restrictPublicBuckets" in hits[0]["message"]
    assert hits[0]["urn"].endswith("aws:s3/bucket:Bucket::" + block["name"].removesuffix("-public-access"))


def test_a_stack_exception_makes_the_rule_not_applicable(policy_python: Path, dev_plan: Plan, tmp_path: Path) -> None:
    """The engine hands stack policies the context's registered OUTPUTS, not its inputs (pulumi/pulumi
    step_generator.go AnalyzeResources; pulumi/pulumi-policy#135), so the exception is set there."""
    plan = dev_plan.as_json()
    context = next(r for r in plan["resources"] if r["type"] == "mlplatform:policy:PolicyContext")
    context["outputs"]["exceptions"] = {"kms-rotation": "key managed by the security team's rotation job"}
    report = analyze(policy_python, plan, tmp_path)
    assert "kms-rotation" in report["not_applicable"]


def test_the_policy_context_reaches_stack_policies_as_registered_outputs(prod_plan: Plan) -> None:
    """Under the real engine a component that registers no outputs reads as an empty context in stack
    policies: prod would be checked as dev with no allowed GPU types."""
    context = prod_plan.one("mlplatform:policy:PolicyContext")
    assert context["outputs"] == context["inputs"]
    assert context["outputs"]["environment"] == "prod"
