"""`make diff`'s model section: a change of the registry pin shows as "model A -> model B" with both metrics.

A stack with `mlplatform:modelSource registry` deploys a version of `mlplatform:modelPackageGroup`: the pinned
`mlplatform:modelPackageVersion`, else the latest Approved one. When a change moves the pin (or the group, or the
source), the reviewer should see what the model does, not only that a prefix changed: each version's held-out
figures (AUC, accuracy, log loss) side by side, from the version's `ModelMetrics.ModelQuality.Statistics` (the
pipeline's gate record, or the local registry's evaluation.json).

Where the figures come from (`MetricsSource`):
- `LocalRegistryMetrics` (default, offline): `make local`'s registry under build/local/registry/, whose
  package.json records carry the members DescribeModelPackage returns;
- `SageMakerMetrics` (`--model-metrics aws`, needs credentials): DescribeModelPackage, then the S3 object its
  ModelQuality statistics name. Offline by default: `make diff` stays safe on untrusted pull requests.
A version whose figures cannot be read shows `-` and says why; it never fails the diff.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

METRICS = ("auc", "accuracy", "log_loss")
SOURCE_KEY = "mlplatform:modelSource"
GROUP_KEY = "mlplatform:modelPackageGroup"
VERSION_KEY = "mlplatform:modelPackageVersion"


@dataclass(frozen=True)
class ModelPin:
    """What a stack deploys from the registry: a group and a version (None: the latest approved)."""

    group: str
    version: int | None

    def label(self) -> str:
        return f"{self.group} version {self.version}" if self.version is not None else f"{self.group} latest approved"


@dataclass
class ModelChange:
    stack: str
    before: ModelPin | None
    after: ModelPin | None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """'before'/'after' -> metric -> value."""
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before.label() if self.before else None,
            "after": self.after.label() if self.after else None,
            "metrics": self.metrics,
            "notes": self.notes,
        }


def registry_pin(config: Mapping[str, Any]) -> ModelPin | None:
    """The stack's registry pin from its config (None for another model source)."""
    if str(config.get(SOURCE_KEY, "")) != "registry" or not config.get(GROUP_KEY):
        return None
    version = config.get(VERSION_KEY)
    return ModelPin(str(config[GROUP_KEY]), int(version) if version not in (None, "") else None)


class MetricsSource(Protocol):
    def metrics(self, pin: ModelPin) -> tuple[dict[str, float | None], str | None]:
        """The version's held-out figures, or empty with the reason they are unavailable."""
        ...


def quality_figures(doc: Mapping[str, Any]) -> dict[str, float | None]:
    """AUC, accuracy, log loss from a ModelQuality statistics document: the pipeline's gate record (the
    candidate's figures under `evaluation.candidate`) or a model directory's evaluation.json (`fp32`)."""
    figures = ((doc.get("evaluation") or {}).get("candidate")) or doc.get("fp32") or {}
    out: dict[str, float | None] = {}
    for name in METRICS:
        value = figures.get(name)
        out[name] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return out


def _statistics_uri(package: Mapping[str, Any]) -> str | None:
    return ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics", {}).get("S3Uri")


@dataclass(frozen=True)
class LocalRegistryMetrics:
    root: Path

    def metrics(self, pin: ModelPin) -> tuple[dict[str, float | None], str | None]:
        group = self.root / pin.group
        records = []
        for path in sorted(group.glob("*/package.json")):
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError) as exc:
                return {}, f"{path} cannot be read: {exc}"
        if pin.version is None:
            approved = [r for r in records if r.get("ModelApprovalStatus") == "Approved"]
            package = max(approved, key=lambda r: int(r["ModelPackageVersion"]), default=None)
        else:
            package = next((r for r in records if int(r.get("ModelPackageVersion", -1)) == pin.version), None)
        if package is None:
            return {}, f"{pin.label()} is not in the local registry {self.root}"
        uri = _statistics_uri(package)
        if not uri or not uri.startswith("file:"):
            return {}, f"{pin.label()} has no local ModelQuality statistics"
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
        try:
            return quality_figures(json.loads(path.read_text(encoding="utf-8"))), None
        except (OSError, json.JSONDecodeError) as exc:
            return {}, f"{path} cannot be read: {exc}"


@dataclass(frozen=True)
class SageMakerMetrics:
    sagemaker: Any
    s3: Any

    def metrics(self, pin: ModelPin) -> tuple[dict[str, float | None], str | None]:
        if pin.version is None:
            return {}, f"{pin.label()}: the version is chosen at deploy time; pin one to compare"
        try:
            listed = self.sagemaker.list_model_packages(ModelPackageGroupName=pin.group, MaxResults=100)
            summary = next(
                (s for s in listed["ModelPackageSummaryList"] if s.get("ModelPackageVersion") == pin.version), None
            )
            if summary is None:
                return {}, f"{pin.label()} is not among the group's newest 100 versions"
            package = self.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            uri = _statistics_uri(package)
            if not uri:
                return {}, f"{pin.label()} has no ModelQuality statistics"
            parsed = urllib.parse.urlparse(uri)
            body = self.s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
            return quality_figures(json.loads(body)), None
        except Exception as exc:  # a diff shows what it could not read; it never fails on it
            return {}, f"{pin.label()}: {type(exc).__name__}: {exc}"


def model_change(
    stack: str, base: Mapping[str, Any], head: Mapping[str, Any], source: MetricsSource
) -> ModelChange | None:
    """The model change of one stack between two configs, with both versions' figures; None when unchanged."""
    before, after = registry_pin(base), registry_pin(head)
    if before == after or (before is None and after is None):
        return None
    change = ModelChange(stack, before, after)
    for side, pin in (("before", before), ("after", after)):
        if pin is None:
            continue
        figures, why = source.metrics(pin)
        change.metrics[side] = figures
        if why:
            change.notes.append(why)
    return change


def render(change: ModelChange) -> list[str]:
    a = change.before.label() if change.before else "(not from the registry)"
    b = change.after.label() if change.after else "(not from the registry)"
    lines = [f"#### Model: {a} -> {b}", "", f"| held-out metric | {a} | {b} |", "|---|---|---|"]
    for name in METRICS:
        values = [change.metrics.get(side, {}).get(name) for side in ("before", "after")]
        cells = ["-" if v is None else f"{v:.4f}" for v in values]
        delta = ""
        if None not in values:
            delta = f" ({values[1] - values[0]:+.4f})"  # type: ignore[operator]
        lines.append(f"| {name.replace('_', ' ')} | {cells[0]} | {cells[1]}{delta} |")
    lines += [""] + [f"- {note}" for note in change.notes] + ([""] if change.notes else [])
    return lines
