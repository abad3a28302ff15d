"""AWS's part when a machine's instance is terminated, whoever terminated it: its containers go with it.

Local mode starts and stops machines after each of its checks (driver.py), and a check of a run that is ending
can take 20 s or more (the shared dead-letter queue's sweep waits while another reader holds its messages). A
teardown asked from another shell (`cli.py teardown`) cancels the fleet meanwhile: on AWS its machines and their
workers are gone at once; here they ran jobs until the check ended (chaos seed 134: 42 more jobs, and the queue
the teardown had kept for them was left empty). So a thread of its own reads, twice a second, whether the
instances of the running machines are still pending or running, and stops those that are not.
"""

from __future__ import annotations

import threading

from chalicelib import aws
from chalicelib.aws.ec2 import live_machines
from chalicelib.model.settings import Settings
from localrun.machines import Machines

PERIOD_SECONDS = 0.5
# One attempt, short timeouts: the watch reads again in half a second anyway, and the run's end waits for its
# read under way (botocore's 8 attempts could hold it a minute during an outage).
CLIENT_CONFIG = {"retries": {"mode": "standard", "max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5}


class TerminationWatch:
    def __init__(self, settings: Settings, machines: Machines, period: float = PERIOD_SECONDS):
        self.ec2 = aws.client("ec2", settings, **CLIENT_CONFIG)
        self.machines = machines
        self.period = period
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="termination-watch", daemon=True)

    def __enter__(self) -> TerminationWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.period):
            self.check()

    def check(self) -> None:
        """Stop the running machines whose instance is no longer pending or running."""
        checked = self.machines.running_instance_ids()
        if not checked:
            return
        try:
            alive = {machine.instance_id for machine in live_machines(self.ec2, checked)}
        except Exception:  # noqa: BLE001 - a throttle or a 5xx: the next read, or the checks, stop them
            return
        self.machines.stop_terminated(checked, alive)
