"""`make diff`: two commits of a checkout, a prod rollout change and a new model, described in AWS terms."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tools.diff import run
from tools.plan import REPO

PINNED_MODEL = "s3://mlplatform-dev-models-0a1b2c3/training/mlplatform-dev-train-77aa00bb11cc22dd/output/model/"
PINNED_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:" + "7c" * 32


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of this checkout's tracked files as commit A; commit B changes prod's rollout and model."""
    repo = tmp_path_factory.mktemp("diff") / "repo"
    files = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "A")
    base = git(repo, "rev-parse", "HEAD").strip()
    stack = repo / "Pulumi.prod.yaml"
    text = stack.read_text()
    text = text.replace("mlplatform:rolloutCanaryPercent: 25", "mlplatform:rolloutCanaryPercent: 10")
    text = text.replace("mlplatform:rolloutBakeSeconds: 600", "mlplatform:rolloutBakeSeconds: 900")
    text = text.replace("mlplatform:rolloutMaxExecutionSeconds: 3600", "mlplatform:rolloutMaxExecutionSeconds: 4800")
    text = text.replace(
        "  mlplatform:modelSource: stack\n  mlplatform:modelStack: organization/mlplatform/dev\n",
        "  mlplatform:modelSource: pinned\n"
        f"  mlplatform:modelDataUri: {PINNED_MODEL}\n"
        f"  mlplatform:modelBaselineStatisticsUri: {PINNED_MODEL}baseline/statistics.json\n"
        f"  mlplatform:modelBaselineConstraintsUri: {PINNED_MODEL}baseline/constraints.json\n"
        f"  mlplatform:modelServingImage: {PINNED_IMAGE}\n",
    )
    assert "rolloutCanaryPercent: 10" in text and "modelSource: pinned" in text
    stack.write_text(text)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "B")
    return repo, base


def test_rollout_and_model_change_read_as_blue_green_with_config_replacement(two_commits: tuple[Path, str]) -> None:
    repo, base = two_commits
    out = repo / "build" / "plan"
    diffs = run(base, out, ("prod",), repo=repo)
    assert diffs[0].error is None
    markdown = (out / "diff.md").read_text()
    rows = markdown.splitlines()
    endpoint_line = next(line for line in rows if line.startswith("| `aws:sagemaker/endpoint:Endpoint::"))
    config_line = next(
        line for line in rows if line.startswith("| `aws:sagemaker/endpointConfiguration:EndpointConfiguration::")
    )
    assert "**blue/green rollout**" in endpoint_line
    assert "**replacement**" in config_line
    assert "traffic: canary 10% -> bake 15 min -> 100% -> bake 15 min" in markdown
    # Prod serves its own copies of the promoted model (components/promotion.py, components/image_promotion.py).
    assert "/promoted/" + PINNED_MODEL.removeprefix("s3://") in markdown
    assert "**(changed)**" in markdown
    assert "longest time: 45 min" in markdown
    machine = json.loads((out / "diff.json").read_text())
    rollout = machine["stacks"][0]["rollouts"][0]
    assert rollout["after"]["model_data"].endswith("/promoted/" + PINNED_MODEL.removeprefix("s3://"))
    assert rollout["after"]["image"].endswith("-serving-promoted@" + PINNED_IMAGE.partition("@")[2])


def test_dev_is_unchanged_by_a_prod_only_change(two_commits: tuple[Path, str]) -> None:
    repo, base = two_commits
    diffs = run(base, repo / "build" / "plan-dev", ("dev",), repo=repo)
    assert (diffs[0].added, diffs[0].removed, diffs[0].changed) == ([], [], [])
