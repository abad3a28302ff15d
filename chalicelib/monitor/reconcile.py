"""reconcile(run): observe -> plan -> apply. The same function runs in the Lambda, `cli.py monitor`,
local mode and (its plan) the simulator.

Events are only hints: an alarm or a tick says "look at this run now", and
reconcile re-reads the real state itself, so a lost, late or duplicated event
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.monitor.actions import Action, RemoveRunRecord
from chalicelib.monitor.apply import Applier
from chalicelib.aws import Clients
from chalicelib.monitor.observation import Observation
from chalicelib.monitor.observe import Run, observe
from chalicelib.monitor.plan import plan


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
              applier: type[Applier] = Applier) -> Reconciled:
    """`clients` and `applier` (the class that carries out one run's actions) are injectable, so tests pass
    their own instead of patching ours."""
    clients = clients or Clients(region=run.record.REGION)
    observation = observe(run, clients, now)
    actions = plan(observation, run.policy())
    if dry_run:
        return Reconciled(observation, actions)
    return Reconciled(observation, actions, applier(run, clients).apply(actions).skipped)
