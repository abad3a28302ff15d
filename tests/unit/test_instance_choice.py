"""Which instance types a run may use: attribute-based selection from the tasks' needs, or MACHINE_TYPE's one
architecture; against moto (the emulator answers GetInstanceTypesFromInstanceRequirements, localrun/moto_patches.py)."""

import boto3
import pytest

from chalicelib.model.errors import PreflightError
from operations.start.cluster import fit_problem, usable_memory_mib
from operations.start.instance_choice import (
    MAX_CANDIDATE_TYPES,
    architecture,
    candidate_types,
    instance_requirements,
    machine_memory_for,
)
from operations.start.machine_image import latest_ecs_ami
from tests.conftest import make_settings

REGION = "us-east-1"


@pytest.fixture
def ec2(aws):
    return boto3.client("ec2", region_name=REGION)


def _described(ec2, names):
    return {info["InstanceType"]: info for page in ec2.get_paginator("describe_instance_types").paginate(
        InstanceTypes=names) for info in page["InstanceTypes"]}


def test_requirements_hold_the_tasks_with_the_ecs_headroom_and_nothing_twice_too_big():
    settings = make_settings(MACHINE_TYPE=[], TASKS_PER_MACHINE=3, CPU_SHARES=1536, MEMORY=4000)
    memory = machine_memory_for(12000)
    assert usable_memory_mib(memory) >= 12000 > usable_memory_mib(memory - 1)
    assert instance_requirements(settings) == {
        "VCpuCount": {"Min": 5, "Max": 10},  # ceil(3 x 1536 / 1024)
        "MemoryMiB": {"Min": memory, "Max": 2 * memory},
        "BurstablePerformance": "excluded",
        "AcceleratorCount": {"Max": 0},
    }


@pytest.mark.parametrize("task_memory", [1, 100, 1024, 4000, 4267, 4268, 15000, 100_000])
def test_machine_memory_is_the_least_that_leaves_the_tasks_theirs(task_memory):
    memory = machine_memory_for(task_memory)
    assert usable_memory_mib(memory) >= task_memory > usable_memory_mib(memory - 1)


def test_an_empty_machine_type_gives_many_candidate_types_that_all_hold_the_tasks(ec2):
    settings = make_settings(MACHINE_TYPE=[], TASKS_PER_MACHINE=2, CPU_SHARES=1024, MEMORY=3000)
    assert settings.MACHINE_TYPE == ()
    requirements = instance_requirements(settings)
    types = candidate_types(ec2, requirements, architecture(ec2, settings.MACHINE_TYPE))
    assert 10 <= len(types) <= MAX_CANDIDATE_TYPES  # AWS's advice for Spot: at least 10 types
    assert {"m5.large", "c5.xlarge"} <= set(types)
    described = _described(ec2, types)
    sizes = [(described[name]["VCpuInfo"]["DefaultVCpus"], described[name]["MemoryInfo"]["SizeInMiB"])
             for name in types]
    assert sizes == sorted(sizes)  # smallest first: a bound drops the biggest
    for name, (vcpus, memory) in zip(types, sizes, strict=True):
        assert fit_problem(name, memory, vcpus, settings) is None, name
        assert vcpus <= requirements["VCpuCount"]["Max"] and memory <= requirements["MemoryMiB"]["Max"], name
        assert "x86_64" in described[name]["ProcessorInfo"]["SupportedArchitectures"], name
        assert not described[name]["BurstablePerformanceSupported"] and not described[name].get("GpuInfo"), name


def test_arm64_types_resolve_the_arm64_ami(ec2):
    ssm = boto3.client("ssm", region_name=REGION)
    kind = architecture(ec2, ["m6g.large", "c7g.xlarge"])
    assert kind == "arm64"
    image = latest_ecs_ami(ssm, kind, gpu=False)
    assert image.parameter == "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
    assert ec2.describe_images(ImageIds=[image.image_id])["Images"][0]["Architecture"] == "arm64"
    types = candidate_types(ec2, instance_requirements(make_settings(MACHINE_TYPE=[])), kind)
    assert "c6g.large" in types and all(
        "arm64" in info["ProcessorInfo"]["SupportedArchitectures"] for info in _described(ec2, types).values())


def test_gpus_ask_gpu_types_and_the_gpu_ami(ec2):
    settings = make_settings(MACHINE_TYPE=[], GPUS_PER_TASK=1, TASKS_PER_MACHINE=1, MEMORY=8000)
    requirements = instance_requirements(settings)
    assert requirements["AcceleratorTypes"] == ["gpu"] and requirements["AcceleratorCount"] == {"Min": 1, "Max": 2}
    assert "Max" not in requirements["VCpuCount"] and "Max" not in requirements["MemoryMiB"]
    kind = architecture(ec2, settings.MACHINE_TYPE)
    types = candidate_types(ec2, requirements, kind)
    assert "g4dn.xlarge" in types and "m5.large" not in types
    for name, info in _described(ec2, types).items():
        assert info["GpuInfo"]["Gpus"][0]["Manufacturer"] == "NVIDIA", name
        assert fit_problem(name, info["MemoryInfo"]["SizeInMiB"], info["VCpuInfo"]["DefaultVCpus"], settings) is None
    image = latest_ecs_ami(boto3.client("ssm", region_name=REGION), kind, gpu=True)
    assert "-ecs-gpu-" in ec2.describe_images(ImageIds=[image.image_id])["Images"][0]["Name"]


def test_a_machine_type_list_mixing_architectures_is_refused_naming_the_key_and_the_types(ec2):
    with pytest.raises(PreflightError) as refused:
        architecture(ec2, ["m5.large", "m6g.large", "c5.xlarge"])
    assert refused.value.exit_code == 2
    assert str(refused.value) == (
        "MACHINE_TYPE: expected instance types of one architecture (the fleet's machines share one AMI), got arm64: "
        "m6g.large; x86_64: c5.xlarge, m5.large; keep one architecture or leave MACHINE_TYPE empty")


def test_an_unknown_machine_type_is_refused_naming_the_key(ec2):
    with pytest.raises(PreflightError) as refused:
        architecture(ec2, ["m5.large", "m5.huge"])
    assert str(refused.value).startswith("MACHINE_TYPE: ") and "m5.huge" in str(refused.value)
