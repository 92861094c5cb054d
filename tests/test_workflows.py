"""GitHub workflows: schema-valid, clean under zizmor's injection/permission audits, and wired as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.plan import REPO

WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps_text(job: dict[str, Any]) -> list[str]:
    return [yaml.safe_dump(s) for s in job["steps"]]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: it comes with requirements-dev.txt"
    return path


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_zizmor_security_audit() -> None:
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--config", str(REPO / ".github" / "zizmor.yml"), str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_catches_template_injection(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    result = subprocess.run([_tool("zizmor"), "--offline", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "template-injection" in result.stdout + result.stderr


def test_ci_runs_the_same_commands_as_the_readme() -> None:
    text = "".join(steps_text(load("ci.yml")["jobs"]["test"]))
    assert "make test" in text
    assert "make lint" in text


def test_preview_runs_pulumi_preview_for_both_stacks_with_oidc_and_pr_comments() -> None:
    wf = load("preview.yml")
    job = wf["jobs"]["pulumi-preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert job["permissions"]["id-token"] == "write"
    pulumi = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@v7"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    creds = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials"))
    assert "role-to-assume" in creds["with"]
    assert not any("aws-access-key-id" in yaml.safe_dump(s) for s in job["steps"])
    assert any("actions/cache" in str(s.get("uses", "")) and "plugins" in str(s["with"]["path"]) for s in job["steps"])
    assert wf["concurrency"]["cancel-in-progress"] is True


def test_fork_job_uses_no_secrets_and_posts_the_offline_diff() -> None:
    wf = load("preview.yml")
    job = wf["jobs"]["offline-diff"]
    assert "!=" in job["if"]
    assert "secrets." not in yaml.safe_dump(job)
    assert job["permissions"] == {"contents": "read"}
    assert any("make diff" in str(s.get("run", "")) for s in job["steps"])
    comment = load("preview-comment.yml")
    assert "actions/checkout" not in yaml.safe_dump(comment), "the commenting workflow must not run fork code"


def test_deploy_is_never_cancelled_and_prod_waits_for_dev_and_approval() -> None:
    wf = load("deploy.yml")
    assert wf["concurrency"]["cancel-in-progress"] is False
    assert wf["jobs"]["prod"]["needs"] == "dev"
    assert wf["jobs"]["prod"]["environment"] == "production"


@pytest.mark.parametrize("job", ["dev", "prod"])
def test_each_deploy_gates_before_up_and_verifies_after(job: str) -> None:
    steps = load("deploy.yml")["jobs"][job]["steps"]
    text = [yaml.safe_dump(s) for s in steps]
    gate = next(i for i, t in enumerate(text) if "tools.gate" in t)
    up = next(i for i, t in enumerate(text) if "command: up" in t)
    verify = next(i for i, t in enumerate(text) if "tools.verify" in t)
    assert gate < up < verify
