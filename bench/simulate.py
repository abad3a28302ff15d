"""Run simulator: a whole run (queue, spot fleet, workers, monitor) on a simulated clock.

A discrete-event simulation: a heap of timed events (a job ends, a machine boots, a message's
visibility timeout expires, a failed job's retry delay ends, a DS worker's pause or long poll ends,
a spot notice, a spot termination, an idle alarm, a monitor tick), so a run of a million jobs costs a
few million events, not a loop over simulated seconds. Our monitor is the real `plan()` fed an
`Observation` built from the simulated world, its actions applied back to it; DS's monitor and
worker are re-implemented from DS's `run.py monitor` and `generic-worker.py`.

    python bench/simulate.py                      # every scenario, ours and DS, as markdown
    python bench/simulate.py --scenario heavy-tail
    python bench/simulate.py --quick              # a hundredth of the jobs (tests, smoke runs)

What is modelled and what is not is listed in bench/README.md ("Run simulator").
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import math
import random
import sys
import time
from collections import deque
from dataclasses import astuple, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scenarios import SCENARIOS, Scenario, by_name  # noqa: E402
from chalicelib.monitor.actions import (  # noqa: E402
    Action,
    CancelFleet,
    CreateIdleAlarms,
    DeleteAlarms,
    DeleteCluster,
    DeleteDashboard,
    DeleteQueue,
    DeleteService,
    DeregisterTaskDefinitions,
    RemoveRunRecord,
    SaveState,
    SetFleetCapacity,
    SetServiceCount,
    TerminateInstances,
    WriteSummary,
)
from chalicelib.monitor.observation import Instance, MonitorState, Observation, Policy  # noqa: E402
from chalicelib.monitor.plan import plan  # noqa: E402
from worker.worker import BUSY_PERIOD_WAIT_SECONDS  # noqa: E402

# Our worker's busy lease lasts its busy period: after its last job it is deleted by the first receive that
# returns nothing, this long later (worker/worker.py); the monitor sees the slot busy until then.
OUR_LEASE_AFTER_LAST_JOB_S = float(BUSY_PERIOD_WAIT_SECONDS)
RETRY_DELAY_S = 60.0  # a failed job's message is made visible again this long after the failure (DS: returnMessage)
SPOT_NOTICE_S = 120.0  # AWS warns two minutes before it takes a spot machine back
IDLE_ALARM_S = 15 * 60.0  # the per-instance alarm: 15 one-minute periods under 1 % CPU
DS_MONITOR_S = 60.0  # DS's MONITOR_TIME: its loop checks the queue every minute ...
DS_DOWNSCALE_EVERY = 10  # ... and downscales on every tenth check (the minutes ending in 9)
DS_ALARM_BATCH = 100  # DS's teardown deletes the machines' alarms 100 at a time ...
DS_ALARM_BATCH_SLEEP_S = 10.0  # ... and sleeps 10 s after each batch, before it cancels the fleet
GIVE_UP_S = 30 * 24 * 3600.0  # a run that has not ended after a simulated month is reported as such

# Where a job's message is. A job can be done (its output exists) and still DEAD: DS moves a long
# job to the dead-letter queue after enough re-deliveries while its first execution still runs.
VISIBLE, IN_FLIGHT, DELETED, DEAD = range(4)


@dataclass(frozen=True)
class WorkerModel:
    """How a system's workers treat the queue and the machine."""

    heartbeat: bool  # keeps its message invisible while the command runs (else SQS re-delivers it)
    handles_spot_notice: bool  # at the two-minute notice: stops its command, makes the message visible
    pause_after_success_s: float  # holds its slot (and its message) this long after a successful command
    exits_after_empty_poll_s: float | None  # a poll that waits this long for nothing ends the worker; None: never


# Ours: worker/worker.py long-polls for ever, heartbeats, and releases its job at a spot notice.
OUR_WORKERS = WorkerModel(heartbeat=True, handles_spot_notice=True, pause_after_success_s=0.0,
                          exits_after_empty_poll_s=None)
# DS's generic-worker.py: `time.sleep(30)` after a successful command, before it uploads and deletes the
# message; `receive_message(WaitTimeSeconds=20)`, and `break` (the process ends) when that returns nothing.
# The slot then stays dead: run-worker.sh ends with `wait`, which also waits for instance-monitor.py (a loop
# that never ends), so the container keeps running without that worker and ECS has nothing to restart.
DS_WORKERS = WorkerModel(heartbeat=False, handles_spot_notice=False, pause_after_success_s=30.0,
                         exits_after_empty_poll_s=20.0)


class Job:
    __slots__ = ("done", "duration", "message", "receipt", "receives", "running", "timer")

    def __init__(self, duration: float):
        self.duration = duration
        self.receives = 0
        self.receipt = 0  # bumps on every receive: a delete or release by an older receive's worker is stale
        self.timer = 0  # bumps whenever the visibility timeout is set anew: older expiry events are stale
        self.message = VISIBLE
        self.running = 0  # slots holding it now (its command, or DS's pause after it); more than one: a duplicate
        self.done = False


class Machine:
    __slots__ = (
        "booted",
        "busy",
        "draining",
        "idle_since",
        "instance_id",
        "launched_at",
        "reclaim_at",
        "terminated_at",
        "workers",
    )

    def __init__(self, instance_id: str, launched_at: float):
        self.instance_id = instance_id
        self.launched_at = launched_at
        self.booted = False
        self.terminated_at: float | None = None
        self.reclaim_at = math.inf  # when AWS takes the spot machine back
        self.workers: list[Worker] = []  # empty while it boots
        self.busy = 0  # slots holding a job (its command or DS's pause): the busy leases the monitor reads
        self.draining = False  # spot notice received: its workers take no more work
        self.idle_since: float | None = None


class Worker:
    __slots__ = (
        "exited",
        "fails",
        "job",
        "lease_until",
        "machine",
        "poll",
        "pool_index",
        "receipt",
        "run",
        "started",
    )

    def __init__(self, machine: Machine):
        self.machine = machine
        self.job: Job | None = None  # the job this slot holds, running its command or (DS) pausing after it
        self.run = 0  # bumps when the slot lets its job go: its pending end event is stale
        self.started = 0.0  # its command runs from here for the job's duration
        self.receipt = 0
        self.fails = False
        self.pool_index = -1  # position in World.idle_workers, -1 when not waiting
        self.poll = 0  # bumps on every wait for a message: an older poll's timeout is stale
        self.exited = False  # a DS worker whose poll found nothing: the slot does nothing for the rest of the run
        # ours, between jobs: its busy lease is still up until then (OUR_LEASE_AFTER_LAST_JOB_S)
        self.lease_until = -1.0


@dataclass(frozen=True)
class Usage:
    """Where the billed machine-time went: integrals over the run, in seconds. Every billed machine-second is
    booting, a whole machine idle, or a machine holding at least one job; a holding machine's slot-seconds
    are running a command, pausing (DS), or free beside the others."""

    billed_s: float = 0.0  # machine-seconds, launch to termination
    booting_s: float = 0.0  # machine-seconds before the first poll
    holding_s: float = 0.0  # machine-seconds with at least one slot holding a job
    held_slot_s: float = 0.0  # slot-seconds holding a job (its command, or DS's pause after it)
    busy_slot_s: float = 0.0  # slot-seconds running a job's command (any execution, duplicates included)

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class Result:
    scenario: str
    policy: str
    makespan_s: float  # start to the last job done or dead-lettered
    usage: Usage
    lower_bound_s: float  # the scenario's, the same for every policy: see lower_bound_s()
    slots_per_machine: int
    jobs_done: int
    jobs_lost: int  # neither done nor in the dead-letter queue
    duplicates: int  # executions started while another execution of the same job was running
    dead_letter: int
    teardown_delay_s: float | None  # last job settled -> teardown complete (None: never)
    last_machine_gone_s: float  # last job settled -> the last machine terminated
    machines_launched: int
    interruptions: int
    events: int

    @property
    def billed_s(self) -> float:
        return self.usage.billed_s

    @property
    def busy_slot_s(self) -> float:
        return self.usage.busy_slot_s

    @property
    def idle_machine_s(self) -> float:
        """Machine-seconds of booted machines holding no job: waiting for the monitor, or for the idle alarm."""
        return max(0.0, self.usage.billed_s - self.usage.booting_s - self.usage.holding_s)  # max: float noise

    @property
    def free_beside_slot_s(self) -> float:
        """Slot-seconds free on machines kept by a job in another slot (e.g. one long job, three idle slots)."""
        return max(0.0, self.usage.holding_s * self.slots_per_machine - self.usage.held_slot_s)

    @property
    def pause_slot_s(self) -> float:
        """Slot-seconds holding a job whose command has ended: DS's 30-s pause before the upload."""
        return max(0.0, self.usage.held_slot_s - self.usage.busy_slot_s)

    @property
    def efficiency(self) -> float:
        """Busy slot-time over billed slot-time: 1.0 only if every worker slot of every billed machine works."""
        return self.busy_slot_s / (self.billed_s * self.slots_per_machine) if self.billed_s else 0.0

    @property
    def over_lower_bound(self) -> float:
        return self.billed_s / self.lower_bound_s


@dataclass(frozen=True)
class Continuation:
    """The rest of a run whose monitor gave up with the queue empty: see World.left_to_idle_alarms."""

    usage: Usage
    last_machine_gone_at: float
    interruptions: int
    jobs_finished: int  # executions still running that end with their outputs uploaded
    last_finished_at: float | None


@functools.lru_cache(maxsize=1)
def job_durations(scenario: Scenario) -> tuple[float, ...]:
    """The scenario's jobs, sampled once for every policy run on it (a million samples take most of a second)."""
    return tuple(scenario.durations.sample(random.Random(f"{scenario.seed}-durations"), scenario.jobs))


def lower_bound_s(durations, scenario: Scenario) -> float:
    """The least machine-time any policy can bill for these jobs (the issue's definition): every job's command
    run once (its duration: a job takes the same time on every attempt, so this is its first successful
    attempt), packed perfectly into the worker slots, plus one boot for each of the CLUSTER_MACHINES machines.
    In machine-seconds: sum(durations) / (TASKS_PER_MACHINE x DOCKER_CORES) + boot_s x CLUSTER_MACHINES.
    Spot interruptions, failed attempts, monitor periods and alarms are all above it."""
    return sum(durations) / scenario.workers_per_machine + scenario.boot_s * scenario.machines


class World:
    """The simulated AWS: one queue with its dead-letter queue, one spot fleet (maintain), the workers."""

    def __init__(self, scenario: Scenario, workers: WorkerModel):
        self.scenario = scenario
        self.worker_model = workers
        self.now = 0.0
        self._events: list = []
        self._sequence = itertools.count()  # ties broken by scheduling order: deterministic
        self.event_count = 0
        # Separate streams, so that e.g. adding interruptions does not change the job durations.
        self._failure_rng = random.Random(f"{scenario.seed}-failures")
        self._spot_rng = random.Random(f"{scenario.seed}-spot")
        self._poll_rng = random.Random(f"{scenario.seed}-polls")
        durations = job_durations(scenario)
        self.lower_bound_s = lower_bound_s(durations, scenario)
        self.jobs = [Job(duration) for duration in durations]
        # queue
        self.visible_queue: deque[Job] = deque(self.jobs)  # may hold stale entries; visible_count is the truth
        self.visible_count = len(self.jobs)
        self.in_flight = 0
        self.dead_letter = 0
        # fleet and machines
        self.fleet_active = True
        self.fleet_replaces = True  # False: the fleet launches nothing more (see abandon())
        self.fleet_target = scenario.machines
        self.machines: dict[str, Machine] = {}  # live ones (pending or running), in launch order
        self.launched = 0
        self.interruptions = 0
        self.idle_workers: list[Worker] = []
        self.teardown_done_at: float | None = None
        self.monitor_done = False  # the monitor will do nothing more: the run ends with the last machine
        self.last_machine_gone_at = 0.0
        # accounting: counts now, and their integrals over time (see Usage)
        self.booting = 0  # machines launched and not yet polling
        self.holding = 0  # machines with a slot holding a job
        self.held_slots = 0
        self.billed_s = self.booting_s = self.holding_s = self.held_slot_s = 0.0
        self.busy_slot_s = 0.0  # added when a slot lets its job go: one event per execution, pause or not
        self.duplicates = 0
        self.last_settled = 0.0  # the last job done or dead-lettered

    # ------------------------------------------------------------ the clock

    def at(self, when: float, handler, first=None, second=None) -> None:
        heapq.heappush(self._events, (when, next(self._sequence), handler, first, second))

    def run(self, monitor) -> Result:
        self.start(monitor)
        return self.run_to_end(monitor)

    def start(self, monitor) -> None:
        """The run begins: the monitor is scheduled, the fleet launches its target."""
        monitor.start(self)
        self.fill_fleet()

    def run_to_end(self, monitor) -> Result:
        """Process events until the monitor is done and no machine is left."""
        events = self._events
        while events and self.now < GIVE_UP_S:
            when, _, handler, first, second = heapq.heappop(events)
            if when > self.now:
                elapsed = when - self.now
                self.billed_s += len(self.machines) * elapsed
                self.booting_s += self.booting * elapsed
                self.holding_s += self.holding * elapsed
                self.held_slot_s += self.held_slots * elapsed
                self.now = when
            self.event_count += 1
            handler(first, second)
            if self.monitor_done and not self.machines:
                break
        return self.result(monitor.name)

    # ------------------------------------------------------------ the fleet

    def fill_fleet(self) -> None:
        """A maintain fleet launches machines while it has fewer than its target, and never stops any."""
        while self.fleet_active and self.fleet_replaces and len(self.machines) < self.fleet_target:
            self._launch()

    def set_fleet_target(self, target: int) -> None:
        self.fleet_target = target
        self.fill_fleet()

    def cancel_fleet(self) -> None:
        self.fleet_active = False
        for machine in list(self.machines.values()):
            self.terminate(machine)

    def abandon(self) -> None:
        """The monitor gives up without cancelling the fleet (DS's Lambda crashing): every machine lives until
        its idle alarm or AWS ends it. The fleet replaces none of them: the reading most favourable to DS (a
        maintain fleet whose target was never lowered does replace them; see bench/README.md)."""
        self.fleet_replaces = False
        self.monitor_done = True

    def _launch(self) -> None:
        machine = Machine(f"i-{self.launched:07d}", self.now)
        self.launched += 1
        self.booting += 1
        self.machines[machine.instance_id] = machine
        self.at(self.now + self.scenario.boot_s, self._booted, machine)
        rate = self.scenario.interruptions_per_machine_hour
        if rate > 0:
            self.interrupt(machine, self.now + self._spot_rng.expovariate(rate / 3600.0))

    def interrupt(self, machine: Machine, reclaimed_at: float) -> None:
        """AWS takes the spot machine back at `reclaimed_at`, with its notice two minutes before."""
        machine.reclaim_at = reclaimed_at
        self.at(max(self.now, reclaimed_at - SPOT_NOTICE_S), self._spot_notice, machine)
        self.at(reclaimed_at, self._spot_reclaimed, machine)

    def _booted(self, machine: Machine, _=None) -> None:
        if machine.terminated_at is not None or machine.draining:
            return
        machine.booted = True
        self.booting -= 1
        machine.workers = [Worker(machine) for _ in range(self.scenario.workers_per_machine)]
        for worker in machine.workers:
            self._worker_free(worker)
        if machine.busy == 0:
            self._machine_idle(machine)

    def terminate(self, machine: Machine) -> None:
        """The machine is gone: billing stops, the jobs its slots hold die with it."""
        if machine.terminated_at is not None:
            return
        machine.terminated_at = self.now
        self.last_machine_gone_at = self.now
        if not machine.booted:
            self.booting -= 1
        del self.machines[machine.instance_id]
        for worker in machine.workers:
            if worker.pool_index >= 0:
                self._unpool(worker)
            if worker.job is not None:
                self._job_killed(worker)

    def _job_killed(self, worker: Worker) -> None:
        job, receipt, started = worker.job, worker.receipt, worker.started
        self._let_go(worker)
        if job.message != IN_FLIGHT or job.receipt != receipt:
            return
        visibility = self.scenario.visibility_s
        if self.worker_model.heartbeat:
            # the last heartbeat set the timeout from about now
            job.timer += 1
            self.at(self.now + visibility, self._visibility_expired, job, job.timer)
        else:
            # the timeout still runs from the receive (an expiry event may already be pending: the second is stale)
            self.at(max(self.now, started + visibility), self._visibility_expired, job, job.timer)

    def _spot_notice(self, machine: Machine, _=None) -> None:
        if machine.terminated_at is not None or not self.worker_model.handles_spot_notice:
            return  # DS's workers do not watch for the notice: they work on until the machine dies
        machine.draining = True
        for worker in machine.workers:
            worker.lease_until = -1.0  # a stopping worker deletes its lease
            if worker.pool_index >= 0:
                self._unpool(worker)  # first, so that no job released below lands back on this machine
        for worker in machine.workers:
            if worker.job is not None:
                # our worker stops the command and makes the message visible at once
                job, receipt = worker.job, worker.receipt
                self._let_go(worker)
                if job.message == IN_FLIGHT and job.receipt == receipt:
                    self.in_flight -= 1
                    self._make_visible(job)

    def _spot_reclaimed(self, machine: Machine, _=None) -> None:
        if machine.terminated_at is None:
            self.interruptions += 1
            self.terminate(machine)
            self.fill_fleet()

    def _machine_idle(self, machine: Machine) -> None:
        machine.idle_since = self.now
        self.at(self.now + IDLE_ALARM_S + self.scenario.alarm_delay_s, self._idle_alarm, machine, self.now)

    def _idle_alarm(self, machine: Machine, idle_since: float) -> None:
        """The per-instance CPU alarm (DS's, and ours too): terminates a machine idle for 15 minutes."""
        if machine.terminated_at is None and machine.busy == 0 and machine.idle_since == idle_since:
            self.terminate(machine)
            self.fill_fleet()  # the fleet replaces it if its target is still above what is left

    # ------------------------------------------------------------ workers and the queue

    def _worker_free(self, worker: Worker) -> None:
        """A worker polls: it takes a visible job at once, or waits (long polls) for one."""
        job = self._receive_from_queue()
        if job is not None:
            self._start(worker, job)
            return
        worker.pool_index = len(self.idle_workers)
        self.idle_workers.append(worker)
        give_up = self.worker_model.exits_after_empty_poll_s
        if give_up is not None:
            worker.poll += 1
            self.at(self.now + give_up, self._poll_empty, worker, worker.poll)

    def _poll_empty(self, worker: Worker, poll: int) -> None:
        """DS's worker: its long poll returned no message, so it ends."""
        if worker.pool_index >= 0 and worker.poll == poll:
            self._unpool(worker)
            worker.exited = True

    def _receive_from_queue(self) -> Job | None:
        queue = self.visible_queue
        while queue:
            job = queue.popleft()
            if job.message != VISIBLE:
                continue  # deleted while visible (DS: a late duplicate finished it)
            self.visible_count -= 1
            if not self._dead_lettered(job):
                return job
        return None

    def _make_visible(self, job: Job) -> None:
        """The message is visible again: a waiting worker (any of them) gets it, else it queues."""
        job.message = VISIBLE
        if not self.idle_workers:
            self.visible_queue.append(job)
            self.visible_count += 1
        elif not self._dead_lettered(job):
            index = self._poll_rng.randrange(len(self.idle_workers))
            worker = self.idle_workers[index]
            self._unpool(worker)
            self._start(worker, job)

    def _dead_lettered(self, job: Job) -> bool:
        """SQS's redrive: the receive after the JOB_RETRIES-th moves the message to the dead-letter queue."""
        if job.receives < self.scenario.job_retries:
            return False
        job.message = DEAD
        self.dead_letter += 1
        self.last_settled = self.now
        return True

    def _unpool(self, worker: Worker) -> None:
        pool = self.idle_workers
        last = pool.pop()
        if last is not worker:
            pool[worker.pool_index] = last
            last.pool_index = worker.pool_index
        worker.pool_index = -1

    def _start(self, worker: Worker, job: Job) -> None:
        now = self.now
        job.receives += 1
        job.receipt += 1
        job.timer += 1
        job.message = IN_FLIGHT
        self.in_flight += 1
        if job.running:
            self.duplicates += 1
        job.running += 1
        machine = worker.machine
        if machine.busy == 0:
            machine.idle_since = None
            self.holding += 1
        machine.busy += 1
        self.held_slots += 1
        worker.job = job
        worker.started = now
        worker.receipt = job.receipt
        failure_rate = self.scenario.failure_rate
        worker.fails = failure_rate > 0 and self._failure_rng.random() < failure_rate
        # DS's pause after a successful command is one with it here: nothing else happens at the command's end
        # (the message stays in flight, its expiry scheduled below), so one event per execution suffices.
        hold = job.duration if worker.fails else job.duration + self.worker_model.pause_after_success_s
        self.at(now + hold, self._hold_ended, worker, worker.run)
        visibility = self.scenario.visibility_s
        if not self.worker_model.heartbeat and job.duration + self.worker_model.pause_after_success_s > visibility:
            # nobody extends the timeout: SQS hands the job to another worker while this one still holds it
            self.at(now + visibility, self._visibility_expired, job, job.timer)

    def _let_go(self, worker: Worker) -> None:
        """The slot stops holding its job (done, failed, stopped or killed); its command's run time is counted."""
        job = worker.job
        self.busy_slot_s += min(self.now, worker.started + job.duration) - worker.started
        job.running -= 1
        machine = worker.machine
        machine.busy -= 1
        if machine.busy == 0:
            self.holding -= 1
        self.held_slots -= 1
        worker.job = None
        worker.run += 1

    def _hold_ended(self, worker: Worker, run: int) -> None:
        """The command has ended (and DS's pause after a success): the job is done, or failed."""
        if worker.run != run:
            return  # stopped by a spot notice or killed with its machine (in DS's pause: outputs never uploaded)
        job = worker.job
        if not worker.fails:
            self._succeeded(job)
        elif job.message == IN_FLIGHT and job.receipt == worker.receipt:
            # the worker sets the message's visibility timeout to RETRY_DELAY_S (DS: returnMessage)
            job.timer += 1
            self.at(self.now + RETRY_DELAY_S, self._visibility_expired, job, job.timer)
        self._next_job(worker)

    def _next_job(self, worker: Worker) -> None:
        self._let_go(worker)
        machine = worker.machine
        if not machine.draining and machine.terminated_at is None:
            self._worker_free(worker)
            if worker.job is None:  # no job waiting: the busy period ends with the long poll that finds none
                worker.lease_until = self.now + OUR_LEASE_AFTER_LAST_JOB_S
            if machine.busy == 0:
                self._machine_idle(machine)

    def _succeeded(self, job: Job) -> None:
        if not job.done:
            job.done = True
            self.last_settled = self.now
        # The delete succeeds even with an older receipt (in practice it does): the message is gone.
        if job.message == IN_FLIGHT:
            self.in_flight -= 1
            job.message = DELETED
        elif job.message == VISIBLE:
            self.visible_count -= 1
            job.message = DELETED

    def _visibility_expired(self, job: Job, timer: int) -> None:
        if job.message == IN_FLIGHT and job.timer == timer:
            self.in_flight -= 1
            self._make_visible(job)

    # ------------------------------------------------------------ results

    def usage(self) -> Usage:
        return Usage(self.billed_s, self.booting_s, self.holding_s, self.held_slot_s, self.busy_slot_s)

    def left_to_idle_alarms(self) -> Continuation:
        """What happens from now if the monitor gives up without cancelling the fleet (DS's Lambda crashing), the
        queue being empty. Each machine lives until its idle alarm or its spot reclaim, whichever is first.
        Nothing else can happen to it: no message is left to receive (an execution still running is a duplicate,
        or a job DS dead-lettered while it ran: it ends with nothing to delete or return), no monitor acts, the
        fleet replaces nothing (see abandon()). The same as running the world on after abandon() (a test checks
        it), at the cost of one pass over the live machines instead of a second whole run."""
        assert self.visible_count == 0 and self.in_flight == 0
        alarm_after = IDLE_ALARM_S + self.scenario.alarm_delay_s
        pause = self.worker_model.pause_after_success_s
        now = self.now
        billed = booting = holding = held_slots = busy_slots = 0.0
        last_gone, reclaims = now, 0
        finished: dict[Job, float] = {}  # job not done yet -> when its first execution to succeed ends
        for machine in self.machines.values():
            if not machine.booted:
                idle_since = machine.launched_at + self.scenario.boot_s  # its workers will find nothing
                gone = min(idle_since + alarm_after, machine.reclaim_at)
                booting += min(idle_since, gone) - now
            elif machine.busy == 0:
                idle_since = machine.idle_since
                gone = min(idle_since + alarm_after, machine.reclaim_at)
            else:
                ends = []
                for worker in machine.workers:
                    if worker.job is None:
                        continue
                    command_ends = worker.started + worker.job.duration
                    ends.append(command_ends + (0.0 if worker.fails else pause))
                    # the whole execution's run time: a slot's busy time is counted when it lets its job go
                    busy_slots += min(command_ends, machine.reclaim_at) - worker.started
                    if not worker.fails and ends[-1] < machine.reclaim_at and not worker.job.done:
                        # its outputs are uploaded: done, though its message is gone (DS dead-lettered it)
                        finished[worker.job] = min(finished.get(worker.job, math.inf), ends[-1])
                idle_since = max(ends)
                gone = min(idle_since + alarm_after, machine.reclaim_at)
                holding += min(idle_since, gone) - now
                held_slots += sum(min(end, gone) - now for end in ends)
            reclaims += gone == machine.reclaim_at
            billed += gone - now
            last_gone = max(last_gone, gone)
        return Continuation(Usage(billed, booting, holding, held_slots, busy_slots), last_gone, reclaims,
                            len(finished), max(finished.values(), default=None))

    def result(self, policy_name: str) -> Result:
        done = sum(1 for job in self.jobs if job.done)
        lost = sum(1 for job in self.jobs if not job.done and job.message != DEAD)
        teardown = None if self.teardown_done_at is None else self.teardown_done_at - self.last_settled
        return Result(
            scenario=self.scenario.name, policy=policy_name, makespan_s=self.last_settled, usage=self.usage(),
            lower_bound_s=self.lower_bound_s, slots_per_machine=self.scenario.workers_per_machine, jobs_done=done,
            jobs_lost=lost,
            duplicates=self.duplicates, dead_letter=self.dead_letter, teardown_delay_s=teardown,
            last_machine_gone_s=self.last_machine_gone_at - self.last_settled, machines_launched=self.launched,
            interruptions=self.interruptions, events=self.event_count)


# ---------------------------------------------------------------- the monitors


class OurMonitor:
    """The real plan() on a schedule, with its actions applied to the world (what apply.py does to AWS)."""

    name = "ours"
    workers = OUR_WORKERS

    def __init__(self, scenario: Scenario):
        self.period = scenario.monitor_period_s
        self.policy = Policy(cluster_machines=scenario.machines, tasks_per_machine=scenario.tasks_per_machine,
                             docker_cores=scenario.docker_cores, machine_price=0.0)
        self.state = MonitorState()
        self.service_desired = scenario.machines * scenario.tasks_per_machine
        self.exists = {"queue": True, "service": True, "cluster": True, "task_definitions": True, "summary": False}
        self.world: World | None = None

    def start(self, world: World) -> None:
        self.world = world
        world.at(world.now + self.period, self.tick)

    def tick(self, _=None, __=None) -> None:
        world = self.world
        for action in plan(self.observe(), self.policy):
            self.apply(action)
        if world.teardown_done_at is None:
            world.at(world.now + self.period, self.tick)

    def observe(self) -> Observation:
        world = self.world
        now = world.now
        instances = tuple(Instance(machine.instance_id, machine.launched_at, machine.busy + sum(
            1 for worker in machine.workers if worker.job is None and worker.lease_until > now))
                          for machine in world.machines.values())
        return Observation(
            app_name="Sim", now=world.now, started_at=0.0, state=self.state,
            queue_url="sim://queue", queue_exists=self.exists["queue"],
            visible=world.visible_count if self.exists["queue"] else 0,
            in_flight=world.in_flight if self.exists["queue"] else 0,
            dead_letter=world.dead_letter, jobs_at_start=len(world.jobs),
            fleet_id="sfr-sim", fleet_active=world.fleet_active, fleet_target=world.fleet_target,
            fleet_fulfilled=float(len(world.machines)), instances=instances,
            cluster="sim", cluster_exists=self.exists["cluster"], service="SimService",
            service_exists=self.exists["service"], service_desired=self.service_desired,
            task_definition_arns=("arn:sim:task:1",) if self.exists["task_definitions"] else (),
            bucket="sim", summary_key="monitors/finished/Sim_summary.json", summary_exists=self.exists["summary"],
            record_keys=("monitors/SimSpotFleetRequestId.json",))

    def apply(self, action: Action) -> None:
        world = self.world
        if isinstance(action, SaveState):
            self.state = self.state.updated(action.as_dict())
        elif isinstance(action, SetFleetCapacity):
            world.set_fleet_target(action.target)
        elif isinstance(action, TerminateInstances):
            for instance_id in action.instance_ids:
                machine = world.machines.get(instance_id)
                if machine is not None:
                    world.terminate(machine)
            world.fill_fleet()
        elif isinstance(action, SetServiceCount):
            self.service_desired = action.count  # tasks are not modelled apart from their machine
        elif isinstance(action, CancelFleet):
            world.cancel_fleet()
        elif isinstance(action, DeleteService):
            self.exists["service"] = False
        elif isinstance(action, DeregisterTaskDefinitions):
            self.exists["task_definitions"] = False
        elif isinstance(action, DeleteQueue):
            self.exists["queue"] = False
        elif isinstance(action, DeleteCluster):
            self.exists["cluster"] = False
        elif isinstance(action, WriteSummary):
            self.exists["summary"] = True
        elif isinstance(action, (CreateIdleAlarms, DeleteAlarms, DeleteDashboard)):
            pass  # free resources; the simulated run has none (each machine's idle alarm is modelled on its own)
        elif isinstance(action, RemoveRunRecord):
            world.teardown_done_at = world.now
            world.monitor_done = True
        else:
            raise TypeError(f"the simulator cannot apply {type(action).__name__}")


class DSMonitor:
    """DS's `run.py monitor`: check the queue every minute; on every tenth check, if no job is visible and
    fewer jobs are in flight than machines are active, set the fleet target to the in-flight count
    (noTermination); idle machines are left to the alarm. The first time the queue is empty (nothing visible
    nor in flight): the service to 0, the machines' alarms deleted 100 at a time with a 10-s sleep after each
    batch, then the fleet cancelled with its machines.

    With `lambda_crashes`, DS's auto-monitor Lambda instead: the same until the queue is empty, then it
    crashes before it cancels the fleet (its alarm deletion, given instance ids for alarm names, deletes none),
    so every machine lives until its idle alarm. Its own downscale, on the visible-is-zero alarm, is modelled
    by run.py's rule above."""

    workers = DS_WORKERS

    def __init__(self, scenario: Scenario, lambda_crashes: bool = False):
        self.lambda_crashes = lambda_crashes
        self.name = "DS (Lambda crashing)" if lambda_crashes else "DS"
        self.checks = 0
        self.world: World | None = None
        # the run as DS's Lambda crashing would have ended it: the world when the queue was found empty, and what
        # follows if nothing cancels the fleet (see left_to_idle_alarms())
        self.at_crash: Result | None = None
        self.crash_continuation: Continuation | None = None

    def start(self, world: World) -> None:
        self.world = world
        world.at(world.now, self.tick)  # DS checks the queue as soon as it starts

    def tick(self, _=None, __=None) -> None:
        world = self.world
        if world.visible_count + world.in_flight == 0:
            if self.lambda_crashes:
                world.abandon()
                return
            self.at_crash = world.result("DS (Lambda crashing)")
            self.crash_continuation = world.left_to_idle_alarms()
            batches = math.ceil(len(world.machines) / DS_ALARM_BATCH)
            world.at(world.now + batches * DS_ALARM_BATCH_SLEEP_S, self.cancel)
            return
        if (self.checks % DS_DOWNSCALE_EVERY == DS_DOWNSCALE_EVERY - 1 and world.visible_count == 0
                and world.in_flight < len(world.machines)):
            world.set_fleet_target(world.in_flight)
        self.checks += 1
        world.at(world.now + DS_MONITOR_S, self.tick)

    def cancel(self, _=None, __=None) -> None:
        world = self.world
        world.cancel_fleet()  # cancel_spot_fleet_requests(TerminateInstances=True)
        world.teardown_done_at = world.now
        world.monitor_done = True

    def crashed_result(self) -> Result:
        """This run as DS's crashing Lambda would have ended it: the same until the queue was empty, then every
        machine left to its idle alarm (World.left_to_idle_alarms, computed at that moment)."""
        before, rest = self.at_crash, self.crash_continuation
        makespan = max(before.makespan_s, rest.last_finished_at or 0.0)
        return replace(before, makespan_s=makespan, usage=before.usage + rest.usage,
                       jobs_done=before.jobs_done + rest.jobs_finished,
                       last_machine_gone_s=rest.last_machine_gone_at - makespan,
                       interruptions=before.interruptions + rest.interruptions)


def simulate(scenario: Scenario, monitor_class, **options) -> Result:
    monitor = monitor_class(scenario, **options)
    return World(scenario, monitor.workers).run(monitor)


def simulate_all(scenario: Scenario) -> tuple[Result, Result, Result]:
    """Ours, DS, and DS with its Lambda crashing (derived from DS's run: one run of DS, not two)."""
    ours = simulate(scenario, OurMonitor)
    ds_monitor = DSMonitor(scenario)
    ds = World(scenario, ds_monitor.workers).run(ds_monitor)
    return ours, ds, ds_monitor.crashed_result()


# ---------------------------------------------------------------- reference schedules

BOUND_SEEDS = range(1, 7)  # the heavy-tail scenario's bounds are printed for these seeds


def ideal_schedule(durations, machines: int, slots: int, boot_s: float) -> tuple[float, float]:
    """(machine-seconds, makespan) of list scheduling with nothing lost: every machine launched at 0 and polling
    at boot_s, each free slot taking the next job in `durations`' order at once, each machine released the
    instant its last job ends, no interruption, no monitor period, no alarm.

    In queue order it is the best any policy of ours' kind can do: one that starts a waiting job whenever a
    slot is free on the CLUSTER_MACHINES machines, never stops a running job, and cannot know a job's
    duration before it ends, so cannot choose to put the long ones together. Longest first (LPT), it is a
    clairvoyant packing: what knowing every duration in advance would allow."""
    free = [(boot_s, machine, slot) for machine in range(machines) for slot in range(slots)]
    heapq.heapify(free)
    last_end = [boot_s] * machines
    for duration in durations:
        at, machine, slot = heapq.heappop(free)
        last_end[machine] = max(last_end[machine], at + duration)
        heapq.heappush(free, (at + duration, machine, slot))
    return sum(last_end), max(last_end)


def bounds(scenario: Scenario) -> str:
    """The scenario over BOUND_SEEDS against the lower bound and the two ideal schedules."""
    lines = [f"### {scenario.name} against its bounds, seeds {BOUND_SEEDS[0]} to {BOUND_SEEDS[-1]}: "
             "billed machine-min (x lower bound)", "",
             "Ideal schedules: nothing lost (no interruption, no monitor period, a machine released the instant "
             "its last job ends). Clairvoyant: longest job first, as if every duration were known. Online: jobs "
             "in queue order on the free slots, the best a policy can do that neither knows durations nor runs "
             f"fewer machines than asked; on half the machines ({max(1, scenario.machines // 2)}) for "
             "comparison (makespan in brackets).", "",
             "| seed | lower bound | ideal, clairvoyant | ideal, online | ideal, online on half the machines "
             "| ours | DS | DS (Lambda crashing) | ours vs DS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    slots = scenario.workers_per_machine
    for seed in BOUND_SEEDS:
        seeded = replace(scenario, seed=seed)
        durations = job_durations(seeded)
        lower = lower_bound_s(durations, seeded)
        clairvoyant, _ = ideal_schedule(sorted(durations, reverse=True), seeded.machines, slots, seeded.boot_s)
        online, online_makespan = ideal_schedule(durations, seeded.machines, slots, seeded.boot_s)
        halved, halved_makespan = ideal_schedule(durations, max(1, seeded.machines // 2), slots, seeded.boot_s)
        ours, ds, crashed = simulate_all(seeded)

        def cell(machine_s: float, makespan_s: float | None = None, lower: float = lower) -> str:
            text = f"{machine_s / 60:,.0f} ({machine_s / lower:.2f}x)"
            return text if makespan_s is None else f"{text} [{makespan_s / 60:.0f} min]"
        lines.append(f"| {seed} | {lower / 60:,.0f} | {cell(clairvoyant)} | {cell(online, online_makespan)} | "
                     f"{cell(halved, halved_makespan)} | {cell(ours.billed_s, ours.makespan_s)} | "
                     f"{cell(ds.billed_s, ds.makespan_s)} | {cell(crashed.billed_s)} | {compared(ours, ds)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def _minutes(seconds):
    return None if seconds is None else seconds / 60


def _slot_minutes(slot_seconds: float, result: Result) -> float:
    """Slot-seconds as machine-minutes: a machine's minute is `slots_per_machine` slot-minutes."""
    return slot_seconds / result.slots_per_machine / 60


ROWS = (
    ("makespan (min)", lambda r: r.makespan_s / 60, "{:,.1f}"),
    ("billed machine-min", lambda r: r.billed_s / 60, "{:,.0f}"),
    ("lower bound machine-min (jobs / slots + one boot per machine)", lambda r: r.lower_bound_s / 60, "{:,.0f}"),
    ("**billed / lower bound**", lambda r: r.over_lower_bound, "**{:.3f}**"),
    ("billed = booting", lambda r: r.usage.booting_s / 60, "{:,.0f}"),
    ("+ running commands (busy slot-time / slots)", lambda r: _slot_minutes(r.busy_slot_s, r), "{:,.0f}"),
    ("+ slots free beside a running job (/ slots)", lambda r: _slot_minutes(r.free_beside_slot_s, r), "{:,.0f}"),
    ("+ DS's pause after each job (/ slots)", lambda r: _slot_minutes(r.pause_slot_s, r), "{:,.0f}"),
    ("+ whole machines idle (no job held)", lambda r: r.idle_machine_s / 60, "{:,.0f}"),
    ("efficiency (busy slot-time / billed slot-time)", lambda r: r.efficiency, "{:.3f}"),
    ("jobs done", lambda r: r.jobs_done, "{:,}"),
    ("jobs lost", lambda r: r.jobs_lost, "{:,}"),
    ("duplicate executions", lambda r: r.duplicates, "{:,}"),
    ("jobs in the dead-letter queue", lambda r: r.dead_letter, "{:,}"),
    ("last machine gone after the last job (min)", lambda r: _minutes(r.last_machine_gone_s), "{:,.1f}"),
    ("teardown complete after the last job (min)", lambda r: _minutes(r.teardown_delay_s), "{:,.1f}"),
    ("machines launched", lambda r: r.machines_launched, "{:,}"),
    ("spot interruptions", lambda r: r.interruptions, "{:,}"),
)


def _cell(value, fmt: str) -> str:
    return "never" if value is None else fmt.format(value)


def compared(ours: Result, other: Result) -> str:
    """Ours' bill against another's, in words: 'ours 12.3 % less', 'the same (0.4 %)'."""
    change = (ours.billed_s - other.billed_s) / other.billed_s * 100
    if abs(change) < 1.0:
        return f"the same ({change:+.1f} %)"
    return f"ours {abs(change):.1f} % {'less' if change < 0 else 'more'}"


def describe(scenario: Scenario) -> str:
    return (f"{scenario.jobs:,} jobs ({scenario.durations.kind}, median {scenario.durations.median_s:g} s) on "
            f"{scenario.machines:,} machines x {scenario.workers_per_machine} workers, visibility "
            f"{scenario.visibility_s:g} s, spot {scenario.interruptions_per_machine_hour * 100:g} %/machine-hour, "
            f"failures {scenario.failure_rate:g}, seed {scenario.seed}")


def markdown(scenario: Scenario, results: tuple[Result, ...], seconds: float) -> str:
    lines = [f"### {scenario.name}: {describe(scenario)} ({seconds:.1f} s of CPU to simulate)", "",
             "| metric | " + " | ".join(r.policy for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for label, value, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(value(r), fmt) for r in results) + " |")
    ours, *others = results
    lines += ["", "Billed: " + "; ".join(f"vs {other.policy}, {compared(ours, other)}" for other in others) + "."]
    return "\n".join(lines)


def summary(rows: list[tuple[Scenario, tuple[Result, ...]]]) -> str:
    lines = ["### Summary: billed machine-min (billed / lower bound)", "",
             "DS minus ours, split: its worker's 30-s pause after each job; whole machines idle (ours releases a "
             "machine on the monitor's next tick, DS leaves it to the teardown or the 15-minute alarm); the rest "
             "(booting, slots free beside a running job, commands run twice or killed).", "",
             "| scenario | lower bound | ours | DS | DS (Lambda crashing) | ours vs DS | DS minus ours: pause "
             "| idle machines | the rest | jobs not done ours / DS |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for scenario, (ours, ds, crashed) in rows:
        cells = [f"{r.billed_s / 60:,.0f} ({r.over_lower_bound:.2f}x)" for r in (ours, ds, crashed)]
        pause = _slot_minutes(ds.pause_slot_s - ours.pause_slot_s, ds)
        idle = (ds.idle_machine_s - ours.idle_machine_s) / 60
        rest = (ds.billed_s - ours.billed_s) / 60 - pause - idle
        lines.append(f"| {scenario.name} | {ours.lower_bound_s / 60:,.0f} | " + " | ".join(cells)
                     + f" | {compared(ours, ds)} | {pause:,.0f} | {idle:,.0f} | {rest:,.0f} "
                     f"| {scenario.jobs - ours.jobs_done} / {scenario.jobs - ds.jobs_done} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python bench/simulate.py --scenario heavy-tail")
    parser.add_argument("--scenario", help="run only this one: " + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="a hundredth of the jobs on a tenth of the machines")
    args = parser.parse_args(argv)
    scenarios = [by_name(args.scenario)] if args.scenario else list(SCENARIOS)
    started = time.process_time()
    lost = 0
    rows = []
    for scenario in scenarios:
        if args.quick:
            scenario = scenario.quick()
        scenario_started = time.process_time()
        results = simulate_all(scenario)
        lost += results[0].jobs_lost + results[1].jobs_lost
        rows.append((scenario, results))
        print(markdown(scenario, results, time.process_time() - scenario_started) + "\n", flush=True)
    print(summary(rows) + "\n")
    for scenario, _ in rows:
        if scenario.durations.kind == "heavy_tail":
            print(bounds(scenario) + "\n")
    print(f"({time.process_time() - started:.1f} s of CPU in all; wall time is longer when the CPUs are shared)")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
