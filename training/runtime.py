"""Where a training process runs: the device it trains on, its place among the job's processes, the stop
request (SIGTERM) it honours, and the rendezvous it joins.

Kept apart from the training loop so each rule is a small function tested with fakes (no GPU needed).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import pickle
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from training.errors import TrainingInputError
from training.instance_facts import GPU_INSTANCES, gpus_per_instance

LOG = logging.getLogger(__name__)

NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
_DRIVER_VERSION = re.compile(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+(?:\.\d+)+)")
CUDA13_MIN_DRIVER = 580
"""CUDA 13.x runs on NVIDIA drivers of branch 580 and newer (CUDA Toolkit release notes, "CUDA Toolkit and
Minimum Required Driver Version for CUDA Minor Version Compatibility")."""


@dataclass(frozen=True)
class CudaProbe:
    """What this process can see of CUDA, gathered once (tests build it by hand)."""

    available: bool
    device_count: int
    torch_cuda: str | None
    """The CUDA version torch was built with (`torch.version.cuda`); None for a CPU build."""
    driver: str | None
    """The NVIDIA kernel driver version (from /proc/driver/nvidia/version); None without one."""
    devices: tuple[str, ...] = ()
    error: str | None = None
    """Why CUDA is not usable, when torch said so."""


def driver_version(path: Path = NVIDIA_DRIVER_FILE) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = _DRIVER_VERSION.search(text)
    return match.group(1) if match else None


def probe_cuda() -> CudaProbe:
    """Ask torch about CUDA without creating a context on any GPU (the launcher process trains on none)."""
    import warnings

    import torch

    error: str | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            available = bool(torch.cuda.is_available())
            count = int(torch.cuda.device_count()) if available else 0
        except Exception as exc:  # a broken driver install raises instead of returning False
            available, count, error = False, 0, f"{type(exc).__name__}: {exc}"
    if error is None and caught:
        error = " ".join(str(w.message) for w in caught).strip() or None
    devices = tuple(torch.cuda.get_device_name(i) for i in range(count)) if available else ()
    return CudaProbe(available, count, torch.version.cuda, driver_version(), devices, error)


@dataclass(frozen=True)
class DevicePlan:
    """The device type every process of this host trains on, and the GPUs it may use."""

    type: str
    gpus: int = 0


def _no_gpu_message(reason: str, probe: CudaProbe) -> str:
    parts = [reason]
    if probe.torch_cuda is None:
        parts.append("this image's torch is a CPU build")
    else:
        parts.append(f"torch is built for CUDA {probe.torch_cuda}")
    if probe.driver is None:
        parts.append("no NVIDIA driver is visible in the container (/proc/driver/nvidia/version is absent)")
    else:
        parts.append(f"the host's NVIDIA driver is {probe.driver}")
        major = probe.driver.split(".")[0]
        if (
            probe.torch_cuda
            and probe.torch_cuda.startswith("13.")
            and major.isdigit()
            and int(major) < CUDA13_MIN_DRIVER
        ):
            parts.append(f"CUDA 13 needs driver {CUDA13_MIN_DRIVER} or newer")
    if probe.error:
        parts.append(f"torch says: {probe.error}")
    return "; ".join(parts)


def choose_device(requested: str, instance_type: str | None, probe: CudaProbe) -> DevicePlan:
    """The device for the `device` hyperparameter on this host.

    `cuda`, and `auto` on an instance type that has GPUs, require a usable GPU: a GPU job that cannot reach
    its GPUs fails with the reason instead of training on the CPU while the GPUs are paid for. On a known
    GPU type the host must also show all of its GPUs. `auto` elsewhere takes CUDA when present.
    """
    expected = gpus_per_instance(instance_type) if instance_type else 0
    if requested == "cpu":
        if expected:
            LOG.warning("device 'cpu' requested on %s: its %d GPU(s) stay idle", instance_type, expected)
        return DevicePlan("cpu")
    must_use_gpu = requested == "cuda" or expected > 0
    if not must_use_gpu:
        return DevicePlan("cuda", probe.device_count) if probe.available and probe.device_count else DevicePlan("cpu")
    where = f"instance type {instance_type} has {expected} GPU(s)" if expected else "hyperparameter 'device' is 'cuda'"
    if not probe.available or probe.device_count == 0:
        raise TrainingInputError(
            _no_gpu_message(f"{where}, but no CUDA device is usable (refusing to train on the CPU)", probe)
        )
    if expected and probe.device_count < expected:
        model = GPU_INSTANCES[instance_type][0].name if instance_type in GPU_INSTANCES else "GPU"
        raise TrainingInputError(
            f"instance type {instance_type} has {expected} {model} GPU(s), but CUDA shows {probe.device_count} "
            f"({', '.join(probe.devices)}); refusing to train with GPUs missing"
        )
    return DevicePlan("cuda", expected or probe.device_count)


def processes_per_host(requested: int, device: DevicePlan) -> int:
    """One process per GPU (0 = auto), one on the CPU; an explicit count cannot exceed the GPUs."""
    if requested == 0:
        return max(1, device.gpus) if device.type == "cuda" else 1
    if device.type == "cuda" and requested > device.gpus:
        raise TrainingInputError(
            f"hyperparameter 'processes_per_host': {requested} is more than the {device.gpus} GPU(s) of this host; "
            f"allowed: 0 (one per GPU) to {device.gpus}"
        )
    return requested


# --- stop requests ---------------------------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM: SageMaker's StopTrainingJob, the MaxRuntimeInSeconds stop and a spot interruption all
    send SIGTERM and SIGKILL 120 s later (API reference, StoppingCondition). The loop polls it between steps,
    writes a checkpoint and the best model so far, and returns."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None

    def request(self, signum: int = signal.SIGTERM) -> None:
        if self.signal is None:
            self.signal = signum
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


@contextlib.contextmanager
def stop_handler(flag: StopFlag) -> Iterator[StopFlag]:
    """Handle SIGTERM (and SIGINT) by setting `flag` while the block runs; the previous handlers come back
    after it. As PID 1 of a container a process has no default action for SIGTERM at all (the kernel does
    not deliver default-action signals to a namespace's init), so without a handler `docker stop` and
    SageMaker's stop would only end the job with the SIGKILL 120 s later, and no model."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not flag:
            LOG.warning(
                "received %s: finishing the current step, then writing a checkpoint and the best model so far",
                signal.Signals(signum).name,
            )
        flag.request(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


# --- the job's processes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerIdentity:
    """This process's place in the job: global rank, local rank on its host, and the rendezvous address."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    host: str = "algo-1"
    master_addr: str = "127.0.0.1"
    master_port: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_torchrun(cls, env: dict[str, str], host: str) -> WorkerIdentity:
        """The variables torchrun sets for each worker (torch.distributed.run, "Environment Variables")."""
        try:
            return cls(
                rank=int(env["RANK"]),
                world_size=int(env["WORLD_SIZE"]),
                local_rank=int(env["LOCAL_RANK"]),
                local_world_size=int(env["LOCAL_WORLD_SIZE"]),
                host=host,
                master_addr=env["MASTER_ADDR"],
                master_port=int(env["MASTER_PORT"]),
            )
        except (KeyError, ValueError) as exc:
            raise RuntimeError(f"`python -m training worker` runs under torchrun only (missing {exc})") from None


class Rendezvous:
    """The job's key-value store (the one torchrun's agents rendezvoused on) and the process group.

    Two timeouts: the store waits long (hosts start minutes apart and read their data at their own pace),
    the process group's collectives do not (a peer that stops answering during training fails the job
    within `collective_timeout`, instead of holding every GPU for the default 10 to 30 minutes).
    """

    def __init__(self, identity: WorkerIdentity, backend: str, *, rendezvous_timeout: float, collective_timeout: float):
        import torch.distributed as dist

        self.identity = identity
        self.timeout = timedelta(seconds=rendezvous_timeout)
        # A client of the agents' store (torchrun's static rendezvous runs its server in the first host's agent).
        # TCPStore and PrefixStore are public (documented under torch.distributed "Distributed Key-Value
        # Store"), but the package's stubs do not re-export them.
        store = dist.TCPStore(  # pyright: ignore[reportPrivateImportUsage]
            identity.master_addr, identity.master_port, is_master=False, timeout=self.timeout, wait_for_workers=False
        )
        self.store = dist.PrefixStore("mlplatform", store)  # pyright: ignore[reportPrivateImportUsage]
        # The backend connects every pair of processes when the group is created, waiting only the group's
        # (short) timeout: wait for all of them at the store first, with the long one.
        self.exchange("started", identity.host)
        dist.init_process_group(
            backend,
            store=dist.PrefixStore("process-group", store),  # pyright: ignore[reportPrivateImportUsage]
            rank=identity.rank,
            world_size=identity.world_size,
            timeout=timedelta(seconds=collective_timeout),
        )

    def exchange(self, key: str, value: Any) -> list[Any]:
        """All-gather through the store with the long timeout (used while hosts still read their data)."""
        me = self.identity
        self.store.set(f"{key}/{me.rank}", base64.b64encode(pickle.dumps(value)).decode("ascii"))
        keys = [f"{key}/{r}" for r in range(me.world_size)]
        self.store.wait(keys, self.timeout)
        return [pickle.loads(base64.b64decode(self.store.get(k))) for k in keys]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def describe_collective_failure(exc: BaseException, identity: WorkerIdentity) -> str:
    """A one-line cause for an error raised by a collective: which process saw it and what it means."""
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if any(s in lowered for s in ("timed out", "timeout", "deadline")):
        what = "a peer process stopped answering within the collective timeout"
    elif any(s in lowered for s in ("connection closed", "connection reset", "broken pipe", "peer", "socket")):
        what = "the connection to a peer process was lost (another host or process failed or was killed)"
    else:
        what = "a collective operation with the other processes failed"
    return f"rank {identity.rank} on host {identity.host}: {what}: {type(exc).__name__}: {text[:400]}"


def failure_dir_from_env() -> Path | None:
    value = os.environ.get(FAILURE_DIR_ENV)
    return Path(value) if value else None


FAILURE_DIR_ENV = "MLPLATFORM_FAILURE_DIR"
"""Where each worker process writes its one-line failure reason (`rank-N`) for the launcher to report."""
