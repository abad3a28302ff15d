"""Runs Distributed-Something started, built the way DS's run.py builds them (nothing tagged), and a monitor file
naming one: what `cli.py monitor FILE` adopts.

Upstream: github.com/DistributedScience/Distributed-Something, run.py at commit
d1d6e62edb0c83e5d0a047e8569d455ea2cebacd. `setup()` makes the dead-letter queue and APP_NAMEQueue
(get_or_create_queue), registers the family APP_NAMETask whose one container has SQS_QUEUE_URL and LOG_GROUP_NAME
in its environment and logs with awslogs to LOG_GROUP_NAME_perInstance (TASK_DEFINITION,
generate_task_definition), and creates APP_NAMEService with 0 tasks (create_or_update_ecs_service).
`startCluster()` uploads ecsconfigs/APP_NAME_ecs.config (generateECSconfig), requests the fleet with user data
that copies that file to /etc/ecs/ecs.config (generateUserData: a base64 MIME multipart of a cloud-boothook and a
shell script), creates the log groups LOG_GROUP_NAME and LOG_GROUP_NAME_perInstance, and scales the service up.
Distributed-CellProfiler's run.py (commit 17388b33e6e7324b9f014b624450585926ea944c) builds the same resources
under the same names (ECS_TASK_NAME, ECS_SERVICE_NAME at lines 533-534, SQS_QUEUE_URL and LOG_GROUP_NAME in the
environment at lines 122-125, awslogs to LOG_GROUP_NAME_perInstance at line 61, ecsconfigs/APP_NAME_ecs.config at
lines 267-269): only its monitor file differs (MONITOR_FILE_WRITERS).
"""

from __future__ import annotations

import json
import time
from base64 import b64encode
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from chalicelib import aws as clients
from tests.conftest import REGION

BUCKET = "test-bucket"
DEAD_LETTER_QUEUE = "DeadMessages"


def ds_user_data(ecs_config_url: str, docker_base_size: int = 13) -> str:
    """DS's generateUserData: a boothook sizing docker's storage, and a script copying the ECS config."""
    script = MIMEText("#!/bin/bash \nsudo yum install -y aws-cli \nsudo yum install -y awslogs \n"
                      f"aws s3 cp {ecs_config_url} /etc/ecs/ecs.config", _subtype="x-shellscript")
    script.add_header("Content-Disposition", "attachment", filename="config_temp.txt")
    boothook = MIMEText("#!/bin/bash \necho 'OPTIONS=\"${OPTIONS} --storage-opt dm.basesize="
                        f"{docker_base_size}G\"' >> /etc/sysconfig/docker", _subtype="cloud-boothook")
    boothook.add_header("Content-Disposition", "attachment", filename="boothook_temp.txt")
    document = MIMEMultipart()
    document.attach(boothook)
    document.attach(script)
    return b64encode(document.as_string().encode("utf-8")).decode("utf-8")


def ds_fleet(fleet_path: Path, user_data: str | None, tags: dict[str, str] | None = None) -> str:
    """A one-machine fleet from the account's fleet file, each launch specification with `user_data`, as
    startCluster requests it; `tags` only for a fleet some run tagged."""
    fleet_file = json.loads(Path(fleet_path).read_text())
    config = {key: value for key, value in fleet_file.items() if "_comment" not in key}
    config.update(TargetCapacity=1, AllocationStrategy="lowestPrice", SpotPrice="0.10")
    for spec in config["LaunchSpecifications"]:
        spec["InstanceType"] = "m5.large"
        if user_data is not None:
            spec["UserData"] = user_data
    if tags:
        config["TagSpecifications"] = [{"ResourceType": "spot-fleet-request",
                                        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}]
    return clients.client("ec2", region=REGION).request_spot_fleet(SpotFleetRequestConfig=config)["SpotFleetRequestId"]


def ds_run(account, app: str = "DSApp", cluster: str = "default", dead_letter: bool = True,
           log_group: str | None = None) -> dict:
    """What DS's setup and startCluster leave for `app`; returns the values startCluster writes into its monitor
    file (the names of config.py: SQS_QUEUE_NAME = APP_NAME + 'Queue', CLEAN_DASHBOARD = 'True' as DS's and
    DCP's example config.py set them)."""
    sqs, ecs, logs, s3 = (clients.client(name) for name in ("sqs", "ecs", "logs", "s3"))
    log_group = log_group or app
    redrive = {}
    if dead_letter:
        dead = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "10"})}
    queue = sqs.create_queue(QueueName=app + "Queue", Attributes={
        "DelaySeconds": "0", "MaximumMessageSize": "262144", "MessageRetentionPeriod": "1209600",
        "ReceiveMessageWaitTimeSeconds": "0", "VisibilityTimeout": "60", **redrive})["QueueUrl"]
    ecs.create_cluster(clusterName=cluster)
    environment = {"AWS_REGION": REGION, "APP_NAME": app, "SQS_QUEUE_URL": queue, "AWS_BUCKET": BUCKET,
                   "DOCKER_CORES": "4", "LOG_GROUP_NAME": log_group, "CHECK_IF_DONE_BOOL": "False",
                   "EXPECTED_NUMBER_FILES": "7", "ECS_CLUSTER": cluster, "SECONDS_TO_START": "180",
                   "MIN_FILE_SIZE_BYTES": "1", "NECESSARY_STRING": ""}
    ecs.register_task_definition(family=app + "Task", containerDefinitions=[{
        "name": app, "image": "user/distributed-something:sometag", "cpu": 4096, "memory": 15000,
        "essential": True, "privileged": True,
        "environment": [{"name": name, "value": value} for name, value in environment.items()],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": log_group + "_perInstance", "awslogs-region": REGION, "awslogs-stream-prefix": app}}}])
    ecs.create_service(cluster=cluster, serviceName=app + "Service", taskDefinition=app + "Task", desiredCount=0)
    config_key = f"ecsconfigs/{app}_ecs.config"
    s3.put_object(Bucket=BUCKET, Key=config_key,
                  Body=f'ECS_CLUSTER={cluster}\nECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]'.encode())
    fleet_id = ds_fleet(account.fleet_path, ds_user_data(f"s3://{BUCKET}/{config_key}"))
    for group in (log_group, log_group + "_perInstance"):
        logs.create_log_group(logGroupName=group)
        logs.put_retention_policy(logGroupName=group, retentionInDays=60)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(logGroupName=group, logStreamName="s",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "DS worker log"}])
    ecs.update_service(cluster=cluster, service=app + "Service", desiredCount=1)
    return {"MONITOR_FLEET_ID": fleet_id, "MONITOR_APP_NAME": app, "MONITOR_ECS_CLUSTER": cluster,
            "MONITOR_QUEUE_NAME": app + "Queue", "MONITOR_BUCKET_NAME": BUCKET, "MONITOR_LOG_GROUP_NAME": log_group,
            "MONITOR_START_TIME": str(int(time.time() * 1000)), "CLEAN_DASHBOARD": "True"}


def queue_url(ds: dict) -> str:
    """The URL of the queue the monitor file names (DS's get_queue_url looks it up by name, as adopting does)."""
    return clients.client("sqs").get_queue_url(QueueName=ds["MONITOR_QUEUE_NAME"])["QueueUrl"]


def _ds_since_2023(ds: dict) -> str:
    # Distributed-Something run.py, startCluster, lines 600-607 at d1d6e62edb0c83e5d0a047e8569d455ea2cebacd (its
    # main today), written so since 9a7788b251a4eb59aa713da90d4bc404a913104d (2023-03-14), which added the last
    # line after the line closing the object; Distributed-CellProfiler wrote the same from 0295eb5 to f99af21.
    return ('{"MONITOR_FLEET_ID" : "' + ds["MONITOR_FLEET_ID"] + '",\n'
            '"MONITOR_APP_NAME" : "' + ds["MONITOR_APP_NAME"] + '",\n'
            '"MONITOR_ECS_CLUSTER" : "' + ds["MONITOR_ECS_CLUSTER"] + '",\n'
            '"MONITOR_QUEUE_NAME" : "' + ds["MONITOR_QUEUE_NAME"] + '",\n'
            '"MONITOR_BUCKET_NAME" : "' + ds["MONITOR_BUCKET_NAME"] + '",\n'
            '"MONITOR_LOG_GROUP_NAME" : "' + ds["MONITOR_LOG_GROUP_NAME"] + '",\n'
            '"MONITOR_START_TIME" : "' + ds["MONITOR_START_TIME"] + '"}\n'
            '"CLEAN_DASHBOARD" : "' + ds["CLEAN_DASHBOARD"] + '"}\n')


def _dcp_since_2023(ds: dict) -> str:
    # Distributed-CellProfiler run.py, startCluster, lines 617-624 at 17388b33e6e7324b9f014b624450585926ea944c (its
    # main today), written so since f57acdcef684f2d2f9966e6f24f30c6396ed1aab (2023-06-15, "missing comma").
    return ('{"MONITOR_FLEET_ID" : "' + ds["MONITOR_FLEET_ID"] + '",\n'
            '"MONITOR_APP_NAME" : "' + ds["MONITOR_APP_NAME"] + '",\n'
            '"MONITOR_ECS_CLUSTER" : "' + ds["MONITOR_ECS_CLUSTER"] + '",\n'
            '"MONITOR_QUEUE_NAME" : "' + ds["MONITOR_QUEUE_NAME"] + '",\n'
            '"MONITOR_BUCKET_NAME" : "' + ds["MONITOR_BUCKET_NAME"] + '",\n'
            '"MONITOR_LOG_GROUP_NAME" : "' + ds["MONITOR_LOG_GROUP_NAME"] + '",\n'
            '"MONITOR_START_TIME" : "' + ds["MONITOR_START_TIME"] + '",\n'
            '"CLEAN_DASHBOARD" : "' + ds["CLEAN_DASHBOARD"] + '"}\n')


def _ds_before_2023(ds: dict) -> str:
    # Distributed-Something run.py, startCluster, lines 587-593 at f150defd37cd9f1db06b07f3844d8b2541b029ee (the
    # last commit before 9a7788b), written so since its first commit 5e6a799: no CLEAN_DASHBOARD at all.
    return ('{"MONITOR_FLEET_ID" : "' + ds["MONITOR_FLEET_ID"] + '",\n'
            '"MONITOR_APP_NAME" : "' + ds["MONITOR_APP_NAME"] + '",\n'
            '"MONITOR_ECS_CLUSTER" : "' + ds["MONITOR_ECS_CLUSTER"] + '",\n'
            '"MONITOR_QUEUE_NAME" : "' + ds["MONITOR_QUEUE_NAME"] + '",\n'
            '"MONITOR_BUCKET_NAME" : "' + ds["MONITOR_BUCKET_NAME"] + '",\n'
            '"MONITOR_LOG_GROUP_NAME" : "' + ds["MONITOR_LOG_GROUP_NAME"] + '",\n'
            '"MONITOR_START_TIME" : "' + ds["MONITOR_START_TIME"] + '"}\n')


# The monitor file's text as each upstream version's startCluster writes it (createMonitor.write, line by line)
MONITOR_FILE_WRITERS = {"DS d1d6e62": _ds_since_2023, "DCP 17388b3": _dcp_since_2023,
                        "DS f150def": _ds_before_2023}


def write_monitor_file(folder: Path, ds: dict, writer: str = "DS d1d6e62") -> Path:
    """files/APP_NAMESpotFleetRequestId.json, the bytes `writer`'s run.py leaves (open(..., 'w'): text mode)."""
    path = folder / f"{ds['MONITOR_APP_NAME']}SpotFleetRequestId.json"
    path.write_text(MONITOR_FILE_WRITERS[writer](ds), encoding="utf-8")
    return path
