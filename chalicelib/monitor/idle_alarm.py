"""The per-machine idle alarm, as DS has: EC2 terminates a machine idle for 15 minutes. Pure.

A machine whose workers found nothing to do (or hung) costs money until the
monitor notices; this alarm lets EC2 itself terminate it. DS's workers made it
with their own rights; here the monitor makes it (monitor/plan.py
`CreateIdleAlarms`) for each machine of the run it sees, tagged with the run's
tag, because whoever may make an alarm may terminate any instance of the
account: AWS carries out an alarm's EC2 action with CloudWatch's own
service-linked role, and nothing limits an alarm's dimensions. So a job gets no
alarm rights at all. Named APP_NAME_<instance-id> (DS's name), with the current
action ARN arn:aws:automate:REGION:ec2:terminate (DS uses the retired SWF-style
ARN).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chalicelib.model import names

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_cloudwatch.type_defs import PutMetricAlarmInputTypeDef

IDLE_CPU_PERCENT = 1.0
IDLE_MINUTES = 15
# EC2's instance ids: only these get an alarm, so a name is always exactly names.instance_alarm_pattern's
INSTANCE_ID = re.compile(r"i-[0-9a-f]+")


def terminate_action(region: str) -> str:
    return f"arn:aws:automate:{region}:ec2:terminate"


def idle_alarm_request(app_name: str, region: str, instance_id: str) -> PutMetricAlarmInputTypeDef:
    """PutMetricAlarm's arguments for one machine's idle alarm, carrying the run's tag (which AWS applies only
    when it creates the alarm, and which needs cloudwatch:TagResource besides cloudwatch:PutMetricAlarm)."""
    if not INSTANCE_ID.fullmatch(instance_id):
        raise ValueError(f"not an EC2 instance id: {instance_id!r}")
    return {
        "AlarmName": names.idle_alarm(app_name, instance_id),
        "AlarmDescription": f"Terminate {instance_id} of {app_name} after {IDLE_MINUTES} min of CPU under "
                            f"{IDLE_CPU_PERCENT:g} %",
        "Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
        "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": IDLE_MINUTES, "Threshold": IDLE_CPU_PERCENT,
        "ComparisonOperator": "LessThanThreshold",
        # A stopped metric (the instance is gone) must not keep the alarm firing.
        "TreatMissingData": "notBreaching",
        "AlarmActions": [terminate_action(region)],
        "Tags": [{"Key": names.RUN_TAG, "Value": app_name}],
    }
