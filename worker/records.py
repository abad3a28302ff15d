"""A finished job's failure record goes, without one S3 call per job to find out whether it has one.

A job that is done (succeeded, or skipped as done) is failed no longer, so its failure record
(chalicelib/runfiles/failures.py), if any, must go. Almost no job has one: a record exists only for a job whose last
attempt failed and that was then sent again (`cli.py redrive`, a new `submit`, by hand). Deleting on every
success, as this worker once did, was one S3 call per job for nothing. Instead a worker lists the run's
records (one call per 1,000 records) and deletes only those it finds.

Why a listing made earlier still answers for a job finished later. A job is sent again only after its record
was written: redrive sends what it read from the record (and if it crashes before deleting the record, the
record is simply there to find); a `submit` that is not `--append` finds the queue empty, so the failed
attempt had ended; a worker's requeue of a released job writes no record. The listing is made while a message
is handled, after that message's receipt, whose time SQS gives (ApproximateFirstReceiveTimestamp, on a first
attempt this very receipt). So a message that SQS says was sent (SentTimestamp) before that receipt was sent
before the listing, and any record it has was written before: the listing holds it. Both times are SQS's: no
worker clock enters. For any other message (sent after it, or either time missing) the run's records are
listed again before deciding, and again when the listing is older than REFRESH_SECONDS or the busy period
ended (`forget`). A message received more than once (attempt > 1) deletes its record unasked: the record may
be its own, written before JOB_RETRIES was raised.

Not covered, as deleting on every success did not cover it either: two copies of one job in flight at once
(`submit --append` of a job still running, or SQS's rare second delivery), one failing its last attempt while
the other succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import error_code
from chalicelib.runfiles import failures

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the worker image
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("worker")

# A listing older than this is made again: it bounds what a sender this module does not foresee (one that
# re-sends a message with its old SentTimestamp) can make it miss, for one LIST a minute at most.
REFRESH_SECONDS = 60.0


class FailureRecords:
    def __init__(self, s3: S3Client, bucket: str, app_name: str, clock: Callable[[], float] = time.monotonic):
        self._s3, self._bucket, self._app_name = s3, bucket, app_name
        self._clock = clock
        self._covers_sent_before: int | None = None  # SQS milliseconds: messages sent before are in the listing
        self._listed_at: float | None = None  # our clock, for its age only
        self._job_ids: set[str] = set()
        self._warned: set[str] = set()

    def forget(self) -> None:
        """The busy period ended: the next finished job lists again."""
        self._covers_sent_before = self._listed_at = None
        self._job_ids = set()

    def job_done(self, job_id: str, attempt: int, sent_ms: int | None, received_ms: int | None) -> None:
        """Delete `job_id`'s record if it has one. `sent_ms`, `received_ms`: the message's SentTimestamp and
        ApproximateFirstReceiveTimestamp."""
        if attempt <= 1:
            if not self._covers(sent_ms) and not self._list(received_ms):
                self._delete(job_id)  # no listing: as before, one delete whether or not there is a record
                return
            if job_id not in self._job_ids:
                return
        self._delete(job_id)

    def _covers(self, sent_ms: int | None) -> bool:
        return (sent_ms is not None and self._covers_sent_before is not None and sent_ms < self._covers_sent_before
                and self._listed_at is not None and self._clock() - self._listed_at < REFRESH_SECONDS)

    def _list(self, received_ms: int | None) -> bool:
        try:
            job_ids = failures.job_ids(self._s3, self._bucket, self._app_name)
        except (BotoCoreError, ClientError) as error:
            self._warn_once(error)
            self.forget()
            return False
        # Made after this message's receipt: it answers for this message, and for every message sent before it.
        self._covers_sent_before, self._listed_at, self._job_ids = received_ms, self._clock(), set(job_ids)
        return True

    def _delete(self, job_id: str) -> None:
        failures.delete(self._s3, self._bucket, self._app_name, job_id)
        self._job_ids.discard(job_id)

    def _warn_once(self, error: Exception) -> None:
        code = error_code(error) or type(error).__name__
        if code not in self._warned:  # a task role without the grant would say it on every job otherwise
            self._warned.add(code)
            log.warning("could not list the run's failure records (%s); deleting each finished job's record "
                        "directly instead", code)
