"""Which instance types a run may use: attribute-based selection from what its tasks need, when MACHINE_TYPE is
empty, and the one architecture a MACHINE_TYPE list runs on.

Spot capacity of any one type runs out (DCP #166, #199: m-class gone, MEMORY fixed by hand for c5). AWS's advice
is to be flexible across at least 10 instance types ("Best practices for Amazon EC2 Spot", Amazon EC2 User Guide:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-best-practices.html), and attribute-based selection lets
EC2 pick every type that fits, new ones included ("Specify attributes for instance type selection for EC2 Fleet or
Spot Fleet", Amazon EC2 User Guide:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-fleet-attribute-based-instance-type-selection.html).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.model.errors import PreflightError
from chalicelib.model.settings import Settings

# The module, not its names: cluster.py (start-cluster) may import this one at its top.
from operations.start import cluster

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeInfoTypeDef

# The smallest and largest memory per vCPU among the general-purpose families AWS sells for Spot (compute-optimized
# c: 2 GiB, memory-optimized r: 8 GiB). They set how far the maxima below reach past the tasks' needs.
LEANEST_MIB_PER_VCPU = 2048
RICHEST_MIB_PER_VCPU = 8192
# A machine at most this many times the tasks' need in vCPUs and in memory. Spot prices grow about linearly with
# size, and ECS places exactly TASKS_PER_MACHINE tasks per machine's worth of the service's count, so a type twice
# too big costs twice for the same jobs.
OVERSIZE_FACTOR = 2
# Candidates shown and offered to the fleet, smallest first: more than AWS's advice of 10, few enough to read.
MAX_CANDIDATE_TYPES = 40


def instance_requirements(settings: Settings) -> dict[str, Any]:
    """EC2's InstanceRequirements (the CreateFleet override shape) for machines that hold TASKS_PER_MACHINE tasks."""
    tasks = settings.TASKS_PER_MACHINE
    vcpus = math.ceil(tasks * settings.CPU_SHARES / 1024)  # ECS registers vCPUs x 1024 CPU units, no headroom
    memory = machine_memory_for(tasks * settings.MEMORY)
    requirements: dict[str, Any] = {
        "VCpuCount": {"Min": vcpus},
        "MemoryMiB": {"Min": memory},
        # Burstable types run out of CPU credits under a batch job's steady load and then run at their baseline (or
        # bill for surplus credits): their speed is not what their vCPU count says.
        "BurstablePerformance": "excluded",
    }
    gpus = tasks * settings.GPUS_PER_TASK
    if gpus:
        # The GPU is the scarce part: a GPU type's vCPUs and memory come with it, so no maxima on those. ECS's GPU
        # support (and the ECS GPU-optimized AMI) is for NVIDIA GPUs.
        requirements["AcceleratorTypes"] = ["gpu"]
        requirements["AcceleratorManufacturers"] = ["nvidia"]
        requirements["AcceleratorCount"] = {"Min": gpus, "Max": gpus * OVERSIZE_FACTOR}
        return requirements
    # The smallest machine that fits may be lean (c) or rich (r) in memory per vCPU; each maximum leaves room for
    # that, so a memory-heavy run still gets r types and a CPU-heavy one c types, and nothing twice too big.
    requirements["VCpuCount"]["Max"] = OVERSIZE_FACTOR * max(vcpus, math.ceil(memory / RICHEST_MIB_PER_VCPU))
    requirements["MemoryMiB"]["Max"] = OVERSIZE_FACTOR * max(memory, vcpus * LEANEST_MIB_PER_VCPU)
    # GPU machines cost several times a plain one of their size: never for a run that asks no GPU.
    requirements["AcceleratorCount"] = {"Max": 0}
    return requirements


def machine_memory_for(task_memory_mib: int) -> int:
    """The least machine memory that leaves `task_memory_mib` for tasks once the OS and ECS agent have theirs
    (operations/start/cluster.py's headroom)."""
    fraction, least = cluster.MEMORY_HEADROOM_FRACTION, cluster.MEMORY_HEADROOM_MIN_MIB
    total = max(task_memory_mib + least, math.ceil(task_memory_mib / (1 - fraction)))
    while cluster.usable_memory_mib(total) < task_memory_mib:
        total += 1  # the rounding of the fraction can leave it a MiB short
    return total


def candidate_types(ec2: EC2Client, requirements: dict[str, Any], architecture: str) -> list[str]:
    """The instance types in this region that meet `requirements`, smallest (vCPUs, then memory) first, at most
    MAX_CANDIDATE_TYPES of them."""
    names: list[str] = []
    # a dict, not the stubs' request TypedDict: they spell architectures and instance types as Literals of what EC2
    # knew when they were made; ours are strings from the config and from EC2's own answers
    request: dict[str, Any] = {"ArchitectureTypes": [architecture], "VirtualizationTypes": ["hvm"],
                               "InstanceRequirements": requirements}
    names.extend(item["InstanceType"] for item in aws.paged(ec2, "get_instance_types_from_instance_requirements",
                                                             "InstanceTypes", **request))
    sizes: dict[str, tuple[int, int]] = {
        info["InstanceType"]: (info["VCpuInfo"]["DefaultVCpus"], info["MemoryInfo"]["SizeInMiB"])
        for info in describe_types(ec2, names)}
    return sorted(sizes, key=lambda name: (*sizes[name], name))[:MAX_CANDIDATE_TYPES]


def architecture(ec2: EC2Client, instance_types: Iterable[str]) -> str:
    """"x86_64" or "arm64": the one architecture MACHINE_TYPE's types run, as one AMI serves the whole fleet.
    x86_64 when the list is empty (attribute-based selection)."""
    return architecture_of(describe_types(ec2, instance_types))


def architecture_of(described: Iterable[Mapping[str, Any]]) -> str:
    """`architecture` of DescribeInstanceTypes' answers."""
    found: dict[str, list[str]] = {}
    for info in described:
        supported = info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        kind = "arm64" if "arm64" in supported else "x86_64"
        found.setdefault(kind, []).append(info["InstanceType"])
    if len(found) > 1:
        listed = "; ".join(f"{kind}: {', '.join(sorted(types))}" for kind, types in sorted(found.items()))
        raise PreflightError(f"MACHINE_TYPE: expected instance types of one architecture (the fleet's machines share "
                             f"one AMI), got {listed}; keep one architecture or leave MACHINE_TYPE empty")
    return next(iter(found), "x86_64")


def describe_types(ec2: EC2Client, instance_types: Iterable[str]) -> list[InstanceTypeInfoTypeDef]:
    """DescribeInstanceTypes for exactly these types (none: none, where the API would list every type)."""
    instance_types = sorted(set(instance_types))
    described: list[InstanceTypeInfoTypeDef] = []
    for start in range(0, len(instance_types), 100):  # the API's limit of names per call
        try:
            # InstanceTypes in a dict: candidate_types says why
            request: dict[str, Any] = {"InstanceTypes": instance_types[start:start + 100]}
            described.extend(aws.paged(ec2, "describe_instance_types", "InstanceTypes", **request))
        except ClientError as error:
            if error.response["Error"]["Code"] != "InvalidInstanceType":
                raise
            raise PreflightError(f"MACHINE_TYPE: {error.response['Error'].get('Message', error)} in "
                                 f"{ec2.meta.region_name}") from None
    return described
