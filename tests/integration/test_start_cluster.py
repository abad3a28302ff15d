"""`start-cluster` on moto: preflight, the fleet request with DS's overwrites, run record,
alarms, dashboard and service; re-running changes nothing; each preflight failure creates nothing."""

import base64
import datetime
import json

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws.ec2 import fleet_instance_ids
from chalicelib.model.errors import PreflightError, StartConflict
from chalicelib.monitor.runrecord import RunRecord
from cli import cli
from operations.setup import resources
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.conftest import make_settings
from tests.integration.world import Account, aws_session, datetime_text, snapshot, write_config, write_fleet, write_jobs

START = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def fleet_requests(aws, monkeypatch):
    """The CreateFleet requests as sent on the wire.

    moto gap: describe_fleets drops ValidFrom/ValidUntil (it shows its own) and the client token from what it
    stores, so they cannot be read back from moto. botocore's own event hook records the parameters after our
    code built them and before moto gets them; our code is not replaced.
    """
    sent: list[dict] = []

    def record(params, **_):
        sent.append(json.loads(json.dumps(params, default=datetime_text)))

    session = aws_session()
    session.events.register("provide-client-params.ec2.CreateFleet", record)
    yield sent
    session.events.unregister("provide-client-params.ec2.CreateFleet", record)


@pytest.fixture
def account(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # start-cluster writes files/ into the working directory, as DS does
    made = Account(tmp_path)
    CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 25)), "--config", str(made.config_path)])
    return made


def _start(account, **kwargs):
    return cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), now=START,
                                 wait_seconds=kwargs.pop("wait_seconds", 5), poll_seconds=0, **kwargs)


def launched_from(ec2, sent: dict) -> list[tuple[dict, dict]]:
    """Each (launch template data, override) the fleet request names, the data read back from moto."""
    named = []
    for config in sent["LaunchTemplateConfigs"]:
        spec = config["LaunchTemplateSpecification"]
        [version] = ec2.describe_launch_template_versions(LaunchTemplateId=spec["LaunchTemplateId"],
                                                         Versions=[spec["Version"]])["LaunchTemplateVersions"]
        named += [(version["LaunchTemplateData"], override) for override in config["Overrides"]]
    return named


def test_the_fleet_request_carries_ds_overwrites(account, fleet_requests):
    _start(account)
    [sent] = fleet_requests
    [fleet] = clients.client("ec2", account.settings).describe_fleets()["Fleets"]
    assert fleet["TargetCapacitySpecification"] == {"TotalTargetCapacity": 2, "DefaultTargetCapacityType": "spot"}
    assert (fleet["Type"], fleet["SpotOptions"]["AllocationStrategy"]) == ("maintain", "price-capacity-optimized")
    assert "MaxPrice" not in json.dumps(sent)  # MACHINE_PRICE is the monitor's cost ceiling, not a bid
    assert sent["ValidFrom"] == {"datetime": "2026-03-01T12:00:00+00:00", "tzinfo": "UTC"}
    assert sent["ValidUntil"]["datetime"] == "2027-03-01T12:00:00+00:00"
    assert "_comment" not in sent
    [(spec, override)] = launched_from(clients.client("ec2", account.settings), sent)
    assert override == {"InstanceType": "m5.large"}
    assert spec["BlockDeviceMappings"][1]["Ebs"]["VolumeSize"] == 30
    assert spec["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is False  # ASSIGN_IP false (DS inverts it)
    assert "KeyName" not in spec  # SSH_KEY_NAME null: no key pair
    assert {"Key": "Name", "Value": "TestAppWorker"} in spec["TagSpecifications"][0]["Tags"]
    script = base64.b64decode(spec["UserData"]).decode()
    assert "ECS_CLUSTER=default\n" in script
    assert script.startswith("#!/bin/bash\n")
    # the host, not the container, asks the metadata service; the task definition mounts what it wrote
    assert "http://169.254.169.254/latest/meta-data/instance-id > /var/lib/dsr/host/instance-id.new" in script


def test_every_machine_requires_imdsv2_with_a_hop_limit_of_1(aws, tmp_path, monkeypatch, fleet_requests):
    """A container's requests to the instance metadata service never get a token back, so the instance role's
    credentials (the ECS agent's rights on every cluster) stay on the host."""
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, MACHINE_TYPE=["m5.large", "m5a.large"])
    result = _start(account)
    ec2 = clients.client("ec2", account.settings)
    [sent] = fleet_requests
    assert "LaunchSpecifications" not in sent  # they cannot carry MetadataOptions
    launched = launched_from(ec2, sent)
    assert [override["InstanceType"] for _, override in launched] == ["m5.large", "m5a.large"]
    for data, _ in launched:
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                           "HttpEndpoint": "enabled"}
    [template] = ec2.describe_launch_templates(LaunchTemplateNames=["TestAppLaunchTemplate"])["LaunchTemplates"]
    assert {"Key": "dsr:app", "Value": "TestApp"} in template["Tags"]
    # and so do the machines the fleet launched from it
    machines = [instance for reservation in ec2.describe_instances(
        InstanceIds=list(fleet_instance_ids(ec2, result.record.MONITOR_FLEET_ID)))["Reservations"]
        for instance in reservation["Instances"]]
    assert len(machines) == 2
    for machine in machines:
        options = machine["MetadataOptions"]
        assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 1), machine["InstanceId"]


def test_a_launch_template_of_that_name_not_the_runs_is_refused(account, fleet_requests):
    ec2 = clients.client("ec2", account.settings)
    ec2.create_launch_template(LaunchTemplateName="TestAppLaunchTemplate",
                               LaunchTemplateData={"MetadataOptions": {"HttpTokens": "optional"}})
    with pytest.raises(StartConflict,
                       match="launch template 'TestAppLaunchTemplate' exists and is not run 'TestApp''s"):
        _start(account)
    assert fleet_requests == []


def test_assign_ip_true_keeps_the_fleet_files_choice_and_each_machine_type_gets_a_spec(aws, tmp_path, monkeypatch,
                                                                                      fleet_requests):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ASSIGN_IP=True, MACHINE_TYPE=["m5.large", "m5a.large"], SSH_KEY_NAME="lab.pem",
                      EBS_VOL_SIZE=50)
    _start(account)
    launched = launched_from(clients.client("ec2", account.settings), fleet_requests[0])
    assert [override["InstanceType"] for _, override in launched] == ["m5.large", "m5a.large"]
    specs = [spec for spec, _ in launched]
    assert all(spec["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True for spec in specs)
    assert all(spec["KeyName"] == "lab" for spec in specs)
    assert all(spec["BlockDeviceMappings"][1]["Ebs"]["VolumeSize"] == 50 for spec in specs)


def test_moto_holds_the_fleet_with_its_capacity_and_tag(account):
    result = _start(account)
    ec2 = clients.client("ec2", account.settings)
    assert ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"] == []  # the legacy API is not used
    [fleet] = ec2.describe_fleets()["Fleets"]
    assert fleet["FleetId"] == result.record.MONITOR_FLEET_ID
    assert fleet["TargetCapacitySpecification"]["TotalTargetCapacity"] == 2
    assert {"Key": "dsr:app", "Value": "TestApp"} in fleet["Tags"]
    assert result.fleet.instances == 2 and result.fleet.problem is None


def test_the_run_record_is_in_s3_and_files_with_everything_the_monitor_needs(account):
    result = _start(account)
    s3 = clients.client("s3", account.settings)
    stored = s3.get_object(Bucket="test-bucket", Key="monitors/TestAppSpotFleetRequestId.json")["Body"].read()
    local = (account.folder / "files" / "TestAppSpotFleetRequestId.json").read_text()
    assert json.loads(stored) == json.loads(local)
    record = json.loads(stored)
    assert record["MONITOR_FLEET_ID"] == result.record.MONITOR_FLEET_ID
    assert {key: record[key] for key in ("MONITOR_APP_NAME", "MONITOR_ECS_CLUSTER", "MONITOR_QUEUE_NAME",
                                         "MONITOR_BUCKET_NAME", "MONITOR_LOG_GROUP_NAME", "CLEAN_DASHBOARD")} == {
        "MONITOR_APP_NAME": "TestApp", "MONITOR_ECS_CLUSTER": "default", "MONITOR_QUEUE_NAME": "TestAppQueue",
        "MONITOR_BUCKET_NAME": "test-bucket", "MONITOR_LOG_GROUP_NAME": "TestApp", "CLEAN_DASHBOARD": True}
    assert record["MONITOR_START_TIME"] == int(START.timestamp() * 1000)
    assert record["QUEUE_URL"].endswith("/TestAppQueue")
    assert record["DEAD_LETTER_QUEUE_NAME"] == "user_DeadMessages"
    assert record["SERVICE_NAME"] == "TestAppService" and record["TASK_FAMILY"] == "TestAppTask"
    assert record["ALARM_NAMES"] == ["ApproximateNumberOfMessagesVisibleisZero_TestApp",
                                     "ApproximateNumberOfMessagesNotVisibleisZero_TestApp"]
    assert record["DASHBOARD_NAME"] == "TestApp"
    assert record["TOPIC_ARN"].endswith(":Monitor")
    assert (record["JOBS_AT_START"], record["CLUSTER_MACHINES"], record["TASKS_PER_MACHINE"]) == (25, 2, 1)
    assert RunRecord.from_json(stored) == result.record


def test_queue_alarms_watch_the_real_queue_and_notify_monitor(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, SQS_QUEUE_NAME="renamed-jobs")
    _start(account)
    alarms = clients.client("cloudwatch", account.settings).describe_alarms()["MetricAlarms"]
    assert sorted(alarm["AlarmName"] for alarm in alarms) == ["ApproximateNumberOfMessagesNotVisibleisZero_TestApp",
                                                              "ApproximateNumberOfMessagesVisibleisZero_TestApp"]
    for alarm in alarms:
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "renamed-jobs"}]
        assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:Monitor"]
        assert (alarm["Namespace"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "AWS/SQS", "LessThanOrEqualToThreshold", 0.0)


def test_dashboard_has_ds_widgets_for_this_run(account):
    result = _start(account)
    body = json.loads(clients.client("cloudwatch", account.settings).get_dashboard(DashboardName="TestApp")[
        "DashboardBody"])
    metrics = [metric for widget in body["widgets"] if widget["type"] == "metric"
               for metric in widget["properties"]["metrics"]]
    assert ["AWS/EC2Spot", "TargetCapacity", "FleetRequestId", result.record.MONITOR_FLEET_ID] in metrics
    assert ["AWS/EC2Spot", "FulfilledCapacity", "FleetRequestId", result.record.MONITOR_FLEET_ID] in metrics
    assert ["AWS/ECS", "MemoryUtilization", "ClusterName", "default", "ServiceName", "TestAppService"] in metrics
    queue_names = {metric[3] for metric in metrics if metric[0] == "AWS/SQS"}
    assert queue_names == {"TestAppQueue", "user_DeadMessages"}
    sums = [widget for widget in body["widgets"] if widget["properties"].get("stat") == "Sum"]
    assert [metric[1] for metric in sums[0]["properties"]["metrics"]] == ["NumberOfMessagesReceived",
                                                                          "NumberOfMessagesDeleted"]
    queries = [widget["properties"]["query"] for widget in body["widgets"] if widget["type"] == "log"]
    assert len(queries) == 3 and all(query.startswith("SOURCE 'TestApp' |") for query in queries)
    # the queries read the worker's own job-log wording (worker/worker.py writes these line starts)
    assert "/^started: /" in queries[1] and "/^failed: /" in queries[2]


def test_no_alarms_or_dashboard_when_switched_off(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, AUTO_MONITOR=False, CREATE_DASHBOARD=False)
    result = _start(account)
    cloudwatch = clients.client("cloudwatch", account.settings)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert cloudwatch.list_dashboards()["DashboardEntries"] == []
    assert (result.record.ALARM_NAMES, result.record.DASHBOARD_NAME) == ((), None)


def test_service_runs_machines_times_tasks(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, CLUSTER_MACHINES=3, TASKS_PER_MACHINE=2, MEMORY=3000, CPU_SHARES=1024)
    _start(account)
    [service] = clients.client("ecs", account.settings).describe_services(
        cluster="default", services=["TestAppService"])["services"]
    assert service["desiredCount"] == 6


def test_rerunning_start_cluster_leaves_aws_unchanged(account):
    first = _start(account)
    before = snapshot(account.settings)
    later = START + datetime.timedelta(hours=1)
    second = cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), now=later,
                                   wait_seconds=0)
    assert snapshot(account.settings) == before
    assert second.resumed and second.changes == []
    assert second.record == first.record


def test_a_crash_before_the_record_was_written_finds_the_fleet_by_its_tag(account):
    first = _start(account)
    clients.client("s3", account.settings).delete_object(Bucket="test-bucket", Key=first.record.MONITOR_FILE_KEY)
    second = _start(account)
    assert second.resumed
    assert second.record.MONITOR_FLEET_ID == first.record.MONITOR_FLEET_ID
    assert len(clients.client("ec2", account.settings).describe_fleets()["Fleets"]) == 1


def test_a_cancelled_fleet_means_a_new_run(account):
    first = _start(account)
    ec2 = clients.client("ec2", account.settings)
    ec2.delete_fleets(FleetIds=[first.record.MONITOR_FLEET_ID], TerminateInstances=True)
    second = _start(account)
    assert not second.resumed
    assert second.record.MONITOR_FLEET_ID != first.record.MONITOR_FLEET_ID


def test_cli_start_cluster_prints_the_fleet_and_the_record(account):
    result = CliRunner().invoke(cli, ["start-cluster", str(account.fleet_path), "--config", str(account.config_path),
                                      "--wait", "0"])
    assert result.exit_code == 0, result.output
    assert "created EC2 Fleet fleet-" in result.stdout
    assert "run record: files/TestAppSpotFleetRequestId.json and s3://test-bucket/monitors/" in result.stdout
    assert result.stderr == ""
    again = CliRunner().invoke(cli, ["startCluster", str(account.fleet_path), "--config", str(account.config_path),
                                     "--wait", "0"])
    assert again.exit_code == 0, again.output
    assert "already started with fleet fleet-" in again.stdout and "nothing to change" in again.stdout


# --------------------------------------------------------------------------- preflight failures


def _break_bucket(account):
    s3 = clients.client("s3", account.settings)
    for item in s3.list_objects_v2(Bucket="test-bucket").get("Contents", []):
        s3.delete_object(Bucket="test-bucket", Key=item["Key"])
    s3.delete_bucket(Bucket="test-bucket")


def _break_queue(account):
    sqs = clients.client("sqs", account.settings)
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName="TestAppQueue")["QueueUrl"])


def _break_profile(account):
    iam = clients.client("iam", account.settings)
    iam.remove_role_from_instance_profile(InstanceProfileName="dsr-ecs-instance-role",
                                          RoleName="dsr-ecs-instance-role")
    iam.delete_instance_profile(InstanceProfileName="dsr-ecs-instance-role")


def _no_task_role(account):
    resources.ensure_task_definition(clients.client("ecs", account.settings),
                                     resources.task_definition(account.settings, None), resources.SetupReport())


def _bad_subnet(account):
    write_fleet(account.folder, account.roles.fleet_role_arn, account.roles.instance_profile_arn,
                "subnet-0000000000000000f")


def _no_destination_bucket(account):
    write_config(account.folder, DESTINATION_BUCKET="lab-results")  # a bucket nobody made


PREFLIGHT_FAILURES = {
    "bucket": (_break_bucket, "bucket 'test-bucket' does not exist; create it or fix AWS_BUCKET in config.json"),
    "destination bucket": (_no_destination_bucket, "bucket 'lab-results' does not exist; create it or fix "
                                                   "DESTINATION_BUCKET in config.json"),
    "queue": (_break_queue, "queue 'TestAppQueue' does not exist; run 'python cli.py setup --config config.json' "
                            "first"),
    "instance profile": (_break_profile, "{fleet}: IamInstanceProfile: instance profile 'dsr-ecs-instance-role' "
                                         "does not exist; 'python cli.py setup-account' creates it and prints its ARN"),
    "task role": (_no_task_role, "task definition 'TestAppTask' has no task role, so workers could not reach SQS or "
                                 "S3; run 'python cli.py setup-account', then 'python cli.py setup'"),
    "subnet": (_bad_subnet, "{fleet}: subnet 'subnet-0000000000000000f' does not exist in us-east-1"),
}


@pytest.mark.parametrize("name", sorted(PREFLIGHT_FAILURES))
def test_each_preflight_failure_is_one_line_and_creates_nothing(account, name):
    breaker, message = PREFLIGHT_FAILURES[name]
    breaker(account)
    before = snapshot(account.settings)
    result = CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: " + message.format(fleet="fleet.json") + "\n"
    assert snapshot(account.settings) == before
    assert not (account.folder / "files").exists()


@pytest.mark.parametrize("overrides,message", [
    ({"TASKS_PER_MACHINE": 2, "MEMORY": 4000},
     "MACHINE_TYPE: m5.large leaves 7700 MiB for tasks (8192 MiB less 492 kept for the OS and ECS agent) but "
     "TASKS_PER_MACHINE x MEMORY = 2 x 4000 = 8000 MiB; ECS would never place the tasks (choose a bigger type or "
     "lower MEMORY or TASKS_PER_MACHINE)"),
    ({"DOCKER_CORES": 4},
     "MACHINE_TYPE: m5.large has 2048 CPU units (2 vCPUs x 1024) but TASKS_PER_MACHINE x CPU_SHARES = 1 x 4096 = "
     "4096; ECS would never place the tasks (choose a bigger type or lower CPU_SHARES or TASKS_PER_MACHINE)"),
    ({"MACHINE_TYPE": ["m5.huge"]},
     "MACHINE_TYPE: The following supplied instance types do not exist: [m5.huge] in us-east-1"),
])
def test_tasks_that_do_not_fit_the_machine_type_fail_preflight(account, overrides, message):
    settings = make_settings(**overrides)
    before = snapshot(settings)
    with pytest.raises(PreflightError) as failure:
        cluster.start_cluster(settings, load_fleet_file(account.fleet_path), wait_seconds=0)
    assert str(failure.value) == message
    assert snapshot(settings) == before


def test_warnings_for_an_empty_queue_and_a_subnet_with_no_way_out(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, nat=False)
    result = CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: ASSIGN_IP is false and subnet '{account.subnet}' has no NAT route or VPC endpoints for ECS, SQS, "
        "S3 and Logs; its machines could not reach AWS and no worker would start",
        "warning: queue 'TestAppQueue' holds no jobs; the workers will find nothing to do "
        "(run 'python cli.py submit JOBFILE')"]


def test_a_warning_when_output_prefix_has_no_fixed_folder(aws, tmp_path, monkeypatch):
    """Such a run's task role may write anywhere but what the monitor trusts (operations/setup/iam.py): say so."""
    monkeypatch.chdir(tmp_path)
    Account(tmp_path, OUTPUT_PREFIX="{plate}/out")
    result = CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])
    assert result.exit_code == 0, result.output
    assert ("warning: OUTPUT_PREFIX '{plate}/out' starts with a job value, so this run's jobs may write anywhere in "
            "s3://test-bucket/ but monitors/, exportedlogs/ and ecsconfigs/, other runs' outputs included; give it a "
            "fixed first folder such as '{APP_NAME}/{job_id}'") in result.stderr.splitlines()


def test_start_cluster_over_an_unreadable_run_record_says_why_in_one_line(account):
    """A record under monitors/ that is not one (half an upload, an edit by hand) gave start-cluster a traceback."""
    clients.client("s3", account.settings).put_object(Bucket="test-bucket",
                                                      Key="monitors/TestAppSpotFleetRequestId.json", Body=b"{")
    result = CliRunner().invoke(cli, ["start-cluster", str(account.fleet_path), "--config", str(account.config_path),
                                      "--wait", "0"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("error: s3://test-bucket/monitors/TestAppSpotFleetRequestId.json: not a run record of "
                             "this project (invalid JSON at line 1 column 2)\n")
