"""Deploy gate: stop `pulumi up` when the preview replaces or deletes a protected resource without approval.

Run between `pulumi preview --json` and `pulumi up`:

    pulumi preview --stack prod --json > preview.json
    python -m tools.gate preview.json --stack prod

Protected types (endpoint, buckets, ECR repositories, KMS key) come from `tools/change_semantics.py`.
An approval is a reviewed entry in `deploy-approvals.yaml` naming the stack, the resource (`type::name`),
the operation and a reason; it lands through a pull request like any other change.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.change_semantics import PROTECTED_TYPES
from tools.plan import REPO

# Preview step operations that destroy the current physical resource.
DESTRUCTIVE_OPS = {
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "delete": "delete",
    "discard": "delete",
}
APPROVALS_FILE = REPO / "deploy-approvals.yaml"


@dataclass(frozen=True)
class Approval:
    stack: str
    resource: str
    operation: str
    reason: str


class GateError(ValueError):
    """The preview or the approvals file cannot be read."""


def load_approvals(path: Path) -> list[Approval]:
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("approvals") or []
    if not isinstance(entries, list):
        raise GateError(f"{path.name}: 'approvals' must be a list")
    approvals = []
    for i, entry in enumerate(entries):
        missing = [k for k in ("stack", "resource", "operation", "reason") if not str(entry.get(k, "")).strip()]
        if missing:
            raise GateError(f"{path.name}: approvals[{i}] lacks {', '.join(missing)}")
        if entry["operation"] not in ("replace", "delete"):
            raise GateError(
                f"{path.name}: approvals[{i}].operation must be 'replace' or 'delete', got {entry['operation']!r}"
            )
        approvals.append(
            Approval(str(entry["stack"]), str(entry["resource"]), str(entry["operation"]), str(entry["reason"]))
        )
    return approvals


def _ref_from_urn(urn: str) -> tuple[str, str]:
    parts = urn.split("::")
    if len(parts) < 4:
        raise GateError(f"malformed URN in preview: {urn!r}")
    return parts[2].split("$")[-1], parts[3]


def check(preview: dict[str, Any], stack: str, approvals: list[Approval]) -> tuple[list[str], list[Approval]]:
    """Return (blocked changes, approvals used)."""
    steps = preview.get("steps")
    if not isinstance(steps, list):
        raise GateError("not the output of `pulumi preview --json`: no 'steps' list")
    blocked: list[str] = []
    used: list[Approval] = []
    seen: set[tuple[str, str]] = set()
    for step in steps:
        operation = DESTRUCTIVE_OPS.get(step.get("op", ""))
        if operation is None:
            continue
        type_token, name = _ref_from_urn(step.get("urn", ""))
        if type_token not in PROTECTED_TYPES:
            continue
        ref = f"{type_token}::{name}"
        if (ref, operation) in seen:
            continue  # a replacement shows as create-replacement and delete-replaced: judge it once
        seen.add((ref, operation))
        match = next(
            (a for a in approvals if a.stack == stack and a.resource == ref and a.operation == operation), None
        )
        if match is None:
            blocked.append(f"{operation} of protected {ref} in stack {stack}")
        else:
            used.append(match)
    return blocked, used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preview", type=Path, help="output of `pulumi preview --json`")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--approvals", type=Path, default=APPROVALS_FILE)
    args = parser.parse_args(argv)
    try:
        preview = json.loads(args.preview.read_text())
        blocked, used = check(preview, args.stack, load_approvals(args.approvals))
    except (GateError, json.JSONDecodeError, OSError) as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return 2
    for a in used:
        print(f"gate: approved {a.operation} of {a.resource} in {a.stack}: {a.reason}")
    if blocked:
        print("gate: refusing to deploy:\n" + "\n".join(f"  - {b}" for b in blocked), file=sys.stderr)
        print(
            f"To proceed, add an entry to {args.approvals.name} (stack, resource, operation, reason) in a "
            "reviewed pull request.",
            file=sys.stderr,
        )
        return 1
    print(f"gate: no unapproved replacement or deletion of protected resources in {args.stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
