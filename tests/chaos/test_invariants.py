"""The invariants of a chaos seed find each kind of violation, and none in a clean world.

The world is the end of two finished runs as the emulator would hold it, made by hand on this project's emulator
(`moto_server`): outputs with their `_SUCCESS` markers, failure records, summaries, the shared dead-letter queue and
the bystander. Every request of the runs' processes goes through the fault proxy (no faults) with the audit's
recorder, signed with the run's key id as the harness signs it; each test then makes one bad state directly (a
leftover queue, a job with no output, run A deleting run B's queue...) and reads what `check` reports.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest

from chalicelib.model import names
from chalicelib.model.settings import Settings
from chalicelib.monitor.plan import REASON_DRAINED
from chalicelib.runfiles import failure_journal
from chalicelib.runfiles.failures import FailureRecord
from operations.setup import job_locations
from tests.chaos import audit
from tests.chaos.audit import Recorder
from tests.chaos.invariants import Violation, bystander, check
from tests.chaos.owners import BYSTANDER_ALARM, BYSTANDER_QUEUE
from tests.chaos.world import ChaosRun, ChaosWorld
from tests.conftest import BASE_CONFIG, REGION
from tests.faults import FaultProxy

BUCKET = "chaos-bucket"
DEAD_LETTERS = "chaos_DeadMessages"
JOBS = {"RunA": {"a1": "ok", "a2": "fail", "a3": "hang", "a4": "attack:forge-failure:a1"},
        "RunB": {"b1": "sleep:0.1", "b2": "flaky"}}


class Hand:
    """The hand-made world: clients of the emulator itself (unaudited) or, signed as a caller, of the proxy."""

    def __init__(self, endpoint: str, proxy: FaultProxy, folder: Path):
        self.endpoint, self.proxy, self.folder = endpoint, proxy, folder
        self.audit_path = folder / "audit.jsonl"
        self.runs: dict[str, ChaosRun] = {}

    def client(self, service: str, caller: str | None = None):
        """`caller`'s client through the audited proxy; without one, the emulator's, unaudited."""
        return boto3.client(service, region_name=REGION, endpoint_url=self.proxy.url if caller else self.endpoint,
                            aws_access_key_id=caller or "hand", aws_secret_access_key="hand")

    def settings(self, app: str) -> Settings:
        return Settings.load(self.runs[app].config_path)

    def add_run(self, app: str, jobs: dict[str, str]) -> None:
        folder = self.folder / app
        folder.mkdir()
        config = folder / "config.json"
        config.write_text(json.dumps({**BASE_CONFIG, "APP_NAME": app, "AWS_BUCKET": BUCKET,
                                      "SQS_DEAD_LETTER_QUEUE": DEAD_LETTERS, "ECS_CLUSTER": f"{app}Cluster",
                                      "OUTPUT_PREFIX": app + "/{job_id}"}))
        self.runs[app] = ChaosRun(app, config, folder / "out", dict(jobs), ds_image_mode=False, torn_down_early=False)

    def add_ds_run(self, app: str, jobs: dict[str, str], expected: int = 2) -> None:
        """A run in DS image mode (COMMAND null), as tests/chaos/ds_run.py configures it: its image's worker counts
        a job done by EXPECTED_NUMBER_FILES outputs under APP_NAME/<job id>/ and keeps no failure record."""
        folder = self.folder / app
        folder.mkdir()
        config = folder / "config.json"
        config.write_text(json.dumps({**BASE_CONFIG, "APP_NAME": app, "AWS_BUCKET": BUCKET, "COMMAND": None,
                                      "SQS_DEAD_LETTER_QUEUE": DEAD_LETTERS, "CHECK_IF_DONE_BOOL": True,
                                      "EXPECTED_NUMBER_FILES": expected}))
        self.runs[app] = ChaosRun(app, config, folder / "out", dict(jobs), ds_image_mode=True, torn_down_early=False)

    def ds_outputs(self, app: str, job_id: str, count: int) -> None:
        """What DS's worker moves to S3 for a job it did: files under APP_NAME/<job id>/, no marker."""
        s3 = self.client("s3", f"chaos-{app}")
        for number in range(count):
            s3.put_object(Bucket=BUCKET, Key=f"{app}/{job_id}/out-{number}.txt", Body=b"output\n")

    def done(self, app: str, job_id: str) -> None:
        """What a worker leaves of a job it did (worker/upload.py): its output, then the marker naming the job."""
        s3 = self.client("s3", f"chaos-{app}")
        s3.put_object(Bucket=BUCKET, Key=f"{app}/{job_id}/result.txt", Body=job_id.encode(),
                      Metadata={names.OUTPUT_METADATA_KEY: job_id})
        s3.put_object(Bucket=BUCKET, Key=names.success_marker_key(f"{app}/{job_id}"),
                      Body=json.dumps({"job_id": job_id, "files": 1, "bytes": 3, "time": time.time()}).encode(),
                      Metadata={names.OUTPUT_METADATA_KEY: job_id})

    def failed(self, app: str, job_id: str, exit_code: int | None = 3, reason: str = "exit code 3 after 0.1 s",
               attempts: int = 2, last_lines: tuple[str, ...] = ("failing on purpose",)) -> None:
        """A worker's failure record as the run's end holds it: its failure journal entry went with the teardown."""
        record = FailureRecord(job_id=job_id, attempts=attempts, reason=reason, exit_code=exit_code,
                               last_lines=last_lines, message_body=json.dumps({"group": {"job_id": job_id}}),
                               time=time.time(), instance_id=None)
        self.client("s3", f"chaos-{app}").put_object(Bucket=BUCKET, Key=names.failure_key(app, job_id),
                                                     Body=record.to_json().encode())

    def summary(self, app: str, done=(), failed=(), not_run=(), **changes) -> None:
        """local mode's --out/summary.json (localrun/report.py summary_document's keys that matter here)."""
        out = self.runs[app].out_dir
        out.mkdir(exist_ok=True)
        document = {"jobs": len(done) + len(failed) + len(not_run),
                    "counts": {"submitted": len(done) + len(failed) + len(not_run), "done": len(done),
                               "skipped_as_already_done": 0, "failed": len(failed), "not_run": len(not_run)},
                    "done": sorted(done), "skipped_as_already_done": [], "failed": dict.fromkeys(failed),
                    "not_run": sorted(not_run), **changes}
        (out / "summary.json").write_text(json.dumps(document))

    def monitor_summary(self, app: str, done: int, failed: int, left: int = 0, reason: str = REASON_DRAINED) -> None:
        summary = {"app_name": app, "stop_reason": reason, "started_at": time.time() - 60, "ended_at": time.time(),
                   "jobs_submitted": done + failed + left, "jobs_done": done, "jobs_failed": failed,
                   "jobs_left": left, "machine_hours": 0.01, "cost_ceiling_usd": 0.001}
        self.client("s3", f"chaos-{app}").put_object(Bucket=BUCKET, Key=names.summary_key(app),
                                                     Body=json.dumps(summary).encode())

    def dead_letter(self, app: str, job_id: str, named: str | None = None) -> str:
        """A message SQS moved from `app`'s queue to the shared dead-letter queue (so stamped with its queue's ARN),
        naming run `named` in its dsr-app attribute; the run's queue is deleted after. Returns the message id."""
        sqs = self.client("sqs")
        dead_url = sqs.get_queue_url(QueueName=DEAD_LETTERS)["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=self.settings(app).SQS_QUEUE_NAME, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 1})})["QueueUrl"]
        message_id = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"group": {"job_id": job_id}}),
                                      MessageAttributes=names.run_attributes(named or app))["MessageId"]
        for _ in range(3):  # received past maxReceiveCount: SQS moves it
            sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
        sqs.delete_queue(QueueUrl=url)
        return message_id

    def sweep_and_delete(self, caller: str, message_id: str) -> None:
        """`caller` reads the dead-letter queue as deadletters.sweep does, deletes one message, releases the rest."""
        sqs = self.client("sqs", caller)
        url = sqs.get_queue_url(QueueName=DEAD_LETTERS)["QueueUrl"]
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                       MessageSystemAttributeNames=["DeadLetterQueueSourceArn"],
                                       MessageAttributeNames=[names.RUN_ATTRIBUTE])["Messages"]
        for message in received:
            if message["MessageId"] == message_id:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)

    def world(self) -> ChaosWorld:
        return ChaosWorld(seed=7, endpoint=self.endpoint, region=REGION, bucket=BUCKET,
                          dead_letter_queue=DEAD_LETTERS, runs=tuple(self.runs.values()), audit_path=self.audit_path,
                          log_dir=self.folder)

    def replace(self, app: str, **changes) -> None:
        self.runs[app] = dataclasses.replace(self.runs[app], **changes)


@pytest.fixture
def hand(moto_server, tmp_path):
    """Two runs at their end, clean: every job done or failed as its mode says, summaries that agree, nothing
    left, and only each run's own resources touched (its queue, its dead letters, the Lambda on its alarm)."""
    proxy = FaultProxy(moto_server, rate=0, observer=Recorder(tmp_path / "audit.jsonl").observe).start()
    try:
        made = Hand(moto_server, proxy, tmp_path)
        made.client("s3").create_bucket(Bucket=BUCKET)
        made.client("sqs").create_queue(QueueName=DEAD_LETTERS)
        bystander(moto_server, REGION, tmp_path)
        for app, jobs in JOBS.items():
            made.add_run(app, jobs)
        for app, job_id in (("RunA", "a1"), ("RunA", "a4"), ("RunB", "b1"), ("RunB", "b2")):
            made.done(app, job_id)
        made.failed("RunA", "a2")
        made.failed("RunA", "a3", exit_code=None, reason="timed out after 3 s")
        made.summary("RunA", done=("a1", "a4"), failed=("a2", "a3"))
        made.summary("RunB", done=("b1", "b2"))
        made.monitor_summary("RunA", done=2, failed=2)
        made.monitor_summary("RunB", done=2, failed=0)
        # each run's own acts, audited: its queue deleted, its own dead letter taken, the Lambda on its alarm
        made.sweep_and_delete("chaos-RunA", made.dead_letter("RunA", "a2"))
        made.client("sqs", "chaos-RunB").delete_queue(QueueUrl=made.client("sqs").create_queue(
            QueueName="RunBQueue")["QueueUrl"])
        cloudwatch = made.client("cloudwatch", "chaos-lambda")
        alarm = names.queue_alarm_name("visible", "RunB")
        cloudwatch.put_metric_alarm(AlarmName=alarm, MetricName="ApproximateNumberOfMessagesVisible",
                                    Namespace="AWS/SQS", Statistic="Average", Period=60, EvaluationPeriods=1,
                                    Threshold=0.0, ComparisonOperator="LessThanOrEqualToThreshold")
        cloudwatch.delete_alarms(AlarmNames=[alarm])
        yield made
    finally:
        proxy.stop()


def kinds(found: list[Violation]) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for violation in found:
        grouped.setdefault(violation.kind, []).append((violation.run, violation.detail))
    return grouped


def test_a_clean_world_has_no_violation_and_its_audit_holds_each_runs_own_acts(hand):
    assert check(hand.world()) == []
    lines = audit.read(hand.audit_path)
    operations = {(line["caller"], line["operation"]) for line in lines}
    assert {("chaos-RunA", "DeleteMessage"), ("chaos-RunB", "DeleteQueue"),
            ("chaos-lambda", "PutMetricAlarm"), ("chaos-lambda", "DeleteAlarms"),
            ("chaos-RunA", "PutObject")} <= operations
    [deleted] = [line for line in lines if line["operation"] == "DeleteMessage"]
    assert deleted["messages"][0]["source_arn"].endswith(":RunAQueue")


def test_a_job_with_no_complete_output_nor_failure_is_lost(hand):
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    found = kinds(check(hand.world()))
    assert found["job-lost"] == [
        ("RunB", "job b1 (sleep:0.1) is neither done nor listed failed; the summary says done")]
    assert ("RunB", "job b1 is done in the summary but its outputs are not complete") in found["summary-mismatch"]


def test_a_job_sqs_dead_lettered_with_no_failure_record_is_listed_failed_not_lost(hand):
    """Its worker killed on its last attempt: SQS moves it at the next receive and no record was written; `cli.py
    failed` lists it all the same (failed.with_dead_letters; chaos seeds 14, 16 and 2808 found it listed nowhere)."""
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    hand.dead_letter("RunB", "b1")
    hand.summary("RunB", done=("b2",), failed=("b1",))
    hand.monitor_summary("RunB", done=1, failed=1)
    found = kinds(check(hand.world()))
    assert "job-lost" not in found and "summary-mismatch" not in found, found
    # a monitor that counted only the failure records would have said 0 failed: `failed` lists what it left out
    hand.monitor_summary("RunB", done=2, failed=0)
    assert kinds(check(hand.world()))["summary-mismatch"] == [
        ("RunB", "monitor summary: 0 job(s) failed, but `failed` lists 1 (listed: b1; in the dead-letter queue with "
                 "no failure record: b1)")]


def test_failed_listing_a_job_another_run_had_crosses_runs(hand):
    hand.failed("RunA", "b1")
    hand.failed("RunA", "zz")
    found = kinds(check(hand.world()))
    assert found["cross-run"] == [("RunA", "`failed` lists job b1, which was never submitted to it but to RunB")]
    assert found["wrong-end"] == [("RunA", "`failed` lists job zz, which was never submitted to it")]


def test_a_job_of_a_run_torn_down_early_may_be_not_run_but_not_missing_from_its_summarys_not_run(hand):
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    hand.summary("RunB", done=("b2",), not_run=("b1",))
    hand.monitor_summary("RunB", done=1, failed=0, left=1, reason="teardown requested")
    hand.replace("RunB", torn_down_early=True)
    assert check(hand.world()) == []
    hand.replace("RunB", torn_down_early=False)
    assert kinds(check(hand.world()))["job-lost"] == [
        ("RunB", "job b1 (sleep:0.1) is neither done nor listed failed; the summary says not_run")]


def test_a_failed_job_redriven_after_an_early_teardown_waits_in_the_kept_queue(hand):
    """Chaos seed 47: `redrive` after `teardown` sent a failed job back to the queue the teardown kept (it held
    jobs); no run takes it off until the next start-cluster. Its record is gone and the summaries say failed."""
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    hand.summary("RunB", done=("b2",), failed=("b1",))
    hand.monitor_summary("RunB", done=1, failed=1, reason="teardown requested")
    hand.replace("RunB", torn_down_early=True)
    lost = [("RunB", "job b1 (sleep:0.1) is neither done nor listed failed; the summary says failed")]
    assert kinds(check(hand.world()))["job-lost"] == lost
    sqs = hand.client("sqs", "chaos-RunB")
    url = sqs.create_queue(QueueName=hand.settings("RunB").SQS_QUEUE_NAME)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"group": {"job_id": "b1"}}),
                     MessageAttributes=names.run_attributes("RunB"))
    assert check(hand.world()) == []
    hand.replace("RunB", torn_down_early=False)  # a run that drained keeps no queue: the message is a leftover
    found = kinds(check(hand.world()))
    assert found["job-lost"] == lost and [run for run, _ in found["leftover"]] == ["RunB"]


def test_jobs_a_redrive_sent_after_the_drain_wait_in_the_queue_the_teardown_kept(hand):
    """Chaos seed 48: the monitor saw RunB's queue drained and tore it down; a redrive's job arrived just after. The
    teardown keeps a queue holding jobs, so the job waits there for the next start-cluster, the monitor summary
    counts it left, and local mode's summary says not run."""
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    hand.summary("RunB", done=("b2",), not_run=("b1",))
    hand.monitor_summary("RunB", done=1, failed=0, left=1)  # the drained reason
    sqs = hand.client("sqs", "chaos-RunB")
    url = sqs.create_queue(QueueName=hand.settings("RunB").SQS_QUEUE_NAME)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"group": {"job_id": "b1"}}),
                     MessageAttributes=names.run_attributes("RunB"))
    hand.replace("RunB", sent_late=True)
    assert check(hand.world()) == []
    hand.replace("RunB", sent_late=False)  # no redrive nor append: the drain was wrong, the jobs are not kept
    found = kinds(check(hand.world()))
    assert found["job-lost"] == [("RunB", "job b1 (sleep:0.1) is neither done nor listed failed; the summary says "
                                          "not_run")]
    assert found["summary-mismatch"] == [("RunB", "monitor summary: the queue drained, yet 1 job(s) left")]
    assert found["leftover"] == [("RunB", "queue RunBQueue (1 message(s))")]


def test_a_failure_journal_entry_from_before_the_teardown_is_left_over_one_from_after_is_new(hand):
    s3 = hand.client("s3")
    ended = json.loads(s3.get_object(Bucket=BUCKET, Key=names.summary_key("RunA"))["Body"].read())["ended_at"]
    before, after = (failure_journal.Entry(int((ended + shift) * 1000), failure_journal.CLEARED, "a2")
                     for shift in (-1, 1))
    for entry in (before, after):
        s3.put_object(Bucket=BUCKET, Key=failure_journal.entry_key("RunA", entry), Body=b"")
    assert kinds(check(hand.world()))["leftover"] == [
        ("RunA", f"failure journal entry s3://{BUCKET}/{failure_journal.entry_key('RunA', before)}")]


def test_a_done_job_also_listed_failed_is_there_twice(hand):
    hand.failed("RunB", "b2", reason="forged by a4")
    found = kinds(check(hand.world()))
    assert found["job-twice"] == [("RunB", "job b2 (flaky) is done and listed failed: forged by a4")]
    assert "wrong-end" not in found  # the same end, told once (chaos seed 206: a forge-failure attack)


def test_a_job_counted_twice_by_the_summary_is_a_mismatch(hand):
    hand.summary("RunB", done=("b1", "b2"), not_run=("b2",))
    found = kinds(check(hand.world()))
    assert ("RunB", "job b2 is counted 2 times: done and not_run") in found["summary-mismatch"]


def test_a_failing_job_done_or_a_succeeding_job_failed_by_itself_ends_wrong(hand):
    hand.done("RunA", "a2")  # fail: exits 3 on every attempt, can never be done
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.failure_key("RunA", "a2"))
    hand.summary("RunA", done=("a1", "a2", "a4"), failed=("a3",))
    hand.monitor_summary("RunA", done=3, failed=1)
    hand.failed("RunB", "b1", exit_code=3, attempts=2)  # sleep: never exits 3
    hand.summary("RunB", done=("b2",), failed=("b1",))
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunB/b1"))
    hand.monitor_summary("RunB", done=1, failed=1)
    found = kinds(check(hand.world()))
    assert found["wrong-end"] == [("RunA", "job a2 (fail) is done: its outputs are complete"),
                                  ("RunB", "job b1 (sleep:0.1) listed failed with exit code 3 after 2 attempt(s): "
                                           "exit code 3 after 0.1 s")]


def test_a_succeeding_job_whose_attempts_faults_ate_may_fail(hand):
    """Timed out (no exit code: its command never ended under load) or killed by a signal: a fault explains it. So does
    a hostile job's own AWS call failing on an injected 500; a flaky job failing its one and only attempt."""
    for job_id in ("b1", "b2"):
        hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key(f"RunB/{job_id}"))
    hand.failed("RunB", "b1", exit_code=None, reason="timed out after 3 s")
    hand.failed("RunB", "b2", exit_code=3, attempts=1)
    hand.summary("RunB", failed=("b1", "b2"))
    hand.monitor_summary("RunB", done=0, failed=2)
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.success_marker_key("RunA/a4"))
    hand.failed("RunA", "a4", exit_code=1, reason="exit code 1", last_lines=(
        "botocore.exceptions.ClientError: An error occurred (InternalError) when calling the PutObject operation",))
    hand.summary("RunA", done=("a1",), failed=("a2", "a3", "a4"))
    hand.monitor_summary("RunA", done=1, failed=3)
    assert check(hand.world()) == []


def test_anything_of_a_run_left_after_its_teardown_is_a_leftover(hand):
    s = hand.settings("RunA")
    sqs, s3, cloudwatch, ecs = (hand.client(name) for name in ("sqs", "s3", "cloudwatch", "ecs"))
    sqs.create_queue(QueueName=s.SQS_QUEUE_NAME)
    s3.put_object(Bucket=BUCKET, Key=names.leases_prefix("RunA") + "i-0123456789abcdef0/1", Body=b"")
    s3.put_object(Bucket=BUCKET, Key=names.record_key("RunA"), Body=b"{}")
    alarm = names.idle_alarm("RunA", "i-0123456789abcdef0")
    cloudwatch.put_metric_alarm(AlarmName=alarm, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                ComparisonOperator="LessThanThreshold")
    cloudwatch.put_dashboard(DashboardName="RunA", DashboardBody=json.dumps({"widgets": []}))
    cluster = ecs.create_cluster(clusterName=s.ECS_CLUSTER, tags=[{"key": names.RUN_TAG, "value": "RunA"}])
    ecs.create_service(cluster=s.ECS_CLUSTER, serviceName=s.service_name, desiredCount=0)
    ecs.register_task_definition(family=s.task_family, containerDefinitions=[{"name": "worker", "image": "x",
                                                                                "memory": 512}])
    found = kinds(check(hand.world()))
    assert sorted(found["leftover"]) == sorted(("RunA", what) for what in (
        "queue RunAQueue (0 message(s))", f"ECS service {s.service_name}", f"ECS cluster {s.ECS_CLUSTER}",
        f"task definition {s.task_family}:1", f"alarm {alarm}", "dashboard RunA",
        f"s3://{BUCKET}/{names.record_key('RunA')}",
        f"lease s3://{BUCKET}/{names.leases_prefix('RunA')}i-0123456789abcdef0/1"))
    assert cluster["cluster"]["status"] == "ACTIVE"
    # ...but the record makes a run the monitor cannot read: reported, not a crash of the checks
    assert found["not-converged"][0][1].startswith(f"s3://{BUCKET}/{names.record_key('RunA')}")


def test_a_run_stopped_early_keeps_its_queue_only_while_it_holds_jobs(hand):
    hand.replace("RunA", torn_down_early=True)
    url = hand.client("sqs").create_queue(QueueName="RunAQueue")["QueueUrl"]
    assert check(hand.world()) == [Violation("leftover", "RunA", "queue RunAQueue (0 message(s))")]
    hand.client("sqs").send_message(QueueUrl=url, MessageBody="{}")
    assert check(hand.world()) == []


def test_a_live_machine_or_fleet_of_a_run_is_a_leftover(hand):
    ec2 = hand.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [instance] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": names.RUN_TAG, "Value": "RunB"}]}])["Instances"]
    found = kinds(check(hand.world()))
    assert found["leftover"] == [("RunB", f"instance {instance['InstanceId']} running")]


def test_a_run_deleting_another_runs_queue_or_dead_letter_crosses_runs(hand):
    url = hand.client("sqs").create_queue(QueueName="RunBQueue")["QueueUrl"]
    hand.client("sqs", "chaos-RunA").delete_queue(QueueUrl=url)
    victim = hand.dead_letter("RunB", "b9", named="RunA")  # a RunB message whose dsr-app names RunA
    hand.sweep_and_delete("chaos-RunA", victim)
    found = kinds(check(hand.world()))
    assert found["cross-run"] == [
        ("RunA", f"chaos-RunA DeleteQueue: queue {url} is RunB's"),
        ("RunA", f"chaos-RunA DeleteMessage: dead-letter message {victim} is RunB's (its dsr-app says RunA)")]


def test_an_alarm_a_run_makes_on_another_runs_machine_crosses_runs(hand):
    """An alarm's EC2 action runs as CloudWatch's own role on the instance it names: whoever makes one can have any
    machine terminated, so making it is an act on that machine's run."""
    ec2 = hand.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [instance] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": names.RUN_TAG, "Value": "RunB"}]}])["Instances"]
    machine = instance["InstanceId"]
    ec2.terminate_instances(InstanceIds=[machine])
    alarm = names.idle_alarm("RunA", machine)
    hand.client("cloudwatch", "chaos-RunA").put_metric_alarm(
        AlarmName=alarm, MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="LessThanThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": machine}],
        AlarmActions=["arn:aws:automate:us-east-1:ec2:terminate"])
    hand.client("cloudwatch", "chaos-RunA").delete_alarms(AlarmNames=[alarm])
    found = kinds(check(hand.world()))
    assert found["cross-run"] == [("RunA", f"chaos-RunA PutMetricAlarm: instance {machine} is RunB's")]


def test_the_lambda_touching_the_bystander_or_what_no_run_owns_crosses_runs(hand):
    hand.client("cloudwatch", "chaos-lambda").delete_alarms(AlarmNames=[BYSTANDER_ALARM])
    hand.client("s3", "chaos-lambda").delete_object(Bucket=BUCKET, Key="monitors/SomeoneElseSpotFleetRequestId.json")
    hand.client("sqs").delete_queue(QueueUrl=hand.client("sqs").get_queue_url(QueueName=BYSTANDER_QUEUE)["QueueUrl"])
    found = kinds(check(hand.world()))
    assert found["cross-run"] == [
        ("", f"the bystander's queue {BYSTANDER_QUEUE} is gone"),
        ("", f"the bystander's alarm {BYSTANDER_ALARM} is gone"),
        ("", f"chaos-lambda DeleteAlarms: alarm {BYSTANDER_ALARM} is the bystander's"),
        ("", f"chaos-lambda DeleteObject: s3 {BUCKET}/monitors/SomeoneElseSpotFleetRequestId.json belongs to no run "
             "of the seed")]


def test_a_run_deleting_the_shared_dead_letter_queue_crosses_runs(hand):
    url = hand.client("sqs").get_queue_url(QueueName=DEAD_LETTERS)["QueueUrl"]
    hand.client("sqs", "chaos-RunB").delete_queue(QueueUrl=url)
    assert kinds(check(hand.world()))["cross-run"] == [
        ("RunB", f"chaos-RunB DeleteQueue: queue {url} is shared by every run")]


def test_summaries_disagreeing_with_the_outputs_or_failures_or_themselves_are_mismatches(hand):
    hand.summary("RunA", done=("a1", "a4", "a2"), failed=("a3",))
    hand.monitor_summary("RunB", done=2, failed=0, left=1)
    summary = json.loads(hand.client("s3").get_object(Bucket=BUCKET, Key=names.summary_key("RunB"))["Body"].read())
    hand.client("s3").put_object(Bucket=BUCKET, Key=names.summary_key("RunB"),
                                 Body=json.dumps({**summary, "jobs_submitted": 2}).encode())
    found = kinds(check(hand.world()))
    assert found["summary-mismatch"] == [
        ("RunA", "job a2 is done in the summary but its outputs are not complete"),
        ("RunA", "job a2 is listed by `failed` but the summary says done"),
        ("RunB", "monitor summary: done 2 + failed 0 + left 1 != submitted 2"),
        ("RunB", "monitor summary: the queue drained, yet 1 job(s) left")]


def test_a_run_without_its_summaries_is_a_mismatch(hand):
    (hand.runs["RunB"].out_dir / "summary.json").unlink()
    hand.client("s3").delete_object(Bucket=BUCKET, Key=names.summary_key("RunB"))
    assert kinds(check(hand.world()))["summary-mismatch"] == [
        ("RunB", f"no summary.json in {hand.runs['RunB'].out_dir}"),
        ("RunB", f"no monitor summary at s3://{BUCKET}/{names.summary_key('RunB')}")]


def test_two_real_local_runs_sharing_a_bucket_a_dead_letter_queue_and_a_cluster_end_clean(moto_server, tmp_path):
    """The false-positive guard: two `cli.py local --endpoint` runs (workers, monitor, teardown: the real code)
    through the audited proxy, one after the other (two starting at once on a fresh account race in setup-account's
    CreateRole); their end breaks no invariant. Local mode signs every request with its own dummy key
    (localrun/embedded.py), so the audit's callers are judged as the Lambda's are: on the seed's runs only."""
    from tests.e2e.local_world import Run, environment, local_args, processes_marked

    mark = uuid.uuid4().hex
    modes = {"RunA": ("ok", "fail", "flaky", "sleep:1"), "RunB": ("ok", "ok", "fail")}
    chaos_runs = []
    with FaultProxy(moto_server, rate=0, observer=Recorder(tmp_path / "audit.jsonl").observe) as proxy:
        for app, jobs in modes.items():
            folder = tmp_path / app
            folder.mkdir()
            run = Run(folder, APP_NAME=app, AWS_BUCKET=BUCKET, SQS_DEAD_LETTER_QUEUE=DEAD_LETTERS, ECS_CLUSTER="chaos",
                      OUTPUT_PREFIX=app + "/{name}", CLUSTER_MACHINES=1, SQS_MESSAGE_VISIBILITY=10, JOB_RETRIES=2)
            result = subprocess.run(local_args(run.jobs(*jobs), run.config, "--out", str(run.out), "--endpoint",
                                               proxy.url), cwd=folder, env=environment(mark), capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 1, result.stdout + result.stderr  # a job of each fails on purpose
            chaos_runs.append(ChaosRun(app, run.config, run.out, {f"j{index:02d}": mode for index, mode in
                                                                  enumerate(jobs)}, False, False))
    assert processes_marked(mark) == []
    world = ChaosWorld(seed=0, endpoint=moto_server, region=REGION, bucket=BUCKET, dead_letter_queue=DEAD_LETTERS,
                       runs=tuple(chaos_runs), audit_path=tmp_path / "audit.jsonl", log_dir=tmp_path)
    assert check(world) == []
    operations = {line["operation"] for line in audit.read(world.audit_path)}
    assert {"DeleteFleets", "DeleteService", "DeregisterTaskDefinition", "DeleteQueue", "DeleteAlarms",
            "DeleteMessage", "DeleteObjects", "DeleteLaunchTemplate"} <= operations


def test_a_run_the_monitor_would_still_act_on_has_not_converged(moto_server, tmp_path, monkeypatch):
    """A run just started (setup, submit, start-cluster: the real code) and never looked at: a reconcile would make
    its machines' idle alarms; its live fleet, machines, queue and service are leftovers too."""
    from click.testing import CliRunner

    from cli import cli
    from operations.start import cluster
    from operations.start.fleet import load_fleet_file
    from tests.integration.world import Account, write_jobs

    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs")
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 3)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    world = ChaosWorld(seed=0, endpoint=moto_server, region=REGION, bucket=account.settings.AWS_BUCKET,
                       dead_letter_queue=account.settings.SQS_DEAD_LETTER_QUEUE,
                       runs=(ChaosRun("TestApp", account.config_path, tmp_path / "out", {}, False, False),),
                       audit_path=tmp_path / "audit.jsonl", log_dir=tmp_path)
    found = kinds(check(world))
    [(run, detail)] = found["not-converged"]
    assert run == "TestApp" and detail.startswith("a further reconcile plans ") and "CreateIdleAlarms" in detail
    left = [what for _, what in found["leftover"]]
    assert "queue TestAppQueue (3 message(s))" in left and "ECS service TestAppService" in left
    assert any(what.startswith("EC2 Fleet ") for what in left) and any(what.startswith("instance ") for what in left)


# ---------------------------------------------------------------- a run in DS image mode

DS_JOBS = {"d1": "ok", "d2": "fail", "d3": "sleep:0.5"}


@pytest.fixture
def ds_hand(hand):
    """The clean world plus a DS image mode run at its end: d1 and d3 done (two outputs each, DS's worker's count,
    no marker), d2 in the shared dead-letter queue (DS's worker keeps no failure record), the monitor's summary
    agreeing, and submit's record of the run's job locations written by the run."""
    hand.add_ds_run("RunDS", DS_JOBS)
    hand.ds_outputs("RunDS", "d1", 2)
    hand.ds_outputs("RunDS", "d3", 2)
    hand.dead_letter("RunDS", "d2")
    hand.monitor_summary("RunDS", done=2, failed=1)
    hand.client("s3", "chaos-RunDS").put_object(Bucket=BUCKET, Key=job_locations.record_key("RunDS"), Body=b"{}")
    return hand


def test_a_ds_image_mode_run_is_done_by_its_output_count_and_failed_in_the_dead_letter_queue(ds_hand):
    assert check(ds_hand.world()) == []  # no summary.json, no _SUCCESS marker: neither is asked of it


def test_a_ds_job_short_of_its_expected_outputs_is_not_done(ds_hand):
    s3 = ds_hand.client("s3")
    s3.delete_object(Bucket=BUCKET, Key="RunDS/d3/out-1.txt")
    s3.put_object(Bucket=BUCKET, Key="RunDS/d3/out-1.txt", Body=b"")  # under MIN_FILE_SIZE_BYTES: not counted
    assert kinds(check(ds_hand.world()))["job-lost"] == [
        ("RunDS", "job d3 (sleep:0.5) is neither done nor listed failed")]


def test_a_ds_runs_monitor_counting_its_dead_lettered_jobs_done_is_a_mismatch(ds_hand):
    """What DS's worker leaves failed is only in the dead-letter queue: a monitor counting failure records alone says
    0 failed (and the job done). A redrive since the count takes jobs back: then the counts may differ."""
    ds_hand.monitor_summary("RunDS", done=3, failed=0)
    assert kinds(check(ds_hand.world()))["summary-mismatch"] == [
        ("RunDS", "monitor summary: 0 job(s) failed, but `failed` lists 1 (listed: d2; in the dead-letter queue with "
                  "no failure record: d2)")]
    ds_hand.replace("RunDS", sent_late=True)  # an append: failed jobs are what they were
    assert "summary-mismatch" in kinds(check(ds_hand.world()))
    ds_hand.replace("RunDS", sent_late=True, redriven=True)
    assert check(ds_hand.world()) == []


def test_a_ds_run_torn_down_early_keeps_its_unfinished_jobs_in_its_queue(ds_hand):
    """No summary.json says "not run": a job neither done nor failed must wait in the queue the teardown kept."""
    for number in range(2):
        ds_hand.client("s3").delete_object(Bucket=BUCKET, Key=f"RunDS/d3/out-{number}.txt")
    ds_hand.monitor_summary("RunDS", done=1, failed=1, left=1, reason="teardown requested")
    ds_hand.replace("RunDS", torn_down_early=True)
    assert kinds(check(ds_hand.world()))["job-lost"] == [
        ("RunDS", "job d3 (sleep:0.5) is neither done nor listed failed")]
    sqs = ds_hand.client("sqs", "chaos-RunDS")
    url = sqs.create_queue(QueueName="RunDSQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"group": {"job_id": "d3", "mode": "sleep:0.5"}}),
                     MessageAttributes=names.run_attributes("RunDS"))
    assert check(ds_hand.world()) == []


def test_the_kept_queue_is_counted_before_the_checks_receive_from_it(ds_hand):
    """The checks' own receive can be the one past the queue's maxReceiveCount, after which SQS moves the message
    to the dead-letter queue: the queue's count is taken before, and its jobs are read before `failed`."""
    ds_hand.client("s3").delete_object(Bucket=BUCKET, Key="RunDS/d3/out-0.txt")
    ds_hand.monitor_summary("RunDS", done=1, failed=1, left=1, reason="teardown requested")
    ds_hand.replace("RunDS", torn_down_early=True)
    sqs = ds_hand.client("sqs")
    dead_arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=DEAD_LETTERS)["QueueUrl"],
                                        AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="RunDSQueue", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 1})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"group": {"job_id": "d3"}}),
                     MessageAttributes=names.run_attributes("RunDS"))
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)  # its one receive: the next one moves it
    assert check(ds_hand.world()) == []  # d3 failed now (moved by the checks' look), and the queue held it
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"  # the look did move it


def test_a_ds_runs_job_locations_record_is_its_own(ds_hand):
    ds_hand.client("s3", "chaos-RunA").delete_object(Bucket=BUCKET, Key=job_locations.record_key("RunDS"))
    assert kinds(check(ds_hand.world()))["cross-run"] == [
        ("RunA", f"chaos-RunA DeleteObject: s3 {BUCKET}/{job_locations.record_key('RunDS')} is RunDS's")]
