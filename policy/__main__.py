"""The Pulumi policy pack: `pulumi preview --policy-pack policy` runs every rule of `policy/rules.py`.

Each rule is a stack validation policy, so rules that join resources (a bucket and its public-access block,
an endpoint and its config) see the whole stack, and the stack's own `PolicyContext` component (environment,
allowed GPU types, written exceptions) applies. A rule the stack excepts is reported as not applicable,
with the stack's reason.
"""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `policy.rules`

from policy.rules import RULES, PolicyContext, Rule

LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def known(value: Any) -> Any:
    """A copy without the values the engine does not know yet (a preview of new resources): rules then
    check what is known instead of the whole stack being skipped."""
    if isinstance(value, Mapping):
        out = {}
        for key in list(value.keys()):
            try:
                out[key] = known(value[key])
            except UnknownValueError:
                continue
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for i in range(len(value)):
            try:
                items.append(known(value[i]))
            except UnknownValueError:
                continue
        return items
    return value


def as_plan_resource(resource: PolicyResource) -> dict[str, Any]:
    """The engine's view of a resource in the shape the rules (and the offline plan) use."""
    return {
        "type": resource.resource_type,
        "name": resource.name,
        "inputs": known(resource.props),
        "options": {"dependsOn": [f"{d.resource_type}::{d.name}" for d in resource.dependencies]},
        "urn": resource.urn,
    }


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [as_plan_resource(r) for r in args.resources]
        context = PolicyContext.from_resources(resources)
        if rule.name in context.exceptions:
            args.not_applicable(f"excepted by the stack: {context.exceptions[rule.name]}")
        urns = {f"{r['type']}::{r['name']}": r["urn"] for r in resources}
        for resource, message in rule.check(resources, context):
            report(message, urns.get(f"{resource['type']}::{resource['name']}"))

    return StackValidationPolicy(
        name=rule.name,
        description=f"{rule.description} (source: {rule.source})",
        validate=validate,
        enforcement_level=LEVELS[rule.enforcement],
    )


PolicyPack(
    name="mlplatform-policies",
    policies=[stack_policy(r) for r in RULES.values()],
    description="Security, reliability and cost rules for ML infrastructure on AWS (SageMaker, S3, ECR, IAM)",
)
