"""A run's machines are read in AWS's largest requests ("Pagination in the Amazon EC2 API", EC2 developer guide): by
ids at most 1,000 a call, by filter pages of MaxResults 1000, so 1,000 machines are one call either way. Each call
is counted at botocore's provide-client-params event, on an emulator that pages and refuses as AWS does
(localrun/moto_limits.py)."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.aws.ec2 import live_machines
from tests.integration.world import spot_fleet_of

REGION = "us-east-1"
MACHINES = 1500

pytestmark = pytest.mark.slow  # an EC2 Fleet of 1,500 machines (a reservation each), shared by the module


@pytest.fixture(scope="module")
def fleet():
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        fleet_id = spot_fleet_of(ec2, "machines", MACHINES)
        ids = [item["InstanceId"] for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:aws:ec2:fleet-id", "Values": [fleet_id]}])
            for reservation in page["Reservations"] for item in reservation["Instances"]]
        yield fleet_id, tuple(sorted(ids))


def described(ec2) -> list[dict]:
    """The parameters of each DescribeInstances request the client sends from now on (botocore's
    provide-client-params: once a call, before it is serialised)."""
    calls: list[dict] = []
    ec2.meta.events.register("provide-client-params.ec2.DescribeInstances", lambda params, **_: calls.append(params))
    return calls


def test_1500_machines_by_id_are_two_calls_of_at_most_1000_ids(fleet):
    _, ids = fleet
    ec2 = boto3.client("ec2", region_name=REGION)
    calls = described(ec2)

    machines = live_machines(ec2, ids)

    assert [len(call["InstanceIds"]) for call in calls] == [1000, 500]
    assert tuple(machine.instance_id for machine in machines) == ids


def test_1000_machines_by_filter_are_one_call(fleet):
    fleet_id, ids = fleet
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.terminate_instances(InstanceIds=list(ids[1000:]))  # the last test of the module: the fleet keeps 1,000
    calls = described(ec2)

    machines = live_machines(ec2, fleet_id=fleet_id)

    assert [call.get("MaxResults") for call in calls] == [1000]
    assert tuple(machine.instance_id for machine in machines) == ids[:1000]
