"""The machines: for each instance the fleet runs, what ECS would run on it, as local processes.

A machine is its host folder (the instance id, as a machine's boot script
leaves it for the task definition's read-only mount) plus one
`python -m worker --processes N` process, the container's supervisor, with
N = TASKS_PER_MACHINE x DOCKER_CORES (the
containers of a machine share one supervisor here). All machines together run
at most `budget` worker processes (--workers, default the CPU count); a machine
started when the budget is spent waits for processes to free up.

Each supervisor runs in its own session, so a terminal's Ctrl-C reaches only
the CLI, which then stops machines the way ECS stops tasks: SIGTERM, and
SIGKILL for whatever is left after a grace period; a spot interruption
notice reaches it the same way, as ECS's spot draining stops the tasks of an
interrupted machine (no worker watches the metadata service: a container
cannot reach it). Workers start their
commands in sessions of their own too; every process of a machine carries
DSR_LOCAL_MACHINE in its environment, so a hard stop can find and kill the
commands a killed worker could no longer stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chalicelib.model import names
from chalicelib.model.settings import Settings
from localrun.embedded import local_environment
from worker.orphans import PARENT_PID_ENV

REPO = Path(__file__).resolve().parents[1]
MARKER_VARIABLE = "DSR_LOCAL_MACHINE"
# Seconds a machine gets between SIGTERM and SIGKILL: the worker's own grace for its command
# (DSR_STOP_GRACE_SECONDS below) plus time to release the job and flush its log.
STOP_GRACE_SECONDS = 15.0

# The worker's waits, shrunk so a demo finishes in seconds; production defaults are in worker/options.py.
LOCAL_KNOBS = {
    "DSR_WAIT_SECONDS": "1",           # SQS long poll (production: 20 s)
    "DSR_RETRY_DELAY_SECONDS": "1",    # a failed job is retried after (production: 60 s)
    "DSR_LOG_FLUSH_SECONDS": "1",      # a running job's log lines are sent every (production: 5 s)
    "DSR_STOP_GRACE_SECONDS": "5",     # a stopped command's SIGTERM -> SIGKILL (production: 10 s)
}


@dataclass
class Machine:
    instance_id: str
    host_dir: Path  # what the task definition mounts read-only at names.CONTAINER_HOST_DIR
    log_path: Path
    processes: int = 0
    process: subprocess.Popen | None = None
    interrupted: bool = False  # a spot notice was sent (its workers got SIGTERM)
    stop_reason: str | None = None  # set when we asked it to stop
    kill_at: float | None = None
    exit_code: int | None = None
    started_at: float | None = None  # Machines.clock when its workers started, and when they were gone
    ended_at: float | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def marker(self) -> str:
        return self.instance_id

    @property
    def running(self) -> bool:
        return self.process is not None and self.exit_code is None


@dataclass(frozen=True)
class Ended:
    """A machine whose workers are gone: stopped by us, after a spot notice, or on their own (a crash)."""

    instance_id: str
    exit_code: int
    interrupted: bool
    stopped: bool
    log_path: Path


class Machines:
    def __init__(self, settings: Settings, endpoint: str, log_dir: Path, budget: int, run_token: str,
                 work_dir: Path | None = None, clock=time.monotonic):
        self.settings = settings
        self.endpoint = endpoint
        self.log_dir = log_dir
        self.budget = budget
        self.run_token = run_token
        self.work_dir = work_dir
        self.clock = clock
        self.per_machine = settings.TASKS_PER_MACHINE * settings.DOCKER_CORES
        self.machines: dict[str, Machine] = {}
        self.ever: set[str] = set()  # every instance that ran workers here (for "machines used")
        # Held by each change of the machines: the checks' thread and terminations.py's both stop machines
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ what is running
    @property
    def live(self) -> list[Machine]:
        return [machine for machine in self.machines.values() if machine.exit_code is None]

    def worker_processes(self) -> int:
        return sum(machine.processes for machine in self.machines.values() if machine.running)

    def worker_hours(self) -> float:
        """How long the worker processes that ran were up, together: the run report's capacity (--workers may run
        fewer of them than TASKS_PER_MACHINE x DOCKER_CORES per machine, or none on a machine)."""
        now = self.clock()
        return sum(machine.processes * ((machine.ended_at or now) - machine.started_at)
                   for machine in self.machines.values() if machine.started_at is not None) / 3600

    # ------------------------------------------------------------------ follow the fleet
    def sync(self, instance_ids: list[str]) -> None:
        """Start machines for new instances; stop those whose instance is gone (terminated, fleet cancelled)."""
        with self.lock:
            wanted = set(instance_ids)
            for instance_id in sorted(wanted - set(self.machines)):
                self.machines[instance_id] = self._new(instance_id)
            self.stop_terminated(tuple(machine.instance_id for machine in self.live), wanted)
            self._start_waiting()

    def running_instance_ids(self) -> tuple[str, ...]:
        """The instances whose workers run and were asked to stop by no one."""
        with self.lock:
            return tuple(machine.instance_id for machine in self.live
                         if machine.running and machine.stop_reason is None and not machine.interrupted)

    def stop_terminated(self, checked: tuple[str, ...], alive: set[str]) -> None:
        """Stop the machines among `checked` whose instance is not in `alive` (terminated, whoever terminated it)."""
        with self.lock:
            for instance_id in checked:
                if instance_id not in alive:
                    self.stop(self.machines[instance_id], "its instance was terminated")

    def _new(self, instance_id: str) -> Machine:
        host_dir = self.log_dir / f"{instance_id}.host"
        host_dir.mkdir(parents=True, exist_ok=True)
        (host_dir / names.INSTANCE_ID_FILE).write_text(instance_id + "\n")
        return Machine(instance_id, host_dir, self.log_dir / f"{instance_id}.log")

    def _start_waiting(self) -> None:
        """Share the processes the budget has left among machines without workers, one at a time round
        the machines (so a small budget still spreads the jobs over several machines, as the fleet would)."""
        waiting = [machine for machine in self.machines.values()
                   if machine.process is None and not machine.stop_reason and machine.exit_code is None]
        free = self.budget - self.worker_processes()
        shares = {machine.instance_id: 0 for machine in waiting}
        while free > 0 and any(shares[machine.instance_id] < self.per_machine for machine in waiting):
            for machine in waiting:
                if free > 0 and shares[machine.instance_id] < self.per_machine:
                    shares[machine.instance_id] += 1
                    free -= 1
        for machine in waiting:
            if shares[machine.instance_id]:
                self._start(machine, shares[machine.instance_id])

    def _start(self, machine: Machine, processes: int) -> None:
        self.ever.add(machine.instance_id)
        machine.processes = processes
        machine.started_at = self.clock()
        machine._log = open(machine.log_path, "ab")  # noqa: SIM115 - open while the machine runs; _ended closes it
        machine.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "--processes", str(processes)], cwd=REPO,
            env=self.environment(machine), stdin=subprocess.DEVNULL, stdout=machine._log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def environment(self, machine: Machine) -> dict[str, str]:
        """What the container would get: the run's settings, its host folder, the local knobs.
        Every AWS client of the worker and of its command reaches the embedded endpoint (embedded.py)."""
        env = {name: value for name, value in local_environment(self.endpoint, self.settings.AWS_REGION,
                                                                  dict(os.environ)).items()
               if not name.startswith("DSR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(self.settings.to_environment())
        env.update(LOCAL_KNOBS)
        env["DSR_INSTANCE_ID_FILE"] = str(machine.host_dir / names.INSTANCE_ID_FILE)
        env[PARENT_PID_ENV] = str(os.getpid())  # the supervisor stops when this driver dies, even by SIGKILL
        env[MARKER_VARIABLE] = f"{self.run_token}/{machine.marker}"
        if self.work_dir is not None:
            env["DSR_WORK_DIR"] = str(self.work_dir)
        return env

    # ------------------------------------------------------------------ stopping
    def interrupt(self, machine: Machine) -> None:
        """A spot interruption notice on this machine, delivered as ECS's spot draining delivers it: the tasks are
        stopped (SIGTERM, SIGKILL after the grace); its workers release their jobs and exit."""
        with self.lock:
            machine.interrupted = True
            if machine.process is not None and machine.kill_at is None:
                machine.kill_at = self.clock() + STOP_GRACE_SECONDS
                _signal(machine.process.pid, signal.SIGTERM, group=False)

    def stop(self, machine: Machine, reason: str) -> None:
        """As ECS stops a task: SIGTERM now, SIGKILL after STOP_GRACE_SECONDS (see poll)."""
        with self.lock:
            if machine.stop_reason is not None:
                return
            machine.stop_reason = reason
            if machine.process is None:
                self._ended(machine, 0)
                return
            machine.kill_at = self.clock() + STOP_GRACE_SECONDS
            _signal(machine.process.pid, signal.SIGTERM, group=False)

    def poll(self) -> list[Ended]:
        """Machines whose workers exited since the last poll; escalates stops past their grace."""
        with self.lock:
            ended = []
            for machine in list(self.machines.values()):
                if machine.process is None or machine.exit_code is not None:
                    continue
                code = machine.process.poll()
                if code is None:
                    if machine.kill_at is not None and self.clock() >= machine.kill_at:
                        self._kill(machine)
                    continue
                self._ended(machine, code)
                ended.append(Ended(machine.instance_id, code, machine.interrupted, machine.stop_reason is not None,
                                   machine.log_path))
            self._start_waiting()
            return ended

    def stop_all(self, reason: str, wait: bool = True) -> None:
        for machine in self.live:
            self.stop(machine, reason)
        while wait and any(machine.running for machine in self.machines.values()):
            self.poll()
            time.sleep(0.05)

    def close(self) -> None:
        """Nothing of ours may outlive the run: kill what is left, commands included."""
        with self.lock:
            for machine in self.machines.values():
                if machine.running:
                    self._kill(machine)
            kill_marked(f"{self.run_token}/")
            for machine in self.machines.values():
                if machine._log is not None:
                    machine._log.close()

    def _kill(self, machine: Machine) -> None:
        _signal(machine.process.pid, signal.SIGKILL, group=True)
        machine.process.wait()
        kill_marked(f"{self.run_token}/{machine.marker}")  # the commands, in sessions of their own
        self._ended(machine, machine.process.returncode)

    def _ended(self, machine: Machine, code: int) -> None:
        machine.exit_code = code
        machine.ended_at = self.clock()
        if machine._log is not None:
            machine._log.close()
            machine._log = None


def _signal(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, sig) if group else os.kill(pid, sig)


def marked_processes(prefix: str) -> list[int]:
    """Processes whose environment holds DSR_LOCAL_MACHINE=<prefix>... (Linux /proc; elsewhere none)."""
    wanted = f"{MARKER_VARIABLE}={prefix}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if any(item.startswith(wanted) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def kill_marked(prefix: str) -> None:
    for pid in marked_processes(prefix):
        _signal(pid, signal.SIGKILL, group=False)
