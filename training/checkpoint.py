"""Spot-safe checkpoints: written atomically (tmp, fsync, rename), newest valid wins, the newest two kept.

A checkpoint holds everything a restarted job needs to continue as if it had not stopped: model and
optimizer state, the position reached (epoch and step within it, with the epoch's partial loss), the
early-stopping state (best weights so far) and every process's RNG state. Its size does not grow with the
epochs run: the validation history it carries is capped at HISTORY_LIMIT entries.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 2
_NAME = re.compile(r"^checkpoint-(\d{6})-(\d{9})\.pt$")
REQUIRED_KEYS = frozenset(
    {
        "format_version",
        "run_key",
        "epoch",
        "step",
        "epoch_loss",
        "model",
        "optimizer",
        "rng",
        "best",
        "stopped",
        "history",
        "world_size",
    }
)
KEEP = 2
HISTORY_LIMIT = 1000
"""Validation reports kept (the most recent); every one is also in the job's log and metrics."""


def checkpoint_path(directory: Path, epoch: int, step: int = 0) -> Path:
    """The file of the position `epoch`, `step`: the next step to run is `step` of `epoch`."""
    return directory / f"checkpoint-{epoch:06d}-{step:09d}.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write the checkpoint atomically and keep only the newest few."""
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, int(state["epoch"]), int(state["step"]))
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    # rename is atomic on POSIX: a reader (or a restarted job) sees the old set of files or the new one.
    tmp.replace(final)
    _fsync_dir(directory)
    for old in sorted(_position_files(directory), reverse=True)[KEEP:]:
        old[1].unlink(missing_ok=True)
    return final


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _position_files(directory: Path) -> list[tuple[tuple[int, int], Path]]:
    if not directory.is_dir():
        return []
    out: list[tuple[tuple[int, int], Path]] = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            out.append(((int(match.group(1)), int(match.group(2))), path))
    return out


def load_newest_checkpoint(directory: Path, run_key: str) -> dict[str, Any] | None:
    """The newest checkpoint that loads, has the expected fields and belongs to this run (same data and
    hyperparameters); older or broken ones are skipped with a log line."""
    for position, path in sorted(_position_files(directory), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            LOG.warning("skipping unreadable checkpoint %s: %s", path.name, exc)
            continue
        if not isinstance(state, dict) or not set(state) >= REQUIRED_KEYS:
            LOG.warning("skipping checkpoint %s: missing fields", path.name)
            continue
        if state["format_version"] != FORMAT_VERSION or (state["epoch"], state["step"]) != position:
            LOG.warning("skipping checkpoint %s: unexpected format or position", path.name)
            continue
        if state["run_key"] != run_key:
            LOG.warning("skipping checkpoint %s: it belongs to a run with other data or hyperparameters", path.name)
            continue
        return state
    return None
