"""No AWS secret lands anywhere a run writes.

The environment holds distinctive fake credentials (a secret key and a session
token nobody else would write). setup, submit and start-cluster run through the
CLI, the monitor looks once (making the machines' alarms), a worker runs the
jobs in this process, and then everything they wrote is read back from moto
and from disk: the task definition, the fleet's UserData,
every message, every log event, every alarm and dashboard, every S3 object
(the run record, leases, outputs) and the local `files/` copy of the record,
plus what the CLI and the worker printed. Neither string may appear.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from tests.integration.world import Account, the_run, write_jobs
from worker.options import WorkerOptions
from worker.worker import Worker

SECRET = "dsrFAKEsecret0b9d7c1e5fa24e3c8d6b0a7f"
TOKEN = "dsrFAKEsessionTOKEN4f1e9a2b7c6d5e8f"
JOBS = 5


def everything_written(account, folder: Path) -> list[str]:
    """Every text the run left in moto and on disk, one string per item, each labelled."""
    s = account.settings
    sqs, ecs, logs, s3, ec2, cloudwatch = (clients.client(n) for n in ("sqs", "ecs", "logs", "s3", "ec2", "cloudwatch"))
    texts = []
    for arn in ecs.list_task_definitions()["taskDefinitionArns"]:
        texts.append(f"task definition {arn}: " + json.dumps(ecs.describe_task_definition(taskDefinition=arn),
                                                             default=str))
    for fleet in ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"]:
        texts.append("fleet: " + json.dumps(fleet, default=str))
        for spec in fleet["SpotFleetRequestConfig"].get("LaunchSpecifications", []):
            texts.append("UserData: " + base64.b64decode(spec.get("UserData", "")).decode(errors="replace"))
    for template in ec2.describe_launch_templates()["LaunchTemplates"]:  # the machines' user data is here now
        for version in ec2.describe_launch_template_versions(
                LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"]:
            data = version["LaunchTemplateData"]
            texts.append("launch template: " + json.dumps(version, default=str))
            texts.append("UserData: " + base64.b64decode(data.get("UserData", "")).decode(errors="replace"))
    for url in sqs.list_queues().get("QueueUrls", []):
        texts.extend(f"message in {url}: {m['Body']}" for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []))
    for group in logs.describe_log_groups()["logGroups"]:
        for stream in logs.describe_log_streams(logGroupName=group["logGroupName"])["logStreams"]:
            texts.extend(f"log {group['logGroupName']}/{stream['logStreamName']}: {e['message']}"
                         for e in logs.get_log_events(logGroupName=group["logGroupName"],
                                                      logStreamName=stream["logStreamName"])["events"])
    texts.append("alarms: " + json.dumps(cloudwatch.describe_alarms(), default=str))
    for entry in cloudwatch.list_dashboards()["DashboardEntries"]:
        texts.append("dashboard: " + cloudwatch.get_dashboard(DashboardName=entry["DashboardName"])["DashboardBody"])
    for item in s3.list_objects_v2(Bucket=s.AWS_BUCKET).get("Contents", []):
        body = s3.get_object(Bucket=s.AWS_BUCKET, Key=item["Key"])["Body"].read()
        texts.append(f"s3://{s.AWS_BUCKET}/{item['Key']}: " + body.decode(errors="replace"))
    for path in folder.rglob("*"):
        if path.is_file():
            texts.append(f"file {path}: " + path.read_text(errors="replace"))
    return texts


def test_no_secret_lands_in_anything_a_run_writes(aws, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    clients.forget_sessions()
    caplog.set_level(logging.DEBUG, logger="worker")
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs", CREATE_DASHBOARD=True,
                      ENVIRONMENT={"STAGE": "test"})  # the user's variables go into the task definition too
    config = str(account.config_path)
    printed = []
    for args in (["setup"], ["submit", str(write_jobs(tmp_path, JOBS))],
                 ["start-cluster", str(account.fleet_path), "--wait", "0"]):
        result = CliRunner().invoke(cli, [*args, "--config", config])
        assert result.exit_code == 0, result.output
        printed.append(result.output)
    before_worker = everything_written(account, tmp_path)  # the messages, before the worker deletes them
    assert sum(text.startswith("message in") for text in before_worker) == JOBS

    options = WorkerOptions(wait_seconds=0, retry_delay_seconds=0, log_flush_seconds=0.1,
                            instance_id="i-0123456789abcdef0")
    assert reconcile(the_run(account)).actions  # the monitor's first look: its bookkeeping, the machines' alarms
    worker = Worker(account.settings, options=options)
    worker.run_forever(exit_when_empty=True)
    worker.close()

    written = before_worker + everything_written(account, tmp_path) + printed + [caplog.text]
    assert any(text.startswith("log TestApp/P00000: ") for text in written)  # the worker's job logs were read
    assert any("monitors/TestAppSpotFleetRequestId.json" in text or "SpotFleetRequestId" in text for text in written)
    leaked = [text[:200] for text in written if SECRET in text or TOKEN in text]
    assert not leaked, f"a secret was written: {leaked}"
