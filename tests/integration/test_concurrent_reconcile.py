"""Two reconciles of one run at the same moment (an SNS alarm delivered twice during a scheduled tick).

Both must see the same world: each thread observes and plans, then waits at a
barrier placed at the start of apply, so neither writes before both have
planned from the same observation (the worst case for a duplicate). Nothing may
escape either thread, and the end state must be what one reconcile leaves. The
monitor state is written only over the one read (state_store.py), so one of the
two writes it first and the other reads again and plans again.
"""

from __future__ import annotations

import json

from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.monitor.observe import observe
from chalicelib.monitor.reconcile import reconcile
from chalicelib.runfiles import leases
from tests.integration.world import JOBS, NOTHING_LEFT, ConcurrentReconciles, drain, the_run, what_is_left


def reconcile_twice_at_once(account) -> list:
    """Two threads reconcile the run; both plans are made before either applies. Returns both results."""
    return ConcurrentReconciles(lambda: the_run(account)).results()


def machine_states(machines) -> dict:
    ec2 = clients.client("ec2")
    return {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=list(machines))
            ["Reservations"] for i in r["Instances"]}


def test_two_reconciles_at_once_during_scale_down_end_as_one_would(started):
    run = the_run(started)
    machines = observe(run, Clients(region="us-east-1")).active_instance_ids
    sqs = clients.client("sqs")
    held = sqs.receive_message(QueueUrl=run.record.QUEUE_URL, MaxNumberOfMessages=1, VisibilityTimeout=600)
    leases.Lease(clients.client("s3"), run.bucket, run.app_name, machines[0], "worker-1").hold("P00000")
    drain(started)

    results = reconcile_twice_at_once(started)

    # the first to write its bookkeeping carried out the scale-down planned from the shared look; the other looked
    # again (and, had it looked before the machine stopped, stopped it too: harmless). Either may be listed first
    # (a fresh-clone CI run picked the other's plan, SaveState-less, by taking the first with a TerminateInstances)
    scaled = next(result for result in results
                  if {"SaveState", "TerminateInstances"} <= {type(action).__name__ for action in result.actions})
    # the busy machine, the one kept, gets its idle alarm from the monitor in the same plan
    assert [type(a).__name__ for a in scaled.actions] == ["SaveState", "SetFleetCapacity", "SetServiceCount",
                                                          "TerminateInstances", "CreateIdleAlarms"]
    assert scaled.actions[-1].instance_ids == (machines[0],)
    assert machine_states(machines) == {machines[0]: "running", machines[1]: "terminated"}
    [fleet] = clients.client("ec2").describe_fleets(FleetIds=[run.record.MONITOR_FLEET_ID])["Fleets"]
    assert fleet["TargetCapacitySpecification"]["TotalTargetCapacity"] == 1
    service = clients.client("ecs").describe_services(cluster="runs", services=[started.settings.service_name])
    assert service["services"][0]["desiredCount"] == scaled.actions[2].count
    # converged: the next single look changes nothing but bookkeeping of the gone machine
    assert {type(a).__name__ for a in reconcile(the_run(started)).actions} <= {"SaveState", "DeleteAlarms"}
    sqs.delete_message(QueueUrl=run.record.QUEUE_URL, ReceiptHandle=held["Messages"][0]["ReceiptHandle"])


def test_two_reconciles_at_once_through_a_whole_teardown_leave_nothing(started):
    drain(started)
    rounds = 0
    while the_run(started) is not None:
        rounds += 1
        assert rounds <= 12, "not torn down after 12 rounds of two concurrent reconciles"
        reconcile_twice_at_once(started)
    assert what_is_left(started) == NOTHING_LEFT
    summary = clients.client("s3").get_object(Bucket=started.settings.AWS_BUCKET,
                                              Key="monitors/finished/TestApp_summary.json")
    assert json.loads(summary["Body"].read())["jobs_done"] == JOBS
