"""What the monitor believes of a run record: only what AWS confirms (DESIGN.md "Trust boundary").

A record is data in a bucket. Before the monitor acts on a run, the record must
name exactly what start-cluster derives from its APP_NAME (service, task family,
alarms, dashboard, keys), and every live resource it would scale or delete must
carry the run's tag (`names.RUN_TAG` = APP_NAME). A run that fails either check
is refused: nothing of it is touched, and status shows why.
"""

from __future__ import annotations

from chalicelib.model import names
from chalicelib.monitor.runrecord import RunRecord


def record_problem(record: RunRecord, bucket: str, key: str) -> str | None:
    """Why the record is not what start-cluster writes for its APP_NAME, or None. Pure."""
    app = record.MONITOR_APP_NAME
    expected = {
        "MONITOR_FILE_KEY": names.record_key(app),
        "MONITOR_BUCKET_NAME": bucket,
        "SERVICE_NAME": app + "Service",
        "TASK_FAMILY": app + "Task",
        "INSTANCE_ALARM_PREFIX": names.instance_alarm_prefix(app),
        "PER_INSTANCE_LOG_GROUP": record.MONITOR_LOG_GROUP_NAME + "_perInstance",
        "EXPORTED_LOGS_PREFIX": f"exportedlogs/{record.MONITOR_LOG_GROUP_NAME}/",
        "ECS_CONFIG_KEY": f"ecsconfigs/{app}_ecs.config",
        "INSTANCE_NAME_TAG": app + "Worker",
    }
    if key != names.record_key(app):
        return f"found at {key}, but a record of run {app!r} lives at {names.record_key(app)}"
    for field, value in expected.items():
        if getattr(record, field) != value:
            return f"{field} is {getattr(record, field)!r}, but run {app!r} would have {value!r}"
    alarms = {names.queue_alarm_name(kind, app) for kind in ("visible", "not_visible")}
    if not set(record.ALARM_NAMES) <= alarms:
        return f"ALARM_NAMES {list(record.ALARM_NAMES)} are not run {app!r}'s queue alarms"
    if record.DASHBOARD_NAME not in (None, app):
        return f"DASHBOARD_NAME is {record.DASHBOARD_NAME!r}, but run {app!r} would have {app!r}"
    if record.QUEUE_URL.rstrip("/").rsplit("/", 1)[-1] != record.MONITOR_QUEUE_NAME:
        return f"QUEUE_URL {record.QUEUE_URL!r} is not the URL of queue {record.MONITOR_QUEUE_NAME!r}"
    return None


def tag_problem(kind: str, name: str, tags: dict[str, str], app: str) -> str | None:
    """Why a live resource is not provably the run's, or None."""
    owner = tags.get(names.RUN_TAG)
    if owner == app:
        return None
    if owner is None:
        return (f"{kind} {name} does not carry the tag {names.RUN_TAG}={app} (a run started before tagging: "
                f"run 'python cli.py setup' for it again to tag it)")
    return f"{kind} {name} belongs to run {owner!r} (tag {names.RUN_TAG}), not to {app!r}"
