"""reconcile(run): observe -> plan -> apply. The same function runs in the Lambda, `cli.py monitor`,
local mode and (its plan) the simulator.

Events are only hints: an alarm or a tick says "look at this run now", and
reconcile re-reads the real state itself, so a lost, late or duplicated event
changes nothing. When another writer (a reconcile at the same moment, a teardown
request) changed the monitor state between this one's read and its write, it
reads the state again and plans again (state_store.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.aws import Clients
from chalicelib.aws.ec2 import FleetState
from chalicelib.monitor.actions import Action, RemoveRunRecord
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.observation import Observation
from chalicelib.monitor.observe import Run, observe, read_pulse
from chalicelib.monitor.plan import plan
from chalicelib.monitor.runs import with_current_state
from chalicelib.monitor.state_store import StateChanged, StateContended
from chalicelib.monitor.steady import LastLooks

# Rounds of observe, plan, apply while other writers keep changing the run's monitor state in between; past
# them this check gives up (writing nothing over theirs) and the next one tries again.
STATE_ATTEMPTS = 5


@dataclass
class Reconciled:
    observation: Observation
    actions: list[Action]
    skipped: tuple[tuple[Action, str], ...] = ()  # "not yet": retried next tick

    @property
    def finished(self) -> bool:
        """True once teardown removed the run record: nothing is left to watch."""
        return any(isinstance(action, RemoveRunRecord) for action in self.actions) and not self.skipped


def reconcile(run: Run, clients: Clients | None = None, now: float | None = None, dry_run: bool = False,
              applier: type[Applier] = Applier, looks: LastLooks | None = None, full_look: bool = False,
              fleets: Mapping[str, FleetState] | None = None) -> Reconciled:
    """`clients` and `applier` (the class that carries out one run's actions) are injectable, so tests pass
    their own instead of patching ours. `looks`: the Lambda's last full looks (steady.py), which let a converged
    run's tick cost a call or two; `full_look` (an alarm's tick) observes fully all the same and remembers the look.
    `fleets`: the region's fleets as the tick listed them at its start (ec2.all_fleet_states), for the steady check
    only: a look that may act reads the run's fleet afresh."""
    clients = clients or Clients(region=run.record.REGION)
    for attempt in range(STATE_ATTEMPTS):
        steady_check = looks is not None and attempt == 0 and not (full_look or dry_run)
        pulse = read_pulse(run, clients, fleets if steady_check else None) if looks is not None else None
        if looks is not None and steady_check:
            steady = looks.steady(run, pulse, time.time() if now is None else now)
            if steady is not None:
                return Reconciled(steady, [])
            if fleets is not None:  # the listing may be seconds old: every decision is taken on fresh reads
                pulse = read_pulse(run, clients)
        observation = observe(run, clients, now, pulse, looks.failures if looks is not None else None)
        actions = plan(observation, run.policy())
        if dry_run:
            return Reconciled(observation, actions)
        try:
            reconciled = Reconciled(observation, actions, applier(run, clients).apply(actions).skipped)
        except StateChanged:
            current = with_current_state(clients.s3, run)
            if current is None:  # another reconcile finished the teardown meanwhile: nothing is left to do
                return Reconciled(observation, [])
            run = current
            continue
        if looks is not None:
            looks.remember(run, pulse, observation, actions)
            if reconciled.finished:
                looks.failures.forget(run)
        return reconciled
    raise StateContended(f"run {run.app_name}: its monitor state (s3://{run.bucket}/{run.state_key}) changed under "
                         f"this reconcile {STATE_ATTEMPTS} times in a row (other reconciles or a teardown request "
                         "at the same moment); nothing was lost, the next check tries again")
