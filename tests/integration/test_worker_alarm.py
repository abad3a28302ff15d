"""The per-instance idle alarm, read back from CloudWatch (moto)."""

from chalicelib import aws as clients
from tests.conftest import make_settings
from worker.alarm import ensure_idle_alarm


def test_the_idle_alarm_terminates_an_idle_instance_and_is_created_once(aws):
    cloudwatch = clients.client("cloudwatch", region="eu-west-1")
    settings = make_settings(AWS_REGION="eu-west-1")

    assert ensure_idle_alarm(cloudwatch, settings, "i-0abc") is True
    assert ensure_idle_alarm(cloudwatch, settings, "i-0abc") is False

    [alarm] = cloudwatch.describe_alarms()["MetricAlarms"]
    assert alarm["AlarmName"] == "TestApp_i-0abc"
    assert alarm["AlarmActions"] == ["arn:aws:automate:eu-west-1:ec2:terminate"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (
        "AWS/EC2", "CPUUtilization", [{"Name": "InstanceId", "Value": "i-0abc"}])
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["Period"] * alarm["EvaluationPeriods"]) == (
        1.0, "LessThanThreshold", 15 * 60)
