"""The failure journal: each failure record's write and removal, noted in time order, so counting costs what changed.

A run's failure records (failures.py) are keyed by job, and S3 lists only in key order: the one way to learn how many
there are is to list them all, a page per 1,000, which for a run with 100,000 failed jobs is 100 calls on every look.
So whoever writes or removes a record (failures.put and failures.delete: the worker, `cli.py redrive`) also puts an
empty object `runs/APP_NAME/failure-journal/<epoch ms, 13 digits>-<f|c>-<job id>` (f: failed, c: cleared). Their keys
sort by time, so the monitor lists only the entries since it last looked (ListObjectsV2 StartAfter) and keeps the set
of failed jobs in its warm memory (chalicelib/monitor/failure_tally.py). The records stay the truth: the journal is a
hint the monitor checks against a full count now and then, and at the end.

Entries are written by workers, whose jobs are untrusted code: a key that is not this shape is ignored, and what an
entry claims moves only the count a full one corrects, as a record written by hand would.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from chalicelib.aws.s3 import list_objects, put_object
from chalicelib.model.jobs import MAX_JOB_ID_LENGTH
from chalicelib.model.names import failure_journal_prefix

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

Kind = Literal["f", "c"]
FAILED: Kind = "f"
CLEARED: Kind = "c"
_ENTRY = re.compile(rf"(\d{{13}})-([fc])-([^/]{{1,{MAX_JOB_ID_LENGTH}}})")


@dataclass(frozen=True)
class Entry:
    ms: int  # the writer's clock, epoch milliseconds, taken after the record's write or removal
    kind: Kind
    job_id: str


def note(s3: S3Client, bucket: str, app_name: str, job_id: str, kind: Kind) -> None:
    """Put the entry for what was just done to `job_id`'s record (after it: an entry never precedes its change)."""
    put_object(s3, bucket, entry_key(app_name, Entry(int(time.time() * 1000), kind, job_id)), b"")


def entry_key(app_name: str, entry: Entry) -> str:
    return f"{failure_journal_prefix(app_name)}{entry.ms:013d}-{entry.kind}-{entry.job_id}"


def entries_from(s3: S3Client, bucket: str, app_name: str, from_ms: int) -> list[Entry]:
    """The run's entries noted at `from_ms` or later, oldest first (every page; a key of another shape skipped)."""
    prefix = failure_journal_prefix(app_name)
    # "<ms>" sorts before every "<ms>-..." key, and after every key of an earlier millisecond
    listed = list_objects(s3, bucket, prefix, start_after=f"{prefix}{max(from_ms, 0):013d}")
    matches = (_ENTRY.fullmatch(item.key[len(prefix):]) for item in listed)
    return [Entry(int(match[1]), FAILED if match[2] == FAILED else CLEARED, match[3]) for match in matches if match]
