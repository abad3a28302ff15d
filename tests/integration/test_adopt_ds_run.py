"""A run Distributed-Something or Distributed-CellProfiler started (untagged resources, their names, the monitor
file as their run.py writes it: DS's with a line after the object, DCP's, and DS's before 2023) is adopted by
`monitor FILE` and torn down completely, with the summary; a file that is none of these is one clear line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws.ec2 import fleet_state, live_machines
from cli import cli
from tests.integration.ds_world import MONITOR_FILE_WRITERS, ds_run, write_monitor_file
from tests.integration.world import Account

APP = "DSApp"


@pytest.mark.parametrize("writer", sorted(MONITOR_FILE_WRITERS))
def test_monitor_given_an_upstream_monitor_file_adopts_the_run_and_tears_it_down(aws, tmp_path, writer):
    account = Account(tmp_path)
    ds = ds_run(account, APP)
    monitor_file = write_monitor_file(tmp_path, ds, writer)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes", "--period", "1"])

    assert result.exit_code == 0, result.output
    assert (f"\nadopted Distributed-Something run {APP} (fleet {ds['MONITOR_FLEET_ID']}, queue {APP}Queue, cluster "
            f"default):\n  tagged queue {APP}Queue and spot fleet {ds['MONITOR_FLEET_ID']}\n  tagged ECS service "
            f"{APP}Service\n  tagged log group {APP}\n  tagged log group {APP}_perInstance\n") in result.output
    assert f"run torn down; summary at s3://test-bucket/monitors/finished/{APP}_summary.json" in result.output
    fleet = fleet_state(clients.client("ec2"), ds["MONITOR_FLEET_ID"])
    assert fleet is None or not fleet.live  # cancelled (moto then forgets the request)
    assert live_machines(clients.client("ec2"), fleet_id=ds["MONITOR_FLEET_ID"]) == ()
    queues = clients.client("sqs").list_queues().get("QueueUrls", [])
    assert not [url for url in queues if url.endswith("/" + APP + "Queue")]
    assert not [s for s in clients.client("ecs").describe_services(cluster="default", services=[APP + "Service"])[
        "services"] if s["status"] == "ACTIVE"]
    summary = json.loads(clients.client("s3").get_object(Bucket="test-bucket",
                                                         Key=f"monitors/finished/{APP}_summary.json")["Body"].read())
    assert summary["app_name"] == APP and summary["log_exports"] == {APP: "done", APP + "_perInstance": "done"}


def test_a_ds_file_naming_what_does_not_exist_changes_nothing(aws, tmp_path):
    Account(tmp_path)
    monitor_file = write_monitor_file(tmp_path, {
        "MONITOR_FLEET_ID": "sfr-00000000-0000-0000-0000-000000000000", "MONITOR_APP_NAME": "Gone",
        "MONITOR_ECS_CLUSTER": "default", "MONITOR_QUEUE_NAME": "GoneQueue", "MONITOR_BUCKET_NAME": "test-bucket",
        "MONITOR_LOG_GROUP_NAME": "Gone", "MONITOR_START_TIME": "1", "CLEAN_DASHBOARD": "True"})

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file)])

    assert result.exit_code == 2
    assert result.stderr == (f"error: {monitor_file}: DS run 'Gone' cannot be adopted: spot fleet "
                             "sfr-00000000-0000-0000-0000-000000000000, queue GoneQueue not found (live) in us-east-1 "
                             "(AWS_REGION or AWS_DEFAULT_REGION chooses the region); nothing was changed\n")
    assert clients.client("s3").list_objects_v2(Bucket="test-bucket", Prefix="monitors/Gone")["KeyCount"] == 0


def test_a_ds_queue_without_a_dead_letter_queue_is_adopted_and_torn_down_all_the_same(aws, tmp_path):
    account = Account(tmp_path)
    ds = ds_run(account, APP, dead_letter=False)
    monitor_file = write_monitor_file(tmp_path, ds, "DCP 17388b3")

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes", "--period", "1"])

    assert result.exit_code == 0, result.output
    assert "run torn down" in result.output


NEITHER = ("neither a run record of this project nor a monitor file of Distributed-Something or "
           "Distributed-CellProfiler")


@pytest.mark.parametrize("text, problem", [
    ('{"jobs": [1, 2]}', f"{NEITHER}: unexpected key(s) 'jobs'; expected the keys MONITOR_FLEET_ID, "
                         "MONITOR_APP_NAME, MONITOR_ECS_CLUSTER, MONITOR_QUEUE_NAME, MONITOR_BUCKET_NAME, "
                         "MONITOR_LOG_GROUP_NAME, MONITOR_START_TIME, CLEAN_DASHBOARD"),
    ('[1]', f"{NEITHER}: expected a JSON object"),
    # the key this project's adoption read before, which neither DS nor DCP ever wrote
    ('{"MONITOR_FLEET_ID": "sfr-1", "MONITOR_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/Q"}',
     f"{NEITHER}: unexpected key(s) 'MONITOR_QUEUE_URL'; expected the keys MONITOR_FLEET_ID"),
    ('{"MONITOR_FLEET_ID" : "sfr-1",\n"MONITOR_START_TIME" : "1"}\n{"Payments": "card"}\n',
     "invalid JSON at line 3 column 1: text after the JSON object (the only line DS's run.py writes after it is "
     '"CLEAN_DASHBOARD" : "True"} or "False"})'),
    ('{"MONITOR_APP_NAME" : "A",\n"MONITOR_START_TIME" : "1"}\n',
     "not a complete Distributed-Something monitor file: missing key(s) MONITOR_FLEET_ID, MONITOR_ECS_CLUSTER, "
     "MONITOR_QUEUE_NAME, MONITOR_BUCKET_NAME, MONITOR_LOG_GROUP_NAME"),
])
def test_a_file_neither_ours_nor_ds_nor_dcp_is_one_line_and_touches_nothing(aws, tmp_path, text, problem):
    monitor_file = tmp_path / "Other.json"
    monitor_file.write_text(text)

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes"])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {monitor_file}: {problem}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_the_run_is_looked_for_in_the_region_boto3_is_configured_for_as_dss_run_py_made_it(aws, tmp_path,
                                                                                            monkeypatch):
    account = Account(tmp_path)
    ds = ds_run(account, APP)  # in us-east-1
    monitor_file = write_monitor_file(tmp_path, ds)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    result = CliRunner().invoke(cli, ["monitor", str(monitor_file), "--yes"])

    assert result.exit_code == 2
    assert result.stderr.endswith(f"{APP}Queue, ECS cluster default not found (live) in eu-west-1 (AWS_REGION or "
                                  "AWS_DEFAULT_REGION chooses the region); nothing was changed\n")
