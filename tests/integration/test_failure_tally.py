"""Failure counts kept incrementally: the Lambda lists a run's failure records once, then reads only the failure
journal's news (chalicelib/monitor/failure_tally.py); the records stay the truth, counted fully now and then, before
the failure breaker stops a run, and while it tears down.

Every S3 listing is counted at botocore's provide-client-params event, by the prefix it asks for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from chalicelib.aws import Clients
from chalicelib.aws import client as aws_client
from chalicelib.model.names import failure_journal_prefix, failure_key, failures_prefix
from chalicelib.monitor import actions as act
from chalicelib.monitor.failure_tally import LATE_SECONDS, RECOUNT_SECONDS, FailureTallies
from chalicelib.monitor.observe import observe
from chalicelib.monitor.reconcile import reconcile
from chalicelib.monitor.steady import LastLooks
from chalicelib.runfiles import failure_journal, failures
from operations.monitor_loop import request_teardown
from tests.integration.world import reconcile_until_gone, the_run
from tests.worker_world import s3_keys

APP = "TestApp"
RECORDS, JOURNAL = failures_prefix(APP), failure_journal_prefix(APP)


class Clock:
    """The tally's clock: the real one (the journal's entries are stamped with it) moved on at will."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@contextmanager
def listings(s3) -> Iterator[Counter[str]]:
    """Each ListObjectsV2 the client sends, by its prefix."""
    asked: Counter[str] = Counter()

    def note(params, **_: object) -> None:
        asked[params.get("Prefix", "")] += 1

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", note)
    try:
        yield asked
    finally:
        s3.meta.events.unregister("provide-client-params.s3.ListObjectsV2", note)


def started_at(run) -> datetime:
    return datetime.fromtimestamp(run.record.MONITOR_START_TIME / 1000, UTC)


def record(job_id: str) -> failures.FailureRecord:
    return failures.FailureRecord(job_id=job_id, attempts=3, reason="exit code 1", exit_code=1, last_lines=(),
                                  message_body="{}", time=time.time(), instance_id=None)


def fail(s3, bucket: str, job_id: str) -> None:
    """A worker's last attempt failed: the record, then its journal entry."""
    failures.put(s3, bucket, APP, record(job_id))


def by_hand(s3, bucket: str, job_id: str) -> None:
    """A record with no journal entry (written by hand, or by a version before the journal)."""
    s3.put_object(Bucket=bucket, Key=failure_key(APP, job_id), Body=record(job_id).to_json().encode())


def stamped(s3, bucket: str, seconds: float, kind: failure_journal.Kind, job_id: str) -> None:
    """A journal entry stamped `seconds` from now (a writer late to land, or with its clock off)."""
    entry = failure_journal.Entry(int((time.time() + seconds) * 1000), kind, job_id)
    s3.put_object(Bucket=bucket, Key=failure_journal.entry_key(APP, entry), Body=b"")


def test_after_the_first_count_a_look_reads_the_journals_news_not_every_record(started):
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    for number in range(1_001):  # two pages of records, from before this container
        by_hand(s3, bucket, f"old{number:04d}")
    run, tallies = the_run(started), FailureTallies()
    since = started_at(run)
    with listings(s3) as asked:
        assert tallies.count(s3, run, since) == 1_001
    assert asked == {RECORDS: 2}

    fail(s3, bucket, "new1")
    fail(s3, bucket, "new2")
    fail(s3, bucket, "new2")  # SQS delivered its last attempt twice: one failed job
    failures.delete(s3, bucket, APP, "old0007")  # redriven and done
    failures.delete(s3, bucket, APP, "never-failed")  # a retried job done: S3 cannot tell it had no record
    with listings(s3) as asked:
        counted = [tallies.count(s3, run, since) for _ in range(2)]  # the same entries applied again: no change
    assert asked == {JOURNAL: 2}
    assert counted == [1_002, 1_002] and failures.count(s3, bucket, APP) == 1_002

    fail(s3, bucket, "old0007")  # redriven, and failed again
    assert tallies.count(s3, run, since) == 1_003 == failures.count(s3, bucket, APP)


def test_an_entry_that_lands_late_counts_and_one_stamped_ahead_waits_for_our_clock(started):
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    run, clock = the_run(started), Clock()
    tallies, since = FailureTallies(clock), started_at(run) - timedelta(minutes=10)  # a run started a while ago
    assert tallies.count(s3, run, since) == 0
    by_hand(s3, bucket, "slow")
    stamped(s3, bucket, -LATE_SECONDS / 2, failure_journal.FAILED, "slow")  # stamped before that look, landed after
    by_hand(s3, bucket, "ahead")
    stamped(s3, bucket, 30, failure_journal.FAILED, "ahead")  # its writer's clock is 30 s ahead of ours
    assert tallies.count(s3, run, since) == 1
    clock.ahead = 31
    assert tallies.count(s3, run, since) == 2


def test_what_the_journal_misses_is_counted_at_the_next_full_count(started):
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    run, clock = the_run(started), Clock()
    tallies, since = FailureTallies(clock), started_at(run) - timedelta(minutes=10)
    assert tallies.count(s3, run, since) == 0
    by_hand(s3, bucket, "quiet")
    stamped(s3, bucket, -LATE_SECONDS * 2, failure_journal.FAILED, "late")  # later than any look waits for
    assert tallies.count(s3, run, since) == 0
    clock.ahead = RECOUNT_SECONDS
    with listings(s3) as asked:
        assert tallies.count(s3, run, since) == 1  # the records: "late" has none
    assert asked == {RECORDS: 1}


def test_entries_from_before_the_runs_start_and_keys_of_another_shape_count_nothing(started):
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    run = the_run(started)
    tallies, since = FailureTallies(), started_at(run)
    assert tallies.count(s3, run, since) == 0
    start_ms = run.record.MONITOR_START_TIME
    s3.put_object(Bucket=bucket, Body=b"", Key=failure_journal.entry_key(
        APP, failure_journal.Entry(start_ms - 1_000, failure_journal.FAILED, "earlier-run")))
    for odd in ("9999999999999-f-a/b", "9999999999999-x-job", "123-f-short", "0000000000000-f-"):
        s3.put_object(Bucket=bucket, Key=JOURNAL + odd, Body=b"")
    assert tallies.count(s3, run, since) == 0


def test_journal_entries_alone_never_stop_a_run_the_breaker_counts_its_records(started):
    """A job may write journal entries (its task role writes the run's files): what they claim moves the count the
    tally keeps, but the breaker (STOP_AFTER_FAILED_JOBS, 5 here) trips only on a full count of the records."""
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    looks, clients = LastLooks(), Clients(region=started.settings.AWS_REGION)
    assert reconcile(the_run(started), clients, looks=looks, full_look=True).observation.failed == 0
    for number in range(6):
        stamped(s3, bucket, 0, failure_journal.FAILED, f"claimed{number}")
    reconciled = reconcile(the_run(started), clients, looks=looks, full_look=True)
    assert reconciled.observation.failed == 0
    assert not any(isinstance(action, act.CancelFleet) for action in reconciled.actions)

    for number in range(6):  # failed for real: the records are there
        fail(s3, bucket, f"real{number}")
    reconciled = reconcile(the_run(started), clients, looks=looks, full_look=True)
    assert reconciled.observation.failed == 6
    assert any(isinstance(action, act.CancelFleet) for action in reconciled.actions)


def test_a_run_tearing_down_counts_its_records_and_its_journal_goes_with_it(started):
    s3, bucket = aws_client("s3"), started.settings.AWS_BUCKET
    looks, clients = LastLooks(), Clients(region=started.settings.AWS_REGION)
    fail(s3, bucket, "P1")
    assert reconcile(the_run(started), clients, looks=looks, full_look=True).observation.failed == 1
    by_hand(s3, bucket, "P2")  # no entry: a look from the journal would miss it
    request_teardown(the_run(started), "user asked")
    run = the_run(started)
    with listings(clients.s3) as asked:
        observation = observe(run, clients, tallies=looks.failures)
    assert observation.failed == 2 and asked[RECORDS] == 1
    reconcile_until_gone(started)
    # the records stay for a later redrive; the journal was only the monitor's
    assert s3_keys(s3, bucket, f"runs/{APP}/") == [failure_key(APP, "P1"), failure_key(APP, "P2")]
