"""Every AWS name derived from the settings, in one place (DESIGN.md "Fixed names").

Settings already derive the ECS family, service and per-instance log group;
the names here belong to a run's other resources. The monitor never
recomputes them: start-cluster writes each one into the run record.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names are derived from settings; settings check prefixes against RESERVED_PREFIXES
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

    from chalicelib.model.settings import Settings

MONITOR_TOPIC = "Monitor"
# app.py's (and .chalice/config.json's) app_name: Chalice names the monitor's functions
# (MONITOR_APP-STAGE-HANDLER), their log groups and the status API after it.
MONITOR_APP = "ds-runner-monitor"
LOG_RETENTION_DAYS = 60  # DS's retention for both log groups
QUEUE_RETENTION_SECONDS = 1_209_600  # 14 days, SQS's maximum
# Every resource setup and start-cluster create carries RUN_TAG = APP_NAME: the monitor acts only on what
# carries its run's tag (or, where AWS has no tags, the exact name derived from APP_NAME), and a crashed
# start-cluster finds its fleet again by it.
RUN_TAG = "dsr:app"
# Every job message carries its run's APP_NAME as this SQS message attribute, which SQS keeps when it moves
# the message to a dead-letter queue. Its sender sets it (any job may send to its own queue), so it proves
# nothing: whose a dead-letter message is, SQS's own stamp says (chalicelib/monitor/deadletters.py). SQS counts an
# attribute's name, type and value toward the 256 KiB message limit.
RUN_ATTRIBUTE = "dsr-app"
RUN_ATTRIBUTE_BYTES = len(RUN_ATTRIBUTE) + len("String") + 75  # 75: APP_NAME's longest


def run_attributes(app_name: str) -> dict[str, MessageAttributeValueTypeDef]:
    """The MessageAttributes of one of the run's job messages."""
    return {RUN_ATTRIBUTE: {"DataType": "String", "StringValue": app_name}}

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


_QUEUE_ALARM_PREFIXES = {"visible": "ApproximateNumberOfMessagesVisibleisZero_",
                         "not_visible": "ApproximateNumberOfMessagesNotVisibleisZero_"}


def queue_alarm_name(kind: str, app_name: str) -> str:
    return _QUEUE_ALARM_PREFIXES[kind] + app_name


def visible_alarm(settings: Settings) -> str:
    return queue_alarm_name("visible", settings.APP_NAME)


def not_visible_alarm(settings: Settings) -> str:
    return queue_alarm_name("not_visible", settings.APP_NAME)


def dashboard(settings: Settings) -> str:
    return settings.APP_NAME


def instance_name_tag(settings: Settings) -> str:
    return settings.APP_NAME + "Worker"


def ecs_config_key(settings: Settings) -> str:
    return f"ecsconfigs/{settings.APP_NAME}_ecs.config"


def launch_template(settings: Settings) -> str:
    """The run's EC2 launch template: a spot fleet's LaunchSpecifications cannot carry MetadataOptions."""
    return settings.APP_NAME + "LaunchTemplate"


# The machine's boot script writes what a container may know of its host here (the instance id); the task
# definition mounts the folder read-only at CONTAINER_HOST_DIR, so no container needs the metadata service.
HOST_INFO_DIR = "/var/lib/dsr/host"
CONTAINER_HOST_DIR = "/etc/dsr/host"
INSTANCE_ID_FILE = "instance-id"


MONITORS_PREFIX = "monitors/"
# Files a run's workers write besides outputs: busy leases and failure records, under RUN_FILES_PREFIX/APP_NAME/.
# Outside monitors/, so the task role can write them without any right on what the monitor trusts.
RUN_FILES_PREFIX = "runs/"
# Prefixes no job may write, whatever OUTPUT_PREFIX says (the task role denies them explicitly).
RESERVED_PREFIXES = (MONITORS_PREFIX, "exportedlogs/", "ecsconfigs/", RUN_FILES_PREFIX)
RECORD_SUFFIX = "SpotFleetRequestId.json"  # DS's monitor file name: APP_NAME + this


def monitor_file_name(settings: Settings) -> str:
    return settings.APP_NAME + RECORD_SUFFIX


def record_key(app_name: str) -> str:
    """The run record's key; the monitor knows runs by APP_NAME alone (it has no config.json)."""
    return MONITORS_PREFIX + app_name + RECORD_SUFFIX


# Finished runs' summaries: a folder, so the monitor's delimited listing of monitors/ (every tick) shows it as one
# common prefix however many runs a lab has finished, never its contents.
FINISHED_PREFIX = f"{MONITORS_PREFIX}finished/"


def summary_key(app_name: str) -> str:
    """What teardown leaves of a run: its figures (monitor/plan.py `summary`)."""
    return f"{FINISHED_PREFIX}{app_name}_summary.json"


def earlier_summary_key(app_name: str) -> str:
    """Where versions before FINISHED_PREFIX wrote the summary; their runs' summaries stay there, still read."""
    return f"{MONITORS_PREFIX}{app_name}_summary.json"


def monitor_state_key(app_name: str) -> str:
    """The monitor's own bookkeeping for a run, beside its record (removed with it)."""
    return f"{MONITORS_PREFIX}{app_name}_monitorstate.json"


def status_key(app_name: str) -> str:
    """The run's status as the monitor's last tick saw it (what GET /runs serves), beside its record (removed with
    it). Not ending in RECORD_SUFFIX: the scan never takes it for a record."""
    return f"{MONITORS_PREFIX}{app_name}_status.json"


# Every run's status document in one object per bucket, so GET /runs reads one object instead of one a run
# (chalicelib/monitor/status_index.py). In a folder of its own: the delimited listing of monitors/ never shows it.
STATUS_INDEX_KEY = f"{MONITORS_PREFIX}index/statuses.json"


def claim_key(app_name: str) -> str:
    """start-cluster's claim on a run (an S3 conditional write): one fleet per run even when two start at once."""
    return f"{MONITORS_PREFIX}{app_name}_claim.json"


def run_files_prefix(app_name: str) -> str:
    """Everything a run's workers may write besides outputs; '/' ends it, so run 'A' never matches run 'AB'."""
    return f"{RUN_FILES_PREFIX}{app_name}/"


def leases_prefix(app_name: str) -> str:
    return run_files_prefix(app_name) + "leases/"


def failures_prefix(app_name: str) -> str:
    return run_files_prefix(app_name) + "failures/"


def failure_journal_prefix(app_name: str) -> str:
    """Where each failure record's write and removal is noted in time order (chalicelib/runfiles/failure_journal.py)."""
    return run_files_prefix(app_name) + "failure-journal/"


def sent_back_prefix(app_name: str) -> str:
    """Where `redrive` notes each failed message it has sent back to the queue, by message id
    (chalicelib/monitor/sent_back.py)."""
    return run_files_prefix(app_name) + "sent-back/"


def failure_key(app_name: str, job_id: str) -> str:
    """A job's failure record, written by the worker when its last attempt fails (per run, even with a shared
    dead-letter queue)."""
    return f"{failures_prefix(app_name)}{job_id}.json"


# Hadoop's convention: a worker puts OUTPUT_PREFIX/_SUCCESS after the last of a job's outputs, so outputs without
# it are an upload that never finished (worker/done.py); every output it uploads carries the user metadata
# OUTPUT_METADATA_KEY (x-amz-meta-dsr-job: the job id), which tells its outputs from DS's or a user's own.
SUCCESS_MARKER = "_SUCCESS"
OUTPUT_METADATA_KEY = "dsr-job"


def success_marker_key(output_prefix: str) -> str:
    return f"{output_prefix}/{SUCCESS_MARKER}"


def instance_alarm_prefix(app_name: str) -> str:
    """Each machine's idle alarm is this + its instance id (DS's name)."""
    return app_name + "_"


# What an APP_NAME may not hold, so that no run's derived alarm name is, or starts like, another run's: a
# machine's alarm is APP_NAME_i-<hex>, so with "_i-" in no APP_NAME the part before the one "_i-" of such a
# name is its run, and with no APP_NAME starting "i-" no queue alarm (PREFIX_APP_NAME) has that shape either
# (run "i-0abc"'s queue alarm would be run "ApproximateNumberOfMessagesVisibleisZero"'s machine alarm).
INSTANCE_ID_START = "i-"
INSTANCE_ALARM_MARK = "_" + INSTANCE_ID_START


def app_name_collides(app_name: str) -> bool:
    return app_name.startswith(INSTANCE_ID_START) or INSTANCE_ALARM_MARK in app_name


def idle_alarm(app_name: str, instance_id: str) -> str:
    return instance_alarm_prefix(app_name) + instance_id


def instance_alarm_pattern(app_name: str) -> re.Pattern[str]:
    """Exactly APP_NAME_<instance id>: run 'Run' never matches run 'Run_i-x''s alarms."""
    return re.compile(re.escape(app_name) + r"_(i-[0-9a-f]+)")


def exported_logs_prefix(settings: Settings) -> str:
    return f"exportedlogs/{settings.LOG_GROUP_NAME}/"


def exported_group_prefix(exported_logs: str, group: str) -> str:
    """Where the teardown's export of one log group goes, under the run's EXPORTED_LOGS_PREFIX."""
    return exported_logs.rstrip("/") + "/" + group.strip("/")
