"""Rescue a run Distributed-Something (or Distributed-CellProfiler) started: `python cli.py monitor
files/APP_NAMESpotFleetRequestId.json` given DS's own monitor file (read by dsmonitorfile.py as each version of
DS and DCP writes it) adopts that run, then watches and tears it down as one of ours.

DS's monitor Lambda crashes before it cancels the fleet, so DS users have fleets running that nobody watches.
Adoption is the user's act, with the user's credentials, from the CLI only (the Lambda never adopts a file on
its own: the trust boundary). A monitor file is only names, and anyone can write one: `prepare` takes nothing
on the file's word. It proves each resource the run's the way DS itself ties them (dsownership.py: DS tags
nothing), refuses anything another run tagged, and changes nothing; the CLI lists what adoption will tag and
what the monitor will then do, and asks. `carry_out` tags the run's queue, fleet, service and log groups with
the run tag and writes a run record to the bucket, where DS wrote its monitor file. From then on the run is
monitored like any other (ownership.py finds the names and the tags as start-cluster would leave them).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from chalicelib.aws import Clients
from chalicelib.aws.cloudwatch import alarm_names, dashboard_exists
from chalicelib.aws.ec2 import FleetState, fleet_state, fleet_user_data
from chalicelib.aws.ecs import Service, TaskDefinition, ecs_cluster, ecs_service, task_definition
from chalicelib.aws.logs import log_group_tags
from chalicelib.aws.sqs import dead_letter_queue_arn, existing_queue_url, find_queue_url, queue_depth, queue_tags
from chalicelib.model import names
from chalicelib.model.errors import UserError
from chalicelib.model.settings import APP_NAME_PATTERN
from chalicelib.monitor import ownership, runrecord
from chalicelib.monitor.runrecord import RunRecord
from operations.adopt import dsownership
from operations.adopt.dsmonitorfile import DSMonitorFile


@dataclass(frozen=True)
class Adoption:
    """A DS run proved the file's: the run record to write, and what adopting tags."""

    record: RunRecord
    service_arn: str
    task_definition: str  # family:revision, the one the service runs
    log_groups: tuple[str, ...]  # those of the run's two that exist and the task definition logs to


def prepare(clients: Clients, ds: DSMonitorFile, region: str, source: str) -> Adoption:
    """Check what the DS file names and prove each part is its APP_NAME's; changes nothing (UserError if not)."""
    app = ds.MONITOR_APP_NAME
    if not APP_NAME_PATTERN.match(app) or names.app_name_collides(app):  # as the config check refuses it
        raise UserError(f"{source}: MONITOR_APP_NAME {app[:40]!r} is not an APP_NAME")
    fleet_id, queue_name, cluster = ds.MONITOR_FLEET_ID, ds.MONITOR_QUEUE_NAME, ds.MONITOR_ECS_CLUSTER
    fleet = fleet_state(clients.ec2, fleet_id)
    # DS's file names the queue; the task definition says the URL it polls, and _prove compares the two
    queue_url = find_queue_url(clients.sqs, queue_name)
    depth = queue_depth(clients.sqs, queue_url) if queue_url else None
    missing = [what for what, found in ((f"spot fleet {fleet_id}", fleet is not None and fleet.live),
                                        (f"queue {queue_name}", depth is not None),
                                        (f"ECS cluster {cluster}", ecs_cluster(clients.ecs, cluster)))
               if not found]
    if missing or fleet is None or queue_url is None or depth is None:  # the last three: `missing` says so
        raise UserError(f"{source}: DS run {app!r} cannot be adopted: {', '.join(missing)} not found (live) in "
                        f"{region} (AWS_REGION or AWS_DEFAULT_REGION chooses the region); nothing was changed")
    log_group = ds.MONITOR_LOG_GROUP_NAME
    proof = _prove(clients, app, fleet, queue_url, cluster, log_group)
    if isinstance(proof, str):
        raise UserError(f"{source}: not adopted: {proof}; nothing was changed")
    service, definition, log_groups = proof
    dead_letter_arn = dead_letter_queue_arn(clients.sqs, queue_url) or ""
    dead_letter_name = dead_letter_arn.rsplit(":", 1)[-1]
    dead_letter_url = existing_queue_url(clients.sqs, dead_letter_name) if dead_letter_name else ""
    queue_alarms = tuple(names.queue_alarm_name(kind, app) for kind in ("visible", "not_visible"))
    record = RunRecord(
        MONITOR_FLEET_ID=fleet_id, MONITOR_APP_NAME=app, MONITOR_ECS_CLUSTER=cluster,
        MONITOR_QUEUE_NAME=queue_name, MONITOR_BUCKET_NAME=ds.MONITOR_BUCKET_NAME,
        MONITOR_LOG_GROUP_NAME=log_group, MONITOR_START_TIME=ds.MONITOR_START_TIME,
        CLEAN_DASHBOARD=ds.CLEAN_DASHBOARD, REGION=region, QUEUE_URL=queue_url,
        DEAD_LETTER_QUEUE_NAME=dead_letter_name, DEAD_LETTER_QUEUE_URL=dead_letter_url,
        SERVICE_NAME=service.name, TASK_FAMILY=dsownership.task_family(app), TASK_DEFINITION_ARN=definition.arn,
        PER_INSTANCE_LOG_GROUP=log_group + "_perInstance", EXPORTED_LOGS_PREFIX=f"exportedlogs/{log_group}/",
        TOPIC_ARN="", ALARM_NAMES=alarm_names(clients.cloudwatch, names=queue_alarms),
        INSTANCE_ALARM_PREFIX=names.instance_alarm_prefix(app),
        DASHBOARD_NAME=app if dashboard_exists(clients.cloudwatch, app) else None,
        ECS_CONFIG_KEY=dsownership.ecs_config_key(app), MONITOR_FILE_KEY=names.record_key(app),
        INSTANCE_NAME_TAG=app + "Worker", CLUSTER_MACHINES=max(1, fleet.target),
        # DS's file does not say how many jobs a task runs at once: 1 keeps the most machines while jobs wait
        TASKS_PER_MACHINE=max(1, service.desired // max(1, fleet.target)), DOCKER_CORES=1,
        MACHINE_TYPE=fleet.instance_types or ("unknown",), MACHINE_PRICE=fleet.spot_price or 0.0, CHEAPEST=False,
        AUTO_MONITOR=True, JOBS_AT_START=depth.waiting + depth.in_flight,
    )
    return Adoption(record=record, service_arn=service.arn, task_definition=definition.name, log_groups=log_groups)


def _prove(clients: Clients, app: str, fleet: FleetState, queue_url: str, cluster: str,
           log_group: str) -> tuple[Service, TaskDefinition, tuple[str, ...]] | str:
    """The run's service, its task definition and the log groups to tag, or why a resource is not the run's."""
    service_name = app + "Service"
    service = ecs_service(clients.ecs, cluster, service_name)
    if service is None:
        return (f"ECS service {service_name} does not run in cluster {cluster}: nothing ties the file's resources "
                f"to run {app!r}")
    queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    groups = (log_group, log_group + "_perInstance")
    group_tags = {group: log_group_tags(clients.logs, group) for group in groups}
    tagged = [("spot fleet", fleet.fleet_id, fleet.tags), ("ECS service", service_name, service.tags),
              ("queue", queue_name, queue_tags(clients.sqs, queue_url) or {})]
    tagged += [("log group", group, tags) for group, tags in group_tags.items() if tags is not None]
    for kind, name, tags in tagged:
        problem = ownership.tag_problem(kind, name, tags, app) if tags.get(names.RUN_TAG) not in (None, app) else None
        if problem is not None:
            return problem
    user_data = fleet_user_data(clients.ec2, fleet.fleet_id)
    if not user_data or not all(dsownership.loads_ecs_config(data, app) for data in user_data):
        return (f"spot fleet {fleet.fleet_id} is not run {app!r}'s: its user data does not load "
                f"{dsownership.ecs_config_key(app)}")
    definition = task_definition(clients.ecs, service.task_definition)
    if definition is None or definition.family != dsownership.task_family(app):
        shown = definition.name if definition else service.task_definition
        return (f"ECS service {service_name} runs task definition {shown}, not one of family "
                f"{dsownership.task_family(app)}: nothing ties the file's resources to run {app!r}")
    polled = dsownership.polled_queues(definition)
    if not any(dsownership.same_queue(queue_url, url) for url in polled):
        return (f"queue {queue_name} is not run {app!r}'s: {service_name}'s task definition {definition.name} polls "
                f"{', '.join(polled) or 'no queue (no SQS_QUEUE_URL in its environment)'}")
    logged = dsownership.logged_groups(definition)
    if not set(groups) & set(logged):
        return (f"log group {log_group} is not run {app!r}'s: {service_name}'s task definition {definition.name} "
                f"logs to {', '.join(logged) or 'no log group'}")
    return service, definition, tuple(group for group in groups if group in logged and group_tags[group] is not None)


def describe(adoption: Adoption) -> list[str]:
    """What ties each resource to the run, what adopting tags, and what the monitor will then do with them."""
    record, definition = adoption.record, adoption.task_definition
    app, bucket = record.MONITOR_APP_NAME, record.MONITOR_BUCKET_NAME
    lines = [f"Distributed-Something run {app}, each part tied to it as DS ties it:",
             f"  spot fleet {record.MONITOR_FLEET_ID}: its user data loads {record.ECS_CONFIG_KEY}",
             f"  ECS service {record.SERVICE_NAME}: runs in cluster {record.MONITOR_ECS_CLUSTER}, task definition "
             f"{definition}",
             f"  queue {record.MONITOR_QUEUE_NAME}: the one {definition} polls (SQS_QUEUE_URL)"]
    lines += [f"  log group {group}: {definition} logs to it" for group in adoption.log_groups]
    exported = ", ".join(adoption.log_groups) or "no log group"
    dashboard = f", dashboard {record.DASHBOARD_NAME}" if record.DASHBOARD_NAME and record.CLEAN_DASHBOARD else ""
    then = (f"Adopting tags these {names.RUN_TAG}={app} and writes s3://{bucket}/{record.MONITOR_FILE_KEY}. The "
            "monitor then scales the fleet and the service down as the queue drains; at the end it cancels the "
            f"fleet, deletes the service, task family {record.TASK_FAMILY}, the queue (once empty), the run's "
            f"alarms{dashboard}, and exports {exported} to s3://{bucket}/{record.EXPORTED_LOGS_PREFIX}.")
    return lines + textwrap.wrap(then, width=100, break_long_words=False, break_on_hyphens=False)


def carry_out(clients: Clients, adoption: Adoption) -> list[str]:
    """Tag the run's resources, then write its run record (without the record the tags let nothing act);
    returns what was done."""
    record = adoption.record
    done = _tag(clients, adoption)
    runrecord.put(clients.s3, record)
    done.append(f"wrote the run record s3://{record.MONITOR_BUCKET_NAME}/{record.MONITOR_FILE_KEY}")
    return done


def _tag(clients: Clients, adoption: Adoption) -> list[str]:
    """The run tag on what the monitor scales and deletes: without it ownership.py refuses the run."""
    record = adoption.record
    tags = {names.RUN_TAG: record.MONITOR_APP_NAME}
    clients.sqs.tag_queue(QueueUrl=record.QUEUE_URL, Tags=tags)
    clients.ec2.create_tags(Resources=[record.MONITOR_FLEET_ID], Tags=[{"Key": names.RUN_TAG,
                                                                        "Value": record.MONITOR_APP_NAME}])
    clients.ecs.tag_resource(resourceArn=adoption.service_arn, tags=[{"key": names.RUN_TAG,
                                                                     "value": record.MONITOR_APP_NAME}])
    done = [f"tagged queue {record.MONITOR_QUEUE_NAME} and spot fleet {record.MONITOR_FLEET_ID}",
            f"tagged ECS service {record.SERVICE_NAME}"]
    for group in adoption.log_groups:
        clients.logs.tag_log_group(logGroupName=group, tags=tags)
        done.append(f"tagged log group {group}")
    return done
