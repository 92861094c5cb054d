"""Spot safety: a run killed with SIGKILL after a checkpoint, or stopped with SIGTERM (SageMaker's stop, the
max-runtime stop, a spot interruption), resumes where it was and ends bit-for-bit the same; a stopped run
leaves a complete model directory."""

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
from typing import Any

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
    "validation_interval": "1",
    "checkpoint_epochs": "1",
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
    """Epochs completed according to the checkpoints on disk (a file names the next position to run)."""
    if not ml.checkpoints.is_dir():
        return []
    return sorted(
        int(m.group(1)) - 1
        for p in ml.checkpoints.iterdir()
        if (m := re.match(r"checkpoint-(\d{6})-000000000\.pt$", p.name))
    )


def _manifest(ml: MLRoot) -> dict[str, Any]:
    return json.loads((ml.model / "manifest.json").read_text(encoding="utf-8"))


def _final_checkpoint(ml: MLRoot) -> dict[str, object]:
    return torch.load(sorted(ml.checkpoints.glob("checkpoint-*.pt"))[-1], weights_only=True)


def _assert_same_training_state(a: dict[str, object], b: dict[str, object]) -> None:
    """Weights and optimizer state equal bit for bit (resume is exact, so no tolerance)."""
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    model_a, model_b = a["model"], b["model"]
    assert isinstance(model_a, dict) and isinstance(model_b, dict)
    assert model_a.keys() == model_b.keys()
    for name, tensor in model_a.items():
        assert torch.equal(tensor, model_b[name]), name
    state_a = a["optimizer"]["state"]  # type: ignore[index]
    state_b = b["optimizer"]["state"]  # type: ignore[index]
    assert state_a.keys() == state_b.keys()
    for index, entries in state_a.items():
        for key, tensor in entries.items():
            assert torch.equal(tensor, state_b[index][key]), (index, key)


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
    assert f"resumed from checkpoint at epoch {last + 1} step 0" in resumed.stderr
    epochs_logged = [int(m.group(1)) for m in re.finditer(r"^epoch=(\d+);", resumed.stdout, re.MULTILINE)]
    assert epochs_logged == list(range(last + 1, EPOCHS + 1))
    # Exact: dropping the optimizer state (or the RNG state) on resume changes the weights and fails here.
    _assert_same_training_state(_final_checkpoint(reference), _final_checkpoint(interrupted))
    assert _manifest(interrupted)["metrics"] == _manifest(reference)["metrics"]


@pytest.mark.slow
def test_sigterm_leaves_a_checkpoint_and_the_best_model_so_far_and_resumes_exactly(tmp_path: Path) -> None:
    """SageMaker stops a job with SIGTERM and kills it 120 s later (API reference, StoppingCondition). The
    trainer finishes its step, checkpoints the position reached, writes the best model so far (a complete
    model directory) and exits 0 well within the grace period; a restarted job resumes at that step.
    Without the handler the process dies of the signal with no model."""
    reference = _layout(tmp_path / "reference")
    assert main(["train", "--ml-root", str(reference.root)]) == 0

    stopped = MLRoot(tmp_path / "stopped")
    shutil.copytree(reference.root / "input", stopped.root / "input")
    process = subprocess.Popen(
        _command(stopped), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not _epochs_checkpointed(stopped) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    assert time.monotonic() - signalled < 100, "the model must be written within SageMaker's 120 s grace"
    assert "received SIGTERM: finishing the current step" in err

    for name in ("model.onnx", "model.int8.onnx", "evaluation.json", "baseline/statistics.json", "manifest.json"):
        assert (stopped.model / name).is_file(), name
    evaluation = json.loads((stopped.model / "evaluation.json").read_text(encoding="utf-8"))
    stop = evaluation["training"]["stopped_by_signal"]
    assert stop["signal"] == signal.SIGTERM
    assert (stop["epoch"], stop["step"]) < (EPOCHS + 1, 0)
    # The best model so far: the lowest validation loss among the validations and the weights at the stop.
    losses = [entry["val_loss"] for entry in evaluation["training"]["history"]] + [stop["val_loss"]]
    assert _manifest(stopped)["metrics"]["val_log_loss"] == pytest.approx(min(losses), abs=1e-5)
    assert evaluation["parity"]["max_abs_diff_torch_vs_onnxruntime"] <= 1e-4
    position = _final_checkpoint(stopped)
    assert (position["epoch"], position["step"]) == (stop["epoch"], stop["step"])

    resumed = subprocess.run(
        _command(stopped), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from checkpoint at epoch {stop['epoch']} step {stop['step']}" in resumed.stderr
    _assert_same_training_state(_final_checkpoint(reference), _final_checkpoint(stopped))


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


def _state(epoch: int, run_key: str = "key", step: int = 0) -> dict[str, object]:
    return {
        "format_version": 2,
        "run_key": run_key,
        "epoch": epoch,
        "step": step,
        "epoch_loss": [torch.zeros(())],
        "model": {"w": torch.full((2,), float(epoch))},
        "optimizer": {},
        "rng": [{"cpu": torch.get_rng_state()}],
        "best": {"val_loss": 1.0, "epoch": epoch, "model": None, "since": 0},
        "stopped": False,
        "history": [],
        "world_size": 1,
    }


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _state(1))
    save_checkpoint(tmp_path, _state(2))
    newest = checkpoint_path(tmp_path, 2, 0)
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
    save_checkpoint(tmp_path, _state(5, step=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-000005-000000000.pt",
        "checkpoint-000005-000000007.pt",
    ]
    assert load_newest_checkpoint(tmp_path, "key")["step"] == 7  # type: ignore[index]


def test_checkpoint_size_does_not_grow_with_the_epochs_run(tmp_path: Path) -> None:
    """The validation history a checkpoint (and evaluation.json) carries is capped at HISTORY_LIMIT."""
    from training.checkpoint import HISTORY_LIMIT

    ml = MLRoot(tmp_path)
    train, validation = split_frame(synthetic_frame(100, numeric=3, categorical=0, seed=1), seed=1)
    epochs = HISTORY_LIMIT + 50
    hyperparameters = {
        "epochs": str(epochs),
        "hidden_units": "4",
        "num_threads": "1",
        "validation_interval": "1",
        "checkpoint_epochs": "0",
        "checkpoint_seconds": "0",
    }
    write_layout(ml, train, validation, hyperparameters)
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    history = _final_checkpoint(ml)["history"]
    assert isinstance(history, list) and len(history) == HISTORY_LIMIT
    assert history[-1]["epoch"] == epochs and history[0]["epoch"] == epochs - HISTORY_LIMIT + 1
    evaluation = json.loads((ml.model / "evaluation.json").read_text(encoding="utf-8"))
    assert len(evaluation["training"]["history"]) == HISTORY_LIMIT
    assert evaluation["training"]["epochs_run"] == epochs


def test_epoch_line_format_is_key_value_pairs_ending_in_semicolons() -> None:
    values = {"train_loss": 0.12341, "val_auc": 0.98765, "val_accuracy": 0.95, "val_loss": 0.1}
    line = format_epoch_line(3, values)
    assert line == "epoch=3;train_loss=0.1234;val_auc=0.9877;val_accuracy=0.9500;val_loss=0.1000;"
    assert {d["Name"] for d in METRIC_DEFINITIONS} == {"epoch", *values}


def test_metric_definitions_module_does_not_import_torch() -> None:
    code = "import sys, training.metrics; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
