"""`monitor FILE` adopts only what it can tie to the file's APP_NAME the way DS ties it (DS tags nothing): the
fleet's user data loads ecsconfigs/APP_NAME_ecs.config, APP_NAMEService runs in the named cluster, the queue is
the one that service's task definition polls, the log group one it logs to. Anything else, or anything another
run tagged, is refused with one line before anything is tagged; what passes is listed and adopted only when the
user says so (or passes --yes)."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

import cli as cli_module
from chalicelib import aws as clients
from chalicelib.aws.ec2 import fleet_state
from chalicelib.aws.logs import log_group_tags
from chalicelib.aws.sqs import queue_tags
from chalicelib.model.names import RUN_TAG, record_key
from cli import cli
from tests.integration.ds_world import BUCKET, ds_fleet, ds_run, ds_user_data, queue_url, write_monitor_file
from tests.integration.world import Account

APP = "DSApp"
UPSTREAM = ["DS d1d6e62", "DCP 17388b3"]  # the monitor files DS and DCP write today
CARD = "4111 1111 1111 1111"


def production(account) -> dict:
    """Another team's untagged resources in the same account: a fleet whose user data loads its own app's
    ECS config, an orders queue holding an order, a payments log group holding a card number."""
    sqs, logs = clients.client("sqs"), clients.client("logs")
    queue = sqs.create_queue(QueueName="prod-orders")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody='{"order": 1}')
    logs.create_log_group(logGroupName="/prod/payments")
    logs.create_log_stream(logGroupName="/prod/payments", logStreamName="api")
    logs.put_log_events(logGroupName="/prod/payments", logStreamName="api",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": f"charged card {CARD}"}])
    fleet = ds_fleet(account.fleet_path, ds_user_data("s3://prod-bucket/ecsconfigs/Payments_ecs.config"))
    return {"MONITOR_FLEET_ID": fleet, "MONITOR_QUEUE_NAME": "prod-orders", "MONITOR_LOG_GROUP_NAME": "/prod/payments",
            "queue_url": queue}


def assert_production_untouched(prod: dict) -> None:
    sqs, logs, s3 = clients.client("sqs"), clients.client("logs"), clients.client("s3")
    fleet = fleet_state(clients.client("ec2"), prod["MONITOR_FLEET_ID"])
    assert fleet is not None and fleet.live and fleet.tags == {}
    assert queue_tags(sqs, prod["queue_url"]) == {}
    assert sqs.get_queue_attributes(QueueUrl=prod["queue_url"], AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert log_group_tags(logs, "/prod/payments") == {}
    assert logs.describe_export_tasks()["exportTasks"] == []
    assert CARD not in json.dumps([item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])])


def assert_nothing_adopted(ds: dict) -> None:
    """The DS run named by the file is as DS left it: nothing tagged, no run record."""
    assert fleet_state(clients.client("ec2"), ds["MONITOR_FLEET_ID"]).tags == {}
    assert queue_tags(clients.client("sqs"), queue_url(ds)) == {}
    for group in (APP, APP + "_perInstance"):
        assert log_group_tags(clients.client("logs"), group) == {}
    service = clients.client("ecs").describe_services(cluster="default", services=[APP + "Service"],
                                                      include=["TAGS"])["services"][0]
    assert not service.get("tags")
    assert clients.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=record_key(APP))["KeyCount"] == 0


def refusal(result, monitor_file) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {monitor_file}: "), result.stderr
    assert lines[0].endswith("; nothing was changed")
    return lines[0]


FORGED = {
    "fleet": ("MONITOR_FLEET_ID",),
    "queue": ("MONITOR_QUEUE_NAME",),
    "log group": ("MONITOR_LOG_GROUP_NAME",),
    "all three": ("MONITOR_FLEET_ID", "MONITOR_QUEUE_NAME", "MONITOR_LOG_GROUP_NAME"),
}


@pytest.mark.parametrize("writer", UPSTREAM)
@pytest.mark.parametrize("forged", sorted(FORGED))
def test_a_monitor_file_naming_foreign_resources_is_refused_and_they_are_left_alone(aws, tmp_path, forged, writer):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    prod = production(account)
    monitor_file = write_monitor_file(tmp_path, {**ds, **{key: prod[key] for key in FORGED[forged]}}, writer)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes", "--period", "1"])

    line = refusal(result, monitor_file)
    expected = {
        "fleet": f"spot fleet {prod['MONITOR_FLEET_ID']} is not run {APP!r}'s: its user data does not load "
                 f"ecsconfigs/{APP}_ecs.config",
        "queue": f"queue prod-orders is not run {APP!r}'s: {APP}Service's task definition {APP}Task:1 polls "
                 f"{queue_url(ds)}",
        "log group": f"log group /prod/payments is not run {APP!r}'s: {APP}Service's task definition {APP}Task:1 "
                     f"logs to {APP}, {APP}_perInstance",
    }
    assert expected["fleet" if forged == "all three" else forged] in line
    assert "adopted" not in result.stdout
    assert_production_untouched(prod)
    assert_nothing_adopted(ds)


def test_a_file_naming_an_app_with_no_service_in_its_cluster_is_refused(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    prod = production(account)
    monitor_file = write_monitor_file(tmp_path, {**ds, **prod, "MONITOR_APP_NAME": "Payments"})

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes"])

    assert ("ECS service PaymentsService does not run in cluster default: nothing ties the file's resources to "
            "run 'Payments'") in refusal(result, monitor_file)
    assert_production_untouched(prod)


def _tag_as_other_run(kind: str, ds: dict) -> None:
    other = {RUN_TAG: "Other"}
    if kind == "queue":
        clients.client("sqs").tag_queue(QueueUrl=queue_url(ds), Tags=other)
    elif kind == "spot fleet":
        clients.client("ec2").create_tags(Resources=[ds["MONITOR_FLEET_ID"]], Tags=[{"Key": RUN_TAG,
                                                                                      "Value": "Other"}])
    elif kind == "ECS service":
        ecs = clients.client("ecs")
        arn = ecs.describe_services(cluster="default", services=[APP + "Service"])["services"][0]["serviceArn"]
        ecs.tag_resource(resourceArn=arn, tags=[{"key": RUN_TAG, "value": "Other"}])
    else:
        clients.client("logs").tag_log_group(logGroupName=kind.split()[-1], tags=other)


@pytest.mark.parametrize("writer", UPSTREAM)
@pytest.mark.parametrize("kind", ["queue", "spot fleet", "ECS service", f"log group {APP}",
                                  f"log group {APP}_perInstance"])
def test_a_resource_carrying_another_runs_tag_is_refused(aws, tmp_path, kind, writer):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    _tag_as_other_run(kind, ds)
    monitor_file = write_monitor_file(tmp_path, ds, writer)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes"])

    line = refusal(result, monitor_file)
    assert f"belongs to run 'Other' (tag {RUN_TAG}), not to {APP!r}" in line and kind.split()[0] in line
    sqs, logs = clients.client("sqs"), clients.client("logs")
    assert queue_tags(sqs, queue_url(ds)).get(RUN_TAG) in (None, "Other")
    assert fleet_state(clients.client("ec2"), ds["MONITOR_FLEET_ID"]).tags.get(RUN_TAG) in (None, "Other")
    assert {(log_group_tags(logs, group) or {}).get(RUN_TAG) for group in (APP, APP + "_perInstance")} <= {
        None, "Other"}
    assert clients.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=record_key(APP))["KeyCount"] == 0


def test_without_yes_and_without_a_terminal_to_ask_on_nothing_is_adopted(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    monitor_file = write_monitor_file(tmp_path, ds)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file)])

    assert "no terminal to ask on: pass --yes to adopt it" in refusal(result, monitor_file)
    assert f"  spot fleet {ds['MONITOR_FLEET_ID']}: its user data loads ecsconfigs/{APP}_ecs.config" in result.stdout
    assert_nothing_adopted(ds)


@pytest.mark.parametrize("answer", ["n", "y"])
def test_at_a_terminal_the_user_is_asked_and_no_changes_nothing(aws, tmp_path, monkeypatch, answer):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    monitor_file = write_monitor_file(tmp_path, ds)
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)  # CliRunner's stdin is a pipe

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--period", "1"], input=answer + "\n")

    assert f"Adopt run {APP} and let the monitor act on it as listed? [y/N]: {answer}\n" in result.stdout
    if answer == "n":
        assert result.exit_code == 1 and result.stderr == "not adopted; nothing was changed\n"
        assert_nothing_adopted(ds)
    else:
        assert result.exit_code == 0, result.output
        assert f"adopted Distributed-Something run {APP}" in result.stdout and "run torn down" in result.stdout


def test_a_service_running_another_familys_task_definition_ties_nothing(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    ecs = clients.client("ecs")
    own = ecs.describe_task_definition(taskDefinition=APP + "Task")["taskDefinition"]["containerDefinitions"]
    ecs.register_task_definition(family="PaymentsTask", containerDefinitions=own)  # polls DSApp's queue, all the same
    ecs.update_service(cluster="default", service=APP + "Service", taskDefinition="PaymentsTask")
    monitor_file = write_monitor_file(tmp_path, ds)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes"])

    assert (f"ECS service {APP}Service runs task definition PaymentsTask:1, not one of family {APP}Task: nothing "
            f"ties the file's resources to run {APP!r}") in refusal(result, monitor_file)
    assert_nothing_adopted(ds)
