"""Command line: `train` (what SageMaker runs), `demo-data` and `synthetic` (local layouts to train on), and the
lifecycle's `validate` and `evaluate` steps (training/steps.py).

`train` decides how the job runs on this host: one process on the CPU or a single GPU, else one process per
GPU (and per host) started by torchrun's launcher, as SageMaker's own PyTorch toolkit does
(sagemaker-training-toolkit, `torch_distributed.TorchDistributedRunner`). Each of those runs `worker`.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from training.errors import TrainingInputError
from training.hyperparameters import Hyperparameters, load_hyperparameters
from training.layout import DEFAULT_ML_ROOT, Cluster, MLRoot, load_cluster, load_distribution
from training.runtime import (
    FAILURE_DIR_ENV,
    CudaProbe,
    DevicePlan,
    Rendezvous,
    StopFlag,
    WorkerIdentity,
    choose_device,
    describe_collective_failure,
    probe_cuda,
    processes_per_host,
    stop_handler,
)

LOG = logging.getLogger("training")
FAILURE_LIMIT = 1000  # SageMaker keeps the first 1024 characters of the failure reason
DEVICE_ENV = "MLPLATFORM_DEVICE"
SHUTDOWN_TIMEOUT_SECONDS = 100
"""How long the launcher lets its workers finish after SIGTERM (a checkpoint and the best model) before it
kills them: inside SageMaker's 120 s between SIGTERM and SIGKILL."""


def write_failure(ml: MLRoot, reason: str) -> None:
    """Record a one-line failure reason where SageMaker reads it (DescribeTrainingJob's FailureReason)."""
    line = " ".join(reason.split())[:FAILURE_LIMIT]
    try:
        ml.output.mkdir(parents=True, exist_ok=True)
        ml.failure.write_text(line + "\n", encoding="utf-8")
    except OSError:
        LOG.exception("could not write %s", ml.failure)
    LOG.error("training failed: %s", line)


def log_environment(probe: CudaProbe, cluster: Cluster) -> None:
    import torch

    LOG.info(
        "torch %s (CUDA build %s), python %s, NVIDIA driver %s, %d CUDA device(s)%s; host %s of %d, instance type %s",
        torch.__version__,
        probe.torch_cuda or "none",
        platform.python_version(),
        probe.driver or "none",
        probe.device_count,
        f" ({', '.join(probe.devices)})" if probe.devices else "",
        cluster.current_host,
        cluster.world_size,
        cluster.instance_type or "unknown",
    )


def run_worker(ml: MLRoot, hp: Hyperparameters, identity: WorkerIdentity, plan: DevicePlan, stop: StopFlag) -> int:
    """Train as one process of the job; the first process writes the model directory."""
    import torch

    from training.artifacts import prepare_model_directory, write_model_directory
    from training.data import Sharding, load_training_data, local_exchange
    from training.trainer import train

    if hp.num_threads:
        torch.set_num_threads(hp.num_threads)
    device = torch.device("cuda", identity.local_rank) if plan.type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rendezvous: Rendezvous | None = None
    try:
        if identity.distributed:
            rendezvous = Rendezvous(
                identity,
                "nccl" if device.type == "cuda" else "gloo",
                rendezvous_timeout=hp.rendezvous_timeout_seconds,
                collective_timeout=hp.collective_timeout_seconds,
            )
        distribution = load_distribution(ml.input_data_config, "train")
        if identity.world_size > 1 and load_distribution(ml.input_data_config, "validation") != "FullyReplicated":
            raise TrainingInputError(
                "channel 'validation' must be FullyReplicated: the first process validates on all of it"
            )
        sharding = Sharding(
            rank=identity.rank,
            world=identity.world_size,
            local_rank=identity.local_rank,
            local_world=identity.local_world_size,
            host=identity.host,
            train_distribution=distribution,
        )
        data = load_training_data(
            ml,
            hp.target,
            hp.max_categories,
            hp.categorical_columns,
            sharding=sharding,
            exchange=rendezvous.exchange if rendezvous else local_exchange,
            seed=hp.seed,
            read_validation=identity.rank == 0,
            task=hp.task,
        )
        if identity.rank == 0:
            LOG.info("data fingerprint %s; %d training rows in all", data.fingerprint, data.train_rows_total)
            prepare_model_directory(data, ml.model)
        result = train(data, hp, ml, identity=identity, device=device, stop=stop)
        if identity.rank == 0:
            if result.model is None:
                LOG.warning("stopped before the first training step: there is no model to write")
            else:
                write_model_directory(data, hp, result, ml.model)
                LOG.info("model written to %s", ml.model)
        return 0
    except Exception as exc:
        if identity.distributed and _is_collective_error(exc):
            raise CollectiveFailure(describe_collective_failure(exc, identity)) from exc
        raise
    finally:
        if rendezvous is not None:
            rendezvous.close()


class CollectiveFailure(RuntimeError):
    """A collective failed because another process of the job did (its reason is the one-line message)."""


def _is_collective_error(exc: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(exc, dist.DistError):
        return True
    # gloo reports a timed-out or broken pair as a plain RuntimeError ("Application timeout caused pair
    # closure", "Connection closed by peer").
    text = str(exc).lower()
    return any(s in text for s in ("gloo", "nccl", "pair closure", "timeout", "timed out", "connection"))


def worker_command(ml: MLRoot) -> int:
    """One process started by the launcher (torchrun's environment tells its rank); reports failures to it."""
    failure_dir = os.environ.get(FAILURE_DIR_ENV)
    identity: WorkerIdentity | None = None
    try:
        hp = load_hyperparameters(ml.hyperparameters)
        cluster = load_cluster(ml.resource_config)
        identity = WorkerIdentity.from_torchrun(dict(os.environ), cluster.current_host)
        plan = DevicePlan(os.environ.get(DEVICE_ENV, "cpu"), identity.local_world_size)
        with stop_handler(StopFlag()) as stop:
            return run_worker(ml, hp, identity, plan, stop)
    except Exception as exc:
        if not isinstance(exc, TrainingInputError | CollectiveFailure):
            traceback.print_exc()
        reason = str(exc) if isinstance(exc, TrainingInputError | CollectiveFailure) else f"{type(exc).__name__}: {exc}"
        if failure_dir and identity is not None:
            Path(failure_dir, f"rank-{identity.rank:05d}").write_text(" ".join(reason.split()) + "\n", encoding="utf-8")
        LOG.error("process failed: %s", reason)
        return 1


def launch(ml: MLRoot, hp: Hyperparameters, cluster: Cluster, per_host: int, plan: DevicePlan) -> int:
    """Start `per_host` workers on this host with torchrun's launcher (static rendezvous on the first host,
    no restarts), and turn what ended them into /opt/ml/output/failure."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    failure_dir = Path(tempfile.mkdtemp(prefix="mlplatform-workers-"))
    os.environ[FAILURE_DIR_ENV] = str(failure_dir)
    os.environ[DEVICE_ENV] = plan.type
    os.environ.setdefault("OMP_NUM_THREADS", str(hp.num_threads or 1))
    if cluster.network_interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", cluster.network_interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", cluster.network_interface)
    LOG.info(
        "starting %d %s process(es) on host %s (%d of %d), %d in all; rendezvous %s:%d",
        per_host,
        plan.type,
        cluster.current_host,
        cluster.node_rank + 1,
        cluster.world_size,
        per_host * cluster.world_size,
        cluster.master_addr,
        cluster.master_port,
    )
    config = LaunchConfig(
        min_nodes=cluster.world_size,
        max_nodes=cluster.world_size,
        nproc_per_node=per_host,
        run_id="mlplatform-training",
        rdzv_backend="static",
        rdzv_endpoint=f"{cluster.master_addr}:{cluster.master_port}",
        rdzv_configs={"rank": cluster.node_rank, "timeout": hp.rendezvous_timeout_seconds},
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "training", "worker", "--ml-root", str(ml.root))
        return 0
    except SignalException as exc:
        LOG.warning("stopped by %s: the workers wrote a checkpoint and the best model so far", exc.sigval.name)
        return 0
    except ChildFailedError as exc:
        write_failure(ml, _worker_failure(exc, failure_dir, cluster))
        return 1
    finally:
        shutil.rmtree(failure_dir, ignore_errors=True)


def _worker_failure(exc: object, failure_dir: Path, cluster: Cluster) -> str:
    """The earliest reason a worker of this host wrote, else how the first failed worker ended."""
    reasons = sorted(failure_dir.glob("rank-*"), key=lambda p: (p.stat().st_mtime, p.name))
    if reasons:
        return reasons[0].read_text(encoding="utf-8").strip()
    rank, failure = exc.get_first_failure()  # type: ignore[attr-defined]
    how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with status {failure.exitcode}"
    hint = " (SIGKILL usually means the host ran out of memory)" if failure.signal_name() == "SIGKILL" else ""
    return f"training process rank {rank} (local rank {failure.local_rank}) on host {cluster.current_host} {how}{hint}"


def train_command(ml: MLRoot) -> int:
    ml.failure.unlink(missing_ok=True)
    try:
        hp = load_hyperparameters(ml.hyperparameters)
        LOG.info("hyperparameters: %s", hp.as_json())
        cluster = load_cluster(ml.resource_config)
        probe = probe_cuda()
        log_environment(probe, cluster)
        plan = choose_device(hp.device, cluster.instance_type, probe)
        per_host = processes_per_host(hp.processes_per_host, plan)
        if per_host * cluster.world_size > 1:
            return launch(ml, hp, cluster, per_host, plan)
        with stop_handler(StopFlag()) as stop:
            return run_worker(ml, hp, WorkerIdentity(host=cluster.current_host), plan, stop)
    except TrainingInputError as exc:
        write_failure(ml, str(exc))
        return 1
    except Exception as exc:
        traceback.print_exc()
        write_failure(ml, f"{type(exc).__name__}: {exc}")
        return 2


def package_command(args: argparse.Namespace) -> int:
    """`package`: exit 0 with a summary, 2 with the reason on stderr when the model or data cannot be packaged."""
    try:
        from training.package import package

        done = package(args.model, args.data, args.output, args.target)
    except ModuleNotFoundError as error:
        print(
            f"package: {error}; it runs from a checkout of this repository with the dev environment "
            f"(requirements-dev.txt: skl2onnx, onnxmltools), not in the training image",
            file=sys.stderr,
        )
        return 2
    except TrainingInputError as error:
        print(f"package: {error}", file=sys.stderr)
        return 2
    print(
        f"packaged the {done.library} model into {done.out_dir}: "
        f"validation accuracy {done.metrics['val_accuracy']:.4f}, "
        f"max abs difference to the library {done.parity:.3g} (unseen categories {done.unseen_parity:.3g})"
    )
    return 0


DEMO_TASKS = ("classification", "regression")
"""training.demo.TASKS, spelled here so building the parser does not import scikit-learn (tests compare them)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    root_help = f"the SageMaker ml root (default {DEFAULT_ML_ROOT})"
    train = sub.add_parser("train", help="train per the SageMaker training contract")
    train.add_argument("--ml-root", type=Path, default=DEFAULT_ML_ROOT, help=root_help)
    worker = sub.add_parser("worker", help="one training process (started by `train` through torchrun)")
    worker.add_argument("--ml-root", type=Path, default=DEFAULT_ML_ROOT, help=root_help)
    demo = sub.add_parser("demo-data", help="lay out the demo data (breast cancer or diabetes) and hyperparameters")
    demo.add_argument("--ml-root", type=Path, required=True, help="where to lay out input/")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--task",
        choices=DEMO_TASKS,
        default="classification",
        help="classification: breast cancer; regression: diabetes",
    )
    synthetic = sub.add_parser("synthetic", help="lay out seeded synthetic data (numeric and categorical)")
    synthetic.add_argument("--ml-root", type=Path, required=True, help="where to lay out input/")
    synthetic.add_argument("--rows", type=int, default=10_000)
    synthetic.add_argument("--numeric", type=int, default=8)
    synthetic.add_argument("--categorical", type=int, default=3)
    synthetic.add_argument("--classes", type=int, default=2)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument(
        "--task", choices=DEMO_TASKS, default="classification", help="a class label or a numeric target"
    )
    package = sub.add_parser(
        "package", help="bring your own model: convert a fitted scikit-learn/XGBoost/LightGBM classifier to a model dir"
    )
    package.add_argument("--model", type=Path, required=True, help="the fitted model, saved with joblib or pickle")
    package.add_argument("--data", type=Path, required=True, help="folder with train/ and validation/ (CSV/Parquet)")
    package.add_argument("--target", default="label", help="the label column (default label)")
    package.add_argument("--output", type=Path, required=True, help="the model directory to write")
    from training.steps import add_parsers

    add_parsers(sub)  # validate, evaluate: the lifecycle's steps around training (training/steps.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Our own logs at INFO; libraries (the ONNX exporter, the quantizer) only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("training").setLevel(logging.INFO)
    args = _parser().parse_args(argv)
    if args.command == "package":
        return package_command(args)
    if args.command in ("validate", "evaluate", "champion"):
        from training.steps import run

        return run(args)
    ml = MLRoot(args.ml_root)
    if args.command == "train":
        return train_command(ml)
    if args.command == "worker":
        return worker_command(ml)
    from training.demo import write_demo_data, write_synthetic_data  # scikit-learn's datasets: only these need it

    if args.command == "demo-data":
        write_demo_data(ml, seed=args.seed, task=args.task)
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
            task=args.task,
        )
    LOG.info("laid out %s; train with: python -m training train --ml-root %s", ml.root / "input", ml.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
