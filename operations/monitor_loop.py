"""Watching one run from a terminal or local mode: reconcile on a period until the run is torn down.

The Lambda does not use this: it is invoked by its schedule and alarms instead.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from chalicelib import aws
from chalicelib.aws import Clients
from chalicelib.model.errors import UserError
from chalicelib.model.jsonfile import read_json_file
from chalicelib.monitor import status_doc
from chalicelib.monitor.actions import SaveState
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run
from chalicelib.monitor.reconcile import Reconciled, reconcile
from chalicelib.monitor.runrecord import RunRecord
from chalicelib.monitor.runs import load_run, with_current_state
from chalicelib.monitor.service import RunOutcome
from chalicelib.monitor.state_store import StateChanged, StateContended

# Reads and writes of a change of the monitor's state (a teardown request, jobs sent) while reconciles keep changing
# it in between (each writes it at most once a tick, so more than one retry is rare).
STATE_WRITE_ATTEMPTS = 5
REFUSED_RECHECK_SECONDS = 5.0


def load_or_fail(clients: Clients, bucket: str, key: str) -> Run:
    run = load_run(clients.s3, bucket, key)
    if run is None:
        raise UserError(f"no run record at s3://{bucket}/{key}: the run was never started or is already "
                        "torn down (see monitors/finished/APP_NAME_summary.json)")
    return run


def record_from_file(path: str) -> RunRecord:
    """A monitor file as start-cluster wrote it to files/ (DS's `monitor` argument)."""
    raw = read_json_file(path, UserError)
    try:
        return RunRecord.from_dict(raw, f"run record {path}")
    except ValueError as error:  # schema.SchemaError: its one line names the file and the field
        raise UserError(str(error)) from None


def request_teardown(run: Run, reason: str, clients: Clients | None = None) -> None:
    """Mark the run for teardown; the next reconciles carry it out, stopping spending first."""
    _change_state(run, lambda state: None if state.tearing_down else SaveState(
        stop_reason=reason, tearing_down=True, reason=reason), "the teardown was being requested", clients,
        then="request the teardown again")


def note_appended(run: Run, count: int, clients: Clients | None = None) -> None:
    """Count `count` jobs `submit` has just sent to the started run: its counts and summary include them (without,
    jobs sent after start-cluster and done were missing from jobs_submitted and jobs_done)."""
    if count > 0:
        _change_state(run, lambda state: SaveState(jobs_appended=state.jobs_appended + count,
                                                   reason=f"{count} job(s) submitted to the running run"),
                      "the jobs just sent were being counted", clients,
                      then="they are in the queue and will run, but the run's counts miss them")


def _change_state(run: Run, change: Callable[[MonitorState], SaveState | None], doing: str,
                  clients: Clients | None, then: str) -> None:
    """`change` of the run's state (None: nothing to change) written over the state `run` was read with, or over a
    newer one read again (state_store.py): no reconcile that read before it can write over it, and it writes over
    none of theirs. A run torn down meanwhile is left alone."""
    clients = clients or Clients(region=run.record.REGION)
    for _ in range(STATE_WRITE_ATTEMPTS):
        action = change(run.state)
        if action is None:
            return
        try:
            Applier(run, clients).apply([action])
            return
        except StateChanged:
            current = with_current_state(clients.s3, run)
            if current is None:
                return  # torn down meanwhile
            run = current
    raise StateContended(f"run {run.app_name}: its monitor state (s3://{run.bucket}/{run.state_key}) changed "
                         f"{STATE_WRITE_ATTEMPTS} times while {doing} (the monitor checking it at the same moment); "
                         f"nothing was written: {then}")


def watch(load: Callable[[], Run | None], period: float, on_tick: Callable[[Reconciled], None],
          cheapest: bool = False, sleep: Callable[[float], None] = time.sleep,
          on_error: Callable[[Exception], None] | None = None, clients: Clients | None = None) -> None:
    """Reconcile every `period` seconds until the run record is gone. Errors are reported and retried; so is a read
    of the run that AWS failed (a 5xx or a throttle past botocore's attempts: chaos seeds 28 and 30 ended local mode
    and `cli.py monitor` on one GetObject 500, the run half torn down). A record that is not a run's still stops it."""
    while True:
        try:
            run = load()
        except Exception as error:
            if not aws.transient(error):
                raise
            if on_error is not None:
                on_error(error)
            sleep(period)
            continue
        if run is None:
            return
        if cheapest and not run.record.CHEAPEST:
            run = dataclasses.replace(run, record=dataclasses.replace(run.record, CHEAPEST=True))
        try:
            tick_clients = clients or Clients(region=run.record.REGION)  # one set for the reconcile and the status
            result = reconcile(run, tick_clients)
            # what GET /runs and `status` show of a run watched from here too (the Lambda's tick writes it likewise)
            status_doc.publish(RunOutcome(run, result), tick_clients.s3)
        except Exception as error:
            if on_error is not None:
                on_error(error)
            elif not isinstance(error, StateContended):  # others wrote the state meanwhile: nothing to report
                raise
        else:
            on_tick(result)
            if result.finished:
                return
            if result.observation.refused:
                # Nothing of the run was read: checked again soon, as a refusal can be a moment's (cli.py's
                # _TickPrinter), and one that lasts is then said without waiting several periods.
                sleep(min(period, REFUSED_RECHECK_SECONDS))
                continue
        sleep(period)
