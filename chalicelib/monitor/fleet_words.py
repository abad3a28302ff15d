"""A fleet's error events (chalicelib/monitor/fleet_history.py) in plain words, one line per cause, with the fix.

Five kinds, each told from AWS's event sub-type and, first, from its description, because the sub-type is coarse:
AWS files "There is no Spot capacity available" under spotFleetRequestConfigurationInvalid too.

- quota: spotInstanceCountLimitExceeded, "Max spot instance count exceeded" (MaxSpotInstanceCountExceeded), a vCPU
  limit: which Spot vCPU quota, its value and the vCPUs this run asks, and how to raise it;
- price: a maximum price (MACHINE_PRICE given to AWS as a bid) below the Spot price ("Spot bid price is less than
  Spot market price $0.0287", launchSpecUnusable);
- invalid configuration: spotFleetRequestConfigurationInvalid, launchSpecUnusable, iamFleetRoleInvalid, ...: which
  field of the fleet file or launch template (an AMI that does not exist, an instance profile, security groups of
  another VPC than the subnets, a key pair, a snapshot);
- no capacity: InsufficientInstanceCapacity, allLaunchSpecsTemporarilyBlacklisted, launchSpecTemporarilyBlacklisted,
  "not supported in the requested Availability Zone": which types and zones, and that more types would help;
- anything else: AWS's code and words as they are.

Sub-types: API_EventInformation.html (Amazon EC2 API Reference: error events iamFleetRoleInvalid,
allLaunchSpecsTemporarilyBlacklisted, spotInstanceCountLimitExceeded, spotFleetRequestConfigurationInvalid;
information events launchSpecTemporarilyBlacklisted, launchSpecUnusable, fleetProgressHalted). Descriptions are
"<type>, <ami>, <platform>[, <zone>], <message>" or "...: <message>" as AWS writes them, e.g.
"m3.large, ami-d0f506b0, Linux/UNIX, us-west-2b, Spot bid price is less than Spot market price $0.0287"
(hashicorp/terraform-provider-aws#3080), "m3.large, ami-00413793e4d8a02c8, Linux/UNIX: There is no Spot capacity
available that matches your request." (#26493), "p2.xlarge, ami-0e02647cb673cb89a, Linux/UNIX, eu-central-1c,
requested instance type is not supported in the requested Availability Zone" (c6fc/npk#70). Error codes of
CreateFleet and DescribeFleets (InsufficientInstanceCapacity, MaxSpotInstanceCountExceeded, SpotMaxPriceTooLow,
UnfulfillableCapacity): "Error codes for the Amazon EC2 API".

AWS's words carry what the user gave and are shown only through `printable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.model.printable import printable
from chalicelib.monitor.fleet_history import FleetError, FleetHistoryUnavailable, fleet_errors
from chalicelib.monitor.spot_quota import QuotaCheck, SpotQuota, quota_for

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client

MAX_AWS_TEXT = 300  # of AWS's own words per line

QUOTA, PRICE, CONFIGURATION, CAPACITY, UNKNOWN = "quota", "price", "configuration", "capacity", "unknown"
_ORDER = (CONFIGURATION, QUOTA, PRICE, CAPACITY, UNKNOWN)  # what blocks the run for good comes first

# An instance type: family and generation, then a size ("m5.large", "c6i.32xlarge", "u-6tb1.metal"), so that a host
# name such as ec2.amazonaws.com is not taken for one.
_TYPE = r"[a-z][a-z0-9-]*\d[a-z0-9-]*\.(?:nano|micro|small|medium|\d*xlarge|large|metal(?:-\d+xl)?)"
_ZONE = r"[a-z]{2}(?:-[a-z0-9]+)*-\d+[a-z]"
_PREFIX = re.compile(rf"^\s*(?P<type>{_TYPE})\s*,\s*(?P<image>[^,:]+?)\s*,\s*(?P<platform>[^,:]+?)"
                     rf"(?:\s*,\s*(?P<zone>{_ZONE}))?\s*[:,]\s*(?P<message>.*)$", re.S)
_ANY_TYPE = re.compile(rf"\b{_TYPE}\b")
_ANY_ZONE = re.compile(rf"\b{_ZONE}\b")
_AMI = re.compile(r"\bami-[0-9a-f]{8,17}\b")
_DOLLARS = re.compile(r"\$\s?(\d+(?:\.\d+)?)")

_QUOTA_CODES = {"spotInstanceCountLimitExceeded", "MaxSpotInstanceCountExceeded", "VcpuLimitExceeded",
                "InstanceLimitExceeded"}
_QUOTA_WORDS = re.compile(r"max spot instance count|instance count limit|vcpu (?:capacity|limit)|"
                          r"MaxSpotInstanceCountExceeded|VcpuLimitExceeded|InstanceLimitExceeded", re.I)
_PRICE_CODES = {"SpotMaxPriceTooLow"}
_PRICE_WORDS = re.compile(r"bid price is less than|price is (?:too )?low|SpotMaxPriceTooLow|"
                          r"max(?:imum)? price .*(?:less|lower) than", re.I)
_CAPACITY_CODES = {"InsufficientInstanceCapacity", "UnfulfillableCapacity", "allLaunchSpecsTemporarilyBlacklisted",
                   "launchSpecTemporarilyBlacklisted", "fleetProgressHalted", "capacity-not-available",
                   "capacity-oversubscribed"}
_CAPACITY_WORDS = re.compile(r"capacity|not supported in the requested availability zone|"
                             r"InsufficientInstanceCapacity|Unsupported", re.I)
_CONFIGURATION_CODES = {"spotFleetRequestConfigurationInvalid", "launchSpecUnusable", "iamFleetRoleInvalid",
                        "InvalidLaunchTemplateConfiguration", "InvalidFleetConfiguration"}
_FLEET_ROLE_FIX = ("the fleet's role (a spot fleet's IamFleetRole; an EC2 Fleet's service-linked role "
                   "AWSServiceRoleForEC2Fleet) may not launch, tag or terminate the machines; check its policy")
# (pattern in AWS's message, the field of the fleet file / launch template, what to do). First match wins.
_FIELDS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"image id|InvalidAMIID|\bami\b.*(?:not exist|not found|deprecated|invalid)|image.*not (?:exist|found)",
                re.I),
     "ImageId", "the AMI {ami}does not exist in this region or is not shared with the account; fix ImageId in the "
                "fleet file (or leave it out to use the current ECS-optimized AMI)"),
    (re.compile(r"instance ?profile", re.I),
     "IamInstanceProfile", "the instance profile is wrong or does not exist; fix IamInstanceProfile in the fleet file "
                           "(the ARN of an instance profile, not of a role)"),
    (re.compile(r"security group.*(?:subnet|network|vpc)|(?:subnet|vpc).*security group|different networks", re.I),
     "SecurityGroups/SubnetId", "the security groups are not in the subnets' VPC; give groups of that VPC"),
    (re.compile(r"subnet", re.I),
     "SubnetId", "a subnet does not exist in this region or account; fix SubnetId in the fleet file"),
    (re.compile(r"security group|InvalidGroup", re.I),
     "SecurityGroups", "a security group does not exist in this region or account; fix SecurityGroups"),
    (re.compile(r"key ?pair|InvalidKeyPair|key name", re.I),
     "KeyName", "the key pair does not exist in this region; fix KeyName or leave it out"),
    (re.compile(r"snapshot|block ?device|volume", re.I),
     "BlockDeviceMappings", "a block device (its snapshot, size or type) is not valid; fix BlockDeviceMappings"),
    (re.compile(r"architecture|virtualization|not supported by the (?:ami|image)", re.I),
     "ImageId/InstanceType", "the AMI's architecture does not fit the instance type; use an AMI for that "
                             "architecture or other types"),
    (re.compile(r"launch ?template", re.I),
     "LaunchTemplate", "the launch template is missing or not valid (start-cluster makes it: run it again)"),
    (re.compile(r"iamFleetRole|fleet role|not authorized|UnauthorizedOperation|permission", re.I),
     "IamFleetRole", _FLEET_ROLE_FIX),
    (re.compile(r"user ?data", re.I),
     "UserData", "the user data is not valid"),
)


@dataclass
class Finding:
    """One cause, with the events that showed it."""

    kind: str
    codes: list[str] = field(default_factory=list)
    count: int = 0
    pools: list[tuple[str, str | None]] = field(default_factory=list)  # (instance type, zone or None: any)
    field_name: str | None = None
    fix: str = ""
    message: str = ""  # AWS's words (untrusted)
    market_price: float | None = None

    @property
    def instance_types(self) -> list[str]:
        return list(dict.fromkeys(instance_type for instance_type, _ in self.pools))

    def where(self) -> str:
        """The Spot pools named: "m5.large in us-east-1a, us-east-1b; c5.large" (a type without a zone: any)."""
        by_type: dict[str, list[str]] = {}
        for instance_type, zone in self.pools:
            zones = by_type.setdefault(instance_type, [])
            if zone and zone not in zones:
                zones.append(zone)
        return "; ".join(f"{name} in {', '.join(zones)}" if zones else name for name, zones in by_type.items())


@dataclass
class _Event:
    """What one error event says: its kind, what makes it the same cause as another, and its details."""

    kind: str
    key: tuple[str | None, ...]
    message: str
    pools: list[tuple[str, str | None]]
    field_name: str | None = None
    fix: str = ""
    market_price: float | None = None


def findings(errors: Iterable[FleetError]) -> list[Finding]:
    """The causes behind `errors`, deduplicated, most blocking first."""
    found: dict[tuple[str, tuple[str | None, ...]], Finding] = {}
    for error in errors:
        event = _classify(error)
        finding = found.get((event.kind, event.key))
        if finding is None:
            finding = found[(event.kind, event.key)] = Finding(event.kind, field_name=event.field_name,
                                                               fix=event.fix, message=event.message)
        finding.count += 1
        if error.code not in finding.codes:
            finding.codes.append(error.code)
        finding.pools += [pool for pool in event.pools if pool not in finding.pools]
        if event.market_price is not None:
            finding.market_price = max(finding.market_price or 0.0, event.market_price)
    return sorted(found.values(), key=lambda finding: _ORDER.index(finding.kind))


def explain(errors: Iterable[FleetError], *, machine_price: float | None = None,
            quota: QuotaCheck | None = None) -> list[str]:
    """One line per cause: what AWS reported, how often, and the fix. `machine_price` (MACHINE_PRICE, when it went
    to AWS as a bid) and `quota` (spot_quota.check of the run) make the price and quota lines exact."""
    return [_words(finding, machine_price, quota) for finding in findings(errors)]


def fleet_problems(ec2: EC2Client, fleet_id: str, since: datetime, *, machine_price: float | None = None,
                   quota: QuotaCheck | None = None) -> list[str]:
    """`explain` of the fleet's errors since `since`; a history AWS will not give is one line too, never an error."""
    try:
        errors = fleet_errors(ec2, fleet_id, since)
    except FleetHistoryUnavailable as error:
        return [f"Could not read the history of fleet {printable(fleet_id)} ({printable(error.reason)}); see it in "
                "the EC2 console (Spot Requests, or EC2 Fleets)."]
    lines = explain(errors, machine_price=machine_price, quota=quota)
    if not errors.complete:
        lines.append(f"(only the oldest {len(errors)} error events since {since:%Y-%m-%d %H:%M} were read)")
    return lines


# --------------------------------------------------------------------------- classification


def _classify(error: FleetError) -> _Event:
    text, code = error.description, error.code
    parsed = _PREFIX.match(text)
    if parsed:
        message, image = parsed.group("message").strip(), parsed.group("image")
        pools = [(parsed.group("type"), parsed.group("zone"))]
    else:
        zones = _ANY_ZONE.findall(text)
        message, image = text.strip(), None
        pools = [(name, zones[0] if len(zones) == 1 else None) for name in dict.fromkeys(_ANY_TYPE.findall(text))]
    if code in _QUOTA_CODES or _QUOTA_WORDS.search(text):
        return _Event(QUOTA, (), message, pools)
    if code in _PRICE_CODES or _PRICE_WORDS.search(text):
        prices = _DOLLARS.findall(message)
        return _Event(PRICE, (), message, pools, market_price=float(prices[-1]) if prices else None)
    for pattern, field_name, fix in _FIELDS:
        if pattern.search(message):
            amis = _AMI.findall(message) or ([image] if image and _AMI.fullmatch(image) else [])
            ami = amis[0] if amis else ""
            return _Event(CONFIGURATION, (field_name, ami), message, pools, field_name,
                          fix.format(ami=f"{ami} " if ami else ""))
    if code == "iamFleetRoleInvalid":
        return _Event(CONFIGURATION, ("IamFleetRole", ""), message, pools, "IamFleetRole", _FLEET_ROLE_FIX)
    if code in _CAPACITY_CODES or _CAPACITY_WORDS.search(text):
        return _Event(CAPACITY, (), message, pools)
    if code in _CONFIGURATION_CODES:
        return _Event(CONFIGURATION, (None, code, message), message, pools, None,
                      "check the fleet file and the launch template against AWS's words")
    return _Event(UNKNOWN, (code, text), message, pools)


# --------------------------------------------------------------------------- words


def _words(finding: Finding, machine_price: float | None, quota: QuotaCheck | None) -> str:
    seen = f"{', '.join(printable(code) for code in finding.codes)}, {_times(finding.count)}"
    where = finding.where()
    if finding.kind == QUOTA:
        return f"Spot vCPU quota reached ({seen}): {_quota_words(finding, quota)}"
    if finding.kind == PRICE:
        market = f" (${finding.market_price:g}/h)" if finding.market_price is not None else ""
        bid = f" (${machine_price:g})" if machine_price is not None else ""
        return (f"Spot price above the bid ({seen}): the Spot price of {where or 'the types'}{market} is above "
                f"MACHINE_PRICE{bid}, which went to AWS as the maximum price (a bid). Raise MACHINE_PRICE, let it be "
                "only the run's cost ceiling instead of a bid, or add cheaper instance types.")
    if finding.kind == CAPACITY:
        pools = where or "machines of the types asked"
        return (f"No Spot capacity ({seen}): AWS has no spare (or does not offer) {pools} right now, and the fleet "
                "keeps trying. More instance types (MACHINE_TYPE) and subnets in more zones "
                "would help.")
    if finding.kind == CONFIGURATION:
        field_name = f"{finding.field_name}: " if finding.field_name else ""
        return f"Invalid launch configuration ({seen}): {field_name}{finding.fix}.{_aws_said(finding.message)}"
    return f"AWS reports {seen}.{_aws_said(finding.message)}"


def _quota_words(finding: Finding, check: QuotaCheck | None) -> str:
    named: list[SpotQuota] = []
    for instance_type in finding.instance_types:
        quota = quota_for(instance_type)
        if quota is not None and quota not in named:
            named.append(quota)
    readings = [reading for reading in (check.readings if check else ()) if not named or reading.quota in named]
    if check is not None and readings:
        reading = max(readings, key=lambda reading: reading.vcpus_per_machine)
        value = f"{reading.value:g} vCPUs" if reading.value is not None else "unreadable here"
        asked = check.machines * reading.vcpus_per_machine
        return (f"\"{reading.quota.name}\" ({reading.quota.code}) is {value} and this run asks {asked} vCPUs "
                f"({check.machines} x {reading.vcpus_per_machine}). Raise it in the Service Quotas console "
                f"(Amazon EC2, {reading.quota.code}) or with `aws service-quotas request-service-quota-increase "
                f"--service-code ec2 --quota-code {reading.quota.code} --desired-value {asked}`; other Spot "
                "machines of the account use the same quota.")
    if named:
        quota = named[0]
        return (f"the account's \"{quota.name}\" ({quota.code}) is full for {', '.join(finding.instance_types)}. "
                f"Raise it in the Service Quotas console (Amazon EC2, {quota.code}) or with `aws service-quotas "
                f"request-service-quota-increase --service-code ec2 --quota-code {quota.code} --desired-value N`.")
    return ("the account's Spot vCPU quota for these instance types is full. Raise it in the Service Quotas console "
            "(Amazon EC2, \"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\", L-34B43A08, or the "
            "one of the types' family).")


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _aws_said(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    return f" AWS said: \"{printable(text if len(text) <= MAX_AWS_TEXT else text[:MAX_AWS_TEXT - 3] + '...')}\""
