"""One seed's scenario: the runs, their jobs and the schedule of faults, a pure function of the seed.

Only `random.Random(seed)` is drawn from (no clock, no environment), so `scenario(seed)` is the same on every
machine and every replay. A run's start is in seconds after the seed's start; an event's, after the first run has
sent its jobs (before, a fault would only meet the runs' setup, for a time that depends on the machine's load).
The numbers are small on purpose: a short visibility and JOB_TIMEOUT, short jobs, so that a seed takes a few
minutes of two busy cores.

Every seed also has one run in DS image mode (COMMAND null: the user's image runs DS's own worker). Local mode
refuses such a config (localrun/prepare.py `localize_command`), so that run is played as a DS user plays it, one
CLI command after the other (tests/chaos/ds_run.py), its machines' ECS tasks emulated by the harness. Its
parameters, and the events aimed at it, are drawn from a Random of their own (`random.Random(f"ds/{seed}")`),
after the local runs' and the schedule's draws: those are what they were before it existed.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

# What the injector can do, each a kind of the campaign table's "faults injected by kind".
FAULT_KINDS = ("throttle", "5xx", "latency", "kill-worker", "spot", "tick", "tick-overlap", "tick-killed",
               "teardown", "redrive", "append", "attack")
# Services the proxy's windows pick from, by the SigV4 scope's name, and operations a window may be narrowed to:
# those of JSON protocols only, whose X-Amz-Target names the operation (the query protocols' is in the body).
SERVICES = ("sqs", "s3", "ec2", "ecs", "logs", "monitoring")
OPERATIONS = {"sqs": ("ReceiveMessage", "DeleteMessage", "SendMessageBatch", "ChangeMessageVisibility"),
              "ecs": ("UpdateService", "DeleteService", "DescribeServices", "DeregisterTaskDefinition")}
ATTACKS = ("forge-failure", "foreign-message", "outside-prefix")
BUCKET = "chaos-bucket"
DEAD_LETTER_QUEUE = "chaos_DeadMessages"
# Well past the slowest "sleep" job's 1.5 s plus a Python start on a machine at load 30 (seconds), so that only
# "hang" jobs reach it
JOB_TIMEOUT_SECONDS = 8.0


@dataclass(frozen=True)
class RunPlan:
    app_name: str
    jobs: tuple[tuple[str, str], ...]  # (job id, mode), in the job file's order
    start_at: float
    workers: int  # local mode's --workers
    machines: int  # CLUSTER_MACHINES
    visibility: int  # SQS_MESSAGE_VISIBILITY
    retries: int  # JOB_RETRIES
    interrupt_rate: float  # local mode's --interrupt-rate (0: no spot notices)
    # DS image mode (COMMAND null), played by tests/chaos/ds_run.py instead of local mode; `workers` is then unused
    ds_image: bool = False
    tasks_per_machine: int = 1  # TASKS_PER_MACHINE (DS image mode: ECS tasks of DS's worker per machine)
    expected_files: int = 1  # EXPECTED_NUMBER_FILES (DS image mode: outputs that make a job done)

    @property
    def output_root(self) -> str:
        return f"{self.app_name}/"


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # one of FAULT_KINDS ("spot": a local run's --interrupt-rate, or a reclaim aimed at the DS run)
    run: str = ""  # the run it is aimed at, if any
    service: str = ""  # throttle/5xx/latency: the service, and the operation if one
    operation: str = ""
    seconds: float = 0.0  # a window's length; a latency's delay per request; a killed tick's life
    rate: float = 0.0  # the share of matching requests a window fails or delays
    jobs: tuple[tuple[str, str], ...] = ()  # append: the jobs sent

    def describe(self) -> str:
        where = f" {self.run}" if self.run else ""
        if self.kind in ("throttle", "5xx"):
            target = self.service + (f".{self.operation}" if self.operation else "")
            return f"{self.kind} {target} for {self.seconds:.1f} s, {self.rate:.0%} of requests"
        if self.kind == "latency":
            return f"latency {self.service} +{self.rate:.2f} s per request for {self.seconds:.1f} s"
        if self.kind == "tick-killed":
            return f"Lambda tick, SIGKILLed after {self.seconds:.2f} s"
        if self.kind == "tick-overlap":
            return "two Lambda ticks at once (a scheduled one and an alarm's)"
        if self.kind == "append":
            return f"submit --append{where}: {len(self.jobs)} jobs ({', '.join(sorted({m for _, m in self.jobs}))})"
        if self.kind == "spot":
            return f"spot reclaim{where}: one of its machines terminated (the fleet replaces it)"
        return f"{self.kind}{where}"


@dataclass(frozen=True)
class Scenario:
    seed: int
    bucket: str
    dead_letter_queue: str
    runs: tuple[RunPlan, ...]
    events: tuple[Event, ...]  # by time

    @property
    def jobs(self) -> int:
        return sum(len(run.jobs) for run in self.runs) + sum(len(event.jobs) for event in self.events)

    @property
    def local_runs(self) -> tuple[RunPlan, ...]:
        return tuple(run for run in self.runs if not run.ds_image)

    @property
    def ds_runs(self) -> tuple[RunPlan, ...]:
        return tuple(run for run in self.runs if run.ds_image)

    def describe(self) -> str:
        lines = [f"seed {self.seed}: {len(self.local_runs)} runs and {len(self.ds_runs)} in DS image mode, "
                 f"{self.jobs} jobs, bucket {self.bucket}, dead-letter queue {self.dead_letter_queue}"]
        for run in self.runs:
            modes: dict[str, int] = {}
            for _, mode in run.jobs:
                modes[mode.split(":")[0]] = modes.get(mode.split(":")[0], 0) + 1
            attacks = [f"{job_id}={mode}" for job_id, mode in run.jobs if mode.startswith("attack:")]
            counted = ", ".join(f"{count} {mode}" for mode, count in sorted(modes.items()))
            if run.ds_image:
                lines.append(f"  run {run.app_name} (DS image mode) at {run.start_at:.1f} s: {len(run.jobs)} jobs "
                             f"({counted}), {run.machines} machines, {run.tasks_per_machine} task(s) each, "
                             f"visibility {run.visibility} s, JOB_RETRIES {run.retries}, "
                             f"EXPECTED_NUMBER_FILES {run.expected_files}")
                continue
            lines.append(f"  run {run.app_name} at {run.start_at:.1f} s: {len(run.jobs)} jobs "
                         f"({counted}), "
                         f"{run.machines} machines, --workers {run.workers}, visibility {run.visibility} s, "
                         f"JOB_RETRIES {run.retries}, spot notices {run.interrupt_rate:g}"
                         + (f"; attacks {' '.join(attacks)}" if attacks else ""))
        lines.append("schedule:")
        lines.extend(f"  {event.at:6.1f} s  {event.describe()}" for event in self.events)
        return "\n".join(lines) + "\n"


def scenario(seed: int) -> Scenario:
    draw = random.Random(seed)
    count = draw.randint(2, 5)
    runs = []
    for index in range(count):
        app = f"Chaos{seed}R{index}"
        jobs = [(f"j{number:03d}", _mode(draw)) for number in range(draw.randint(20, 200 if count <= 3 else 80))]
        runs.append(RunPlan(app, tuple(jobs), start_at=round(index * draw.uniform(0.5, 3.0), 1),
                            workers=draw.randint(2, 3), machines=draw.randint(1, 3), visibility=draw.randint(3, 6),
                            retries=draw.randint(3, 4),
                            interrupt_rate=draw.choice((0.0, 0.0, 0.005, 0.01))))
    runs = _with_attacks(draw, runs)
    events = _schedule(draw, runs)
    ds, ds_events = ds_image_run(seed)
    # a stable sort: events at the same moment keep the order they had without the DS run's
    return Scenario(seed, BUCKET, DEAD_LETTER_QUEUE, (*runs, ds),
                    tuple(sorted(events + ds_events, key=lambda e: e.at)))


def ds_image_run(seed: int) -> tuple[RunPlan, list[Event]]:
    """The seed's run in DS image mode and the events aimed at it, from a Random of their own: the local runs and
    the rest of the schedule are drawn as before. No attack jobs: DS's worker is not this project's, and what a job
    may reach is the same task role as any run's (the local runs' attacks test it)."""
    draw = random.Random(f"ds/{seed}")
    app = f"Chaos{seed}DS"
    jobs = tuple((f"j{number:03d}", _mode(draw)) for number in range(draw.randint(10, 60)))
    run = RunPlan(app, jobs, start_at=round(draw.uniform(0.0, 6.0), 1), workers=1, machines=draw.randint(1, 3),
                  visibility=draw.randint(4, 8), retries=draw.randint(2, 3), interrupt_rate=0.0, ds_image=True,
                  tasks_per_machine=draw.randint(1, 2), expected_files=draw.randint(1, 3))
    events = [Event(round(draw.uniform(8, 40), 1), "kill-worker", run=app) for _ in range(draw.randint(0, 2))]
    events += [Event(round(draw.uniform(6, 40), 1), "spot", run=app) for _ in range(draw.randint(0, 2))]
    if draw.random() < 0.15:
        events.append(Event(round(draw.uniform(8, 30), 1), "teardown", run=app))
    if draw.random() < 0.3:
        events.append(Event(round(draw.uniform(10, 45), 1), "redrive", run=app))
    for _ in range(draw.randint(0, 1)):
        first = len(jobs) + sum(len(event.jobs) for event in events)
        appended = tuple((f"a{first + number:03d}", _mode(draw)) for number in range(draw.randint(1, 10)))
        events.append(Event(round(draw.uniform(4, 25), 1), "append", run=app, jobs=appended))
    return run, events


def _mode(draw: random.Random) -> str:
    pick = draw.random()
    if pick < 0.45:
        return "ok"
    if pick < 0.80:
        return f"sleep:{draw.uniform(0.05, 1.5):.2f}"
    if pick < 0.89:
        return "flaky"
    if pick < 0.98:
        return "fail"
    return "hang"


def _with_attacks(draw: random.Random, runs: list[RunPlan]) -> list[RunPlan]:
    """One to three jobs of the seed turned hostile, each aimed at a job or run the task role lets it reach."""
    changed = {run.app_name: dict(run.jobs) for run in runs}
    for _ in range(draw.randint(1, 3)):
        attacker = draw.choice(runs)
        job_id = draw.choice(list(changed[attacker.app_name]))
        kind = draw.choice(ATTACKS)
        if kind == "foreign-message":
            victims = [run.app_name for run in runs if run is not attacker]
            target = draw.choice(victims)
        else:
            target = draw.choice([other for other in changed[attacker.app_name] if other != job_id])
        changed[attacker.app_name][job_id] = f"attack:{kind}:{target}"
    return [dataclasses.replace(run, jobs=tuple(changed[run.app_name].items())) for run in runs]


def _schedule(draw: random.Random, runs: list[RunPlan]) -> list[Event]:
    events = []
    for _ in range(draw.randint(1, 4)):  # windows on a service, or on one of its operations
        service = draw.choice(SERVICES)
        kind = draw.choice(("throttle", "5xx", "latency"))
        operation = draw.choice(("", *OPERATIONS.get(service, ()))) if kind != "latency" else ""
        events.append(Event(round(draw.uniform(2, 40), 1), kind, service=service, operation=operation,
                            seconds=round(draw.uniform(2, 10), 1),
                            rate=round(draw.uniform(0.05, 0.3), 2) if kind == "latency" else
                            round(draw.uniform(0.2, 0.8), 2)))
    for _ in range(draw.randint(0, 3)):
        events.append(Event(round(draw.uniform(8, 40), 1), "kill-worker", run=draw.choice(runs).app_name))
    for _ in range(draw.randint(1, 4)):
        events.append(Event(round(draw.uniform(3, 60), 1), "tick"))
    if draw.random() < 0.6:
        events.append(Event(round(draw.uniform(5, 50), 1), "tick-overlap"))
    if draw.random() < 0.6:
        events.append(Event(round(draw.uniform(5, 50), 1), "tick-killed", seconds=round(draw.uniform(0.3, 3.0), 2)))
    if len(runs) > 2 and draw.random() < 0.5:
        events.append(Event(round(draw.uniform(8, 30), 1), "teardown", run=draw.choice(runs).app_name))
    for _ in range(draw.randint(0, 2)):
        events.append(Event(round(draw.uniform(10, 45), 1), "redrive", run=draw.choice(runs).app_name))
    for _ in range(draw.randint(0, 2)):
        run = draw.choice(runs)
        first = len(run.jobs) + sum(len(event.jobs) for event in events if event.run == run.app_name)
        jobs = tuple((f"a{first + number:03d}", _mode(draw)) for number in range(draw.randint(1, 10)))
        events.append(Event(round(draw.uniform(4, 25), 1), "append", run=run.app_name, jobs=jobs))
    return events
