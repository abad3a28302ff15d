"""The run's CloudWatch dashboard and queue alarms, built from the run record.

Bodies are pure functions of the record, so the monitor can rebuild or compare
them without config.json; `ensure_*` write only when AWS differs, which keeps
a re-run of start-cluster free of writes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.aws.cloudwatch import dashboard_json, metric_alarms
from chalicelib.model.names import RUN_TAG
from chalicelib.monitor.runrecord import RunRecord

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_cloudwatch import CloudWatchClient

PERIOD = 300  # seconds; SQS publishes queue metrics every 5 minutes, so alarms cannot usefully be finer


def dashboard_body(record: RunRecord) -> dict[str, Any]:
    """DS's widgets: fleet capacity, ECS memory and CPU, queue depth, throughput, log queries."""
    region, queue, cluster, service = (record.REGION, record.MONITOR_QUEUE_NAME, record.MONITOR_ECS_CLUSTER,
                                       record.SERVICE_NAME)
    logs = record.MONITOR_LOG_GROUP_NAME

    def metric(title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Average",
               **extra: Any) -> dict[str, Any]:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": "timeSeries", "stat": stat,
                               "period": PERIOD, "metrics": metrics, **extra}}

    def log(title: str, query: str, x: int, y: int, view: str = "table") -> dict[str, Any]:
        return {"type": "log", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": view, "query": f"SOURCE '{logs}' | {query}"}}

    return {"widgets": [
        metric("Fleet capacity (machines)", [
            ["AWS/EC2Spot", "TargetCapacity", "FleetRequestId", record.MONITOR_FLEET_ID],
            ["AWS/EC2Spot", "FulfilledCapacity", "FleetRequestId", record.MONITOR_FLEET_ID]], 0, 0, "Maximum"),
        metric("ECS memory utilization (%)", [
            ["AWS/ECS", "MemoryUtilization", "ClusterName", cluster, "ServiceName", service]], 12, 0),
        metric("ECS CPU utilization (%)", [
            ["AWS/ECS", "CPUUtilization", "ClusterName", cluster, "ServiceName", service]], 0, 6),
        metric("Jobs: waiting, running, dead-letter", [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue, {"label": "waiting"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", queue, {"label": "running"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", record.DEAD_LETTER_QUEUE_NAME,
             {"label": "dead-letter"}]], 12, 6, "Maximum", stacked=True),
        metric("Messages received and deleted", [
            ["AWS/SQS", "NumberOfMessagesReceived", "QueueName", queue],
            ["AWS/SQS", "NumberOfMessagesDeleted", "QueueName", queue]], 0, 12, "Sum"),
        # The worker writes one stream per job (named by its id) with a "started:" line per attempt
        # and a "succeeded:" / "failed:" line per outcome (worker/worker.py).
        log("Job attempts and outcomes", "filter @message like /^(started|succeeded|failed): / "
            "| parse @message /^(?<outcome>started|succeeded|failed): / "
            "| stats count(*) by outcome, bin(5m)", 12, 12, "timeSeries"),
        log("Distinct jobs run", "filter @message like /^started: / | stats count_distinct(@logStream) as jobs", 0, 18),
        log("Failed attempts", "fields @timestamp, @logStream, @message | filter @message like /^failed: / "
            "| sort @timestamp desc | limit 100", 12, 18),
    ]}


def ensure_dashboard(cloudwatch: CloudWatchClient, name: str, body: dict[str, Any]) -> str:
    found = dashboard_json(cloudwatch, name)
    current = None if found is None else json.loads(found)
    if current == body:
        return "unchanged"
    cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
    return "created" if current is None else "updated"


def queue_alarms(record: RunRecord, visible_name: str, not_visible_name: str) -> list[dict[str, Any]]:
    """put_metric_alarm arguments: fire when the job queue has nothing waiting / nothing in flight.

    The dimension is the real queue name (DS hard-codes APP_NAME + "Queue", so
    its alarms never fire for a renamed queue).
    """
    def alarm(name: str, metric: str) -> dict[str, Any]:
        return {"AlarmName": name, "ActionsEnabled": True, "AlarmActions": [record.TOPIC_ARN],
                "MetricName": metric, "Namespace": "AWS/SQS", "Statistic": "Average",
                "Dimensions": [{"Name": "QueueName", "Value": record.MONITOR_QUEUE_NAME}],
                "Period": PERIOD, "EvaluationPeriods": 1, "Threshold": 0.0,
                "ComparisonOperator": "LessThanOrEqualToThreshold", "TreatMissingData": "missing",
                "Tags": [{"Key": RUN_TAG, "Value": record.MONITOR_APP_NAME}]}

    return [alarm(visible_name, "ApproximateNumberOfMessagesVisible"),
            alarm(not_visible_name, "ApproximateNumberOfMessagesNotVisible")]


def ensure_alarm(cloudwatch: CloudWatchClient, wanted: dict[str, Any]) -> str:
    found = metric_alarms(cloudwatch, names=(wanted["AlarmName"],))
    # Tags are not part of an alarm's description (and AWS applies them only when it creates the alarm)
    if found and all(found[0].get(key) == value for key, value in wanted.items() if key != "Tags"):
        return "unchanged"
    cloudwatch.put_metric_alarm(**wanted)
    return "updated" if found else "created"
