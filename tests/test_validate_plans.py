"""The committed dev and prod plans pass the validator, and mutations of their real resources are caught.

The mutations pick whatever resource in the plan carries the constraint (an enum, a numeric range, a required
member, an ARN, an IAM action, a length limit), so they keep proving the checks as the program grows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.plan_paths import DELETE, set_path
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan
from tools.validate import Leaf, Report, Violation, validate_plan

_DELETE = DELETE


def _report(plan: Plan) -> Report:
    return validate_plan(plan)


def _mutate(plan: Plan, leaf: Leaf, value: Any) -> dict[str, Any]:
    """The plan as JSON with the input at `leaf.path` of `leaf`'s resource set to `value` (or deleted)."""
    data = copy.deepcopy(plan.as_json())
    resource = next(r for r in data["resources"] if r["type"] == leaf.type and r["name"] == leaf.name)
    set_path(resource["inputs"], leaf.path, value)
    return data


def _pick(plan: Plan, what: str, wanted: Callable[[Leaf], bool]) -> Leaf:
    leaves = [
        leaf
        for leaf in _report(plan).leaves
        # inputs only: not the provider's default tags, nor values inside a JSON document (`policy Steps[0]...`)
        if not leaf.type.startswith("pulumi:") and " " not in leaf.path and wanted(leaf)
    ]
    if not leaves:
        pytest.fail(f"the {plan.stack} plan has no value with {what} to mutate")
    return leaves[0]


def _caught(data: dict[str, Any], leaf: Leaf, path: str | None = None) -> list[Violation]:
    report = validate_plan(data)
    hits = [
        v
        for v in report.violations
        if v.type == leaf.type and v.name == leaf.name and v.path.lower().startswith((path or leaf.path).lower())
    ]
    assert hits, f"mutation of {leaf.type} {leaf.name} {leaf.path} not caught: {[str(v) for v in report.violations]}"
    for v in hits:
        assert str(v).startswith(f"{data['stack']}: {leaf.type} {leaf.name}: ")
    return hits


def _is_document(leaf: Leaf) -> bool:
    return isinstance(leaf.value, str) and leaf.value.lstrip().startswith("{")


def test_committed_plan_passes_with_every_aws_type_covered(any_plan: Plan) -> None:
    report = _report(any_plan)
    assert [str(v) for v in report.violations] == []
    assert report.uncovered_types == {}
    total = report.total()
    assert total.unmapped == 0
    assert total.checked > 0
    assert report.coverage_line().startswith(f"validate {any_plan.stack}: 0 violation(s); ")


def test_coverage_counts_every_aws_resource_and_nothing_else(any_plan: Plan) -> None:
    report = _report(any_plan)
    aws = [r for r in any_plan.resources if r["custom"] and r["type"].startswith(("aws:", "docker-build:"))]
    assert sum(c.resources for t, c in report.coverage.items() if not t.startswith("pulumi:")) == len(aws)
    assert report.non_aws == len(any_plan.resources) - len(aws) - report.reads
    assert set(report.coverage) - {"pulumi:providers:aws"} == {r["type"] for r in aws}


def test_provider_default_tags_are_checked_as_tags(any_plan: Plan) -> None:
    data = copy.deepcopy(any_plan.as_json())
    provider = next(r for r in data["resources"] if r["type"] == "pulumi:providers:aws")
    tags = json.loads(provider["inputs"]["defaultTags"])
    assert validate_plan(data).coverage["pulumi:providers:aws"].checked == 2 * len(tags["tags"])
    tags["tags"]["owner"] = "x" * 300
    tags["tags"]["aws:team"] = "ml"
    provider["inputs"]["defaultTags"] = json.dumps(tags)
    found = {(v.path, v.allowed) for v in validate_plan(data).violations}
    assert ("defaultTags.tags.owner", "0 to 256 characters (has 300)") in found
    assert ("defaultTags.tags (key 'aws:team')", "a tag key not starting with aws: (reserved)") in found


def test_mock_fills_count_as_deploy_time_and_config_values_do_not(any_plan: Plan) -> None:
    leaves = [leaf for leaf in _report(any_plan).leaves if isinstance(leaf.value, str) and not _is_document(leaf)]
    with_account = [leaf for leaf in leaves if MOCK_ACCOUNT_ID in leaf.value]
    assert with_account, "expected ARNs from other resources in the plan"
    assert all(leaf.deploy_time for leaf in with_account)
    enums = [leaf for leaf in leaves if leaf.enum]
    assert enums and not any(leaf.deploy_time for leaf in enums)


def test_bad_enum_value_is_caught(any_plan: Plan) -> None:
    leaf = _pick(any_plan, "an enum", lambda x: bool(x.enum) and not x.deploy_time and x.kind == "string")
    bad = str(leaf.value) + "X"
    (hit,) = [v for v in _caught(_mutate(any_plan, leaf, bad), leaf) if v.value == bad]
    assert hit.path == leaf.path
    assert hit.allowed.startswith("one of ")
    assert str(leaf.value) in hit.allowed  # the whole list, or for long enums the closest values


def test_out_of_range_number_is_caught(any_plan: Plan) -> None:
    leaf = _pick(any_plan, "a numeric maximum", lambda x: x.kind in ("integer", "long") and x.max is not None)
    assert leaf.max is not None
    bad = float(leaf.max) + 1
    hits = [v for v in _caught(_mutate(any_plan, leaf, bad), leaf) if v.value == bad]
    assert any(v.allowed.endswith(f"to {leaf.max}") or v.allowed == f"at most {leaf.max}" for v in hits)


def test_missing_required_field_is_caught(any_plan: Plan) -> None:
    leaf = _pick(any_plan, "a required member", lambda x: x.required)
    hits = _caught(_mutate(any_plan, leaf, _DELETE), leaf)
    member = leaf.aws.rsplit(".", 1)[-1]
    assert any(v.allowed == f"{member} is required" and v.value is None for v in hits)


def test_malformed_arn_is_caught(any_plan: Plan) -> None:
    leaf = _pick(
        any_plan,
        "an ARN",
        lambda x: isinstance(x.value, str) and x.value.startswith("arn:") and not _is_document(x),
    )
    bad = str(leaf.value).replace(MOCK_ACCOUNT_ID, "1234")
    assert bad != leaf.value
    hits = [v for v in _caught(_mutate(any_plan, leaf, bad), leaf) if v.value == bad]
    assert any("ARN" in v.allowed for v in hits)


def test_misspelled_iam_action_is_caught(any_plan: Plan) -> None:
    leaf = _pick(any_plan, "an IAM policy", lambda x: _is_document(x) and '"Action"' in str(x.value))
    document = json.loads(str(leaf.value))
    statement = document["Statement"][0]
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    prefix = actions[0].split(":")[0]
    misspelled = f"{prefix}:GetObjcet"
    statement["Action"] = [misspelled, *actions[1:]]
    hits = _caught(_mutate(any_plan, leaf, json.dumps(document)), leaf)
    assert any(v.path == f"{leaf.path} IAM UNKNOWN_ACTION" and v.value == misspelled for v in hits)


def test_string_too_long_is_caught(any_plan: Plan) -> None:
    leaf = _pick(
        any_plan,
        "a length limit",
        # A limit small enough to exceed: some shapes cap strings at 2**31 - 1 (Budgets' UnitValue).
        lambda x: (
            x.kind == "string" and x.max is not None and x.max <= 65536 and not x.deploy_time and not _is_document(x)
        ),
    )
    assert leaf.max is not None
    bad = "x" * (int(leaf.max) + 1)
    hits = [v for v in _caught(_mutate(any_plan, leaf, bad), leaf) if v.value == bad]
    assert any(v.allowed.endswith(f"characters (has {len(bad)})") for v in hits)


def test_training_instance_type_aws_does_not_offer_is_refused_before_deployment(
    replan: Callable[..., Plan],
) -> None:
    """ml.m5d.large serves endpoints but does not train: the stack settings or the AWS model must say so."""
    from components.settings import SettingsError

    plan: Plan | None = None
    refused = ""
    try:
        plan = replan("dev", {"mlplatform:trainingInstanceType": "ml.m5d.large"})
    except SettingsError as exc:
        refused = str(exc)
    if plan is None:
        assert "ml.m5d.large" in refused
        return
    hits = [v for v in validate_plan(plan).violations if v.value == "ml.m5d.large"]
    assert [(v.type, v.path, v.source) for v in hits] == [
        (
            "aws:sagemaker/trainingJob:TrainingJob",
            "resourceConfig.instanceType",
            "sagemaker CreateTrainingJob.ResourceConfig.InstanceType",
        )
    ]
    assert hits[0].allowed.startswith("one of the ") and "ml.m5.large" in hits[0].allowed
