"""A fleet that says why it does not start: its history's errors, read on both kinds of fleet, in plain words.

AWS writes a fleet's events itself; here `record_fleet_event` (localrun/moto_patches.py) records them as AWS would,
with the sub-types and descriptions AWS uses (see chalicelib/monitor/fleet_words.py for where each comes from).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib.monitor import spot_quota
from chalicelib.monitor.fleet_history import fleet_errors
from chalicelib.monitor.fleet_words import explain, fleet_problems
from localrun.moto_patches import record_fleet_event
from tests.iam_engine import iam_enforced, policy_session

EC2_FLEET = "fleet-73fbd2ce-aa30-494c-8788-1cee4EXAMPLE"
SPOT_FLEET = "sfr-73fbd2ce-aa30-494c-8788-1cee4EXAMPLE"
BOTH = pytest.mark.parametrize("fleet_id", [EC2_FLEET, SPOT_FLEET], ids=["ec2-fleet", "spot-fleet"])
AMI = "ami-0123456789abcdef0"


@pytest.fixture
def ec2(aws):
    return boto3.client("ec2", region_name="us-east-1")


def since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=30)


@BOTH
def test_a_full_spot_quota_names_the_quota_its_value_the_vcpus_asked_and_how_to_raise_it(ec2, fleet_id):
    for _ in range(2):
        record_fleet_event(fleet_id, "spotInstanceCountLimitExceeded",
                           f"m5.xlarge, {AMI}, Linux/UNIX: Max spot instance count exceeded")
    quota = spot_quota.check(boto3.client("service-quotas", region_name="us-east-1"), ec2, ["m5.xlarge"], 2)

    assert fleet_problems(ec2, fleet_id, since(), quota=quota) == [
        "Spot vCPU quota reached (spotInstanceCountLimitExceeded, 2 times): \"All Standard (A, C, D, H, I, M, R, T, "
        "Z) Spot Instance Requests\" (L-34B43A08) is 5 vCPUs and this run asks 8 vCPUs (2 x 4). Raise it in the "
        "Service Quotas console (Amazon EC2, L-34B43A08) or with `aws service-quotas request-service-quota-increase "
        "--service-code ec2 --quota-code L-34B43A08 --desired-value 8`; other Spot machines of the account use the "
        "same quota."]
    without_check = fleet_problems(ec2, fleet_id, since())
    assert "\"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\" (L-34B43A08) is full for m5.xlarge" \
        in without_check[0]


@BOTH
@pytest.mark.parametrize("description, field, named", [
    (f"c5.xlarge, {AMI}, Linux/UNIX: The image id '[{AMI}]' does not exist", "ImageId", AMI),
    (f"c5.xlarge, {AMI}, Linux/UNIX: Value (arn:aws:iam::123456789012:role/ecsInstanceRole) for parameter "
     "iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", "IamInstanceProfile", "instance profile"),
    (f"c5.xlarge, {AMI}, Linux/UNIX: Security group sg-0abc and subnet subnet-0def belong to different networks.",
     "SecurityGroups/SubnetId", "subnets' VPC"),
])
def test_an_invalid_launch_configuration_names_the_field_to_fix_and_quotes_aws(ec2, fleet_id, description, field,
                                                                                named):
    record_fleet_event(fleet_id, "spotFleetRequestConfigurationInvalid", description)

    [line] = fleet_problems(ec2, fleet_id, since())

    assert line.startswith(f"Invalid launch configuration (spotFleetRequestConfigurationInvalid, once): {field}: ")
    assert named in line and line.endswith(f"AWS said: \"{description.split(': ', 1)[1]}\"")


@BOTH
def test_no_capacity_names_the_types_and_zones_and_says_more_types_would_help(ec2, fleet_id):
    start = since()
    record_fleet_event(fleet_id, "spotFleetRequestConfigurationInvalid",  # AWS files it so, with these words
                       f"m5.large, {AMI}, Linux/UNIX: There is no Spot capacity available that matches your request.",
                       when=start + timedelta(seconds=1))
    record_fleet_event(fleet_id, "launchSpecTemporarilyBlacklisted", f"m5.large, {AMI}, Linux/UNIX, us-east-1a, "
                       "We currently do not have sufficient m5.large capacity in the Availability Zone you requested",
                       event_type=None if fleet_id.startswith("fleet-") else "information",
                       when=start + timedelta(seconds=2))
    record_fleet_event(fleet_id, "allLaunchSpecsTemporarilyBlacklisted", "Several attempts to launch instances have "
                       "failed. Either the request could not be satisfied or the configuration is not valid.",
                       when=start + timedelta(seconds=3))

    assert fleet_problems(ec2, fleet_id, start) == [  # since the events' own start: a second since() may be past them
        "No Spot capacity (spotFleetRequestConfigurationInvalid, launchSpecTemporarilyBlacklisted, "
        "allLaunchSpecsTemporarilyBlacklisted, 3 times): AWS has no spare (or does not offer) m5.large in us-east-1a "
        "right now, and the fleet keeps trying. More instance types (MACHINE_TYPE) and subnets in more zones would "
        "help."]


@BOTH
def test_a_bid_below_the_spot_price_says_machine_price_went_to_aws_as_a_bid(ec2, fleet_id):
    record_fleet_event(fleet_id, "launchSpecUnusable", f"m5.large, {AMI}, Linux/UNIX, us-east-1b, Spot bid price is "
                       "less than Spot market price $0.0961",
                       event_type=None if fleet_id.startswith("fleet-") else "information")

    assert fleet_problems(ec2, fleet_id, since(), machine_price=0.05) == [
        "Spot price above the bid (launchSpecUnusable, once): the Spot price of m5.large in us-east-1b ($0.0961/h) is "
        "above MACHINE_PRICE ($0.05), which went to AWS as the maximum price (a bid). Raise MACHINE_PRICE, let it be "
        "only the run's cost ceiling instead of a bid, or add cheaper instance types."]


@BOTH
def test_an_unknown_code_is_shown_with_awss_words_verbatim_but_no_terminal_control(ec2, fleet_id):
    # What XML (the EC2 API's answers) can carry of a terminal's controls: the 8-bit CSI, a bidi override, a line
    # break that would forge a line of ours. (ESC and BEL cannot be in an XML 1.0 document at all.)
    record_fleet_event(fleet_id, "somethingNew\x9b2J", "Launch failed for\u202e reasons\nAll machines started.")

    assert fleet_problems(ec2, fleet_id, since()) == [
        "AWS reports somethingNew\\x9b2J, once. AWS said: \"Launch failed for\\u202e reasons All machines started.\""]


@BOTH
def test_events_before_since_and_events_that_are_not_errors_are_not_read(ec2, fleet_id):
    record_fleet_event(fleet_id, "spotInstanceCountLimitExceeded", "old", when=since() - timedelta(minutes=5))
    record_fleet_event(fleet_id, "launched", "", event_type="instance-change" if fleet_id.startswith("fleet-")
                       else "instanceChange", instance_id="i-0123456789abcdef0")
    record_fleet_event(fleet_id, "active", "", event_type="fleet-change" if fleet_id.startswith("fleet-")
                       else "fleetRequestChange")

    assert fleet_errors(ec2, fleet_id, since()) == [] and fleet_problems(ec2, fleet_id, since()) == []


@BOTH
def test_every_cause_is_one_line_most_blocking_first_and_the_reading_is_bounded(ec2, fleet_id):
    start = since()
    for n in range(6):
        record_fleet_event(fleet_id, "InsufficientInstanceCapacity", f"c5.large, {AMI}, Linux/UNIX, us-east-1c: "
                           "Insufficient capacity.", when=start + timedelta(seconds=n))
    record_fleet_event(fleet_id, "spotFleetRequestConfigurationInvalid", f"c5.large, {AMI}, Linux/UNIX: The key pair "
                       "'mine' does not exist", when=start + timedelta(seconds=10))

    lines = fleet_problems(ec2, fleet_id, start)
    assert [line.split(" (")[0] for line in lines] == ["Invalid launch configuration", "No Spot capacity"]
    assert "(InsufficientInstanceCapacity, 6 times)" in lines[1] and ": KeyName: " in lines[0]

    bounded = fleet_errors(ec2, fleet_id, start, max_pages=2, page_size=2)
    assert len(bounded) == 4 and not bounded.complete
    assert explain(bounded)[0].startswith("No Spot capacity (InsufficientInstanceCapacity, 4 times)")
    assert fleet_errors(ec2, fleet_id, start).complete


@pytest.mark.usefixtures("aws")
@BOTH
def test_a_history_the_caller_may_not_read_is_one_line_not_an_error(fleet_id):
    record_fleet_event(fleet_id, "spotInstanceCountLimitExceeded", "Max spot instance count exceeded")
    with iam_enforced():
        ec2 = policy_session({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]}).client("ec2")
        lines = fleet_problems(ec2, fleet_id, since())

    assert lines == [f"Could not read the history of fleet {fleet_id} (UnauthorizedOperation); see it in the EC2 "
                     "console (Spot Requests, or EC2 Fleets)."]
