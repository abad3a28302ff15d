"""Capacity the way AWS recommends it (issue 25), end to end on the emulator: an EC2 Fleet of Spot machines from
the run's launch template (the latest ECS AMI when the fleet file names none, several instance types or the
tasks' needs, price-capacity-optimized, no bid), scaled down and torn down by the monitor; a fleet that says why it
is short, through start-cluster --wait, `status` and the status API; the Spot vCPU quota preflight; --dry-run.

The fleet file is DS's shape (world.write_fleet: the keys of DS's files/exampleFleet_us-east-1.json).
"""

from __future__ import annotations

import contextlib
import json

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws.ec2 import fleet_instance_ids
from chalicelib.monitor import service
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from localrun.moto_patches import record_fleet_event, set_service_quota, set_spot_price
from tests.integration.world import (
    NOTHING_LEFT,
    Account,
    aws_session,
    drain,
    live_fleets,
    reconcile_until_gone,
    snapshot,
    the_run,
    what_is_left,
    write_jobs,
)

ECS_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"


def _account(tmp_path, monkeypatch, image: bool = True, **config) -> Account:
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs", **config)
    if not image:
        document = json.loads(account.fleet_path.read_text())
        for spec in document["LaunchSpecifications"]:
            del spec["ImageId"]
        account.fleet_path.write_text(json.dumps(document))
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 6)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    return account


def _start_cli(account, *extra: str):
    return CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", *extra])


def _template_data(ec2, fleet: dict) -> list[dict]:
    found = []
    for config in fleet["LaunchTemplateConfigs"]:
        spec = config["LaunchTemplateSpecification"]
        [version] = ec2.describe_launch_template_versions(LaunchTemplateId=spec["LaunchTemplateId"],
                                                         Versions=[spec["Version"]])["LaunchTemplateVersions"]
        found.append(version["LaunchTemplateData"])
    return found


@pytest.mark.parametrize("machine_type", [["m5.large", "c5.large", "r5.large"], []], ids=["types", "attributes"])
def test_a_ds_fleet_file_without_an_ami_runs_on_an_ec2_fleet_and_is_torn_down_to_nothing(
        aws, tmp_path, monkeypatch, machine_type):
    account = _account(tmp_path, monkeypatch, image=False, MACHINE_TYPE=machine_type, CLUSTER_MACHINES=3,
                       MEMORY=3000)
    started = _start_cli(account, "--wait", "5")
    assert started.exit_code == 0, started.output
    ec2, ssm = clients.client("ec2"), clients.client("ssm")
    latest = ssm.get_parameter(Name=ECS_AMI_PARAMETER)["Parameter"]["Value"]
    assert f"machines boot {latest}, the latest ECS-optimized AMI ({ECS_AMI_PARAMETER})" in started.stdout
    assert ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"] == []
    [fleet] = ec2.describe_fleets()["Fleets"]
    assert (fleet["Type"], fleet["SpotOptions"]["AllocationStrategy"]) == ("maintain", "price-capacity-optimized")
    assert [data["ImageId"] for data in _template_data(ec2, fleet)] == [latest]
    overrides = [override for config in fleet["LaunchTemplateConfigs"] for override in config["Overrides"]]
    assert all("MaxPrice" not in override for override in overrides)  # MACHINE_PRICE is no bid
    if machine_type:
        assert [override["InstanceType"] for override in overrides] == machine_type
    else:  # AWS picks among every current type with what 1 task of 1024 CPU units and 3000 MiB needs
        [override] = overrides
        requirements = override["InstanceRequirements"]
        assert requirements["VCpuCount"]["Min"] == 1 and requirements["MemoryMiB"]["Min"] >= 3000
        assert requirements["BurstablePerformance"] == "excluded"
    machines = sorted(fleet_instance_ids(ec2, fleet["FleetId"]))
    assert len(machines) == 3

    # the monitor scales down releasing only the idle machines, then tears the run down
    run = the_run(account)
    sqs = clients.client("sqs")
    held = sqs.receive_message(QueueUrl=run.record.QUEUE_URL, MaxNumberOfMessages=1, VisibilityTimeout=600)
    from chalicelib.runfiles import leases
    lease = leases.Lease(clients.client("s3"), run.bucket, run.app_name, machines[1], "worker-1")
    lease.hold("P00001")
    drain(account)
    reconcile(the_run(account))
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=machines)["Reservations"]
              for i in r["Instances"]}
    assert states == {machines[0]: "terminated", machines[1]: "running", machines[2]: "terminated"}
    [fleet] = ec2.describe_fleets()["Fleets"]
    assert fleet["TargetCapacitySpecification"]["TotalTargetCapacity"] == 1
    sqs.delete_message(QueueUrl=run.record.QUEUE_URL, ReceiptHandle=held["Messages"][0]["ReceiptHandle"])
    lease.release()
    reconcile_until_gone(account, limit=15)
    assert what_is_left(account) == {**NOTHING_LEFT, "exported": []}  # no worker wrote a log here


def test_a_run_the_previous_version_started_on_a_spot_fleet_is_scaled_down_and_torn_down(started, legacy_run):
    ec2 = clients.client("ec2")
    fleet_id = the_run(legacy_run).record.MONITOR_FLEET_ID
    assert fleet_id.startswith("sfr-")
    machines = sorted(fleet_instance_ids(ec2, fleet_id))
    assert len(machines) == 2
    drain(legacy_run)
    ticks = reconcile_until_gone(legacy_run, limit=15)
    done = [type(action).__name__ for tick in ticks for action in tick.actions]
    assert "CancelFleet" in done and "DeleteLaunchTemplates" in done
    [fleet] = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet_id])["SpotFleetRequestConfigs"] or [None]
    assert fleet is None or fleet["SpotFleetRequestState"].startswith("cancelled")
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=machines)["Reservations"]
              for i in r["Instances"]}
    assert set(states.values()) == {"terminated"}
    assert what_is_left(legacy_run)["launch_templates"] == []
    # the run beside it, on this version's EC2 Fleet, is untouched
    assert the_run(started).record.MONITOR_FLEET_ID in live_fleets(ec2)


# --------------------------------------------------------------------------- a fleet that says why


@contextlib.contextmanager
def aws_launches_nothing(sub_type: str, description: str):
    """What AWS does with a fleet it cannot fill: it launches nothing and writes why in the fleet's history. moto
    launches at once, so right after CreateFleet its machines are ended (they never ran) and the error AWS writes is
    recorded (record_fleet_event plays AWS's part)."""
    def refuse(parsed, **_):
        fleet_id = parsed.get("FleetId")
        if fleet_id:
            ec2 = clients.client("ec2")
            ec2.terminate_instances(InstanceIds=list(fleet_instance_ids(ec2, fleet_id)) or ["i-00000000"])
            record_fleet_event(fleet_id, sub_type, description)

    session = aws_session()
    session.events.register("after-call.ec2.CreateFleet", refuse)
    try:
        yield
    finally:
        session.events.unregister("after-call.ec2.CreateFleet", refuse)


FLEET_ERRORS = {
    "quota": ("spotInstanceCountLimitExceeded", "Max spot instance count exceeded",
              ["Spot vCPU quota reached (spotInstanceCountLimitExceeded, once): ",
               '"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"', "L-34B43A08"]),
    "invalid configuration": (
        "spotFleetRequestConfigurationInvalid",
        "m5.large, ami-0abcdef1234567890, Linux/UNIX: The image id '[ami-0abcdef1234567890]' does not exist",
        ["Invalid launch configuration (spotFleetRequestConfigurationInvalid, once): ImageId: the AMI "
         "ami-0abcdef1234567890 does not exist in this region or is not shared with the account"]),
    "no capacity": (
        "spotFleetRequestConfigurationInvalid",
        "m5.large, ami-0abcdef1234567890, Linux/UNIX, us-east-1a: There is no Spot capacity available that matches "
        "your request.",
        ["No Spot capacity (spotFleetRequestConfigurationInvalid, once): AWS has no spare (or does not offer) m5.large "
         "in us-east-1a right now, and the fleet keeps trying. More instance types (MACHINE_TYPE) and subnets in more "
         "zones would help."]),
}


@pytest.mark.parametrize("kind", sorted(FLEET_ERRORS))
def test_a_fleet_that_launches_nothing_says_why_in_start_cluster_status_and_the_api(aws, tmp_path, monkeypatch,
                                                                                    kind):
    sub_type, description, said = FLEET_ERRORS[kind]
    account = _account(tmp_path, monkeypatch)
    with aws_launches_nothing(sub_type, description):
        started = _start_cli(account, "--wait", "1")
    assert started.exit_code == 0, started.output  # a short fleet never stops the run: it keeps trying
    assert "0 of 2 machines running" in started.stdout
    for words in said:
        assert words in started.stderr, started.stderr
    if kind == "quota":  # start-cluster has read the quota in preflight: its value and what the run asks
        assert "(L-34B43A08) is 1024 vCPUs and this run asks 4 vCPUs (2 x 2)" in started.stderr
    status = CliRunner().invoke(cli, ["status", "--config", "config.json"])
    assert status.exit_code == 0, status.output
    assert "fleet         target 2, fulfilled 0, 0 machine(s); the run goes on with these" in status.stdout
    api = service.find_status("TestApp", [account.settings.AWS_BUCKET])
    for words in said:
        assert words in status.stdout
        assert any(words in problem for problem in api["fleet"]["problems"]), api["fleet"]


def test_a_fleet_with_what_it_asks_for_reads_no_history(aws, tmp_path, monkeypatch):
    account = _account(tmp_path, monkeypatch)
    assert _start_cli(account, "--wait", "1").exit_code == 0
    assert service.find_status("TestApp", [account.settings.AWS_BUCKET])["fleet"]["problems"] == []


# --------------------------------------------------------------------------- preflight and --dry-run


def test_a_run_asking_more_spot_vcpus_than_the_quota_is_refused_and_nothing_is_created(aws, tmp_path, monkeypatch):
    account = _account(tmp_path, monkeypatch, MACHINE_TYPE=["m5.xlarge"], CLUSTER_MACHINES=3)
    set_service_quota("L-34B43A08", 8)  # room for 2 machines of 4 vCPUs
    before = snapshot(account.settings)
    result = _start_cli(account)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: The Spot vCPU quota is too small for this run: "
                                    "CLUSTER_MACHINES 3 x 4 vCPUs")
    assert '"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests" (L-34B43A08) is 8 vCPUs' in result.stderr
    assert "--quota-code L-34B43A08 --desired-value 12" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(account.settings) == before


def test_dry_run_prints_the_types_with_their_spot_prices_and_the_cost_ceiling_and_creates_nothing(
        aws, tmp_path, monkeypatch):
    account = _account(tmp_path, monkeypatch, MACHINE_TYPE=["m5.large", "c5.large"], CLUSTER_MACHINES=4,
                       MACHINE_PRICE=0.1)
    # a subnet in a zone that offers both types (moto picks a subnet's zone at random, and us-east-1e has no m5)
    ec2, zone = clients.client("ec2"), "us-east-1a"
    vpc = ec2.describe_subnets(SubnetIds=[account.subnet])["Subnets"][0]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.3.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    account.fleet_path.write_text(account.fleet_path.read_text().replace(account.subnet, subnet))
    set_spot_price("m5.large", zone, 0.0412)
    set_spot_price("c5.large", zone, 0.1234)
    before = snapshot(account.settings)
    result = _start_cli(account, "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(account.settings) == before
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run: checked, nothing created"
    assert "would create an EC2 Fleet: 4 x m5.large/c5.large, price-capacity-optimized, Spot price, cost ceiling " \
           "$0.4/h" in lines
    assert [line.split() for line in lines if line.split()[:1] in (["m5.large"], ["c5.large"])] == [
        ["m5.large", "0.04120"], ["c5.large", "0.12340*"]]  # * above MACHINE_PRICE
    assert "Cost ceiling: 4 machines x MACHINE_PRICE $0.1 = $0.4 per hour." in lines
