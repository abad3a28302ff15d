"""EC2, by intent: fleets of either kind (read, resized, ended), machines, launch templates, instance types."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        DescribeFleetInstancesRequestTypeDef,
        DescribeInstancesRequestPaginateTypeDef,
        FilterTypeDef,
        FleetDataTypeDef,
        LaunchTemplateConfigOutputTypeDef,
        LaunchTemplateOverridesOutputTypeDef,
        SpotFleetLaunchSpecificationOutputTypeDef,
        SpotFleetRequestConfigTypeDef,
    )

# TerminateInstances: "up to 1000 instance IDs" a call (EC2 API Reference, TerminateInstances).
MAX_TERMINATE_IDS = 1000
# DescribeInstanceTypes takes at most 100 names a call (EC2 API Reference, DescribeInstanceTypes).
MAX_INSTANCE_TYPE_NAMES = 100
# DescribeInstances: "no more than 1,000 IDs in a single call", and by filter pages of MaxResults 5-1000 ("Pagination
# in the Amazon EC2 API", EC2 developer guide): 1,000 machines are one call either way.
MAX_DESCRIBE_INSTANCE_IDS = 1000
DESCRIBE_INSTANCES_PAGE = 1000
# A launch template that is gone: AWS's code for an unknown id, and for an unknown name ("Error codes for the
# Amazon EC2 API"); moto answers the name's code whichever was given.
LAUNCH_TEMPLATE_MISSING = ("InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException")


# The states, of an EC2 Fleet (FleetState) or a spot fleet request (SpotFleetRequestState), in which a fleet still
# has (or will have) machines; every other state (deleted*, cancelled*, failed) means it is over.
LIVE_FLEET_STATES = ("submitted", "active", "modifying")


SPOT_FLEET_PREFIX = "sfr-"


# An EC2 Fleet id AWS does not know: InvalidFleetId.NotFound / .Malformed (EC2 API error codes).
FLEET_MISSING_PREFIXES = ("InvalidFleetId",)


# 1,000 instances per page: a run's fleet never lists more than a few pages.
MAX_FLEET_INSTANCE_PAGES = 20


@dataclass(frozen=True)
class FleetState:
    fleet_id: str
    state: str  # AWS's FleetState (EC2 Fleet) or SpotFleetRequestState (spot fleet)
    activity: str  # AWS's ActivityStatus: fulfilled | pending_fulfillment | error | ...
    target: int
    fulfilled: float
    tags: dict[str, str] = field(default_factory=dict)
    spot_price: float | None = None  # the request's maximum price per machine-hour, when it sets one
    instance_types: tuple[str, ...] = ()  # of its launch specifications or overrides

    @property
    def live(self) -> bool:
        return self.state in LIVE_FLEET_STATES


def is_spot_fleet(fleet_id: str) -> bool:
    """Two kinds of fleet, told apart by their ids: start-cluster's EC2 Fleets ("fleet-...") and the spot fleet
    requests of Distributed-Something and of this project's earlier versions ("sfr-..."), still watched and
    torn down."""
    return fleet_id.startswith(SPOT_FLEET_PREFIX)


def fleet_state(ec2: EC2Client, fleet_id: str) -> FleetState | None:
    """The fleet's state, or None when AWS no longer knows it (moto forgets a cancelled spot fleet)."""
    if is_spot_fleet(fleet_id):
        return _spot_fleet_state(ec2, fleet_id)
    try:
        fleets = ec2.describe_fleets(FleetIds=[fleet_id])["Fleets"]
    except ClientError as error:
        if error_code(error).startswith(FLEET_MISSING_PREFIXES):
            return None
        raise
    if not fleets:
        return None
    return _ec2_fleet_state(fleets[0])


def _ec2_fleet_state(described: FleetDataTypeDef) -> FleetState:
    overrides = [override for item in described.get("LaunchTemplateConfigs", ())
                 for override in item.get("Overrides", ())]
    prices = {override["MaxPrice"] for override in overrides if override.get("MaxPrice")}
    return FleetState(fleet_id=described["FleetId"], state=described.get("FleetState", ""),
                      activity=described.get("ActivityStatus", ""),
                      target=int(described.get("TargetCapacitySpecification", {}).get("TotalTargetCapacity", 0)),
                      fulfilled=float(described.get("FulfilledCapacity", 0.0)),
                      tags={tag["Key"]: tag["Value"] for tag in described.get("Tags", ())},
                      spot_price=max(float(price) for price in prices) if prices else None,
                      instance_types=tuple(dict.fromkeys(override["InstanceType"] for override in overrides
                                                         if override.get("InstanceType"))))


def _spot_fleet_state(ec2: EC2Client, fleet_id: str) -> FleetState | None:
    try:
        configs = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet_id])["SpotFleetRequestConfigs"]
    except ClientError as error:
        if error_code(error).startswith("InvalidSpotFleetRequestId"):
            return None
        raise
    return _spot_request_state(configs[0]) if configs else None


def _spot_request_state(described: SpotFleetRequestConfigTypeDef) -> FleetState:
    config = described.get("SpotFleetRequestConfig", {})
    return FleetState(fleet_id=described["SpotFleetRequestId"], state=described.get("SpotFleetRequestState", ""),
                      activity=described.get("ActivityStatus", ""), target=int(config.get("TargetCapacity", 0)),
                      fulfilled=float(config.get("FulfilledCapacity", 0.0)),
                      tags={tag["Key"]: tag["Value"] for tag in described.get("Tags", ())},
                      spot_price=float(config["SpotPrice"]) if config.get("SpotPrice") else None,
                      instance_types=_instance_types(config.get("LaunchSpecifications", ()),
                                                     config.get("LaunchTemplateConfigs", ())))


# AWS's largest page for both listings (DescribeFleets and DescribeSpotFleetRequests, MaxResults up to 1,000)
FLEETS_PAGE = 1000


def all_fleet_states(ec2: EC2Client, spot_fleets: bool = True) -> dict[str, FleetState]:
    """Every EC2 Fleet of the region (and with `spot_fleets` every Spot Fleet request), by id: one listing, 1,000 a
    page, instead of a call per fleet. EC2 throttles each Describe action of an account on its own (a bucket of 100
    calls refilled at 20 a second, "Request throttling for the Amazon EC2 API"), so a tick of 1,000 runs cannot ask
    for each run's fleet on its own. A fleet AWS no longer knows is not in it (fleet_state's None)."""
    states = {fleet["FleetId"]: _ec2_fleet_state(fleet)
              for page in ec2.get_paginator("describe_fleets").paginate(PaginationConfig={"PageSize": FLEETS_PAGE})
              for fleet in page["Fleets"]}
    if spot_fleets:
        pages = ec2.get_paginator("describe_spot_fleet_requests").paginate(
            PaginationConfig={"PageSize": FLEETS_PAGE})
        states.update((request["SpotFleetRequestId"], _spot_request_state(request))
                      for page in pages for request in page["SpotFleetRequestConfigs"])
    return states


def _instance_types(specifications: Iterable[SpotFleetLaunchSpecificationOutputTypeDef],
                    template_configs: Iterable[LaunchTemplateConfigOutputTypeDef]) -> tuple[str, ...]:
    """Of its launch specifications, or of its launch template configs' overrides (start-cluster's fleets)."""
    choices: list[SpotFleetLaunchSpecificationOutputTypeDef | LaunchTemplateOverridesOutputTypeDef]
    choices = list(specifications)
    choices += [override for item in template_configs for override in item.get("Overrides", ())]
    return tuple(dict.fromkeys(choice["InstanceType"] for choice in choices if choice.get("InstanceType")))


def live_tagged_fleet_id(ec2: EC2Client, key: str, value: str) -> str | None:
    """A live fleet of either kind carrying the tag key=value (start-cluster's tag on its run's fleet)."""
    return next((fleet_id for fleet_id, fleet in all_fleet_states(ec2).items()
                 if fleet.tags.get(key) == value and fleet.state in LIVE_FLEET_STATES), None)


def fleet_user_data(ec2: EC2Client, fleet_id: str) -> tuple[str, ...]:
    """The base64 user data of each of a spot fleet request's launch specifications ('' where one has none;
    none at all for a fleet of launch templates, an EC2 Fleet, or one AWS no longer knows)."""
    if not is_spot_fleet(fleet_id):
        return ()
    try:
        configs = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet_id])["SpotFleetRequestConfigs"]
    except ClientError as error:
        if error_code(error).startswith("InvalidSpotFleetRequestId"):
            return ()
        raise
    specs = configs[0].get("SpotFleetRequestConfig", {}).get("LaunchSpecifications", ()) if configs else ()
    return tuple(spec.get("UserData") or "" for spec in specs)


def fleet_instance_ids(ec2: EC2Client, fleet_id: str) -> tuple[str, ...]:
    """The machines a live fleet lists as its own (a cancelled or deleted one lists none)."""
    if is_spot_fleet(fleet_id):
        pages = ec2.get_paginator("describe_spot_fleet_instances").paginate(SpotFleetRequestId=fleet_id)
        return tuple(item["InstanceId"] for page in pages for item in page.get("ActiveInstances", ()))
    found: list[str] = []
    kwargs: DescribeFleetInstancesRequestTypeDef = {"FleetId": fleet_id}
    for _ in range(MAX_FLEET_INSTANCE_PAGES):  # botocore has no paginator for DescribeFleetInstances
        try:
            page = ec2.describe_fleet_instances(**kwargs)
        except ClientError as error:
            if error_code(error).startswith(FLEET_MISSING_PREFIXES):
                return ()
            raise
        found += [item["InstanceId"] for item in page.get("ActiveInstances", ())]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tuple(found)


def fleet_machine_tag(fleet_id: str) -> str:
    """The tag AWS puts on every machine a fleet launches, naming the fleet: it still finds the survivors of a
    deleted fleet, which no longer lists them."""
    return "aws:ec2spot:fleet-request-id" if is_spot_fleet(fleet_id) else "aws:ec2:fleet-id"


def tagged_launch_template_ids(ec2: EC2Client, key: str, value: str) -> tuple[str, ...]:
    """Ids of the launch templates carrying the tag key=value exactly (filtered by EC2, checked again here so a
    template is never taken on the filter's word alone). Sorted."""
    pages = ec2.get_paginator("describe_launch_templates").paginate(
        Filters=[{"Name": f"tag:{key}", "Values": [value]}])
    return tuple(sorted(template["LaunchTemplateId"] for page in pages for template in page.get("LaunchTemplates", ())
                        if {tag["Key"]: tag["Value"] for tag in template.get("Tags", ())}.get(key) == value))


@dataclass(frozen=True)
class Machine:
    instance_id: str
    launched_at: float  # epoch seconds


_LIVE_MACHINE: FilterTypeDef = {"Name": "instance-state-name", "Values": ["pending", "running"]}


def live_machines(ec2: EC2Client, instance_ids: tuple[str, ...] = (),
                  fleet_id: str | None = None) -> tuple[Machine, ...]:
    """Pending or running machines, by id or (`fleet_id`) by the tag AWS puts on a fleet's machines
    (fleet_machine_tag). Sorted by id."""
    requests: list[DescribeInstancesRequestPaginateTypeDef]
    if fleet_id is not None:
        requests = [{"Filters": [_LIVE_MACHINE, {"Name": f"tag:{fleet_machine_tag(fleet_id)}", "Values": [fleet_id]}],
                     "PaginationConfig": {"PageSize": DESCRIBE_INSTANCES_PAGE}}]
    else:  # by ids AWS takes no MaxResults and answers whole: the chunks bound each answer
        requests = [{"InstanceIds": list(instance_ids[start:start + MAX_DESCRIBE_INSTANCE_IDS]),
                     "Filters": [_LIVE_MACHINE]}
                    for start in range(0, len(instance_ids), MAX_DESCRIBE_INSTANCE_IDS)]
    paginator = ec2.get_paginator("describe_instances")
    found = [Machine(instance["InstanceId"], instance["LaunchTime"].timestamp())
             for kwargs in requests for page in paginator.paginate(**kwargs)
             for reservation in page["Reservations"] for instance in reservation["Instances"]]
    return tuple(sorted(found, key=lambda machine: machine.instance_id))


def set_fleet_target(ec2: EC2Client, fleet_id: str, target: int) -> None:
    """Set the fleet's target without AWS picking machines to end: the caller terminates the idle ones it chose
    (no-termination), so a busy machine is never taken."""
    if is_spot_fleet(fleet_id):
        ec2.modify_spot_fleet_request(SpotFleetRequestId=fleet_id, TargetCapacity=int(target),
                                      ExcessCapacityTerminationPolicy="noTermination")
    else:
        ec2.modify_fleet(FleetId=fleet_id, TargetCapacitySpecification={"TotalTargetCapacity": int(target)},
                         ExcessCapacityTerminationPolicy="no-termination")


# DeleteFleets reports per fleet instead of raising (DeleteFleetErrorCode): these mean it is already gone.
FLEET_DELETE_GONE = ("fleetIdDoesNotExist", "fleetIdMalformed", "fleetNotInDeletableState")


def delete_fleet(ec2: EC2Client, fleet_id: str) -> None:
    """End the fleet and its machines. A fleet already gone is not an error, as for the other teardown steps."""
    if is_spot_fleet(fleet_id):
        ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[fleet_id], TerminateInstances=True)
        return
    answer = ec2.delete_fleets(FleetIds=[fleet_id], TerminateInstances=True)
    for failed in answer.get("UnsuccessfulFleetDeletions", ()):
        code = failed.get("Error", {}).get("Code", "")
        if code not in FLEET_DELETE_GONE:
            raise ClientError({"Error": {"Code": code or "unexpectedError",
                                         "Message": failed.get("Error", {}).get("Message", "")}}, "DeleteFleets")


def terminate(ec2: EC2Client, instance_ids: Sequence[str]) -> None:
    for start in range(0, len(instance_ids), MAX_TERMINATE_IDS):
        ec2.terminate_instances(InstanceIds=list(instance_ids[start:start + MAX_TERMINATE_IDS]))


def delete_launch_templates(ec2: EC2Client, template_ids: Iterable[str]) -> None:
    """One per call (DeleteLaunchTemplate takes one); one already gone does not keep the others."""
    for template_id in template_ids:
        try:
            ec2.delete_launch_template(LaunchTemplateId=template_id)
        except ClientError as error:
            if error_code(error) not in LAUNCH_TEMPLATE_MISSING:
                raise


def instance_vcpus(ec2: EC2Client, instance_types: Iterable[str]) -> dict[str, int]:
    """DefaultVCpus of each type (DescribeInstanceTypes); a type AWS does not know is left out."""
    wanted = sorted(set(instance_types))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), MAX_INSTANCE_TYPE_NAMES):
        chunk = wanted[start:start + MAX_INSTANCE_TYPE_NAMES]
        try:
            for page in ec2.get_paginator("describe_instance_types").paginate(InstanceTypes=chunk):  # type: ignore[arg-type]
                for item in page.get("InstanceTypes", ()):
                    found[item["InstanceType"]] = int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0))
        except ClientError as error:
            if error_code(error) != "InvalidInstanceType":
                raise
            for name in chunk:  # one unknown name fails the whole call: ask one by one
                try:
                    answer = ec2.describe_instance_types(InstanceTypes=[name])  # type: ignore[list-item]
                except ClientError:
                    continue
                for item in answer.get("InstanceTypes", ()):
                    found[item["InstanceType"]] = int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0))
    return found
