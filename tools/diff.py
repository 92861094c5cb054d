"""Offline plan diff: what a change does to each stack, in AWS terms, with no credentials and no Pulumi CLI.

`python -m tools.diff --base REF` (or `make diff BASE=REF`) plans dev and prod at REF (in a temporary git
worktree, with that commit's own code) and at the working tree, then prints Markdown and writes
`build/plan/diff.md` and `build/plan/diff.json`. Safe on untrusted pull requests: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.change_semantics import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    K8S_DEPLOYMENT,
    MODEL,
    TABLE,
    Effect,
    effect_of,
    replaces,
)
from tools.model_diff import LocalRegistryMetrics, MetricsSource, ModelChange, model_change
from tools.model_diff import render as render_model_change
from tools.plan import REPO, stack_config

STACKS = ("dev", "prod")
_MISSING = "(absent)"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as `a.b[0].c` paths to leaf values (JSON strings stay leaves)."""
    if isinstance(value, dict):
        if not value:
            return {prefix: {}} if prefix else {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        if not value:
            return {prefix: []}
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


@dataclass
class Change:
    ref: str
    type: str
    effect: Effect
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    dependency_replaced: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.ref,
            "type": self.type,
            "effect": str(self.effect),
            "fields": {k: {"from": a, "to": b} for k, (a, b) in self.fields.items()},
            "replaced_dependencies": self.dependency_replaced,
        }


@dataclass
class Rollout:
    endpoint: str
    before: dict[str, Any]
    after: dict[str, Any]
    routing: str
    alarms: list[str]
    longest_minutes: int
    same_model: bool = False
    """Only the rollout settings changed: SageMaker still brings up a whole new fleet, of the same model."""

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Canary:
    """The Kubernetes canary track of one namespace, before and after: its image, pods and share of the pods."""

    namespace: str
    status: str
    """`starts`, `changes`, `promoted` (the stable pods now run the canary's image) or `ends` (stable kept)."""
    before: dict[str, Any]
    after: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class StackDiff:
    stack: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)
    canaries: list[Canary] = field(default_factory=list)
    error: str | None = None
    model: ModelChange | None = None
    """A change of the registry version the stack deploys, with both versions' held-out figures."""

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "model": self.model.as_json() if self.model else None,
            "error": self.error,
            "added": [f"{r['type']}::{r['name']}" for r in self.added],
            "removed": [f"{r['type']}::{r['name']}" for r in self.removed],
            "changed": [c.as_json() for c in self.changed],
            "rollouts": [r.as_json() for r in self.rollouts],
            "canaries": [c.as_json() for c in self.canaries],
        }


def _ref(r: dict[str, Any]) -> str:
    return f"{r['type']}::{r['name']}"


def _first(value: Any) -> dict[str, Any]:
    """Single nested blocks arrive as a dict or a one-element list, depending on the provider schema."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value or {}


def diff_plans(stack: str, base: dict[str, Any], head: dict[str, Any]) -> StackDiff:
    """Compare two plan JSONs of one stack (`tools.plan` format)."""
    before = {_ref(r): r for r in base.get("resources", [])}
    after = {_ref(r): r for r in head.get("resources", [])}
    result = StackDiff(stack=stack)
    result.added = [after[k] for k in sorted(after.keys() - before.keys())]
    result.removed = [before[k] for k in sorted(before.keys() - after.keys())]

    # Walk resources so every dependency is judged before its dependents: a replaced dependency hands its
    # dependents a new name or ARN, which is how a new Model becomes a new EndpointConfiguration becomes a
    # blue/green rollout of the Endpoint.
    replaced: set[str] = {_ref(r) for r in result.added}
    effects: dict[str, Change] = {}
    for ref in _dependency_order(after):
        if ref not in before:
            continue
        old, new = flatten(before[ref]["inputs"]), flatten(after[ref]["inputs"])
        fields = {
            p: (old.get(p, _MISSING), new.get(p, _MISSING))
            for p in sorted(old.keys() | new.keys())
            if old.get(p, _MISSING) != new.get(p, _MISSING)
        }
        deps = [d for d in after[ref].get("options", {}).get("dependsOn", []) if d in replaced]
        if not fields and not deps:
            continue
        effect = effect_of(after[ref]["type"], list(fields), dependency_replaced=bool(deps))
        change = Change(ref=ref, type=after[ref]["type"], effect=effect, fields=fields, dependency_replaced=deps)
        effects[ref] = change
        if replaces(effect):
            replaced.add(ref)
    result.changed = [effects[k] for k in sorted(effects)]
    result.rollouts = [
        _rollout(c.ref, before, after) for c in result.changed if c.type == ENDPOINT and c.effect is Effect.BLUE_GREEN
    ]
    result.canaries = canary_changes(before, after)
    return result


def track_views(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Kubernetes serving tracks by namespace and `track` label: image, autoscaler bounds, share of the pods."""
    autoscalers = {
        (
            r["inputs"].get("metadata", {}).get("namespace"),
            r["inputs"].get("spec", {}).get("scaleTargetRef", {}).get("name"),
        ): (r["inputs"]["spec"])
        for r in resources.values()
        if r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    }
    views: dict[str, dict[str, dict[str, Any]]] = {}
    for r in resources.values():
        if r["type"] != K8S_DEPLOYMENT:
            continue
        metadata, spec = r["inputs"].get("metadata", {}), r["inputs"].get("spec", {})
        template = spec.get("template", {})
        track = template.get("metadata", {}).get("labels", {}).get("track")
        if track is None:
            continue
        containers = template.get("spec", {}).get("containers") or [{}]
        hpa = autoscalers.get((metadata.get("namespace"), metadata.get("name")), {})
        if hpa:
            pods: tuple[int, int] | None = (int(hpa.get("minReplicas", 1)), int(hpa.get("maxReplicas", 1)))
        elif "replicas" in spec:  # a fixed-size track (the canary with pod routing)
            pods = (int(spec["replicas"]), int(spec["replicas"]))
        else:
            pods = None
        views.setdefault(str(metadata.get("namespace")), {})[track] = {
            "image": containers[0].get("image"),
            "pods": pods,
        }
    for tracks in views.values():
        stable, canary = tracks.get("stable"), tracks.get("canary")
        if stable and canary and stable["pods"] and canary["pods"]:
            low = canary["pods"][0] / (canary["pods"][0] + stable["pods"][0])
            canary["share_percent"] = round(100 * low, 1)
    return views


def canary_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[Canary]:
    """How each namespace's canary track starts, changes, is promoted or ends between two plans."""
    old, new = track_views(before), track_views(after)
    canaries: list[Canary] = []
    for namespace in sorted(old.keys() | new.keys()):
        was, now = old.get(namespace, {}), new.get(namespace, {})
        if "canary" in now:
            if was == now:
                continue
            status = "changes" if "canary" in was else "starts"
        elif "canary" in was:
            promoted = now.get("stable", {}).get("image") == was["canary"]["image"]
            status = "promoted" if promoted else "ends"
        else:
            continue
        canaries.append(Canary(namespace=namespace, status=status, before=was, after=now))
    return canaries


def _dependency_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(ref: str) -> None:
        if ref in seen or ref not in resources:
            return
        seen.add(ref)
        for dep in resources[ref].get("options", {}).get("dependsOn", []):
            visit(dep)
        order.append(ref)

    for ref in sorted(resources):
        visit(ref)
    return order


def _endpoint_view(endpoint_ref: str, resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Image, model data, instance type and count behind an endpoint, following its config and model."""
    endpoint = resources.get(endpoint_ref)
    if endpoint is None:
        return {}
    deps = endpoint.get("options", {}).get("dependsOn", [])
    config = next((resources[d] for d in deps if d.startswith(ENDPOINT_CONFIG + "::") and d in resources), None)
    view: dict[str, Any] = {}
    if config is not None:
        variant = _first(config["inputs"].get("productionVariants"))
        view["instance_type"] = variant.get("instanceType")
        view["instance_count"] = variant.get("initialInstanceCount")
        model_deps = config.get("options", {}).get("dependsOn", [])
        model = next((resources[d] for d in model_deps if d.startswith(MODEL + "::") and d in resources), None)
        if model is not None:
            container = _first(model["inputs"].get("primaryContainer"))
            view["image"] = container.get("image")
            data_source = _first(container.get("modelDataSource"))
            source = _first(data_source.get("s3DataSources") or data_source.get("s3DataSource"))
            view["model_data"] = source.get("s3Uri") or container.get("modelDataUrl")
    return view


def describe_routing(deployment_config: dict[str, Any]) -> tuple[str, int]:
    """Traffic routing as a sentence, and the longest time the rollout can take in minutes."""
    from components.settings import RolloutSettings

    policy = _first(deployment_config.get("blueGreenUpdatePolicy"))
    routing = _first(policy.get("trafficRoutingConfiguration"))
    style = routing.get("type", "ALL_AT_ONCE")
    bake = int(routing.get("waitIntervalInSeconds", 0))
    termination = int(policy.get("terminationWaitInSeconds", 0))
    canary = int(_first(routing.get("canarySize")).get("value", 10))
    step = int(_first(routing.get("linearStepSize")).get("value", 25))
    settings = RolloutSettings(
        style=style,
        canary_percent=min(max(canary, 1), 50),
        linear_step_percent=min(max(step, 10), 50),
        bake_seconds=min(bake, 3600),
        termination_wait_seconds=min(termination, 3600),
        max_execution_seconds=max(int(policy.get("maximumExecutionTimeoutInSeconds", 3600)), 600),
    )
    b, t = _minutes(bake), _minutes(termination)
    if style == "CANARY":
        text = f"canary {canary}% -> bake {b} -> 100% -> bake {b} -> old fleet terminated after {t}"
    elif style == "LINEAR":
        text = f"linear {step}% steps x{settings.shift_steps()}, bake {b} after each -> old fleet terminated after {t}"
    else:
        text = f"all at once -> bake {b} -> old fleet terminated after {t}"
    return text, -(-settings.longest_duration_seconds() // 60)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _rollout(endpoint_ref: str, before: dict[str, Any], after: dict[str, Any]) -> Rollout:
    deployment = _first(after[endpoint_ref]["inputs"].get("deploymentConfig"))
    routing, longest = describe_routing(deployment)
    alarms = [a.get("alarmName") for a in _first(deployment.get("autoRollbackConfiguration")).get("alarms", [])]
    old_view, new_view = _endpoint_view(endpoint_ref, before), _endpoint_view(endpoint_ref, after)
    return Rollout(
        endpoint=after[endpoint_ref]["inputs"].get("name", endpoint_ref),
        before=old_view,
        after=new_view,
        routing=routing,
        alarms=[a for a in alarms if a],
        longest_minutes=longest,
        same_model=all(old_view.get(k) == new_view.get(k) for k in ("image", "model_data")),
    )


# --- rendering -----------------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_markdown(diffs: list[StackDiff], base_ref: str) -> str:
    lines = [f"## Offline plan diff against `{base_ref}`", ""]
    for d in diffs:
        lines.append(f"### Stack `{d.stack}`")
        lines.append("")
        if d.error:
            lines += [f"**Plan failed:** {d.error}", ""]
            continue
        if not (d.added or d.removed or d.changed):
            lines += ["No changes.", ""]
            continue
        lines.append(f"{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to remove.")
        lines.append("")
        if d.model is not None:
            lines += render_model_change(d.model)
        for c in d.canaries:
            lines += [f"#### Kubernetes canary in namespace `{c.namespace}`: {c.status}", ""]
            lines += ["| | from | to |", "|---|---|---|"]
            for track in ("stable", "canary"):
                for key in ("image", "pods"):
                    a = c.before.get(track, {}).get(key, "-")
                    b = c.after.get(track, {}).get(key, "-")
                    if key == "pods":
                        a, b = (f"{v[0]}-{v[1]}" if isinstance(v, tuple | list) else v for v in (a, b))
                    mark = " **(changed)**" if a != b else ""
                    lines.append(f"| {track} {key} | `{_short(a, 400)}` | `{_short(b, 400)}`{mark} |")
            share = c.after.get("canary", {}).get("share_percent")
            if share is not None:
                lines.append(f"\n- the canary runs {share}% of the pods at the minimum (its share of the requests)")
            lines.append("")
        for r in d.rollouts:
            lines += [f"#### Rollout of endpoint `{r.endpoint}`", "", "| | from | to |", "|---|---|---|"]
            for key in ("image", "model_data", "instance_type", "instance_count"):
                a, b = r.before.get(key, "-"), r.after.get(key, "-")
                mark = " **(changed)**" if a != b else ""
                # Full values here: a reviewer must see exactly which image digest and model go live.
                lines.append(f"| {key.replace('_', ' ')} | `{_short(a, 400)}` | `{_short(b, 400)}`{mark} |")
            start = r.after.get("instance_count", "-")
            lines += [
                "",
                f"- new fleet: every instance replaced, starting with {start} instances (the config's initial count:"
                " the provider never sends RetainAllVariantProperties)",
                *(
                    ["- same model and image: only the rollout settings changed, SageMaker still runs a blue/green"]
                    if r.same_model
                    else []
                ),
                f"- traffic: {r.routing}",
                f"- rollback alarms: {', '.join(f'`{a}`' for a in r.alarms) or 'none'}",
                f"- longest time: {r.longest_minutes} min",
                "",
            ]
        if d.changed:
            lines += ["| resource | what happens in AWS | changed inputs |", "|---|---|---|"]
            for c in d.changed:
                changed = [f"`{p}`: `{_short(a, 40)}` -> `{_short(b, 40)}`" for p, (a, b) in list(c.fields.items())[:6]]
                if len(c.fields) > 6:
                    changed.append(f"... {len(c.fields) - 6} more")
                if c.dependency_replaced:
                    changed.append("replaced: " + ", ".join(f"`{x}`" for x in c.dependency_replaced))
                lines.append(f"| `{c.ref}` | **{c.effect}** | {'<br>'.join(changed)} |")
            lines.append("")
        for title, items in (("Added", d.added), ("Removed", d.removed)):
            if items:
                lines.append(f"{title}: " + ", ".join(f"`{_ref(r)}`" for r in items))
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- planning two trees --------------------------------------------------------------------------------------


def plan_tree(root: Path, stack: str, out: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Plan `stack` in checkout `root` with that checkout's own code, in a subprocess (its own modules)."""
    if not (root / "tools" / "plan.py").exists() or not (root / f"Pulumi.{stack}.yaml").exists():
        return {"stack": stack, "resources": [], "outputs": {}}, None  # before the project existed: empty
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--stack", stack, "--root", str(root), "--out", str(out), "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["plan failed"])[-1]
    return json.loads((out / f"{stack}.json").read_text()), None


def _config(root: Path, stack: str) -> dict[str, Any]:
    try:
        return stack_config(stack, root)
    except FileNotFoundError:
        return {}


def run(
    base_ref: str,
    out_dir: Path,
    stacks: tuple[str, ...] = STACKS,
    repo: Path = REPO,
    metrics: MetricsSource | None = None,
) -> list[StackDiff]:
    metrics = metrics or LocalRegistryMetrics(repo / "build" / "local" / "registry")
    diffs: list[StackDiff] = []
    with tempfile.TemporaryDirectory(prefix="mlplatform-diff-") as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(worktree), base_ref],
            check=True,
            capture_output=True,
        )
        try:
            for stack in stacks:
                base, base_error = plan_tree(worktree, stack, Path(tmp) / "plans-base")
                head, head_error = plan_tree(repo, stack, Path(tmp) / "plans-head")
                if base is None or head is None:
                    diffs.append(StackDiff(stack=stack, error=head_error or f"base: {base_error}"))
                else:
                    diffs.append(diff_plans(stack, base, head))
                    diffs[-1].model = model_change(stack, _config(worktree, stack), _config(repo, stack), metrics)
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(worktree)],
                check=False,
                capture_output=True,
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "diff.md").write_text(render_markdown(diffs, base_ref))
    (out_dir / "diff.json").write_text(
        json.dumps({"base": base_ref, "stacks": [d.as_json() for d in diffs]}, indent=2, default=str) + "\n"
    )
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="origin/main", help="git ref to compare the working tree against")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "plan")
    parser.add_argument("--stack", action="append", help="stack to diff (default: dev and prod)")
    parser.add_argument(
        "--model-metrics",
        choices=("local", "aws"),
        default="local",
        help="where a registry version's metrics come from: make local's registry (default, offline) or AWS",
    )
    args = parser.parse_args(argv)
    metrics: MetricsSource | None = None
    if args.model_metrics == "aws":
        import boto3

        from tools.model_diff import SageMakerMetrics

        metrics = SageMakerMetrics(boto3.client("sagemaker"), boto3.client("s3"))
    try:
        diffs = run(args.base, args.out, tuple(args.stack or STACKS), metrics=metrics)
    except subprocess.CalledProcessError as exc:
        print(f"diff failed: cannot check out {args.base!r}: {exc.stderr.decode().strip()}", file=sys.stderr)
        return 2
    sys.stdout.write((args.out / "diff.md").read_text())
    return 1 if any(d.error for d in diffs) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["TABLE", "StackDiff", "diff_plans", "render_markdown", "run"]
