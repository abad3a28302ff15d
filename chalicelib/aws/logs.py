"""CloudWatch Logs, by intent: log groups and streams made, export tasks started and followed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_logs import CloudWatchLogsClient

# Creating what exists: the group or stream is there, which is all the caller wanted.
_EXISTS = "ResourceAlreadyExistsException"


def log_group_tags(logs: CloudWatchLogsClient, name: str) -> dict[str, str] | None:
    """The log group's tags, or None when it does not exist."""
    try:
        return logs.list_tags_log_group(logGroupName=name).get("tags", {})
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise


def export_task_code(logs: CloudWatchLogsClient, task_id: str) -> str | None:
    """An export task's status code (PENDING, RUNNING, COMPLETED, FAILED, ...), or None when AWS has no such task."""
    try:
        tasks = logs.describe_export_tasks(taskId=task_id)["exportTasks"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    return tasks[0]["status"]["code"] if tasks else None


def export_running_in_account(logs: CloudWatchLogsClient) -> bool:
    """AWS runs one export task per account at a time: is one pending or running now (anyone's)?"""
    for code in ("PENDING", "RUNNING"):
        pages = logs.get_paginator("describe_export_tasks").paginate(statusCode=code)
        # filtered again here: moto ignores statusCode and returns every task
        if any(task.get("status", {}).get("code") == code for page in pages for task in page.get("exportTasks", ())):
            return True
    return False


def start_export(logs: CloudWatchLogsClient, task_name: str, group: str, from_ms: int, to_ms: int, bucket: str,
                 prefix: str) -> str:
    """Start an export of the group's events in [from_ms, to_ms] to s3://bucket/prefix; its task id."""
    return logs.create_export_task(taskName=task_name, logGroupName=group, fromTime=from_ms, to=to_ms,
                                   destination=bucket, destinationPrefix=prefix)["taskId"]


def ensure_log_group(logs: CloudWatchLogsClient, name: str) -> None:
    try:
        logs.create_log_group(logGroupName=name)
    except ClientError as error:
        if error_code(error) != _EXISTS:
            raise


def ensure_log_stream(logs: CloudWatchLogsClient, group: str, stream: str) -> None:
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except ClientError as error:
        if error_code(error) != _EXISTS:
            raise
