"""Found by the chaos campaign, seed 3 (`python -m tests.chaos --seed 3`): runs starting together in one account
each run setup-account (local mode does), and one of them stopped at once with "AWS refused CreateInstanceProfile:
EntityAlreadyExists", its jobs never sent. Here the race is played exactly: just before each of our creates, the
other setup-account makes the same thing."""

import contextlib

import boto3
import pytest
from botocore import xform_name

from chalicelib import aws as clients
from operations.setup import iam

RACED = ("CreateRole", "PutRolePolicy", "CreateInstanceProfile", "AddRoleToInstanceProfile")


def a_session_whose_creates_are_raced(region, _profile):
    other = boto3.client("iam", region_name="us-east-1")  # the other run's setup-account: its own session

    def the_other_first(params, model, **_):
        if model.name in RACED:
            with contextlib.suppress(other.exceptions.ClientError):  # what it could not do, ours finds undone
                getattr(other, xform_name(model.name))(**params)

    session = boto3.session.Session(region_name=region or "us-east-1")
    session.events.register("provide-client-params.iam", the_other_first)
    return session


@pytest.fixture
def raced(aws):
    with clients.sessions_from(a_session_whose_creates_are_raced):
        yield


def test_seed_3_two_runs_setting_up_one_account_at_once_both_get_the_roles(raced, settings):
    report = iam.setup_account(settings)

    iam_client = boto3.client("iam", region_name="us-east-1")
    profile = iam_client.get_instance_profile(InstanceProfileName="dsr-ecs-instance-role")["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == ["dsr-ecs-instance-role"]
    assert report.instance_profile_arn == profile["Arn"]
    assert report.task_role_arn == iam_client.get_role(RoleName="TestApp-task-role")["Role"]["Arn"]
    for name in ("dsr-ecs-instance-role", "dsr-spot-fleet-role", "TestApp-task-role"):
        assert iam_client.get_role_policy(RoleName=name, PolicyName=iam.POLICY_NAME)["PolicyDocument"]
