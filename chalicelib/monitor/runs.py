"""Finding and loading runs: run records live at s3://BUCKET/monitors/APP_NAMESpotFleetRequestId.json."""

from __future__ import annotations

from chalicelib.aws import error_code
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run, state_key
from chalicelib.runrecord import RunRecord

RECORD_SUFFIX = "SpotFleetRequestId.json"
MONITORS_PREFIX = "monitors/"


def record_keys(s3, bucket: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=MONITORS_PREFIX):
        keys.extend(item["Key"] for item in page.get("Contents", ())
                    if item["Key"].endswith(RECORD_SUFFIX) and "/" not in item["Key"][len(MONITORS_PREFIX):])
    return sorted(keys)


def record_key(app_name: str) -> str:
    return MONITORS_PREFIX + app_name + RECORD_SUFFIX


def load_run(s3, bucket: str, key: str) -> Run | None:
    """The run whose record is at `key`, or None once it is gone (torn down)."""
    body = read_object(s3, bucket, key)
    if body is None:
        return None
    record = RunRecord.from_json(body)
    return Run(record=record, state=MonitorState.from_json(read_object(s3, bucket, state_key(record))))


def load_runs(s3, buckets: list[str]) -> list[Run]:
    runs = []
    for bucket in buckets:
        for key in record_keys(s3, bucket):
            run = load_run(s3, bucket, key)
            if run is not None:
                runs.append(run)
    return runs


def read_object(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:  # noqa: BLE001
        if error_code(error) in ("NoSuchKey", "404"):
            return None
        raise
