"""Spot safety: a run killed with SIGKILL after a checkpoint resumes at the next epoch and ends the same."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training.__main__ import main
from training.checkpoint import checkpoint_path, load_newest_checkpoint, save_checkpoint
from training.demo import split_frame, synthetic_frame, write_layout
from training.layout import MLRoot
from training.metrics import METRIC_DEFINITIONS, format_epoch_line

EPOCHS = 6
HYPERPARAMETERS = {
    "epochs": str(EPOCHS),
    "batch_size": "64",
    "hidden_units": "64,64",
    "num_threads": "1",
    "seed": "3",
}
REPO = Path(__file__).resolve().parents[1]


def _layout(root: Path) -> MLRoot:
    ml = MLRoot(root)
    train, validation = split_frame(synthetic_frame(6_000, numeric=6, categorical=2, seed=3), seed=3)
    write_layout(ml, train, validation, HYPERPARAMETERS)
    return ml


def _command(ml: MLRoot) -> list[str]:
    return [sys.executable, "-m", "training", "train", "--ml-root", str(ml.root)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _epochs_checkpointed(ml: MLRoot) -> list[int]:
    if not ml.checkpoints.is_dir():
        return []
    return sorted(
        int(m.group(1)) for p in ml.checkpoints.iterdir() if (m := re.match(r"checkpoint-epoch-(\d+)\.pt$", p.name))
    )


def _val_auc(ml: MLRoot) -> float:
    return json.loads((ml.model / "manifest.json").read_text(encoding="utf-8"))["metrics"]["val_auc"]


def test_killed_run_resumes_after_its_last_checkpoint_and_ends_the_same(tmp_path: Path) -> None:
    reference = _layout(tmp_path / "reference")
    assert main(["train", "--ml-root", str(reference.root)]) == 0

    interrupted = MLRoot(tmp_path / "interrupted")
    shutil.copytree(reference.root / "input", interrupted.root / "input")
    process = subprocess.Popen(
        _command(interrupted), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 240
    while not _epochs_checkpointed(interrupted) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    first_output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == -signal.SIGKILL, first_output
    done = _epochs_checkpointed(interrupted)
    assert done, first_output
    last = done[-1]
    assert last < EPOCHS, "the kill came before the run finished"
    assert not (interrupted.model / "manifest.json").exists()

    resumed = subprocess.run(
        _command(interrupted), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from checkpoint of epoch {last}; continuing at epoch {last + 1}" in resumed.stderr
    epochs_logged = [int(m.group(1)) for m in re.finditer(r"^epoch=(\d+);", resumed.stdout, re.MULTILINE)]
    assert epochs_logged == list(range(last + 1, EPOCHS + 1))
    assert _val_auc(interrupted) == pytest.approx(_val_auc(reference), abs=1e-4)


def test_epoch_lines_feed_the_sagemaker_metric_regexes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ml = _layout(tmp_path)
    ml.hyperparameters.write_text(json.dumps({**HYPERPARAMETERS, "epochs": "2"}), encoding="utf-8")
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch=")]
    assert len(lines) == 2
    history = json.loads((ml.model / "evaluation.json").read_text(encoding="utf-8"))["training"]["history"]
    for line, expected in zip(lines, history, strict=True):
        for definition in METRIC_DEFINITIONS:
            match = re.search(definition["Regex"], line)
            assert match is not None, (definition, line)
            assert float(match.group(1)) == pytest.approx(expected[definition["Name"]], abs=5e-5)


def _state(epoch: int, run_key: str = "key") -> dict[str, object]:
    return {
        "format_version": 1,
        "run_key": run_key,
        "epoch": epoch,
        "model": {"w": torch.full((2,), float(epoch))},
        "optimizer": {},
        "rng": [{"cpu": torch.get_rng_state()}],
        "best": {"val_loss": 1.0, "epoch": epoch, "model": None, "since": 0},
        "stopped": False,
        "history": [],
    }


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _state(1))
    save_checkpoint(tmp_path, _state(2))
    newest = checkpoint_path(tmp_path, 2)
    newest.write_bytes(newest.read_bytes()[:100])
    state = load_newest_checkpoint(tmp_path, "key")
    assert state is not None
    assert state["epoch"] == 1


def test_checkpoints_of_another_run_are_not_resumed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _state(4, run_key="other-data"))
    assert load_newest_checkpoint(tmp_path, "key") is None


def test_only_the_newest_checkpoints_are_kept_and_no_temporary_file_remains(tmp_path: Path) -> None:
    for epoch in range(1, 6):
        save_checkpoint(tmp_path, _state(epoch))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-epoch-000004.pt",
        "checkpoint-epoch-000005.pt",
    ]


def test_epoch_line_format_is_key_value_pairs_ending_in_semicolons() -> None:
    values = {"train_loss": 0.12341, "val_auc": 0.98765, "val_accuracy": 0.95, "val_loss": 0.1}
    line = format_epoch_line(3, values)
    assert line == "epoch=3;train_loss=0.1234;val_auc=0.9877;val_accuracy=0.9500;val_loss=0.1000;"
    assert {d["Name"] for d in METRIC_DEFINITIONS} == {"epoch", *values}


def test_metric_definitions_module_does_not_import_torch() -> None:
    code = "import sys, training.metrics; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
