"""The monitor and the status API with exactly their policies, under the IAM engine (tests/iam_engine.py).

The monitor Lambda's and the status API's policies, as `cli.py monitor-config` writes them for the
test run's config (operations/deployed/monitor_policy.py), are each given to a
moto IAM user; our own code (chalicelib.monitor: the Lambda's `scan_buckets` +
`reconcile_runs` and the API's `all_statuses` / `find_status`) runs with those
credentials inside `iam_enforced()`, where the policies' conditions (resource tags
on every destructive call) are evaluated as AWS does, and any condition the engine
could not evaluate fails the test. Set-up and the final inspection use the tests'
admin keys.

- A real run is scaled down, drained and torn down to nothing left; the API
  reports it throughout and after; the engine denied nothing.
- A forged record naming another run's resources: the monitor's code refuses it
  and touches nothing, and its policy alone would refuse every destructive call
  on resources no run tagged (the code's check bypassed).
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.model.jobs import load_job_file
from chalicelib.monitor import actions as act
from chalicelib.monitor import deadletters, observe, service
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.budget import CONCURRENT_RUNS
from chalicelib.monitor.steady import LastLooks
from chalicelib.runfiles import leases
from cli import cli
from operations.deployed import monitor_policy
from tests.iam_engine import chalicelib_uses, iam_enforced, is_access_denied, policy_session
from tests.integration.conftest import start_ds_image_run
from tests.integration.world import (
    NOTHING_LEFT,
    amazon_image,
    drain,
    fail_every_job,
    forge,
    the_run,
    untagged_fleet,
    victim_world,
    what_is_left,
)
from tests.worker_world import queue_counts

BUCKET, REGION, ACCOUNT = "test-bucket", "us-east-1", "123456789012"
WATCHED = monitor_policy.Watched(buckets=(BUCKET,), dead_letter_queues=("user_DeadMessages",))  # the test run's
# What the monitor's policy lets it do only to resources carrying the run tag (dsr:app), and what the engine
# now checks against each resource's ARN and tags.
TAG_CONDITIONED = {"sqs:DeleteQueue", "ec2:ModifyFleet", "ec2:DeleteFleets", "ec2:ModifySpotFleetRequest",
                   "ec2:CancelSpotFleetRequests",
                   "ec2:TerminateInstances", "ecs:UpdateService", "ecs:DeleteService", "ecs:DeleteCluster",
                   "logs:CreateExportTask", "ec2:DeleteLaunchTemplate"}


def deployed_policy(name: str) -> str:
    """A policy file as `monitor-config` writes it for the test run and `chalice deploy` sends it."""
    return json.dumps({"policy-dev.json": monitor_policy.monitor_policy,
                       "policy-api-dev.json": monitor_policy.api_policy}[name](WATCHED))


@pytest.fixture
def monitor(started):
    return policy_session(deployed_policy("policy-dev.json"), REGION, name="ds-runner-monitor-dev")


@pytest.fixture
def api(started):
    return policy_session(deployed_policy("policy-api-dev.json"), REGION, name="ds-runner-api-dev")


def monitor_tick(monitor) -> list[str]:
    """One scheduled Lambda tick with the monitor's credentials, as app.py makes it (its threads, a listing of the
    region's fleets for the steady checks, the status index after the runs); the apps it found. Errors fail the
    test (reconcile_runs keeps them per run, as the Lambda logs them)."""
    with chalicelib_uses(monitor):
        runs, unreadable = service.scan_buckets([BUCKET])
        outcomes = service.reconcile_runs(runs, looks=LastLooks(), concurrency=CONCURRENT_RUNS)
        not_indexed = service.refresh_indexes([BUCKET])  # the status index GET /runs reads (status_index.py)
    assert unreadable == [] and not_indexed == []
    assert [(o.run.app_name, o.error) for o in outcomes if o.error] == []
    return [run.app_name for run in runs]


def tick_until_gone(monitor, app_name: str, ticks: int) -> None:
    """Monitor ticks until one no longer finds `app_name` (torn down), at most `ticks` of them."""
    for _ in range(ticks):
        if app_name not in monitor_tick(monitor):
            return
    raise AssertionError(f"{app_name} was not torn down in {ticks} ticks")


def api_says(api, app: str = "TestApp") -> tuple[str, list[str]]:
    """GET /runs/APP and GET /runs with the API's credentials: the run's state, and every listed run's state."""
    with chalicelib_uses(api):
        one = service.find_status(app, [BUCKET], live=False)  # as app.py asks: the last tick's status document
        listed = service.all_statuses([BUCKET])
    assert listed["unreadable"] == []
    states = [run["state"] for run in listed["runs"]]
    assert "unavailable" not in states, listed  # all_statuses turns an AWS error into "unavailable"
    return one["state"], states


def test_the_monitor_scales_and_tears_a_run_down_with_exactly_its_policy(started, monitor, api):
    fleet = the_run(started).record.MONITOR_FLEET_ID
    ec2, sqs = clients.client("ec2"), clients.client("sqs")
    [template] = [t["LaunchTemplateId"] for t in ec2.describe_launch_templates(
        LaunchTemplateNames=["TestAppLaunchTemplate"])["LaunchTemplates"]]
    machines = sorted(i["InstanceId"] for i in ec2.describe_fleet_instances(FleetId=fleet)["ActiveInstances"])
    assert len(machines) == 2
    # One job still running on the first machine (its worker holds a lease), the others done: a scale-down
    url = the_run(started).record.QUEUE_URL
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"][0]
    lease = leases.Lease(clients.client("s3"), BUCKET, "TestApp", machines[0], "worker-1")
    lease.hold("P00000")
    drain(started)
    api_states = []
    # an alarm of any name that the user tagged as the run's: teardown deletes it too (by its tag)
    clients.client("cloudwatch").put_metric_alarm(
        AlarmName="TestApp's own alarm", MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Maximum",
        Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="LessThanThreshold",
        Tags=[{"Key": "dsr:app", "Value": "TestApp"}])

    with iam_enforced() as engine:
        api_states.append(api_says(api))
        # SetFleetCapacity, SetServiceCount, TerminateInstances, CreateIdleAlarms (of the busy machine)
        assert monitor_tick(monitor) == ["TestApp"]
        api_states.append(api_says(api))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"])  # the job finishes
        lease.release()
        for _ in range(10):
            if not monitor_tick(monitor):
                break  # the run record is gone: torn down
            api_states.append(api_says(api))
        else:
            raise AssertionError("the run was not torn down in 10 ticks")
        api_states.append(api_says(api))

    assert engine.unevaluated == []
    # The log exports write to S3 as the monitor (AWS's CreateExportTask; tests/iam_engine.py `_export_writes`)
    writes = {d.resources: d.allowed for d in engine.checked("s3:PutObject") if "/exportedlogs/" in d.resources[0]}
    assert writes == {(f"arn:aws:s3:::{BUCKET}/exportedlogs/TestApp/{group}/aws-logs-write-test",): True
                      for group in ("TestApp", "TestApp_perInstance")}
    assert engine.denied() == []
    assert what_is_left(started) == NOTHING_LEFT
    # the busy machine's idle alarm, made with its tag (PutMetricAlarm with Tags is TagResource too); the alarms
    # deleted at teardown, the user's among them by its tag alone
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    assert [(d.action, d.resources, d.allowed) for d in engine.decisions
            if d.action in ("cloudwatch:PutMetricAlarm", "cloudwatch:TagResource")] == [
        (action, (alarm + f"TestApp_{machines[0]}",), True)
        for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:TagResource")]
    assert {resource for d in engine.checked("cloudwatch:DeleteAlarms") for resource in d.resources} >= {
        alarm + "TestApp's own alarm", alarm + f"TestApp_{machines[0]}"}
    summary = json.loads(clients.client("s3").get_object(Bucket=BUCKET, Key="monitors/finished/TestApp_summary.json")[
        "Body"].read())
    assert summary["log_exports"] == {"TestApp": "done", "TestApp_perInstance": "done"}
    # Every tag-conditioned call was made, against the resources AWS checks (and allowed: none is in denied())
    arn = {service_: f"arn:aws:{service_}:{REGION}:{ACCOUNT}:" for service_ in ("sqs", "ec2", "ecs", "logs")}
    scale_down = [("ec2:ModifyFleet", arn["ec2"] + f"fleet/{fleet}"),
                  ("ecs:UpdateService", arn["ecs"] + "service/runs/TestAppService")]
    assert [(d.action, *d.resources) for d in engine.decisions if d.action in TAG_CONDITIONED] == [
        *scale_down, ("ec2:TerminateInstances", arn["ec2"] + f"instance/{machines[1]}"),  # the idle machine
        *scale_down, ("ec2:TerminateInstances", arn["ec2"] + f"instance/{machines[0]}"),  # idle once its job ended
        ("ec2:DeleteFleets", arn["ec2"] + f"fleet/{fleet}"),
        ("ecs:DeleteService", arn["ecs"] + "service/runs/TestAppService"),
        ("ec2:DeleteLaunchTemplate", arn["ec2"] + f"launch-template/{template}"),
        ("sqs:DeleteQueue", arn["sqs"] + "TestAppQueue"),
        ("logs:CreateExportTask", arn["logs"] + "log-group:TestApp:log-stream:"),
        ("ecs:DeleteCluster", arn["ecs"] + "cluster/runs"),
        ("logs:CreateExportTask", arn["logs"] + "log-group:TestApp_perInstance:log-stream:")]
    # The API saw the run running (listed as starting until the monitor's first tick wrote its status document),
    # then tearing down, then finished, and never failed
    assert api_states[0] == ("running", ["starting"]) and api_states[1] == ("running", ["running"])
    assert ("tearing_down", ["tearing_down"]) in api_states
    assert api_states[-1] == ("finished", [])


def test_the_monitor_policy_lets_its_log_exports_write_where_they_go(aws):
    clients.client("s3").create_bucket(Bucket=BUCKET)
    clients.client("logs").create_log_group(logGroupName="App", tags={"dsr:app": "App"})
    logs = policy_session(deployed_policy("policy-dev.json"), REGION).client("logs")

    with iam_enforced() as engine:
        try:  # as chalicelib/monitor/apply.py `_export_logs` calls it
            logs.create_export_task(taskName="App-App", logGroupName="App", fromTime=0, to=int(time.time() * 1000),
                                    destination=BUCKET, destinationPrefix="exportedlogs/App/App")
        except ClientError as error:
            assert is_access_denied(error)

    # AWS's CreateExportTask writes with its caller's rights (first PREFIX/aws-logs-write-test): the policy
    # grants s3:PutObject on exportedlogs/* for that, or every export of the monitor would be refused
    assert engine.denied() == []


def test_the_api_lists_a_ds_image_runs_dead_letter_jobs_and_may_receive_from_no_other_queue(started, ds_image_run,
                                                                                           api):
    """GET /runs/DsImage/failed with the API's credentials: the run's dead-letter messages (those SQS moved from its
    queue, whose ARN is the dead-letter queue's with the queue's name) are received, listed and made visible again;
    with the same credentials a receive from a run's job queue is refused."""
    fail_every_job(ds_image_run)
    sqs = clients.client("sqs")
    dead_letter, job_queue = (sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in ("user_DeadMessages",
                                                                                          "TestAppQueue"))

    with iam_enforced() as engine:
        with chalicelib_uses(api):
            listed = service.find_failed("DsImage", [BUCKET])
        with pytest.raises(ClientError) as caught:
            api.client("sqs").receive_message(QueueUrl=job_queue, VisibilityTimeout=0)

    assert [job["job_id"] for job in listed["failed"]] == ["P00000", "P00001"]
    assert is_access_denied(caught.value)
    assert queue_counts(sqs, dead_letter) == (2, 0) and queue_counts(sqs, job_queue) == (12, 0)
    assert engine.unevaluated == []
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
    assert sorted({(d.action, *d.resources, d.allowed) for d in engine.decisions if d.action.startswith("sqs:")}) == [
        ("sqs:ChangeMessageVisibility", arn + "user_DeadMessages", True),
        ("sqs:GetQueueAttributes", arn + "user_DeadMessages", True),  # its ARN: the run's queue's, by name
        ("sqs:ReceiveMessage", arn + "TestAppQueue", False),
        ("sqs:ReceiveMessage", arn + "user_DeadMessages", True)]


def test_the_monitor_counts_a_ds_image_runs_dead_lettered_jobs_in_its_summary_with_exactly_its_policy(
        started, ds_image_run, monitor):
    """A DS image's worker writes no failure record: the monitor, with its own credentials, counts the jobs SQS moved
    from the run's queue to the shared dead-letter queue as failed in the summary, and leaves the messages there,
    visible, for `failed` and `redrive` (chaos seed 2: it counted them done)."""
    fail_every_job(ds_image_run)
    drain(started)  # the other run's jobs done: its own teardown goes on beside
    sqs = clients.client("sqs")
    dead_letter = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]

    with iam_enforced() as engine:
        tick_until_gone(monitor, "DsImage", ticks=15)

    assert engine.unevaluated == [] and engine.denied() == []
    summary = json.loads(clients.client("s3").get_object(Bucket=BUCKET, Key="monitors/finished/DsImage_summary.json")[
        "Body"].read())
    assert (summary["jobs_submitted"], summary["jobs_done"], summary["jobs_failed"], summary["jobs_left"]) == (
        2, 0, 2, 0)
    assert queue_counts(sqs, dead_letter) == (2, 0)
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:user_DeadMessages"
    assert {(d.action, d.allowed) for d in engine.decisions if d.resources == (arn,)} >= {
        ("sqs:ReceiveMessage", True), ("sqs:ChangeMessageVisibility", True)}


def test_chaos_seed_47_a_summary_waits_while_another_reader_holds_the_runs_dead_lettered_jobs(
        started, ds_image_run, monitor, monkeypatch):
    """Seed 47: five runs ended at once, each sweeping the shared dead-letter queue; the DS image run's sweep met the
    others' held messages until its time ran out, saw none of its own, and its summary said 0 failed of 5. While
    another reader holds them the run's resources still go, but its summary and record wait; once they are visible
    again the summary counts them, exactly."""
    monkeypatch.setattr(observe, "TEARDOWN_SWEEP_SECONDS", 2)  # the sweep's time, and its wait for other readers,
    monkeypatch.setattr(deadletters, "OTHERS_WAIT_SECONDS", 1)  # short: the reader below never lets go meanwhile
    fail_every_job(ds_image_run)
    drain(started)
    sqs, s3 = clients.client("sqs"), clients.client("s3")
    dead_letter = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    held = sqs.receive_message(QueueUrl=dead_letter, MaxNumberOfMessages=10, VisibilityTimeout=600)["Messages"]
    assert len(held) == 2  # another run's sweep, as a stopped tick leaves it (SWEEP_VISIBILITY_SECONDS)

    with iam_enforced() as engine:
        for _ in range(6):
            monitor_tick(monitor)
        left = what_is_left(ds_image_run)
        assert left["fleets"] == [] and "DsImageQueue" not in left["queues"]  # its resources went: that never waits
        assert the_run(ds_image_run) is not None
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="monitors/finished/DsImage")
        sqs.change_message_visibility_batch(QueueUrl=dead_letter, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for n, m in enumerate(held)])
        tick_until_gone(monitor, "DsImage", ticks=5)  # its messages visible again

    assert engine.unevaluated == [] and engine.denied() == []
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="monitors/finished/DsImage_summary.json")["Body"].read())
    assert (summary["jobs_failed"], summary["jobs_done"], summary["jobs_failed_exact"]) == (2, 0, True)


def test_a_forged_record_under_enforcement_touches_nothing_of_another_run(started, victim, monitor, api):
    """A record for run "Evil" naming the victim's fleet, queue, cluster and log groups, its state saying
    "tear it down now": the monitor, with its own credentials, refuses it and changes nothing of the victim."""
    before = victim_world(victim)
    victim_record = the_run(victim).record
    forge("Evil", victim_record)  # with the admin keys, as anyone able to write monitors/ could

    with iam_enforced() as engine:
        for _ in range(3):
            assert sorted(monitor_tick(monitor)) == ["Evil", "TestApp", "Victim"]
        with chalicelib_uses(api):
            evil = service.find_status("Evil", [BUCKET])
            listed = {run["app_name"]: run["state"] for run in service.all_statuses([BUCKET])["runs"]}

    assert engine.denied() == [] and engine.unevaluated == []  # refused by the code: nothing was even tried
    assert not [d for d in engine.decisions if d.action in TAG_CONDITIONED and "Victim" in " ".join(d.resources)]
    assert victim_world(victim) == before  # fleet, machines, queue, service, cluster, task definitions, alarms,
    assert before["exports"] == [] and before["exported"] == 0  # log groups untouched; nothing exported
    assert evil["state"] == "refused"
    assert f"fleet {victim_record.MONITOR_FLEET_ID} belongs to run 'Victim'" in evil["reason"]
    assert listed == {"Evil": "refused", "TestApp": "running", "Victim": "running"}


def untagged_world(started) -> dict:
    """Resources no run made (nothing tagged dsr:app), made with the admin keys."""
    ec2, sqs, ecs, logs = (clients.client(name) for name in ("ec2", "sqs", "ecs", "logs"))
    fleet = untagged_fleet(started.fleet_path)
    ami = amazon_image()
    [machine] = [i["InstanceId"] for i in ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"]]
    queue = sqs.create_queue(QueueName="SomeoneElsesQueue")["QueueUrl"]
    ecs.create_cluster(clusterName="someone-elses")
    ecs.register_task_definition(family="SomeoneElsesTask", containerDefinitions=[
        {"name": "worker", "image": "example/worker:1", "memory": 128}])
    ecs.create_service(cluster="someone-elses", serviceName="SomeoneElsesService", taskDefinition="SomeoneElsesTask",
                       desiredCount=1)
    logs.create_log_group(logGroupName="SomeoneElsesLogs")
    template = ec2.create_launch_template(LaunchTemplateName="SomeoneElsesLaunchTemplate",
                                          LaunchTemplateData={"ImageId": ami})["LaunchTemplate"]["LaunchTemplateId"]
    ec2_fleet = ec2.create_fleet(
        Type="maintain", TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "1"},
                                "Overrides": [{"InstanceType": "m5.large"}]}])["FleetId"]
    return {"fleet": fleet, "ec2_fleet": ec2_fleet, "machine": machine, "queue": queue, "cluster": "someone-elses",
            "service": "SomeoneElsesService", "log_group": "SomeoneElsesLogs", "launch_template": template}


def untagged_state(world: dict) -> dict:
    ec2, sqs, ecs, logs = (clients.client(name) for name in ("ec2", "sqs", "ecs", "logs"))
    [fleet] = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[world["fleet"]])["SpotFleetRequestConfigs"]
    [machine] = [i for r in ec2.describe_instances(InstanceIds=[world["machine"]])["Reservations"]
                 for i in r["Instances"]]
    [svc] = ecs.describe_services(cluster=world["cluster"], services=[world["service"]])["services"]
    [ec2_fleet] = ec2.describe_fleets(FleetIds=[world["ec2_fleet"]])["Fleets"]
    return {"fleet": (fleet["SpotFleetRequestState"], fleet["SpotFleetRequestConfig"]["TargetCapacity"]),
            "ec2_fleet": (ec2_fleet["FleetState"], ec2_fleet["TargetCapacitySpecification"]["TotalTargetCapacity"]),
            "machine": machine["State"]["Name"], "queue": sqs.get_queue_url(QueueName="SomeoneElsesQueue")["QueueUrl"],
            "service": (svc["status"], svc["desiredCount"]),
            "cluster": [c["status"] for c in ecs.describe_clusters(clusters=[world["cluster"]])["clusters"]],
            "log_groups": [g["logGroupName"] for g in logs.describe_log_groups(
                logGroupNamePrefix=world["log_group"])["logGroups"]],
            "exports": logs.describe_export_tasks()["exportTasks"],
            "launch_templates": [t["LaunchTemplateName"] for t in ec2.describe_launch_templates(
                LaunchTemplateIds=[world["launch_template"]])["LaunchTemplates"]]}


def test_with_the_code_check_bypassed_the_monitor_policy_refuses_to_touch_untagged_resources(started, monitor):
    """Defense in depth: the monitor's Applier (the only code that writes), handed actions aimed straight at
    resources no run tagged, as if the ownership check had a bug. The policy refuses each destructive call."""
    world = untagged_world(started)
    before = untagged_state(world)
    run = the_run(started)  # whose monitor state an export's outcome is written to
    why = {"reason": "bypassing the ownership check"}
    refused = [
        act.SetFleetCapacity(fleet_id=world["ec2_fleet"], target=0, **why),
        act.CancelFleet(fleet_id=world["ec2_fleet"], **why),
        act.SetFleetCapacity(fleet_id=world["fleet"], target=0, **why),
        act.CancelFleet(fleet_id=world["fleet"], **why),
        act.TerminateInstances(instance_ids=(world["machine"],), **why),
        act.SetServiceCount(cluster=world["cluster"], service=world["service"], count=0, **why),
        act.DeleteService(cluster=world["cluster"], service=world["service"], **why),
        act.DeleteCluster(cluster=world["cluster"], **why),
        act.DeleteQueue(queue_url=world["queue"], **why),
        act.DeleteLaunchTemplates(ids=(world["launch_template"],), **why),
    ]
    export = act.ExportLogs(log_group=world["log_group"], bucket=BUCKET, prefix="exportedlogs/SomeoneElsesLogs/",
                            start_ms=0, end_ms=int(time.time() * 1000), **why)
    codes = []

    with iam_enforced() as engine, chalicelib_uses(monitor):
        applier = Applier(run, Clients(region=REGION))
        for action in refused:
            with pytest.raises(ClientError) as caught:
                applier.apply([action])
            assert is_access_denied(caught.value), (action, caught.value)
            codes.append(caught.value.response["Error"]["Code"])
        applied = applier.apply([export])  # an export AWS refuses is recorded as failed, so the teardown can finish

    assert codes == ["UnauthorizedOperation"] * 5 + ["AccessDeniedException"] * 3 + ["AccessDenied"] + [
        "UnauthorizedOperation"]
    assert applied.state.export_tasks == {world["log_group"]: "failed:AccessDeniedException"}
    assert engine.unevaluated == []
    assert [(d.action, d.allowed) for d in engine.decisions if d.action in TAG_CONDITIONED] == [
        ("ec2:ModifyFleet", False), ("ec2:DeleteFleets", False),
        ("ec2:ModifySpotFleetRequest", False), ("ec2:CancelSpotFleetRequests", False),
        ("ec2:TerminateInstances", False), ("ecs:UpdateService", False), ("ecs:DeleteService", False),
        ("ecs:DeleteCluster", False), ("sqs:DeleteQueue", False), ("ec2:DeleteLaunchTemplate", False),
        ("logs:CreateExportTask", False)]
    assert untagged_state(world) == before
    assert clients.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="exportedlogs/")["KeyCount"] == 0


def test_the_policy_alone_does_not_tell_runs_apart(started, monitor):
    """The limit of the policy, pinned: its conditions ask only that the run tag be present (any run's value),
    so a resource of another run is refused by the monitor's code (ownership.py), not by IAM."""
    queue = clients.client("sqs").create_queue(QueueName="OtherRunsQueue", tags={"dsr:app": "OtherRun"})["QueueUrl"]
    run = the_run(started)

    with iam_enforced() as engine, chalicelib_uses(monitor):
        Applier(run, Clients(region=REGION)).apply([act.DeleteQueue(queue_url=queue, reason="bypassing the check")])

    assert [(d.action, d.allowed) for d in engine.checked("sqs:DeleteQueue")] == [("sqs:DeleteQueue", True)]
    assert "OtherRunsQueue" not in " ".join(clients.client("sqs").list_queues().get("QueueUrls", []))


def test_chaos_seed_61_a_ds_image_runs_dead_lettered_job_with_its_outputs_complete_is_done_for_the_monitor_and_api(
        started, tmp_path):
    """Seed 61: a DS image's worker uploaded a job's outputs and was killed before its delete, on the job's last
    receive; SQS dead-lettered it, and the job is done. The monitor's summary, the status API and `failed` count it
    done by DS's rule (its outputs counted; a DS image writes no marker), with the policies `monitor-config` writes
    for a DESTINATION_BUCKET that is no watched bucket: a listing of the output root there, and nothing else of it."""
    clients.client("s3").create_bucket(Bucket="lab-outputs")
    run = start_ds_image_run(tmp_path / "dsimage", DESTINATION_BUCKET="lab-outputs", EXPECTED_NUMBER_FILES=2)
    watched = monitor_policy.Watched.of([started.settings, run.settings])
    assert watched.outputs == (("lab-outputs", ("DsImage/",)),)
    monitor = policy_session(monitor_policy.monitor_policy(watched), REGION, name="ds-runner-monitor-dev")
    api = policy_session(monitor_policy.api_policy(watched), REGION, name="ds-runner-api-dev")
    jobs = {job.job_id: job for job in load_job_file(run.folder / "jobs.json", run.settings)}
    s3 = clients.client("s3")
    for job_id, count in (("P00000", 2), ("P00001", 1)):  # P00001's worker was killed half-way through its upload
        for number in range(count):
            s3.put_object(Bucket="lab-outputs", Key=f"{jobs[job_id].output_prefix}/{number}.csv", Body=b"measured")
    fail_every_job(run)
    drain(started)

    with iam_enforced() as engine:
        with chalicelib_uses(api):
            listed = service.find_failed("DsImage", [BUCKET])
        tick_until_gone(monitor, "DsImage", ticks=15)
        with pytest.raises(ClientError) as reading:  # the outputs themselves are out of the monitor's reach
            monitor.client("s3").get_object(Bucket="lab-outputs", Key=f"{jobs['P00000'].output_prefix}/0.csv")
        with pytest.raises(ClientError) as listing:  # and so is the rest of the bucket
            monitor.client("s3").list_objects_v2(Bucket="lab-outputs", Prefix="raw/")

    assert is_access_denied(reading.value) and is_access_denied(listing.value)
    assert engine.unevaluated == []
    assert [(d.action, d.resources) for d in engine.denied()] == [
        ("s3:GetObject", (f"arn:aws:s3:::lab-outputs/{jobs['P00000'].output_prefix}/0.csv",)),
        ("s3:ListBucket", ("arn:aws:s3:::lab-outputs",))]
    assert [job["job_id"] for job in listed["failed"]] == ["P00001"] and listed["complete"] is True
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="monitors/finished/DsImage_summary.json")["Body"].read())
    assert (summary["jobs_submitted"], summary["jobs_done"], summary["jobs_failed"], summary["jobs_left"],
            summary["jobs_failed_exact"]) == (2, 1, 1, 0, True)
    assert [job["job_id"] for job in json.loads(CliRunner().invoke(cli, [
        "failed", "--json", "--config", str(run.config_path)]).output)] == ["P00001"]


def test_a_status_api_whose_policy_predates_the_output_listing_lists_such_a_job_failed_as_before(started, tmp_path):
    """A monitor deployed before `monitor-config` granted the output listing, reading a record that carries the
    rule: the listing is refused, and the job is listed failed, as before the rule, rather than the call failing."""
    clients.client("s3").create_bucket(Bucket="lab-outputs")
    run = start_ds_image_run(tmp_path / "dsimage", DESTINATION_BUCKET="lab-outputs")
    older = monitor_policy.Watched(buckets=(BUCKET,), dead_letter_queues=("user_DeadMessages",))
    api = policy_session(monitor_policy.api_policy(older), REGION, name="ds-runner-api-dev")
    [job] = [job for job in load_job_file(run.folder / "jobs.json", run.settings) if job.job_id == "P00000"]
    clients.client("s3").put_object(Bucket="lab-outputs", Key=f"{job.output_prefix}/0.csv", Body=b"measured")
    fail_every_job(run)

    with iam_enforced() as engine, chalicelib_uses(api):
        listed = service.find_failed("DsImage", [BUCKET])

    assert [job["job_id"] for job in listed["failed"]] == ["P00000", "P00001"]
    # one refused listing a job
    assert [(d.action, d.resources) for d in engine.denied()] == [("s3:ListBucket", ("arn:aws:s3:::lab-outputs",))] * 2
