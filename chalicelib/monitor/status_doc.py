"""Each run's status document: what `run_status` said at the monitor's last tick, kept at monitors/APP_status.json
so GET /runs/{app} answers with one read instead of observing the run live (20 calls), and GET /runs with the
bucket's index of these documents (status_index.py) and a read of each one the index does not hold as listed.

The tick writes a run's document only when what it says changed, so a steady tick adds no call: this container
remembers what it last wrote, compared without the figures that move with the clock alone (elapsed time and what
is computed from it). Those are therefore as of the document's `as_of`, which readers show; a document is also
written again once REFRESH_SECONDS old, which bounds how stale they get and heals a document another container
(the alarm's) wrote in between. Only the monitor writes under monitors/ (the task role denies it), but reads are
bounded all the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from chalicelib import aws
from chalicelib.aws.s3 import put_object, read_object_and_etag
from chalicelib.model.names import MONITORS_PREFIX, RECORD_SUFFIX, status_key
from chalicelib.monitor.runs import removed_if_torn_down
from chalicelib.monitor.status import run_status

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

    from chalicelib.monitor.reconcile import Reconciled
    from chalicelib.monitor.service import RunOutcome

# Figures that change every tick though nothing happened: left out of the comparison
CLOCK_FIELDS = ("elapsed_seconds", "throughput_jobs_per_hour", "eta_seconds", "machine_hours", "cost_ceiling_usd")
REFRESH_SECONDS = 600
# A status lists each machine (about 80 bytes): 4 MiB holds tens of thousands
MAX_BYTES = 4 * 1024 * 1024
STARTING = "the monitor has not looked at this run yet (started since its last tick)"
NOT_WATCHED = "the monitor does not watch this run (AUTO_MONITOR false): GET /runs/{app} looks at it live"

# (bucket, key) -> (what the document said apart from the clock, its as_of): this container's last writes
_written: dict[tuple[str, str], tuple[str, float]] = {}


def app_name_of(record_key: str) -> str:
    """The run a record key names: where a record was found decides whose status it is, never what it says."""
    return record_key[len(MONITORS_PREFIX):-len(RECORD_SUFFIX)]


def _unchanging(status: dict[str, Any]) -> str:
    """A digest of what the status says apart from the clock: a new run of the same name differs (its fleet)."""
    said = json.dumps({key: value for key, value in status.items() if key not in (*CLOCK_FIELDS, "as_of")},
                      sort_keys=True, default=str)
    return hashlib.sha256(said.encode()).hexdigest()


def publish(outcome: RunOutcome, s3: S3Client | None = None) -> tuple[str, dict[str, Any]] | None:
    """After a run's reconcile: its status document written if it changed (a run torn down this tick has none);
    the written document's ETag and content (status_index.py keeps them), or None when nothing was written."""
    result: Reconciled | None = outcome.result
    run = outcome.run
    key = status_key(app_name_of(run.key))
    if result is None or result.finished:
        if result is not None:
            _written.pop((run.bucket, key), None)
        return None
    status = {**run_status(result.observation, run.policy()), "as_of": round(result.observation.now)}
    said = _unchanging(status)
    last = _written.get((run.bucket, key))
    if last is not None and last[0] == said and status["as_of"] - last[1] < REFRESH_SECONDS:
        return None
    s3 = s3 or aws.client("s3")
    etag = put_object(s3, run.bucket, key, json.dumps(status).encode(), content_type="application/json")
    _written[(run.bucket, key)] = (said, status["as_of"])
    if removed_if_torn_down(s3, run, key):
        _written.pop((run.bucket, key), None)
        return None
    return etag, status


def read(s3: S3Client, bucket: str, app_name: str) -> dict[str, Any] | None:
    """The run's last status document, or None when the monitor has written none (yet, or any more)."""
    found = read_with_etag(s3, bucket, app_name)
    return None if found is None else found[1]


def read_with_etag(s3: S3Client, bucket: str, app_name: str) -> tuple[str, dict[str, Any]] | None:
    """`read`, with the ETag of what was read (status_index.py)."""
    body, etag = read_object_and_etag(s3, bucket, status_key(app_name), max_bytes=MAX_BYTES)
    if body is None:
        return None
    status = json.loads(body)
    if not is_status(status):
        raise ValueError(f"s3://{bucket}/{status_key(app_name)}: not a status document")
    return etag or "", status


def is_status(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("state"), str)


def starting(app_name: str, watched: bool = True) -> dict[str, Any]:
    """A run whose record exists but for which the monitor has written no status (yet, or ever: `watched` False)."""
    return {"app_name": app_name, "state": "starting", "reason": STARTING if watched else NOT_WATCHED,
            "as_of": round(time.time())}
