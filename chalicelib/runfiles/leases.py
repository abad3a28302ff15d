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

A job can write under its run's leases prefix: the monitor reads a lease's key only as `LeaseName` declares it
(an instance id, then one worker id), and never its body (the job id, for a person looking).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.aws.s3 import delete_object, list_objects, put_object
from chalicelib.model import schema
from chalicelib.model.names import leases_prefix
from chalicelib.model.schema import bounds

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

REFRESH_SECONDS = 60
STALE_AFTER_SECONDS = 5 * REFRESH_SECONDS
UNKNOWN_INSTANCE = "unknown"


@dataclass(frozen=True)
class LeaseName:
    """What a lease's key says, after the run's prefix: INSTANCE/WORKER."""

    # EC2's instance ids (i- and 8 or 17 hex digits; local mode's are shorter), or UNKNOWN_INSTANCE
    instance_id: str = field(metadata=bounds(pattern=rf"i-[0-9a-f]{{1,17}}|{UNKNOWN_INSTANCE}"))
    # the container's host name (at most 253 characters) and its slot
    worker_id: str = field(metadata=bounds(min_length=1, max_length=300, pattern="[^/]+"))


def name_of(app_name: str, key: str) -> LeaseName:
    """The lease at `key` (a key under prefix(app_name)); raises schema.SchemaError for a key that no worker puts."""
    instance_id, _, worker_id = key[len(prefix(app_name)):].partition("/")
    return schema.from_value(LeaseName, {"instance_id": instance_id, "worker_id": worker_id}, f"lease {key}")


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
    for item in list_objects(s3, bucket, prefix(app_name)):
        if (now - item.last_modified).total_seconds() <= STALE_AFTER_SECONDS:
            with contextlib.suppress(ValueError):  # not a lease a worker puts: it claims nothing
                counts[name_of(app_name, item.key).instance_id] += 1
    return counts
