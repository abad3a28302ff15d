"""Typed reads of AWS the rest of the code shares: one function per intent, plain values back, "not found" handled
once (Chalice's TypedAWSClient is the model). No raw response dict leaves this module. The one exception to
"reads": the two fleet writes, which differ by fleet kind and so live beside the fleet reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import DASHBOARD_MISSING, OBJECT_MISSING, QUEUE_MISSING, error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_cloudwatch import CloudWatchClient
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
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ClusterTypeDef, ContainerDefinitionOutputTypeDef, ServiceTypeDef
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# The states, of an EC2 Fleet (FleetState) or a spot fleet request (SpotFleetRequestState), in which a fleet still
# has (or will have) machines; every other state (deleted*, cancelled*, failed) means it is over.
LIVE_FLEET_STATES = ("submitted", "active", "modifying")
SPOT_FLEET_PREFIX = "sfr-"
# An EC2 Fleet id AWS does not know: InvalidFleetId.NotFound / .Malformed (EC2 API error codes).
FLEET_MISSING_PREFIXES = ("InvalidFleetId",)
# 1,000 instances per page: a run's fleet never lists more than a few pages.
MAX_FLEET_INSTANCE_PAGES = 20


@dataclass(frozen=True)
class QueueDepth:
    waiting: int  # visible + delayed: jobs no worker holds yet
    in_flight: int  # received and not deleted: running, or failed and waiting for their retry

    @property
    def empty(self) -> bool:
        return self.waiting == 0 and self.in_flight == 0


def queue_depth(sqs: SQSClient, url: str) -> QueueDepth | None:
    """The queue's approximate counts, or None when the queue no longer exists."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
    return QueueDepth(waiting=int(attributes.get("ApproximateNumberOfMessages", 0))
                      + int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
                      in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)))


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
    if not configs:
        return None
    described = configs[0]
    config = described.get("SpotFleetRequestConfig", {})
    return FleetState(fleet_id=fleet_id, state=described.get("SpotFleetRequestState", ""),
                      activity=described.get("ActivityStatus", ""), target=int(config.get("TargetCapacity", 0)),
                      fulfilled=float(config.get("FulfilledCapacity", 0.0)),
                      tags={tag["Key"]: tag["Value"] for tag in described.get("Tags", ())},
                      spot_price=float(config["SpotPrice"]) if config.get("SpotPrice") else None,
                      instance_types=_instance_types(config.get("LaunchSpecifications", ()),
                                                     config.get("LaunchTemplateConfigs", ())))


def _instance_types(specifications: Iterable[SpotFleetLaunchSpecificationOutputTypeDef],
                    template_configs: Iterable[LaunchTemplateConfigOutputTypeDef]) -> tuple[str, ...]:
    """Of its launch specifications, or of its launch template configs' overrides (start-cluster's fleets)."""
    choices: list[SpotFleetLaunchSpecificationOutputTypeDef | LaunchTemplateOverridesOutputTypeDef]
    choices = list(specifications)
    choices += [override for item in template_configs for override in item.get("Overrides", ())]
    return tuple(dict.fromkeys(choice["InstanceType"] for choice in choices if choice.get("InstanceType")))


def live_tagged_fleet_id(ec2: EC2Client, key: str, value: str) -> str | None:
    """A live fleet of either kind carrying the tag key=value (start-cluster's tag on its run's fleet)."""
    for page in ec2.get_paginator("describe_fleets").paginate():
        for item in page["Fleets"]:
            if _tag_map(item).get(key) == value and item.get("FleetState") in LIVE_FLEET_STATES:
                return item["FleetId"]
    for requests in ec2.get_paginator("describe_spot_fleet_requests").paginate():
        for request in requests["SpotFleetRequestConfigs"]:
            if _tag_map(request).get(key) == value and request["SpotFleetRequestState"] in LIVE_FLEET_STATES:
                return request["SpotFleetRequestId"]
    return None


def _tag_map(resource: FleetDataTypeDef | SpotFleetRequestConfigTypeDef) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", ())}


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
    kwargs: DescribeInstancesRequestPaginateTypeDef
    if fleet_id is not None:
        kwargs = {"Filters": [_LIVE_MACHINE, {"Name": f"tag:{fleet_machine_tag(fleet_id)}", "Values": [fleet_id]}]}
    elif instance_ids:
        kwargs = {"InstanceIds": list(instance_ids), "Filters": [_LIVE_MACHINE]}
    else:
        return ()
    found = [Machine(instance["InstanceId"], instance["LaunchTime"].timestamp())
             for page in ec2.get_paginator("describe_instances").paginate(**kwargs)
             for reservation in page["Reservations"] for instance in reservation["Instances"]]
    return tuple(sorted(found, key=lambda machine: machine.instance_id))


def dead_letter_queue_arn(sqs: SQSClient, url: str) -> str | None:
    """The dead-letter queue of the queue's redrive policy, or None (no policy, or the queue is gone)."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
    try:
        policy = json.loads(attributes.get("RedrivePolicy") or "null")
    except ValueError:
        return None
    # AWS leaves the attribute out when there is no policy; moto answers "null"
    return policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None


def queue_tags(sqs: SQSClient, url: str) -> dict[str, str]:
    """The queue's tags ({} when the queue is gone)."""
    try:
        return sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return {}
        raise


def _ecs_tag_map(resource: ServiceTypeDef | ClusterTypeDef) -> dict[str, str]:
    """ECS's tags of a described resource (`include=["TAGS"]`) as a dict."""
    return {item["key"]: item["value"] for item in resource.get("tags", ())}


@dataclass(frozen=True)
class Service:
    name: str
    arn: str
    desired: int
    task_definition: str
    tags: dict[str, str] = field(default_factory=dict)
    minimum_healthy_percent: int | None = None  # of its deployment configuration


def ecs_service(ecs: ECSClient, cluster: str, name: str) -> Service | None:
    """The ACTIVE service of that exact name, or None (also when the cluster does not exist)."""
    try:
        described = ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"]
    except ClientError as error:
        if error_code(error) == "ClusterNotFoundException":
            return None
        raise
    for item in described:
        if item["serviceName"] == name and item.get("status") == "ACTIVE":
            return Service(name=name, arn=item["serviceArn"], desired=item.get("desiredCount", 0),
                           task_definition=item.get("taskDefinition", ""), tags=_ecs_tag_map(item),
                           minimum_healthy_percent=item.get("deploymentConfiguration", {}).get("minimumHealthyPercent"))
    return None


@dataclass(frozen=True)
class Container:
    name: str
    environment: dict[str, str]
    log_driver: str
    log_options: dict[str, str]


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str
    revision: int
    containers: tuple[Container, ...]

    @property
    def name(self) -> str:
        return f"{self.family}:{self.revision}"


def task_definition(ecs: ECSClient, arn: str) -> TaskDefinition | None:
    """A task definition revision (ACTIVE or INACTIVE), or None when ECS has no such revision."""
    try:
        described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    except ClientError as error:
        if error_code(error) in ("ClientException", "InvalidParameterException"):  # ECS's "no such revision"
            return None
        raise
    return TaskDefinition(arn=described["taskDefinitionArn"], family=described["family"],
                          revision=int(described["revision"]),
                          containers=tuple(_container(item) for item in described.get("containerDefinitions", ())))


def _container(item: ContainerDefinitionOutputTypeDef) -> Container:
    logging = item.get("logConfiguration", {})
    return Container(name=item.get("name", ""),
                     environment={pair["name"]: pair.get("value", "") for pair in item.get("environment", ())},
                     log_driver=logging.get("logDriver", ""), log_options=dict(logging.get("options", {})))


@dataclass(frozen=True)
class Cluster:
    name: str
    active_services: int
    tags: dict[str, str] = field(default_factory=dict)


def ecs_cluster(ecs: ECSClient, name: str) -> Cluster | None:
    """The ACTIVE cluster of that exact name (DS matched by suffix, so "default" also found "my-default")."""
    for item in ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]:
        if item["clusterName"] == name and item.get("status") == "ACTIVE":
            return Cluster(name=name, active_services=item.get("activeServicesCount", 0), tags=_ecs_tag_map(item))
    return None


def cluster_machine_ids(ecs: ECSClient, cluster: str) -> tuple[str, ...]:
    """The EC2 ids of the cluster's ACTIVE container instances."""
    arns = [arn for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster, status="ACTIVE")
            for arn in page["containerInstanceArns"]]
    ids: list[str] = []
    for start in range(0, len(arns), 100):  # DescribeContainerInstances takes at most 100
        described = ecs.describe_container_instances(cluster=cluster, containerInstances=arns[start:start + 100])
        ids.extend(item["ec2InstanceId"] for item in described["containerInstances"] if item.get("ec2InstanceId"))
    return tuple(ids)


def task_definition_arns(ecs: ECSClient, family: str) -> tuple[str, ...]:
    """The ACTIVE revisions of exactly this family (familyPrefix "AppTask" also lists "AppTask2")."""
    pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
    return tuple(arn for page in pages for arn in page["taskDefinitionArns"]
                 if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family)


def alarm_names(cloudwatch: CloudWatchClient, prefix: str = "", names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Names of existing alarms that start with `prefix` (none when it is ''), plus those of `names` that exist."""
    found: set[str] = set()
    paginator = cloudwatch.get_paginator("describe_alarms")
    if prefix:
        found.update(alarm["AlarmName"] for page in paginator.paginate(AlarmNamePrefix=prefix)
                     for alarm in page["MetricAlarms"])
    if names:
        found.update(alarm["AlarmName"] for page in paginator.paginate(AlarmNames=list(names))
                     for alarm in page["MetricAlarms"])
    return tuple(sorted(found))


def tagged_alarm_names(tagging: ResourceGroupsTaggingAPIClient, key: str, value: str) -> tuple[str, ...]:
    """Names of the alarms carrying the tag key=value, whatever their names (the Resource Groups Tagging API: one
    paginated call instead of a ListTagsForResource per alarm)."""
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": key, "Values": [value]}], ResourceTypeFilters=["cloudwatch:alarm"])
    # arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME, and a name may itself hold ':'
    return tuple(sorted(mapping["ResourceARN"].split(":alarm:", 1)[1] for page in pages
                        for mapping in page["ResourceTagMappingList"] if ":alarm:" in mapping["ResourceARN"]))


def dashboard_exists(cloudwatch: CloudWatchClient, name: str) -> bool:
    try:
        cloudwatch.get_dashboard(DashboardName=name)
    except ClientError as error:
        if error_code(error) in DASHBOARD_MISSING:
            return False
        raise
    return True


def log_group_tags(logs: CloudWatchLogsClient, name: str) -> dict[str, str] | None:
    """The log group's tags, or None when it does not exist."""
    try:
        return logs.list_tags_log_group(logGroupName=name).get("tags", {})
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise


def export_task_code(logs: CloudWatchLogsClient, task_id: str) -> str | None:
    """An export task's status code (PENDING, RUNNING, COMPLETED, FAILED, ...), or None when AWS has no such task."""
    try:
        tasks = logs.describe_export_tasks(taskId=task_id)["exportTasks"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    return tasks[0]["status"]["code"] if tasks else None


def export_running_in_account(logs: CloudWatchLogsClient) -> bool:
    """AWS runs one export task per account at a time: is one pending or running now (anyone's)?"""
    for code in ("PENDING", "RUNNING"):
        pages = logs.get_paginator("describe_export_tasks").paginate(statusCode=code)
        # filtered again here: moto ignores statusCode and returns every task
        if any(task.get("status", {}).get("code") == code for page in pages for task in page.get("exportTasks", ())):
            return True
    return False


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in OBJECT_MISSING:
            return False
        raise
    return True


# --------------------------------------------------------------------------- the two fleet writes, for either kind


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


def find_queue_url(sqs: SQSClient, name: str) -> str | None:
    """The queue's URL, or None where no queue has that name."""
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
