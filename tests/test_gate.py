"""Deploy gate: a protected resource replaced or deleted in `pulumi preview --json` stops the deploy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.gate import GateError, check, load_approvals, main

ENDPOINT_URN = (
    "urn:pulumi:prod::mlplatform::mlplatform:serving:ModelEndpoint$aws:sagemaker/endpoint:Endpoint::mlplatform-prod"
)
BUCKET_URN = "urn:pulumi:prod::mlplatform::mlplatform:storage:ArtifactStore$aws:s3/bucket:Bucket::mlplatform-prod-data"
CONFIG_URN = (
    "urn:pulumi:prod::mlplatform::mlplatform:serving:ModelEndpoint$"
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration::mlplatform-prod-config"
)


def preview(*steps: tuple[str, str]) -> dict:
    return {"steps": [{"op": op, "urn": urn} for op, urn in steps], "changeSummary": {}}


def test_replacing_an_endpoint_config_passes() -> None:
    blocked, _ = check(preview(("create-replacement", CONFIG_URN), ("delete-replaced", CONFIG_URN)), "prod", [])
    assert blocked == []


def test_replacing_the_endpoint_is_blocked_once() -> None:
    blocked, _ = check(
        preview(("create-replacement", ENDPOINT_URN), ("replace", ENDPOINT_URN), ("delete-replaced", ENDPOINT_URN)),
        "prod",
        [],
    )
    assert blocked == ["replace of protected aws:sagemaker/endpoint:Endpoint::mlplatform-prod in stack prod"]


def test_deleting_a_bucket_is_blocked() -> None:
    blocked, _ = check(preview(("delete", BUCKET_URN)), "prod", [])
    assert blocked == ["delete of protected aws:s3/bucket:Bucket::mlplatform-prod-data in stack prod"]


def test_updates_in_place_pass() -> None:
    assert check(preview(("update", ENDPOINT_URN), ("same", BUCKET_URN)), "prod", [])[0] == []


def test_an_approval_for_the_same_stack_resource_and_operation_lets_it_through(tmp_path: Path) -> None:
    approvals_file = tmp_path / "approvals.yaml"
    approvals_file.write_text(
        "approvals:\n  - stack: prod\n    resource: aws:sagemaker/endpoint:Endpoint::mlplatform-prod\n"
        "    operation: replace\n    reason: new rollback alarms (ML-1)\n"
    )
    approvals = load_approvals(approvals_file)
    blocked, used = check(preview(("replace", ENDPOINT_URN)), "prod", approvals)
    assert blocked == []
    assert used[0].reason == "new rollback alarms (ML-1)"
    # The same approval does not cover another stack or a deletion.
    assert check(preview(("replace", ENDPOINT_URN)), "dev", approvals)[0]
    assert check(preview(("delete", ENDPOINT_URN)), "prod", approvals)[0]


def test_approval_without_reason_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("approvals:\n  - stack: prod\n    resource: x\n    operation: replace\n")
    with pytest.raises(GateError, match=r"approvals\[0\] lacks reason"):
        load_approvals(f)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, junk = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "junk.json"
    good.write_text(json.dumps(preview(("update", ENDPOINT_URN))))
    bad.write_text(json.dumps(preview(("delete", BUCKET_URN))))
    junk.write_text(json.dumps({"nope": 1}))
    none = tmp_path / "none.yaml"
    assert main([str(good), "--stack", "prod", "--approvals", str(none)]) == 0
    assert main([str(bad), "--stack", "prod", "--approvals", str(none)]) == 1
    assert "add an entry to none.yaml" in capsys.readouterr().err
    assert main([str(junk), "--stack", "prod", "--approvals", str(none)]) == 2


def test_committed_approvals_file_parses() -> None:
    from tools.gate import APPROVALS_FILE

    assert load_approvals(APPROVALS_FILE) == []
