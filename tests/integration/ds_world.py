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
    """What DS's setup and startCluster leave for `app`; returns the monitor file naming it (the keys this
    project reads today: MONITOR_QUEUE_URL where DS's run.py writes MONITOR_QUEUE_NAME)."""
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
    return {"MONITOR_FLEET_ID": fleet_id, "MONITOR_QUEUE_URL": queue, "MONITOR_APP_NAME": app,
            "MONITOR_ECS_CLUSTER": cluster, "MONITOR_LOG_GROUP_NAME": log_group,
            "MONITOR_START_TIME": str(int(time.time() * 1000)), "MONITOR_BUCKET_NAME": BUCKET,
            "CLEAN_DASHBOARD": "True"}


def write_monitor_file(folder: Path, ds: dict) -> Path:
    """The file as DS's writer leaves it: one closing brace too many."""
    path = folder / f"{ds['MONITOR_APP_NAME']}SpotFleetRequestId.json"
    path.write_text(json.dumps(ds, indent=4) + "}")
    return path
