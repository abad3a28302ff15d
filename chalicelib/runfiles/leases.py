"""Which machines are running a job right now: one small S3 object per busy worker.

SQS says how many jobs are in flight, not where. To release idle machines as
soon as the queue runs dry (DS waits for a 15-minute CPU alarm on each), a
worker holds `runs/APP_NAME/leases/INSTANCE/WORKER` for each busy period: it
puts the lease before it runs the first job after being idle, keeps it fresh
while it goes on taking jobs (at a job's start and from the heartbeat while a
job runs, at most once per REFRESH_SECONDS), and deletes it on its first empty
receive, when it stops, and when it exits. The monitor lists the prefix: a
machine with no fresh lease runs no job. A lease per busy period, not per job,
costs two S3 calls per busy period instead of two per job, and covers the gap
between two jobs too.

A worker killed with SIGKILL leaves its lease behind; it goes stale after
`STALE_AFTER_SECONDS` and stops counting, so such a machine is released a few
minutes later rather than never.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.aws.s3 import delete_object, list_objects, put_object
from chalicelib.model.names import leases_prefix

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

REFRESH_SECONDS = 60
STALE_AFTER_SECONDS = 5 * REFRESH_SECONDS
UNKNOWN_INSTANCE = "unknown"


def prefix(app_name: str) -> str:
    return leases_prefix(app_name)


def key(app_name: str, instance_id: str | None, worker_id: str) -> str:
    return f"{prefix(app_name)}{instance_id or UNKNOWN_INSTANCE}/{worker_id}"


class Lease:
    """A worker's claim 'this machine runs a job': `hold` at each job's start puts it (or keeps it fresh),
    `refresh` keeps it fresh, `release` deletes it when the busy period ends."""

    def __init__(self, s3: S3Client, bucket: str, app_name: str, instance_id: str | None, worker_id: str,
                 clock: Callable[[], float] = time.monotonic):
        self._s3, self._bucket = s3, bucket
        self.key = key(app_name, instance_id, worker_id)
        self._clock = clock
        self._last_put: float | None = None  # None: not held (never put, released, or the put failed)
        self._job_id = ""  # set by hold, before any put

    @property
    def held(self) -> bool:
        return self._last_put is not None

    def hold(self, job_id: str) -> None:
        """A job starts: put the lease if this worker holds none, else put it again only when it is due."""
        self._job_id = job_id
        if self.held:
            self.refresh()
        else:
            self._put()

    def refresh(self) -> None:
        """Put again if the last put is older than REFRESH_SECONDS (cheap to call often)."""
        if self._last_put is not None and self._clock() - self._last_put >= REFRESH_SECONDS:
            self._put()

    def release(self) -> None:
        if self.held:
            self._last_put, self._job_id = None, ""  # first: a failed delete leaves a lease that goes stale
            delete_object(self._s3, self._bucket, self.key)

    def _put(self) -> None:
        # the body names the job running at the last put, for a person looking; the monitor reads only the key
        put_object(self._s3, self._bucket, self.key, self._job_id.encode("utf-8"))
        self._last_put = self._clock()


def busy_jobs_by_instance(s3: S3Client, bucket: str, app_name: str, now: datetime) -> Counter[str]:
    """Fresh leases per instance id: its workers in a busy period (running a job, or between two jobs with no
    empty receive yet). Instances with none are absent: they run no job."""
    counts: Counter[str] = Counter()
    start = len(prefix(app_name))
    for item in list_objects(s3, bucket, prefix(app_name)):
        if (now - item.last_modified).total_seconds() <= STALE_AFTER_SECONDS:
            counts[item.key[start:].split("/", 1)[0]] += 1
    return counts
