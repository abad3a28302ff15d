"""CloudWatch, by intent: alarms (found, made, deleted) and dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import DASHBOARD_MISSING, error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import PutMetricAlarmInputTypeDef

# DeleteAlarms takes at most 100 names a call (CloudWatch API Reference, DeleteAlarms: AlarmNames).
MAX_DELETE_ALARMS = 100


def alarm_names(cloudwatch: CloudWatchClient, prefix: str = "", names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Names of existing alarms that start with `prefix` (none when it is ''), plus those of `names` that exist."""
    found: set[str] = set()
    paginator = cloudwatch.get_paginator("describe_alarms")
    if prefix:
        found.update(alarm["AlarmName"] for page in paginator.paginate(AlarmNamePrefix=prefix)
                     for alarm in page["MetricAlarms"])
    if names:
        found.update(alarm["AlarmName"] for page in paginator.paginate(AlarmNames=list(names))
                     for alarm in page["MetricAlarms"])
    return tuple(sorted(found))


def dashboard_exists(cloudwatch: CloudWatchClient, name: str) -> bool:
    try:
        cloudwatch.get_dashboard(DashboardName=name)
    except ClientError as error:
        if error_code(error) in DASHBOARD_MISSING:
            return False
        raise
    return True


def put_alarm(cloudwatch: CloudWatchClient, request: PutMetricAlarmInputTypeDef) -> None:
    """Make (or replace) one alarm: PutMetricAlarm makes one a call."""
    cloudwatch.put_metric_alarm(**request)


def delete_alarms(cloudwatch: CloudWatchClient, names: Sequence[str]) -> None:
    for start in range(0, len(names), MAX_DELETE_ALARMS):
        cloudwatch.delete_alarms(AlarmNames=list(names[start:start + MAX_DELETE_ALARMS]))


def delete_dashboard(cloudwatch: CloudWatchClient, name: str) -> None:
    cloudwatch.delete_dashboards(DashboardNames=[name])
