"""Finding and loading runs: run records live at s3://BUCKET/monitors/APP_NAMESpotFleetRequestId.json."""

from __future__ import annotations

from chalicelib import runrecord
from chalicelib.aws import read_object
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run
from chalicelib.names import MONITORS_PREFIX, RECORD_SUFFIX, monitor_state_key, record_key  # noqa: F401


def record_keys(s3, bucket: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=MONITORS_PREFIX):
        keys.extend(item["Key"] for item in page.get("Contents", ())
                    if item["Key"].endswith(RECORD_SUFFIX) and "/" not in item["Key"][len(MONITORS_PREFIX):])
    return sorted(keys)


def load_run(s3, bucket: str, key: str) -> Run | None:
    """The run whose record is at `key`, or None once it is gone (torn down)."""
    record = runrecord.get(s3, bucket, key)
    if record is None:
        return None
    return Run(record=record, state=MonitorState.from_json(read_object(s3, bucket, monitor_state_key(record.MONITOR_APP_NAME))))


def load_runs(s3, buckets: list[str]) -> list[Run]:
    runs = []
    for bucket in buckets:
        for key in record_keys(s3, bucket):
            run = load_run(s3, bucket, key)
            if run is not None:
                runs.append(run)
    return runs
