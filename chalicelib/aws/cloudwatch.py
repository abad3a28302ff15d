"""CloudWatch, by intent: alarms (found, made, deleted) and dashboards (read, deleted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import DASHBOARD_MISSING, error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricAlarmTypeDef, PutMetricAlarmInputTypeDef

# DeleteAlarms takes at most 100 names a call (CloudWatch API Reference, DeleteAlarms: AlarmNames).
MAX_DELETE_ALARMS = 100


def metric_alarms(cloudwatch: CloudWatchClient, prefix: str = "",
                  names: tuple[str, ...] = ()) -> tuple[MetricAlarmTypeDef, ...]:
    """Existing metric alarms whose names start with `prefix` (none when it is ''), plus those of `names` that
    exist; each once, sorted by name. Every page of DescribeAlarms."""
    found: dict[str, MetricAlarmTypeDef] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")
    if prefix:
        found.update((alarm["AlarmName"], alarm) for page in paginator.paginate(AlarmNamePrefix=prefix)
                     for alarm in page["MetricAlarms"])
    if names:
        found.update((alarm["AlarmName"], alarm) for page in paginator.paginate(AlarmNames=list(names))
                     for alarm in page["MetricAlarms"])
    return tuple(found[name] for name in sorted(found))


def alarm_names(cloudwatch: CloudWatchClient, prefix: str = "", names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Names of existing alarms that start with `prefix` (none when it is ''), plus those of `names` that exist."""
    return tuple(alarm["AlarmName"] for alarm in metric_alarms(cloudwatch, prefix, names))


def dashboard_json(cloudwatch: CloudWatchClient, name: str) -> str | None:
    """The dashboard's JSON body, or None when there is no such dashboard."""
    try:
        return cloudwatch.get_dashboard(DashboardName=name).get("DashboardBody", "")
    except ClientError as error:
        if error_code(error) in DASHBOARD_MISSING:
            return None
        raise


def dashboard_exists(cloudwatch: CloudWatchClient, name: str) -> bool:
    return dashboard_json(cloudwatch, name) is not None


def put_alarm(cloudwatch: CloudWatchClient, request: PutMetricAlarmInputTypeDef) -> None:
    """Make (or replace) one alarm: PutMetricAlarm makes one a call."""
    cloudwatch.put_metric_alarm(**request)


def delete_alarms(cloudwatch: CloudWatchClient, names: Sequence[str]) -> None:
    for start in range(0, len(names), MAX_DELETE_ALARMS):
        cloudwatch.delete_alarms(AlarmNames=list(names[start:start + MAX_DELETE_ALARMS]))


def delete_dashboard(cloudwatch: CloudWatchClient, name: str) -> None:
    cloudwatch.delete_dashboards(DashboardNames=[name])
