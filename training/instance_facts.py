"""What a SageMaker training instance type means for the training container: GPUs per host, whether this
image's CUDA build can use them, and how many processes a job runs.

Torch-free and pure, so the stack settings can plan (and refuse) a training job before anything is sent to
AWS, and the container can check at start that the host it got matches the plan.

GPU counts and models: Amazon EC2 User Guide, "Accelerated computing instance type specifications"
(https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html), read 2026; SageMaker's `ml.` types are the
EC2 types of the same name. The image installs PyTorch's CUDA 13 build; CUDA 13.0 removed the Maxwell, Pascal
and Volta architectures (compute capability below 7.5; CUDA 13.0 release notes, "Deprecated or Dropped
Architectures"), so V100 hosts (ml.p3*) cannot run it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INSTANCE_TYPE_KEY = "mlplatform:trainingInstanceType"
INSTANCE_COUNT_KEY = "mlplatform:trainingInstanceCount"
MIN_COMPUTE_CAPABILITY = (7, 5)
"""Oldest GPU architecture PyTorch's CUDA 13 build runs on (Turing, the T4 of ml.g4dn)."""
DEFAULT_MASTER_PORT = 29500
"""TCP port of the rendezvous store on the first host (torchrun's default); NCCL and gloo pick further ports."""


@dataclass(frozen=True)
class GpuModel:
    name: str
    compute_capability: tuple[int, int]
    bf16: bool
    """Native bfloat16 arithmetic (Ampere and newer): the loop then runs under bf16 autocast."""


T4 = GpuModel("NVIDIA T4", (7, 5), bf16=False)
A10G = GpuModel("NVIDIA A10G", (8, 6), bf16=True)
L4 = GpuModel("NVIDIA L4", (8, 9), bf16=True)
L40S = GpuModel("NVIDIA L40S", (8, 9), bf16=True)
V100 = GpuModel("NVIDIA V100", (7, 0), bf16=False)
A100 = GpuModel("NVIDIA A100", (8, 0), bf16=True)
H100 = GpuModel("NVIDIA H100", (9, 0), bf16=True)
H200 = GpuModel("NVIDIA H200", (9, 0), bf16=True)
B200 = GpuModel("NVIDIA B200", (10, 0), bf16=True)


def _sizes(model: GpuModel, counts: dict[str, int], family: str) -> dict[str, tuple[GpuModel, int]]:
    return {f"ml.{family}.{size}": (model, count) for size, count in counts.items()}


_SINGLE_AND_MULTI = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4}
GPU_INSTANCES: dict[str, tuple[GpuModel, int]] = {
    **_sizes(T4, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4}, "g4dn"),
    **_sizes(A10G, {**_SINGLE_AND_MULTI, "48xlarge": 8}, "g5"),
    **_sizes(L4, {**_SINGLE_AND_MULTI, "48xlarge": 8}, "g6"),
    **_sizes(L40S, {**_SINGLE_AND_MULTI, "48xlarge": 8}, "g6e"),
    **_sizes(V100, {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}, "p3"),
    **_sizes(V100, {"24xlarge": 8}, "p3dn"),
    **_sizes(A100, {"24xlarge": 8}, "p4d"),
    **_sizes(A100, {"24xlarge": 8}, "p4de"),
    **_sizes(H100, {"4xlarge": 1, "48xlarge": 8}, "p5"),
    **_sizes(H200, {"48xlarge": 8}, "p5e"),
    **_sizes(H200, {"48xlarge": 8}, "p5en"),
    **_sizes(B200, {"48xlarge": 8}, "p6-b200"),
}
"""SageMaker training instance type -> (GPU model, GPUs per instance)."""

# Accelerated families this image cannot use, and why (the message a refused plan gives).
_UNUSABLE_FAMILIES: dict[str, str] = {
    "p2": "its NVIDIA K80 GPUs are not supported by PyTorch's CUDA 13 build",
    "g4ad": "its AMD Radeon GPUs need ROCm, and this image carries PyTorch's CUDA build",
    "g5g": "it is an Arm (Graviton) host, and the training image is built for x86_64",
    "inf1": "Inferentia needs the AWS Neuron SDK, which this image does not carry",
    "inf2": "Inferentia needs the AWS Neuron SDK, which this image does not carry",
    "trn1": "Trainium needs the AWS Neuron SDK, which this image does not carry",
    "trn1n": "Trainium needs the AWS Neuron SDK, which this image does not carry",
    "trn2": "Trainium needs the AWS Neuron SDK, which this image does not carry",
}
_GPU_FAMILY = re.compile(r"^(g\d|p\d)")


class InstancePlanError(ValueError):
    """The instance type cannot run this training image; the message names the setting and what is allowed."""


@dataclass(frozen=True)
class TrainingLayout:
    """How a training job runs: hosts, GPUs per host and one process per GPU (one per host on CPU)."""

    instance_type: str
    hosts: int
    gpus_per_host: int
    gpu: GpuModel | None

    @property
    def device(self) -> str:
        """The `device` hyperparameter that fits the instance type: `cuda` on GPU types, `cpu` elsewhere."""
        return "cuda" if self.gpus_per_host else "cpu"

    @property
    def processes_per_host(self) -> int:
        return max(1, self.gpus_per_host)

    @property
    def world_size(self) -> int:
        return self.hosts * self.processes_per_host

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def instance_family(instance_type: str) -> str:
    """`ml.g5.12xlarge` -> `g5`."""
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "ml" else ""


def gpus_per_instance(instance_type: str) -> int:
    """GPUs of a known GPU instance type; 0 for every other type (CPU types, unknown names)."""
    known = GPU_INSTANCES.get(instance_type)
    return known[1] if known else 0


def plan_training(instance_type: str, instance_count: int, *, key: str = INSTANCE_TYPE_KEY) -> TrainingLayout:
    """The process layout for `instance_count` hosts of `instance_type`, or InstancePlanError naming `key`.

    GPU types run one process per GPU (so ml.g5.12xlarge trains on its 4 GPUs, not 1); CPU types one process
    per host. Refused: accelerated types this image cannot use, and GPU types missing from the table (a GPU
    count guessed wrong would leave GPUs idle or start processes without one).
    """
    if instance_count < 1:
        raise InstancePlanError(f"{INSTANCE_COUNT_KEY}: {instance_count} is not allowed; allowed: 1 or more")
    family = instance_family(instance_type)
    if family in _UNUSABLE_FAMILIES:
        raise InstancePlanError(
            f"{key}: {instance_type!r} cannot run the training image: {_UNUSABLE_FAMILIES[family]}; "
            f"allowed: a CPU type or one of {_allowed_gpu_families()}"
        )
    known = GPU_INSTANCES.get(instance_type)
    if known is None:
        if _GPU_FAMILY.match(family):
            raise InstancePlanError(
                f"{key}: {instance_type!r} is not in the table of GPU instance types "
                f"(training/instance_facts.py, GPU_INSTANCES), so its GPU count is unknown; "
                f"allowed: a CPU type or a size listed there of {_allowed_gpu_families()}"
            )
        return TrainingLayout(instance_type, instance_count, 0, None)
    model, count = known
    if not _usable(model):
        raise InstancePlanError(
            f"{key}: {instance_type!r} has {model.name} GPUs (compute capability "
            f"{model.compute_capability[0]}.{model.compute_capability[1]}), which PyTorch's CUDA 13 build "
            f"does not support (needs {MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]} or newer); "
            f"allowed: a CPU type or one of {_allowed_gpu_families()}"
        )
    return TrainingLayout(instance_type, instance_count, count, model)


def _usable(model: GpuModel) -> bool:
    return model.compute_capability >= MIN_COMPUTE_CAPABILITY


def _allowed_gpu_families() -> str:
    families = sorted({t.split(".")[1] for t, (m, _) in GPU_INSTANCES.items() if _usable(m)})
    return ", ".join(f"ml.{f}.*" for f in families)


def hyperparameters_for(layout: TrainingLayout) -> dict[str, str]:
    """Hyperparameters the stack passes for this layout: the device, so a GPU job never falls back to the
    CPU. (The container also reads its instance type from resourceconfig.json and checks its GPU count.)"""
    return {"device": layout.device}


def network_problems(
    layout: TrainingLayout,
    *,
    subnet_ids: list[str],
    security_group_ids: list[str],
    inter_container_encryption: bool,
    key_prefix: str = "mlplatform:training",
) -> list[str]:
    """Settings that cannot work for a job that runs several processes, each naming its key.

    Several hosts talk to each other over TCP (the rendezvous on port 29500 of the first host, then gloo or
    NCCL connections on ephemeral ports). In a VPC that needs security groups whose rules allow all traffic
    between members of the same group ("Give SageMaker Training Jobs Access to Resources in Your Amazon VPC",
    section "Configure the VPC Security Group"), and with inter-container traffic encryption also UDP 500 and
    IP protocol 50 (ESP) between them ("Protect Communications Between ML Compute Instances in a Distributed
    Training Job"). Rules inside a group cannot be read from the settings, so they are documented
    (training/README.md); what is checked here is what the settings alone decide.
    """
    problems: list[str] = []
    if layout.hosts > 1 and subnet_ids and not security_group_ids:
        problems.append(
            f"{key_prefix}SecurityGroupIds: empty, but {layout.hosts} hosts train in VPC subnets "
            f"({key_prefix}SubnetIds); give a security group that allows all traffic between its own members"
        )
    if layout.hosts > 1 and not inter_container_encryption:
        problems.append(
            f"{key_prefix}InterContainerEncryption: false with {layout.hosts} hosts; the hosts exchange model "
            "gradients every step, set it to true (SageMaker then encrypts traffic between the hosts)"
        )
    return problems
