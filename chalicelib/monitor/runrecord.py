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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.aws.s3 import put_object, read_object
from chalicelib.model import schema
from chalicelib.model.schema import bounds, digits_as_int, words_as_bool
from chalicelib.monitor.output_rule import OutputRule

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

RECORD_VERSION = 1
# The record's largest size, well above what its bounds allow (1,000 machine types, 100 alarm names): only the user
# and the monitor write under monitors/, and a bucket is shared, so an object there is still read bounded.
MAX_RECORD_BYTES = 1_048_576
# AWS's limits on the names the record holds (each service's quotas page): ECS cluster, service and family names,
# CloudWatch alarm and dashboard names 255; SQS queue names 80; log group names 512; S3 bucket names 63, keys 1,024
# bytes; ARNs 2,048; a tag value 256.
_NAME, _QUEUE_NAME, _LOG_GROUP = bounds(max_length=255), bounds(max_length=80), bounds(max_length=512)
_BUCKET, _KEY, _ARN, _TAG_VALUE = bounds(max_length=63), bounds(max_length=1024), bounds(max_length=2048), \
    bounds(max_length=256)
_INSTANCE_TYPES = bounds(max_items=1000, item=bounds(max_length=64))  # EC2 has fewer; "m5.xlarge" is 9 characters
_ALARMS = bounds(max_items=100, item=_NAME)  # the queue alarms of one run: a handful
_COUNT = bounds(minimum=0)
_FLAG = bounds(accept=words_as_bool)  # DS wrote "True" and "False"


@dataclass(frozen=True)
class RunRecord:
    # ---- DS's keys
    MONITOR_FLEET_ID: str = field(metadata=_NAME)
    MONITOR_APP_NAME: str = field(metadata=_NAME)
    MONITOR_ECS_CLUSTER: str = field(metadata=_NAME)
    MONITOR_QUEUE_NAME: str = field(metadata=_QUEUE_NAME)
    MONITOR_BUCKET_NAME: str = field(metadata=_BUCKET)
    MONITOR_LOG_GROUP_NAME: str = field(metadata=_LOG_GROUP)
    # milliseconds; DS wrote a string of digits
    MONITOR_START_TIME: int = field(metadata=bounds(minimum=0, maximum=schema.LAST_EPOCH_SECOND * 1000,
                                                    accept=digits_as_int))
    CLEAN_DASHBOARD: bool = field(metadata=_FLAG)
    # ---- where things are
    REGION: str = field(metadata=_NAME)
    QUEUE_URL: str = field(metadata=_ARN)
    DEAD_LETTER_QUEUE_NAME: str = field(metadata=_QUEUE_NAME)
    DEAD_LETTER_QUEUE_URL: str = field(metadata=_ARN)
    SERVICE_NAME: str = field(metadata=_NAME)  # ECS service in MONITOR_ECS_CLUSTER; scaled to 0 at teardown
    TASK_FAMILY: str = field(metadata=_NAME)
    TASK_DEFINITION_ARN: str = field(metadata=_ARN)  # the revision the service runs
    PER_INSTANCE_LOG_GROUP: str = field(metadata=_LOG_GROUP)  # container output, exported at teardown
    EXPORTED_LOGS_PREFIX: str = field(metadata=_KEY)  # s3 key prefix in MONITOR_BUCKET_NAME for exported logs
    TOPIC_ARN: str = field(metadata=_ARN)  # the SNS topic the queue alarms notify ("" when AUTO_MONITOR is off)
    # queue alarms this run created (empty when AUTO_MONITOR is off)
    ALARM_NAMES: tuple[str, ...] = field(metadata=_ALARMS)
    INSTANCE_ALARM_PREFIX: str = field(metadata=_NAME)  # per-instance alarms are INSTANCE_ALARM_PREFIX + instance id
    DASHBOARD_NAME: str | None = field(metadata=_NAME)  # None when CREATE_DASHBOARD is off
    ECS_CONFIG_KEY: str = field(metadata=_KEY)  # s3 key of the ECS agent config in MONITOR_BUCKET_NAME
    MONITOR_FILE_KEY: str = field(metadata=_KEY)  # s3 key of this record; removed when teardown has finished
    INSTANCE_NAME_TAG: str = field(metadata=_TAG_VALUE)  # value of the Name tag on the fleet's instances
    # ---- sizing, for scaling down as the queue drains
    CLUSTER_MACHINES: int = field(metadata=_COUNT)  # the fleet's target capacity at start
    TASKS_PER_MACHINE: int = field(metadata=_COUNT)
    DOCKER_CORES: int = field(metadata=_COUNT)  # jobs at once per task
    MACHINE_TYPE: tuple[str, ...] = field(metadata=_INSTANCE_TYPES)
    MACHINE_PRICE: float = field(metadata=_COUNT)  # USD per machine-hour, the fleet's SpotPrice
    CHEAPEST: bool = field(metadata=_FLAG)  # DS's cheapest mode: shrink the fleet to one machine after 15 minutes
    AUTO_MONITOR: bool = field(metadata=_FLAG)
    # ApproximateNumberOfMessages when the run started, None if unknown
    JOBS_AT_START: int | None = field(metadata=_COUNT)
    # ---- safety stops (settings of the same names); None: no limit. Defaults keep older records readable.
    MAX_RUN_HOURS: float | None = field(default=None, metadata=_COUNT)
    MAX_RUN_COST: float | None = field(default=None, metadata=_COUNT)
    STOP_AFTER_FAILED_JOBS: int | None = field(default=None, metadata=_COUNT)
    STOP_IF_NO_JOB_STARTS_MINUTES: float | None = field(default=None, metadata=_COUNT)
    # ---- DS image mode (COMMAND null): the image runs its own worker, which writes no failure record, so the
    # run's failed jobs are its messages in DEAD_LETTER_QUEUE_URL (GET /runs/{app}/failed reads them there).
    # A record without the key (written before it, or by `adopt`) reads as false: the API then lists the run's
    # failure records, as it did before.
    DS_IMAGE_MODE: bool = False
    # ---- where the jobs' outputs go and when they count as complete (output_rule.py): a job whose message was
    # dead-lettered with no failure record yet whose outputs are complete is done, not failed. None (an older record,
    # or one `adopt` made from DS's monitor file): every dead-lettered job is failed, as before.
    OUTPUTS: OutputRule | None = None
    VERSION: int = field(default=RECORD_VERSION, metadata=bounds(minimum=1))

    @property
    def desired_tasks(self) -> int:
        return self.CLUSTER_MACHINES * self.TASKS_PER_MACHINE

    def to_json(self) -> str:
        return json.dumps(self._plain(), indent=2, sort_keys=False) + "\n"

    def _plain(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, text: str | bytes, document: str = "run record") -> RunRecord:
        """Raises schema.SchemaError (a ValueError) naming `document` and the field."""
        return schema.read(cls, text, document, MAX_RECORD_BYTES)

    @classmethod
    def from_dict(cls, raw: Any, document: str = "run record") -> RunRecord:
        return schema.from_value(cls, raw, document)


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
    body = read_object(s3, bucket, key, max_bytes=MAX_RECORD_BYTES)  # too large: ObjectTooLarge, a ValueError
    return None if body is None else RunRecord.from_json(body)
