"""Finished runs' summaries out of the monitor's scan path: a lab's history of finished runs costs the tick nothing
(monitors/finished/ is one common prefix in the delimited listing of monitors/), and a summary an earlier version
wrote at monitors/APP_NAME_summary.json is still what status, report and teardown find."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model.names import earlier_summary_key, record_key, status_key, summary_key
from chalicelib.monitor import runs, service
from cli import cli
from tests.integration.test_tick_cost import converged, counted
from tests.worker_world import run_workers, script

FINISHED_RUNS = 1_200  # over S3's 1,000 keys a page: listed with the records, they would take a second page


def a_summary(app_name: str, **changes: object) -> bytes:
    return json.dumps({"app_name": app_name, "stop_reason": "drained", "started_at": 1.7e9, "ended_at": 1.7e9 + 60,
                       "jobs_submitted": 1, "jobs_done": 1, "jobs_failed": 0, "jobs_left": 0, "machine_hours": 0.1,
                       "cost_ceiling_usd": 0.01, **changes}).encode()


def test_a_labs_finished_runs_add_nothing_to_the_ticks_listing(started):
    bucket = started.settings.AWS_BUCKET
    s3 = clients.client("s3")
    for index in range(FINISHED_RUNS):
        name = f"Done{index:04d}"
        s3.put_object(Bucket=bucket, Key=summary_key(name), Body=a_summary(name))
    converged(started)

    with counted() as calls:
        [run], unreadable = service.scan_buckets([bucket])
    assert calls == Counter({"s3.ListObjectsV2": 1})  # one page: the records and states, not the history
    assert run.record.MONITOR_APP_NAME == started.settings.APP_NAME and unreadable == []
    with counted() as calls:
        assert runs.record_keys(clients.client("s3"), bucket) == [record_key(started.settings.APP_NAME)]  # GET /runs
    assert calls == Counter({"s3.ListObjectsV2": 1})


def test_a_summary_an_earlier_version_wrote_is_still_found_by_status_report_and_teardown(started, tmp_path):
    settings = started.settings
    run_workers(started, script("print('ok')"))
    s3 = clients.client("s3")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=earlier_summary_key(settings.APP_NAME),  # as versions before wrote
                  Body=a_summary(settings.APP_NAME, log_exports={settings.LOG_GROUP_NAME: "failed"},
                                 exported_logs=f"s3://{settings.AWS_BUCKET}/exportedlogs/x/"))
    s3.delete_object(Bucket=settings.AWS_BUCKET, Key=record_key(settings.APP_NAME))
    s3.delete_object(Bucket=settings.AWS_BUCKET, Key=status_key(settings.APP_NAME))
    clients.client("logs").delete_log_group(logGroupName=settings.LOG_GROUP_NAME)
    config = ["--config", str(started.config_path)]

    found = service.find_status(settings.APP_NAME, [settings.AWS_BUCKET])
    assert found is not None and found["state"] == "finished" and found["summary"]["stop_reason"] == "drained"
    assert service.find_failed(settings.APP_NAME, [settings.AWS_BUCKET]) is not None  # a run known by its summary

    torn = CliRunner().invoke(cli, ["teardown", *config])
    assert torn.exit_code == 0, torn.output
    assert torn.output == (f"run {settings.APP_NAME} is already torn down; summary at "
                           f"s3://{settings.AWS_BUCKET}/monitors/{settings.APP_NAME}_summary.json\n")

    reported = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r.html"), *config])
    assert reported.exit_code == 2  # the summary was read: it is what says the export failed
    assert reported.output.splitlines() == [
        f"error: log group {settings.LOG_GROUP_NAME} does not exist in {settings.AWS_REGION} and its export is "
        "'failed': the run report has no job logs to read"]


def test_the_summary_where_this_version_writes_it_is_read_before_an_earlier_ones(started):
    settings = started.settings
    s3 = clients.client("s3")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=earlier_summary_key(settings.APP_NAME),
                  Body=a_summary(settings.APP_NAME, stop_reason="an earlier run of the same name"))
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=summary_key(settings.APP_NAME), Body=a_summary(settings.APP_NAME))
    s3.delete_object(Bucket=settings.AWS_BUCKET, Key=record_key(settings.APP_NAME))
    s3.delete_object(Bucket=settings.AWS_BUCKET, Key=status_key(settings.APP_NAME))

    found = service.find_status(settings.APP_NAME, [settings.AWS_BUCKET])
    assert found is not None and found["summary"]["stop_reason"] == "drained"
