"""Every AWS name derived from the settings, in one place (DESIGN.md "Fixed names").

Settings already derive the ECS family, service and per-instance log group;
the names here belong to a run's other resources. The monitor (issue #6) never
recomputes them: start-cluster writes each one into the run record.
"""

from __future__ import annotations

import hashlib

from chalicelib.settings import Settings

MONITOR_TOPIC = "Monitor"
LOG_RETENTION_DAYS = 60  # DS's retention for both log groups
QUEUE_RETENTION_SECONDS = 1_209_600  # 14 days, SQS's maximum
FLEET_APP_TAG = "dsr:app"  # on the spot fleet request, so a crashed start-cluster can find its fleet again

# Account-wide IAM names: one instance role/profile and one fleet role serve every run.
INSTANCE_ROLE = "dsr-ecs-instance-role"
INSTANCE_PROFILE = INSTANCE_ROLE
FLEET_ROLE = "dsr-spot-fleet-role"
_IAM_NAME_LIMIT = 64


def task_role(settings: Settings) -> str:
    """The worker's role: per APP_NAME because it is scoped to the run's queue, bucket and log group."""
    name = settings.APP_NAME + "-task-role"
    if len(name) <= _IAM_NAME_LIMIT:
        return name
    digest = hashlib.sha1(settings.APP_NAME.encode()).hexdigest()[:6]
    return settings.APP_NAME[: _IAM_NAME_LIMIT - len("-task-role") - 7] + "-" + digest + "-task-role"


def visible_alarm(settings: Settings) -> str:
    return "ApproximateNumberOfMessagesVisibleisZero_" + settings.APP_NAME


def not_visible_alarm(settings: Settings) -> str:
    return "ApproximateNumberOfMessagesNotVisibleisZero_" + settings.APP_NAME


def dashboard(settings: Settings) -> str:
    return settings.APP_NAME


def instance_name_tag(settings: Settings) -> str:
    return settings.APP_NAME + "Worker"


def ecs_config_key(settings: Settings) -> str:
    return f"ecsconfigs/{settings.APP_NAME}_ecs.config"


MONITORS_PREFIX = "monitors/"
RECORD_SUFFIX = "SpotFleetRequestId.json"  # DS's monitor file name: APP_NAME + this


def monitor_file_name(settings: Settings) -> str:
    return settings.APP_NAME + RECORD_SUFFIX


def record_key(app_name: str) -> str:
    """The run record's key; the monitor knows runs by APP_NAME alone (it has no config.json)."""
    return MONITORS_PREFIX + app_name + RECORD_SUFFIX


def summary_key(app_name: str) -> str:
    """What teardown leaves of a run: its figures (monitor/plan.py `summary`)."""
    return f"{MONITORS_PREFIX}{app_name}_summary.json"


def monitor_state_key(app_name: str) -> str:
    """The monitor's own bookkeeping for a run, beside its record (removed with it)."""
    return f"{MONITORS_PREFIX}{app_name}_monitorstate.json"


def monitor_key(settings: Settings) -> str:
    return record_key(settings.APP_NAME)


def exported_logs_prefix(settings: Settings) -> str:
    return f"exportedlogs/{settings.LOG_GROUP_NAME}/"
