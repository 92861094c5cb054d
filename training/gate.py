"""The pipeline's evaluate and condition steps: the candidate against the champion, on the same held-out data.

`evaluate_models` scores the candidate's exported graph and the champion's (the model version approved now)
on the same `validation` rows, each fed through its own manifest: AUC, accuracy, log loss, per-class
precision and recall, single-row latency of the graph, and the candidate's int8 minus fp32 figures. With a
sensitive attribute (a column of the held-out data) it adds the fairness figures of the candidate:
demographic parity difference (largest minus smallest rate of predicting the positive class across groups),
equal opportunity difference (the same for the true positive rate, over groups with positives) and per-group
metrics.

A regression model (`task: regression` in its manifest) is scored by RMSE, MAE and R2 instead (int8 minus fp32
as an RMSE, MAE and R2 delta); the gate then compares those with the champion: RMSE and MAE may grow by at most a
fraction of the champion's (`max_rmse_increase`, `max_mae_increase`, relative, so one setting fits any target
unit), R2 may fall by at most `max_r2_drop` and must reach `min_r2`. Fairness needs a classification model.

A pruned candidate (training/pruning.py; evaluation.json `pruning`) is also held to what pruning cost it against
the same model unpruned: accuracy may fall by at most `max_pruning_accuracy_drop` (regression: RMSE may grow by
at most `max_pruning_rmse_increase` of the unpruned RMSE); the check records the measured graph speedup.

`decide` turns that evaluation into the gate's decision under explicit thresholds (`GateThresholds`, from
the stack's settings): the candidate passes when it is not worse than the champion beyond each tolerance,
meets the absolute floors, and meets the fairness limits. Without a champion (the first model) only the
floors and the fairness limits apply, and the record says so. The decision, every check with its numbers,
and why, go to `gate.json`; the register step registers only a candidate whose decision is `pass`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from training.errors import TrainingInputError
from training.evaluation import classification_metrics, regression_metrics
from training.model_files import CATEGORICAL_INPUT, NUMERIC_INPUT, OUTPUT, PREDICTIONS_OUTPUT

GATE_FILE = "gate.json"
LATENCY_ROWS = 200
PASS = "pass"
FAIL = "fail"


@dataclass(frozen=True)
class GateThresholds:
    """The gate's limits. Drops and increases are candidate minus champion; floors apply to the candidate."""

    max_auc_drop: float = 0.01
    max_accuracy_drop: float = 0.02
    max_log_loss_increase: float = 0.05
    min_auc: float = 0.5
    min_accuracy: float = 0.5
    max_demographic_parity_difference: float = 0.2
    max_equal_opportunity_difference: float = 0.2
    max_rmse_increase: float = 0.05
    """Regression: the candidate's RMSE may exceed the champion's by at most this fraction of the champion's."""
    max_mae_increase: float = 0.05
    """Regression: the same for MAE."""
    max_r2_drop: float = 0.02
    """Regression: the candidate's R2 may be at most this much below the champion's."""
    min_r2: float = 0.0
    """Regression: the lowest R2 a candidate may have (0: no better than predicting the mean)."""
    max_pruning_accuracy_drop: float = 0.02
    """A pruned candidate (evaluation.json `pruning`): its accuracy may be at most this much below the same model
    before pruning."""
    max_pruning_rmse_increase: float = 0.05
    """A pruned regression candidate: its RMSE may exceed the unpruned model's by at most this fraction of it."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise TrainingInputError(f"gate threshold {name} is {value!r}; allowed: a number in [0, 1]")


@dataclass(frozen=True)
class ModelInputs:
    """How to feed one model directory's graph, from its manifest.json."""

    directory: Path
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[str, ...]
    target: str
    fp32: Path
    int8: Path | None
    """None where the manifest has no int8 graph (`files.int8: null`, e.g. a packaged tree ensemble)."""
    regression: bool = False
    """`task: regression`: no classes, output `predictions` in the target's units."""

    @property
    def output(self) -> str:
        return PREDICTIONS_OUTPUT if self.regression else OUTPUT


def read_model(directory: Path) -> ModelInputs:
    """The manifest of a model directory (docs/model-contract.md); errors name the file and the key."""
    path = directory / "manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingInputError(f"model directory {directory} has no manifest.json (an incomplete model)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingInputError(f"{path} is not valid JSON: {exc}") from None
    try:
        features = doc["features"]
        numeric = [f["name"] for f in sorted((f for f in features if f["type"] == "numeric"), key=lambda f: f["index"])]
        categorical = [
            f["name"] for f in sorted((f for f in features if f["type"] == "categorical"), key=lambda f: f["index"])
        ]
        regression = doc.get("task") == "regression"
        classes = () if regression else tuple(str(c) for c in doc["classes"])
        files = doc["files"]
        return ModelInputs(
            directory,
            tuple(numeric),
            tuple(categorical),
            classes,
            str(doc["target"]),
            directory / files["fp32"],
            directory / files["int8"] if files.get("int8") is not None else None,
            regression,
        )
    except (KeyError, TypeError) as exc:
        raise TrainingInputError(f"{path}: missing or malformed key {exc}; see docs/model-contract.md") from None


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(model: ModelInputs, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in (*model.numeric, *model.categorical) if c not in frame.columns]
    if missing:
        raise TrainingInputError(
            f"the held-out data lacks feature column(s) {missing[:10]} that the model in {model.directory} needs"
        )
    feed = {NUMERIC_INPUT: frame[list(model.numeric)].to_numpy(dtype=np.float32)}
    if model.categorical:
        cells = frame[list(model.categorical)].astype(object)
        feed[CATEGORICAL_INPUT] = cells.where(cells.notna(), "").astype(str).to_numpy(dtype=object)
    return feed


def probabilities(model: ModelInputs, frame: pd.DataFrame, graph: Path | None = None) -> np.ndarray:
    session = _session(graph or model.fp32)
    (out,) = session.run([model.output], _feed(model, frame))
    return np.asarray(out, dtype=np.float64)


def single_row_latency_ms(model: ModelInputs, frame: pd.DataFrame) -> float:
    """Median milliseconds of one single-row prediction of the fp32 graph (a figure for the report)."""
    session = _session(model.fp32)
    feed = _feed(model, frame.head(LATENCY_ROWS))
    times: list[float] = []
    for i in range(len(frame.head(LATENCY_ROWS))):
        row = {k: v[i : i + 1] for k, v in feed.items()}
        started = time.perf_counter()
        session.run([model.output], row)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)) if times else math.nan


def _targets(model: ModelInputs, frame: pd.DataFrame) -> np.ndarray:
    """A regression model's held-out targets as numbers; a cell that is not a finite number is an error."""
    if model.target not in frame.columns:
        raise TrainingInputError(f"the held-out data has no target column {model.target!r}")
    numbers = cast(pd.Series, pd.to_numeric(frame[model.target], errors="coerce"))
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.argmin(finite))
        raise TrainingInputError(
            f"the held-out data's target {model.target!r} has {frame[model.target].iloc[row]!r} in row {row}, not a "
            f"finite number; the regression model in {model.directory} needs a number in every row"
        )
    return values


def _scores(model: ModelInputs, frame: pd.DataFrame, graph: Path | None = None) -> dict[str, float]:
    """auc, accuracy, log_loss of a classifier, or rmse, mae, r2 of a regressor, on the held-out rows."""
    p = probabilities(model, frame, graph)
    if model.regression:
        return regression_metrics(p, _targets(model, frame))
    return classification_metrics(p.astype(np.float32), _labels(model, frame))


def _labels(model: ModelInputs, frame: pd.DataFrame) -> np.ndarray:
    if model.target not in frame.columns:
        raise TrainingInputError(f"the held-out data has no target column {model.target!r}")
    text = frame[model.target].astype(str).str.strip()
    unknown = sorted(set(text) - set(model.classes))
    if unknown:
        raise TrainingInputError(
            f"the held-out data's target {model.target!r} has class(es) {unknown[:5]} the model in "
            f"{model.directory} does not know (its classes: {list(model.classes)})"
        )
    lookup = {c: i for i, c in enumerate(model.classes)}
    return text.map(lookup).to_numpy(dtype=np.int64)


def _per_class(p: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    predicted = p.argmax(axis=1)
    out: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(classes):
        tp = int(((predicted == k) & (labels == k)).sum())
        predicted_k, actual_k = int((predicted == k).sum()), int((labels == k).sum())
        out[name] = {
            "support": actual_k,
            "precision": tp / predicted_k if predicted_k else None,
            "recall": tp / actual_k if actual_k else None,
        }
    return out


def _metrics(model: ModelInputs, frame: pd.DataFrame) -> dict[str, Any]:
    if model.regression:
        metrics: dict[str, Any] = dict(_scores(model, frame))
        metrics["latency_ms_single_row"] = single_row_latency_ms(model, frame)
        return metrics
    labels = _labels(model, frame)
    p = probabilities(model, frame)
    metrics = dict(classification_metrics(p.astype(np.float32), labels))
    metrics["per_class"] = _per_class(p, labels, model.classes)
    metrics["latency_ms_single_row"] = single_row_latency_ms(model, frame)
    return metrics


def _pruning(model: ModelInputs) -> dict[str, Any] | None:
    """What pruning cost the candidate, from the `pruning` section training wrote into its evaluation.json (the
    unpruned model exists only there): accuracy drop, or for regression the relative RMSE increase, and the
    measured speedup of the exported graph. None when the model was not pruned."""
    path = model.directory / "evaluation.json"
    try:
        facts = json.loads(path.read_text(encoding="utf-8")).get("pruning")
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise TrainingInputError(f"{path} is not a JSON object: {exc}") from None
    if facts is None:
        return None
    try:
        before, after = facts["unpruned"], facts["pruned"]
        out: dict[str, Any] = {
            "fraction": facts["fraction"],
            "widths_before": facts["widths_before"],
            "widths_after": facts["widths_after"],
            "speedup": facts["latency"]["speedup"],
        }
        if model.regression:
            rmse = float(before["rmse"])
            out["rmse_increase"] = (float(after["rmse"]) - rmse) / rmse if rmse > 0 else math.inf
        else:
            out["accuracy_drop"] = float(before["accuracy"]) - float(after["accuracy"])
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingInputError(f"{path}: malformed 'pruning' section ({exc!r}); see docs/model-contract.md") from None


def _pruning_checks(candidate: Mapping[str, Any], thresholds: GateThresholds) -> list[dict[str, Any]]:
    pruning = candidate.get("pruning")
    if pruning is None:
        return []
    if "rmse_increase" in pruning:
        value, limit = _number(pruning["rmse_increase"]), thresholds.max_pruning_rmse_increase
        name, what = "pruning_rmse_increase", "RMSE increase (relative) from pruning"
    else:
        value, limit = _number(pruning["accuracy_drop"]), thresholds.max_pruning_accuracy_drop
        name, what = "pruning_accuracy_drop", "accuracy drop from pruning"
    return [
        _check(
            name,
            value is not None and value <= limit + 1e-12,
            value,
            limit,
            f"{what} {value if value is None else round(value, 4)} at fraction {pruning['fraction']} "
            f"(widths {pruning['widths_before']} -> {pruning['widths_after']}, graph speedup "
            f"{pruning['speedup']:.2f}x), allowed {limit}",
        )
    ]


def fairness(
    predicted_positive: np.ndarray, actual_positive: np.ndarray, groups: pd.Series, attribute: str
) -> dict[str, Any]:
    """Demographic parity and equal opportunity differences (largest minus smallest across groups)."""
    per_group: dict[str, dict[str, float | int | None]] = {}
    values = groups.astype(object).where(groups.notna(), "").astype(str).to_numpy()
    for group in sorted(set(values)):
        member = values == group
        positives = int((actual_positive & member).sum())
        per_group[group] = {
            "rows": int(member.sum()),
            "positive_prediction_rate": float(predicted_positive[member].mean()),
            "true_positive_rate": float((predicted_positive & actual_positive & member).sum() / positives)
            if positives
            else None,
            "accuracy": float((predicted_positive[member] == actual_positive[member]).mean()),
        }
    rates = [cast(float, g["positive_prediction_rate"]) for g in per_group.values()]
    tprs = [cast(float, g["true_positive_rate"]) for g in per_group.values() if g["true_positive_rate"] is not None]
    return {
        "attribute": attribute,
        "groups": per_group,
        "demographic_parity_difference": max(rates) - min(rates) if len(rates) > 1 else 0.0,
        "equal_opportunity_difference": max(tprs) - min(tprs) if len(tprs) > 1 else 0.0,
    }


def evaluate_models(
    candidate_dir: Path,
    champion_dir: Path | None,
    held_out: pd.DataFrame,
    *,
    sensitive_attribute: str | None = None,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Both models' figures on the same rows (`held_out` holds the features, the target and any attribute)."""
    if held_out.empty:
        raise TrainingInputError("the held-out data has no rows; the gate needs rows to compare the models on")
    candidate = read_model(candidate_dir)
    result: dict[str, Any] = {"rows": len(held_out), "candidate": _metrics(candidate, held_out), "champion": None}
    result["candidate"]["int8_minus_fp32"] = None  # the model has no int8 graph (docs/model-contract.md)
    if candidate.int8 is not None:
        int8 = _scores(candidate, held_out, candidate.int8)
        result["candidate"]["int8_minus_fp32"] = {k: int8[k] - result["candidate"][k] for k in int8}
    pruning = _pruning(candidate)
    if pruning is not None:
        result["candidate"]["pruning"] = pruning
    if champion_dir is not None:
        champion = read_model(champion_dir)
        if champion.regression != candidate.regression:
            kinds = {True: "regression", False: "classification"}
            raise TrainingInputError(
                f"the candidate is a {kinds[candidate.regression]} model but the champion in {champion_dir} is a "
                f"{kinds[champion.regression]} model; the gate compares models of one task"
            )
        result["champion"] = _metrics(champion, held_out)
    if sensitive_attribute is not None and candidate.regression:
        raise TrainingInputError(
            f"sensitive attribute {sensitive_attribute!r}: fairness needs a classification model, the candidate is a "
            f"regression model; leave the sensitive attribute unset"
        )
    if sensitive_attribute is not None:
        if sensitive_attribute not in held_out.columns:
            raise TrainingInputError(
                f"sensitive attribute {sensitive_attribute!r} is not a column of the held-out data; its columns are "
                f"{list(held_out.columns)[:20]}"
            )
        positive = positive_class if positive_class is not None else candidate.classes[-1]
        if positive not in candidate.classes:
            raise TrainingInputError(
                f"positive class {positive!r} is not a class of the candidate; allowed: {list(candidate.classes)}"
            )
        k = candidate.classes.index(positive)
        predicted = probabilities(candidate, held_out).argmax(axis=1) == k
        actual = _labels(candidate, held_out) == k
        result["fairness"] = {
            "positive_class": positive,
            **fairness(predicted, actual, cast(pd.Series, held_out[sensitive_attribute]), sensitive_attribute),
        }
    return result


def _check(name: str, passed: bool, value: float | None, limit: float, why: str) -> dict[str, Any]:
    return {"check": name, "passed": passed, "value": value, "limit": limit, "why": why}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def decide(evaluation: Mapping[str, Any], thresholds: GateThresholds) -> dict[str, Any]:
    """The gate's record: `decision` pass or fail, each check with its value, limit and reason."""
    candidate = evaluation["candidate"]
    champion = evaluation.get("champion")
    if "rmse" in candidate:
        checks = _regression_checks(candidate, champion, thresholds) + _pruning_checks(candidate, thresholds)
        return _record(checks, evaluation, thresholds)
    checks: list[dict[str, Any]] = []
    auc, accuracy, loss = candidate.get("auc"), candidate.get("accuracy"), candidate.get("log_loss")
    for name, value in (("auc", auc), ("accuracy", accuracy), ("log_loss", loss)):
        if not _finite(value):
            checks.append(_check(f"{name}_defined", False, None, 0.0, f"the candidate's {name} is undefined"))
    if _finite(auc):
        checks.append(_check("min_auc", auc >= thresholds.min_auc, auc, thresholds.min_auc, f"AUC {auc:.4f} >= floor"))
    if _finite(accuracy):
        checks.append(
            _check(
                "min_accuracy",
                accuracy >= thresholds.min_accuracy,
                accuracy,
                thresholds.min_accuracy,
                f"accuracy {accuracy:.4f} >= floor",
            )
        )
    if champion is not None:
        comparisons = (
            ("auc_drop", "auc", thresholds.max_auc_drop, 1.0),
            ("accuracy_drop", "accuracy", thresholds.max_accuracy_drop, 1.0),
            ("log_loss_increase", "log_loss", thresholds.max_log_loss_increase, -1.0),
        )
        for name, metric, limit, sign in comparisons:
            ours, theirs = candidate.get(metric), champion.get(metric)
            if not (_finite(ours) and _finite(theirs)):
                continue
            worse = sign * (theirs - ours)  # how much worse the candidate is (negative: better)
            checks.append(
                _check(
                    name,
                    worse <= limit + 1e-12,
                    worse,
                    limit,
                    f"candidate {metric} {ours:.4f} vs champion {theirs:.4f}: worse by {worse:+.4f}, allowed {limit}",
                )
            )
    checks += _pruning_checks(candidate, thresholds)
    fair = evaluation.get("fairness")
    if fair is not None:
        for name, key, limit in (
            ("demographic_parity", "demographic_parity_difference", thresholds.max_demographic_parity_difference),
            ("equal_opportunity", "equal_opportunity_difference", thresholds.max_equal_opportunity_difference),
        ):
            value = float(fair[key])
            checks.append(
                _check(
                    name,
                    value <= limit + 1e-12,
                    value,
                    limit,
                    f"{key.replace('_', ' ')} over {fair['attribute']!r} is {value:.4f}, allowed {limit}",
                )
            )
    return _record(checks, evaluation, thresholds)


def _number(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _regression_checks(
    candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, thresholds: GateThresholds
) -> list[dict[str, Any]]:
    """R2 floor; with a champion, RMSE and MAE growth relative to the champion's and the R2 drop."""
    checks: list[dict[str, Any]] = []
    for name in ("rmse", "mae", "r2"):
        if not _finite(candidate.get(name)):
            checks.append(_check(f"{name}_defined", False, None, 0.0, f"the candidate's {name} is undefined"))
    r2 = _number(candidate.get("r2"))
    if r2 is not None:
        checks.append(_check("min_r2", r2 >= thresholds.min_r2, r2, thresholds.min_r2, f"R2 {r2:.4f} >= floor"))
    if champion is None:
        return checks
    for name, metric, limit in (
        ("rmse_increase", "rmse", thresholds.max_rmse_increase),
        ("mae_increase", "mae", thresholds.max_mae_increase),
    ):
        ours, theirs = _number(candidate.get(metric)), _number(champion.get(metric))
        if ours is None or theirs is None:
            continue
        # Relative to the champion's error, so the limit means the same whatever the target's unit.
        worse = (ours - theirs) / theirs if theirs > 0 else (0.0 if ours <= theirs else math.inf)
        checks.append(
            _check(
                name,
                worse <= limit + 1e-12,
                worse,
                limit,
                f"candidate {metric} {ours:.4f} vs champion {theirs:.4f}: {worse:+.2%} relative, allowed +{limit:.0%}",
            )
        )
    ours, theirs = r2, _number(champion.get("r2"))
    if ours is not None and theirs is not None:
        drop = theirs - ours
        checks.append(
            _check(
                "r2_drop",
                drop <= thresholds.max_r2_drop + 1e-12,
                drop,
                thresholds.max_r2_drop,
                f"candidate R2 {ours:.4f} vs champion {theirs:.4f}: worse by {drop:+.4f}, "
                f"allowed {thresholds.max_r2_drop}",
            )
        )
    return checks


def _record(checks: list[dict[str, Any]], evaluation: Mapping[str, Any], thresholds: GateThresholds) -> dict[str, Any]:
    champion = evaluation.get("champion")
    failed = [c["check"] for c in checks if not c["passed"]]
    return {
        "decision": FAIL if failed else PASS,
        "failed_checks": failed,
        "champion_compared": champion is not None,
        "note": None
        if champion is not None
        else "no approved champion: the candidate is held to the floors and fairness limits only",
        "thresholds": asdict(thresholds),
        "checks": checks,
        "evaluation": evaluation,
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_record(record: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_json_safe(dict(record)), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_record(path: Path) -> dict[str, Any]:
    """A gate.json; a missing or malformed one is an error naming the file (never read as a pass)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingInputError(f"gate record {path} does not exist; run the evaluate step first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingInputError(f"gate record {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("decision") not in (PASS, FAIL):
        raise TrainingInputError(f"gate record {path} has no 'decision' of {PASS!r} or {FAIL!r}")
    return doc
