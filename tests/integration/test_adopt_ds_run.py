"""A run Distributed-Something started (untagged resources, DS's names, DS's monitor file with its extra
closing brace) is adopted by `monitor FILE` and torn down completely, with the summary."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.awsapi import fleet_state, live_machines
from cli import cli
from tests.integration.world import Account, untagged_fleet

APP = "DSApp"


def ds_run(account, dead_letter: bool = True) -> dict:
    """What DS's run.py leaves: queues, service, task definition, log groups, a fleet, none of them tagged."""
    sqs, ecs, logs = clients.client("sqs"), clients.client("ecs"), clients.client("logs")
    redrive = {}
    if dead_letter:
        dead = sqs.create_queue(QueueName="DeadMessages")["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "10"})}
    queue = sqs.create_queue(QueueName=APP + "Queue", Attributes=redrive)["QueueUrl"]
    ecs.create_cluster(clusterName="default")
    definition = ecs.register_task_definition(family=APP + "Task", containerDefinitions=[
        {"name": APP, "image": "user/distributed-something:tag", "memory": 1000}])["taskDefinition"]
    ecs.create_service(cluster="default", serviceName=APP + "Service", taskDefinition=definition["taskDefinitionArn"],
                       desiredCount=1)
    for group in (APP, APP + "_perInstance"):
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(logGroupName=group, logStreamName="s",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "DS worker log"}])
    return {"MONITOR_FLEET_ID": untagged_fleet(account.fleet_path), "MONITOR_QUEUE_URL": queue,
            "MONITOR_APP_NAME": APP, "MONITOR_ECS_CLUSTER": "default", "MONITOR_LOG_GROUP_NAME": APP,
            "MONITOR_START_TIME": str(int(time.time() * 1000)), "MONITOR_BUCKET_NAME": "test-bucket",
            "CLEAN_DASHBOARD": "True"}


def test_monitor_given_dss_monitor_file_adopts_the_run_and_tears_it_down(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account)
    monitor_file = tmp_path / f"{APP}SpotFleetRequestId.json"
    monitor_file.write_text(json.dumps(ds, indent=4) + "}")  # DS's writer leaves an extra brace

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--period", "1"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"adopted Distributed-Something run {APP} (fleet {ds['MONITOR_FLEET_ID']}, "
                                    f"queue {APP}Queue, cluster default):\n  tagged queue {APP}Queue and spot fleet")
    assert f"run torn down; summary at s3://test-bucket/monitors/{APP}_summary.json" in result.output
    fleet = fleet_state(clients.client("ec2"), ds["MONITOR_FLEET_ID"])
    assert fleet is None or not fleet.live  # cancelled (moto then forgets the request)
    assert live_machines(clients.client("ec2"), fleet_id=ds["MONITOR_FLEET_ID"]) == ()
    queues = clients.client("sqs").list_queues().get("QueueUrls", [])
    assert not [url for url in queues if url.endswith("/" + APP + "Queue")]
    assert not [s for s in clients.client("ecs").describe_services(cluster="default", services=[APP + "Service"])[
        "services"] if s["status"] == "ACTIVE"]
    summary = json.loads(clients.client("s3").get_object(Bucket="test-bucket", Key=f"monitors/{APP}_summary.json")
                         ["Body"].read())
    assert summary["app_name"] == APP and summary["log_exports"] == {APP: "done", APP + "_perInstance": "done"}


def test_a_ds_file_naming_what_does_not_exist_changes_nothing(aws, tmp_path):
    Account(tmp_path)
    monitor_file = tmp_path / "Gone.json"
    monitor_file.write_text(json.dumps({
        "MONITOR_FLEET_ID": "sfr-00000000-0000-0000-0000-000000000000", "MONITOR_QUEUE_URL":
        "https://sqs.us-east-1.amazonaws.com/123456789012/GoneQueue", "MONITOR_APP_NAME": "Gone",
        "MONITOR_ECS_CLUSTER": "default", "MONITOR_LOG_GROUP_NAME": "Gone", "MONITOR_START_TIME": "1",
        "MONITOR_BUCKET_NAME": "test-bucket", "CLEAN_DASHBOARD": "True"}))

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file)])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {monitor_file}: DS run 'Gone' cannot be adopted: spot fleet "
                                    "sfr-00000000-0000-0000-0000-000000000000, queue ")
    assert clients.client("s3").list_objects_v2(Bucket="test-bucket", Prefix="monitors/Gone")["KeyCount"] == 0


def test_a_ds_queue_without_a_dead_letter_queue_is_adopted_and_torn_down_all_the_same(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account, dead_letter=False)
    monitor_file = tmp_path / "ds.json"
    monitor_file.write_text(json.dumps(ds))

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--period", "1"])

    assert result.exit_code == 0, result.output
    assert "run torn down" in result.output
