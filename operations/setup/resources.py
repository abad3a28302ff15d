"""`setup`: the run's queues, ECS cluster, task definition, service, log groups and topic.

Idempotent in the strong sense: each `ensure_*` reads what exists, compares it
with what the settings ask for, and writes only the difference. A second run
makes no write at all (the integration tests snapshot AWS to prove it), and a
changed setting (say SQS_MESSAGE_VISIBILITY) is applied to the existing
resource, where DS silently keeps the old value.

No sleeps: every call here is read-after-write consistent for the next call
(DS sleeps 60 s after each creation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib import aws
from chalicelib.aws.ecs import ecs_cluster, ecs_service
from chalicelib.aws.sqs import find_queue_url, queue_tags
from chalicelib.model import names
from chalicelib.model.errors import UserError
from chalicelib.model.settings import Settings

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import DeploymentConfigurationTypeDef, TagTypeDef, TaskDefinitionTypeDef
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import LogGroupTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

HOST_VOLUME = "dsr-host"  # the task definition's volume holding what the host tells its containers
# ECS's spot draining stops a reclaimed machine's tasks (SIGTERM: the workers release their jobs) only as the
# service's minimum healthy percent allows; at 100 it first waits for replacements, which a full fleet has no room
# for, and the machine is gone two minutes after the notice with its jobs still held.
DEPLOYMENT: DeploymentConfigurationTypeDef = {"minimumHealthyPercent": 0, "maximumPercent": 200}


class OwnedByAnotherRun(UserError):
    """A resource setup would share carries another run's tag."""


def run_tags(settings: Settings) -> dict[str, str]:
    """The tag every resource of the run carries: the monitor acts only on what carries it."""
    return {names.RUN_TAG: settings.APP_NAME}


def check_owner(tags: dict[str, str], settings: Settings, kind: str, name: str, key: str) -> bool:
    """True when the resource needs the run's tag added; raises when another run owns it."""
    owner = tags.get(names.RUN_TAG)
    if owner is not None and owner != settings.APP_NAME:
        raise OwnedByAnotherRun(f"{kind} '{name}' belongs to run '{owner}' (tag {names.RUN_TAG}); choose another "
                                f"{key} in {settings.source}, so that one run's teardown never deletes another's")
    return owner is None


@dataclass(frozen=True)
class Change:
    action: str  # "created" | "updated" | "unchanged"
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}"


@dataclass
class SetupReport:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    queue_url: str = ""
    dead_letter_queue_url: str = ""
    task_definition_arn: str = ""
    topic_arn: str = ""

    def add(self, action: str, kind: str, name: str) -> None:
        self.changes.append(Change(action, kind, name))


def setup(settings: Settings, clients: aws.Clients | None = None) -> SetupReport:
    """Create or fix every resource `setup` owns; see the module docstring."""
    c = clients or aws.Clients(settings)
    report = SetupReport()
    report.dead_letter_queue_url = ensure_queue(c.sqs, settings.SQS_DEAD_LETTER_QUEUE,
                                                dead_letter_attributes(), report)
    dlq_arn = queue_arn(c.sqs, report.dead_letter_queue_url)
    report.queue_url = ensure_queue(c.sqs, settings.SQS_QUEUE_NAME, job_queue_attributes(settings, dlq_arn), report,
                                    settings=settings)
    for group in (settings.LOG_GROUP_NAME, settings.per_instance_log_group):
        ensure_log_group(c.logs, group, names.LOG_RETENTION_DAYS, report, settings=settings)
    report.topic_arn = ensure_topic(c.sns, names.MONITOR_TOPIC, report)
    ensure_cluster(c.ecs, settings.ECS_CLUSTER, report, settings=settings)
    role_arn = find_role_arn(c.iam, names.task_role(settings))
    if role_arn is None:
        report.warnings.append(
            f"IAM role {names.task_role(settings)} does not exist, so the task definition has no task role and "
            "workers could not reach SQS or S3; run 'python cli.py setup-account', then setup again")
    report.task_definition_arn = ensure_task_definition(c.ecs, task_definition(settings, role_arn, report.queue_url),
                                                        report)
    ensure_service(c.ecs, settings, report.task_definition_arn, report)
    return report


# --------------------------------------------------------------------------- SQS


def dead_letter_attributes() -> dict[QueueAttributeNameType, str]:
    # A dead-lettered message keeps its original enqueue time, so with SQS's
    # 4-day default a job that fails late in a long run would vanish (DS's bug).
    return {"MessageRetentionPeriod": str(names.QUEUE_RETENTION_SECONDS)}


def job_queue_attributes(settings: Settings, dead_letter_arn: str) -> dict[QueueAttributeNameType, str]:
    return {
        "MessageRetentionPeriod": str(names.QUEUE_RETENTION_SECONDS),
        "VisibilityTimeout": str(settings.SQS_MESSAGE_VISIBILITY),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn,
                                     "maxReceiveCount": settings.JOB_RETRIES}),
    }


def queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queue(sqs: SQSClient, name: str, wanted: dict[QueueAttributeNameType, str], report: SetupReport,
                 settings: Settings | None = None) -> str:
    """The queue with `wanted` attributes; with `settings`, it is the run's own queue and carries the run's tag
    (the dead-letter queue is shared between runs, as DS's default name implies, and is never tagged)."""
    tags = run_tags(settings) if settings else {}
    url = find_queue_url(sqs, name)
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes=wanted, **({"tags": tags} if tags else {}))["QueueUrl"]
        report.add("created", "queue", name)
        return url
    changed = []
    if settings and check_owner(queue_tags(sqs, url) or {}, settings, "queue", name, "SQS_QUEUE_NAME"):
        sqs.tag_queue(QueueUrl=url, Tags=tags)
        changed.append("tags")
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(wanted))["Attributes"]
    different = {key: value for key, value in wanted.items() if not _same_attribute(key, current.get(key), value)}
    if different:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=different)
        changed.extend(sorted(different))
    report.add("updated" if changed else "unchanged", "queue", f"{name} ({', '.join(changed)})" if changed else name)
    return url


def _same_attribute(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key == "RedrivePolicy":
        # SQS may hand maxReceiveCount back as a string; compare meanings, not spellings.
        mine, theirs = json.loads(wanted), json.loads(current)
        return (mine["deadLetterTargetArn"] == theirs.get("deadLetterTargetArn")
                and str(mine["maxReceiveCount"]) == str(theirs.get("maxReceiveCount")))
    return str(current) == str(wanted)


# --------------------------------------------------------------------------- CloudWatch Logs, SNS


def find_log_group(logs: CloudWatchLogsClient, name: str) -> LogGroupTypeDef | None:
    groups: Iterator[LogGroupTypeDef] = aws.paged(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=name)
    return next((group for group in groups if group["logGroupName"] == name), None)


def ensure_log_group(logs: CloudWatchLogsClient, name: str, retention_days: int, report: SetupReport,
                     settings: Settings | None = None) -> None:
    """With `settings`, the group carries the run's tag: the monitor exports only its run's own groups. A group
    another run made keeps that run's tag (runs may share LOG_GROUP_NAME; only its owner exports it)."""
    tags = run_tags(settings) if settings else {}
    group = find_log_group(logs, name)
    if group is None:
        if tags:
            logs.create_log_group(logGroupName=name, tags=tags)
        else:
            logs.create_log_group(logGroupName=name)
        logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
        report.add("created", "log group", name)
        return
    changed = []
    if tags and names.RUN_TAG not in logs.list_tags_log_group(logGroupName=name).get("tags", {}):
        logs.tag_log_group(logGroupName=name, tags=tags)
        changed.append("tags")
    if group.get("retentionInDays") != retention_days:
        logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
        changed.append("retention")
    report.add("updated" if changed else "unchanged", "log group",
               f"{name} ({', '.join(changed)})" if changed else name)


def find_topic_arn(sns: SNSClient, name: str) -> str | None:
    arns: Iterator[str] = (topic["TopicArn"] for topic in aws.paged(sns, "list_topics", "Topics"))
    return next((arn for arn in arns if arn.rsplit(":", 1)[-1] == name), None)


def ensure_topic(sns: SNSClient, name: str, report: SetupReport) -> str:
    arn = find_topic_arn(sns, name)
    if arn is not None:
        report.add("unchanged", "topic", name)
        return arn
    report.add("created", "topic", name)
    return sns.create_topic(Name=name)["TopicArn"]


# --------------------------------------------------------------------------- IAM (read only here)


def find_role_arn(iam: IAMClient, name: str) -> str | None:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return None


# --------------------------------------------------------------------------- ECS


def ensure_cluster(ecs: ECSClient, name: str, report: SetupReport, settings: Settings | None = None) -> None:
    """A cluster setup creates carries the creating run's tag: the monitor deletes only such a cluster, and only
    once nothing uses it. A cluster that exists is shared and left as it is ('default', or another run's)."""
    if ecs_cluster(ecs, name) is not None:
        report.add("unchanged", "ECS cluster", name)
    else:
        if settings:
            ecs.create_cluster(clusterName=name, tags=_ecs_tags(run_tags(settings)))
        else:
            ecs.create_cluster(clusterName=name)
        report.add("created", "ECS cluster", name)


def _ecs_tags(tags: dict[str, str]) -> list[TagTypeDef]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def task_definition(settings: Settings, task_role_arn: str | None, queue_url: str = "") -> dict[str, Any]:
    """The register_task_definition arguments: one container named APP_NAME, logs to _perInstance. In DS image
    mode the container gets DS's variables (the queue's URL among them) instead of DSR_CONFIG, and runs
    privileged only when PRIVILEGED says so."""
    variables = settings.ds_environment(queue_url) if settings.ds_image_mode else settings.to_environment()
    container = {
        "name": settings.APP_NAME,
        "image": settings.DOCKERHUB_TAG,
        "cpu": settings.CPU_SHARES,
        "memory": settings.MEMORY,
        "essential": True,
        # Sorted so that a re-run compares equal to what ECS stored.
        "environment": [{"name": key, "value": value} for key, value in sorted(variables.items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": settings.per_instance_log_group,
                "awslogs-region": settings.AWS_REGION,
                "awslogs-stream-prefix": settings.APP_NAME,
            },
        },
    }
    if settings.PRIVILEGED:
        container["privileged"] = True
    if settings.GPUS_PER_TASK:
        # ECS gives the container this many of the machine's GPUs, each to one task only, and places the task only
        # where that many are free (Amazon ECS Developer Guide, "Amazon ECS task definitions for GPU workloads").
        container["resourceRequirements"] = [{"type": "GPU", "value": str(settings.GPUS_PER_TASK)}]
    # The boot script's instance id, read-only: the worker names its machine without the metadata service, which
    # containers cannot reach (the launch template's hop limit of 1).
    container["mountPoints"] = [{"sourceVolume": HOST_VOLUME, "containerPath": names.CONTAINER_HOST_DIR,
                                 "readOnly": True}]
    definition: dict[str, Any] = {"family": settings.task_family, "containerDefinitions": [container],
                                  "volumes": [{"name": HOST_VOLUME, "host": {"sourcePath": names.HOST_INFO_DIR}}],
                                  "tags": _ecs_tags(run_tags(settings))}
    if task_role_arn:
        definition["taskRoleArn"] = task_role_arn
    return definition


def find_task_definition(ecs: ECSClient, family: str) -> TaskDefinitionTypeDef | None:
    """The family's latest ACTIVE revision, or None."""
    try:
        return ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    except ecs.exceptions.ClientException:
        return None


def _same_task_definition(current: TaskDefinitionTypeDef, wanted: dict[str, Any]) -> bool:
    if current.get("status", "ACTIVE") != "ACTIVE" or current.get("taskRoleArn") != wanted.get("taskRoleArn"):
        return False
    [mine] = wanted["containerDefinitions"]
    definitions = current.get("containerDefinitions") or [{}]
    if len(definitions) != 1:
        return False
    theirs: dict[str, Any] = dict(definitions[0])
    if theirs.get("resourceRequirements", []) != mine.get("resourceRequirements", []):
        return False  # GPUS_PER_TASK set back to 0: the old revision still reserves GPUs
    theirs["environment"] = sorted(theirs.get("environment", []), key=lambda item: item["name"])
    return all(theirs.get(key) == value for key, value in mine.items())


def ensure_task_definition(ecs: ECSClient, wanted: dict[str, Any], report: SetupReport) -> str:
    current = find_task_definition(ecs, wanted["family"])
    if current is not None and _same_task_definition(current, wanted):
        report.add("unchanged", "task definition", f"{wanted['family']}:{current['revision']}")
        return current["taskDefinitionArn"]
    registered = ecs.register_task_definition(**wanted)["taskDefinition"]
    action = "created" if current is None else "updated"
    report.add(action, "task definition", f"{wanted['family']}:{registered['revision']}")
    return registered["taskDefinitionArn"]


def ensure_service(ecs: ECSClient, settings: Settings, task_definition_arn: str, report: SetupReport) -> None:
    service = ecs_service(ecs, settings.ECS_CLUSTER, settings.service_name)
    if service is None:
        # Desired count 0: tasks start only when start-cluster has machines for them.
        ecs.create_service(cluster=settings.ECS_CLUSTER, serviceName=settings.service_name,
                           taskDefinition=task_definition_arn, desiredCount=0, launchType="EC2",
                           deploymentConfiguration=DEPLOYMENT, tags=_ecs_tags(run_tags(settings)))
        report.add("created", "ECS service", settings.service_name)
        return
    changed = []
    if check_owner(service.tags, settings, "ECS service", settings.service_name, "APP_NAME"):
        ecs.tag_resource(resourceArn=service.arn, tags=_ecs_tags(run_tags(settings)))
        changed.append("tags")
    if service.task_definition != task_definition_arn:
        # The desired count is left alone: a run may be in progress.
        ecs.update_service(cluster=settings.ECS_CLUSTER, service=settings.service_name,
                           taskDefinition=task_definition_arn)
        changed.append("task definition")
    if service.minimum_healthy_percent != DEPLOYMENT["minimumHealthyPercent"]:
        ecs.update_service(cluster=settings.ECS_CLUSTER, service=settings.service_name,
                           deploymentConfiguration=DEPLOYMENT)
        changed.append("deployment configuration")
    report.add("updated" if changed else "unchanged", "ECS service",
               f"{settings.service_name} ({', '.join(changed)})" if changed else settings.service_name)
