"""IAM policy audit: parliament's findings, the wildcard rules and the documented exceptions."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest

from tools.validate import IAM_ALLOWLIST, PARLIAMENT_VERSION, _privileges, _supports_resources, audit_policy

BUCKET_OBJECTS = "arn:aws:s3:::mlplatform-dev-models-1a2b3c4/*"


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(actions: list[str], resources: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def test_scoped_identity_policy_passes() -> None:
    assert audit_policy(_doc(_allow(["s3:GetObject", "s3:PutObject"], [BUCKET_OBJECTS])), "identity") == []


@pytest.mark.parametrize("action", ["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"])
def test_allowlisted_actions_may_use_resource_star(action: str) -> None:
    assert audit_policy(_doc(_allow([action], "*")), "identity") == []


def test_resource_star_for_an_action_with_resource_level_permissions_is_refused() -> None:
    problems = audit_policy(_doc(_allow(["s3:GetObject", "ecr:GetAuthorizationToken"], "*")), "identity")
    assert [(where, value) for where, value, _ in problems] == [("Statement[0].Resource", "*")]
    assert "s3:GetObject" in problems[0][2]


def test_wildcard_action_is_refused_in_an_allow() -> None:
    problems = audit_policy(_doc(_allow(["s3:*"], [BUCKET_OBJECTS])), "identity")
    assert ("Statement[0].Action", "s3:*", "named actions, not a wildcard") in problems


def test_wildcards_in_a_deny_only_narrow_access_and_pass() -> None:
    deny = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [BUCKET_OBJECTS],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    assert audit_policy(_doc(deny), "resource") == []


def test_misspelled_action_and_unknown_service_are_named() -> None:
    problems = audit_policy(_doc(_allow(["s3:GetObjcet", "sagemkr:CreateModel"], [BUCKET_OBJECTS])), "identity")
    found = {(where, value) for where, value, _ in problems}
    assert ("IAM UNKNOWN_ACTION", "s3:GetObjcet") in found
    assert ("IAM UNKNOWN_PREFIX", "sagemkr:CreateModel") in found


def test_action_whose_resource_cannot_match_is_named_with_the_format_it_needs() -> None:
    problems = audit_policy(_doc(_allow(["s3:GetObject"], ["arn:aws:s3:::mlplatform-dev-models-1a2b3c4"])), "identity")
    assert len(problems) == 1
    where, _, allowed = problems[0]
    assert where == "IAM RESOURCE_MISMATCH"
    assert "s3:GetObject needs arn:*:s3:::*/*" in allowed


def test_trust_policy_needs_no_resource_but_its_action_is_checked() -> None:
    trust = {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    assert audit_policy(_doc(trust), "trust") == []
    misspelled = {**trust, "Action": "sts:AssumeRol"}
    assert [(w, v) for w, v, _ in audit_policy(_doc(misspelled), "trust")] == [("IAM UNKNOWN_ACTION", "sts:AssumeRol")]


def test_default_key_policy_granting_the_account_root_passes() -> None:
    root = {
        "Sid": "EnableIAMUserPermissions",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    assert audit_policy(_doc(root), "key") == []


def test_malformed_json_is_a_problem_not_a_crash() -> None:
    problems = audit_policy('{"Version": "2012-10-17", "Statement": [', "identity")
    assert len(problems) == 1 and problems[0][2].startswith("a JSON policy document")


@pytest.mark.parametrize("action", sorted(IAM_ALLOWLIST))
def test_every_allowlisted_action_is_one_iam_cannot_scope_to_a_resource(action: str) -> None:
    privileges = _privileges(action)
    assert privileges, f"{action} in IAM_ALLOWLIST is not an IAM action"
    assert not any(_supports_resources(p) for p in privileges), f"{action} can name its resources; drop it"


def test_action_iam_defines_without_resources_still_needs_an_allowlist_entry() -> None:
    (problem,) = audit_policy(_doc(_allow(["sagemaker:ListModels"], "*")), "identity")
    assert problem[:2] == ("Statement[0].Resource", "*")
    assert problem[2].startswith("an IAM_ALLOWLIST entry with the reason for sagemaker:ListModels")


def test_installed_parliament_is_the_pinned_one() -> None:
    assert importlib.metadata.version("parliament") == PARLIAMENT_VERSION


def test_allowing_everyone_without_a_condition_is_refused_and_with_one_passes() -> None:
    public = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": BUCKET_OBJECTS}
    (problem,) = audit_policy(_doc(public), "resource")
    assert problem[:2] == ("Statement[0].Principal", "*")
    scoped = {**public, "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}}
    assert audit_policy(_doc(scoped), "resource") == []
