"""`start-cluster`: preflight checks, then the spot fleet, run record, alarms, dashboard and workers.

Preflight only reads. Each failed check raises PreflightError with one line
saying what is wrong and how to fix it, before anything is created; checks
that cannot be sure (an empty queue, no visible route to AWS without a public
IP) become warnings.

Then, in an order that is safe to re-run after a crash at any point:
ECS agent config -> spot fleet (or the run's live fleet, found again through
the run record or the fleet's `dsr:app` tag) -> run record -> queue alarms ->
dashboard -> service desired count -> wait for the fleet. Every step writes
only what differs, so re-running start-cluster on a live run changes nothing.

One fleet per run, even when two start-clusters of one run start at once:
before requesting a fleet, start-cluster claims the run with an S3 conditional
write of `monitors/APP_NAME_claim.json` (see `claim_run`). The claim is a
compare-and-swap register: absent -> {holder, no fleet} -> {holder, its fleet},
every write conditional (If-None-Match: * to create, If-Match: ETag to change),
so of two writers exactly one wins each step.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.aws.ec2 import LIVE_FLEET_STATES, delete_fleet, fleet_instance_ids, fleet_state, live_tagged_fleet_id
from chalicelib.aws.ecs import ecs_cluster, ecs_service, set_service_count
from chalicelib.aws.s3 import read_object
from chalicelib.aws.sqs import find_queue_url, queue_depth
from chalicelib.model import names
from chalicelib.model.errors import PreflightError, StartConflict
from chalicelib.model.jobs import output_root
from chalicelib.model.settings import Settings
from chalicelib.monitor import runrecord, runs, spot_quota
from chalicelib.monitor.fleet_words import fleet_problems
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.output_rule import OutputRule
from chalicelib.monitor.runrecord import RunRecord
from chalicelib.monitor.spot_quota import QuotaCheck
from operations.setup import job_access
from operations.setup.iam import writes_reach_reserved
from operations.setup.resources import find_task_definition, find_topic_arn
from operations.start import dashboard, instance_choice, spot_prices
from operations.start.fleet import DATA_VOLUME_INDEX, FleetFile
from operations.start.instance_choice import instance_requirements
from operations.start.instance_role import check_instance_profile
from operations.start.launch_template import LaunchChoice, launch_choice, launch_template_configs, save_versions
from operations.start.machine_image import EcsImage, image_age_warning, latest_ecs_ami

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SubnetTypeDef
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client

# Memory the OS and the ECS agent keep on each machine, so tasks never get it:
# ECS registers roughly 94% of an instance's memory (e.g. 15,440 of 16,384 MiB
# on an m5.xlarge), so require 6% and at least 256 MiB of headroom. CPU has no
# headroom: ECS registers vCPUs x 1024 units.
MEMORY_HEADROOM_FRACTION = 0.06
MEMORY_HEADROOM_MIN_MIB = 256
FLEET_VALID_DAYS = 365
# Services an instance without a public IP must reach through VPC endpoints when there is no NAT.
ENDPOINT_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry", "sqs", "s3", "logs")


@dataclass
class Preflight:
    queue_url: str
    dead_letter_queue_url: str
    task_definition_arn: str
    topic_arn: str
    jobs_waiting: int
    machines: MachineChoice
    warnings: list[str] = field(default_factory=list)
    quota: QuotaCheck | None = None  # the Spot vCPU quotas against what the run asks


@dataclass(frozen=True)
class MachineChoice:
    architecture: str
    instance_types: tuple[str, ...]  # MACHINE_TYPE, or the current types meeting the tasks' needs
    image: EcsImage | None  # the latest ECS-optimized AMI, for launch specifications with no ImageId
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetStatus:
    state: str
    activity: str  # AWS's ActivityStatus: fulfilled | pending_fulfillment | error | ...
    instances: int
    timed_out: bool
    why: tuple[str, ...] = ()  # the fleet's errors in words with the fix (fleet_words), when it is short

    @property
    def problem(self) -> str | None:
        if self.state not in LIVE_FLEET_STATES:
            return f"the fleet is {self.state}"
        if self.activity == "error":
            return "the fleet reports an error; it keeps trying"
        if self.timed_out and self.instances == 0:
            return "no machine has started yet; the fleet keeps trying and the service starts workers as they join"
        return None


@dataclass
class StartResult:
    record: RunRecord
    resumed: bool
    changes: list[str]
    warnings: list[str]
    fleet: FleetStatus | None
    local_record: Path
    image: EcsImage | None = None  # the latest ECS-optimized AMI, when the fleet file pinned none


# --------------------------------------------------------------------------- preflight


def preflight(settings: Settings, fleet: FleetFile, c: aws.Clients, now: datetime.datetime | None = None) -> Preflight:
    """Read-only checks; raises PreflightError at the first failure."""
    now = now or datetime.datetime.now(datetime.UTC)
    warnings = _check_buckets(c.s3, settings)
    queue_url, dlq_url, task_arn, topic_arn = _check_setup_done(c, settings)
    _check_roles(c.iam, fleet)
    warnings += job_access.check(c, settings)
    warnings += _s3fs_mount_warnings(settings)
    machines = choose_machines(c, settings, fleet, now)
    warnings += machines.warnings
    quota = spot_quota.check(getattr(c, "service-quotas"), c.ec2, machines.instance_types, settings.CLUSTER_MACHINES)
    if quota.refused:
        raise PreflightError(quota.refusal)
    warnings += quota.warnings
    warnings += _check_network(c.ec2, settings, fleet)
    warnings += fleet.notes
    depth = queue_depth(c.sqs, queue_url)
    waiting = depth.waiting if depth else 0
    if depth is None or depth.empty:
        warnings.append(f"queue '{settings.SQS_QUEUE_NAME}' holds no jobs; the workers will find nothing to do "
                        "(run 'python cli.py submit JOBFILE')")
    if writes_reach_reserved(output_root(settings)):
        warnings.append(f"OUTPUT_PREFIX {settings.OUTPUT_PREFIX!r} starts with a job value, so this run's jobs may "
                        f"write anywhere in s3://{settings.DESTINATION_BUCKET}/ but monitors/, exportedlogs/ and "
                        "ecsconfigs/, other runs' outputs included; give it a fixed first folder such as "
                        "'{APP_NAME}/{job_id}'")
    return Preflight(queue_url, dlq_url, task_arn, topic_arn, waiting, machines, warnings, quota)


def _check_buckets(s3: S3Client, settings: Settings) -> list[str]:
    """AWS_BUCKET must exist and be yours; SOURCE_BUCKET and DESTINATION_BUCKET must exist, and one you may not
    inspect (another lab's, a public data set) is a warning: the bucket's own policy may still let the workers
    in. Returns the warnings."""
    warnings = []
    for bucket, key in settings.buckets.items():
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or aws.error_code(error) in ("404", "NoSuchBucket"):
                raise PreflightError(f"bucket '{bucket}' does not exist; create it or fix {key} in "
                                     f"{settings.source}") from None
            if status != 403 and aws.error_code(error) not in ("403", "AccessDenied"):
                raise
            if key == "AWS_BUCKET":
                raise PreflightError(f"bucket '{bucket}' is not accessible with your credentials "
                                     f"({key} in {settings.source})") from None
            warnings.append(f"{key} '{bucket}' cannot be inspected with your credentials; the workers reach it only "
                            "if its bucket policy lets this account in")
    return warnings


def _check_setup_done(c: aws.Clients, settings: Settings) -> tuple[str, str, str, str]:
    def missing(what: str) -> PreflightError:
        return PreflightError(f"{what} does not exist; run 'python cli.py setup --config {settings.source}' first")

    queue_url = find_queue_url(c.sqs, settings.SQS_QUEUE_NAME)
    if queue_url is None:
        raise missing(f"queue '{settings.SQS_QUEUE_NAME}'")
    dlq_url = find_queue_url(c.sqs, settings.SQS_DEAD_LETTER_QUEUE)
    if dlq_url is None:
        raise missing(f"dead-letter queue '{settings.SQS_DEAD_LETTER_QUEUE}'")
    if ecs_cluster(c.ecs, settings.ECS_CLUSTER) is None:
        raise missing(f"ECS cluster '{settings.ECS_CLUSTER}'")
    definition = find_task_definition(c.ecs, settings.task_family)
    if definition is None:
        raise missing(f"task definition '{settings.task_family}'")
    if ecs_service(c.ecs, settings.ECS_CLUSTER, settings.service_name) is None:
        raise missing(f"ECS service '{settings.service_name}'")
    if not definition.get("taskRoleArn"):
        raise PreflightError(f"task definition '{settings.task_family}' has no task role, so workers could not "
                             "reach SQS or S3; run 'python cli.py setup-account', then 'python cli.py setup'")
    topic_arn = ""
    if settings.AUTO_MONITOR:
        topic_arn = find_topic_arn(c.sns, names.MONITOR_TOPIC) or ""
        if not topic_arn:
            raise missing(f"SNS topic '{names.MONITOR_TOPIC}'")
    return queue_url, dlq_url, definition["taskDefinitionArn"], topic_arn


def _check_roles(iam: IAMClient, fleet: FleetFile) -> None:
    for index, spec in enumerate(fleet.launch_specifications):
        if not (spec.get("IamInstanceProfile") or {}).get("Arn"):
            raise PreflightError(f"{fleet.source}: LaunchSpecifications[{index}]: no IamInstanceProfile, so machines "
                                 "could not join ECS; 'python cli.py setup-account' prints the one to use")
    for arn in fleet.instance_profile_arns():
        check_instance_profile(iam, fleet.source, arn)


def _s3fs_mount_warnings(settings: Settings) -> list[str]:
    """DCP's run-worker.sh mounts SOURCE_BUCKET with `s3fs -o iam_role` when DOWNLOAD_FILES is 'False' (DCP 17388b3,
    worker/run-worker.sh lines 26-36): s3fs takes the machine's role credentials from the instance metadata service,
    which a container cannot reach here (IMDSv2, hop limit 1: the launch template) and which hold no S3 rights (the
    jobs' rights are the task role's). The mount fails and every job with it."""
    if not (settings.ds_image_mode and settings.environment.get("DOWNLOAD_FILES") == "False"):
        return []
    return [f"DOWNLOAD_FILES is 'False': DCP's worker would mount s3://{settings.SOURCE_BUCKET} with s3fs using the "
            "machine's own credentials, which containers cannot reach here (the instance metadata service answers "
            "the host only) and which hold no S3 rights; set DOWNLOAD_FILES = 'True' so each job's files are "
            "downloaded with the task role's rights"]


def choose_machines(c: aws.Clients, settings: Settings, fleet: FleetFile, now: datetime.datetime) -> MachineChoice:
    """What the fleet may launch and from which AMI: MACHINE_TYPE (each checked to hold the tasks), or every
    current type that holds them; a pinned AMI warned about when stale, the latest ECS-optimized one otherwise."""
    described = instance_choice.describe_types(c.ec2, settings.MACHINE_TYPE)
    architecture = instance_choice.architecture_of(described)
    if settings.MACHINE_TYPE:
        _check_instance_types(described, settings)
        types = tuple(settings.MACHINE_TYPE)
    else:
        requirements = instance_requirements(settings)
        types = tuple(instance_choice.candidate_types(c.ec2, requirements, architecture))
        if not types:
            raise PreflightError(f"MACHINE_TYPE: empty, and no {architecture} instance type in {settings.AWS_REGION} "
                                 f"has {requirements_in_words(requirements)} for TASKS_PER_MACHINE tasks; lower "
                                 "MEMORY, CPU_SHARES, GPUS_PER_TASK or TASKS_PER_MACHINE, or name types in "
                                 "MACHINE_TYPE")
    pinned = [spec["ImageId"] for spec in fleet.launch_specifications if spec.get("ImageId")]
    warnings = tuple(warning for image in dict.fromkeys(pinned)
                     if (warning := image_age_warning(c.ec2, image, now)))
    image = (latest_ecs_ami(c.ssm, architecture, settings.GPUS_PER_TASK > 0)
             if len(pinned) < len(fleet.launch_specifications) else None)
    return MachineChoice(architecture, types, image, warnings)


def usable_memory_mib(total_mib: int) -> int:
    return total_mib - max(MEMORY_HEADROOM_MIN_MIB, math.ceil(total_mib * MEMORY_HEADROOM_FRACTION))


def fit_problem(instance_type: str, memory_mib: int, vcpus: int, settings: Settings) -> str | None:
    """Why TASKS_PER_MACHINE tasks would never be placed on this type, or None if they fit."""
    tasks = settings.TASKS_PER_MACHINE
    usable = usable_memory_mib(memory_mib)
    if tasks * settings.MEMORY > usable:
        return (f"MACHINE_TYPE: {instance_type} leaves {usable} MiB for tasks ({memory_mib} MiB less "
                f"{memory_mib - usable} kept for the OS and ECS agent) but TASKS_PER_MACHINE x MEMORY = "
                f"{tasks} x {settings.MEMORY} = {tasks * settings.MEMORY} MiB; ECS would never place the tasks "
                "(choose a bigger type or lower MEMORY or TASKS_PER_MACHINE)")
    units = vcpus * 1024
    if tasks * settings.CPU_SHARES > units:
        return (f"MACHINE_TYPE: {instance_type} has {units} CPU units ({vcpus} vCPUs x 1024) but TASKS_PER_MACHINE "
                f"x CPU_SHARES = {tasks} x {settings.CPU_SHARES} = {tasks * settings.CPU_SHARES}; ECS would never "
                "place the tasks (choose a bigger type or lower CPU_SHARES or TASKS_PER_MACHINE)")
    return None


def _check_instance_types(described: Iterable[Mapping[str, Any]], settings: Settings) -> None:
    """Each MACHINE_TYPE offered in the region and holding TASKS_PER_MACHINE tasks (`described`: their
    DescribeInstanceTypes answers)."""
    found = {item["InstanceType"]: item for item in described}
    for instance_type in settings.MACHINE_TYPE:
        item = found.get(instance_type)
        if item is None:
            raise PreflightError(f"MACHINE_TYPE: {instance_type} is not offered in {settings.AWS_REGION}")
        problem = fit_problem(instance_type, item["MemoryInfo"]["SizeInMiB"], item["VCpuInfo"]["DefaultVCpus"],
                              settings)
        if problem:
            raise PreflightError(problem)


def _subnet_ids(fleet: FleetFile) -> list[str]:
    ids: list[str] = []
    for spec in fleet.launch_specifications:
        candidates = [item.strip() for item in (spec.get("SubnetId") or "").split(",")]
        candidates += [iface.get("SubnetId", "") for iface in spec.get("NetworkInterfaces", [])]
        ids += [item for item in candidates if item and item not in ids]
    return ids


def _check_network(ec2: EC2Client, settings: Settings, fleet: FleetFile) -> list[str]:
    subnet_ids = _subnet_ids(fleet)
    subnets = {}
    for subnet_id in subnet_ids:
        try:
            [subnets[subnet_id]] = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        except ec2.exceptions.ClientError as error:
            if aws.error_code(error) == "InvalidSubnetID.NotFound":
                raise PreflightError(f"{fleet.source}: subnet '{subnet_id}' does not exist in "
                                     f"{settings.AWS_REGION}") from None
            raise
    if settings.ASSIGN_IP:
        return []
    return [f"ASSIGN_IP is false and subnet '{subnet_id}' has no NAT route or VPC endpoints for ECS, SQS, S3 and "
            "Logs; its machines could not reach AWS and no worker would start"
            for subnet_id, subnet in subnets.items() if not _reaches_aws_privately(ec2, subnet)]


def _reaches_aws_privately(ec2: EC2Client, subnet: SubnetTypeDef) -> bool:
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                 "Values": [subnet["SubnetId"]]}])["RouteTables"]
    if not tables:  # no explicit association: the VPC's main route table applies
        tables = [table for table in ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}])["RouteTables"]
            if any(item.get("Main") for item in table.get("Associations", []))]
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("DestinationCidrBlock") == "0.0.0.0/0" and any(
                    route.get(key) for key in ("NatGatewayId", "InstanceId", "TransitGatewayId",
                                               "NetworkInterfaceId")):
                return True
    services = {item["ServiceName"].rsplit(".", 1)[-1] for item in aws.paged(
        ec2, "describe_vpc_endpoints", "VpcEndpoints", Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}])}
    return services >= set(ENDPOINT_SERVICES)


# --------------------------------------------------------------------------- the fleet request


def ecs_agent_config(settings: Settings) -> str:
    return (f"ECS_CLUSTER={settings.ECS_CLUSTER}\n"
            'ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]\n'
            # On a spot interruption notice ECS stops the tasks (SIGTERM), so workers can release their jobs.
            "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n")


def user_data(settings: Settings) -> str:
    """The boot script, base64 as EC2 wants it. The agent config is written directly:
    DS copies it from S3, which needs the AWS CLI and S3 rights on every machine."""
    script = ("#!/bin/bash\n"
              f"# Written by 'python cli.py start-cluster'; a copy is in "
              f"s3://{settings.AWS_BUCKET}/{names.ecs_config_key(settings)}\n"
              "cat >> /etc/ecs/ecs.config <<'DSR_ECS_CONFIG'\n"
              f"{ecs_agent_config(settings)}"
              "DSR_ECS_CONFIG\n"
              f"{instance_id_script()}")
    return base64.b64encode(script.encode()).decode()


def instance_id_script() -> str:
    """Boot script lines that leave the instance id where the task definition mounts it for the worker
    (resources.task_definition): containers cannot ask the metadata service (hop limit 1), the host can. Written
    before the ECS agent starts (it starts after cloud-init's user data), renamed into place whole."""
    folder, imds = names.HOST_INFO_DIR, "http://169.254.169.254/latest"
    return (f"mkdir -p {folder}\n"
            f"token=$(curl -sf --retry 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {imds}/api/token)\n"
            f"curl -sf --retry 5 -H \"X-aws-ec2-metadata-token: $token\" {imds}/meta-data/instance-id "
            f"> {folder}/{names.INSTANCE_ID_FILE}.new && mv {folder}/{names.INSTANCE_ID_FILE}.new "
            f"{folder}/{names.INSTANCE_ID_FILE}\n")


def launch_choices(fleet: FleetFile, settings: Settings, image: EcsImage | None = None) -> list[LaunchChoice]:
    """Per launch specification of the fleet file, with DS's overwrites: its launch template data and overrides
    (one per instance choice and subnet). `image`: the AMI of the specifications that name none."""
    config = _without_comments(fleet.copy_config())
    return [launch_choice(_launch_spec(template, settings, image), instance_choices(settings), bid_price(settings))
            for template in config["LaunchSpecifications"]]


def instance_choices(settings: Settings) -> list[dict[str, Any]]:
    """What an override says of the machine: each MACHINE_TYPE, or (none given) the attributes the tasks need,
    from which AWS picks among every current type that has them."""
    if settings.MACHINE_TYPE:
        return [{"InstanceType": instance_type} for instance_type in settings.MACHINE_TYPE]
    return [{"InstanceRequirements": instance_requirements(settings)}]


def bid_price(settings: Settings) -> str | None:
    """MACHINE_PRICE as the Spot maximum price per machine-hour, only when MACHINE_PRICE_IS_BID asks for DS's
    meaning: AWS advises against a maximum price (it is interrupted more often, and the price paid is the
    Spot price anyway), so by default MACHINE_PRICE is only the cost ceiling the monitor enforces."""
    return f"{settings.MACHINE_PRICE:g}" if settings.MACHINE_PRICE_IS_BID else None


def fleet_request(fleet: FleetFile, settings: Settings, now: datetime.datetime, template_id: str,
                  versions: list[str], choices: list[LaunchChoice], client_token: str) -> dict[str, Any]:
    """CreateFleet's arguments: a maintain-type EC2 Fleet of Spot machines launched from the run's launch template
    `versions` (launch_template.save_versions of launch_choices), one config per version, with one override per
    instance choice and subnet. `client_token` makes a retried request the same request (EC2 idempotency)."""
    return {
        "Type": "maintain",
        "TargetCapacitySpecification": {"TotalTargetCapacity": settings.CLUSTER_MACHINES,
                                        "DefaultTargetCapacityType": "spot"},
        "SpotOptions": {"AllocationStrategy": fleet.allocation_strategy, "InstanceInterruptionBehavior": "terminate"},
        # the monitor lowers the target and ends the idle machines it chose itself; AWS never picks one
        "ExcessCapacityTerminationPolicy": "no-termination",
        "TerminateInstancesWithExpiration": True,
        "ValidFrom": now.astimezone(datetime.UTC),
        "ValidUntil": now.astimezone(datetime.UTC) + datetime.timedelta(days=FLEET_VALID_DAYS),
        "LaunchTemplateConfigs": launch_template_configs(template_id, versions, choices),
        "TagSpecifications": [{"ResourceType": "fleet", "Tags": [{"Key": names.RUN_TAG, "Value": settings.APP_NAME}]}],
        "ClientToken": client_token,
    }


def describe_request(settings: Settings, fleet: FleetFile) -> str:
    """The fleet request in words, for start-cluster's list of changes."""
    machines = ("/".join(settings.MACHINE_TYPE) if settings.MACHINE_TYPE
                else "any current type with " + requirements_in_words(instance_requirements(settings)))
    price = (f"bidding at most ${settings.MACHINE_PRICE:g}/h each" if bid_price(settings)
             else f"Spot price, cost ceiling ${settings.MACHINE_PRICE * settings.CLUSTER_MACHINES:g}/h")
    return f"{settings.CLUSTER_MACHINES} x {machines}, {fleet.allocation_strategy}, {price}"


def requirements_in_words(requirements: dict[str, Any]) -> str:
    """'4-8 vCPUs, at least 15,000 MiB' for InstanceRequirements."""
    def span(bounds: dict[str, Any], unit: str) -> str:
        low, high = bounds.get("Min", 0), bounds.get("Max")
        if high is None:
            return f"at least {low:,} {unit}"
        return f"{low:,}-{high:,} {unit}" if low != high else f"{low:,} {unit}"
    words = [span(requirements["VCpuCount"], "vCPUs"), span(requirements["MemoryMiB"], "MiB")]
    gpus = requirements.get("AcceleratorCount")
    words.append(span(gpus, "GPUs") if gpus and gpus.get("Max") != 0 else "no GPU")
    return ", ".join(words)


def _launch_spec(template: dict[str, Any], settings: Settings, image: EcsImage | None) -> dict[str, Any]:
    spec = copy.deepcopy(template)
    spec.pop("InstanceType", None)  # the overrides say it
    if not spec.get("ImageId") and image is not None:
        spec["ImageId"] = image.image_id
    spec["UserData"] = user_data(settings)
    spec["BlockDeviceMappings"][DATA_VOLUME_INDEX]["Ebs"]["VolumeSize"] = settings.EBS_VOL_SIZE
    if settings.SSH_KEY_NAME:
        spec["KeyName"] = settings.SSH_KEY_NAME.removesuffix(".pem")
    else:
        spec.pop("KeyName", None)
    if not settings.ASSIGN_IP:
        # DS sets True here when ASSIGN_IP is false; the documented meaning is "no public IP".
        for interface in spec.get("NetworkInterfaces", []):
            interface["AssociatePublicIpAddress"] = False
    # The run's tag on each machine too: the monitor's policy lets it terminate only machines that carry one.
    ours = [{"Key": "Name", "Value": names.instance_name_tag(settings)},
            {"Key": names.RUN_TAG, "Value": settings.APP_NAME}]
    tag_specs = [item for item in spec.get("TagSpecifications", []) if item.get("ResourceType") != "instance"]
    instance_tags = [tag for item in spec.get("TagSpecifications", []) if item.get("ResourceType") == "instance"
                     for tag in item.get("Tags", []) if tag.get("Key") not in ("Name", names.RUN_TAG)]
    spec["TagSpecifications"] = [*tag_specs, {"ResourceType": "instance", "Tags": instance_tags + ours}]
    return spec


def _without_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_comments(item) for key, item in value.items() if "_comment" not in key}
    if isinstance(value, list):
        return [_without_comments(item) for item in value]
    return value


def _live_fleet_id(ec2: EC2Client, settings: Settings, record: RunRecord | None) -> str | None:
    if record is not None:
        described = fleet_state(ec2, record.MONITOR_FLEET_ID)
        if described and described.live:
            return record.MONITOR_FLEET_ID
    # No record (a crash between the request and the write): find the fleet by its tag.
    return live_tagged_fleet_id(ec2, names.RUN_TAG, settings.APP_NAME)


def wait_for_fleet(ec2: EC2Client, fleet_id: str, timeout: float, poll: float = 15.0,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep, since: datetime.datetime | None = None,
                   quota: QuotaCheck | None = None) -> FleetStatus:
    """Until a machine runs, the fleet errs, or `timeout` seconds pass. Never raises on fleet trouble. A fleet
    short of its target then says why from its history since `since` (its request)."""
    deadline = clock() + timeout
    while True:
        described = fleet_state(ec2, fleet_id)
        state, activity = (described.state, described.activity) if described else ("cancelled", "")
        instances = 0
        if state in LIVE_FLEET_STATES:
            instances = len(fleet_instance_ids(ec2, fleet_id))
        finished = instances > 0 or activity == "error" or state not in LIVE_FLEET_STATES
        if finished or clock() >= deadline:
            why: tuple[str, ...] = ()
            if described is not None and (activity == "error" or instances < described.target) and since is not None:
                why = tuple(fleet_problems(ec2, fleet_id, since, machine_price=described.spot_price, quota=quota))
            return FleetStatus(state, activity, instances, timed_out=not finished, why=why)
        sleep(min(poll, max(0.0, deadline - clock())))


# --------------------------------------------------------------------------- the run's claim

# A claim with no fleet yet, younger than this and of a process not provably gone, is another start-cluster
# between its claim and its fleet request; older, it is one that died there, and is taken over. That gap is
# building the request and one API call (a minute at worst with botocore's retries), so ten minutes is ample,
# and it is the longest a user waits after a start-cluster on another machine died. Judging a live one dead is
# safe: its own fleet then cannot be written into the claim (the takeover changed the ETag), so it cancels
# that fleet and says so.
CLAIM_STALE_SECONDS = 600
# Rounds of claim, read, take over while other start-clusters keep changing the claim.
CLAIM_ATTEMPTS = 5
_CLAIM_HELD = ("PreconditionFailed", "412")  # If-None-Match: the claim exists; If-Match: it changed
_CLAIM_CONFLICT = ("ConditionalRequestConflict", "409")  # S3: a concurrent conditional write; read again
_CLAIM_GONE = aws.OBJECT_MISSING  # If-Match on a claim removed since it was read


@dataclass(frozen=True)
class Claim:
    """start-cluster's claim on a run, at s3://AWS_BUCKET/monitors/APP_NAME_claim.json (names.claim_key).

    `fleet` is empty while the holder is between its claim and its fleet request, then its fleet's id: a
    claim whose fleet is over (cancelled, failed, unknown) is spent and the next start-cluster takes it over,
    so a claim left behind after a teardown never blocks a new run. `at` is the claim's time on the holder's
    clock (epoch seconds), not start-cluster's `now`, which only dates the run record.
    """

    token: str
    host: str
    pid: int
    at: float
    fleet: str = ""
    etag: str = ""  # what S3 holds now: the condition of this holder's next write

    def body(self) -> bytes:
        fields = {"token": self.token, "host": self.host, "pid": self.pid, "at": self.at}
        if self.fleet:
            fields["fleet"] = self.fleet
        return (json.dumps(fields) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes, etag: str) -> Claim:
        """An unreadable claim parses as an empty one, which counts as abandoned."""
        try:
            fields = json.loads(raw)
            return cls(token=str(fields["token"]), host=str(fields.get("host", "")), pid=int(fields.get("pid", 0)),
                       at=float(fields["at"]), fleet=str(fields.get("fleet") or ""), etag=etag)
        except (ValueError, TypeError, KeyError):
            return cls(token="", host="", pid=0, at=0.0, etag=etag)

    @property
    def since(self) -> str:
        return datetime.datetime.fromtimestamp(self.at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def claim_run(c: aws.Clients, settings: Settings, changes: list[str], token: str | None = None) -> Claim | str:
    """Claim the run before requesting its fleet: this process's Claim (with its ETag) when it holds the run,
    or the id of the live fleet another start-cluster requested meanwhile (then the run is resumed).
    Raises StartConflict when another start-cluster holds a claim that is neither spent nor abandoned.
    `token`: the caller's, when it may make start-cluster again after a failure: a claim with it is its own."""
    bucket, key = settings.AWS_BUCKET, names.claim_key(settings.APP_NAME)
    for _ in range(CLAIM_ATTEMPTS):
        mine = Claim(token=token or uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(), at=time.time())
        try:
            etag = _put_claim(c.s3, bucket, key, mine, IfNoneMatch="*")
        except ClientError as error:  # only "someone claimed it" is an answer
            if aws.error_code(error) not in _CLAIM_HELD + _CLAIM_CONFLICT:
                raise
        else:
            changes.append(f"claimed the run: s3://{bucket}/{key}")
            return replace(mine, etag=etag)
        held = _read_claim(c.s3, bucket, key)
        if held is None:
            continue  # removed since (a teardown finishing): claim afresh
        if held.fleet:
            described = fleet_state(c.ec2, held.fleet)
            if described and described.live:
                return held.fleet
            why = f"its fleet {held.fleet} is over"
        elif held.token == mine.token:
            why = "an earlier attempt of this start-cluster, which failed"
        else:
            abandoned = _abandoned(held)
            if abandoned is None:
                raise StartConflict(
                    f"run '{settings.APP_NAME}' is being started by another start-cluster (pid {held.pid} on "
                    f"{held.host}, since {held.since}); let it finish, then see 'python cli.py status --config "
                    f"{settings.source}' (a claim left by a start-cluster that died is taken over after "
                    f"{CLAIM_STALE_SECONDS // 60} minutes)")
            why = abandoned
        try:
            etag = _put_claim(c.s3, bucket, key, mine, IfMatch=held.etag)
        except ClientError as error:
            if aws.error_code(error) not in _CLAIM_HELD + _CLAIM_CONFLICT + _CLAIM_GONE:
                raise
            continue  # someone changed it since it was read: look again
        changes.append(f"took over the run's claim from pid {held.pid} on {held.host or 'an unknown host'} "
                       f"({why}): s3://{bucket}/{key}")
        return replace(mine, etag=etag)
    raise StartConflict(f"run '{settings.APP_NAME}': s3://{bucket}/{key} kept changing while this start-cluster "
                        "tried to claim the run; run start-cluster again")


def _record_fleet_in_claim(c: aws.Clients, settings: Settings, claim: Claim, fleet_id: str) -> None:
    """Write the new fleet into this process's claim. If the claim was taken over meanwhile (this process
    stalled past CLAIM_STALE_SECONDS), the fleet belongs to no run: cancel it and stop."""
    bucket, key = settings.AWS_BUCKET, names.claim_key(settings.APP_NAME)
    for _ in range(CLAIM_ATTEMPTS):
        try:
            _put_claim(c.s3, bucket, key, replace(claim, fleet=fleet_id), IfMatch=claim.etag)
            return
        except ClientError as error:
            code = aws.error_code(error)
            if code not in _CLAIM_HELD + _CLAIM_CONFLICT + _CLAIM_GONE:
                raise
            held = _read_claim(c.s3, bucket, key) if code in _CLAIM_CONFLICT else None
            if held is None or held.etag != claim.etag:
                break  # taken over (or removed): the claim is no longer this process's
    try:
        delete_fleet(c.ec2, fleet_id)
        outcome = f"fleet {fleet_id} it had just requested is deleted"
    except Exception as error:  # noqa: BLE001 - say what is left to do rather than a traceback
        outcome = f"deleting fleet {fleet_id} it had just requested failed ({error}); delete it in the EC2 console"
    raise StartConflict(f"run '{settings.APP_NAME}': another start-cluster took over this one's claim "
                        f"(s3://{bucket}/{key}) while it was requesting its fleet, so the {outcome}; see "
                        f"'python cli.py status --config {settings.source}'")


class _WriteCondition(TypedDict, total=False):
    IfNoneMatch: str
    IfMatch: str


def _put_claim(s3: S3Client, bucket: str, key: str, claim: Claim, **condition: Unpack[_WriteCondition]) -> str:
    """One conditional write of the claim (IfNoneMatch="*" or IfMatch=ETag); S3's ETag of what it wrote."""
    return s3.put_object(Bucket=bucket, Key=key, Body=claim.body(), ContentType="application/json",
                         **condition)["ETag"]


def _read_claim(s3: S3Client, bucket: str, key: str) -> Claim | None:
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:  # only "no such key" is an answer
        if aws.error_code(error) in _CLAIM_GONE:
            return None
        raise
    return Claim.parse(answer["Body"].read(), answer["ETag"])


def _abandoned(claim: Claim) -> str | None:
    """Why a claim with no fleet may be taken over, or None while its start-cluster may be at work."""
    if not claim.token:
        return "it is unreadable"
    age = time.time() - claim.at
    if age >= CLAIM_STALE_SECONDS:
        return f"made {age / 60:.0f} minutes ago, longer than {CLAIM_STALE_SECONDS // 60} minutes"
    if claim.host == socket.gethostname() and not _pid_alive(claim.pid):
        return "that process has ended"
    return None


def _pid_alive(pid: int) -> bool:
    """False only when this host has no such process; anything uncertain counts as alive."""
    if pid <= 0 or os.name == "nt":  # on Windows, os.kill(pid, 0) would send CTRL_C_EVENT
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True


def _refuse_during_teardown(s3: S3Client, settings: Settings) -> None:
    """The run has a record but no live fleet: if the monitor is tearing it down, starting now would have the
    teardown delete the new run's record and leave its fleet unwatched."""
    state = MonitorState.from_json(read_object(s3, settings.AWS_BUCKET, names.monitor_state_key(settings.APP_NAME)))
    if state.tearing_down:
        raise StartConflict(
            f"run '{settings.APP_NAME}' is still being torn down by the monitor ({state.stop_reason or 'stopped'}); "
            f"start it again once 'python cli.py status --config {settings.source}' says it is finished")


# --------------------------------------------------------------------------- start


def start_cluster(settings: Settings, fleet: FleetFile, cheapest: bool = False, wait_seconds: float = 300,
                  poll_seconds: float = 15.0, files_dir: str | Path = "files",
                  now: datetime.datetime | None = None, clients: aws.Clients | None = None,
                  claim_token: str | None = None) -> StartResult:
    """`claim_token`: see claim_run (local mode's, kept across its attempts)."""
    c = clients or aws.Clients(settings)
    now = now or datetime.datetime.now(datetime.UTC)
    checked = preflight(settings, fleet, c, now)
    image = checked.machines.image
    changes: list[str] = []

    config_key, config_text = names.ecs_config_key(settings), ecs_agent_config(settings)
    if read_object(c.s3, settings.AWS_BUCKET, config_key) != config_text.encode():
        c.s3.put_object(Bucket=settings.AWS_BUCKET, Key=config_key, Body=config_text.encode())
        changes.append(f"wrote s3://{settings.AWS_BUCKET}/{config_key}")

    # UnreadableRecord (a UserError) for one that is not a run record: one line, not a traceback
    stored = runs.read_record(c.s3, settings.AWS_BUCKET, names.record_key(settings.APP_NAME))
    fleet_id = _live_fleet_id(c.ec2, settings, stored)
    resumed = fleet_id is not None
    if fleet_id is None:
        if stored is not None:
            _refuse_during_teardown(c.s3, settings)
        claimed = claim_run(c, settings, changes, claim_token)
        if isinstance(claimed, str):  # another start-cluster's fleet, live: this run, resumed
            fleet_id, resumed = claimed, True
        else:
            choices = launch_choices(fleet, settings, image)
            template_id, versions = save_versions(c.ec2, settings, choices, changes)
            if image is not None:
                changes.append(f"machines boot {image}")
            fleet_id = c.ec2.create_fleet(**fleet_request(fleet, settings, now, template_id, versions,
                                                          choices, claimed.token))["FleetId"]
            changes.append(f"created EC2 Fleet {fleet_id} ({describe_request(settings, fleet)})")
            _record_fleet_in_claim(c, settings, claimed, fleet_id)
    if stored is not None and fleet_id == stored.MONITOR_FLEET_ID:
        record = stored
    else:
        record = build_record(settings, checked, fleet_id, now, cheapest)
        runrecord.put(c.s3, record)
        changes.append(f"wrote s3://{settings.AWS_BUCKET}/{record.MONITOR_FILE_KEY}")
    local = runrecord.write_local(record, files_dir, names.monitor_file_name(settings))

    if settings.AUTO_MONITOR:
        for alarm in dashboard.queue_alarms(record, *record.ALARM_NAMES):
            action = dashboard.ensure_alarm(c.cloudwatch, alarm)
            if action != "unchanged":
                changes.append(f"{action} alarm {alarm['AlarmName']}")
    if record.DASHBOARD_NAME:
        action = dashboard.ensure_dashboard(c.cloudwatch, record.DASHBOARD_NAME, dashboard.dashboard_body(record))
        if action != "unchanged":
            changes.append(f"{action} dashboard {record.DASHBOARD_NAME}")

    service = ecs_service(c.ecs, settings.ECS_CLUSTER, settings.service_name)
    if service is None or service.desired != record.desired_tasks:
        set_service_count(c.ecs, settings.ECS_CLUSTER, settings.service_name, record.desired_tasks)
        changes.append(f"set {settings.service_name} to {record.desired_tasks} tasks")

    status = wait_for_fleet(c.ec2, fleet_id, wait_seconds, poll_seconds, since=fleet_since(record),
                            quota=checked.quota) if wait_seconds > 0 else None
    warnings = list(checked.warnings)
    if status is not None:
        warnings += [problem for problem in (status.problem,) if problem] + list(status.why)
    return StartResult(record, resumed, changes, warnings, status, local, image)


def dry_run(settings: Settings, fleet: FleetFile, now: datetime.datetime | None = None,
            clients: aws.Clients | None = None) -> tuple[Preflight, list[str]]:
    """start-cluster --dry-run: preflight (it only reads), then what the fleet would be asked for, in lines: the
    candidate instance types with their current Spot price in each of the fleet's zones, the AMI and the run's
    cost ceiling per hour. Nothing is created."""
    c = clients or aws.Clients(settings)
    now = now or datetime.datetime.now(datetime.UTC)
    checked = preflight(settings, fleet, c, now)
    machines = checked.machines
    lines = [f"would create an EC2 Fleet: {describe_request(settings, fleet)}"]
    if machines.image is not None:
        lines.append(f"machines would boot {machines.image}")
    zones = fleet_zones(c.ec2, fleet)
    rows = spot_prices.price_table(c.ec2, machines.instance_types, zones, now)
    lines += [f"{len(machines.instance_types)} candidate instance type(s), current Spot price per hour in each zone:"]
    lines += spot_prices.format_price_table(rows, machines.instance_types, zones, machines=settings.CLUSTER_MACHINES,
                                            machine_price=settings.MACHINE_PRICE)
    return checked, lines


def fleet_zones(ec2: EC2Client, fleet: FleetFile) -> list[str]:
    """The availability zones of the fleet file's subnets (all of the region's when it names none)."""
    subnet_ids = _subnet_ids(fleet)
    if not subnet_ids:
        return []
    return sorted({subnet["AvailabilityZone"] for subnet in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]})


def fleet_since(record: RunRecord) -> datetime.datetime:
    """From when the fleet's history concerns this run: a minute before its start, for clock skew."""
    return datetime.datetime.fromtimestamp(record.MONITOR_START_TIME / 1000 - 60, datetime.UTC)


def build_record(settings: Settings, checked: Preflight, fleet_id: str, now: datetime.datetime,
                 cheapest: bool) -> RunRecord:
    alarms = (names.visible_alarm(settings), names.not_visible_alarm(settings)) if settings.AUTO_MONITOR else ()
    return RunRecord(
        MONITOR_FLEET_ID=fleet_id,
        MONITOR_APP_NAME=settings.APP_NAME,
        MONITOR_ECS_CLUSTER=settings.ECS_CLUSTER,
        MONITOR_QUEUE_NAME=settings.SQS_QUEUE_NAME,
        MONITOR_BUCKET_NAME=settings.AWS_BUCKET,
        MONITOR_LOG_GROUP_NAME=settings.LOG_GROUP_NAME,
        MONITOR_START_TIME=int(now.timestamp() * 1000),
        CLEAN_DASHBOARD=settings.CLEAN_DASHBOARD,
        REGION=settings.AWS_REGION,
        QUEUE_URL=checked.queue_url,
        DEAD_LETTER_QUEUE_NAME=settings.SQS_DEAD_LETTER_QUEUE,
        DEAD_LETTER_QUEUE_URL=checked.dead_letter_queue_url,
        SERVICE_NAME=settings.service_name,
        TASK_FAMILY=settings.task_family,
        TASK_DEFINITION_ARN=checked.task_definition_arn,
        PER_INSTANCE_LOG_GROUP=settings.per_instance_log_group,
        EXPORTED_LOGS_PREFIX=names.exported_logs_prefix(settings),
        TOPIC_ARN=checked.topic_arn,
        ALARM_NAMES=alarms,
        INSTANCE_ALARM_PREFIX=names.instance_alarm_prefix(settings.APP_NAME),
        DASHBOARD_NAME=names.dashboard(settings) if settings.CREATE_DASHBOARD else None,
        ECS_CONFIG_KEY=names.ecs_config_key(settings),
        MONITOR_FILE_KEY=names.record_key(settings.APP_NAME),
        INSTANCE_NAME_TAG=names.instance_name_tag(settings),
        CLUSTER_MACHINES=settings.CLUSTER_MACHINES,
        TASKS_PER_MACHINE=settings.TASKS_PER_MACHINE,
        DOCKER_CORES=settings.DOCKER_CORES,
        MACHINE_TYPE=settings.MACHINE_TYPE,
        MACHINE_PRICE=settings.MACHINE_PRICE,
        CHEAPEST=cheapest,
        AUTO_MONITOR=settings.AUTO_MONITOR,
        JOBS_AT_START=checked.jobs_waiting,
        MAX_RUN_HOURS=settings.MAX_RUN_HOURS,
        MAX_RUN_COST=settings.MAX_RUN_COST,
        STOP_AFTER_FAILED_JOBS=settings.STOP_AFTER_FAILED_JOBS,
        STOP_IF_NO_JOB_STARTS_MINUTES=settings.STOP_IF_NO_JOB_STARTS_MINUTES,
        DS_IMAGE_MODE=settings.ds_image_mode,
        OUTPUTS=OutputRule.of_settings(settings),
    )
