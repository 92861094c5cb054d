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
    assert pulumi["with"]["policyPacks"] == "policy" and pulumi["with"]["refresh"] is True
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
def test_each_deploy_refreshes_previews_with_the_pack_gates_and_deploys_exactly_the_saved_plan(job: str) -> None:
    """`pulumi up --plan` fails on any operation the saved preview did not contain (Pulumi docs, "Update
    plans"); `--policy-pack policy` runs the pack in the real engine, in the preview and in the update."""
    runs = [str(s.get("run", "")) for s in load("deploy.yml")["jobs"][job]["steps"]]
    refresh = next(i for i, r in enumerate(runs) if r.startswith("pulumi refresh"))
    preview = next(i for i, r in enumerate(runs) if r.strip().startswith("pulumi preview"))
    gate = next(i for i, r in enumerate(runs) if "tools.gate" in r)
    up = next(i for i, r in enumerate(runs) if r.startswith("pulumi up"))
    verify = next(i for i, r in enumerate(runs) if "tools.verify" in r)
    assert refresh < preview < gate < up < verify
    assert "--save-plan update-plan.json" in runs[preview] and "--plan update-plan.json" in runs[up]
    assert "--policy-pack policy" in runs[preview] and "--policy-pack policy" in runs[up]
    assert "preview.json" in runs[preview] and "preview.json" in runs[gate]


def _pinned_sdk() -> str:
    line = next(x for x in (REPO / "requirements.txt").read_text().splitlines() if x.startswith("pulumi=="))
    return line.split("==", 1)[1].split()[0]  # the hashed lock continues the line with " \\"


def test_every_workflow_installs_the_cli_version_the_sdk_pins() -> None:
    """An older CLI previews fine and fails mid-`up` on resource hooks (CLI 3.238.0 and newer run them)."""
    steps = [s for name in ("deploy.yml", "preview.yml") for job in load(name)["jobs"].values() for s in job["steps"]]
    installs = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(installs) == 3
    assert {str(s["with"]["pulumi-version"]) for s in installs} == {_pinned_sdk()}
    major, minor, _ = (int(p) for p in _pinned_sdk().split("."))
    assert (major, minor) >= (3, 238)


def test_pulumi_cloud_tokens_come_from_oidc_not_a_stored_secret() -> None:
    for name in ("deploy.yml", "preview.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text, name
        for job_name, job in load(name)["jobs"].items():
            if any("pulumi/actions@" in str(s.get("uses", "")) for s in job["steps"]):
                assert any(str(s.get("uses", "")).startswith("pulumi/auth-actions@") for s in job["steps"]), job_name
                assert job["permissions"]["id-token"] == "write"


# First major of each action whose action.yml declares `runs.using: node24` (GitHub runs Node 24 only since
# 2026): read from each action's releases (checkout v5, setup-python v6, cache v5, upload-artifact v6,
# download-artifact v7, configure-aws-credentials v5, pulumi/actions v7 (pulumi/actions#1403),
# pulumi/auth-actions v1 after pulumi/auth-actions#59).
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "aws-actions/configure-aws-credentials": 5,
    "pulumi/actions": 7,
    "pulumi/auth-actions": 1,
}


def test_every_action_runs_on_a_node24_major() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path.name)["jobs"].values():
            for step in job["steps"]:
                if "uses" not in step:
                    continue
                action, _, ref = str(step["uses"]).partition("@")
                assert action in NODE24_MAJORS, f"{path.name}: {action} has no known Node 24 major"
                assert int(ref.removeprefix("v").split(".")[0]) >= NODE24_MAJORS[action], f"{path.name}: {step['uses']}"


def test_the_dev_deploy_outlives_its_own_training_job() -> None:
    """A runner killed by `timeout-minutes` leaves pending operations in the state and an orphaned job. The
    provider waits up to the job's create timeout (components/training.py create_timeout), then the images
    build and the endpoint rolls out; GitHub-hosted jobs stop at 360 minutes anyway."""
    from components.settings import load_settings
    from components.training import create_timeout
    from tools.plan import stack_config

    settings = load_settings({k: str(v) for k, v in stack_config("dev").items()}, "dev")
    t = settings.training
    training_minutes = int(create_timeout(t.max_runtime_seconds, t.spot, t.max_wait_seconds).removesuffix("m"))
    image_builds_minutes = 30  # three images, cold cache (measured locally with buildah: about 8 minutes each)
    rollout_minutes = settings.rollout.max_execution_seconds // 60 + settings.rollout.termination_wait_seconds // 60
    needed = training_minutes + image_builds_minutes + rollout_minutes + 15  # refresh, preview, verify
    timeout = load("deploy.yml")["jobs"]["dev"]["timeout-minutes"]
    assert needed <= timeout <= 360, (needed, timeout)


def test_the_fork_diff_comment_does_not_run_for_same_repository_pull_requests() -> None:
    """Same-repository pull requests upload no offline diff (their preview job comments itself): the
    download step would fail the workflow for every one of them."""
    condition = load("preview-comment.yml")["jobs"]["comment"]["if"]
    assert "head_repository.full_name != github.repository" in condition


def test_the_readme_first_deploy_targets_whole_components() -> None:
    """`--target` of a resource whose parent component is not targeted fails when the component does not
    exist yet (pulumi/pulumi#5869: "depends on ... which was not specified in --target list"); targeting a
    component includes its children (pulumi/pulumi#7605)."""
    import re

    from tests.conftest import committed_plan

    targets = re.findall(r"--target '([^']+)'", (REPO / "README.md").read_text())
    assert targets
    plan = committed_plan("dev")
    by_urn = {f"urn:pulumi:dev::mlplatform::{r['type']}::{r['name']}": r for r in plan.resources if r["parent"] is None}
    for urn in targets:
        assert urn in by_urn, f"{urn} is not a top-level resource of the dev plan (a child needs its parent targeted)"
        assert by_urn[urn]["custom"] is False or urn.split("::")[2].startswith("pulumi:providers:")
