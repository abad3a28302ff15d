"""One tick's time, shared fairly: the Lambda is stopped at its timeout wherever it is, so a run's reconcile starts
only while the time left covers it, and the runs a tick did not reach go first the next tick.

Without this, one run whose reconcile is slow (a job can make it so: thousands of records to list) would have
the runs after it cut off at the timeout on every tick, in the same order each time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

from chalicelib.monitor.observe import Run

# Seconds a reconcile may take beyond the longest one seen this tick: one call that hangs and is retried, at the
# Lambda's limits (aws.LAMBDA_CALL_SECONDS, 41 s); the monitor's timeout is 300 s (.chalice/config.json).
MARGIN_SECONDS = 45.0

TimeLeft = Callable[[], float]  # seconds until the invocation is stopped

# Runs one Lambda tick reconciles at a time, on threads sharing its clients. A reconcile waits on AWS nearly all its
# time (a steady run: two calls of 20-50 ms, a few ms of CPU), so threads multiply what one invocation finishes in
# a minute: 1,000 runs make some 3,000-5,000 calls a tick, 150-250 s one after another at 50 ms a call, 10-16 s
# sixteen at a time (bench/README.md). Below the clients' connection pools (aws.MAX_POOL_CONNECTIONS) and AWS's
# per-account request rates (EC2's are the tightest: some 100 Describe calls a second before throttling).
CONCURRENT_RUNS = 16


def enough_time(time_left: TimeLeft | None, longest: float) -> bool:
    """True while one more reconcile fits: the longest of this tick's so far, plus the margin."""
    return time_left is None or time_left() >= longest + MARGIN_SECONDS


class Turns:
    """The order of a tick's runs: the one reconciled longest ago first.

    Kept in the Lambda's memory between ticks (the function runs in one container at a time). A new container
    (a cold start, or after a timeout, which replaces it) knows no turns: runs never reconciled here are then taken
    in the given order started at another run each minute, so that no run waits behind the same slow one on
    every tick even when each tick ends in a timeout."""

    def __init__(self) -> None:
        self._served: dict[tuple[str, str, int], int] = {}
        self._count = itertools.count(1)

    def order(self, runs: Iterable[Run], now: float | None = None) -> list[Run]:
        runs = list(runs)
        start = int((time.time() if now is None else now) // 60) % len(runs) if runs else 0
        rotated = runs[start:] + runs[:start]
        return sorted(rotated, key=lambda run: self._served.get(run.identity, 0))  # stable: ties stay rotated

    def served(self, run: Run) -> None:
        self._served[run.identity] = next(self._count)


# The most ticks a run whose reconcile keeps failing waits between two tries (about a quarter of an hour at the
# default period): a failure that lasts (a role that lost a right, a region that does not answer) is still retried,
# and logged, several times an hour.
MAX_SKIPPED_TICKS = 15


class Backoff:
    """Runs whose reconcile keeps failing are tried less often: after the k-th failure in a row a run sits out
    2**(k-1) - 1 ticks (0, 1, 3, 7, then MAX_SKIPPED_TICKS), so one broken run never spends every tick's time (its
    calls back off and time out) while the others wait. A success forgets it. Kept in the Lambda's memory, as Turns."""

    def __init__(self) -> None:
        self._tick = 0
        self._failures: dict[tuple[str, str, int], tuple[int, int]] = {}  # run -> (failures in a row, next tick)

    def next_tick(self) -> None:
        self._tick += 1

    def due(self, run: Run) -> bool:
        return self._failures.get(run.identity, (0, 0))[1] <= self._tick

    def failed(self, run: Run) -> None:
        failures = self._failures.get(run.identity, (0, 0))[0] + 1
        self._failures[run.identity] = (failures, self._tick + 1 + min(2 ** (failures - 1) - 1, MAX_SKIPPED_TICKS))

    def succeeded(self, run: Run) -> None:
        self._failures.pop(run.identity, None)
