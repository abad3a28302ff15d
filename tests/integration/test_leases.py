"""The busy lease: a worker holds one per busy period, fresh while it runs jobs, gone on its first empty poll,
and the monitor never releases a machine whose worker runs a job."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from chalicelib import aws
from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.monitor import actions as act
from chalicelib.monitor.observe import observe
from chalicelib.monitor.reconcile import reconcile
from chalicelib.runfiles import leases
from tests.conftest import make_settings
from tests.integration.world import drain, the_run
from tests.waiting import wait_for
from tests.worker_world import aws_clients, make_world, python, s3_keys, send_jobs
from worker.options import WorkerOptions
from worker.worker import Outcome, Worker

REPO = str(Path(__file__).resolve().parents[2])
OPTIONS = WorkerOptions(wait_seconds=0, instance_id="i-0abc")

# The command asks the (shared) moto server what the monitor would see while the job runs. With argv[4] > 1 it
# first waits (30 s at most) until the lease has been put that many times (the bucket keeps versions).
SEE_LEASES = """
import json, sys, time, boto3
from datetime import datetime, timezone
sys.path.insert(0, sys.argv[3])
from chalicelib.runfiles import leases
bucket, out, puts_wanted = sys.argv[1], sys.argv[2], int(sys.argv[4])
s3 = boto3.client("s3", region_name="us-east-1")
def puts():
    return len(s3.list_object_versions(Bucket=bucket, Prefix=leases.prefix("TestApp")).get("Versions", []))
deadline = time.monotonic() + 30
while puts() < puts_wanted and time.monotonic() < deadline:
    time.sleep(0.05)
busy = leases.busy_jobs_by_instance(s3, bucket, "TestApp", datetime.now(timezone.utc))
keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=leases.prefix("TestApp")).get("Contents", [])]
open(out + "/seen.json", "w").write(json.dumps({"busy": busy, "keys": keys, "puts": puts()}))
"""


def seeing_worker(tmp_path, puts_wanted: int = 1, options: WorkerOptions = OPTIONS):
    """A worker in this process whose jobs report what the monitor sees; the run's bucket keeps every version of
    an object, so a test can count the lease's puts."""
    script = tmp_path / "see_leases.py"
    script.write_text(SEE_LEASES)
    settings = make_settings(COMMAND=[sys.executable, str(script), "{AWS_BUCKET}", "{output_dir}", REPO,
                                      str(puts_wanted), "{plate}"])
    sqs, s3, logs = aws.client("sqs"), aws.client("s3"), aws.client("logs")
    queue_url, _ = make_world(sqs, s3, settings)
    s3.put_bucket_versioning(Bucket=settings.AWS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return settings, Worker(settings, sqs=sqs, s3=s3, logs=logs, options=options), queue_url


def seen(s3, settings, job) -> dict:
    return json.loads(s3.get_object(Bucket=settings.AWS_BUCKET, Key=f"{job.output_prefix}/seen.json")["Body"].read())


def busy_now(s3, settings) -> dict:
    return leases.busy_jobs_by_instance(s3, settings.AWS_BUCKET, settings.APP_NAME, datetime.now(UTC))


def lease_puts(s3, settings) -> int:
    return len(s3.list_object_versions(Bucket=settings.AWS_BUCKET, Prefix=leases.prefix("TestApp")).get("Versions", []))


def test_a_worker_busy_across_several_jobs_holds_one_fresh_lease_until_its_first_empty_poll(moto_server, tmp_path):
    settings, worker, queue_url = seeing_worker(tmp_path)
    s3 = aws.client("s3")
    jobs = send_jobs(aws.client("sqs"), queue_url, settings, [{"plate": f"P{n}"} for n in range(3)])

    for _ in jobs:
        assert worker.run_once() is Outcome.SUCCEEDED
        assert busy_now(s3, settings) == {"i-0abc": 1}  # between two jobs too: the busy period goes on

    views = [seen(s3, settings, job) for job in jobs]
    assert [view["busy"] for view in views] == [{"i-0abc": 1}] * 3  # while each job ran
    [key] = {tuple(view["keys"]) for view in views}  # the same single lease all along
    assert len(key) == 1 and key[0].startswith("runs/TestApp/leases/i-0abc/")
    assert lease_puts(s3, settings) == 1  # put once for the busy period, not once per job

    assert worker.run_once() is Outcome.EMPTY
    assert s3_keys(s3, settings.AWS_BUCKET, leases.prefix("TestApp")) == [] and busy_now(s3, settings) == {}
    worker.close()


def test_within_a_busy_period_a_receive_waits_a_second_so_the_lease_goes_soon_after_the_last_job(moto_server,
                                                                                                 tmp_path):
    settings, worker, queue_url = seeing_worker(tmp_path, options=dataclasses.replace(OPTIONS, wait_seconds=20))
    waits = []
    worker.sqs.meta.events.register("provide-client-params.sqs.ReceiveMessage",
                                    lambda params, **_: waits.append(params["WaitTimeSeconds"]))
    send_jobs(worker.sqs, queue_url, settings, [{"plate": f"P{n}"} for n in range(2)])

    outcomes = [worker.run_once() for _ in range(3)]

    assert outcomes == [Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.EMPTY]
    # idle: a whole long poll; then within the busy period a second at most, and the empty answer ended it
    assert waits == [20, 1, 1]
    assert busy_now(worker.s3, settings) == {}
    worker.close()


def test_a_long_job_keeps_its_lease_fresh_through_the_heartbeat(moto_server, tmp_path, monkeypatch):
    # Every heartbeat refreshes the lease here (due at once); in production it is due every REFRESH_SECONDS,
    # well within STALE_AFTER_SECONDS, so the monitor never reads a running job's lease as stale.
    monkeypatch.setattr(leases, "REFRESH_SECONDS", 0)
    options = dataclasses.replace(OPTIONS, heartbeat_seconds=0.1)
    settings, worker, queue_url = seeing_worker(tmp_path, puts_wanted=3, options=options)
    s3 = aws.client("s3")
    [job] = send_jobs(aws.client("sqs"), queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    worker.close()

    view = seen(s3, settings, job)
    assert view["puts"] >= 3, "the command ran with a lease the heartbeat never put again"
    assert view["busy"] == {"i-0abc": 1}
    assert s3_keys(s3, settings.AWS_BUCKET, leases.prefix("TestApp")) == []


def test_a_lease_is_put_once_per_busy_period_and_again_only_when_due(aws):
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="lease-bucket")
    calls = []
    s3.meta.events.register("provide-client-params.s3",  # the call's own parameters, the lease's body among them
                            lambda model, params, **_: calls.append((model.name, params.get("Body"))))
    now = [1000.0]
    lease = leases.Lease(s3, "lease-bucket", "App", "i-1", "w1", clock=lambda: now[0])

    lease.hold("job-1")
    now[0] += leases.REFRESH_SECONDS - 1
    lease.hold("job-2")  # the next job of the busy period: the lease is fresh enough
    lease.refresh()
    assert calls == [("PutObject", b"job-1")]
    now[0] += 1
    lease.hold("job-3")  # due: put again, naming the job running now
    lease.release()
    lease.release()  # released already: nothing to delete
    lease.refresh()  # not held: a late heartbeat puts nothing back
    assert calls == [("PutObject", b"job-1"), ("PutObject", b"job-3"), ("DeleteObject", None)]
    lease.hold("job-4")  # a new busy period
    assert calls[-1] == ("PutObject", b"job-4") and lease.held


def test_stale_leases_stop_counting(aws):
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="lease-bucket")
    lease = leases.Lease(s3, "lease-bucket", "App", "i-1", "w1")
    lease.hold("job-1")
    now = datetime.now(UTC)
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", now) == {"i-1": 1}
    later = datetime.fromtimestamp(now.timestamp() + leases.STALE_AFTER_SECONDS + 60, UTC)
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", later) == {}
    lease.release()
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", now) == {}


# Runs until the test creates the file argv[2]; says it started by creating argv[1].
BLOCK = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).touch()\nwhile not os.path.exists(sys.argv[2]): " \
        "time.sleep(0.02)"


def test_the_monitor_never_releases_a_machine_whose_worker_runs_a_job(started, tmp_path):
    run = the_run(started)
    machines = observe(run, Clients(region="us-east-1")).active_instance_ids
    assert len(machines) == 2
    settings = dataclasses.replace(started.settings, COMMAND=tuple(python(BLOCK, str(tmp_path / "started"),
                                                                          str(tmp_path / "go"), "{plate}")))
    worker = Worker(settings, options=dataclasses.replace(OPTIONS, instance_id=machines[0]), **aws_clients())
    outcome = []
    job = threading.Thread(target=lambda: outcome.append(worker.run_once()))
    job.start()
    try:
        wait_for((tmp_path / "started").exists, "the job to start")
        drain(started)  # every other job done elsewhere: nothing waits, one job runs on machines[0]

        mid_job = reconcile(the_run(started))
        [release] = [action for action in mid_job.actions if isinstance(action, act.TerminateInstances)]
        assert release.instance_ids == (machines[1],)  # the idle machine goes, the busy one stays
        ec2 = clients.client("ec2")
        states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=list(machines))
                  ["Reservations"] for i in r["Instances"]}
        assert states == {machines[0]: "running", machines[1]: "terminated"}
    finally:
        (tmp_path / "go").touch()
        job.join()
    assert outcome == [Outcome.SUCCEEDED]

    # Between its job and its next poll the worker is still in its busy period: kept.
    between = reconcile(the_run(started), dry_run=True)
    assert {i.instance_id: i.busy_jobs for i in between.observation.instances} == {machines[0]: 1}
    assert not [action for action in between.actions if isinstance(action, act.TerminateInstances)]

    # Its poll comes back empty: the lease is gone, and the machine is idle for the monitor's next look.
    assert worker.run_once() is Outcome.EMPTY
    idle = reconcile(the_run(started), dry_run=True)
    assert {i.instance_id: i.busy_jobs for i in idle.observation.instances} == {machines[0]: 0}
    worker.close()
