"""The run record ("monitor file"): everything needed to watch, scale and tear down a run.

start-cluster writes it as JSON to `s3://AWS_BUCKET/monitors/APP_NAMESpotFleetRequestId.json`
and to `files/APP_NAMESpotFleetRequestId.json`. The monitor Lambda has no
config.json, so the record names every resource of the run itself; nothing
is recomputed from APP_NAME on the other side.

Keys are upper case like DS's. DS's own keys keep their names and meanings:

| key | meaning |
|---|---|
| MONITOR_FLEET_ID | spot fleet request id |
| MONITOR_APP_NAME | APP_NAME |
| MONITOR_ECS_CLUSTER | ECS cluster name |
| MONITOR_QUEUE_NAME | job queue name |
| MONITOR_BUCKET_NAME | AWS_BUCKET |
| MONITOR_LOG_GROUP_NAME | the per-job log group (LOG_GROUP_NAME) |
| MONITOR_START_TIME | run start, milliseconds since the epoch (DS wrote a string; both are read) |
| CLEAN_DASHBOARD | delete the dashboard at teardown |

and the keys this project adds are documented on the fields of `RunRecord`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.aws.s3 import put_object, read_object

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

RECORD_VERSION = 1
_OPTIONAL_KEYS = {"VERSION", "MAX_RUN_HOURS", "MAX_RUN_COST", "STOP_AFTER_FAILED_JOBS", "STOP_IF_NO_JOB_STARTS_MINUTES",
                  "DS_IMAGE_MODE"}


@dataclass(frozen=True)
class RunRecord:
    # ---- DS's keys
    MONITOR_FLEET_ID: str
    MONITOR_APP_NAME: str
    MONITOR_ECS_CLUSTER: str
    MONITOR_QUEUE_NAME: str
    MONITOR_BUCKET_NAME: str
    MONITOR_LOG_GROUP_NAME: str
    MONITOR_START_TIME: int
    CLEAN_DASHBOARD: bool
    # ---- where things are
    REGION: str
    QUEUE_URL: str
    DEAD_LETTER_QUEUE_NAME: str
    DEAD_LETTER_QUEUE_URL: str
    SERVICE_NAME: str  # ECS service in MONITOR_ECS_CLUSTER; scaled to 0 at teardown
    TASK_FAMILY: str
    TASK_DEFINITION_ARN: str  # the revision the service runs
    PER_INSTANCE_LOG_GROUP: str  # container output (awslogs), exported at teardown with the job logs
    EXPORTED_LOGS_PREFIX: str  # s3 key prefix in MONITOR_BUCKET_NAME for exported logs
    TOPIC_ARN: str  # the SNS topic the queue alarms notify ("" when AUTO_MONITOR is off)
    ALARM_NAMES: tuple[str, ...]  # queue alarms this run created (empty when AUTO_MONITOR is off)
    INSTANCE_ALARM_PREFIX: str  # per-instance alarms are INSTANCE_ALARM_PREFIX + instance id
    DASHBOARD_NAME: str | None  # None when CREATE_DASHBOARD is off
    ECS_CONFIG_KEY: str  # s3 key of the ECS agent config in MONITOR_BUCKET_NAME
    MONITOR_FILE_KEY: str  # s3 key of this record; removed when teardown has finished
    INSTANCE_NAME_TAG: str  # value of the Name tag on the fleet's instances
    # ---- sizing, for scaling down as the queue drains
    CLUSTER_MACHINES: int  # the fleet's target capacity at start
    TASKS_PER_MACHINE: int
    DOCKER_CORES: int  # jobs at once per task
    MACHINE_TYPE: tuple[str, ...]
    MACHINE_PRICE: float  # USD per machine-hour, the fleet's SpotPrice
    CHEAPEST: bool  # DS's cheapest mode: shrink the fleet to one machine after 15 minutes
    AUTO_MONITOR: bool
    JOBS_AT_START: int | None  # ApproximateNumberOfMessages when the run started, None if unknown
    # ---- safety stops (settings of the same names); None: no limit. Defaults keep older records readable.
    MAX_RUN_HOURS: float | None = None
    MAX_RUN_COST: float | None = None
    STOP_AFTER_FAILED_JOBS: int | None = None
    STOP_IF_NO_JOB_STARTS_MINUTES: float | None = None
    # ---- DS image mode (COMMAND null): the image runs its own worker, which writes no failure record, so the
    # run's failed jobs are its messages in DEAD_LETTER_QUEUE_URL (GET /runs/{app}/failed reads them there).
    # A record without the key (written before it, or by `adopt`) reads as false: the API then lists the run's
    # failure records, as it did before.
    DS_IMAGE_MODE: bool = False
    VERSION: int = RECORD_VERSION

    @property
    def desired_tasks(self) -> int:
        return self.CLUSTER_MACHINES * self.TASKS_PER_MACHINE

    def to_json(self) -> str:
        return json.dumps(self._plain(), indent=2, sort_keys=False) + "\n"

    def _plain(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, raw: Any) -> RunRecord:
        if not isinstance(raw, dict):
            raise ValueError("run record: expected a JSON object")
        fields = {item.name for item in dataclasses.fields(cls)}
        missing = sorted(name for name in fields - set(raw) if name not in _OPTIONAL_KEYS)
        if missing:
            raise ValueError(f"run record: missing keys {', '.join(missing)}")
        values = {key: value for key, value in raw.items() if key in fields}
        start = values["MONITOR_START_TIME"]
        if isinstance(start, str) and start.strip().isdigit():
            values["MONITOR_START_TIME"] = int(start)  # DS wrote a string
        for key in ("CLEAN_DASHBOARD", "CHEAPEST", "AUTO_MONITOR"):
            value = values[key]
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                values[key] = value.strip().lower() == "true"
        for item in dataclasses.fields(cls):
            if item.name in values:
                # the annotation's text: this module's annotations are strings (`from __future__ import annotations`)
                values[item.name] = _typed(item.name, str(item.type), values[item.name])
        return cls(**values)


# Field annotation -> what JSON must hold there. A record is data from a bucket: a wrong type is refused on
# reading, never met later as a TypeError in the middle of a reconcile.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda value: isinstance(value, str), "a string"),
    "int": (lambda value: isinstance(value, int) and not isinstance(value, bool), "an integer"),
    "float": (lambda value: isinstance(value, (int, float)) and not isinstance(value, bool), "a number"),
    "bool": (lambda value: isinstance(value, bool), "true or false"),
}


def _typed(name: str, annotation: str, value: Any) -> Any:
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None and optional:
        return None
    if base == "tuple[str, ...]":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"run record: {name}: expected a list of strings")
    check, expected = _CHECKS[base]
    if not check(value):
        raise ValueError(f"run record: {name}: expected {expected}{' or null' if optional else ''}")
    return value


def write_local(record: RunRecord, folder: str | Path, file_name: str) -> Path:
    """Write atomically, so a crash never leaves half a record for `monitor` to choke on."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(record.to_json(), encoding="utf-8")
    os.replace(temporary, path)
    return path


def put(s3: S3Client, record: RunRecord) -> None:
    put_object(s3, record.MONITOR_BUCKET_NAME, record.MONITOR_FILE_KEY, record.to_json().encode(),
               content_type="application/json")


def get(s3: S3Client, bucket: str, key: str) -> RunRecord | None:
    body = read_object(s3, bucket, key)
    return None if body is None else RunRecord.from_json(body)
