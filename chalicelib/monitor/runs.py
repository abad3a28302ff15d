"""Finding and loading runs: run records live at s3://BUCKET/monitors/APP_NAMESpotFleetRequestId.json.

A bucket is shared: it may also hold DS's or DCP's own monitor files (DS's are
not even valid JSON), half-written or forged objects. One such object, or a
watched bucket that does not exist, never stops the other runs: it is reported
as `Unreadable` and every readable run is still returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from chalicelib.aws import error_code
from chalicelib.aws.s3 import Listed, delete_object, list_objects, object_exists, read_object_and_etag
from chalicelib.model.errors import UserError
from chalicelib.model.names import MONITORS_PREFIX, RECORD_SUFFIX, monitor_state_key
from chalicelib.model.schema import SchemaError
from chalicelib.monitor import runrecord, state_store
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

# Records and states parsed by the scans of this process, by (bucket, key): (ETag, parsed), kept while the Lambda's
# container is warm. An object listed with the ETag it was read with holds the bytes that were read (S3 gives every
# write its ETag, the token state_store.py's conditional writes already rely on), so a steady tick reads none of them
# again. Entries of objects no longer listed go at each scan of their bucket: the cache never outgrows the buckets.
_parsed: dict[tuple[str, str], tuple[str, runrecord.RunRecord | MonitorState]] = {}

# What reading one object can raise when its content is not a run record (or its state is not a monitor state):
# schema.SchemaError, or aws.ObjectTooLarge for one over its reader's bound
_NOT_A_RECORD = ValueError


class UnreadableRecord(UserError):
    """A run record (or its monitor state) that cannot be read; the message names the object and why."""


@dataclass(frozen=True)
class Unreadable:
    """An object under monitors/ (or a whole bucket) skipped this time, and why."""

    bucket: str
    key: str  # "" when the bucket itself could not be listed
    reason: str

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "state": "unreadable", "reason": self.reason}


def record_keys(s3: S3Client, bucket: str) -> list[str]:
    return sorted(item.key for item in list_objects(s3, bucket, MONITORS_PREFIX, delimiter="/")
                  if item.key.endswith(RECORD_SUFFIX))


def read_record(s3: S3Client, bucket: str, key: str) -> runrecord.RunRecord | None:
    """The run record at `key`, or None once it is gone (torn down); raises UnreadableRecord."""
    try:
        return runrecord.get(s3, bucket, key)
    except _NOT_A_RECORD as error:
        raise UnreadableRecord(f"s3://{bucket}/{key}: not a run record of this project ({_why(error)})") from None


def load_run(s3: S3Client, bucket: str, key: str) -> Run | None:
    """The run whose record is at `key`, or None once it is gone (torn down); raises UnreadableRecord."""
    record = read_record(s3, bucket, key)
    if record is None:
        return None
    state_key = monitor_state_key(record.MONITOR_APP_NAME)
    body, etag = state_store.read(s3, bucket, state_key)
    return Run(record=record, state=_state_from(bucket, state_key, body), bucket=bucket, key=key, state_etag=etag)


def removed_if_torn_down(s3: S3Client, run: Run, key: str) -> bool:
    """After a write of `key` beside the run's record: when the record is gone (another writer's teardown, `cli.py
    teardown` or another tick, finished since `run` was read), `key` is deleted again and True returned: nothing
    written for a run may outlive it."""
    if object_exists(s3, run.bucket, run.key):
        return False
    delete_object(s3, run.bucket, key)
    return True


def with_current_state(s3: S3Client, run: Run) -> Run | None:
    """`run` with its monitor state as S3 holds it now (another writer's since `run` was read), or None once its
    record is gone (torn down meanwhile). The record is the caller's: it is never rewritten, and a caller may have
    changed it (`cli.py monitor --cheapest`)."""
    current = load_run(s3, run.bucket, run.key)
    if current is None:
        return None
    return dataclasses.replace(run, state=current.state, state_etag=current.state_etag)


def scan(s3: S3Client, buckets: list[str]) -> tuple[list[Run], list[Unreadable]]:
    """Every readable run in the buckets, and what was skipped (one entry per object or bucket). One listing of
    monitors/ a bucket (records and states are side by side there); an object is read only when its listed ETag is
    not the one this process last read it with."""
    runs: list[Run] = []
    skipped: list[Unreadable] = []
    for bucket in buckets:
        try:
            listed = {item.key: item for item in list_objects(s3, bucket, MONITORS_PREFIX, delimiter="/")}
        except botocore.exceptions.ClientError as error:
            skipped.append(Unreadable(bucket, "", listing_problem(error)))
            continue
        for cached in [cached for cached in _parsed if cached[0] == bucket and cached[1] not in listed]:
            del _parsed[cached]
        for key in sorted(key for key in listed if key.endswith(RECORD_SUFFIX)):
            try:
                run = _listed_run(s3, bucket, key, listed)
            except UnreadableRecord as error:
                skipped.append(Unreadable(bucket, key, str(error).split(": ", 1)[1]))
                continue
            except botocore.exceptions.ClientError as error:
                skipped.append(Unreadable(bucket, key, f"cannot be read ({error_code(error) or error})"))
                continue
            if run is not None:
                runs.append(run)
    return runs, skipped


def _listed_run(s3: S3Client, bucket: str, key: str, listed: dict[str, Listed]) -> Run | None:
    """load_run, with the record and the state taken from this process's earlier reads where the listing shows
    them unchanged. A state not in the listing is read (it may have been written since)."""
    record = _parsed_object(s3, bucket, key, listed, _record_from)
    if not isinstance(record, runrecord.RunRecord):
        return None
    state_key = monitor_state_key(record.MONITOR_APP_NAME)
    if state_key not in listed:
        body, etag = state_store.read(s3, bucket, state_key)
        return Run(record=record, state=_state_from(bucket, state_key, body), bucket=bucket, key=key, state_etag=etag)
    state = _parsed_object(s3, bucket, state_key, listed, _state_from)
    if not isinstance(state, MonitorState):  # deleted since the listing: there is no state now
        return Run(record=record, state=MonitorState(), bucket=bucket, key=key)
    return Run(record=record, state=state, bucket=bucket, key=key, state_etag=_parsed[(bucket, state_key)][0])


def _parsed_object(s3: S3Client, bucket: str, key: str, listed: dict[str, Listed],
                   parse: Callable[[str, str, bytes], runrecord.RunRecord | MonitorState],
                   ) -> runrecord.RunRecord | MonitorState | None:
    """The object parsed, from the cache when its listed ETag is the cached one, else read (and cached); None once
    it is gone."""
    cached = _parsed.get((bucket, key))
    if cached is not None and listed[key].etag and cached[0] == listed[key].etag:
        return cached[1]
    body, etag = read_object_and_etag(s3, bucket, key)
    if body is None or etag is None:
        _parsed.pop((bucket, key), None)
        return None
    parsed = parse(bucket, key, body)
    _parsed[(bucket, key)] = (etag, parsed)
    return parsed


def _record_from(bucket: str, key: str, body: bytes) -> runrecord.RunRecord:
    try:
        return runrecord.RunRecord.from_json(body)
    except _NOT_A_RECORD as error:
        raise UnreadableRecord(f"s3://{bucket}/{key}: not a run record of this project ({_why(error)})") from None


def _state_from(bucket: str, key: str, body: bytes | None) -> MonitorState:
    try:
        return MonitorState.from_json(body)
    except _NOT_A_RECORD as error:
        raise UnreadableRecord(f"s3://{bucket}/{key}: unreadable monitor state ({_why(error)}); delete it "
                               "to let the monitor start its bookkeeping afresh") from None


def listing_problem(error: Exception) -> str:
    """Why a bucket's monitors/ cannot be listed, in the words the user acts on."""
    code = error_code(error)
    if code == "NoSuchBucket":
        return "the bucket does not exist (check MONITOR_BUCKETS)"
    if code in ("AccessDenied", "403"):
        return "the bucket cannot be listed with the monitor's permissions"
    return f"the bucket cannot be listed ({code or error})"


def _why(error: Exception) -> str:
    if isinstance(error, SchemaError):  # the caller names the document
        return ": ".join(part for part in (error.path, error.expected) if part)
    return str(error)
