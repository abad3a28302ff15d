"""Run simulator: a whole run (queue, spot fleet, workers, monitor) on a simulated clock.

A discrete-event simulation: a heap of timed events (a job ends, a machine boots, a message's
visibility timeout expires, a failed job's retry delay ends, a spot notice, a spot termination, an
idle alarm, a monitor tick), so a run of a million jobs costs a million events, not a loop over
simulated seconds. Our monitor is the real `plan()` fed an `Observation` built from the simulated
world, its actions applied back to it; DS's monitor is re-implemented from DS's `run.py monitor`.

    python bench/simulate.py                      # every scenario, ours and DS, as markdown
    python bench/simulate.py --scenario heavy-tail
    python bench/simulate.py --quick              # a hundredth of the jobs (tests, smoke runs)

What is modelled and what is not is listed in bench/README.md ("Run simulator").
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scenarios import SCENARIOS, Scenario, by_name  # noqa: E402
from chalicelib.monitor.actions import (Action, CancelFleet, DeleteAlarms, DeleteCluster,  # noqa: E402
                                        DeleteDashboard, DeleteQueue, DeleteService, DeregisterTaskDefinitions,
                                        RemoveRunRecord, SaveState, SetFleetCapacity, SetServiceCount,
                                        TerminateInstances, WriteSummary)
from chalicelib.monitor.observation import Instance, MonitorState, Observation, Policy  # noqa: E402
from chalicelib.monitor.plan import plan  # noqa: E402

RETRY_DELAY_S = 60.0  # a failed job's message is made visible again this long after the failure
SPOT_NOTICE_S = 120.0  # AWS warns two minutes before it takes a spot machine back
IDLE_ALARM_S = 15 * 60.0  # the per-instance alarm: 15 one-minute periods under 1 % CPU
DS_MONITOR_S = 60.0  # DS's MONITOR_TIME: its loop checks the queue every minute ...
DS_DOWNSCALE_EVERY = 10  # ... and downscales on every tenth check (the minutes ending in 9)
GIVE_UP_S = 30 * 24 * 3600.0  # a run that has not ended after a simulated month is reported as such

# Where a job's message is. A job can be done (its output exists) and still DEAD: DS moves a long
# job to the dead-letter queue after enough re-deliveries while its first execution still runs.
VISIBLE, IN_FLIGHT, DELETED, DEAD = range(4)


class Job:
    __slots__ = ("duration", "receives", "receipt", "message", "running", "done")

    def __init__(self, duration: float):
        self.duration = duration
        self.receives = 0
        self.receipt = 0  # bumps on every receive: events about an older receive are stale
        self.message = VISIBLE
        self.running = 0  # executions running now; more than one is a duplicate
        self.done = False


class Machine:
    __slots__ = ("instance_id", "launched_at", "terminated_at", "workers", "busy", "draining", "idle_since")

    def __init__(self, instance_id: str, launched_at: float):
        self.instance_id = instance_id
        self.launched_at = launched_at
        self.terminated_at: float | None = None
        self.workers: list[Worker] = []  # empty while it boots
        self.busy = 0  # jobs its workers run now: the busy leases the monitor reads
        self.draining = False  # spot notice received: its workers take no more work
        self.idle_since: float | None = None


class Worker:
    __slots__ = ("machine", "job", "run", "started", "receipt", "fails", "pool_index")

    def __init__(self, machine: Machine):
        self.machine = machine
        self.job: Job | None = None
        self.run = 0  # bumps when an execution ends or is stopped: its pending end event is stale
        self.started = 0.0
        self.receipt = 0
        self.fails = False
        self.pool_index = -1  # position in World.idle_workers, -1 when not waiting


@dataclass(frozen=True)
class Result:
    scenario: str
    policy: str
    makespan_s: float  # start to the last job done or dead-lettered
    billed_s: float  # machine-seconds from launch to termination
    busy_s: float  # machine-seconds while at least one job ran on the machine
    idle_after_last_start_s: float  # billed minus busy from the last start of needed work to the end
    jobs_done: int
    jobs_lost: int  # neither done nor in the dead-letter queue
    duplicates: int  # executions started while another execution of the same job was running
    dead_letter: int
    teardown_delay_s: float | None  # last job finished -> teardown complete (None: never)
    machines_launched: int
    interruptions: int
    events: int

    @property
    def efficiency(self) -> float:
        return self.busy_s / self.billed_s if self.billed_s else 0.0


class World:
    """The simulated AWS: one queue with its dead-letter queue, one spot fleet (maintain), the workers."""

    def __init__(self, scenario: Scenario, heartbeat: bool, handles_spot_notice: bool):
        self.scenario = scenario
        self.heartbeat = heartbeat
        self.handles_spot_notice = handles_spot_notice
        self.now = 0.0
        self._events: list = []
        self._sequence = itertools.count()  # ties broken by scheduling order: deterministic
        self.event_count = 0
        # Separate streams, so that e.g. adding interruptions does not change the job durations.
        self._failure_rng = random.Random(f"{scenario.seed}-failures")
        self._spot_rng = random.Random(f"{scenario.seed}-spot")
        self._poll_rng = random.Random(f"{scenario.seed}-polls")
        durations = scenario.durations.sample(random.Random(f"{scenario.seed}-durations"), scenario.jobs)
        self.jobs = [Job(duration) for duration in durations]
        # queue
        self.visible_queue: deque[Job] = deque(self.jobs)  # may hold stale entries; visible_count is the truth
        self.visible_count = len(self.jobs)
        self.in_flight = 0
        self.dead_letter = 0
        # fleet and machines
        self.fleet_active = True
        self.fleet_target = scenario.machines
        self.machines: dict[str, Machine] = {}  # live ones (pending or running), in launch order
        self.launched = 0
        self.interruptions = 0
        self.idle_workers: list[Worker] = []
        self.teardown_done_at: float | None = None
        # accounting: integrals over time of the live and the busy machine counts
        self.busy_machines = 0
        self.billed_s = 0.0
        self.busy_s = 0.0
        self.duplicates = 0
        self.last_settled = 0.0  # the last job done or dead-lettered
        self.last_needed_start = 0.0
        self.idle_mark_at_last_needed_start = 0.0

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
        """Process events until teardown is complete and no machine is left."""
        events = self._events
        while events and self.now < GIVE_UP_S:
            when, _, handler, first, second = heapq.heappop(events)
            if when > self.now:
                elapsed = when - self.now
                self.billed_s += len(self.machines) * elapsed
                self.busy_s += self.busy_machines * elapsed
                self.now = when
            self.event_count += 1
            handler(first, second)
            if self.teardown_done_at is not None and not self.machines:
                break
        return self.result(monitor.name)

    def idle_mark(self) -> float:
        """Idle machine-seconds so far (billed minus busy), to subtract later."""
        return self.billed_s - self.busy_s

    # ------------------------------------------------------------ the fleet

    def fill_fleet(self) -> None:
        """A maintain fleet launches machines while it has fewer than its target, and never stops any."""
        while self.fleet_active and len(self.machines) < self.fleet_target:
            self._launch()

    def set_fleet_target(self, target: int) -> None:
        self.fleet_target = target
        self.fill_fleet()

    def cancel_fleet(self) -> None:
        self.fleet_active = False
        for machine in list(self.machines.values()):
            self.terminate(machine)

    def _launch(self) -> None:
        machine = Machine(f"i-{self.launched:07d}", self.now)
        self.launched += 1
        self.machines[machine.instance_id] = machine
        self.at(self.now + self.scenario.boot_s, self._booted, machine)
        rate = self.scenario.interruptions_per_machine_hour
        if rate > 0:
            self.interrupt(machine, self.now + self._spot_rng.expovariate(rate / 3600.0))

    def interrupt(self, machine: Machine, reclaimed_at: float) -> None:
        """AWS takes the spot machine back at `reclaimed_at`, with its notice two minutes before."""
        self.at(max(self.now, reclaimed_at - SPOT_NOTICE_S), self._spot_notice, machine)
        self.at(reclaimed_at, self._spot_reclaimed, machine)

    def _booted(self, machine: Machine, _=None) -> None:
        if machine.terminated_at is not None or machine.draining:
            return
        machine.workers = [Worker(machine) for _ in range(self.scenario.workers_per_machine)]
        for worker in machine.workers:
            self._worker_free(worker)
        if machine.busy == 0:
            self._machine_idle(machine)

    def terminate(self, machine: Machine) -> None:
        """The machine is gone: billing stops, its running jobs die with it."""
        if machine.terminated_at is not None:
            return
        machine.terminated_at = self.now
        del self.machines[machine.instance_id]
        for worker in machine.workers:
            if worker.pool_index >= 0:
                self._unpool(worker)
            if worker.job is not None:
                self._execution_killed(worker)

    def _execution_killed(self, worker: Worker) -> None:
        job, receipt, started = worker.job, worker.receipt, worker.started
        self._end_execution(worker)
        if job.message != IN_FLIGHT or job.receipt != receipt:
            return
        if self.heartbeat:
            # the last heartbeat set the timeout from about now
            self.at(self.now + self.scenario.visibility_s, self._visibility_expired, job, receipt)
        elif job.duration <= self.scenario.visibility_s:
            # without a heartbeat the timeout runs from the receive (a longer job already has its expiry event)
            self.at(max(self.now, started + self.scenario.visibility_s), self._visibility_expired, job, receipt)

    def _spot_notice(self, machine: Machine, _=None) -> None:
        if machine.terminated_at is not None or not self.handles_spot_notice:
            return  # DS's workers do not watch for the notice: they work on until the machine dies
        machine.draining = True
        for worker in machine.workers:
            if worker.pool_index >= 0:
                self._unpool(worker)  # first, so that no job stopped below lands back on this machine
        for worker in machine.workers:
            if worker.job is not None:
                # our worker stops the command and makes the message visible at once
                job, receipt = worker.job, worker.receipt
                self._end_execution(worker)
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
        if job is None:
            worker.pool_index = len(self.idle_workers)
            self.idle_workers.append(worker)
        else:
            self._start(worker, job)

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
        job.message = IN_FLIGHT
        self.in_flight += 1
        if job.running:
            self.duplicates += 1
        else:
            # needed work starts (a first attempt, a retry, a re-run after an interruption); a duplicate is
            # not needed, so DS's re-deliveries of long jobs do not push "the last job started" later
            self.last_needed_start = now
            self.idle_mark_at_last_needed_start = self.billed_s - self.busy_s
        job.running += 1
        machine = worker.machine
        if machine.busy == 0:
            self.busy_machines += 1
            machine.idle_since = None
        machine.busy += 1
        worker.job = job
        worker.started = now
        worker.receipt = job.receipt
        failure_rate = self.scenario.failure_rate
        worker.fails = failure_rate > 0 and self._failure_rng.random() < failure_rate
        self.at(now + job.duration, self._execution_ended, worker, worker.run)
        if not self.heartbeat and job.duration > self.scenario.visibility_s:
            # nobody extends the timeout: SQS hands the job to another worker while this one still runs it
            self.at(now + self.scenario.visibility_s, self._visibility_expired, job, job.receipt)

    def _end_execution(self, worker: Worker) -> None:
        job, machine = worker.job, worker.machine
        job.running -= 1
        machine.busy -= 1
        if machine.busy == 0:
            self.busy_machines -= 1
        worker.job = None
        worker.run += 1

    def _execution_ended(self, worker: Worker, run: int) -> None:
        if worker.run != run:
            return  # stopped by a spot notice or killed with its machine
        job, receipt = worker.job, worker.receipt
        self._end_execution(worker)
        if worker.fails:
            if job.message == IN_FLIGHT and job.receipt == receipt:
                self.at(self.now + RETRY_DELAY_S, self._visibility_expired, job, receipt)
        else:
            self._succeeded(job)
        machine = worker.machine
        if not machine.draining and machine.terminated_at is None:
            self._worker_free(worker)
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

    def _visibility_expired(self, job: Job, receipt: int) -> None:
        if job.message == IN_FLIGHT and job.receipt == receipt:
            self.in_flight -= 1
            self._make_visible(job)

    # ------------------------------------------------------------ results

    def result(self, policy_name: str) -> Result:
        done = sum(1 for job in self.jobs if job.done)
        lost = sum(1 for job in self.jobs if not job.done and job.message != DEAD)
        teardown = None if self.teardown_done_at is None else self.teardown_done_at - self.last_settled
        return Result(
            scenario=self.scenario.name, policy=policy_name, makespan_s=self.last_settled, billed_s=self.billed_s,
            busy_s=self.busy_s, idle_after_last_start_s=self.idle_mark() - self.idle_mark_at_last_needed_start,
            jobs_done=done, jobs_lost=lost, duplicates=self.duplicates, dead_letter=self.dead_letter,
            teardown_delay_s=teardown, machines_launched=self.launched, interruptions=self.interruptions,
            events=self.event_count)


# ---------------------------------------------------------------- the monitors


class OurMonitor:
    """The real plan() on a schedule, with its actions applied to the world (what apply.py does to AWS)."""

    name = "ours"
    heartbeat = True
    handles_spot_notice = True

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
        instances = tuple(Instance(machine.instance_id, machine.launched_at, machine.busy)
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
            bucket="sim", summary_key="monitors/Sim_summary.json", summary_exists=self.exists["summary"],
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
        elif isinstance(action, (DeleteAlarms, DeleteDashboard)):
            pass  # free resources; the simulated run has none
        elif isinstance(action, RemoveRunRecord):
            world.teardown_done_at = world.now
        else:
            raise TypeError(f"the simulator cannot apply {type(action).__name__}")


class DSMonitor:
    """DS's `run.py monitor`: check the queue every minute, tear down the first time it is empty; on
    every tenth check, if no job is visible and fewer jobs are in flight than machines are active,
    set the fleet target to the in-flight count (noTermination). Idle machines are left to the alarm."""

    name = "DS"
    heartbeat = False
    handles_spot_notice = False

    def __init__(self, scenario: Scenario):
        self.checks = 0
        self.world: World | None = None

    def start(self, world: World) -> None:
        self.world = world
        world.at(world.now, self.tick)  # DS checks the queue as soon as it starts

    def tick(self, _=None, __=None) -> None:
        world = self.world
        if world.visible_count + world.in_flight == 0:
            world.cancel_fleet()  # cancel_spot_fleet_requests(TerminateInstances=True)
            world.teardown_done_at = world.now
            return
        if self.checks % DS_DOWNSCALE_EVERY == DS_DOWNSCALE_EVERY - 1:
            if world.visible_count == 0 and world.in_flight < len(world.machines):
                world.set_fleet_target(world.in_flight)
        self.checks += 1
        world.at(world.now + DS_MONITOR_S, self.tick)


def simulate(scenario: Scenario, monitor_class) -> Result:
    monitor = monitor_class(scenario)
    world = World(scenario, heartbeat=monitor.heartbeat, handles_spot_notice=monitor.handles_spot_notice)
    return world.run(monitor)


# ---------------------------------------------------------------- report

ROWS = (
    ("makespan (min)", lambda r: r.makespan_s / 60, "{:,.1f}"),
    ("billed machine-min", lambda r: r.billed_s / 60, "{:,.0f}"),
    ("busy machine-min", lambda r: r.busy_s / 60, "{:,.0f}"),
    ("efficiency (busy / billed)", lambda r: r.efficiency, "{:.3f}"),
    ("idle machine-min after the last job started", lambda r: r.idle_after_last_start_s / 60, "{:,.1f}"),
    ("jobs done", lambda r: r.jobs_done, "{:,}"),
    ("jobs lost", lambda r: r.jobs_lost, "{:,}"),
    ("duplicate executions", lambda r: r.duplicates, "{:,}"),
    ("jobs in the dead-letter queue", lambda r: r.dead_letter, "{:,}"),
    ("teardown complete after the last job (min)",
     lambda r: None if r.teardown_delay_s is None else r.teardown_delay_s / 60, "{:,.1f}"),
    ("machines launched", lambda r: r.machines_launched, "{:,}"),
    ("spot interruptions", lambda r: r.interruptions, "{:,}"),
)


def _cell(value, fmt: str) -> str:
    return "never" if value is None else fmt.format(value)


def _ratio(ours, theirs) -> str:
    if ours is None or theirs is None:
        return "-"
    if ours == 0:
        return "-" if theirs == 0 else "inf"
    return f"{theirs / ours:.2f}"


def markdown(scenario: Scenario, ours: Result, ds: Result, seconds: float) -> str:
    lines = [f"### {scenario.name}: {scenario.jobs:,} jobs ({scenario.durations.kind}, median "
             f"{scenario.durations.median_s:g} s) on {scenario.machines:,} machines x {scenario.workers_per_machine} "
             f"workers, visibility {scenario.visibility_s:g} s, spot {scenario.interruptions_per_machine_hour:g}/h, "
             f"failures {scenario.failure_rate:g}, seed {scenario.seed} ({seconds:.1f} s to simulate both)",
             "", "| metric | ours | DS | DS / ours |", "|---|---:|---:|---:|"]
    for label, value, fmt in ROWS:
        mine, theirs = value(ours), value(ds)
        lines.append(f"| {label} | {_cell(mine, fmt)} | {_cell(theirs, fmt)} | {_ratio(mine, theirs)} |")
    return "\n".join(lines)


def run_scenario(scenario: Scenario) -> tuple[Result, Result, float]:
    started = time.perf_counter()
    ours = simulate(scenario, OurMonitor)
    ds = simulate(scenario, DSMonitor)
    return ours, ds, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python bench/simulate.py --scenario heavy-tail")
    parser.add_argument("--scenario", help="run only this one: " + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="a hundredth of the jobs on a tenth of the machines")
    args = parser.parse_args(argv)
    scenarios = [by_name(args.scenario)] if args.scenario else list(SCENARIOS)
    lost = 0
    for scenario in scenarios:
        if args.quick:
            scenario = scenario.quick()
        ours, ds, seconds = run_scenario(scenario)
        lost += ours.jobs_lost + ds.jobs_lost
        print(markdown(scenario, ours, ds, seconds) + "\n", flush=True)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
