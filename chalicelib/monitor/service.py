"""What the Lambda handlers and the CLI call: reconcile or report on the watched runs.

One run failing does not stop the others: its error is returned with its name
and the next tick tries again (the schedule is the safety net).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from chalicelib import aws
from chalicelib.aws import Clients
from chalicelib.aws.s3 import read_object
from chalicelib.model.names import record_key, summary_key
from chalicelib.monitor import failed
from chalicelib.monitor.alarm_event import AlarmNotification
from chalicelib.monitor.budget import TimeLeft, Turns, enough_time
from chalicelib.monitor.observe import Run, observe
from chalicelib.monitor.reconcile import Reconciled, reconcile
from chalicelib.monitor.runs import Unreadable, UnreadableRecord, load_run, read_record, scan
from chalicelib.monitor.status import finished_status, run_status
from chalicelib.monitor.steady import LastLooks
from chalicelib.runfiles import failures

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


def reconcile_runs(runs: list[Run], time_left: TimeLeft | None = None, turns: Turns | None = None,
                   looks: LastLooks | None = None, full_look: bool = False) -> list[RunOutcome]:
    """Each run reconciled in turn (`turns`: the Lambda's, so the runs one tick did not reach go first the next),
    while `time_left` (seconds) covers one more (budget.py); a run's error never stops the others. `looks` and
    `full_look`: reconcile's (the Lambda's memory of converged runs, steady.py). The clients are made once for the
    whole call, one set per region: making them costs more CPU than a steady run's reads."""
    outcomes = []
    longest = 0.0
    clients: dict[str, Clients] = {}
    for run in turns.order(runs) if turns else runs:
        if not enough_time(time_left, longest):
            outcomes.append(RunOutcome(run, not_reached=True))
            continue
        started = time.monotonic()
        region = run.record.REGION
        try:
            outcomes.append(RunOutcome(run, result=reconcile(
                run, clients.setdefault(region, Clients(region=region)), looks=looks, full_look=full_look)))
        except Exception as error:  # noqa: BLE001 - transient: logged by the caller, retried next tick
            outcomes.append(RunOutcome(run, error=error))
        longest = max(longest, time.monotonic() - started)
        if turns:
            turns.served(run)
    return outcomes


def scan_buckets(buckets: list[str]) -> tuple[list[Run], list[Unreadable]]:
    """Every readable run, and the objects (or buckets) skipped: one bad object never hides the others."""
    return scan(aws.client("s3"), buckets)


def runs_for_alarm(notification: AlarmNotification, runs: list[Run]) -> list[Run]:
    """The runs an alarm is about (its queue). An alarm of no known run matches nothing: harmless."""
    return [run for run in runs if notification.queue_name == run.record.MONITOR_QUEUE_NAME
            or notification.alarm_name in run.record.ALARM_NAMES]


def status_of(run: Run, clients: Clients | None = None) -> dict[str, Any]:
    return run_status(observe(run, clients or Clients(region=run.record.REGION)), run.policy())


def all_statuses(buckets: list[str]) -> dict[str, Any]:
    """GET /runs: every run's status; a run whose status cannot be read now is listed with the reason."""
    runs, unreadable = scan_buckets(buckets)
    statuses = []
    for run in runs:
        try:
            statuses.append(status_of(run))
        except Exception as error:  # noqa: BLE001 - one run's AWS trouble must not hide the others
            statuses.append({"app_name": run.app_name, "state": "unavailable",
                             "reason": f"{type(error).__name__}: {aws.error_code(error) or error}"})
    return {"runs": statuses, "unreadable": [item.as_dict() for item in unreadable]}


def find_status(app_name: str, buckets: list[str], clients: Clients | None = None) -> dict[str, Any] | None:
    """A live run's status, a finished run's summary, an unreadable record's reason, or None for a run nobody
    knows. `clients`: the CLI's, made from the config's region and profile; the Lambda's own by default."""
    clients = clients or Clients()
    s3 = clients.s3
    for bucket in buckets:
        try:
            run = load_run(s3, bucket, record_key(app_name))
        except UnreadableRecord as error:
            return {"app_name": app_name, "state": "unreadable", "reason": str(error)}
        if run is not None:
            return status_of(run, clients)
        summary = read_object(s3, bucket, summary_key(app_name))
        if summary is not None:
            return finished_status(app_name, json.loads(summary))
    return None


def find_failed(app_name: str, buckets: list[str], clients: Clients | None = None) -> dict[str, Any] | None:
    """GET /runs/{app_name}/failed: the run's failed jobs, or None for a run nobody knows.

    Those are the run's failure records, except for a live run in DS image mode (its record says so): its image's
    worker writes none, so they are the messages SQS moved from the run's queue to the dead-letter queue its record
    names, read as `cli.py failed` reads them (failed.dead_letter_failures: each message is hidden only during the
    look, then visible again at once); `ignored_dead_letter_messages` counts those that name the run but came from
    another queue, left out. A record that cannot be read, or a finished run (its summary is all that is left),
    gets its failure records."""
    given = clients
    clients = clients or Clients()
    for bucket in buckets:
        try:
            record = read_record(clients.s3, bucket, record_key(app_name))
        except UnreadableRecord:  # a run all the same, whose mode is unknown
            record, known = None, True
        else:
            known = record is not None or read_object(clients.s3, bucket, summary_key(app_name)) is not None
        if not known:
            continue
        if record is not None and record.DS_IMAGE_MODE:
            sqs = (given or Clients(region=record.REGION)).sqs  # the Lambda's own, in the run's region
            found = (failed.dead_letter_failures(sqs, record.DEAD_LETTER_QUEUE_URL, app_name,
                                                  record.MONITOR_QUEUE_NAME)
                      if record.DEAD_LETTER_QUEUE_URL else failed.FailedJobs([]))
        else:
            found = failed.FailedJobs(failures.list_records(clients.s3, bucket, app_name))
        return {"app_name": app_name, "failed": [job.public() for job in found.records],
                "ignored_dead_letter_messages": found.ignored_dead_letters}
    return None
