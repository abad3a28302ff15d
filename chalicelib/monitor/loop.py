"""Watching one run from a terminal or local mode: reconcile on a period until the run is torn down.

The Lambda does not use this: it is invoked by its schedule and alarms instead.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from chalicelib.errors import UserError
from chalicelib.monitor.actions import SaveState
from chalicelib.monitor.apply import Applier
from chalicelib.aws import Clients
from chalicelib.monitor.observe import Run
from chalicelib.monitor.reconcile import Reconciled, reconcile
from chalicelib.monitor.runs import load_run
from chalicelib.runrecord import RunRecord
from chalicelib.jsonfile import read_json_file


def load_or_fail(clients: Clients, bucket: str, key: str) -> Run:
    run = load_run(clients.s3, bucket, key)
    if run is None:
        raise UserError(f"no run record at s3://{bucket}/{key}: the run was never started or is already "
                        "torn down (see monitors/APP_NAME_summary.json)")
    return run


def record_from_file(path: str) -> RunRecord:
    """A monitor file as start-cluster wrote it to files/ (DS's `monitor` argument)."""
    raw = read_json_file(path, UserError)
    try:
        return RunRecord.from_dict(raw)
    except (ValueError, TypeError, KeyError) as error:
        raise UserError(f"{path}: not a run record ({error})") from None


def request_teardown(run: Run, reason: str, clients: Clients | None = None) -> None:
    """Mark the run for teardown; the next reconciles carry it out, stopping spending first."""
    if not run.state.tearing_down:
        Applier(run, clients or Clients(region=run.record.REGION)).apply([SaveState(
            stop_reason=reason, tearing_down=True, reason=reason)])


def watch(load: Callable[[], Run | None], period: float, on_tick: Callable[[Reconciled], None],
          cheapest: bool = False, sleep: Callable[[float], None] = time.sleep,
          on_error: Callable[[Exception], None] | None = None, clients: Clients | None = None) -> None:
    """Reconcile every `period` seconds until the run record is gone. Errors are reported and retried."""
    while True:
        run = load()
        if run is None:
            return
        if cheapest and not run.record.CHEAPEST:
            run = dataclasses.replace(run, record=dataclasses.replace(run.record, CHEAPEST=True))
        try:
            result = reconcile(run, clients)
        except Exception as error:  # noqa: BLE001 - transient: the next tick retries
            if on_error is None:
                raise
            on_error(error)
        else:
            on_tick(result)
            if result.finished:
                return
        sleep(period)
