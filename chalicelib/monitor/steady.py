"""A steady tick costs two calls a run: the last full look at each converged run, kept in the warm Lambda's memory.

A full observe is some twenty calls a run (and more with its machines); a run that has converged (its plan is
empty) changes only when its queue or its fleet does. So the schedule's tick first reads those two (observe.Pulse),
and when they are exactly what the last full look saw, the state is the one it saw (same ETag) and the record the
same, it plans on that look at the current time: an empty plan ends the tick there. Anything else (a difference, a
plan that would act, a look older than FULL_OBSERVE_SECONDS, a run tearing down, an alarm) is a full observe, and
every action is decided from a full, fresh one: this path only ever decides to do nothing, so it can delay a
decision that the two reads cannot see (a failure record, a replaced machine at the same count, a tag removed from
the queue) by at most FULL_OBSERVE_SECONDS, and never acts on what it did not see.

Only the Lambda keeps looks (app.py passes them in); a cold container, `cli.py monitor`, local mode and any caller
that passes none observe fully on every check. The looks carry the runs' failure tallies too (failure_tally.py): a
full look counts failed jobs from the failure journal's news, not by listing every record.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

from chalicelib.monitor.actions import Action
from chalicelib.monitor.failure_tally import FailureTallies
from chalicelib.monitor.observation import Observation
from chalicelib.monitor.observe import Pulse, Run
from chalicelib.monitor.plan import plan
from chalicelib.monitor.runrecord import RunRecord

# The longest a converged run goes without a full observe: what the pulse cannot see (failure records, a machine
# replaced at the same count, tags and alarms) is looked at this often, five of the schedule's ticks; a decision
# the pulse does see (the queue or the fleet moved, the time limits, cheapest mode) is taken on the tick it occurs.
FULL_OBSERVE_SECONDS = 300.0
# Each run's own limit lies between half of it and all of it, fixed by the run's identity: runs started together
# (a lab's batch, or every run after a cold start) would otherwise all need their full look on the same tick, and
# that tick would cost what every tick cost before (bench/README.md: 100 runs, 88 s at 50 ms a call, against the
# 60 s schedule); spread, a fifth to a half of them look fully on any one tick.
SPREAD = 0.5


@dataclass(frozen=True)
class _Look:
    observation: Observation  # full, fresh, not refused, and its plan was empty
    pulse: Pulse
    record: RunRecord
    state_etag: str | None


class LastLooks:
    """Each converged run's last full look, by where its record was found and when it started (as budget.Turns:
    a run started again under its name is a new one)."""

    def __init__(self) -> None:
        self._looks: dict[tuple[str, str, int], _Look] = {}
        # the runs' failed jobs, kept with the looks: a full look reads only the failure journal's news
        self.failures = FailureTallies()

    def steady(self, run: Run, pulse: Pulse | None, now: float) -> Observation | None:
        """The last look at `now`, if the run is as it saw it and its plan is still empty; else None (look fully)."""
        look = self._looks.get(run.identity)
        if (look is None or pulse is None or pulse != look.pulse or run.state.tearing_down
                or run.state_etag != look.state_etag or run.record != look.record
                or not 0 <= now - look.observation.now < self.limit(run)):
            return None
        observation = dataclasses.replace(look.observation, now=now)
        return None if plan(observation, run.policy()) else observation

    def limit(self, run: Run) -> float:
        """Seconds the run's last look is trusted: at most FULL_OBSERVE_SECONDS, at least SPREAD of it."""
        share = zlib.crc32(repr(run.identity).encode()) / 0xFFFFFFFF
        return FULL_OBSERVE_SECONDS * (1 - SPREAD * share)

    def remember(self, run: Run, pulse: Pulse | None, observation: Observation, actions: list[Action]) -> None:
        """After a full look: kept only when it planned nothing (so a steady tick can only ever agree with it)."""
        if pulse is None or actions or observation.refused or run.state.tearing_down:
            self._looks.pop(run.identity, None)
            return
        self._looks[run.identity] = _Look(observation, pulse, run.record, run.state_etag)
