"""Data-parallel training across hosts and processes: hosts from resourceconfig.json, one process per GPU
(simulated on the CPU with `processes_per_host` and gloo on 127.0.0.1), identical replicas, sharded data,
resume after a stop, and failures that end every host quickly with the cause.

Each "host" is a `python -m training train` with its own ml root, as SageMaker starts the container on each
instance. torchrun's launcher (static rendezvous, torch/distributed/launcher/api.py) starts the workers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import torch

from training.demo import split_frame, synthetic_frame, write_layout
from training.layout import Cluster, MLRoot, load_cluster

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("algo-2", "algo-1")  # deliberately unsorted: rank comes from the sorted list
DIGEST = re.compile(r"process (\d+): final parameters sha256 ([0-9a-f]{64})")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _host_root(base: Path, host: str, hyperparameters: dict[str, str], *, rows: int = 4000, files: int = 1) -> MLRoot:
    ml = MLRoot(base / host)
    train, validation = split_frame(synthetic_frame(rows, numeric=5, categorical=2, seed=11), seed=11)
    write_layout(ml, train, validation, hyperparameters, hosts=HOSTS, current_host=host)
    if files > 1:
        (ml.channel("train") / "train.csv").unlink()
        for i in range(files):
            train.iloc[i::files].to_csv(ml.channel("train") / f"part-{i:02d}.csv", index=False)
    config = json.loads(ml.resource_config.read_text(encoding="utf-8"))
    # Loopback, so gloo binds where the test's master address is.
    ml.resource_config.write_text(json.dumps({**config, "network_interface_name": "lo"}), encoding="utf-8")
    return ml


def _env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "MLPLATFORM_MASTER_ADDR": "127.0.0.1",
        "MLPLATFORM_MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }


@contextmanager
def _hosts(roots: dict[str, MLRoot], port: int | None = None) -> Iterator[dict[str, subprocess.Popen[str]]]:
    env = _env(port or _free_port())
    processes = {
        host: subprocess.Popen(
            [sys.executable, "-m", "training", "train", "--ml-root", str(ml.root)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host, ml in roots.items()
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            for child in _workers(process.pid):
                _signal(child, signal.SIGKILL)
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)


def _finish(processes: dict[str, subprocess.Popen[str]], timeout: float = 300) -> dict[str, tuple[str, str, int]]:
    outputs: dict[str, tuple[str, str, int]] = {}
    for host, process in processes.items():
        out, err = process.communicate(timeout=timeout)
        outputs[host] = (out, err, process.returncode)
    return outputs


def _workers(pid: int) -> list[int]:
    run = subprocess.run(
        ["pgrep", "-P", str(pid), "-f", "training worker"], capture_output=True, text=True, check=False
    )
    return [int(p) for p in run.stdout.split()]


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _digests(stderr: str) -> dict[int, str]:
    return {int(rank): digest for rank, digest in DIGEST.findall(stderr)}


def _checkpoints(ml: MLRoot) -> list[Path]:
    return sorted(ml.checkpoints.glob("checkpoint-*.pt")) if ml.checkpoints.is_dir() else []


def test_rank_is_the_position_in_the_sorted_host_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLATFORM_MASTER_ADDR", raising=False)
    monkeypatch.delenv("MLPLATFORM_MASTER_PORT", raising=False)
    path = tmp_path / "resourceconfig.json"
    path.write_text(
        json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-3", "algo-1", "algo-2"], "current_instance_type": "ml.g5.xlarge"}
        )
    )
    assert load_cluster(path) == Cluster(
        current_host="algo-1",
        hosts=("algo-1", "algo-2", "algo-3"),
        master_addr="algo-1",
        master_port=29500,
        instance_type="ml.g5.xlarge",
    )
    assert load_cluster(path).rank == 0


def test_master_address_and_port_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLATFORM_MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MLPLATFORM_MASTER_PORT", "31337")
    path = tmp_path / "resourceconfig.json"
    path.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    cluster = load_cluster(path)
    assert (cluster.master_addr, cluster.master_port, cluster.rank, cluster.world_size) == ("127.0.0.1", 31337, 1, 2)


@pytest.mark.slow
def test_two_hosts_train_one_model_and_only_the_first_writes_it(tmp_path: Path) -> None:
    """Both replicas end with bit-identical parameters. Without DistributedDataParallel (each host
    stepping on its own gradients) the digests differ and this fails."""
    hyperparameters = {
        "epochs": "4",
        "batch_size": "128",
        "hidden_units": "32,32",
        "num_threads": "1",
        "validation_interval": "1",
    }
    roots = {host: _host_root(tmp_path, host, hyperparameters) for host in HOSTS}
    with _hosts(roots) as processes:
        outputs = _finish(processes)
    for host, (_, err, code) in outputs.items():
        assert code == 0, (host, err[-3000:])

    first, second = roots["algo-1"], roots["algo-2"]
    err_first, err_second = outputs["algo-1"][1], outputs["algo-2"][1]
    assert "host algo-1 (1 of 2), 2 in all" in err_first
    assert "host algo-2 (2 of 2), 2 in all" in err_second
    # Each process trains on half of the 3200 training rows (one file: split by rows).
    assert "process 0 of 2 trains on 1600 rows: 12 steps of 128 rows" in err_first
    assert "process 1 of 2 trains on 1600 rows: 12 steps of 128 rows" in err_second
    digests = {**_digests(err_first), **_digests(err_second)}
    assert sorted(digests) == [0, 1]
    assert digests[0] == digests[1], "the replicas diverged"
    assert (first.model / "manifest.json").is_file()
    assert not second.model.exists() or not any(second.model.iterdir())
    assert not second.checkpoints.exists() or not any(second.checkpoints.iterdir())
    assert [line for line in outputs["algo-1"][0].splitlines() if line.startswith("epoch=")][-1].startswith("epoch=4;")
    evaluation = json.loads((first.model / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["training"]["processes"] == 2
    assert evaluation["training"]["epochs_run"] == 4
    assert evaluation["fp32"]["auc"] > 0.8
    assert evaluation["parity"]["max_abs_diff_torch_vs_onnxruntime"] <= 1e-4


def _world_of_four(tmp_path: Path, name: str) -> dict[str, MLRoot]:
    hyperparameters = {
        "epochs": "12",
        "batch_size": "16",
        "hidden_units": "16",
        "num_threads": "1",
        "processes_per_host": "2",
        "validation_interval": "1",
        "checkpoint_epochs": "1",
        "seed": "5",
    }
    return {host: _host_root(tmp_path / name, host, hyperparameters, rows=3000, files=5) for host in HOSTS}


@pytest.mark.slow
def test_hosts_times_processes_shard_by_file_and_a_stopped_run_resumes_bit_exact(tmp_path: Path) -> None:
    """World size = 2 hosts x 2 processes. 5 train files over 4 processes: whole files, balanced by size.
    SIGTERM mid-run (a spot interruption) writes a checkpoint; the restarted job continues from it and ends
    with exactly the weights and optimizer state of a run that was never interrupted."""
    reference = _world_of_four(tmp_path, "reference")
    with _hosts(reference) as processes:
        outputs = _finish(processes)
    for host, (_, err, code) in outputs.items():
        assert code == 0, (host, err[-3000:])
    trains = re.findall(r"process (\d) of 4 trains on (\d+) rows", outputs["algo-1"][1] + outputs["algo-2"][1])
    assert sorted(int(r) for r, _ in trains) == [0, 1, 2, 3]
    assert sum(int(n) for _, n in trains) == 2400, "every training row is in exactly one process's share"
    digests = {**_digests(outputs["algo-1"][1]), **_digests(outputs["algo-2"][1])}
    assert sorted(digests) == [0, 1, 2, 3] and len(set(digests.values())) == 1

    interrupted = _world_of_four(tmp_path, "interrupted")
    with _hosts(interrupted) as processes:
        deadline = time.monotonic() + 240
        while not _checkpoints(interrupted["algo-1"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        stopped = _finish(processes, timeout=120)
    for host, (_, err, code) in stopped.items():
        assert code == 0, (host, err[-3000:])
    assert "stopped by SIGTERM at epoch" in stopped["algo-1"][1]
    evaluation = json.loads((interrupted["algo-1"].model / "evaluation.json").read_text(encoding="utf-8"))
    stop = evaluation["training"]["stopped_by_signal"]
    assert stop["signal"] == signal.SIGTERM and stop["epoch"] < 12

    with _hosts(interrupted) as processes:
        resumed = _finish(processes)
    for host, (_, err, code) in resumed.items():
        assert code == 0, (host, err[-3000:])
    assert f"resumed from checkpoint at epoch {stop['epoch']} step {stop['step']}" in resumed["algo-1"][1]

    final = torch.load(_checkpoints(reference["algo-1"])[-1], weights_only=True)
    again = torch.load(_checkpoints(interrupted["algo-1"])[-1], weights_only=True)
    assert (final["epoch"], final["step"]) == (again["epoch"], again["step"]) == (13, 0)
    for name, tensor in final["model"].items():
        assert torch.equal(tensor, again["model"][name]), name
    for index, state in final["optimizer"]["state"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, again["optimizer"]["state"][index][key]), (index, key)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_failed_peer_ends_the_other_host_within_a_minute_with_the_cause(tmp_path: Path, how: str) -> None:
    """A peer killed (a crash, the OOM killer) or hung (SIGSTOP: a host that stops answering) ends the
    surviving host with /opt/ml/output/failure saying so, well within a minute (collective timeout 10 s)."""
    hyperparameters = {
        "epochs": "100000",
        "batch_size": "16",
        "hidden_units": "16",
        "num_threads": "1",
        "collective_timeout_seconds": "10",
        "checkpoint_epochs": "0",
    }
    roots = {host: _host_root(tmp_path, host, hyperparameters, rows=2000) for host in HOSTS}
    with _hosts(roots) as processes:
        deadline = time.monotonic() + 240
        while not (workers := _workers(processes["algo-2"].pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers, "host algo-2 started no worker"
        # The first process writes the drift baseline once every process has read its data: training runs.
        while not (roots["algo-1"].model / "baseline" / "statistics.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        assert processes["algo-1"].poll() is None, processes["algo-1"].communicate()[1][-3000:]
        _signal(workers[0], signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        started = time.monotonic()
        _, err = processes["algo-1"].communicate(timeout=60)
        ended_after = time.monotonic() - started
        if how == "killed":
            processes["algo-2"].communicate(timeout=60)
    assert processes["algo-1"].returncode == 1, err[-3000:]
    assert ended_after < 60
    reason = roots["algo-1"].failure.read_text(encoding="utf-8")
    assert reason.startswith("rank 0 on host algo-1: ")
    if how == "killed":
        assert "connection to a peer process was lost" in reason, reason
        survivor = roots["algo-2"].failure.read_text(encoding="utf-8")
        assert "training process rank 1 (local rank 0) on host algo-2 was killed by SIGKILL" in survivor
    else:
        assert "stopped answering within the collective timeout" in reason, reason
