"""A DS/DCP fleet file names DS's roles: the IamFleetRole `aws-ec2-spot-fleet-tagging-role` (unused since machines
come from an EC2 Fleet, which acts with its service-linked role) and the instance profile `ecsInstanceRole`.
start-cluster uses DS's profile when the account has it with what ECS needs, and otherwise says in one line what
to write instead, naming both profiles.

The fleet file is Distributed-CellProfiler's files/exampleFleet_us-east-1.json at 17388b3 (lines 2 and 10 name the
roles), copied unchanged to tests/data/dcp_17388b3/; only what every user fills in is replaced: the account id,
subnet and security group, and an AMI the emulated region has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from tests.integration.world import Account, amazon_image, snapshot, write_jobs

DCP_FLEET = Path(__file__).resolve().parents[1] / "data" / "dcp_17388b3" / "exampleFleet_us-east-1.json"
ACCOUNT = "123456789012"  # moto's
ECS_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
OURS = f"arn:aws:iam::{ACCOUNT}:instance-profile/dsr-ecs-instance-role"
EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def aws_managed_policies():
    """moto in-process holding AWS's managed policies, as every account does (moto leaves them out unless told)."""
    from moto import mock_aws

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def account(aws_managed_policies, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = Account(tmp_path)
    CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 3)), "--config", str(made.config_path)])
    text = (DCP_FLEET.read_text().replace("XXXXXXXXXXXXX", ACCOUNT).replace("XXXXXXXXXXXX", ACCOUNT)
            .replace("subnet-WWWWWWWW", made.subnet).replace("ami-0ce03502c5bb5e188", amazon_image()))
    group = clients.client("ec2").describe_subnets(SubnetIds=[made.subnet])["Subnets"][0]["VpcId"]
    group = clients.client("ec2").create_security_group(GroupName="dcp", Description="dcp", VpcId=group)["GroupId"]
    (tmp_path / "fleet.json").write_text(text.replace("sg-ZZZZZZZZZ", group))
    return made


def ds_instance_role(*, managed: str | None = ECS_POLICY, inline: dict | None = None, profile: bool = True) -> None:
    """DS's ecsInstanceRole as the AWS console makes it: the role, its profile, AWS's managed policy."""
    iam = clients.client("iam")
    iam.create_role(RoleName="ecsInstanceRole", AssumeRolePolicyDocument=EC2_TRUST)
    if managed:
        iam.attach_role_policy(RoleName="ecsInstanceRole", PolicyArn=managed)
    if inline:
        iam.put_role_policy(RoleName="ecsInstanceRole", PolicyName="agent", PolicyDocument=json.dumps(inline))
    if profile:
        iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
        iam.add_role_to_instance_profile(InstanceProfileName="ecsInstanceRole", RoleName="ecsInstanceRole")


def start_cluster():
    return CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])


def launched_profiles() -> set[str]:
    ec2 = clients.client("ec2")
    return {ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]["IamInstanceProfile"]["Arn"]
        for template in ec2.describe_launch_templates()["LaunchTemplates"]}


@pytest.mark.parametrize("how", ["AWS's managed policy", "an equivalent inline policy"])
def test_dcps_fleet_file_starts_with_ds_profile_when_the_account_has_it(account, how):
    agent = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:RegisterContainerInstance",
                                       "ecs:StartTelemetrySession", "ecs:Submit*"], "Resource": "*"},
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}
    ds_instance_role(**({} if how == "AWS's managed policy" else {"managed": None, "inline": agent}))

    result = start_cluster()

    assert result.exit_code == 0, result.output
    # the IamFleetRole DS names (no such role here) is neither required nor sent: an EC2 Fleet has none
    assert "aws-ec2-spot-fleet-tagging-role" not in result.output
    assert launched_profiles() == {f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole"}


def test_a_missing_ds_profile_is_one_line_naming_both_profiles(account):
    before = snapshot(account.settings)

    result = start_cluster()

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: fleet.json: IamInstanceProfile: instance profile 'ecsInstanceRole' does not exist in this account; "
        f"change the Arn arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole to ours, {OURS} (made by "
        "'python cli.py setup-account')\n")
    assert snapshot(account.settings) == before


def test_a_ds_profile_whose_role_cannot_join_ecs_says_what_it_lacks(account):
    ds_instance_role(managed=None, inline={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecs:*"], "Resource": "*"}]})  # no logs: containers' output goes nowhere
    before = snapshot(account.settings)

    result = start_cluster()

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: fleet.json: IamInstanceProfile: role 'ecsInstanceRole' of instance profile 'ecsInstanceRole' may not "
        "call logs:CreateLogStream, logs:PutLogEvents, so its machines could not join ECS; attach the AWS-managed "
        f"AmazonEC2ContainerServiceforEC2Role policy to it, or change the Arn "
        f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole to ours, {OURS} (made by 'python cli.py "
        "setup-account')\n")
    assert snapshot(account.settings) == before


def test_a_ds_profile_without_a_role_names_the_fix(account):
    ds_instance_role(profile=False)
    clients.client("iam").create_instance_profile(InstanceProfileName="ecsInstanceRole")

    result = start_cluster()

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: fleet.json: IamInstanceProfile: instance profile 'ecsInstanceRole' has no role; add one with the "
        f"AmazonEC2ContainerServiceforEC2Role policy, or change the Arn "
        f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole to ours, {OURS} (made by 'python cli.py "
        "setup-account')\n")
