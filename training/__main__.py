"""Command line: `train` (what SageMaker runs), `demo-data` and `synthetic` (local layouts to train on)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from training.artifacts import write_model_directory
from training.data import load_training_data
from training.demo import write_demo_data, write_synthetic_data
from training.errors import TrainingInputError
from training.hyperparameters import load_hyperparameters
from training.layout import DEFAULT_ML_ROOT, MLRoot, load_cluster
from training.trainer import train

LOG = logging.getLogger("training")
FAILURE_LIMIT = 1000  # SageMaker keeps the first 1024 characters of the failure reason


def write_failure(ml: MLRoot, reason: str) -> None:
    """Record a one-line failure reason where SageMaker reads it (DescribeTrainingJob's FailureReason)."""
    line = " ".join(reason.split())[:FAILURE_LIMIT]
    try:
        ml.output.mkdir(parents=True, exist_ok=True)
        ml.failure.write_text(line + "\n", encoding="utf-8")
    except OSError:
        LOG.exception("could not write %s", ml.failure)
    LOG.error("training failed: %s", line)


def run_training(ml: MLRoot) -> None:
    """Read the contract's inputs, train, and (on the first host) write the model directory."""
    hp = load_hyperparameters(ml.hyperparameters)
    LOG.info("hyperparameters: %s", hp.as_json())
    cluster = load_cluster(ml.resource_config)
    data = load_training_data(ml, hp.target, hp.max_categories, hp.categorical_columns)
    LOG.info("data fingerprint %s", data.fingerprint)
    result = train(data, hp, cluster, ml)
    if cluster.rank == 0:
        write_model_directory(data, hp, result, ml.model)
        LOG.info("model written to %s", ml.model)
    else:
        LOG.info("host %s (rank %d) done; the first host writes the model", cluster.current_host, cluster.rank)


def train_command(ml: MLRoot) -> int:
    ml.failure.unlink(missing_ok=True)
    try:
        run_training(ml)
    except TrainingInputError as exc:
        write_failure(ml, str(exc))
        return 1
    except Exception as exc:
        traceback.print_exc()
        write_failure(ml, f"{type(exc).__name__}: {exc}")
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    root_help = f"the SageMaker ml root (default {DEFAULT_ML_ROOT})"
    train = sub.add_parser("train", help="train per the SageMaker training contract")
    train.add_argument("--ml-root", type=Path, default=DEFAULT_ML_ROOT, help=root_help)
    demo = sub.add_parser("demo-data", help="lay out the breast cancer demo data and default hyperparameters")
    demo.add_argument("--ml-root", type=Path, required=True, help="where to lay out input/")
    demo.add_argument("--seed", type=int, default=42)
    synthetic = sub.add_parser("synthetic", help="lay out seeded synthetic data (numeric and categorical)")
    synthetic.add_argument("--ml-root", type=Path, required=True, help="where to lay out input/")
    synthetic.add_argument("--rows", type=int, default=10_000)
    synthetic.add_argument("--numeric", type=int, default=8)
    synthetic.add_argument("--categorical", type=int, default=3)
    synthetic.add_argument("--classes", type=int, default=2)
    synthetic.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Our own logs at INFO; libraries (the ONNX exporter, the quantizer) only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("training").setLevel(logging.INFO)
    args = _parser().parse_args(argv)
    ml = MLRoot(args.ml_root)
    if args.command == "train":
        return train_command(ml)
    if args.command == "demo-data":
        write_demo_data(ml, seed=args.seed)
    else:
        if args.rows < 10 or args.numeric < 1 or args.categorical < 0 or args.classes < 2:
            print(
                "synthetic: need --rows >= 10, --numeric >= 1, --categorical >= 0, --classes >= 2",
                file=sys.stderr,
            )
            return 2
        write_synthetic_data(
            ml,
            args.rows,
            numeric=args.numeric,
            categorical=args.categorical,
            classes=args.classes,
            seed=args.seed,
        )
    LOG.info("laid out %s; train with: python -m training train --ml-root %s", ml.root / "input", ml.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
