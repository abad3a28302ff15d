"""The Spot vCPU quotas (Service Quotas) a run's machines count against, and whether the run fits in them.

AWS caps the vCPUs of an account's running and requested Spot machines per region, one quota per group of instance
families ("Spot Instance quotas", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html). A new
account's Standard quota is 5 vCPUs and every other one is 0, so a first run of more than one m5.xlarge fails in the
fleet's history with spotInstanceCountLimitExceeded (DCP #157). `check` says so before anything is created.

What it cannot see: the Spot machines the account already runs (other runs, other tools) use the same quota. Their
use is not subtracted (that needs CloudWatch's AWS/Usage metrics or a DescribeInstances over the whole account), so
a run that passes here can still hit the quota; the fleet's history then says so (chalicelib/monitor/fleet_words.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.ec2 import instance_vcpus
from chalicelib.aws.servicequotas import quota_value


@dataclass(frozen=True)
class SpotQuota:
    code: str
    name: str


# Codes and names from the Spot Instance quotas table of "Amazon EC2 service quotas" (EC2 User Guide; each row links
# https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/<code>). The P quota is split: P2-P4 in one,
# P5 in another.
STANDARD = SpotQuota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")
G_AND_VT = SpotQuota("L-3819A6DF", "All G and VT Spot Instance Requests")
P2_TO_P4 = SpotQuota("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests")
P5 = SpotQuota("L-C4BD4855", "All P5 Spot Instance Requests")
DL = SpotQuota("L-85EED4F7", "All DL Spot Instance Requests")
F = SpotQuota("L-88CF9481", "All F Spot Instance Requests")
INF = SpotQuota("L-B5D1601B", "All Inf Spot Instance Requests")
TRN = SpotQuota("L-6B0D517C", "All Trn Spot Instance Requests")
X = SpotQuota("L-E3A00192", "All X Spot Instance Requests")
SPOT_QUOTAS = (STANDARD, G_AND_VT, P2_TO_P4, P5, DL, F, INF, TRN, X)

# The family is the letters before the generation digit ("m5.large" -> "m", "g4dn.xlarge" -> "g", "inf2" -> "inf").
# Longer prefixes first where a Standard letter starts another group (dl before d). HPC, Mac and High Memory (u-)
# machines are not offered as Spot: no quota.
_BY_PREFIX: tuple[tuple[str, SpotQuota | None], ...] = (
    ("dl", DL), ("inf", INF), ("trn", TRN), ("vt", G_AND_VT), ("hpc", None), ("mac", None), ("u", None),
    ("g", G_AND_VT), ("f", F), ("x", X),
    ("a", STANDARD), ("c", STANDARD), ("d", STANDARD), ("h", STANDARD), ("i", STANDARD), ("m", STANDARD),
    ("r", STANDARD), ("t", STANDARD), ("z", STANDARD),
)
_FAMILY = re.compile(r"([a-z]+)(\d+)?")


def quota_for(instance_type: str) -> SpotQuota | None:
    """The Spot vCPU quota `instance_type` counts against, or None when no Spot quota is known for its family."""
    match = _FAMILY.match(instance_type.strip().lower())
    if not match:
        return None
    family, generation = match.group(1), match.group(2)
    if family == "p":
        if generation is None:
            return None
        return P2_TO_P4 if int(generation) <= 4 else P5 if int(generation) == 5 else None
    for prefix, quota in _BY_PREFIX:
        if family.startswith(prefix):
            return quota
    return None


@dataclass(frozen=True)
class QuotaReading:
    quota: SpotQuota
    instance_types: tuple[str, ...]
    vcpus_per_machine: int  # the largest among `instance_types`: the fleet may launch any of them
    value: float | None  # the applied quota in vCPUs; None when it could not be read
    unreadable: str | None = None  # why not (AWS's error code)

    @property
    def machines_room(self) -> int | None:
        if self.value is None or self.vcpus_per_machine <= 0:
            return None
        return math.floor(self.value / self.vcpus_per_machine)


@dataclass
class QuotaCheck:
    machines: int
    asked_vcpus: int  # machines x the largest vCPU count among the candidate types
    readings: list[QuotaReading] = field(default_factory=list)
    refusal: str | None = None  # one line: why the run cannot get its machines, and how to raise the quota
    warnings: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.refusal is not None


def read_quota(servicequotas: Any, quota: SpotQuota) -> tuple[float | None, str | None]:
    """(value, None), or (None, why) when Service Quotas would not say: never raises for AWS's refusals."""
    try:
        value = quota_value(servicequotas, "ec2", quota.code)
    except ClientError as error:
        return None, _code(error)
    except BotoCoreError as error:  # no endpoint, no credentials: a preflight warning, not a crash
        return None, type(error).__name__
    return (value, None) if value is not None else (None, "no value")


def check(servicequotas: Any, ec2: Any, instance_types: Iterable[str], machines: int) -> QuotaCheck:
    """Compare what a run asks (`machines` of any of `instance_types`) with the Spot vCPU quotas they count against.

    The run fits when the quotas together hold `machines` machines of the largest type of each quota; it is refused
    only when every quota involved was read and they do not. An unreadable quota (AccessDenied, NoSuchResource, ...)
    or type is a warning, never an error."""
    types = list(dict.fromkeys(instance_types))
    region = getattr(getattr(servicequotas, "meta", None), "region_name", None) or "this region"
    warnings: list[str] = []
    try:
        vcpus = instance_vcpus(ec2, types)
    except (ClientError, BotoCoreError) as error:
        reason = _code(error) if isinstance(error, ClientError) else type(error).__name__
        return QuotaCheck(machines, 0, warnings=[
            f"Could not read the vCPUs of {', '.join(types)} (DescribeInstanceTypes: {reason}); the Spot vCPU quota "
            f"was not checked."])
    unknown = [name for name in types if name not in vcpus]
    if unknown:
        warnings.append(f"AWS does not know the instance type(s) {', '.join(unknown)} in {region}; they were left "
                        "out of the Spot vCPU quota check.")
    by_quota: dict[SpotQuota, list[str]] = {}
    for name in types:
        if name not in vcpus:
            continue
        quota = quota_for(name)
        if quota is None:
            warnings.append(f"{name} counts against no known Spot vCPU quota (not offered as Spot?); left out of "
                            "the quota check.")
            continue
        by_quota.setdefault(quota, []).append(name)
    largest = max((vcpus[name] for group in by_quota.values() for name in group), default=0)
    result = QuotaCheck(machines, machines * largest, warnings=warnings)
    for quota, group in by_quota.items():
        value, why = read_quota(servicequotas, quota)
        result.readings.append(QuotaReading(quota, tuple(group), max(vcpus[name] for name in group), value, why))
    for reading in result.readings:
        if reading.value is None:
            asked = machines * reading.vcpus_per_machine
            warnings.append(
                f"Could not read the Spot vCPU quota \"{reading.quota.name}\" ({reading.quota.code}) in {region}: "
                f"{reading.unreadable}. This run asks up to {asked} vCPUs of it ({machines} x "
                f"{reading.vcpus_per_machine}); check it in the Service Quotas console (Amazon EC2).")
    if result.readings and all(reading.value is not None for reading in result.readings):
        room = sum(reading.machines_room or 0 for reading in result.readings)
        if room < machines:
            result.refusal = _refusal(result, region, room)
    return result


def _refusal(result: QuotaCheck, region: str, room: int) -> str:
    # Name the quota the account already uses most (the largest value): raising it is the likely request; the
    # Standard one when tied (a new account's only non-zero Spot quota).
    target = max(result.readings, key=lambda reading: (reading.value or 0.0, reading.quota == STANDARD))
    needed = result.machines * target.vcpus_per_machine
    quotas = "; ".join(f"\"{reading.quota.name}\" ({reading.quota.code}) is {reading.value:g} vCPUs"
                       for reading in result.readings)
    types = ", ".join(name for reading in result.readings for name in reading.instance_types)
    return (f"The Spot vCPU quota is too small for this run: CLUSTER_MACHINES {result.machines} x "
            f"{target.vcpus_per_machine} vCPUs (the largest of {types}) = {result.asked_vcpus} vCPUs, but in {region} "
            f"{quotas} (room for {room} machine{'s' if room != 1 else ''}). Raise it in the Service Quotas console "
            f"(Amazon EC2, {target.quota.code}) or with `aws service-quotas request-service-quota-increase "
            f"--service-code ec2 --quota-code {target.quota.code} --desired-value {needed} --region {region}`, "
            f"or lower CLUSTER_MACHINES; Spot machines already running in the account use the same quota and are not "
            f"counted here.")


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "") or "unknown error"
