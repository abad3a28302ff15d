"""Failure records: one small S3 object per job whose last attempt failed, per run.

The dead-letter queue cannot say how many of a run's jobs failed: DS's default
`user_DeadMessages` is shared by every run, so its count holds other runs'
failures too. When a job's last attempt (JOB_RETRIES) fails, its worker puts
`runs/APP_NAME/failures/JOB_ID.json` (chalicelib/model/names.py): why it failed, the
exit code, the last lines of its output, and the message body, so a later
redrive can send it again. A worker that later completes the job deletes the
record, so the count stays the number of this run's jobs that are failed now
(it finds which jobs have one by listing them: worker/records.py). Each write and removal is noted in the run's
failure journal too (failure_journal.py), from which the Lambda's monitor keeps the count without listing every
record on every look.

Records are written by workers, whose jobs are untrusted code: a reader takes
each one as a claim, skips what it cannot parse, and never acts on it beyond
reporting (and resending a body that `job_from_message` accepts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.aws.s3 import ObjectTooLarge, delete_object, list_objects, put_object, read_object
from chalicelib.model import schema
from chalicelib.model.jobs import MAX_JOB_ID_LENGTH, SQS_MESSAGE_BYTES
from chalicelib.model.names import failure_key, failures_prefix
from chalicelib.model.schema import bounds
from chalicelib.runfiles import failure_journal

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

LAST_LINES = 20  # lines of the job's output a record keeps
LINE_CHARS = 1_000  # of each, so a record stays small whatever a job prints
REASON_CHARS = 2_000  # of the reason: the worker's own words, which may quote an exception's
# The largest record a worker writes, so that a reader (the monitor, which serves every run; the status API) reads
# no more than that of a key a job can write (DESIGN.md "Trust boundary"). json.dumps escapes a character as at
# most 12 bytes (a surrogate pair), which is at most 3 per byte of its UTF-8: a message body of SQS's largest
# message (chalicelib/model/jobs.py SQS_MESSAGE_BYTES), LAST_LINES lines of LINE_CHARS characters each and a reason of
# REASON_CHARS, plus the short fields (job id, times) with room to spare: about 1 MiB.
MAX_RECORD_BYTES = 3 * SQS_MESSAGE_BYTES + LAST_LINES * (12 * LINE_CHARS + 4) + 12 * REASON_CHARS + 16_384


_AT_LEAST_0 = bounds(minimum=0)


@dataclass(frozen=True)
class FailureRecord:
    job_id: str = field(metadata=bounds(min_length=1, max_length=MAX_JOB_ID_LENGTH))
    attempts: int = field(metadata=bounds(minimum=1))
    # as the job's log says it: "exit code 3 after 0.12 s", "timed out after 60 s", ...
    reason: str = field(metadata=bounds(max_length=REASON_CHARS))
    # None when the command did not end by itself (not started, timed out); else what waitpid gave, -signal if killed
    exit_code: int | None = field(metadata=bounds(minimum=-255, maximum=255))
    # the job's last output lines
    last_lines: tuple[str, ...] = field(metadata=bounds(max_items=LAST_LINES, item=bounds(max_length=LINE_CHARS)))
    message_body: str = field(metadata=bounds(max_length=SQS_MESSAGE_BYTES))  # what a redrive sends again
    time: float = field(metadata=bounds(minimum=0, maximum=schema.LAST_EPOCH_SECOND))  # epoch seconds
    instance_id: str | None = field(metadata=bounds(max_length=64))  # EC2's are 19 characters
    # What the last attempt's command used (worker/attempt_usage.py), None where it was not measured (a command
    # that never ran; a record written before these were kept, which reads back without them).
    peak_memory_mib: float | None = field(default=None, metadata=_AT_LEAST_0)
    cpu_seconds: float | None = field(default=None, metadata=_AT_LEAST_0)
    memory_limit_mib: float | None = field(default=None, metadata=_AT_LEAST_0)  # the container's limit, else MEMORY
    out_of_memory: bool = False  # the kernel's OOM killer ended it (the reason then starts "out of memory: ")
    # The failed message's SQS id, which its dead-letter copy keeps: what `redrive` notes as sent back
    # (chalicelib/monitor/sent_back.py). None in a record written before it was kept.
    message_id: str | None = field(default=None, metadata=bounds(max_length=128))

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "last_lines": list(self.last_lines)})

    def public(self) -> dict[str, Any]:
        """As `cli.py failed --json` and GET /runs/{app_name}/failed show it (the message body stays internal)."""
        return {"job_id": self.job_id, "attempts": self.attempts, "reason": self.reason, "exit_code": self.exit_code,
                "last_lines": list(self.last_lines), "failed_at": self.time, "instance_id": self.instance_id,
                "peak_memory_mib": self.peak_memory_mib, "cpu_seconds": self.cpu_seconds,
                "memory_limit_mib": self.memory_limit_mib, "out_of_memory": self.out_of_memory}

    @classmethod
    def from_json(cls, text: str | bytes, document: str = "failure record") -> FailureRecord:
        """Raises schema.SchemaError (a ValueError) on anything but a JSON object of at most MAX_RECORD_BYTES with
        every field within its bounds (extra keys are ignored, so older readers accept newer records; a field with
        a default may be missing, so records written before it existed still read)."""
        return schema.read(cls, text, document, MAX_RECORD_BYTES)


def put(s3: S3Client, bucket: str, app_name: str, record: FailureRecord) -> None:
    """Write the record, then note it in the run's failure journal (failure_journal.py)."""
    put_object(s3, bucket, failure_key(app_name, record.job_id), record.to_json().encode("utf-8"),
               content_type="application/json")
    failure_journal.note(s3, bucket, app_name, record.job_id, failure_journal.FAILED)


def delete(s3: S3Client, bucket: str, app_name: str, job_id: str) -> None:
    """The job is done after all: its record no longer stands (S3 answers a missing key with success too), and the
    failure journal says so (whether or not there was one: S3 does not tell, and a needless entry changes no count)."""
    delete_object(s3, bucket, failure_key(app_name, job_id))
    failure_journal.note(s3, bucket, app_name, job_id, failure_journal.CLEARED)


def count(s3: S3Client, bucket: str, app_name: str, since: datetime | None = None) -> int:
    """This run's failed jobs: its record objects (readable or not), every page of the listing; with `since`,
    only those written from then on (an earlier run of the same APP_NAME may have left some)."""
    return len(job_ids(s3, bucket, app_name, since))


def list_records(s3: S3Client, bucket: str, app_name: str, since: datetime | None = None,
                 most: int | None = None) -> list[FailureRecord]:
    """Every readable record of the run (written since `since`; the first `most` listed), oldest first; an
    unreadable one is logged and skipped, and one deleted since the listing is left out. One larger than
    MAX_RECORD_BYTES is unreadable too, and never read: its listed size refuses it, and the read of one that grew
    since stops at the bound."""
    records = []
    listed = [(key, size) for key, written, size in _keys(s3, bucket, app_name) if _since(written, since)]
    for key, size in listed[:most]:
        try:
            if size > MAX_RECORD_BYTES:
                raise ObjectTooLarge(bucket, key, size, MAX_RECORD_BYTES)
            body = read_object(s3, bucket, key, max_bytes=MAX_RECORD_BYTES)
            if body is None:
                continue
            record = FailureRecord.from_json(body, document="")  # the warning names it
        except ValueError as error:
            log.warning("skipping unreadable failure record s3://%s/%s: %s", bucket, key, error)
            continue
        if failure_key(app_name, record.job_id) != key:  # a record speaks only for the job it is stored as
            log.warning("skipping failure record s3://%s/%s: it claims job %r", bucket, key, record.job_id)
            continue
        records.append(record)
    return sorted(records, key=lambda record: record.time)


def job_ids(s3: S3Client, bucket: str, app_name: str, since: datetime | None = None) -> frozenset[str]:
    """The ids of the jobs that have a record (written since `since`), every page of the listing (S3's listings
    are strongly consistent: every record written before the request is in it)."""
    prefix = failures_prefix(app_name)
    return frozenset(key[len(prefix):-len(".json")] for key, written, _ in _keys(s3, bucket, app_name)
                     if _since(written, since))


def _since(written: datetime, since: datetime | None) -> bool:
    # S3's LastModified has whole seconds: a record written in the second the run started counts
    return since is None or written >= since.replace(microsecond=0)


def _keys(s3: S3Client, bucket: str, app_name: str) -> Iterator[tuple[str, datetime, int]]:
    prefix = failures_prefix(app_name)
    for item in list_objects(s3, bucket, prefix):
        # Only records directly under the prefix: a job id never holds '/', so nothing else is one.
        if item.key.endswith(".json") and "/" not in item.key[len(prefix):]:
            yield item.key, item.last_modified, item.size
