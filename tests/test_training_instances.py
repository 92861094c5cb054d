"""Instance types, devices and process counts: the plan a stack makes for a training job and the checks the
container makes at start, with fake CUDA probes (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.errors import TrainingInputError
from training.instance_facts import (
    INSTANCE_TYPE_KEY,
    InstancePlanError,
    gpus_per_instance,
    hyperparameters_for,
    network_problems,
    plan_training,
)
from training.runtime import CudaProbe, DevicePlan, choose_device, driver_version, processes_per_host

NO_GPU = CudaProbe(available=False, device_count=0, torch_cuda="13.0", driver=None)
OLD_DRIVER = CudaProbe(
    available=False,
    device_count=0,
    torch_cuda="13.0",
    driver="535.183.01",
    error="CUDA initialization: The NVIDIA driver on your system is too old (found version 12020).",
)


def _gpus(count: int, name: str = "NVIDIA A10G") -> CudaProbe:
    return CudaProbe(True, count, "13.0", "580.65.06", tuple([name] * count))


@pytest.mark.parametrize(
    ("instance_type", "gpus", "world"),
    [
        ("ml.g5.xlarge", 1, 2),
        ("ml.g5.12xlarge", 4, 8),
        ("ml.g6e.48xlarge", 8, 16),
        ("ml.p4d.24xlarge", 8, 16),
        ("ml.p5.48xlarge", 8, 16),
        ("ml.g4dn.12xlarge", 4, 8),
        ("ml.c5.2xlarge", 0, 2),
    ],
)
def test_a_job_plans_one_process_per_gpu_on_every_host(instance_type: str, gpus: int, world: int) -> None:
    """EC2 "Accelerated computing instance type specifications": g5.12xlarge has 4 A10G, p4d/p5 8 GPUs."""
    layout = plan_training(instance_type, 2)
    assert (layout.gpus_per_host, layout.processes_per_host, layout.world_size) == (gpus, max(1, gpus), world)
    assert layout.device == ("cuda" if gpus else "cpu")
    assert hyperparameters_for(layout) == {"device": layout.device}


@pytest.mark.parametrize(
    ("instance_type", "fragment"),
    [
        ("ml.p3.8xlarge", "NVIDIA V100 GPUs (compute capability 7.0)"),
        ("ml.p3dn.24xlarge", "does not support"),
        ("ml.p2.xlarge", "K80"),
        ("ml.g4ad.xlarge", "ROCm"),
        ("ml.g5g.xlarge", "Arm"),
        ("ml.trn1.2xlarge", "Neuron"),
        ("ml.g5.96xlarge", "not in the table of GPU instance types"),
    ],
)
def test_instance_types_the_image_cannot_use_are_refused_naming_the_key(instance_type: str, fragment: str) -> None:
    with pytest.raises(InstancePlanError) as info:
        plan_training(instance_type, 1)
    message = str(info.value)
    assert message.startswith(f"{INSTANCE_TYPE_KEY}: {instance_type!r}")
    assert fragment in message
    assert "ml.g5.*" in message  # says what is allowed


def test_gpu_counts_of_unknown_and_cpu_types_are_zero() -> None:
    assert gpus_per_instance("ml.g5.48xlarge") == 8
    assert gpus_per_instance("ml.m5.xlarge") == 0
    assert gpus_per_instance("not-an-instance") == 0


def test_several_hosts_need_security_groups_in_a_vpc_and_inter_container_encryption() -> None:
    """AWS: distributed training in a VPC needs a security group allowing traffic between its members
    (train-vpc, "Configure the VPC Security Group"); encryption between hosts (train-encrypt)."""
    two = plan_training("ml.g5.12xlarge", 2)
    problems = network_problems(two, subnet_ids=["subnet-1"], security_group_ids=[], inter_container_encryption=False)
    assert problems[0].startswith("mlplatform:trainingSecurityGroupIds: empty, but 2 hosts")
    assert problems[1].startswith("mlplatform:trainingInterContainerEncryption: false with 2 hosts")
    ok = network_problems(two, subnet_ids=["subnet-1"], security_group_ids=["sg-1"], inter_container_encryption=True)
    assert ok == []
    one = plan_training("ml.g5.12xlarge", 1)  # 4 processes on one host talk over loopback and NVLink/PCIe
    assert network_problems(one, subnet_ids=[], security_group_ids=[], inter_container_encryption=False) == []


def test_a_gpu_instance_type_without_a_usable_gpu_fails_instead_of_training_on_the_cpu() -> None:
    with pytest.raises(TrainingInputError) as info:
        choose_device("auto", "ml.g5.xlarge", OLD_DRIVER)
    message = str(info.value)
    assert "instance type ml.g5.xlarge has 1 GPU(s), but no CUDA device is usable" in message
    assert "refusing to train on the CPU" in message
    assert "torch is built for CUDA 13.0" in message
    assert "the host's NVIDIA driver is 535.183.01" in message
    assert "CUDA 13 needs driver 580 or newer" in message
    assert "The NVIDIA driver on your system is too old" in message


def test_a_cuda_request_without_any_driver_says_so() -> None:
    with pytest.raises(TrainingInputError) as info:
        choose_device("cuda", None, NO_GPU)
    assert "hyperparameter 'device' is 'cuda', but no CUDA device is usable" in str(info.value)
    assert "no NVIDIA driver is visible in the container" in str(info.value)


def test_a_host_that_shows_fewer_gpus_than_its_type_has_fails() -> None:
    with pytest.raises(TrainingInputError) as info:
        choose_device("auto", "ml.g5.12xlarge", _gpus(2))
    assert "instance type ml.g5.12xlarge has 4 NVIDIA A10G GPU(s), but CUDA shows 2" in str(info.value)


@pytest.mark.parametrize(
    ("requested", "instance_type", "probe", "expected"),
    [
        ("auto", "ml.g5.12xlarge", _gpus(4), DevicePlan("cuda", 4)),
        ("cuda", "ml.g5.xlarge", _gpus(1), DevicePlan("cuda", 1)),
        ("auto", "ml.c5.xlarge", NO_GPU, DevicePlan("cpu")),
        ("auto", None, NO_GPU, DevicePlan("cpu")),
        ("auto", None, _gpus(2), DevicePlan("cuda", 2)),
        ("cpu", "ml.g5.xlarge", _gpus(1), DevicePlan("cpu")),
    ],
)
def test_device_choice(requested: str, instance_type: str | None, probe: CudaProbe, expected: DevicePlan) -> None:
    assert choose_device(requested, instance_type, probe) == expected


def test_one_process_per_gpu_unless_told_otherwise() -> None:
    assert processes_per_host(0, DevicePlan("cuda", 8)) == 8
    assert processes_per_host(0, DevicePlan("cpu")) == 1
    assert processes_per_host(2, DevicePlan("cpu")) == 2  # how the tests simulate GPUs with gloo
    with pytest.raises(TrainingInputError, match="'processes_per_host': 5 is more than the 4 GPU"):
        processes_per_host(5, DevicePlan("cuda", 4))


@pytest.mark.parametrize(
    "text",
    [
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:52 UTC 2025\n",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16)\n",
    ],
)
def test_driver_version_is_read_from_the_kernel_module_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "version"
    path.write_text(text + "GCC version:  gcc version 12.2.0\n")
    assert driver_version(path) == "580.65.06"
    assert driver_version(tmp_path / "absent") is None
