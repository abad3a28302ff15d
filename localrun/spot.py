"""AWS's part in a spot interruption, played locally (--interrupt-rate).

On each check every running machine gets an interruption notice with
probability `rate` (AWS gives it two minutes before it reclaims a machine). It
reaches the workers as on AWS: ECS's spot draining stops the machine's tasks,
so the supervisor gets SIGTERM; the workers release their jobs and exit. Then,
as AWS would, the instance is terminated, and the fleet,
of type maintain, launches a replacement while it is below its target.
moto has no such background process, so the replacement is asked for by
setting the fleet's target to what it is (ModifyFleet; moto then launches the
difference: see the EC2 Fleet patches in moto_patches.py).
"""

from __future__ import annotations

import random

from chalicelib.aws.ec2 import fleet_state, set_fleet_target, terminate
from localrun.machines import Machines


class SpotMarket:
    def __init__(self, ec2, fleet_id: str, machines: Machines, rate: float, rng: random.Random | None = None):
        self.ec2 = ec2
        self.fleet_id = fleet_id
        self.machines = machines
        self.rate = rate
        self.rng = rng or random.Random()
        self.notices = 0
        self.replacements = 0

    def tick(self) -> list[str]:
        """Send this check's notices; returns the instance ids that got one."""
        if self.rate <= 0:
            return []
        hit = []
        for machine in self.machines.live:
            if machine.running and not machine.interrupted and not machine.stop_reason and \
                    self.rng.random() < self.rate:
                self.machines.interrupt(machine)
                hit.append(machine.instance_id)
        self.notices += len(hit)
        return hit

    def reclaim(self, instance_id: str) -> bool:
        """Terminate an interrupted machine's instance; True if the fleet launched a replacement."""
        terminate(self.ec2, [instance_id])
        fleet = fleet_state(self.ec2, self.fleet_id)
        if fleet is None or not fleet.live or fleet.target <= fleet.fulfilled:
            return False
        set_fleet_target(self.ec2, self.fleet_id, fleet.target)
        self.replacements += 1
        return True

