"""What is left of the self-test's throwaway run, found two ways, and removed.

Each service's own listing, by the names derived from the throwaway APP_NAME and by its `dsr:app` tag: machines and
fleets, launch templates, the ECS service, cluster and task definitions, alarms, log groups, queues, the task role,
and the run's objects in the bucket (its record and state, summary, exported logs, ECS agent config, run files).
Then the Resource Groups Tagging API, for anything else carrying the tag: what the listings did not name is reported
as left, with its ARN, since the self-test does not know how to remove it.

A teardown keeps what a real run keeps for its user (the dead-letter queue, the summary, the exported logs, a queue
holding jobs): a throwaway run's are removed here too. Every removal tolerates "already gone".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.aws import ec2 as ec2_calls
from chalicelib.aws import ecs as ecs_calls
from chalicelib.aws.cloudwatch import alarm_names, delete_alarms
from chalicelib.aws.s3 import delete_objects, list_objects, object_exists
from chalicelib.aws.sqs import delete_queue, find_queue_url
from chalicelib.model import names
from chalicelib.model.settings import Settings


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    remove: Callable[[], object] | None  # None: found by its tag only; the self-test cannot remove it

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


def find(settings: Settings, clients: aws.Clients) -> list[Leftover]:
    """Everything of the throwaway run that still exists, in the order it can be removed (machines first)."""
    found = (_machines(settings, clients) + _ecs(settings, clients) + _alarms(settings, clients)
             + _log_groups(settings, clients) + _queues(settings, clients) + _objects(settings, clients)
             + _task_role(settings, clients))
    return found + _tagged_elsewhere(settings, clients, found)


def remove(leftovers: list[Leftover]) -> list[str]:
    """Remove each leftover that can be; the ones that could not, in words (what and why)."""
    failed = []
    for leftover in leftovers:
        if leftover.remove is None:
            failed.append(f"{leftover.describe()}: found by its {names.RUN_TAG} tag; remove it by hand")
            continue
        try:
            leftover.remove()
        except ClientError as error:
            if not _gone(error):
                failed.append(f"{leftover.describe()}: {aws.error_code(error)}: {error}")
    return failed


def _gone(error: ClientError) -> bool:
    code = aws.error_code(error)
    return "NotFound" in code or code in ("ResourceNotFoundException", "NoSuchEntity", "ClusterNotFoundException",
                                          "ServiceNotFoundException", *aws.QUEUE_MISSING)


def _machines(settings: Settings, c: aws.Clients) -> list[Leftover]:
    fleets = [fleet["FleetId"] for fleet in aws.paged(c.ec2, "describe_fleets", "Fleets")
              if fleet["FleetState"] in ec2_calls.LIVE_FLEET_STATES
              and {t["Key"]: t["Value"] for t in fleet.get("Tags", ())}.get(names.RUN_TAG) == settings.APP_NAME]
    machines = [item["InstanceId"] for reservation in aws.paged(c.ec2, "describe_instances", "Reservations", Filters=[
        {"Name": f"tag:{names.RUN_TAG}", "Values": [settings.APP_NAME]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
        for item in reservation["Instances"]]
    templates = ec2_calls.tagged_launch_template_ids(c.ec2, names.RUN_TAG, settings.APP_NAME)
    return ([Leftover("EC2 Fleet", fleet, partial(ec2_calls.delete_fleet, c.ec2, fleet)) for fleet in fleets]
            + [Leftover("machine", machine, partial(ec2_calls.terminate, c.ec2, [machine])) for machine in machines]
            + [Leftover("launch template", template, partial(ec2_calls.delete_launch_templates, c.ec2, [template]))
               for template in templates])


def _ecs(settings: Settings, c: aws.Clients) -> list[Leftover]:
    cluster = settings.ECS_CLUSTER
    found: list[Leftover] = []
    if ecs_calls.ecs_service(c.ecs, cluster, settings.service_name) is not None:
        found.append(Leftover("ECS service", settings.service_name,
                              lambda: ecs_calls.delete_service(c.ecs, cluster, settings.service_name)))
    for status in ("ACTIVE", "INACTIVE"):
        for arn in [arn for arn in aws.paged(c.ecs, "list_task_definitions", "taskDefinitionArns",
                                             familyPrefix=settings.task_family, status=status)
                    if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == settings.task_family]:
            found.append(Leftover(f"task definition ({status.lower()})", arn.rsplit("/", 1)[-1],
                                  partial(_delete_task_definition, c, arn)))
    if ecs_calls.ecs_cluster(c.ecs, cluster) is not None:
        found.append(Leftover("ECS cluster", cluster, lambda: _delete_cluster(c, cluster)))
    return found


def _delete_task_definition(c: aws.Clients, arn: str) -> None:
    """Deregistered, then deleted: AWS keeps an INACTIVE revision listed until DeleteTaskDefinitions."""
    try:
        c.ecs.deregister_task_definition(taskDefinition=arn)
    except ClientError as error:
        if "inactive" not in str(error).lower():
            raise
    try:
        c.ecs.delete_task_definitions(taskDefinitions=[arn])
    except ClientError as error:
        if aws.error_code(error) not in ("InvalidParameterException", "ClientException"):
            raise


def _delete_cluster(c: aws.Clients, cluster: str) -> None:
    """Its container instances deregistered first: AWS refuses to delete a cluster that has some."""
    for arn in list(aws.paged(c.ecs, "list_container_instances", "containerInstanceArns", cluster=cluster)):
        c.ecs.deregister_container_instance(cluster=cluster, containerInstance=arn, force=True)
    ecs_calls.delete_cluster(c.ecs, cluster)


def _alarms(settings: Settings, c: aws.Clients) -> list[Leftover]:
    found = alarm_names(c.cloudwatch, prefix=names.instance_alarm_prefix(settings.APP_NAME),
                        names=(names.visible_alarm(settings), names.not_visible_alarm(settings)))
    return [Leftover("alarm", name, partial(delete_alarms, c.cloudwatch, [name])) for name in found]


def _log_groups(settings: Settings, c: aws.Clients) -> list[Leftover]:
    groups = [group["logGroupName"] for group in aws.paged(c.logs, "describe_log_groups", "logGroups",
                                                           logGroupNamePrefix=settings.LOG_GROUP_NAME)
              if group["logGroupName"] in (settings.LOG_GROUP_NAME, settings.per_instance_log_group)]
    return [Leftover("log group", group, partial(c.logs.delete_log_group, logGroupName=group)) for group in groups]


def _queues(settings: Settings, c: aws.Clients) -> list[Leftover]:
    found = []
    for name in (settings.SQS_QUEUE_NAME, settings.SQS_DEAD_LETTER_QUEUE):
        url = find_queue_url(c.sqs, name)
        if url is not None:
            found.append(Leftover("queue", name, partial(delete_queue, c.sqs, url)))
    return found


def _objects(settings: Settings, c: aws.Clients) -> list[Leftover]:
    """The run's objects in AWS_BUCKET: what start-cluster, the monitor, the teardown and the workers write."""
    app, bucket = settings.APP_NAME, settings.AWS_BUCKET
    exact = {names.record_key(app), names.monitor_state_key(app), names.status_key(app), names.claim_key(app),
             names.summary_key(app), names.earlier_summary_key(app), names.ecs_config_key(settings)}
    folders = (names.exported_logs_prefix(settings), f"{names.RUN_FILES_PREFIX}{app}/")
    keys = sorted(key for key in exact if object_exists(c.s3, bucket, key))
    keys += [item.key for folder in folders for item in list_objects(c.s3, bucket, folder)]
    return [Leftover("object", f"s3://{bucket}/{key}", partial(delete_objects, c.s3, bucket, [key])) for key in keys]


def _task_role(settings: Settings, c: aws.Clients) -> list[Leftover]:
    role = names.task_role(settings)
    try:
        c.iam.get_role(RoleName=role)
    except ClientError as error:
        if _gone(error):
            return []
        raise
    return [Leftover("IAM role", role, lambda: _delete_role(c, role))]


def _delete_role(c: aws.Clients, role: str) -> None:
    for policy in list(aws.paged(c.iam, "list_role_policies", "PolicyNames", RoleName=role)):
        c.iam.delete_role_policy(RoleName=role, PolicyName=policy)
    for attached in list(aws.paged(c.iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role)):
        c.iam.detach_role_policy(RoleName=role, PolicyArn=attached["PolicyArn"])
    c.iam.delete_role(RoleName=role)


def _tagged_elsewhere(settings: Settings, c: aws.Clients, found: list[Leftover]) -> list[Leftover]:
    """What the Resource Groups Tagging API still lists with the run's tag that the listings above did not name
    (a resource of a kind this module does not know). Terminated machines stay listed there for a while, and a
    deleted queue or log group too: those the listings above have just been asked about are not reported."""
    known = {leftover.name for leftover in found}
    left = []
    for mapping in aws.paged(c.resourcegroupstaggingapi, "get_resources", "ResourceTagMappingList",
                             TagFilters=[{"Key": names.RUN_TAG, "Values": [settings.APP_NAME]}]):
        arn = mapping["ResourceARN"]
        kind = arn.split(":")[2]
        tail = arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        if tail in known or kind in _LISTED_SERVICES:
            continue
        left.append(Leftover(f"{kind} resource", arn, None))
    return left


# The services whose resources the listings above find by name or tag themselves: the Tagging API may still list
# such a resource a while after its deletion (a terminated machine, a deleted queue), which is no leftover.
_LISTED_SERVICES = frozenset({"ec2", "ecs", "cloudwatch", "logs", "sqs", "s3", "iam"})
