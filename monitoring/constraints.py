"""Model Monitor's constraints.json: suggested from baseline statistics, parsed into typed settings.

The defaults are the ones AWS documents for the built-in analyzer (model-monitor-byoc-constraints):
both thresholds of the type and domain checks 1.0, distribution comparison enabled with threshold 0.1,
the Robust method for numbers and L-infinity for categories.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.statistics import (
    NUMERIC_TYPES,
    DatasetProfile,
    NumericAccumulator,
    StringAccumulator,
)

ENABLED = "Enabled"
DISABLED = "Disabled"
COMPARISON_METHODS = ("Simple", "Robust")
CATEGORICAL_DRIFT_METHODS = ("LInfinity", "ChiSquared")

DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": ENABLED,
    "emit_metrics": ENABLED,
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": ENABLED,
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}

MAX_DOMAIN_SIZE = 50
"""A string feature gets a ``domains`` constraint only when it has at most this many distinct values."""
MAX_DOMAIN_RATIO = 0.1
"""... and when distinct values are at most this share of its present values (a real category, not an id)."""


def suggest_constraints(profile: DatasetProfile) -> dict[str, Any]:
    """Constraints the baseline satisfies: completeness, non-negativity, small string domains."""
    features: list[dict[str, Any]] = []
    for acc in profile.features:
        total = acc.num_present + acc.num_missing
        entry: dict[str, Any] = {
            "name": acc.name,
            "inferred_type": acc.inferred_type,
            "completeness": (acc.num_present / total) if total else 0.0,
        }
        if isinstance(acc, NumericAccumulator) and acc.inferred_type in NUMERIC_TYPES:
            entry["num_constraints"] = {"is_non_negative": bool(acc.n_numbers and acc.minimum >= 0)}
        elif isinstance(acc, StringAccumulator) and acc.counts:
            distinct = len(acc.counts)
            if distinct <= MAX_DOMAIN_SIZE and distinct <= max(1, MAX_DOMAIN_RATIO * acc.num_present):
                entry["string_constraints"] = {"domains": sorted(acc.counts)}
        features.append(entry)
    return {"version": 0, "features": features, "monitoring_config": _deep_copy(DEFAULT_MONITORING_CONFIG)}


def _deep_copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (_deep_copy(v) if isinstance(v, dict) else v) for k, v in doc.items()}


@dataclass(frozen=True)
class MonitoringConfig:
    """The ``monitoring_config`` block of constraints.json, validated."""

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    perform_comparison: bool = True
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"


@dataclass(frozen=True)
class FeatureConstraint:
    """One feature of constraints.json."""

    name: str
    inferred_type: str
    completeness: float | None = None
    is_non_negative: bool | None = None
    domains: tuple[str, ...] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Constraints:
    features: tuple[FeatureConstraint, ...]
    config: MonitoringConfig


def _flag(value: Any, where: str) -> bool:
    if value in (ENABLED, DISABLED):
        return value == ENABLED
    raise ValueError(f"constraints.json: {where} is {value!r}; allowed: 'Enabled' or 'Disabled'")


def _number(value: Any, where: str, low: float = 0.0, high: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= float(value) <= high:
        raise ValueError(f"constraints.json: {where} is {value!r}; allowed: a number in [{low}, {high}]")
    return float(value)


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"constraints.json: {where} is {value!r}; allowed: {', '.join(allowed)}")
    return str(value)


def parse_monitoring_config(doc: Mapping[str, Any] | None) -> MonitoringConfig:
    """Validate ``monitoring_config``; absent keys take the documented defaults."""
    doc = doc or {}
    dist = doc.get("distribution_constraints", {}) or {}
    d = DEFAULT_MONITORING_CONFIG
    dd = d["distribution_constraints"]
    # AWS's own schema page spells it "comparion_method"; accept that spelling when reading.
    method = dist.get("comparison_method", dist.get("comparion_method", dd["comparison_method"]))
    return MonitoringConfig(
        evaluate_constraints=_flag(doc.get("evaluate_constraints", d["evaluate_constraints"]), "evaluate_constraints"),
        emit_metrics=_flag(doc.get("emit_metrics", d["emit_metrics"]), "emit_metrics"),
        datatype_check_threshold=_number(
            doc.get("datatype_check_threshold", d["datatype_check_threshold"]),
            "datatype_check_threshold",
            0,
            1,
        ),
        domain_content_threshold=_number(
            doc.get("domain_content_threshold", d["domain_content_threshold"]),
            "domain_content_threshold",
            0,
            1,
        ),
        perform_comparison=_flag(
            dist.get("perform_comparison", dd["perform_comparison"]),
            "distribution_constraints.perform_comparison",
        ),
        comparison_threshold=_number(
            dist.get("comparison_threshold", dd["comparison_threshold"]),
            "distribution_constraints.comparison_threshold",
            0,
            1,
        ),
        comparison_method=_choice(method, "distribution_constraints.comparison_method", COMPARISON_METHODS),
        categorical_comparison_threshold=_number(
            dist.get("categorical_comparison_threshold", dd["categorical_comparison_threshold"]),
            "distribution_constraints.categorical_comparison_threshold",
            0,
            1,
        ),
        categorical_drift_method=_choice(
            dist.get("categorical_drift_method", dd["categorical_drift_method"]),
            "distribution_constraints.categorical_drift_method",
            CATEGORICAL_DRIFT_METHODS,
        ),
    )


def parse_constraints(doc: Mapping[str, Any]) -> Constraints:
    """Parse constraints.json (ours or the built-in analyzer's)."""
    features_doc = doc.get("features")
    if not isinstance(features_doc, list):
        raise ValueError("constraints.json: expected a 'features' list at the top level")
    features: list[FeatureConstraint] = []
    for i, feat in enumerate(features_doc):
        if not isinstance(feat, dict) or not isinstance(feat.get("name"), str):
            raise ValueError(f"constraints.json: features[{i}] must be an object with a string 'name'")
        name = feat["name"]
        completeness = feat.get("completeness")
        if completeness is not None:
            completeness = _number(completeness, f"feature {name!r} completeness", 0, 1)
        overrides = feat.get("monitoringConfigOverrides", {}) or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"constraints.json: feature {name!r} monitoringConfigOverrides must be an object")
        for key in ("comparison_threshold", "categorical_comparison_threshold"):
            if key in overrides:
                _number(overrides[key], f"feature {name!r} monitoringConfigOverrides.{key}", 0, 1)
        domains = feat.get("string_constraints", {}).get("domains")
        features.append(
            FeatureConstraint(
                name=name,
                inferred_type=str(feat.get("inferred_type", "Unknown")),
                completeness=completeness,
                is_non_negative=feat.get("num_constraints", {}).get("is_non_negative"),
                domains=tuple(str(v) for v in domains) if isinstance(domains, list) else None,
                overrides=overrides,
            )
        )
    return Constraints(features=tuple(features), config=parse_monitoring_config(doc.get("monitoring_config")))
