"""Which machines are running a job right now: one small S3 object per busy worker.

SQS says how many jobs are in flight, not where. To release idle machines as
soon as the queue runs dry (DS waits for a 15-minute CPU alarm on each), a
worker puts `runs/APP_NAME/leases/INSTANCE/WORKER` when it takes a job,
refreshes it while the job runs, and deletes it when the job ends. The monitor
lists the prefix: a machine with no fresh lease runs no job.

A worker killed with SIGKILL leaves its lease behind; it goes stale after
`STALE_AFTER_SECONDS` and stops counting, so such a machine is released a few
minutes later rather than never.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from chalicelib.names import leases_prefix

REFRESH_SECONDS = 60
STALE_AFTER_SECONDS = 5 * REFRESH_SECONDS
UNKNOWN_INSTANCE = "unknown"


def prefix(app_name: str) -> str:
    return leases_prefix(app_name)


def key(app_name: str, instance_id: str | None, worker_id: str) -> str:
    return f"{prefix(app_name)}{instance_id or UNKNOWN_INSTANCE}/{worker_id}"


class Lease:
    """A worker's claim 'this machine runs job X'; `hold` and `refresh` put it, `release` deletes it."""

    def __init__(self, s3, bucket: str, app_name: str, instance_id: str | None, worker_id: str, clock=time.monotonic):
        self._s3, self._bucket = s3, bucket
        self.key = key(app_name, instance_id, worker_id)
        self._clock = clock
        self._last_put = None
        self._job_id = None

    def hold(self, job_id: str) -> None:
        self._job_id = job_id
        self._put()

    def refresh(self) -> None:
        """Put again if the last put is older than REFRESH_SECONDS (cheap to call often)."""
        if self._job_id is not None and self._clock() - self._last_put >= REFRESH_SECONDS:
            self._put()

    def release(self) -> None:
        if self._job_id is not None:
            self._job_id = None
            self._s3.delete_object(Bucket=self._bucket, Key=self.key)

    def _put(self) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=self.key, Body=self._job_id.encode("utf-8"))
        self._last_put = self._clock()


def busy_jobs_by_instance(s3, bucket: str, app_name: str, now: datetime) -> Counter:
    """Fresh leases per instance id (instances with none are absent: they run no job)."""
    counts: Counter = Counter()
    start = len(prefix(app_name))
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix(app_name)):
        for item in page.get("Contents", ()):
            if (now - item["LastModified"]).total_seconds() <= STALE_AFTER_SECONDS:
                counts[item["Key"][start:].split("/", 1)[0]] += 1
    return counts
