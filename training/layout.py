"""Where the SageMaker training contract puts things below the ml root (default /opt/ml); the host list."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from training.errors import TrainingInputError

DEFAULT_ML_ROOT = Path("/opt/ml")
MASTER_ADDR_ENV = "MLPLATFORM_MASTER_ADDR"
MASTER_PORT_ENV = "MLPLATFORM_MASTER_PORT"
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class MLRoot:
    """Paths of the training contract below one root directory."""

    root: Path

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.root / "input" / "config" / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.root / "input" / "config" / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def failure(self) -> Path:
        return self.output / "failure"


@dataclass(frozen=True)
class Cluster:
    """This host's place among the job's hosts: rank = position in the sorted host list, master = first."""

    current_host: str
    hosts: tuple[str, ...]
    master_addr: str
    master_port: int
    network_interface: str | None = None
    """resourceconfig.json's network_interface_name, handed to gloo/NCCL so they bind the right interface."""
    instance_type: str | None = None
    """resourceconfig.json's current_instance_type (e.g. ml.g5.12xlarge); None outside SageMaker."""

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def world_size(self) -> int:
        return len(self.hosts)


def load_cluster(path: Path) -> Cluster:
    """Read resourceconfig.json; without one (a local run) this is the only host."""
    if not path.exists():
        hosts: tuple[str, ...] = ("algo-1",)
        current = "algo-1"
        interface = None
        instance_type = None
    else:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrainingInputError(f"{path} is not valid JSON: {exc}") from None
        current = raw.get("current_host") if isinstance(raw, dict) else None
        raw_hosts = raw.get("hosts") if isinstance(raw, dict) else None
        if (
            not isinstance(current, str)
            or not isinstance(raw_hosts, list)
            or not raw_hosts
            or not all(isinstance(h, str) for h in raw_hosts)
        ):
            raise TrainingInputError(
                f"{path}: expected an object with 'current_host' (string) and 'hosts' (non-empty list of strings)"
            )
        hosts = tuple(sorted(set(raw_hosts)))
        raw_interface = raw.get("network_interface_name")
        interface = raw_interface if isinstance(raw_interface, str) and raw_interface else None
        raw_type = raw.get("current_instance_type")
        instance_type = raw_type if isinstance(raw_type, str) and raw_type.startswith("ml.") else None
        if current not in hosts:
            raise TrainingInputError(f"{path}: current_host {current!r} is not among hosts {list(hosts)}")
    port_text = os.environ.get(MASTER_PORT_ENV, str(DEFAULT_MASTER_PORT))
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise TrainingInputError(f"{MASTER_PORT_ENV}={port_text!r} is not a port; allowed: an integer in [1, 65535]")
    return Cluster(
        current_host=current,
        hosts=hosts,
        master_addr=os.environ.get(MASTER_ADDR_ENV, hosts[0]),
        master_port=port,
        network_interface=interface,
        instance_type=instance_type,
    )


DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


def load_distribution(path: Path, channel: str) -> str:
    """The channel's S3DistributionType from inputdataconfig.json (FullyReplicated when absent).

    SageMaker writes one object per channel with `S3DistributionType` (documented under "Input Data
    Configuration" of "How Amazon SageMaker Provides Training Information").
    """
    if not path.exists():
        return "FullyReplicated"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingInputError(f"{path} is not valid JSON: {exc}") from None
    entry = raw.get(channel) if isinstance(raw, dict) else None
    value = entry.get("S3DistributionType", "FullyReplicated") if isinstance(entry, dict) else "FullyReplicated"
    if value not in DISTRIBUTIONS:
        raise TrainingInputError(
            f"{path}: channel {channel!r} has S3DistributionType {value!r}; allowed: {', '.join(DISTRIBUTIONS)}"
        )
    return str(value)
