"""The monitor believes a run record only as far as AWS confirms it (DESIGN.md "Trust boundary").

A record is data in a shared bucket: it may be forged (by anyone who could
write monitors/), half-written, or another tool's (DS's and DCP's monitor
files). These tests put such objects beside real runs and read back from moto
what is still there.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model import names
from chalicelib.model.names import record_key
from chalicelib.monitor import service
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from tests.integration.ds_world import MONITOR_FILE_WRITERS
from tests.integration.world import BUCKET, drain, forge, reconcile_everything, the_run, untagged_fleet, victim_world


def test_a_forged_record_naming_another_runs_resources_touches_none_of_them(started, victim):
    before = victim_world(victim)
    victim_record = the_run(victim).record
    forge("Evil", victim_record)
    reconcile_everything()
    assert victim_world(victim) == before
    status = service.find_status("Evil", [BUCKET])
    assert status["state"] == "refused"
    assert f"fleet {victim_record.MONITOR_FLEET_ID} belongs to run 'Victim'" in status["reason"]
    assert "queue VictimQueue belongs to run 'Victim'" in status["reason"]


def test_a_forged_record_naming_untagged_resources_touches_none_of_them(started, victim):
    """Resources no run made (nothing tagged): the monitor cannot prove them the run's, so it leaves them."""
    ec2, sqs = clients.client("ec2"), clients.client("sqs")
    foreign_fleet = untagged_fleet(victim.fleet_path)
    foreign_queue = sqs.create_queue(QueueName="SomeoneElsesQueue")["QueueUrl"]
    clients.client("logs").create_log_group(logGroupName="SomeoneElsesLogs")
    forge("Evil", the_run(victim).record, MONITOR_FLEET_ID=foreign_fleet, QUEUE_URL=foreign_queue,
          MONITOR_QUEUE_NAME="SomeoneElsesQueue", MONITOR_LOG_GROUP_NAME="SomeoneElsesLogs",
          PER_INSTANCE_LOG_GROUP="SomeoneElsesLogs_perInstance", EXPORTED_LOGS_PREFIX="exportedlogs/SomeoneElsesLogs/")
    reconcile_everything()
    [fleet] = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[foreign_fleet])["SpotFleetRequestConfigs"]
    assert fleet["SpotFleetRequestState"] == "active"
    assert sqs.get_queue_url(QueueName="SomeoneElsesQueue")["QueueUrl"] == foreign_queue
    assert clients.client("logs").describe_export_tasks()["exportTasks"] == []
    status = service.find_status("Evil", [BUCKET])
    assert status["state"] == "refused" and "does not carry the tag dsr:app=Evil" in status["reason"]


RECORD_FORGERIES = [  # (what the forged record of run "Evil" says, what the refusal must name)
    ({"SERVICE_NAME": "VictimService"}, "SERVICE_NAME is 'VictimService', but run 'Evil' would have 'EvilService'"),
    ({"TASK_FAMILY": "VictimTask"}, "TASK_FAMILY is 'VictimTask'"),
    ({"ALARM_NAMES": ["ApproximateNumberOfMessagesVisibleisZero_Victim"]}, "are not run 'Evil''s queue alarms"),
    ({"DASHBOARD_NAME": "Victim"}, "DASHBOARD_NAME is 'Victim'"),
    ({"MONITOR_BUCKET_NAME": "another-bucket"}, "MONITOR_BUCKET_NAME is 'another-bucket'"),
    ({"QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/VictimQueue", "MONITOR_QUEUE_NAME": "EvilQueue"},
     "is not the URL of queue 'EvilQueue'"),
]


def test_a_record_naming_what_its_app_name_would_not_is_refused_before_any_aws_call(started, victim):
    before = victim_world(victim)
    for change, reason in RECORD_FORGERIES:
        forge("Evil", the_run(victim).record, **change)
        reconcile_everything(2)
        assert victim_world(victim) == before, change
        status = service.find_status("Evil", [BUCKET])
        assert status["state"] == "refused", change
        assert reason in status["reason"], (change, status["reason"])


def test_a_record_copied_under_another_runs_key_is_refused(started, victim):
    s3 = clients.client("s3")
    s3.put_object(Bucket=BUCKET, Key=names.record_key("Copy"), Body=the_run(victim).record.to_json().encode())
    before = victim_world(victim)
    reconcile_everything(2)
    assert victim_world(victim) == before
    [refused] = [run for run in service.scan_buckets([BUCKET])[0] if run.key == names.record_key("Copy")]
    assert reconcile(refused).observation.refused.startswith("run record refused: found at "
                                                             "monitors/CopySpotFleetRequestId.json")


DS_MONITOR_FILE = MONITOR_FILE_WRITERS["DS d1d6e62"]({  # what DS's run.py uploads: the monitor never adopts it
    "MONITOR_FLEET_ID": "sfr-0123", "MONITOR_APP_NAME": "DSRun", "MONITOR_ECS_CLUSTER": "default",
    "MONITOR_QUEUE_NAME": "DSRunQueue", "MONITOR_BUCKET_NAME": "test-bucket", "MONITOR_LOG_GROUP_NAME": "DSRun",
    "MONITOR_START_TIME": "1700000000", "CLEAN_DASHBOARD": "True"})
BAD_OBJECTS = {
    "monitors/BrokenSpotFleetRequestId.json": b"{not json",
    "monitors/HalfSpotFleetRequestId.json": b'{"MONITOR_FLEET_ID": "sfr-1", "MONITOR_APP',
    "monitors/ListSpotFleetRequestId.json": b"[]",
    "monitors/NullSpotFleetRequestId.json": b"null",
    "monitors/DSRunSpotFleetRequestId.json": DS_MONITOR_FILE.encode(),
    "monitors/BinarySpotFleetRequestId.json": b"\xff\xfe\x00",
    "monitors/TypedSpotFleetRequestId.json": None,  # a record whose CLUSTER_MACHINES is a string
    "monitors/StateSpotFleetRequestId.json": None,  # a good record whose monitor state is not an object
}


def plant_bad_objects(victim_record) -> None:
    s3 = clients.client("s3")
    for key, body in BAD_OBJECTS.items():
        if body is None:
            app = key.split("/")[1].removesuffix(names.RECORD_SUFFIX)
            fields = json.loads(victim_record.to_json())
            fields.update(MONITOR_APP_NAME=app, MONITOR_FILE_KEY=key)
            if app == "Typed":
                fields["CLUSTER_MACHINES"] = "lots"
            else:
                s3.put_object(Bucket=BUCKET, Key=names.monitor_state_key(app), Body=b"[]")
            body = json.dumps(fields).encode()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_bad_objects_under_monitors_never_stop_a_good_run_from_being_torn_down(started, victim, monkeypatch):
    plant_bad_objects(the_run(victim).record)
    runs, unreadable = service.scan_buckets([BUCKET, "no-such-bucket"])
    assert sorted(run.app_name for run in runs) == ["TestApp", "Victim"]
    assert sorted(item.key for item in unreadable) == ["", *sorted(BAD_OBJECTS)]
    reasons = {item.key: item.reason for item in unreadable}
    assert reasons[""] == "the bucket does not exist (check MONITOR_BUCKETS)"
    assert reasons["monitors/BrokenSpotFleetRequestId.json"] == (
        "not a run record of this project (invalid JSON at line 1 column 2)")
    assert reasons["monitors/DSRunSpotFleetRequestId.json"].startswith("not a run record of this project (invalid JSON")
    assert reasons["monitors/TypedSpotFleetRequestId.json"] == (
        "not a run record of this project (CLUSTER_MACHINES: expected an integer of at least 0, got a string)")
    assert "unreadable monitor state" in reasons["monitors/StateSpotFleetRequestId.json"]

    drain(started)
    for _ in range(12):  # the scheduled Lambda's path: scan, reconcile every readable run
        if the_run(started) is None:
            break
        service.reconcile_runs(service.scan_buckets([BUCKET, "no-such-bucket"])[0])
    assert the_run(started) is None, "the good run was not torn down"
    assert service.find_status("TestApp", [BUCKET])["state"] == "finished"

    result = CliRunner().invoke(cli, ["status", "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    assert "finished" in result.output


def test_status_and_the_api_list_unreadable_records_with_their_reason(started, victim):
    plant_bad_objects(the_run(victim).record)
    listed = service.all_statuses([BUCKET])
    assert sorted(run["app_name"] for run in listed["runs"]) == ["TestApp", "Victim"]
    assert {item["key"] for item in listed["unreadable"]} == set(BAD_OBJECTS)
    assert all(item["state"] == "unreadable" for item in listed["unreadable"])
    broken = service.find_status("Broken", [BUCKET])
    assert broken == {"app_name": "Broken", "state": "unreadable", "reason": (
        "s3://test-bucket/monitors/BrokenSpotFleetRequestId.json: not a run record of this project "
        "(invalid JSON at line 1 column 2)")}


def test_cli_commands_on_an_unreadable_record_print_one_line(started, tmp_path):
    s3 = clients.client("s3")
    s3.put_object(Bucket=BUCKET, Key=record_key("TestApp"), Body=b"{half")
    expected = ("error: s3://test-bucket/monitors/TestAppSpotFleetRequestId.json: not a run record of this project "
                "(invalid JSON at line 1 column 2)\n")
    for command in (["plan"], ["teardown"], ["monitor"]):
        result = CliRunner().invoke(cli, [*command, "--config", str(started.config_path)])
        assert (result.exit_code, result.output) == (2, expected), command
    result = CliRunner().invoke(cli, ["status", "--config", str(started.config_path)])
    assert result.exit_code == 0 and "unreadable" in result.output


def test_refused_run_is_logged_once_per_tick_and_shown_as_refused_by_status(started, victim):
    forge("Evil", the_run(victim).record)
    [evil] = [run for run in service.scan_buckets([BUCKET])[0] if run.app_name == "Evil"]
    result = reconcile(evil)
    assert result.actions == [] and "belongs to run 'Victim'" in result.observation.refused
    table = CliRunner().invoke(cli, ["status", "--config", str(_config_for(started, "Evil"))])
    assert table.exit_code == 0, table.output
    assert "refused" in table.output and "belongs to run 'Victim'" in table.output


def _config_for(account, app_name: str) -> Path:
    config = json.loads(Path(account.config_path).read_text())
    config["APP_NAME"] = app_name
    path = Path(account.folder) / f"{app_name}.json"
    path.write_text(json.dumps(config))
    return path


def test_the_lambdas_scan_for_runs_lists_run_records_only_however_many_leases_and_failures(started):
    """Workers' files (busy leases, failure records) live under runs/, outside monitors/: 2,000 of them cost the
    scan nothing; it lists only what lies directly under monitors/ (DS's place for the run record)."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.monitor.runs import scan

    s3 = clients.client("s3")
    keys = [f"runs/TestApp/leases/i-{index:017x}/w1" for index in range(1000)] + [
        f"runs/TestApp/failures/J{index:05d}.json" for index in range(1000)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}"), keys))
    listed = []
    s3.meta.events.register("after-call.s3.ListObjectsV2", lambda parsed, **_: listed.extend(
        item["Key"] for item in parsed.get("Contents", ())))

    runs, skipped = scan(s3, [BUCKET])

    assert [run.record.MONITOR_APP_NAME for run in runs] == ["TestApp"] and skipped == []
    assert listed and all(key.startswith("monitors/") and "/" not in key[len("monitors/"):] for key in listed)
    assert len(listed) <= 4, listed  # the record, the monitor state, the claim, a summary: one run's files
