"""The per-instance idle alarm, as DS has: terminate a machine idle for 15 minutes.

A machine whose workers found nothing to do (or hung) costs money until the
monitor notices; this alarm lets EC2 itself terminate it. Named
APP_NAME_<instance-id> (the monitor deletes these at teardown), with the
current action ARN arn:aws:automate:REGION:ec2:terminate (DS uses the retired
SWF-style ARN). Created only on EC2, once per instance: every worker container
on the machine may try, and the first one wins.
"""

from __future__ import annotations

import logging

from chalicelib import names
from chalicelib.aws import error_code
from chalicelib.settings import Settings

log = logging.getLogger("worker.alarm")

IDLE_CPU_PERCENT = 1.0
IDLE_MINUTES = 15


def ensure_idle_alarm(cloudwatch, settings: Settings, instance_id: str) -> bool:
    """Create the alarm unless it exists; True when this call created it."""
    name = names.idle_alarm(settings.APP_NAME, instance_id)
    try:
        if cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
            return False
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"Terminate {instance_id} of {settings.APP_NAME} after {IDLE_MINUTES} min of CPU "
                             f"under {IDLE_CPU_PERCENT:g} %",
            Namespace="AWS/EC2", MetricName="CPUUtilization", Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
            Statistic="Maximum", Period=60, EvaluationPeriods=IDLE_MINUTES, Threshold=IDLE_CPU_PERCENT,
            ComparisonOperator="LessThanThreshold",
            # A stopped metric (the instance is gone) must not keep the alarm firing.
            TreatMissingData="notBreaching",
            AlarmActions=[f"arn:aws:automate:{settings.AWS_REGION}:ec2:terminate"],
        )
    except Exception as error:  # noqa: BLE001 - the alarm is a safety net, not a reason to stop working
        log.warning("could not create the idle alarm %s (%s)", name, error_code(error) or error)
        return False
    log.info("created idle alarm %s: terminate after %d min of CPU under %g %%", name, IDLE_MINUTES, IDLE_CPU_PERCENT)
    return True
