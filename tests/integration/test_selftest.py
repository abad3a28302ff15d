"""`cli.py selftest` (issue 31) on the emulator: a throwaway run of one Spot machine in the user's account, each
step one line, and nothing carrying its tag left after a pass, after each kind of failure and after Ctrl-C.

The emulator's machines join ECS only as AWS's do (localrun/ecs_agent.py: an ECS-optimized AMI, an instance
profile allowed to register, the cluster the user data names). Each test's account is the one `setup-account`
and `setup` leave for the user's own run (TestApp), which must come out of the self-test untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner

from chalicelib import aws
from chalicelib.aws import client as aws_client
from chalicelib.model import names
from chalicelib.model.names import RUN_TAG
from chalicelib.monitor.spot_quota import SPOT_QUOTAS
from cli import cli
from localrun.ecs_agent import agent_joins
from localrun.moto_patches import set_service_quota
from operations.selftest import run as selftest_run
from operations.selftest.throwaway import SUFFIX, smallest_type, throwaway
from operations.start.fleet import load_fleet_file
from tests.hooked import hooked_sessions
from tests.integration.world import REGION, Account

QUICK = selftest_run.Waits(machine=5, agent=2, monitor=5, poll=0.05)


@pytest.fixture
def account(aws, tmp_path):
    with agent_joins():
        made = Account(tmp_path, ECS_CLUSTER="runs")
        made.fleet_path = fleet_booting(made, tmp_path / "latest", None)  # the latest ECS-optimized AMI
        yield made


def fleet_booting(account, folder, image_id: str | None):
    """The account's fleet file with its launch specification's ImageId set (None: left out, as README says)."""
    document = json.loads(account.fleet_path.read_text())
    for spec in document["LaunchSpecifications"]:
        spec.pop("ImageId", None)
        if image_id:
            spec["ImageId"] = image_id
    folder.mkdir()
    (folder / "fleet.json").write_text(json.dumps(document))
    return folder / "fleet.json"


def plain_amazon_linux() -> str:
    """An Amazon Linux AMI that is not ECS-optimized: it boots no ECS agent."""
    return next(image["ImageId"] for image in aws.client("ec2").describe_images(Owners=["amazon"])["Images"]
            if "-ecs-" not in (image.get("Name") or "") and image.get("Architecture") == "x86_64")


def run_selftest(account, fleet_path=None, **options) -> selftest_run.Report:
    return selftest_run.selftest(account.settings, load_fleet_file(fleet_path or account.fleet_path),
                                 say=lambda line: None, waits=options.pop("waits", QUICK),
                                 sleep=options.pop("sleep", lambda seconds: None), **options)


def outcomes(report: selftest_run.Report) -> list[tuple[str, str]]:
    return [(line.outcome, line.step) for line in report.lines]


def tagged_anywhere(app_name: str) -> dict[str, list[str]]:
    """What AWS (moto) holds of the throwaway run, each service asked by its own listing and the Tagging API."""
    ec2, ecs, sqs = aws.client("ec2"), aws.client("ecs"), aws.client("sqs")
    logs, cloudwatch, s3, iam = aws.client("logs"), aws.client("cloudwatch"), aws.client("s3"), aws.client("iam")
    tagging = aws.client("resourcegroupstaggingapi")
    running = [item["InstanceId"] for reservation in ec2.describe_instances(Filters=[
        {"Name": f"tag:{RUN_TAG}", "Values": [app_name]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for item in reservation["Instances"]]
    return {
        "tagged": [mapping["ResourceARN"] for mapping in tagging.get_resources(
            TagFilters=[{"Key": RUN_TAG, "Values": [app_name]}])["ResourceTagMappingList"]
            # terminated machines keep their tags, and deleted ECS clusters and services (INACTIVE) theirs
            if ":instance/" not in mapping["ResourceARN"] and not inactive_ecs(mapping["ResourceARN"])],
        "machines": running,
        "fleets": [fleet["FleetId"] for fleet in ec2.describe_fleets()["Fleets"]
                   if fleet["FleetState"] in ("submitted", "active", "modifying")
                   and {t["Key"]: t["Value"] for t in fleet.get("Tags", [])}.get(RUN_TAG) == app_name],
        "queues": [url for url in sqs.list_queues().get("QueueUrls", []) if app_name in url],
        "clusters": [cluster["clusterName"] for cluster in ecs.describe_clusters(clusters=[app_name])["clusters"]
                     if cluster["status"] == "ACTIVE"],
        "task_definitions": ecs.list_task_definitions(familyPrefix=app_name)["taskDefinitionArns"],
        "log_groups": [group["logGroupName"] for group in logs.describe_log_groups(
            logGroupNamePrefix=app_name)["logGroups"]],
        "alarms": [alarm["AlarmName"] for alarm in cloudwatch.describe_alarms()["MetricAlarms"]
                   if app_name in alarm["AlarmName"]],
        "objects": [item["Key"] for item in s3.list_objects_v2(Bucket="test-bucket").get("Contents", [])
                    if app_name in item["Key"]],
        "roles": [role["RoleName"] for role in iam.list_roles()["Roles"] if role["RoleName"].startswith(app_name)],
    }


def inactive_ecs(arn: str) -> bool:
    ecs = aws.client("ecs")
    if ":ecs:" not in arn:
        return False
    if ":cluster/" in arn:
        return all(item["status"] == "INACTIVE" for item in ecs.describe_clusters(clusters=[arn])["clusters"])
    if ":service/" in arn:
        cluster = arn.split("/")[1]
        return all(item["status"] == "INACTIVE"
                   for item in ecs.describe_services(cluster=cluster, services=[arn])["services"])
    return False


NOTHING = {"tagged": [], "machines": [], "fleets": [], "queues": [], "clusters": [], "task_definitions": [],
           "log_groups": [], "alarms": [], "objects": [], "roles": []}


def users_own_run(account) -> dict[str, object]:
    """The user's run's resources that setup made: the self-test must leave them as they were."""
    settings = account.settings
    return {"queues": sorted(aws.client("sqs").list_queues().get("QueueUrls", [])),
            "cluster": aws.client("ecs").describe_clusters(clusters=[settings.ECS_CLUSTER])["clusters"][0]["status"],
            "roles": sorted(role["RoleName"] for role in aws.client("iam").list_roles()["Roles"]),
            "log_groups": sorted(group["logGroupName"] for group in aws.client("logs").describe_log_groups()[
                "logGroups"])}


def test_the_self_test_passes_step_by_step_and_leaves_nothing(account):
    before = users_own_run(account)

    report = run_selftest(account, token="a1b2c3")

    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("ok", "capacity"), ("ok", "agent"),
                                ("ok", "alarms"), ("skip", "monitor"), ("ok", "teardown"), ("ok", "leftovers")]
    assert report.passed and report.app_name == f"TestApp{SUFFIX}a1b2c3"
    assert "no monitor deployed" in report.lines[5].said
    assert "dead-letter queue" not in report.lines[-1].said and "queue" in report.lines[-1].said  # kept, removed
    assert tagged_anywhere(report.app_name) == NOTHING
    assert users_own_run(account) == before


def test_the_cli_prints_one_line_a_step_and_exits_0(account, monkeypatch):
    monkeypatch.setattr(selftest_run, "POLL_SECONDS", 0.01)
    result = CliRunner().invoke(cli, ["selftest", str(account.fleet_path), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    assert printed[0].startswith("self-test in us-east-1, at most $0.")
    assert [line.split()[:2] for line in printed[1:-1]] == [
        ["ok", "roles:"], ["ok", "setup:"], ["ok", "capacity:"], ["ok", "agent:"], ["ok", "alarms:"],
        ["skip", "monitor:"], ["ok", "teardown:"], ["ok", "leftovers:"]]
    assert printed[-1] == "self-test passed: this account can run TestApp"


def test_dry_run_says_what_it_would_make_and_its_cost_and_makes_nothing(account):
    before = users_own_run(account)
    result = CliRunner().invoke(cli, ["selftest", str(account.fleet_path), "--config", str(account.config_path),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would create a throwaway run TestApp-selftest-<6 hex digits>" in result.output
    # MACHINE_PRICE 0.10 an hour (tests/conftest.py BASE_CONFIG) for the 20 minutes' limit
    assert "most it can cost: $0.0333 (1 machine at MACHINE_PRICE $0.1 an hour" in result.output
    assert "ok    roles:" in result.output
    assert users_own_run(account) == before
    assert not [url for url in aws.client("sqs").list_queues().get("QueueUrls", []) if SUFFIX in url]


def test_a_role_that_trusts_the_wrong_service_fails_first_with_its_fix_and_nothing_is_made(account):
    aws.client("iam").update_assume_role_policy(RoleName=names.FLEET_ROLE, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))

    report = run_selftest(account, token="bad001")

    assert outcomes(report) == [("FAIL", "roles"), ("skip", "the rest"), ("ok", "leftovers")]
    roles = report.lines[0]
    assert roles.said == (f"role {names.FLEET_ROLE} trusts ec2.amazonaws.com, not spotfleet.amazonaws.com, which "
                          "must assume it")
    assert roles.fix.startswith("python cli.py setup-account --config ")
    assert tagged_anywhere(report.app_name) == NOTHING


def test_an_instance_profile_that_does_not_exist_fails_first(account, tmp_path):
    document = json.loads(account.fleet_path.read_text())
    document["LaunchSpecifications"][0]["IamInstanceProfile"] = {
        "Arn": "arn:aws:iam::123456789012:instance-profile/ecsInstanceRole"}  # DS's example's, never made here
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "fleet.json").write_text(json.dumps(document))

    report = run_selftest(account, fleet_path=tmp_path / "ds" / "fleet.json", token="bad005")

    assert outcomes(report) == [("FAIL", "roles"), ("skip", "the rest"), ("ok", "leftovers")]
    assert report.lines[0].said.endswith("names instance profile ecsInstanceRole, which does not exist")
    assert tagged_anywhere(report.app_name) == NOTHING


def test_a_refused_capacity_request_fails_with_the_quota_and_leaves_nothing(account):
    for quota in SPOT_QUOTAS:
        set_service_quota(quota.code, 0, region=REGION)  # every Spot vCPU quota of the account at 0

    report = run_selftest(account, token="bad002")

    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("FAIL", "capacity"), ("ok", "leftovers")]
    assert "quota" in report.lines[2].said.lower()
    assert tagged_anywhere(report.app_name) == NOTHING


def test_a_machine_whose_ami_runs_no_ecs_agent_never_joins_and_the_fix_says_why(account, tmp_path):
    fleet = fleet_booting(account, tmp_path / "pinned", plain_amazon_linux())

    report = run_selftest(account, fleet_path=fleet, token="bad003")

    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("ok", "capacity"), ("FAIL", "agent"),
                                ("ok", "leftovers")]
    assert "its ECS agent has not registered in cluster" in report.lines[3].said
    assert "ECS-optimized AMI" in report.lines[3].fix
    assert tagged_anywhere(report.app_name) == NOTHING


def test_alarms_the_credentials_may_not_create_fail_as_the_alarms_step(account):
    """CloudWatch answers PutMetricAlarm as AWS answers a call the user's policy lacks (403 AccessDenied, given
    to botocore at its before-call event for that operation alone): the line names the step, the call and the
    fix, and what was made before is removed."""
    def denied(**_: object):
        answer = AWSResponse("https://monitoring.us-east-1.amazonaws.com/", 403, {}, None)
        return (answer, {"Error": {"Code": "AccessDenied", "Message": "User: arn:aws:iam::123456789012:user/lab is "
                                 "not authorized to perform: cloudwatch:PutMetricAlarm"},
                       "ResponseMetadata": {"HTTPStatusCode": 403}})

    with hooked_sessions(("before-call.cloudwatch.PutMetricAlarm", denied)):
        report = run_selftest(account, token="bad004")

    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("FAIL", "alarms"), ("ok", "leftovers")]
    assert report.lines[2].said.startswith("PutMetricAlarm: AccessDenied")
    assert "allow it in your IAM user's or role's policy" in report.lines[2].fix
    assert tagged_anywhere(report.app_name) == NOTHING


def test_ctrl_c_half_way_still_tears_down_and_removes_everything(account, tmp_path):
    fleet = fleet_booting(account, tmp_path / "pinned", plain_amazon_linux())  # it waits for the agent: Ctrl-C
    waits = selftest_run.Waits(machine=5, agent=60, monitor=5, poll=0.05)

    pressed: list[bool] = []

    def ctrl_c(seconds: float) -> None:  # once, while it waits for the machine's agent
        if not pressed:
            pressed.append(True)
            raise KeyboardInterrupt

    report = run_selftest(account, fleet_path=fleet, token="intr01", waits=waits, sleep=ctrl_c)

    assert report.interrupted and not report.passed
    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("ok", "capacity"), ("skip", "interrupted"),
                                ("ok", "leftovers")]
    assert tagged_anywhere(report.app_name) == NOTHING


def test_a_second_ctrl_c_during_the_cleanup_waits_for_it(account, tmp_path, capsys):
    """The cleanup is what makes the self-test cost nothing: a Ctrl-C (a real SIGINT) during it is told to wait."""
    fleet = fleet_booting(account, tmp_path / "pinned", plain_amazon_linux())
    presses: list[str] = []

    def user_presses_ctrl_c(seconds: float) -> None:
        if not presses:  # the first, while it waits for the agent
            presses.append("first")
            raise KeyboardInterrupt
        if len(presses) == 1:  # the second, during the teardown that follows
            presses.append("second")
            os.kill(os.getpid(), signal.SIGINT)

    report = run_selftest(account, fleet_path=fleet, token="intr02", sleep=user_presses_ctrl_c,
                          waits=selftest_run.Waits(machine=5, agent=60, monitor=5, poll=0.05))

    assert presses == ["first", "second"]
    assert "removing the throwaway run first" in capsys.readouterr().out
    assert report.interrupted and outcomes(report)[-1] == ("ok", "leftovers")
    assert tagged_anywhere(report.app_name) == NOTHING


def deploy_monitor_stand_in(bucket: str) -> None:
    """The two monitor functions as `chalice deploy` names them, watching `bucket` (what deployed_monitor reads)."""
    iam = aws.client("iam")
    role = iam.create_role(RoleName="monitor-stand-in", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    for handler in ("on_alarm", "every_period"):
        aws.client("lambda").create_function(
            FunctionName=f"ds-runner-monitor-dev-{handler}", Runtime="python3.12", Role=role, Handler="app.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18}, Environment={"Variables": {"MONITOR_BUCKETS": bucket}})


@contextlib.contextmanager
def deployed_monitor_ticking(client, before_each_tick=lambda: None) -> Iterator[Callable[[float], object]]:
    """app.py's scheduled handler ticking on a thread every 0.2 s, as the schedule would (`before_each_tick` runs
    first each time); the self-test's sleep, which waits while it ticks."""
    stop = threading.Event()

    def schedule() -> None:
        while not stop.wait(0.2):
            before_each_tick()
            client.lambda_.invoke("every_period", client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))

    ticking = threading.Thread(target=schedule)
    ticking.start()
    try:
        yield stop.wait
    finally:
        stop.set()
        ticking.join()


WAIT_FOR_THE_MONITOR = selftest_run.Waits(machine=5, agent=2, monitor=60, poll=0.1)


def test_a_deployed_monitor_looks_at_the_run_and_tears_it_down(account, client):
    deploy_monitor_stand_in("test-bucket")
    with deployed_monitor_ticking(client) as sleep:
        report = run_selftest(account, token="mon001", waits=WAIT_FOR_THE_MONITOR, sleep=sleep)

    assert outcomes(report) == [("ok", "roles"), ("ok", "setup"), ("ok", "capacity"), ("ok", "agent"),
                                ("ok", "alarms"), ("ok", "monitor"), ("ok", "teardown"), ("ok", "leftovers")]
    assert report.lines[6].said.startswith("torn down by the deployed monitor")
    assert tagged_anywhere(report.app_name) == NOTHING


def test_a_call_the_deployed_monitor_was_refused_fails_the_monitor_step(account, client):
    deploy_monitor_stand_in("test-bucket")
    logs = aws.client("logs")
    group = "/aws/lambda/ds-runner-monitor-dev-every_period"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")

    def refused_once() -> None:
        """What the function logs when its policy lacks a call: once the self-test's run exists, and before the
        tick that looks at it writes its status document (so the self-test reads the log after it is there)."""
        started = any(SUFFIX in item["Key"] for item in aws.client("s3").list_objects_v2(
            Bucket="test-bucket", Prefix="monitors/").get("Contents", []))
        if started and not logs.get_log_events(logGroupName=group, logStreamName="s")["events"]:
            logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[{
                "timestamp": int(time.time() * 1000), "message": "An error occurred (AccessDenied) when calling "
                "the DescribeFleets operation: not authorized to perform ec2:DescribeFleets"}])

    with deployed_monitor_ticking(client, refused_once) as sleep:
        report = run_selftest(account, token="mon002", waits=WAIT_FOR_THE_MONITOR, sleep=sleep)

    monitor = next(line for line in report.lines if line.step == "monitor")
    assert monitor.outcome == "FAIL" and "DescribeFleets" in monitor.said
    assert monitor.fix.startswith("python cli.py monitor-config ")
    assert report.lines[-1].outcome == "ok" and tagged_anywhere(report.app_name) == NOTHING


@pytest.mark.parametrize(("memory", "chosen"), [(4000, "m5.large"), (12000, "m5.xlarge")])
def test_the_throwaway_run_asks_for_the_smallest_machine_type_that_holds_one_task(aws, memory, chosen):
    """m5.large has 8 GiB (about 7.2 GiB for tasks), m5.xlarge 16 GiB: the smallest of MACHINE_TYPE that ECS could
    place one task of MEMORY on is the one the throwaway run asks for."""
    from tests.conftest import make_settings

    settings = make_settings(MACHINE_TYPE=["m5.2xlarge", "m5.xlarge", "m5.large"], MEMORY=memory)
    run = smallest_type(throwaway(settings, token="cafe01"), aws_client("ec2"))
    assert (chosen,) == run.MACHINE_TYPE
    assert run.APP_NAME == "TestApp-selftest-cafe01" and run.CLUSTER_MACHINES == 1 and run.MACHINE_PRICE_IS_BID


def test_a_monitor_deployed_for_another_bucket_is_said_and_the_self_test_tears_down_itself(account):
    deploy_monitor_stand_in("another-bucket")

    report = run_selftest(account, token="mon003")

    monitor = next(line for line in report.lines if line.step == "monitor")
    assert monitor.outcome == "skip" and "does not watch test-bucket" in monitor.said
    assert report.lines[-2].said.startswith("torn down by the self-test")
    assert report.passed and tagged_anywhere(report.app_name) == NOTHING


def test_a_deployed_monitor_that_never_looks_fails_and_the_self_test_still_cleans_up(account):
    """Deployed for the bucket, but its functions never run (a schedule disabled, a function failing at import):
    no status document comes, nor its teardown; the self-test says so and tears the run down itself."""
    deploy_monitor_stand_in("test-bucket")

    report = run_selftest(account, token="mon004", waits=selftest_run.Waits(machine=5, agent=2, monitor=0.3,
                                                                              poll=0.05))

    assert outcomes(report)[-3:] == [("FAIL", "monitor"), ("FAIL", "teardown"), ("ok", "leftovers")]
    assert "did not look at the run" in report.lines[-3].said
    assert tagged_anywhere(report.app_name) == NOTHING
