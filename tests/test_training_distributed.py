"""Data-parallel training: two hosts from resourceconfig.json train together over gloo on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.demo import split_frame, synthetic_frame, write_layout
from training.layout import Cluster, MLRoot, load_cluster

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("algo-2", "algo-1")  # deliberately unsorted: rank comes from the sorted list


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _host_root(base: Path, host: str) -> MLRoot:
    ml = MLRoot(base / host)
    train, validation = split_frame(synthetic_frame(4000, numeric=5, categorical=2, seed=11), seed=11)
    hyperparameters = {"epochs": "4", "batch_size": "128", "hidden_units": "32,32", "num_threads": "1"}
    write_layout(ml, train, validation, hyperparameters, hosts=HOSTS, current_host=host)
    config = json.loads(ml.resource_config.read_text(encoding="utf-8"))
    # Loopback, so gloo binds where the test's master address is.
    ml.resource_config.write_text(json.dumps({**config, "network_interface_name": "lo"}), encoding="utf-8")
    return ml


def test_rank_is_the_position_in_the_sorted_host_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLATFORM_MASTER_ADDR", raising=False)
    monkeypatch.delenv("MLPLATFORM_MASTER_PORT", raising=False)
    path = tmp_path / "resourceconfig.json"
    path.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-3", "algo-1", "algo-2"]}))
    assert load_cluster(path) == Cluster(
        current_host="algo-1", hosts=("algo-1", "algo-2", "algo-3"), master_addr="algo-1", master_port=29500
    )
    assert load_cluster(path).rank == 0


def test_master_address_and_port_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLATFORM_MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MLPLATFORM_MASTER_PORT", "31337")
    path = tmp_path / "resourceconfig.json"
    path.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    cluster = load_cluster(path)
    assert (cluster.master_addr, cluster.master_port, cluster.rank, cluster.world_size) == ("127.0.0.1", 31337, 1, 2)


def test_two_hosts_train_together_and_only_the_first_writes_the_model(tmp_path: Path) -> None:
    roots = {host: _host_root(tmp_path, host) for host in HOSTS}
    env = {
        **os.environ,
        "MLPLATFORM_MASTER_ADDR": "127.0.0.1",
        "MLPLATFORM_MASTER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
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
    outputs = {}
    try:
        for host, process in processes.items():
            outputs[host] = process.communicate(timeout=300)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for host, process in processes.items():
        assert process.returncode == 0, (host, outputs[host][1])

    first, second = roots["algo-1"], roots["algo-2"]
    assert "joining 2 hosts as rank 0 (gloo), master 127.0.0.1" in outputs["algo-1"][1]
    assert "joining 2 hosts as rank 1 (gloo), master 127.0.0.1" in outputs["algo-2"][1]
    # Each host trains on its half of the 3200 training rows.
    assert "this host trains on 1600 of 3200 rows, 13 steps" in outputs["algo-1"][1]
    assert "this host trains on 1600 of 3200 rows, 13 steps" in outputs["algo-2"][1]
    assert (first.model / "manifest.json").is_file()
    assert not second.model.exists() or not any(second.model.iterdir())
    assert not second.checkpoints.exists() or not any(second.checkpoints.iterdir())
    # The first host logs the epochs; both hosts ran all four.
    assert [line for line in outputs["algo-1"][0].splitlines() if line.startswith("epoch=")][-1].startswith("epoch=4;")
    evaluation = json.loads((first.model / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["training"]["hosts"] == 2
    assert evaluation["training"]["epochs_run"] == 4
    assert evaluation["fp32"]["auc"] > 0.8
    assert evaluation["parity"]["max_abs_diff_torch_vs_onnxruntime"] <= 1e-4
