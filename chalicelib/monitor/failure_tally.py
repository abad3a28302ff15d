"""Each run's failed jobs kept in the warm Lambda's memory, brought up to date from the failure journal.

Counting a run's failure records means listing them all (a page per 1,000: 100 calls a look at 100,000 failed jobs).
A tally lists them once, keeps the set of failed job ids, and on later looks reads only the failure journal's
entries since (chalicelib/runfiles/failure_journal.py: usually none, one call). Each look re-reads the last
LATE_SECONDS of entries and applies them again in time order, so an entry whose PUT landed after the previous look
but is stamped before it still counts (applying one twice changes nothing: a job's last entry decides). Full counts,
which the tally then starts from, are made:
- on a run's first look in this container (a cold start, or the run is new to it);
- every RECOUNT_SECONDS, which bounds what the journal cannot see: an entry later than LATE_SECONDS (a writer stalled
  between its record and its entry, a clock behind ours by more than that), a record written or removed without one
  (by hand, by a job, by a version before the journal);
- when the count would trip the failure breaker (breaker.py): the run is stopped only on records counted;
- while the run tears down, so the summary's count is the records', exactly.
An entry stamped later than our clock (a writer's clock ahead) waits until ours reaches it.

Only the Lambda keeps tallies (steady.LastLooks holds them); `cli.py status`, `cli.py monitor` and local mode count
fully on every look, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.runfiles import failure_journal, failures

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

    from chalicelib.monitor.observe import Run

# How far back each look re-reads the journal: longer than any writer's PUT, retries included, takes to land.
LATE_SECONDS = 120.0
# The longest a tally goes without a full count.
RECOUNT_SECONDS = 900.0


@dataclass
class _Tally:
    failed: set[str]
    read_from_ms: int  # the next look reads the journal's entries from here
    counted_at: float


class FailureTallies:
    """Each run's tally, by its identity (observe.Run.identity)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._tallies: dict[tuple[str, str, int], _Tally] = {}

    def count(self, s3: S3Client, run: Run, since: datetime, exact: bool = False) -> int:
        """The run's failed jobs since `since` (its start); `exact`: a full count, not from the journal."""
        now = self._clock()
        tally = self._tallies.get(run.identity)
        if exact or tally is None or not 0 <= now - tally.counted_at < RECOUNT_SECONDS:
            failed = set(failures.job_ids(s3, run.bucket, run.app_name, since))
            # The journal is read next from LATE_SECONDS before this listing: an entry noted before it but
            # landed after it is then applied; one that did land is in the listing already and changes nothing.
            self._tallies[run.identity] = _Tally(failed, _ms(now - LATE_SECONDS), now)
            return len(failed)
        now_ms, since_ms = _ms(now), _ms(since.timestamp())
        for entry in failure_journal.entries_from(s3, run.bucket, run.app_name, tally.read_from_ms):
            if since_ms <= entry.ms <= now_ms:
                (tally.failed.add if entry.kind == failure_journal.FAILED else tally.failed.discard)(entry.job_id)
        tally.read_from_ms = now_ms - _ms(LATE_SECONDS)
        return len(tally.failed)

    def forget(self, run: Run) -> None:
        """The run is finished (its record removed): nothing of it is kept."""
        self._tallies.pop(run.identity, None)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
