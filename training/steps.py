"""The lifecycle's steps around training, as commands of the training image (`python -m training <step>`).

- `validate`: `training.validate_data` over the ml root's channels, against the champion's baseline folder
  when one is given; writes the report; exit 1 when a check failed (the run stops there), 2 on an error.
- `evaluate`: `training.gate` scores the candidate and the champion on the `validation` channel and writes
  the gate record with the decision; exit 0 whatever the decision (the pipeline's condition step reads
  `decision` from the record), 1 on an error. With `MLFLOW_TRACKING_URI` set it also records the candidate's
  experiment-tracking run (training/tracking.py) and writes the run id into the record.

- `champion`: `training.champion` resolves the champion of a run (the pinned prefix, else the group's latest
  Approved version) into `champion.json`; exit 1 when the approved version cannot be a champion.

Validate and evaluate keep to the same folder contract locally and in a SageMaker processing job (`--ml-root` holds
`input/data/<channel>/`; other folders are arguments), and both write their JSON atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from training.errors import TrainingInputError

LOG = logging.getLogger("training")
OPTIONAL_HELP = (
    "a champion folder without its files (manifest.json, baseline/statistics.json) means no approved model yet; "
    "without this flag that is an error"
)


def _optional(path: Path | None, marker: str, enabled: bool) -> Path | None:
    """`path`, or None where `--optional-champion` is set and the folder lacks `marker` (the pipeline's
    no-champion prefix holds only a README)."""
    if path is not None and enabled and not (path / marker).is_file():
        LOG.info("no approved champion at %s (no %s): checking the candidate on its own", path, marker)
        return None
    return path


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from training.gate import GateThresholds

    validate = sub.add_parser("validate", help="check the training data (and against the champion's baseline)")
    validate.add_argument("--ml-root", type=Path, required=True, help="holds input/data/train (and validation)")
    validate.add_argument("--target", default="label", help="the label column (default label)")
    validate.add_argument("--baseline", type=Path, help="the champion's baseline folder (statistics, constraints)")
    validate.add_argument("--max-drift-distance", type=float, help="override the constraints' drift threshold")
    validate.add_argument("--report", type=Path, required=True, help="where to write the validation report JSON")
    validate.add_argument("--optional-champion", action="store_true", help=OPTIONAL_HELP)

    evaluate = sub.add_parser("evaluate", help="score candidate and champion on held-out data; the gate decision")
    evaluate.add_argument("--ml-root", type=Path, required=True, help="holds input/data/validation")
    evaluate.add_argument("--candidate", type=Path, required=True, help="the candidate's model directory")
    evaluate.add_argument("--champion", type=Path, help="the approved model's directory (none: first model)")
    evaluate.add_argument("--sensitive-attribute", help="column of the held-out data to compute fairness over")
    evaluate.add_argument("--positive-class", help="the favourable class for fairness (default: the last class)")
    evaluate.add_argument("--record", type=Path, required=True, help="where to write the gate record JSON")
    evaluate.add_argument("--optional-champion", action="store_true", help=OPTIONAL_HELP)
    evaluate.add_argument(
        "--run-name",
        help="name of the experiment-tracking run (with MLFLOW_TRACKING_URI set; default: mlflow's generated one)",
    )
    for f in dataclasses.fields(GateThresholds):
        evaluate.add_argument(
            f"--{f.name.replace('_', '-')}", type=float, default=f.default, help=f"gate threshold (default {f.default})"
        )
    add_champion_parser(sub)


def add_champion_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    champion = sub.add_parser("champion", help="resolve the run's champion: pinned, else the latest approved version")
    champion.add_argument("--group", required=True, help="the model package group")
    champion.add_argument("--pinned", default="latest-approved", help="an S3 prefix, or latest-approved (default)")
    champion.add_argument("--no-champion", required=True, help="the S3 prefix meaning 'no approved model yet'")
    champion.add_argument("--region", help="AWS region of the group (default: the environment's)")
    champion.add_argument("--record", type=Path, required=True, help="where to write champion.json")


def champion_command(args: argparse.Namespace) -> int:
    import boto3

    from training.champion import resolve, write_champion

    try:
        client = boto3.client("sagemaker", region_name=args.region)
        record = resolve(args.pinned, args.group, args.no_champion, client)
    except TrainingInputError as exc:
        LOG.error("champion: %s", exc)
        return 1
    write_champion(record, args.record)
    LOG.info("champion: %s (%s)", record["model_data_url"], record["source"])
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from training.layout import MLRoot
    from training.validate_data import validate, write_report

    try:
        baseline = _optional(args.baseline, "statistics.json", args.optional_champion)
        report = validate(MLRoot(args.ml_root), args.target, baseline, max_drift_distance=args.max_drift_distance)
    except TrainingInputError as exc:
        LOG.error("validate: %s", exc)
        return 2
    write_report(report, args.report)
    if not report.passed:
        LOG.error("validate: the training data failed: %s (report %s)", report.summary(), args.report)
        return 1
    LOG.info("validate: %s (report %s)", report.summary(), args.report)
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from training.data import read_channel
    from training.gate import GateThresholds, decide, evaluate_models, write_record
    from training.layout import MLRoot
    from training.tracking import NO_RUN, RUN_ID_KEY, TrackingTarget, record_run

    try:
        thresholds = GateThresholds(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GateThresholds)})
        held_out = read_channel(MLRoot(args.ml_root), "validation")
        evaluation = evaluate_models(
            args.candidate,
            _optional(args.champion, "manifest.json", args.optional_champion),
            held_out,
            sensitive_attribute=args.sensitive_attribute,
            positive_class=args.positive_class,
        )
    except TrainingInputError as exc:
        LOG.error("evaluate: %s", exc)
        return 1
    record = decide(evaluation, thresholds)
    # Experiment tracking (training/tracking.py): with MLFLOW_TRACKING_URI set, one run for the candidate with
    # its training parameters, per-epoch metrics, this evaluation and its files; its id goes into the record
    # (the Register step copies it into the model package). A failure there is a warning, never a failed step.
    run_id = record_run(TrackingTarget.from_env(os.environ), args.candidate, run_name=args.run_name, gate_record=record)
    record[RUN_ID_KEY] = run_id or NO_RUN
    write_record(record, args.record)
    LOG.info(
        "evaluate: gate %s%s (record %s)",
        record["decision"],
        f", failed {', '.join(record['failed_checks'])}" if record["failed_checks"] else "",
        args.record,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "champion":
        return champion_command(args)
    return validate_command(args) if args.command == "validate" else evaluate_command(args)
