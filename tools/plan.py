"""Offline plan: run the real Pulumi program under the mock runtime with a stack's config, no cloud, no CLI.

`python -m tools.plan --stack dev` writes `build/plan/dev.json` and prints the resource tree. An invalid
config exits with status 2 and the validation message, and writes no plan file.
"""

from __future__ import annotations

import argparse
import copy
import json
import runpy
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PROJECT = "mlplatform"


@dataclass
class Plan:
    """What `pulumi up` would create for one stack: every resource with its inputs, and the stack outputs."""

    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """A deep copy: callers may change it without touching the plan (tests mutate plans on purpose)."""
        return copy.deepcopy({"stack": self.stack, "resources": self.resources, "outputs": self.outputs})

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_token]

    def one(self, type_token: str) -> dict[str, Any]:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token} in the {self.stack} plan, found {len(found)}")
        return found[0]

    def named(self, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name!r} in the {self.stack} plan, found {len(found)}")
        return found[0]

    def children(self, parent_ref: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["parent"] == parent_ref]


def stack_config(stack: str, root: Path = REPO) -> dict[str, Any]:
    """A stack's config as the engine would pass it: namespaced keys; structured values as JSON strings."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"no stack file {path.name}: stacks are the Pulumi.<stack>.yaml files beside Pulumi.yaml"
        )
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, Any] = {}
    for key, value in (data.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = "[secret]"  # ciphertext only the real CLI can decrypt; the program sees a string
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        config[full] = str(value) if not isinstance(value, str) else value
    return config


def run_program(
    stack: str,
    config: Mapping[str, Any],
    *,
    program: Path | Callable[[], Any] = REPO / "__main__.py",
    stack_outputs: dict[str, dict[str, Any]] | None = None,
    secret_keys: set[str] | None = None,
    live_reader: Callable[[str, str, str], Any] | None = None,
    namer: Callable[[str, str, dict[str, Any]], str | None] | None = None,
) -> Plan:
    """Run a Pulumi program under the mock runtime with `config`; return what it registered and exported.

    `program` is a `__main__.py` path, or a callable that creates resources (component tests use that).
    `live_reader` answers the program's read of the live endpoint (`components.endpoint_live`); by default no
    endpoint exists yet, as before a first deployment. `namer` names auto-named resources (`PlatformMocks`).
    """
    import pulumi
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from components.endpoint_live import set_live_reader
    from tools.mocks import MOCK_REGION, PlatformMocks, RecordingMonitor

    mocks = PlatformMocks(region=str(config.get("aws:region", MOCK_REGION)), stack_outputs=stack_outputs, namer=namer)
    monitor = RecordingMonitor(mocks)
    if secret_keys is None:
        # A config built by hand (tests, tools) holds secret settings as if set with `--secret`.
        from components.settings import secret_config_keys

        secret_keys = {k for k in config if k in secret_config_keys()}
    # As pulumi-language-python-exec does: the config, and which of its keys hold secrets.
    runtime_config.set_all_config(dict(config), sorted(secret_keys))
    # set_mocks creates a root Stack only when none exists; a fresh one keeps one run's exports out of the next.
    runtime_settings.ROOT.set(None)
    # The SDK's mock monitor is process-global: every run replaces it, so runs never see each other's resources.
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    current: Any = runtime_settings.SETTINGS  # a MockSettings after set_mocks; the SDK types it loosely
    current.rpc_manager.clear()
    current.outputs.clear()

    if callable(program):
        body: Callable[[], Any] = program
    else:
        path = program

        def body() -> Any:
            sys.path.insert(0, str(path.parent))
            try:
                return runpy.run_path(str(path), run_name="__main__")
            finally:
                sys.path.remove(str(path.parent))

    # Offline, no AWS is read: the live endpoint comes from the caller (the lifecycle harness) or does not exist.
    previous_reader = set_live_reader(live_reader or (lambda _name, _variant, _region: None))
    try:
        _sync_await(run_pulumi_func(body))
    finally:
        set_live_reader(previous_reader)

    root = runtime_settings.get_root_resource()
    raw_outputs: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
    outputs = {k: _sync_await(pulumi.Output.from_input(v).future()) for k, v in raw_outputs.items()}
    # Registration order depends on the event loop; sorted plans make diffs between two plans meaningful.
    resources = sorted(
        (r.as_plan_entry() for r in monitor.recorded), key=lambda r: (r["parent"] or "", r["type"], r["name"])
    )
    return Plan(stack=stack, resources=resources, outputs=_jsonable(outputs))


def parse_sets(items: list[str]) -> dict[str, str]:
    """`key=value` pairs as the engine passes config: namespaced keys (`mlplatform:` by default), string values."""
    config: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set mlplatform:lifecycleEnabled=true")
        config[key if ":" in key else f"mlplatform:{key}"] = value
    return config


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.sets`, read with `parse_sets`."""
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config value on top of the stack file, as `pulumi config set` would add it (repeatable), "
        "e.g. --set mlplatform:lifecycleEnabled=true",
    )


def plan_stack(
    stack: str,
    root: Path = REPO,
    stack_outputs: dict[str, dict[str, Any]] | None = None,
    overrides: dict[str, str] | None = None,
) -> Plan:
    """Plan a stack from its `Pulumi.<stack>.yaml`, after the CLI's config pre-flight (tools/preflight.py).

    The program gets what the CLI would pass it: the stack's values merged with Pulumi.yaml's defaults, then
    `overrides` (what `pulumi config set` would add; the program's settings parser checks them like any value).
    Raises `PreflightError` (a ValueError) with the CLI's message where the CLI would refuse the stack.
    """
    from tools.preflight import preflight

    if stack_outputs is None:
        from tools.example_outputs import example_stack_outputs

        stack_outputs = example_stack_outputs()
    merged = preflight(stack, root)
    return run_program(
        stack,
        {**merged.values, **(overrides or {})},
        program=root / "__main__.py",
        stack_outputs=stack_outputs,
        secret_keys=merged.secret_keys,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def render_tree(plan: Plan) -> str:
    """Components with their children, then counts by type."""
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    for r in plan.resources:
        by_parent.setdefault(r["parent"], []).append(r)
    lines = [f"stack {plan.stack}: {len(plan.resources)} resources"]

    def walk(parent: str | None, depth: int) -> None:
        for r in by_parent.get(parent, []):
            marker = "+" if r["custom"] else "*"
            flags = "".join(f" [{k}]" for k in ("protect", "retainOnDelete") if r["options"].get(k))
            lines.append(f"{'  ' * depth}{marker} {r['type']} {r['name']}{flags}")
            walk(f"{r['type']}::{r['name']}", depth + 1)

    walk(None, 1)
    lines.append("counts by type:")
    for typ, n in sorted(Counter(r["type"] for r in plan.resources).items()):
        lines.append(f"  {n:3d}  {typ}")
    lines.append("outputs: " + ", ".join(sorted(plan.outputs)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--stack", required=True, action="append", help="stack name: reads Pulumi.<stack>.yaml (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "plan", help="folder for <stack>.json")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument("--root", type=Path, default=REPO, help="checkout to plan (default: this one)")
    parser.add_argument("--no-validate", action="store_true", help="skip the check against AWS's API models")
    add_set_argument(parser)
    args = parser.parse_args(argv)
    # Several stacks in one interpreter share the imports (pulumi_aws alone takes about a second).
    return max(_plan_one(stack, args) for stack in args.stack)


def _plan_one(stack: str, args: argparse.Namespace) -> int:
    from components.settings import SettingsError
    from tools.preflight import PreflightError

    out_file = args.out / f"{stack}.json"
    started = time.perf_counter()
    try:
        plan = plan_stack(stack, root=args.root.resolve(), overrides=parse_sets(args.sets))
    except PreflightError as exc:
        out_file.unlink(missing_ok=True)
        print(f"plan failed: the Pulumi CLI refuses this stack before running the program: {exc}", file=sys.stderr)
        return 2
    except (SettingsError, ValueError) as exc:
        # Settings errors and the components' own refusals (a bad promoted stack, an unsafe rollout) are
        # all ValueErrors that name the setting to change.
        out_file.unlink(missing_ok=True)  # never leave a stale plan beside a config that no longer plans
        print(f"plan failed: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"plan failed: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plan.as_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(out_file)
    elapsed = time.perf_counter() - started
    if not args.quiet:
        print(render_tree(plan))
    print(
        f"wrote {out_file.relative_to(REPO) if out_file.is_relative_to(REPO) else out_file} "
        f"({len(plan.resources)} resources, {elapsed:.1f} s)"
    )
    if not args.quiet:
        from tools.costs import render_costs

        print(render_costs(plan.as_json()))
    if args.no_validate:
        return 0
    # Every planned AWS resource against AWS's own API models (tools/validate.py); the plan file stays for
    # inspection, the exit status says whether it would reach AWS intact.
    from tools.validate import validate_plan

    report = validate_plan(plan)
    for violation in report.violations:
        print(f"plan invalid: {violation}", file=sys.stderr)
    print(report.coverage_line())
    if not args.quiet:
        print(report.coverage_table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
