"""What the Lambda handlers and the CLI call: reconcile or report on the watched runs.

One run failing does not stop the others: its error is returned with its name
and the next tick tries again (the schedule is the safety net).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import aws
from chalicelib.aws import Clients
from chalicelib.aws.ec2 import FleetState, all_fleet_states, is_spot_fleet
from chalicelib.model.names import STATUS_INDEX_KEY, record_key
from chalicelib.monitor import failed, run_summary, status_doc, status_index
from chalicelib.monitor.alarm_event import AlarmNotification
from chalicelib.monitor.budget import Backoff, TimeLeft, Turns, enough_time
from chalicelib.monitor.observe import Run, observe
from chalicelib.monitor.reconcile import Reconciled, reconcile
from chalicelib.monitor.runs import Unreadable, UnreadableRecord, listing_problem, load_run, read_record, scan
from chalicelib.monitor.status import finished_status, run_status
from chalicelib.monitor.steady import LastLooks
from chalicelib.runfiles import failures

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

BUCKETS_ENV = "MONITOR_BUCKETS"


def watched_buckets() -> list[str]:
    """The buckets whose runs the Lambda watches: MONITOR_BUCKETS in .chalice/config.json, comma-separated."""
    return [name.strip() for name in os.environ.get(BUCKETS_ENV, "").split(",") if name.strip()]


@dataclass
class RunOutcome:
    run: Run
    result: Reconciled | None = None
    error: Exception | None = None
    not_reached: bool = False  # the tick's time ran out before this run's turn: first in turn next tick
    backed_off: bool = False  # its reconcile failed on its last tries: it sits this tick out (budget.Backoff)


def reconcile_runs(runs: list[Run], time_left: TimeLeft | None = None, turns: Turns | None = None,
                   looks: LastLooks | None = None, full_look: bool = False, backoff: Backoff | None = None,
                   report: Callable[[RunOutcome], None] | None = None, concurrency: int = 1) -> list[RunOutcome]:
    """Each run reconciled in turn (`turns`: the Lambda's, so the runs one tick did not reach go first the next),
    `concurrency` of them at a time, each started while `time_left` (seconds) covers one more (budget.py); a run's
    error never stops the others, and with `backoff` a run whose reconcile keeps failing sits out more and more
    ticks. `looks` and `full_look`: reconcile's (the Lambda's memory of converged runs, steady.py). `report` gets
    each run's outcome as soon as it has one: a tick cut by its timeout has logged every run it finished. The
    clients are made once for the whole call, one set per region, shared by the threads: making them costs more
    CPU than a steady run's reads. The outcomes are in the order the runs were taken."""
    clients = {region: Clients(region=region) for region in sorted({run.record.REGION for run in runs})}
    documents = aws.client("s3")  # where the status documents go: the buckets are read from this region (scan)
    fleets = _fleet_listings(runs, clients) if looks is not None and not full_look else {}
    ordered = turns.order(runs) if turns else runs
    outcomes: list[RunOutcome | None] = [None] * len(ordered)
    next_run = iter(enumerate(ordered))
    longest = 0.0  # the longest reconcile of this call so far, which the next start must have time for
    lock = threading.Lock()  # the next run, its budget, turns, backoff and report: one thread at a time
    if backoff:
        backoff.next_tick()

    def take() -> tuple[int, Run] | None:
        """The next run in turn to reconcile, deciding under the lock (so in turn order) which ones sit out."""
        for index, run in next_run:
            if backoff and not backoff.due(run):
                outcomes[index] = RunOutcome(run, backed_off=True)
            elif not enough_time(time_left, longest):
                outcomes[index] = RunOutcome(run, not_reached=True)
            else:
                return index, run
        return None

    def work() -> None:
        nonlocal longest
        while True:
            with lock:
                taken = take()
            if taken is None:
                return
            index, run = taken
            started = time.monotonic()
            try:
                outcome = RunOutcome(run, result=reconcile(run, clients[run.record.REGION], looks=looks,
                                                           full_look=full_look, fleets=fleets.get(run.record.REGION)))
            except Exception as error:  # noqa: BLE001 - transient: logged by the caller, retried next tick
                outcome = RunOutcome(run, error=error)
            _publish(outcome, documents)
            with lock:
                outcomes[index] = outcome
                longest = max(longest, time.monotonic() - started)
                if turns:
                    turns.served(run)
                if backoff:
                    (backoff.succeeded if outcome.error is None else backoff.failed)(run)
                if report:
                    report(outcome)

    threads = min(concurrency, len(ordered))
    if threads <= 1:
        work()
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reconcile") as pool:
            for running in [pool.submit(work) for _ in range(threads)]:
                running.result()
    return [outcome for outcome in outcomes if outcome is not None]


def _fleet_listings(runs: list[Run], clients: dict[str, Clients]) -> dict[str, dict[str, FleetState]]:
    """Each region's fleets, one listing for all its runs' steady checks (ec2.all_fleet_states); a region whose
    listing fails is left out, and its runs ask for their own fleets as without it."""
    listings = {}
    for region, regional in clients.items():
        spot = any(is_spot_fleet(run.record.MONITOR_FLEET_ID) for run in runs if region == run.record.REGION)
        try:
            listings[region] = all_fleet_states(regional.ec2, spot_fleets=spot)
        except Exception:  # noqa: BLE001 - an optimisation only: the per-run reads report what is wrong
            continue
    return listings


def scan_buckets(buckets: list[str]) -> tuple[list[Run], list[Unreadable]]:
    """Every readable run, and the objects (or buckets) skipped: one bad object never hides the others."""
    return scan(aws.client("s3"), buckets)


def runs_for_alarm(notification: AlarmNotification, runs: list[Run]) -> list[Run]:
    """The runs an alarm is about (its queue). An alarm of no known run matches nothing: harmless."""
    return [run for run in runs if notification.queue_name == run.record.MONITOR_QUEUE_NAME
            or notification.alarm_name in run.record.ALARM_NAMES]


def status_of(run: Run, clients: Clients | None = None) -> dict[str, Any]:
    return run_status(observe(run, clients or Clients(region=run.record.REGION)), run.policy())


# GET /runs reads the status documents the bucket's index lacks (status_index.py) this many at a time: S3 answers
# each in 20-50 ms, so 1,000 runs read one by one take 3-4 s (the client's own CPU, 2 ms a read, is most of it;
# bench/README.md), within API Gateway's 29 s; below the client's connection pool (aws.MAX_POOL_CONNECTIONS)
READERS = status_index.READERS


def all_statuses(buckets: list[str]) -> dict[str, Any]:
    """GET /runs: every run's status as the monitor's last tick wrote it, never the runs' live resources: a listing
    of monitors/ and the index of each bucket (status_index.py), and a read of each run's document the index does
    not hold as listed (status_doc.py), concurrently. A run the monitor has not looked at yet is listed as starting;
    a record or document that cannot be read is listed with the reason."""
    s3 = aws.client("s3")
    answers: list[dict[str, Any] | Unreadable | tuple[str, str]] = []  # (bucket, record key): to be read
    for bucket in buckets:
        try:
            listed = status_index.listing(s3, bucket)
        except Exception as error:  # noqa: BLE001 - one bucket's trouble must not hide the others
            answers.append(Unreadable(bucket, "", listing_problem(error)))
            continue
        try:
            indexed = listed.fresh(status_index.read(s3, bucket)) if listed.documents else {}
        except Exception:  # noqa: BLE001 - an optimisation only: each run is then read from its document
            indexed = {}
        answers += [indexed[app] if app in indexed else (bucket, record_key(app)) for app in listed.runs]
    unread = [answer for answer in answers if isinstance(answer, tuple)]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        read = dict(zip(unread, pool.map(lambda where: _last_status(s3, *where), unread), strict=True))
    answers = [read[answer] if isinstance(answer, tuple) else answer for answer in answers]
    return {"runs": [answer for answer in answers if isinstance(answer, dict)],
            "unreadable": [answer.as_dict() for answer in answers if isinstance(answer, Unreadable)]}


def _last_status(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | Unreadable:
    """One listed run: its status document, or when there is none yet its record and state, read as the tick
    reads them to tell a run from an object that is not one."""
    app_name = status_doc.app_name_of(key)
    try:
        status = status_doc.read(s3, bucket, app_name)
        if status is not None:
            return status
        run = load_run(s3, bucket, key)
        if run is None:  # torn down since the listing
            return {"app_name": app_name, "state": "unavailable", "reason": "torn down while listed"}
        return status_doc.starting(app_name, watched=run.record.AUTO_MONITOR)
    except UnreadableRecord as error:
        return Unreadable(bucket, key, str(error).split(": ", 1)[1])
    except Exception as error:  # noqa: BLE001 - one run's trouble must not hide the others
        return {"app_name": app_name, "state": "unavailable",
                "reason": f"{type(error).__name__}: {aws.error_code(error) or error}"}


def refresh_indexes(buckets: list[str]) -> list[Unreadable]:
    """After the scheduled tick: each bucket's status index brought up to its documents (status_index.refresh); the
    buckets whose index could not be, and why (GET /runs then reads their runs' documents)."""
    s3 = aws.client("s3")
    failed_buckets = []
    for bucket in buckets:
        try:
            status_index.refresh(s3, bucket)
        except Exception as error:  # noqa: BLE001 - one bucket's trouble must not stop the others
            why = f"not refreshed ({type(error).__name__}: {aws.error_code(error) or error})"
            failed_buckets.append(Unreadable(bucket, STATUS_INDEX_KEY, why))
    return failed_buckets


def find_status(app_name: str, buckets: list[str], clients: Clients | None = None,
                live: bool = True) -> dict[str, Any] | None:
    """A run's status, a finished run's summary, an unreadable record's reason, or None for a run nobody knows.
    `live` False: the status document of the monitor's last tick (one read: the API's), the run observed now only
    when there is none (not looked at yet, or not watched by the Lambda: AUTO_MONITOR false). `clients`: the CLI's,
    made from the config's region and profile; the Lambda's own by default."""
    clients = clients or Clients()
    s3 = clients.s3
    for bucket in buckets:
        if not live:
            try:
                status = status_doc.read(s3, bucket, app_name)
            except (ValueError, RecursionError):  # unreadable (or too large): the run is looked at instead
                status = None
            if status is not None:
                return status
        try:
            run = load_run(s3, bucket, record_key(app_name))
        except UnreadableRecord as error:
            return {"app_name": app_name, "state": "unreadable", "reason": str(error)}
        if run is not None:
            return status_of(run, clients)
        summary = run_summary.find(s3, bucket, app_name)
        if summary is not None:
            try:
                return finished_status(app_name, summary.parse())
            except ValueError as error:
                return {"app_name": app_name, "state": "unreadable", "reason": f"not a run summary: {error}"}
    return None


class StatusNotWritten(Exception):
    """Reported as the run's error, so the tick logs it and counts it in ReconcileErrors; the next writes it."""


def _publish(outcome: RunOutcome, s3: S3Client) -> None:
    """A run's status document after its reconcile (status_doc.py)."""
    try:
        written = status_doc.publish(outcome, s3)
        if written is not None:
            status_index.remember(outcome.run.bucket, status_doc.app_name_of(outcome.run.key), written)
    except Exception as error:  # noqa: BLE001 - the reconcile went through; only the document is late
        done = len(outcome.result.actions) if outcome.result else 0
        outcome.result, outcome.error = None, StatusNotWritten(
            f"its reconcile went through ({done} action(s)) but its status document was not written: "
            f"{type(error).__name__}: {aws.error_code(error) or error}")


# How long GET /runs/{app}/failed reads a live run's dead-letter queue: the API's function stops at 30 s
# (.chalice/config.json), and what was read must still be released and returned.
API_SWEEP_SECONDS = 20
# How long it then lists the outputs of dead-lettered jobs with no failure record, to leave out those done after all
# (failed.not_done): one listing each, a fraction of a second; the rest are listed as failed, the answer incomplete.
API_DONE_CHECK_SECONDS = 5


def find_failed(app_name: str, buckets: list[str], clients: Clients | None = None) -> dict[str, Any] | None:
    """GET /runs/{app_name}/failed: the run's failed jobs, or None for a run nobody knows.

    Those are the run's failure records and, for a live run, the messages SQS moved from the run's queue to the
    dead-letter queue its record names whose job has none; in DS image mode (its record says so) only those
    messages, its image's worker writing no record; a dead-lettered job whose outputs are complete is left out
    (failed.run_failures). They are read as `cli.py failed` reads them (failed.dead_letter_failures: each message is
    hidden only during the look, then visible again at once); `ignored_dead_letter_messages` counts those that name
    the run but came from another queue, left out. A record that cannot be read, or a finished run (its summary is
    all that is left), gets its failure records."""
    given = clients
    clients = clients or Clients()
    for bucket in buckets:
        try:
            record = read_record(clients.s3, bucket, record_key(app_name))
        except UnreadableRecord:  # a run all the same, whose mode is unknown
            record, known = None, True
        else:
            known = record is not None or run_summary.find(clients.s3, bucket, app_name) is not None
        if not known:
            continue
        dead_lettered = failed.FailedJobs([])
        if record is not None and record.DEAD_LETTER_QUEUE_URL:
            sqs = (given or Clients(region=record.REGION)).sqs  # the Lambda's own, in the run's region
            dead_lettered = failed.dead_letter_failures(sqs, record.DEAD_LETTER_QUEUE_URL, app_name,
                                                        record.MONITOR_QUEUE_NAME, clients.s3, bucket,
                                                        seconds=API_SWEEP_SECONDS)
        ds_image_mode = record is not None and record.DS_IMAGE_MODE
        records = None if ds_image_mode else failures.list_records(clients.s3, bucket, app_name)
        found = failed.run_failures(dead_lettered, records, clients.s3, record.OUTPUTS if record else None,
                                    seconds=API_DONE_CHECK_SECONDS)
        document = {"app_name": app_name, "failed": [job.public() for job in found.records],
                    "ignored_dead_letter_messages": found.ignored_dead_letters, "complete": found.complete}
        if not found.complete:
            document["note"] = (f"the dead-letter queue was not read whole within {API_SWEEP_SECONDS} s (it holds more "
                                "than that of reading, or another reader held part of it), or its jobs' outputs not "
                                f"all listed within {API_DONE_CHECK_SECONDS} s more; this is what was read. "
                                "`python cli.py failed` reads all of it")
        return document
    return None
