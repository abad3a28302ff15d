"""Rescue a run Distributed-Something started: `python cli.py monitor files/APP_NAMESpotFleetRequestId.json`
given DS's own monitor file adopts that run, then watches and tears it down as one of ours.

DS's monitor Lambda crashes before it cancels the fleet, so DS users have fleets running that nobody watches.
Adoption is the user's act, with the user's credentials, from the CLI only (the Lambda never adopts a file on
its own: the trust boundary). It checks that the fleet, the queue and the cluster the file names exist, derives
the rest with DS's names (which are this project's), tags the run's queue, fleet, service and log groups with
the run tag, and writes a run record to the bucket, where DS wrote its monitor file. From then on the run is
monitored like any other (ownership.py finds the names and the tags as start-cluster would leave them).
"""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib import awsapi, names, runrecord
from chalicelib.aws import Clients
from chalicelib.errors import UserError
from chalicelib.runrecord import RunRecord
from chalicelib.settings import APP_NAME_PATTERN

DS_KEYS = ("MONITOR_FLEET_ID", "MONITOR_QUEUE_URL", "MONITOR_APP_NAME", "MONITOR_ECS_CLUSTER",
           "MONITOR_LOG_GROUP_NAME", "MONITOR_START_TIME", "MONITOR_BUCKET_NAME", "CLEAN_DASHBOARD")


def read_ds_monitor_file(path: str | Path) -> dict | None:
    """DS's monitor file, or None when the file is not one. DS's writer leaves an extra `}` at the end: the
    first JSON object is read and a tail of closing braces and blanks ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        document, end = json.JSONDecoder().raw_decode(text.lstrip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if text.lstrip()[end:].strip(" \t\r\n}") or not isinstance(document, dict):
        return None
    if not all(key in document for key in DS_KEYS) or "QUEUE_URL" in document:
        return None
    return document


def adopt(clients: Clients, ds: dict, region: str, source: str) -> tuple[RunRecord, list[str]]:
    """Check what the DS file names, tag the run's resources, write the run record; returns it and what was done."""
    app = str(ds["MONITOR_APP_NAME"])
    if not APP_NAME_PATTERN.match(app) or names.app_name_collides(app):  # as the config check refuses it
        raise UserError(f"{source}: MONITOR_APP_NAME {app!r} is not an APP_NAME")
    start = str(ds["MONITOR_START_TIME"]).strip()
    if not start.isdigit():
        raise UserError(f"{source}: MONITOR_START_TIME: expected milliseconds since 1970, got {start[:40]!r}")
    fleet_id, queue_url, cluster = str(ds["MONITOR_FLEET_ID"]), str(ds["MONITOR_QUEUE_URL"]), str(ds["MONITOR_ECS_CLUSTER"])
    fleet = awsapi.fleet_state(clients.ec2, fleet_id)
    depth = awsapi.queue_depth(clients.sqs, queue_url)
    missing = [what for what, found in ((f"spot fleet {fleet_id}", fleet is not None and fleet.live),
                                        (f"queue {queue_url}", depth is not None),
                                        (f"ECS cluster {cluster}", awsapi.ecs_cluster(clients.ecs, cluster) is not None))
               if not found]
    if missing:
        raise UserError(f"{source}: DS run {app!r} cannot be adopted: {', '.join(missing)} not found (live) in "
                        f"{region}; nothing was changed")
    for kind, tags in (("queue", awsapi.queue_tags(clients.sqs, queue_url)), ("spot fleet", fleet.tags)):
        owner = tags.get(names.RUN_TAG)
        if owner not in (None, app):
            raise UserError(f"{source}: the {kind} belongs to run {owner!r}, not {app!r}; nothing was changed")
    log_group = str(ds["MONITOR_LOG_GROUP_NAME"])
    service = awsapi.ecs_service(clients.ecs, cluster, app + "Service")
    dead_letter_arn = awsapi.dead_letter_queue_arn(clients.sqs, queue_url) or ""
    dead_letter_name = dead_letter_arn.rsplit(":", 1)[-1]
    dead_letter_url = (clients.sqs.get_queue_url(QueueName=dead_letter_name)["QueueUrl"] if dead_letter_name
                       else "")
    queue_alarms = tuple(names.queue_alarm_name(kind, app) for kind in ("visible", "not_visible"))
    tasks = service.desired if service else 0
    record = RunRecord(
        MONITOR_FLEET_ID=fleet_id, MONITOR_APP_NAME=app, MONITOR_ECS_CLUSTER=cluster,
        MONITOR_QUEUE_NAME=queue_url.rstrip("/").rsplit("/", 1)[-1], MONITOR_BUCKET_NAME=str(ds["MONITOR_BUCKET_NAME"]),
        MONITOR_LOG_GROUP_NAME=log_group, MONITOR_START_TIME=int(start),
        CLEAN_DASHBOARD=str(ds["CLEAN_DASHBOARD"]).lower() == "true", REGION=region, QUEUE_URL=queue_url,
        DEAD_LETTER_QUEUE_NAME=dead_letter_name, DEAD_LETTER_QUEUE_URL=dead_letter_url,
        SERVICE_NAME=app + "Service", TASK_FAMILY=app + "Task",
        TASK_DEFINITION_ARN=service.task_definition if service else "",
        PER_INSTANCE_LOG_GROUP=log_group + "_perInstance", EXPORTED_LOGS_PREFIX=f"exportedlogs/{log_group}/",
        TOPIC_ARN="", ALARM_NAMES=awsapi.alarm_names(clients.cloudwatch, names=queue_alarms),
        INSTANCE_ALARM_PREFIX=names.instance_alarm_prefix(app),
        DASHBOARD_NAME=app if awsapi.dashboard_exists(clients.cloudwatch, app) else None,
        ECS_CONFIG_KEY=f"ecsconfigs/{app}_ecs.config", MONITOR_FILE_KEY=names.record_key(app),
        INSTANCE_NAME_TAG=app + "Worker", CLUSTER_MACHINES=max(1, fleet.target),
        # DS's file does not say how many jobs a task runs at once: 1 keeps the most machines while jobs wait
        TASKS_PER_MACHINE=max(1, tasks // max(1, fleet.target)), DOCKER_CORES=1,
        MACHINE_TYPE=fleet.instance_types or ("unknown",), MACHINE_PRICE=fleet.spot_price or 0.0, CHEAPEST=False,
        AUTO_MONITOR=True, JOBS_AT_START=depth.waiting + depth.in_flight,
    )
    done = _tag(clients, record, service)
    runrecord.put(clients.s3, record)
    done.append(f"wrote the run record s3://{record.MONITOR_BUCKET_NAME}/{record.MONITOR_FILE_KEY}")
    return record, done


def _tag(clients: Clients, record: RunRecord, service: awsapi.Service | None) -> list[str]:
    """The run tag on what the monitor scales and deletes: without it ownership.py refuses the run."""
    tags = {names.RUN_TAG: record.MONITOR_APP_NAME}
    clients.sqs.tag_queue(QueueUrl=record.QUEUE_URL, Tags=tags)
    clients.ec2.create_tags(Resources=[record.MONITOR_FLEET_ID], Tags=[{"Key": names.RUN_TAG,
                                                                        "Value": record.MONITOR_APP_NAME}])
    done = [f"tagged queue {record.MONITOR_QUEUE_NAME} and spot fleet {record.MONITOR_FLEET_ID}"]
    if service is not None:
        clients.ecs.tag_resource(resourceArn=service.arn, tags=[{"key": names.RUN_TAG,
                                                                 "value": record.MONITOR_APP_NAME}])
        done.append(f"tagged ECS service {record.SERVICE_NAME}")
    for group in (record.MONITOR_LOG_GROUP_NAME, record.PER_INSTANCE_LOG_GROUP):
        if awsapi.log_group_tags(clients.logs, group) is not None:
            clients.logs.tag_log_group(logGroupName=group, tags=tags)
            done.append(f"tagged log group {group}")
    return done
