"""`python -m tests.chaos.tick BUCKET [SECONDS [alarm]]`: one tick of the monitor Lambda, as its own process.

What app.py's `every_period` runs: the bucket's runs (those with AUTO_MONITOR) reconciled by
chalicelib.monitor.service.reconcile_runs with the Lambda's turns, looks and back-off, within SECONDS (the
Lambda's timeout); with "alarm", what `on_alarm` runs for every run (a full look at each). Its clients reach
AWS_ENDPOINT_URL with the key id the harness gives it (chaos-lambda), so the audit tells its calls from the runs'.
One JSON line per run: the actions applied, the ones skipped, any error.
A process, not a thread of the harness: the campaign SIGKILLs some ticks half-way, as Lambda's timeout would.
"""

from __future__ import annotations

import json
import sys
import time

from chalicelib.monitor import service
from chalicelib.monitor.budget import Backoff, Turns
from chalicelib.monitor.steady import LastLooks

LAMBDA_SECONDS = 60.0


def tick(bucket: str, seconds: float = LAMBDA_SECONDS, alarm: bool = False) -> list[dict]:
    deadline = time.monotonic() + seconds
    runs, unreadable = service.scan_buckets([bucket])
    outcomes = service.reconcile_runs([run for run in runs if run.record.AUTO_MONITOR],
                                      lambda: deadline - time.monotonic(), Turns(), LastLooks(), full_look=alarm,
                                      backoff=Backoff())
    lines = [{"unreadable": item.key, "reason": item.reason} for item in unreadable]
    for outcome in outcomes:
        result = outcome.result
        lines.append({"run": outcome.run.app_name,
                      "actions": [type(action).__name__ for action in result.actions] if result else [],
                      "skipped": [f"{type(action).__name__}: {why}" for action, why in result.skipped] if result
                      else [],
                      "error": None if outcome.error is None else f"{type(outcome.error).__name__}: {outcome.error}",
                      "not_reached": outcome.not_reached})
    return lines


if __name__ == "__main__":
    for line in tick(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else LAMBDA_SECONDS,
                     alarm=sys.argv[3:] == ["alarm"]):
        print(json.dumps(line), flush=True)
