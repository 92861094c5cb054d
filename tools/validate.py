"""Prove a plan against AWS's own API models, offline: every input of every AWS resource, and every IAM policy.

`python -m tools.validate build/plan/dev.json` (exit 1 on violations) or `validate_plan(plan)` from code.
Each resource's inputs are mapped by `tools.aws_models` onto the request of the API call the provider makes,
and checked against botocore's model of that call: required members, types, enums, numeric ranges, lengths
and patterns, plus the few documented rules the models lack. IAM policy documents (trust, identity, resource
and key policies) are audited with parliament: unknown actions, actions whose resources cannot match, malformed
elements, and wildcards outside `IAM_ALLOWLIST`.

Values unknown until deployment (names, ARNs and ids other resources compute, the account id, other stacks'
outputs) are the mock runtime's fills in an offline plan. They are found by replaying `tools.mocks` over the
plan, checked for shape only (type, pattern, ARN structure), and counted apart from values the config fixes.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.resources
import json
import re
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from botocore.model import Shape, StructureShape

from tools.aws_models import (
    MAPPINGS,
    SHAPE_RULES,
    ResourceMapping,
    compile_pattern,
    descend,
    enum_values,
    input_shape,
    is_ignored,
    item_shape,
    list_member,
    map_key,
    map_value,
    members,
    metadata,
    pair_members,
    required_members,
    resolve_child,
)

# --- IAM -------------------------------------------------------------------------------------------------------

# Actions a policy may grant on Resource "*", each with the reason. Everything else must name its resources.
IAM_ALLOWLIST: dict[str, str] = {
    "ecr:GetAuthorizationToken": "returns a registry login token for the whole account; IAM defines no resource for it",
    "cloudwatch:PutMetricData": "metrics are not resources; IAM scopes it only with the cloudwatch:namespace condition",
    **{
        f"ec2:{action}": "SageMaker needs it to run jobs and endpoints in a VPC; EC2 Describe calls have no"
        " resource-level permissions"
        for action in (
            "DescribeNetworkInterfaces",
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeSecurityGroups",
            "DescribeDhcpOptions",
        )
    },
}
# Findings that do not apply to a kind of document ("*": any kind): (kind, issue, text in the detail) -> reason.
IAM_IGNORED_FINDINGS: dict[tuple[str, str, str], str] = {
    ("*", "RESOURCE_STAR", ""): (
        "Resource '*' is decided by the wildcard audit here: IAM_ALLOWLIST for Allow statements; a Deny only narrows"
        " access; in key, trust and repository policies '*' is the key, role or repository the policy is attached to"
    ),
    ("trust", "UNKNOWN_FEDERATION_SOURCE", ":oidc-provider/"): (
        "IRSA: EKS clusters' OIDC providers are account-specific and not in parliament's list of federation sources"
    ),
    ("trust", "UNKNOWN_CONDITION_FOR_ACTION", "for action sts:AssumeRoleWithWebIdentity"): (
        "IRSA: the `<issuer>:sub` and `<issuer>:aud` keys are the OIDC provider's own, unknown to parliament"
    ),
}
# Kinds whose statements name no Resource because the document is attached to it. parliament stops at a statement
# without one, so they are audited with Resource "*" put in, which keeps its action checks.
_IMPLIED_RESOURCE = ("trust", "repository")
PARLIAMENT_VERSION = "1.6.4"  # its IAM action database is what "unknown action" means here
_KEY_POLICY_ADMIN = "kms:*"  # the key policy AWS itself writes by default grants kms:* to the account root


@cache
def _parliament() -> Any:
    """parliament, imported once. Its 1.6.4 reads two data files through `pkg_resources`, which setuptools no
    longer ships by default; a stand-in with the one function it uses keeps setuptools out of our dependencies.
    """
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
    try:
        import parliament
    except ImportError as exc:
        raise ImportError(
            f"the IAM policy audit needs parliament=={PARLIAMENT_VERSION} (in requirements-dev.txt): {exc}"
        ) from exc
    return parliament


def _privileges(action: str) -> list[dict[str, Any]] | None:
    """IAM's definition of each action `action` expands to, or None for an unknown action or prefix."""
    parliament = _parliament()
    try:
        expanded = parliament.expand_action(action)
    except Exception:
        return None
    found: list[dict[str, Any]] = []
    for item in expanded:
        for service in parliament.iam_definition:
            if service["prefix"] != item["service"]:
                continue
            for privilege in service["privileges"]:
                if privilege["privilege"] == item["action"]:
                    found.append({"action": f"{item['service']}:{item['action']}", **privilege})
    return found


def _supports_resources(privilege: Mapping[str, Any]) -> bool:
    return any(rt.get("resource_type") for rt in privilege.get("resource_types", []))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def audit_policy(document: str | Mapping[str, Any], kind: str) -> list[tuple[str, Any, str]]:
    """Problems in one IAM policy document of `kind` (identity, trust, resource, key): (where, value, what is wrong).

    parliament's findings, less those that do not apply to the kind (IAM_IGNORED_FINDINGS), plus a wildcard audit:
    an Allow may not use a wildcard action, nor Resource "*" for an action that IAM lets you scope to resources,
    outside IAM_ALLOWLIST.
    """
    text = document if isinstance(document, str) else json.dumps(document)
    problems: list[tuple[str, Any, str]] = []
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return [("", text[:80], f"a JSON policy document ({exc.msg} at character {exc.pos})")]
    if kind in _IMPLIED_RESOURCE and isinstance(parsed, dict):
        statements = [dict(st) for st in _as_list(parsed.get("Statement", [])) if isinstance(st, dict)]
        for st in statements:
            if "Resource" not in st and "NotResource" not in st:
                st["Resource"] = "*"
        text = json.dumps({**parsed, "Statement": statements})
    policy = _parliament().analyze_policy_string(text)
    for finding in policy.findings:
        if any(
            k in ("*", kind) and issue == finding.issue and needle in str(finding.detail)
            for k, issue, needle in IAM_IGNORED_FINDINGS
        ):
            continue
        where = finding.location.get("string", "") if isinstance(finding.location, dict) else ""
        problems.append((f"IAM {finding.issue}", where or finding.detail, _finding_text(finding)))
    statements = _as_list(parsed.get("Statement", [])) if isinstance(parsed, dict) else []
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow" or kind == "trust":
            continue
        where = f"Statement[{index}]" + (f" ({statement['Sid']})" if statement.get("Sid") else "")
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        if "NotAction" in statement:
            problems.append(
                (
                    f"{where}.NotAction",
                    statement["NotAction"],
                    "an explicit Action list (NotAction allows everything else)",
                )
            )
        if "NotResource" in statement:
            problems.append((f"{where}.NotResource", statement["NotResource"], "an explicit Resource list"))
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS", [])))
        if everyone and not statement.get("Condition"):
            problems.append(
                (
                    f"{where}.Principal",
                    principal,
                    "named principals, or a Condition that narrows '*' (as written it grants everyone)",
                )
            )
        for action in actions:
            if "*" in action and not (kind == "key" and action == _KEY_POLICY_ADMIN):
                problems.append((f"{where}.Action", action, "named actions, not a wildcard"))
        if "*" in [str(r) for r in _as_list(statement.get("Resource", []))] and kind not in ("key", "repository"):
            for action in actions:
                if "*" in action or action in IAM_ALLOWLIST:
                    continue
                privileges = _privileges(action)
                if privileges and any(_supports_resources(p) for p in privileges):
                    problems.append(
                        (
                            f"{where}.Resource",
                            "*",
                            f"the resources {action} acts on (IAM supports resource-level permissions for it); "
                            "Resource '*' is allowed only for the actions in tools.validate.IAM_ALLOWLIST",
                        )
                    )
                elif privileges:
                    problems.append(
                        (
                            f"{where}.Resource",
                            "*",
                            f"an IAM_ALLOWLIST entry with the reason for {action}, which IAM defines without "
                            "resources (so '*' is its only form), before granting it",
                        )
                    )
    return problems


def _finding_text(finding: Any) -> str:
    detail = finding.detail
    if finding.issue == "RESOURCE_MISMATCH" and isinstance(detail, list):
        wanted = "; ".join(f"{d.get('action')} needs {d.get('required_format')}" for d in detail if isinstance(d, dict))
        return f"a Resource each action can act on ({wanted})"
    if finding.issue in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX"):
        return "an action IAM defines (service:Action, spelled as in the Service Authorization Reference)"
    title = getattr(finding, "title", "") or finding.issue
    return f"a policy without this parliament finding ({title}: {detail})"


# --- other JSON documents ----------------------------------------------------------------------------------------


def _ecr_lifecycle(document: Any) -> list[tuple[str, Any, str]]:
    """ECR lifecycle policy rules, as ECR's PutLifecyclePolicy documentation states them."""
    problems: list[tuple[str, Any, str]] = []
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, list) or not rules:
        return [("rules", rules, "a non-empty list of rules")]
    priorities: list[Any] = []
    for i, rule in enumerate(rules):
        at = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append((at, rule, "an object"))
            continue
        priority = rule.get("rulePriority")
        priorities.append(priority)
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 1:
            problems.append((f"{at}.rulePriority", priority, "an integer of at least 1"))
        selection = rule.get("selection") or {}
        status = selection.get("tagStatus")
        if status not in ("tagged", "untagged", "any"):
            problems.append((f"{at}.selection.tagStatus", status, "one of tagged, untagged, any"))
        if status == "tagged" and not (selection.get("tagPrefixList") or selection.get("tagPatternList")):
            problems.append(
                (f"{at}.selection.tagPrefixList", None, "tagPrefixList or tagPatternList when tagStatus is tagged")
            )
        count_type = selection.get("countType")
        if count_type not in ("imageCountMoreThan", "sinceImagePushed"):
            problems.append((f"{at}.selection.countType", count_type, "one of imageCountMoreThan, sinceImagePushed"))
        number = selection.get("countNumber")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            problems.append((f"{at}.selection.countNumber", number, "an integer of at least 1"))
        if count_type == "sinceImagePushed" and selection.get("countUnit") != "days":
            problems.append((f"{at}.selection.countUnit", selection.get("countUnit"), "days (with sinceImagePushed)"))
        if (rule.get("action") or {}).get("type") not in ("expire", "transition"):
            problems.append((f"{at}.action.type", (rule.get("action") or {}).get("type"), "expire or transition"))
    if len(set(map(str, priorities))) != len(priorities):
        problems.append(("rules[].rulePriority", priorities, "a different priority for every rule"))
    return problems


def _cloudwatch_dashboard(document: Any) -> list[tuple[str, Any, str]]:
    """A dashboard body: an object whose `widgets` list holds objects with a known `type`."""
    widgets = document.get("widgets") if isinstance(document, dict) else None
    if not isinstance(widgets, list):
        return [("widgets", widgets, "a list of widgets")]
    kinds = ("metric", "text", "log", "alarm", "explorer", "custom")
    return [
        (f"widgets[{i}].type", w.get("type") if isinstance(w, dict) else w, "one of " + ", ".join(kinds))
        for i, w in enumerate(widgets)
        if not isinstance(w, dict) or w.get("type") not in kinds
    ]


def _event_pattern(document: Any) -> list[tuple[str, Any, str]]:
    """An EventBridge event pattern: a non-empty object whose every leaf is a list of values or matchers."""
    if not isinstance(document, dict) or not document:
        return [("", document, "a non-empty JSON object")]
    problems: list[tuple[str, Any, str]] = []

    def walk(node: dict[str, Any], at: str) -> None:
        for key, value in node.items():
            where = f"{at}.{key}" if at else key
            if isinstance(value, dict):
                walk(value, where)
            elif not isinstance(value, list) or not value:
                problems.append((where, value, "a non-empty list of values to match (EventBridge matches lists)"))

    walk(document, "")
    return problems


DOCUMENT_CHECKS = {
    "ecr-lifecycle": _ecr_lifecycle,
    "cloudwatch-dashboard": _cloudwatch_dashboard,
    "event-pattern": _event_pattern,
}

# --- ARNs --------------------------------------------------------------------------------------------------------

_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):(?P<service>[a-z0-9-]+):"
    r"(?P<region>(?:[a-z]{2}(?:-[a-z]+)+-\d)?):(?P<account>(?:\d{12}|aws)?):(?P<resource>.+)"
)
# Resource parts of the ARNs this program uses; other services' ARNs get the structural check only.
_ARN_RESOURCE = {
    "iam": re.compile(r"(root|(role|policy|user|group|instance-profile|oidc-provider|saml-provider)(/[\w+=,.@/-]+))"),
    "kms": re.compile(r"(key/[0-9a-f-]{36}|key/mrk-[0-9a-f]{32}|alias/[\w/-]+)"),
    "s3": re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?"),
    "sns": re.compile(r"[\w-]{1,256}(\.fifo)?"),
    "sagemaker": re.compile(r"[a-z-]+/[\w.-]+(/[\w.-]+)*"),
    "ecr": re.compile(r"repository/[a-z0-9][a-z0-9._/-]*"),
}


def arn_problem(value: str) -> str | None:
    """What a malformed ARN needs, or None when `value` has the shape of an ARN of its service."""
    found = _ARN.fullmatch(value)
    if found is None:
        return "an ARN: arn:PARTITION:SERVICE:REGION:ACCOUNT(12 digits):RESOURCE"
    service, resource = found.group("service"), found.group("resource")
    pattern = _ARN_RESOURCE.get(service)
    if service == "s3" and (found.group("region") or found.group("account")):
        return "an S3 bucket ARN without region or account: arn:aws:s3:::BUCKET[/KEY]"
    if service in ("iam",) and found.group("region"):
        return "an IAM ARN without region: arn:aws:iam::ACCOUNT:role/NAME"
    if pattern is not None and pattern.fullmatch(resource) is None:
        return f"an {service} ARN whose resource part matches {pattern.pattern}"
    return None


# --- deploy-time values ----------------------------------------------------------------------------------------


def deploy_time_values(resources: Iterable[Mapping[str, Any]], region: str) -> set[str]:
    """Every value the plan holds only because the mock runtime made it up: what AWS or Pulumi fills at deployment.

    Replays `tools.mocks.PlatformMocks` over the plan's resources (outputs that are not inputs), its invokes
    (the account id, ECR credentials) and other stacks' example outputs.
    """
    from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

    from tools.example_outputs import example_stack_outputs
    from tools.mocks import MOCK_ACCOUNT_ID, PlatformMocks

    mocks = PlatformMocks(region=region, stack_outputs=example_stack_outputs())
    found: set[str] = {MOCK_ACCOUNT_ID}
    for r in resources:
        if r["type"].startswith("pulumi:providers:") or not r.get("custom", True):
            continue
        inputs = dict(r.get("inputs") or {})
        _, state = mocks.new_resource(MockResourceArgs(r["type"], r["name"], inputs, custom=True))
        given = {json.dumps(v, sort_keys=True) for v in inputs.values()}
        for key, value in state.items():
            if key in ("region", "tagsAll") or json.dumps(value, sort_keys=True) in given:
                continue
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, dict):
                found.update(v for v in value.values() if isinstance(v, str))
    for token, args in (
        ("aws:index/getCallerIdentity:getCallerIdentity", {}),
        ("aws:ecr/getAuthorizationToken:getAuthorizationToken", {}),
        ("aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage", {}),
    ):
        answer, _ = mocks.call(MockCallArgs(token, args, ""))
        found.update(v for k, v in answer.items() if isinstance(v, str) and k not in ("region", "id"))
    for outputs in example_stack_outputs().values():
        found.update(v for v in outputs.values() if isinstance(v, str))
    return {v for v in found if len(v) >= 8 and v != region}


# --- report ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One input AWS would refuse (or a policy problem), with everything needed to find and fix it."""

    stack: str
    type: str
    name: str
    path: str
    value: Any
    allowed: str
    source: str

    def __str__(self) -> str:
        shown = self.value if not isinstance(self.value, str) or len(self.value) <= 120 else self.value[:117] + "..."
        return (
            f"{self.stack}: {self.type} {self.name}: {self.path} = {json.dumps(shown, default=str)}; "
            f"allowed: {self.allowed} [{self.source}]"
        )


@dataclass
class TypeCoverage:
    """What was checked of one resource type: leaf values by how far they could be checked."""

    resources: int = 0
    checked: int = 0  # known values checked against the model (and rules)
    deploy_checked: int = 0  # values unknown until deployment, shape-checked (type, pattern, ARN)
    deploy_skipped: int = 0  # values unknown until deployment with no shape to check
    not_sent: int = 0  # inputs the provider keeps to itself (explicitly ignored, with a reason)
    unmapped: int = 0  # inputs with no AWS member: a gap in tools.aws_models
    policies: int = 0  # IAM policy documents audited

    @property
    def fields(self) -> int:
        return self.checked + self.deploy_checked + self.deploy_skipped + self.not_sent + self.unmapped


@dataclass(frozen=True)
class Leaf:
    """One checked value and the constraints it was checked against (what tests mutate to prove each check)."""

    type: str
    name: str
    path: str
    value: Any
    aws: str
    kind: str  # botocore type: string, integer, boolean...
    enum: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    deploy_time: bool = False
    required: bool = False  # AWS requires the member (deleting it must be caught)


@dataclass(frozen=True)
class Skipped:
    """Inputs not checked against a model: not sent to AWS, unknown until deployment, or unmapped; and why."""

    type: str
    name: str
    path: str
    why: str  # "not sent" | "deploy-time" | "unmapped"
    reason: str

    def __str__(self) -> str:
        return f"{self.type} {self.name}: {self.path}: {self.why}: {self.reason}"


@dataclass
class Report:
    stack: str
    violations: list[Violation] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    coverage: dict[str, TypeCoverage] = field(default_factory=dict)
    uncovered_types: dict[str, int] = field(default_factory=dict)  # AWS types with no mapping -> resource count
    non_aws: int = 0  # components, providers, pulumi:* resources
    reads: int = 0  # existing resources the program reads (`Resource.get`, stack references): nothing is sent

    @property
    def ok(self) -> bool:
        return not self.violations

    def total(self) -> TypeCoverage:
        t = TypeCoverage()
        for c in self.coverage.values():
            for name in vars(t):
                setattr(t, name, getattr(t, name) + getattr(c, name))
        return t

    def coverage_line(self) -> str:
        t = self.total()
        covered = [typ for typ in self.coverage if not typ.startswith("pulumi:")]  # provider: its default tags
        types_total = len(covered) + len(self.uncovered_types)
        line = (
            f"validate {self.stack}: {len(self.violations)} violation(s); {len(covered)}/{types_total} AWS "
            f"types covered, {t.resources} resources; fields: {t.checked} checked, {t.deploy_checked} deploy-time "
            f"shape-checked, {t.deploy_skipped} deploy-time skipped, {t.not_sent} not sent to AWS, "
            f"{t.unmapped} unmapped; {t.policies} IAM policies audited"
        )
        if self.reads:
            line += f"; {self.reads} read, not created"
        if self.uncovered_types:
            line += "; NOT COVERED: " + ", ".join(sorted(self.uncovered_types))
        return line

    def coverage_table(self) -> str:
        columns = ("res", "checked", "deploy+", "deploy-", "notsent", "unmap", "iam")
        rows = [f"  {'type':70s} " + " ".join(f"{c:>7s}" for c in columns)]
        for typ, c in sorted(self.coverage.items()):
            values = (c.resources, c.checked, c.deploy_checked, c.deploy_skipped, c.not_sent, c.unmapped, c.policies)
            rows.append(f"  {typ:70s} " + " ".join(f"{v:7d}" for v in values))
        for typ, n in sorted(self.uncovered_types.items()):
            rows.append(f"  {typ:70s} {n:7d}  no mapping in tools/aws_models.py")
        return "\n".join(rows)


# --- the walk --------------------------------------------------------------------------------------------------


@dataclass
class _Resource:
    """One resource being validated: where messages go and what counts."""

    report: Report
    type: str
    name: str
    mapping: ResourceMapping
    unknowns: set[str]
    counts: TypeCoverage
    required_paths: set[str] = field(default_factory=set)
    # Inside a SageMaker pipeline definition, {"Get": "Parameters.X"} and friends are resolved at run time.
    pipeline_expressions: bool = False

    def skip(self, why: str, path: str, reason: str, n: int = 1) -> None:
        """Count `n` values not checked against a model, and say which and why (`--skipped` lists them)."""
        if why == "not sent":
            self.counts.not_sent += n
        elif why == "deploy-time":
            self.counts.deploy_skipped += n
        else:
            self.counts.unmapped += n
        self.report.skipped.append(Skipped(self.type, self.name, path, why, reason))

    def leaf(self, path: str, value: Any, shape: Shape, aws: str, deploy_time: bool) -> None:
        meta = metadata(shape)
        self.report.leaves.append(
            Leaf(
                self.type,
                self.name,
                path,
                value,
                aws,
                shape.type_name,
                tuple(enum_values(shape)),
                meta.get("min"),
                meta.get("max"),
                deploy_time,
                path in self.required_paths,
            )
        )

    def fail(self, path: str, value: Any, allowed: str, source: str) -> None:
        self.report.violations.append(Violation(self.report.stack, self.type, self.name, path, value, allowed, source))

    def deploy_time(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        return value in self.unknowns or any(u in value for u in self.unknowns)

    def source(self, aws: str) -> str:
        """`sagemaker CreateEndpoint.DeploymentConfig...`: the API request member a value was checked against."""
        return f"{self.mapping.service} {aws}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1


def _check_structure(res: _Resource, value: Mapping[str, Any], shape: Shape, path: str, ppath: str, aws: str) -> None:
    present: set[str] = set()
    # (key, value, its parent's Pulumi path, its parent's shown path): a flattened block's inputs join its parent's
    pending: list[tuple[str, Any, str, str]] = [(k, v, ppath, path) for k, v in value.items()]
    while pending:
        key, child, parent_ppath, parent_path = pending.pop(0)
        full = _join(parent_ppath, key)
        shown = _join(parent_path, key)
        if child is None:
            continue
        reason = is_ignored(res.mapping, full)
        if reason is not None:
            res.skip("not sent", shown, reason, _leaves(child))
            continue
        if res.mapping.tags and full == res.mapping.tags[0]:
            _check_tags(res, child, shown)
            continue
        if res.mapping.fields.get(full) == "" and isinstance(child, dict):
            # A Pulumi block whose inputs are members of this same structure (CloudWatch's actionsSuppressor).
            pending.extend((k, v, full, shown) for k, v in child.items())
            continue
        target = resolve_child(res.mapping, shape, parent_ppath, key)
        if (
            target is not None
            and not target.redirected
            and "." not in target.member
            and target.member in required_members(item_shape(shape))
            and not _provided(res.mapping, aws, target.member)
        ):
            res.required_paths.add(shown)  # deleting this input must be caught
        if target is None:
            if full in res.mapping.rules:
                _check_rule(res, full, shown, child)
                res.counts.checked += 1
            else:
                res.skip("unmapped", shown, "no AWS member matches it: add it to tools/aws_models.py", _leaves(child))
            continue
        if not target.redirected:
            present.add(target.member.split(".")[0])
        where = target.member.replace(":", ".") if target.redirected else _join(aws, target.member)
        _check_value(res, child, target.shape, shown, full, where)
    struct = item_shape(shape)
    if isinstance(struct, StructureShape):
        for required in required_members(struct):
            if required in present or _provided(res.mapping, aws, required):
                continue
            # AWS's own spelling inside JSON documents (pipeline step arguments), else the Pulumi input's name
            key = required if res.pipeline_expressions else _pulumi_key(res.mapping, ppath, required)
            res.fail(_join(path, key), None, f"{required} is required", res.source(_join(aws, required)))


def _provided(mapping: ResourceMapping, aws: str, member: str) -> bool:
    """Whether the provider fills required `member` of the structure at `aws` (`Op.A[0].B`) by itself.

    `provided` names members from the request root without list indices; `Op:Path` for a second call's request.
    """
    op, _, rest = _strip_indices(aws).partition(".")
    relative = _join(rest, member)
    return (relative if op == mapping.operation else f"{op}:{relative}") in mapping.provided


def _pulumi_key(mapping: ResourceMapping, ppath: str, member: str) -> str:
    """The Pulumi input that fills AWS `member` under `ppath`: a renamed one from the mapping, else camelCase."""
    for pulumi_path, target in mapping.fields.items():
        parent, _, key = pulumi_path.rpartition(".")
        if parent == ppath and ":" not in target and target.split(".")[0] == member:
            return key
    return _pulumi_name(member)


def _strip_indices(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def _pulumi_name(member: str) -> str:
    return member[:1].lower() + member[1:]


def _check_value(
    res: _Resource, value: Any, shape: Shape, path: str, ppath: str, aws: str, coerce: bool = False
) -> None:
    source = res.source(aws)
    kind = shape.type_name
    if res.pipeline_expressions and _is_pipeline_expression(value):
        res.skip("deploy-time", path, f"a pipeline expression ({json.dumps(value)}), resolved when the pipeline runs")
        return
    pairs = pair_members(shape)
    if isinstance(value, dict) and pairs is not None:
        # A Pulumi map that AWS takes as [{Key|Name: k, Value: v}]
        key_member, value_member = pairs
        inner = item_shape(shape)
        assert isinstance(inner, StructureShape)
        _check_count(res, len(value), shape, path, value, source)
        for k, v in value.items():
            _check_value(res, k, members(inner)[key_member], f"{path} (key {k!r})", ppath, f"{aws}.{key_member}")
            _check_value(
                res, v, members(inner)[value_member], f"{path}.{k}", ppath, f"{aws}.{value_member}", coerce=True
            )
        return
    if kind == "structure":
        if isinstance(value, list):
            if len(value) > 1:
                res.fail(path, value, f"one {aws.rsplit('.', 1)[-1]} block", source)
                return
            if not value:
                return
            value, path, ppath = value[0], f"{path}[0]", ppath + "[]"
        if not isinstance(value, dict):
            res.fail(path, value, f"an object ({aws})", source)
            return
        _check_structure(res, value, shape, path, ppath, aws)
        return
    if kind == "list":
        member = list_member(shape)
        if not isinstance(value, list):
            # Pulumi sends one block where AWS takes a list of them (an S3 ownership `rule`).
            _check_value(res, value, member, path, ppath, f"{aws}[0]", coerce)
            return
        _check_count(res, len(value), shape, path, value, source)
        for i, item in enumerate(value):
            _check_value(res, item, member, f"{path}[{i}]", ppath + "[]", f"{aws}[{i}]", coerce)
        return
    if kind == "map":
        if not isinstance(value, dict):
            # A Pulumi input sent as one map entry (SNS topic attributes): check it against the value shape.
            _check_value(res, value, map_value(shape), path, ppath, aws, coerce=True)
            return
        _check_count(res, len(value), shape, path, value, source)
        for k, v in value.items():
            _check_value(res, k, map_key(shape), f"{path} (key {k!r})", ppath, f"{aws} key")
            _check_value(res, v, map_value(shape), f"{path}.{k}", ppath + "{}", f"{aws}.{k}", coerce=True)
        return
    if isinstance(value, list):
        # A Pulumi list the provider sends one call per item (a role's managed policy ARNs).
        for i, item in enumerate(value):
            _check_scalar(res, item, shape, f"{path}[{i}]", ppath + "[]", source, coerce)
        return
    _check_scalar(res, value, shape, path, ppath, source, coerce)


def _check_count(res: _Resource, n: int, shape: Shape, path: str, value: Any, source: str) -> None:
    lo, hi = metadata(shape).get("min"), metadata(shape).get("max")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        res.fail(path, value, f"{_range(lo, hi)} entries (has {n})", source)


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


def _check_scalar(res: _Resource, value: Any, shape: Shape, path: str, ppath: str, source: str, coerce: bool) -> None:
    kind = shape.type_name
    meta = metadata(shape)
    policy_kind = res.mapping.policies.get(ppath)
    document_kind = res.mapping.documents.get(ppath)
    # A document written by the program stays the program's, even where it quotes a generated ARN.
    unknown = res.deploy_time(value) and policy_kind is None and document_kind is None
    res.leaf(path, value, shape, source, unknown)
    if (policy_kind is not None or document_kind is not None) and isinstance(value, dict | list):
        value = json.dumps(value)
    if kind in ("string", "blob", "timestamp"):
        if coerce and isinstance(value, bool | int | float):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str) and not (kind == "timestamp" and isinstance(value, int | float)):
            res.fail(path, value, f"a string ({source.rsplit(' ', 1)[-1]} is a {kind})", source)
            return
        if isinstance(value, str):
            shaped = _check_string(res, value, shape, path, source, unknown)
            if unknown:
                if shaped:
                    res.counts.deploy_checked += 1
                else:
                    res.skip("deploy-time", path, f"unknown until deployment; {source} has no pattern to check")
            else:
                res.counts.checked += 1
                _check_rule(res, ppath, path, value)
            if policy_kind is not None:
                _audit(res, value, policy_kind, path)
            if document_kind is not None:
                _document(res, value, document_kind, path)
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            res.fail(path, value, f"a number ({kind})", source)
            return
        if kind in ("integer", "long") and not float(value).is_integer():
            res.fail(path, value, "a whole number", source)
            return
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            res.fail(path, value, _range(lo, hi), source)
        res.counts.checked += 1
        _check_rule(res, ppath, path, value)
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            res.fail(path, value, "true or false", source)
        res.counts.checked += 1
        return
    res.skip("unmapped", path, f"{source} is a {kind}, which this validator does not check")


def _check_string(res: _Resource, value: str, shape: Shape, path: str, source: str, unknown: bool) -> bool:
    """Check a string; for values unknown until deployment only their shape. True when a shape check applied."""
    meta = metadata(shape)
    shaped = False
    enum = enum_values(shape)
    if enum and not unknown and value not in enum:
        res.fail(path, value, enum_allowed(value, enum, shape.name), source)
    lo, hi = meta.get("min"), meta.get("max")
    if not unknown and ((lo is not None and len(value) < lo) or (hi is not None and len(value) > hi)):
        res.fail(path, value, f"{_range(lo, hi)} characters (has {len(value)})", source)
    pattern = meta.get("pattern")
    if pattern is not None:
        compiled = compile_pattern(pattern)
        if compiled is not None:
            shaped = True
            if compiled.regex.fullmatch(value) is None:
                res.fail(path, value, f"a value matching {pattern}", source)
    if value.startswith("arn:") or re.search(r"(Arn|ARN)$", source.rsplit(".", 1)[-1].split("[", 1)[0]):
        shaped = True
        problem = arn_problem(value)
        if problem is not None:
            res.fail(path, value, problem, source)
    rule = SHAPE_RULES.get((str(res.mapping.service), shape.name))
    if rule is not None:
        shaped = True
        if not rule.check(value) and not (value.startswith("arn:") and arn_problem(value)):
            res.fail(path, value, rule.allowed, rule.source)
    return shaped


_LONG_ENUM = 12


def enum_allowed(value: str, enum: list[str], shape_name: str) -> str:
    """`one of A, B, C`; for long enums (instance types) the count and the closest values instead of all of them."""
    if len(enum) <= _LONG_ENUM:
        return "one of " + ", ".join(enum)
    closest = difflib.get_close_matches(value, enum, n=5, cutoff=0.5)
    hint = f" (closest: {', '.join(closest)})" if closest else f" (e.g. {', '.join(enum[:5])})"
    return f"one of the {len(enum)} values of {shape_name} in the AWS model{hint}"


def _check_rule(res: _Resource, ppath: str, path: str, value: Any) -> None:
    rule = res.mapping.rules.get(ppath)
    if rule is not None and not res.deploy_time(value) and not rule.check(value):
        res.fail(path, value, rule.allowed, rule.source)


def _check_tags(res: _Resource, tags: Any, path: str) -> None:
    assert res.mapping.tags is not None and res.mapping.service is not None and res.mapping.operation is not None
    target = res.mapping.tags[1]
    op, member = target.split(":", 1) if ":" in target else (res.mapping.operation, target)
    shape = descend(input_shape(res.mapping.service, op), member)
    if shape is None or not isinstance(tags, dict):
        res.skip("unmapped", path, f"no tag shape at {target}", _leaves(tags))
        return
    _check_value(res, tags, shape, path, res.mapping.tags[0], f"{op}.{member}")


def _audit(res: _Resource, document: str, kind: str, path: str) -> None:
    res.counts.policies += 1
    for where, value, allowed in audit_policy(document, kind):
        res.fail(f"{path} {where}".strip(), value, allowed, f"parliament, {kind} policy")


def _document(res: _Resource, text: str, kind: str, path: str) -> None:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        res.fail(path, text[:80], f"a JSON document ({exc.msg})", kind)
        return
    if kind == "pipeline-definition":
        _pipeline_definition(res, parsed, path)
        return
    for where, value, allowed in DOCUMENT_CHECKS[kind](parsed):
        res.fail(f"{path} {where}", value, allowed, kind)


# --- SageMaker pipeline definitions ------------------------------------------------------------------------------

_PIPELINE_EXPRESSION_KEYS = {"Get", "Std:Join", "Std:JsonGet"}
# Step types whose Arguments are the request of a SageMaker API call, and the members the pipeline fills itself.
_STEP_REQUESTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Processing": ("CreateProcessingJob", ("ProcessingJobName",)),
    "Training": ("CreateTrainingJob", ("TrainingJobName",)),
    "Transform": ("CreateTransformJob", ("TransformJobName",)),
    "CreateModel": ("CreateModel", ("ModelName",)),
    # A RegisterModel step's Arguments are a CreateModelPackage request (the sagemaker SDK's
    # workflow/_RegisterModelStep builds them with Model.register's request dict).
    "RegisterModel": ("CreateModelPackage", ()),
}
_STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
_PIPELINE_SOURCE = "SageMaker pipeline definition schema 2020-12-01"


def _is_pipeline_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _PIPELINE_EXPRESSION_KEYS


def _pipeline_definition(res: _Resource, document: Any, path: str) -> None:
    """A pipeline definition: its version, parameters and steps, and each step's Arguments checked as the request
    of the API call the step makes (a Processing step's are a CreateProcessingJob request)."""
    if not isinstance(document, dict):
        res.fail(path, document, "a JSON object", _PIPELINE_SOURCE)
        return
    if document.get("Version") != "2020-12-01":
        res.fail(f"{path} Version", document.get("Version"), "2020-12-01", _PIPELINE_SOURCE)
    for i, parameter in enumerate(document.get("Parameters") or []):
        at = f"{path} Parameters[{i}]"
        if not isinstance(parameter, dict) or not _STEP_NAME.fullmatch(str(parameter.get("Name", ""))):
            res.fail(f"{at}.Name", (parameter or {}).get("Name"), "1-64 letters, digits, - and _", _PIPELINE_SOURCE)
        elif parameter.get("Type") not in _PARAMETER_TYPES:
            res.fail(f"{at}.Type", parameter.get("Type"), "one of " + ", ".join(_PARAMETER_TYPES), _PIPELINE_SOURCE)
    steps = document.get("Steps")
    if not isinstance(steps, list) or not steps:
        res.fail(f"{path} Steps", steps, "a non-empty list of steps", _PIPELINE_SOURCE)
        return
    # A Condition step holds its branches' steps (Arguments.IfSteps / ElseSteps): they are steps of the run too.
    located: list[tuple[str, Any]] = []

    def collect(items: list[Any], where: str) -> None:
        for i, step in enumerate(items):
            located.append((f"{where}[{i}]", step))
            arguments = step.get("Arguments") if isinstance(step, dict) else None
            if isinstance(step, dict) and step.get("Type") == "Condition" and isinstance(arguments, dict):
                for branch in ("IfSteps", "ElseSteps"):
                    if isinstance(arguments.get(branch), list):
                        collect(arguments[branch], f"{where}[{i}].Arguments.{branch}")

    collect(steps, f"{path} Steps")
    names = [s.get("Name") for _, s in located if isinstance(s, dict)]
    if len(set(map(str, names))) != len(names):
        res.fail(f"{path} Steps[].Name", names, "a different name for every step", _PIPELINE_SOURCE)
    for at, step in located:
        if not isinstance(step, dict) or not _STEP_NAME.fullmatch(str(step.get("Name", ""))):
            res.fail(f"{at}.Name", (step or {}).get("Name"), "1-64 letters, digits, - and _", _PIPELINE_SOURCE)
            continue
        request = _STEP_REQUESTS.get(str(step.get("Type")))
        if request is None or not isinstance(step.get("Arguments"), dict):
            continue  # other step types (Condition, Lambda, Fail...) have no API request shape to check
        op, filled = request
        mapping = ResourceMapping(
            "sagemaker", op, provided={m: "the pipeline names the job" for m in filled}, tags=None
        )
        inner = _Resource(res.report, res.type, res.name, mapping, res.unknowns, res.counts, pipeline_expressions=True)
        _check_structure(inner, step["Arguments"], input_shape("sagemaker", op), f"{at}.Arguments", "", op)


# --- docker-build ----------------------------------------------------------------------------------------------

_DOCKER_REF = re.compile(
    r"(?P<name>(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_ECR_HOST = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")


def _check_image(res: _Resource, inputs: Mapping[str, Any]) -> None:
    from pulumi_docker_build import Platform

    platforms = {p.value for p in Platform}
    ecr_tag = descend(input_shape("ecr", "PutImage"), "imageTag")
    for key, value in inputs.items():
        if key == "platforms" and isinstance(value, list):
            for i, p in enumerate(value):
                res.counts.checked += 1
                if p not in platforms:
                    res.fail(
                        f"platforms[{i}]",
                        p,
                        "a docker-build Platform (e.g. linux/amd64, linux/arm64)",
                        "pulumi_docker_build.Platform",
                    )
        elif key == "tags" and isinstance(value, list):
            for i, ref in enumerate(value):
                unknown = res.deploy_time(ref)
                if unknown:
                    res.counts.deploy_checked += 1
                else:
                    res.counts.checked += 1
                found = _DOCKER_REF.fullmatch(ref) if isinstance(ref, str) else None
                if found is None:
                    res.fail(
                        f"tags[{i}]",
                        ref,
                        "an image reference REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]",
                        "docker reference grammar",
                    )
                    continue
                tag = found.group("tag")
                if tag and _ECR_HOST.match(ref) and ecr_tag is not None:
                    hi = metadata(ecr_tag).get("max", 300)
                    if len(tag) > hi:
                        res.fail(
                            f"tags[{i}]", ref, f"an ECR image tag of at most {hi} characters", "ecr PutImage imageTag"
                        )
        else:
            res.skip("not sent", key, "a build setting of the local builder; no AWS API receives it", _leaves(value))


# --- entry points ------------------------------------------------------------------------------------------------


def _is_aws(resource: Mapping[str, Any]) -> bool:
    typ = str(resource["type"])
    if not resource.get("custom", True) or typ.startswith(("pulumi:", "mlplatform:")):
        return False
    return typ.startswith(("aws:", "aws-native:", "docker-build:"))


def validate_plan(plan: Any) -> Report:
    """Validate a plan: a `tools.plan.Plan`, its `as_json()` dict, or a path to a plan file."""
    if isinstance(plan, str | Path):
        plan = json.loads(Path(plan).read_text())
    data: Mapping[str, Any] = plan.as_json() if hasattr(plan, "as_json") else plan
    stack = str(data.get("stack", "?"))
    resources: list[Mapping[str, Any]] = list(data.get("resources", []))
    region = str((data.get("outputs") or {}).get("region") or _provider_region(resources) or "us-east-1")
    report = Report(stack)
    unknowns = deploy_time_values(resources, region)
    for r in resources:
        if (r.get("options") or {}).get("read"):
            report.reads += 1
            continue
        if str(r["type"]) == "pulumi:providers:aws":
            _check_default_tags(report, r, unknowns)
        if not _is_aws(r):
            report.non_aws += 1
            continue
        typ = str(r["type"])
        mapping = MAPPINGS.get(typ)
        if mapping is None:
            report.uncovered_types[typ] = report.uncovered_types.get(typ, 0) + 1
            continue
        counts = report.coverage.setdefault(typ, TypeCoverage())
        counts.resources += 1
        res = _Resource(report, typ, str(r["name"]), mapping, unknowns, counts)
        inputs = dict(r.get("inputs") or {})
        if mapping.service is None or mapping.operation is None:
            _check_image(res, inputs)
            continue
        _check_structure(res, inputs, input_shape(mapping.service, mapping.operation), "", "", mapping.operation)
    return report


_DEFAULT_TAGS = ResourceMapping("sagemaker", "AddTags", tags=("defaultTags.tags", "Tags"))


def _check_default_tags(report: Report, provider: Mapping[str, Any], unknowns: set[str]) -> None:
    """The provider's default tags land on every resource: check them as tags (SageMaker's Tag shape, which most
    of our resource types share) and against the `aws:` prefix AWS reserves for itself."""
    raw = (provider.get("inputs") or {}).get("defaultTags")
    parsed = json.loads(raw) if isinstance(raw, str) and raw.startswith("{") else raw
    tags = parsed.get("tags") if isinstance(parsed, dict) else None
    if not isinstance(tags, dict):
        return
    counts = report.coverage.setdefault(str(provider["type"]), TypeCoverage())
    res = _Resource(report, str(provider["type"]), str(provider["name"]), _DEFAULT_TAGS, unknowns, counts)
    _check_tags(res, tags, "defaultTags.tags")
    for key in tags:
        if str(key).lower().startswith("aws:"):
            res.fail(
                f"defaultTags.tags (key {key!r})", key, "a tag key not starting with aws: (reserved)", "AWS tagging"
            )


def _provider_region(resources: Iterable[Mapping[str, Any]]) -> str | None:
    for r in resources:
        if str(r["type"]).startswith("pulumi:providers:aws"):
            return (r.get("inputs") or {}).get("region")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plans", nargs="+", type=Path, help="plan files written by `python -m tools.plan`")
    parser.add_argument("--table", action="store_true", help="print coverage per resource type")
    parser.add_argument("--strict-coverage", action="store_true", help="also fail when an AWS type has no mapping")
    parser.add_argument("--skipped", action="store_true", help="list every input not checked, and why")
    args = parser.parse_args(argv)
    failed = False
    for path in args.plans:
        if not path.exists():
            print(
                f"validate: no plan file {path}; write one with `python -m tools.plan --stack <stack>`", file=sys.stderr
            )
            return 2
        report = validate_plan(path)
        for v in report.violations:
            print(v, file=sys.stderr)
        print(report.coverage_line())
        if args.table:
            print(report.coverage_table())
        if args.skipped:
            for item in report.skipped:
                print(f"  skipped {item}")
        failed = failed or not report.ok or (args.strict_coverage and bool(report.uncovered_types))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
