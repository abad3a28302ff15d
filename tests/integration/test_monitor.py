"""The monitor on moto: a started run is scaled down and reconciled to nothing left.

A run is started the way a user starts it (setup-account, setup, submit,
start-cluster), then drained by deleting its messages as workers would, and
reconciled until its record is gone. The end state is read back from moto.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

import cli as cli_module
from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.monitor import actions as act
from chalicelib.monitor import observe as observe_module
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.observe import observe
from chalicelib.monitor.plan import plan
from chalicelib.monitor.reconcile import reconcile
from chalicelib.runfiles import leases
from cli import cli
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.faults import FaultProxy, fail_first
from tests.integration.world import (
    AFTER_TEARDOWN,
    JOBS,
    NOTHING_LEFT,
    Account,
    drain,
    reconcile_until_gone,
    the_run,
    what_is_left,
)


def test_a_started_run_with_jobs_waiting_converges_and_then_plans_nothing(started):
    first = reconcile(the_run(started)).actions
    assert [type(a) for a in first] == [act.SaveState, act.CreateIdleAlarms] and "known_instances" in first[0].as_dict()
    assert reconcile(the_run(started)).actions == []


def test_the_monitor_makes_each_machines_idle_alarm_tagged_as_the_runs(started):
    run = the_run(started)
    machines = observe(run, Clients(region="us-east-1")).active_instance_ids
    assert len(machines) == 2
    reconcile(run)
    cloudwatch = clients.client("cloudwatch")
    alarms = {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms(AlarmNamePrefix="TestApp_i-")[
        "MetricAlarms"]}
    assert sorted(alarms) == sorted(f"TestApp_{machine}" for machine in machines)
    for machine in machines:
        alarm = alarms[f"TestApp_{machine}"]
        assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": machine}]
        assert alarm["AlarmActions"] == ["arn:aws:automate:us-east-1:ec2:terminate"]
        assert (alarm["MetricName"], alarm["ComparisonOperator"], alarm["Threshold"],
                alarm["Period"] * alarm["EvaluationPeriods"]) == ("CPUUtilization", "LessThanThreshold", 1.0, 900)
        assert cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"] == [
            {"Key": "dsr:app", "Value": "TestApp"}]
    # a machine that appears later (as a spot replacement would) gets its own on the next check
    clients.client("ec2").modify_fleet(FleetId=run.record.MONITOR_FLEET_ID,
                                       TargetCapacitySpecification={"TotalTargetCapacity": 3})
    now = observe(the_run(started), Clients(region="us-east-1")).active_instance_ids
    [later] = set(now) - set(machines)
    actions = reconcile(the_run(started)).actions
    assert [a.instance_ids for a in actions if isinstance(a, act.CreateIdleAlarms)] == [(later,)]
    assert sorted(a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix="TestApp_i-")[
        "MetricAlarms"]) == sorted(f"TestApp_{machine}" for machine in now)
    assert reconcile(the_run(started)).actions == []


def test_a_drained_run_is_reconciled_to_nothing_left(started):
    assert drain(started) == JOBS
    ticks = reconcile_until_gone(started)
    kinds = [[type(action).__name__ for action in tick.actions] for tick in ticks]
    # first empty look only counts; the second starts teardown, cancelling the fleet first
    assert kinds[0][0] == "SaveState" and "CancelFleet" not in kinds[0]
    assert kinds[1][:2] == ["SaveState", "CancelFleet"]
    assert kinds[-1][-1] == "RemoveRunRecord"
    assert what_is_left(started) == NOTHING_LEFT
    summary = json.loads(clients.client("s3").get_object(Bucket=started.settings.AWS_BUCKET,
                                                          Key="monitors/finished/TestApp_summary.json")["Body"].read())
    assert summary["jobs_done"] == JOBS and summary["jobs_failed"] == 0
    assert summary["stop_reason"] == "queue empty and no job in flight on two consecutive checks"


def test_jobs_sent_between_the_teardowns_look_and_its_queue_delete_keep_the_queue(started):
    """Chaos seed 59: the Lambda's tick saw the queue drained and planned the teardown; its first actions took
    seconds, and meanwhile a `submit --append` sent jobs. The queue is read again just before its delete: kept."""
    drain(started)
    reconcile(the_run(started))  # the first empty look
    run, aws_now = the_run(started), Clients(region="us-east-1")
    actions = plan(observe(run, aws_now), run.policy())
    assert act.DeleteQueue in [type(action) for action in actions]
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="TestAppQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"plate": "late"}))  # an append, after the look

    applied = Applier(run, aws_now).apply(actions)
    assert [(type(action), why) for action, why in applied.skipped] == [
        (act.DeleteQueue, "the queue holds 1 message(s) sent since the plan: kept")]
    reconcile_until_gone(started)
    assert what_is_left(started)["queues"] == ["TestAppQueue", "user_DeadMessages"]
    [waiting] = sqs.receive_message(QueueUrl=url)["Messages"]  # the job waits there for the next start-cluster
    assert json.loads(waiting["Body"]) == {"plate": "late"}


def test_teardown_deletes_every_alarm_carrying_the_runs_tag_whatever_its_name_and_no_other(started):
    cloudwatch = clients.client("cloudwatch")
    # run TestApp_i-x (an APP_NAME configured before such names were refused): its alarm starts like TestApp's
    for name, app in (("TestApp's own alarm", "TestApp"), ("TestApp_i-0abc_extra", "TestApp"),
                      ("TestApp_i-0abc", "Other"), ("Other_i-0abc", "Other"), ("TestApp_i-x_i-0abc", "TestApp_i-x")):
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                    Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                    ComparisonOperator="LessThanThreshold", Tags=[{"Key": "dsr:app", "Value": app}])
    drain(started)
    reconcile_until_gone(started)
    # run Other's alarm stays; TestApp_i-0abc is TestApp's by its exact name (no other APP_NAME can make it, and
    # machine alarms made before tagging are found that way), whatever tag a user put on it
    assert what_is_left(started) == {**NOTHING_LEFT, "alarms": ["Other_i-0abc", "TestApp_i-x_i-0abc"]}


def test_teardown_deletes_the_runs_launch_template_and_no_other(started):
    ec2 = clients.client("ec2")
    [own] = ec2.describe_launch_templates(LaunchTemplateNames=["TestAppLaunchTemplate"])["LaunchTemplates"]
    assert {"Key": "dsr:app", "Value": "TestApp"} in own["Tags"]  # what start-cluster made for this run
    data = {"ImageId": started_image(ec2, own["LaunchTemplateId"])}
    # another run's template, and one named like this run's that no run made (no tag)
    ec2.create_launch_template(LaunchTemplateName="OtherLaunchTemplate", LaunchTemplateData=data,
                               TagSpecifications=[{"ResourceType": "launch-template",
                                                   "Tags": [{"Key": "dsr:app", "Value": "Other"}]}])
    ec2.create_launch_template(LaunchTemplateName="TestAppLaunchTemplateOld", LaunchTemplateData=data)
    drain(started)
    reconcile_until_gone(started)
    assert what_is_left(started) == NOTHING_LEFT
    assert sorted(template["LaunchTemplateName"] for template in ec2.describe_launch_templates()[
        "LaunchTemplates"]) == ["OtherLaunchTemplate", "TestAppLaunchTemplateOld"]


def test_deleting_a_launch_template_already_gone_is_not_an_error_and_the_others_still_go(started):
    ec2 = clients.client("ec2")
    [own] = ec2.describe_launch_templates(LaunchTemplateNames=["TestAppLaunchTemplate"])["LaunchTemplates"]
    # a plan made before another reconcile deleted the first (the ids sort; the gone one comes first)
    applied = Applier(the_run(started), Clients(region="us-east-1")).apply([act.DeleteLaunchTemplates(
        ids=("lt-00000000000000000", own["LaunchTemplateId"]), reason="a stale plan")])
    assert applied.skipped == ()
    assert what_is_left(started)["launch_templates"] == []


def started_image(ec2, template_id: str) -> str:
    return ec2.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"][0][
        "LaunchTemplateData"]["ImageId"]


def test_scale_down_releases_idle_machines_and_keeps_busy_ones(started):
    run = the_run(started)
    machines = observe(run, Clients(region="us-east-1")).active_instance_ids
    assert len(machines) == 2
    # one job still running on the first machine (its worker holds a lease); the rest are done
    sqs = clients.client("sqs")
    url = run.record.QUEUE_URL
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"][0]
    leases.Lease(clients.client("s3"), run.bucket, run.app_name, machines[0], "worker-1").hold("P00000")
    drain(started)
    actions = reconcile(run).actions
    assert [type(a) for a in actions] == [act.SaveState, act.SetFleetCapacity, act.SetServiceCount,
                                          act.TerminateInstances, act.CreateIdleAlarms]
    assert actions[1].target == 1 and actions[3].instance_ids == (machines[1],)
    assert actions[4].instance_ids == (machines[0],)  # the released machine gets none
    ec2 = clients.client("ec2")
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=list(machines))
              ["Reservations"] for i in r["Instances"]}
    assert states == {machines[0]: "running", machines[1]: "terminated"}
    [fleet] = ec2.describe_fleets(FleetIds=[run.record.MONITOR_FLEET_ID])["Fleets"]
    assert fleet["TargetCapacitySpecification"]["TotalTargetCapacity"] == 1
    # the next look: the gone machine's idle alarm (if any) is deleted and nothing else happens
    again = reconcile(the_run(started)).actions
    assert all(type(a) in (act.SaveState, act.DeleteAlarms) for a in again)
    assert sqs.delete_message(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"])


TEARDOWN_STEPS = ["CancelFleet", "DeleteService", "DeregisterTaskDefinitions", "DeleteLaunchTemplates",
                  "DeleteQueue", "DeleteAlarms", "DeleteDashboard", "ExportLogs", "WriteSummary"]


@pytest.mark.parametrize("crash_after", TEARDOWN_STEPS)
def test_a_crash_after_any_teardown_step_is_finished_by_the_next_reconcile(started, crash_after):
    drain(started)
    reconcile(the_run(started))  # first empty look

    class Crashing(Applier):
        def apply(self, actions):
            names = [type(action).__name__ for action in actions]
            cut = names.index(crash_after) + 1 if crash_after in names else len(actions)
            super().apply(actions[:cut])
            raise RuntimeError(f"monitor died after {crash_after}")

    with pytest.raises(RuntimeError, match="monitor died"):
        reconcile(the_run(started), applier=Crashing)
    reconcile_until_gone(started)
    assert what_is_left(started) == NOTHING_LEFT


def test_two_reconciles_at_once_end_in_the_same_state(started):
    drain(started)
    reconcile(the_run(started))
    first, second = the_run(started), the_run(started)  # both read the world before either writes
    reconcile(first)
    reconcile(second)
    reconcile_until_gone(started)
    assert what_is_left(started) == NOTHING_LEFT


def test_plan_for_a_drained_run_is_printed_and_changes_nothing(started):
    drain(started)
    run = the_run(started)
    before = observe(run, Clients(region="us-east-1"), now=time.time())
    result = CliRunner().invoke(cli, ["plan", "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    assert "update the monitor's bookkeeping (queue empty on 1 consecutive check(s)" in result.output
    assert "SaveState" not in result.output
    after = the_run(started)
    assert after.state == run.state
    # the same world seen at the same moment (the series' new point carries its time) plans the same
    seen_again = observe(after, Clients(region="us-east-1"), now=before.now)
    assert plan(seen_again, after.policy()) == plan(before, run.policy())


def test_status_shows_the_run_as_a_table(started):
    drain(started, count=5)
    result = CliRunner().invoke(cli, ["status", "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    assert "jobs          12 submitted, 7 waiting, 0 running, 5 done, 0 failed" in result.output
    assert "fleet         target 2, fulfilled 2, 2 machine(s)" in result.output


def test_teardown_now_keeps_the_jobs_left_in_their_queue(started):
    result = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    left = what_is_left(started)
    assert left["queues"] == ["TestAppQueue", "user_DeadMessages"]
    assert left["fleets"] == [] and left["running_instances"] == [] and left["alarms"] == []
    assert left["monitor_objects"] == AFTER_TEARDOWN
    summary = json.loads(clients.client("s3").get_object(Bucket="test-bucket",
                                                         Key="monitors/finished/TestApp_summary.json")["Body"].read())
    assert summary["stop_reason"] == "teardown requested from the command line" and summary["jobs_left"] == JOBS
    status = CliRunner().invoke(cli, ["status", "--config", str(started.config_path)])
    assert "state" in status.output and "finished" in status.output
    assert "{" not in status.output and "TestApp: done, TestApp_perInstance: done" in status.output
    again = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(started.config_path)])
    assert again.exit_code == 0, again.output
    assert again.output == ("run TestApp is already torn down; summary at "
                            "s3://test-bucket/monitors/finished/TestApp_summary.json\n")


def test_monitor_from_the_monitor_file_watches_until_torn_down(started, tmp_path):
    drain(started)
    record = tmp_path / "files" / "TestAppSpotFleetRequestId.json"
    result = CliRunner().invoke(cli, ["monitor", str(record), "--period", "1"])
    assert result.exit_code == 0, result.output
    assert "delete fleet fleet-" in result.output and "run torn down" in result.output
    assert what_is_left(started) == NOTHING_LEFT


def test_dss_spelling_monitor_file_true_is_cheapest_mode(started, tmp_path):
    drain(started)
    record = tmp_path / "files" / "TestAppSpotFleetRequestId.json"
    wrong = CliRunner().invoke(cli, ["monitor", str(record), "maybe"])
    result = CliRunner().invoke(cli, ["monitor", str(record), "True", "--period", "1"])

    assert wrong.exit_code == 2 and "'maybe' is not one of 'True', 'False'" in wrong.output
    assert result.exit_code == 0, result.output
    assert "run torn down" in result.output and what_is_left(started) == NOTHING_LEFT


def test_chaos_seed_246_a_queue_deleted_by_anothers_teardown_mid_check_reads_as_gone_not_as_untagged(
        started, monkeypatch):
    """The check read the queue's depth, another's teardown deleted the queue, then the check read its tags: an
    untagged queue, so the run was refused and `cli.py monitor` ended with exit 1. A queue gone is gone."""
    sqs = clients.client("sqs")
    url = the_run(started).record.QUEUE_URL
    real_tags = observe_module.queue_tags

    def deleted_between_the_reads(client, queue_url):
        sqs.delete_queue(QueueUrl=url)
        return real_tags(client, queue_url)
    monkeypatch.setattr(observe_module, "queue_tags", deleted_between_the_reads)

    observation = observe(the_run(started), Clients(region="us-east-1"))

    assert observation.refused is None and not observation.queue_exists


def _untag_the_queue_for(started, monkeypatch, checks: int) -> None:
    """The run's queue reads as untagged on the next `checks` checks (as one deleted between two reads read before),
    then as tagged again."""
    sqs = clients.client("sqs")
    real_tags = observe_module.queue_tags
    left = [checks]

    def untagged_for_a_while(client, queue_url):
        if left[0] > 0:
            left[0] -= 1
            return {}
        return real_tags(client, queue_url)
    monkeypatch.setattr(observe_module, "queue_tags", untagged_for_a_while)
    assert real_tags(sqs, the_run(started).record.QUEUE_URL)  # tagged, in moto, throughout


def test_monitor_checks_a_refused_run_again_and_goes_on_when_the_refusal_passes(started, tmp_path, monkeypatch):
    drain(started)
    _untag_the_queue_for(started, monkeypatch, checks=1)
    record = tmp_path / "files" / "TestAppSpotFleetRequestId.json"

    result = CliRunner().invoke(cli, ["monitor", str(record), "--period", "1"])

    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: the monitor refused this check, checking again: queue TestAppQueue does "
                               "not carry the tag dsr:app=TestApp") == 1, result.stderr
    assert "run torn down" in result.stdout and what_is_left(started) == NOTHING_LEFT


def test_monitor_and_teardown_end_on_a_refusal_that_lasts_with_one_line_and_exit_1(started, tmp_path, monkeypatch):
    _untag_the_queue_for(started, monkeypatch, checks=1000)
    record = tmp_path / "files" / "TestAppSpotFleetRequestId.json"

    watched = CliRunner().invoke(cli, ["monitor", str(record), "--period", "1"])
    torn = CliRunner().invoke(cli, ["teardown", "--period", "1", "--config", str(started.config_path)])

    for result in (watched, torn):
        assert result.exit_code == 1, result.output
        assert result.stderr.count("warning: the monitor refused this check") == cli_module.REFUSED_CHECKS_TO_END - 1
        assert result.stderr.strip().splitlines()[-1] == (
            "error: the monitor refuses run 'TestApp', nothing was touched: queue TestAppQueue does not carry the tag "
            "dsr:app=TestApp (a run started before tagging: run 'python cli.py setup' for it again to tag it)")
    left = what_is_left(started)
    assert left["fleets"] and "TestAppQueue" in left["queues"]  # nothing of the run was touched


def test_commands_on_a_run_that_does_not_exist_say_so(aws, tmp_path):
    account = Account(tmp_path)
    for command in ("plan", "status", "teardown"):
        result = CliRunner().invoke(cli, [command, "--config", str(account.config_path)])
        assert result.exit_code == 2, (command, result.output)
    assert "error: no run record at s3://test-bucket/monitors/TestAppSpotFleetRequestId.json" in CliRunner().invoke(
        cli, ["plan", "--config", str(account.config_path)]).output


def test_a_log_export_aws_refuses_is_reported_and_the_teardown_still_finishes(started):
    # a log group deleted by hand: CreateExportTask fails with ResourceNotFoundException
    clients.client("logs").delete_log_group(logGroupName="TestApp_perInstance")
    drain(started)
    reconcile_until_gone(started)
    summary = json.loads(clients.client("s3").get_object(Bucket="test-bucket",
                                                         Key="monitors/finished/TestApp_summary.json")["Body"].read())
    assert summary["log_exports"] == {"TestApp": "done", "TestApp_perInstance": "failed"}
    assert what_is_left(started)["monitor_objects"] == AFTER_TEARDOWN
    assert what_is_left(started)["fleets"] == [] and what_is_left(started)["queues"] == ["user_DeadMessages"]


def test_an_aws_refusal_during_teardown_is_one_line_and_exit_1(moto_server, tmp_path, monkeypatch):
    account = Account(tmp_path)
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    refused = fail_first(100, lambda request: request.target.endswith(".DescribeServices"),
                         "ecs:InvalidParameterException")
    with FaultProxy(moto_server, rate=0, rule=refused) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients.forget_sessions()
        result = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(account.config_path)])

    assert result.exit_code == 1, result.output
    assert result.stderr == "error: AWS refused DescribeServices: InvalidParameterException: injected by the test\n"
    assert "Traceback" not in result.output


def test_monitor_rides_out_a_run_record_read_that_aws_keeps_failing(moto_server, tmp_path, monkeypatch):
    """Seeds 28 and 30: the record's GetObject failed with a 500 past botocore's attempts during an S3 fault window,
    and `cli.py monitor` (local mode's loop too) ended there, the run half torn down. The read is retried next
    period, as a failed check is."""
    account = Account(tmp_path)
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    drain(account)
    monkeypatch.setattr(clients, "RETRY_ATTEMPTS", 1)  # botocore's backoff would take ~30 s per failed read
    record_reads = [0]

    def second_and_third_loads_fail(request) -> bool:  # the first is the command's own check that the run exists
        if request.method != "GET" or not request.path.split("?")[0].endswith("/TestAppSpotFleetRequestId.json"):
            return False
        record_reads[0] += 1
        return 1 < record_reads[0] <= 5  # two loads of two attempts each ("reached max retries: 1")
    with FaultProxy(moto_server, rate=0, rule=fail_first(4, second_and_third_loads_fail)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients.forget_sessions()
        result = CliRunner().invoke(cli, ["monitor", "--period", "1", "--config", str(account.config_path)])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    clients.forget_sessions()

    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: check failed, retrying:") == 2, result.stderr
    assert "GetObject operation (reached max retries: 1)" in result.stderr and "run torn down" in result.stdout
    left = what_is_left(account)
    # the log exports' objects are not compared: they do not appear when the exports go through the fault proxy
    # (not what this test is about)
    assert {key: value for key, value in left.items() if key != "exported"} == {
        key: value for key, value in NOTHING_LEFT.items() if key != "exported"}


def test_a_ds_image_runs_machines_are_never_stopped_by_the_monitor_its_worker_holds_no_lease(ds_image_run):
    """DS's worker writes no lease, so every machine of a DS image run looked idle and the monitor stopped machines
    whose worker was mid-job (the chaos campaign's DS run). Its business is unknown: the fleet shrinks (without
    terminating) and the machines' idle alarms release them, as in DS."""
    sqs = clients.client("sqs")
    url = the_run(ds_image_run).record.QUEUE_URL
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)  # one job running somewhere
    drain(ds_image_run)

    result = reconcile(the_run(ds_image_run))

    machines = result.observation.instances
    assert len(machines) == 2 and {machine.busy_jobs for machine in machines} == {None}
    scaled = [action for action in result.actions if not isinstance(action, act.SaveState)]
    assert [type(action) for action in scaled] == [act.SetFleetCapacity, act.SetServiceCount]  # no TerminateInstances
    assert scaled[0].target == 1
