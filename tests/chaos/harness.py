"""One seed of the campaign, played: `run_seed(seed, log_root) -> SeedResult`.

An emulator (this project's moto server) in this process, and a fault proxy in front of it: every process of
the seed (each run's `cli.py local --endpoint PROXY`, its workers and jobs, the CLI commands of the schedule, the
Lambda ticks) talks to the proxy; the checks read the emulator itself. Each caller signs with its own key id
(`chaos-<APP_NAME>` for a run and everything it starts, `chaos-lambda` for the ticks), which the audit records.
The seed's run in DS image mode goes as a DS user's (tests/chaos/ds_run.py: its CLI commands one after the
other, then `cli.py monitor`), its tasks kept by the harness's emulation of ECS. An injector plays the scenario's
schedule; the seed ends when every run's local process and the DS run's monitor have exited, or at its time limit
(a "hung" violation, everything killed). Then the invariants, and a final tick, which must find
nothing left to do. Nothing of the seed outlives it: every process is killed by its group and looked for by the
seed's marker afterwards (tests/e2e/local_world.py's /proc scan).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import boto3

from localrun.account import raise_spot_quotas
from localrun.embedded import DUMMY_KEY, KEY_ID_VARIABLE, emulator
from tests.chaos import ds_run
from tests.chaos.audit import Recorder
from tests.chaos.ds_run import DsRun
from tests.chaos.invariants import bystander, check
from tests.chaos.job import FORGED_PREFIX
from tests.chaos.scenario import JOB_TIMEOUT_SECONDS, Event, RunPlan, Scenario, scenario
from tests.chaos.tick import LAMBDA_SECONDS
from tests.chaos.world import ChaosRun, ChaosWorld
from tests.e2e.local_world import MARK_VARIABLE, marked_processes
from tests.faults import FaultProxy, Request

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "cli.py"
JOB = Path(__file__).resolve().parent / "job.py"
REGION = "us-east-1"
LAMBDA_KEY = "chaos-lambda"
# A seed's time limit: this, plus PER_JOB_SECONDS per job. Generous: a limit is only reached by a run that never
# ends, and on a machine at load 20 a local run does a job every 3 s or so per worker.
BASE_LIMIT_SECONDS = 300.0
PER_JOB_SECONDS = 2.0
COMMAND_SECONDS = 120.0  # a CLI command of the schedule (teardown waits for the teardown to finish)
POLL_SECONDS = 0.1
POSTPONE_SECONDS = 1.0
SUMMARY_LINE = "\n  wall time "  # a row of local mode's summary table (localrun/report.py)
LEFTOVER_GRACE_SECONDS = 20.0  # local mode's machines stop within STOP_GRACE_SECONDS (15 s) of being told


@dataclass(frozen=True)
class Violation:
    """The harness's own findings, shaped as the invariants' (kind, run, detail)."""

    kind: str
    run: str
    detail: str


@dataclass
class SeedResult:
    seed: int
    jobs: int
    faults: Counter  # by kind: the schedule's events played, "requests failed"/"requests delayed" by the proxy
    violations: list  # of Violation (the invariants' and the harness's)
    seconds: float
    log_dir: Path

    def to_json(self) -> dict:
        return {"seed": self.seed, "jobs": self.jobs, "faults": dict(self.faults), "seconds": round(self.seconds, 1),
                "log_dir": str(self.log_dir),
                "violations": [{"kind": v.kind, "run": v.run, "detail": v.detail} for v in self.violations]}


class ChaosProxy(FaultProxy):
    """The fault proxy with the schedule's windows: throttling, 5xx and latency on a service or one operation,
    each for a span of seconds after the injector opens it."""

    def __init__(self, upstream: str, seed: int, observer=None):
        extra = {"observer": observer} if observer else {}
        super().__init__(upstream, rate=0.0, seed=seed, rule=self._window_fault, **extra)
        self.audited = bool(extra)
        self.windows: list[tuple[float, Event]] = []  # (closes at, event)
        self.delayed = 0
        self._draw = random.Random(seed)
        self._windows_lock = threading.Lock()

    def open(self, event: Event) -> None:
        with self._windows_lock:
            self.windows.append((time.monotonic() + event.seconds, event))

    def _matching(self, request: Request, kinds: tuple[str, ...]) -> Event | None:
        now = time.monotonic()
        with self._windows_lock:
            for closes, event in self.windows:
                if closes > now and event.kind in kinds and event.service == request.service and (
                        not event.operation or request.target.endswith("." + event.operation)
                        or request.target == event.operation):
                    return event
        return None

    def _window_fault(self, request: Request) -> str | None:  # called under the proxy's lock
        event = self._matching(request, ("throttle", "5xx"))
        if event is None or self._draw.random() >= event.rate:
            return None
        return "throttle" if event.kind == "throttle" else "500"

    def decide(self, request: Request) -> str | None:
        event = self._matching(request, ("latency",))
        if event is not None:  # outside the proxy's lock: other requests go on meanwhile
            self.delayed += 1
            time.sleep(event.rate)
        return super().decide(request)


@dataclass
class _Live:
    """A process of the seed, with what to do when it ends."""

    name: str
    process: subprocess.Popen
    log: IO[bytes]
    kill_at: float | None = None  # a tick cut by its timeout
    on_exit: object = None  # callable(returncode) or None
    started: float = field(default_factory=time.monotonic)


class Seed:
    def __init__(self, plan: Scenario, log_dir: Path):
        self.plan = plan
        self.log_dir = log_dir
        self.mark = uuid.uuid4().hex
        self.live: list[_Live] = []
        self.faults: Counter = Counter()
        self.violations: list[Violation] = []
        self.jobs = {run.app_name: dict(run.jobs) for run in plan.runs}
        self.torn_down_early: set[str] = set()
        self.sent_late: set[str] = set()  # runs a redrive or an append reached (ChaosRun.sent_late)
        self.redriven: set[str] = set()  # runs a redrive reached (ChaosRun.redriven)
        self.endpoint = ""  # the emulator itself
        self.local: dict[str, _Live] = {}
        self.ds: dict[str, DsRun] = {}  # the runs in DS image mode (tests/chaos/ds_run.py), by APP_NAME
        self.ds_account: ds_run.Account | None = None  # what their fleet files name (ds_run.prepare_account)
        self.proxy_url = ""
        self.names: Counter = Counter()
        self.ended: set[str] = set()

    # ------------------------------------------------------------------ files of a run
    def run_dir(self, run: RunPlan) -> Path:
        return self.log_dir / run.app_name

    def config_path(self, run: RunPlan) -> Path:
        return self.run_dir(run) / "config.json"

    def write_run_files(self, run: RunPlan) -> None:
        folder = self.run_dir(run)
        if run.ds_image:
            assert self.ds_account is not None, "ds_run.prepare_account first"
            self.ds[run.app_name] = DsRun(run, folder, self.endpoint, REGION, self.start,
                                          lambda key_id: self.environment(key_id, self.proxy_url))
            self.ds[run.app_name].write_files(self.plan.bucket, self.plan.dead_letter_queue, self.ds_account)
            self.job_file(folder / "jobs.json", run.jobs)
            return
        (folder / "marks").mkdir(parents=True)
        self.config_path(run).write_text(json.dumps({
            "APP_NAME": run.app_name, "DOCKERHUB_TAG": "example/chaos:1", "AWS_PROFILE": None, "AWS_REGION": REGION,
            "AWS_BUCKET": self.plan.bucket, "CLUSTER_MACHINES": run.machines, "MACHINE_TYPE": ["m5.large"],
            "MACHINE_PRICE": 0.05, "DOCKER_CORES": 2, "SQS_QUEUE_NAME": f"{run.app_name}Queue",
            "SQS_MESSAGE_VISIBILITY": run.visibility, "SQS_DEAD_LETTER_QUEUE": self.plan.dead_letter_queue,
            "JOB_RETRIES": run.retries, "JOB_TIMEOUT": JOB_TIMEOUT_SECONDS,
            "OUTPUT_PREFIX": run.output_root + "{job_id}",
            "COMMAND": ["python", str(JOB), "{mode}", "{job_id}", "{output_dir}"],
            "ENVIRONMENT": {"CHAOS_MARKS": str(folder / "marks"), "CHAOS_APP": run.app_name,
                            "CHAOS_BUCKET": self.plan.bucket, "CHAOS_QUEUE": f"{run.app_name}Queue",
                            "CHAOS_OUTPUT_ROOT": run.output_root}}, indent=2))
        self.job_file(folder / "jobs.json", run.jobs)

    @staticmethod
    def job_file(path: Path, jobs) -> Path:
        path.write_text(json.dumps({"groups": [{"job_id": job_id, "name": job_id, "mode": mode}
                                              for job_id, mode in jobs]}))
        return path

    def submitted(self, app: str) -> bool:
        """Whether the run's local mode has sent its jobs (its output says so)."""
        live = self.local.get(app)
        return live is not None and "\nsubmitted " in Path(live.log.name).read_text(errors="replace")

    def started(self, app: str) -> bool:
        """Whether the user may act on the run: a local run has sent its jobs, a DS run's monitor watches it."""
        return self.ds[app].started if app in self.ds else self.submitted(app)

    def over(self, app: str) -> bool:
        """Whether the run ended: its local process, or the DS run's monitor (or a command before it), exited."""
        if app in self.ds:
            return self.ds[app].over
        return app in self.local and self.local[app].process.poll() is not None

    def running_apps(self) -> list[str]:
        return [app for app, live in self.local.items() if live.process.poll() is None] + [
            app for app, ds in self.ds.items() if not ds.over]

    # ------------------------------------------------------------------ processes
    def environment(self, key_id: str, endpoint: str) -> dict[str, str]:
        """A CLI command's or a tick's: the proxy as AWS, `key_id` as who; nothing of the user's AWS setup."""
        env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "DSR_"))}
        env.update({MARK_VARIABLE: self.mark, "PYTHONUNBUFFERED": "1", "AWS_ENDPOINT_URL": endpoint,
                    "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY, "AWS_DEFAULT_REGION": REGION,
                    "AWS_REGION": REGION, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_EC2_METADATA_DISABLED": "true", KEY_ID_VARIABLE: key_id, "PYTHONPATH": str(REPO)})
        return env

    def start(self, name: str, argv: list[str], env: dict[str, str], on_exit=None, kill_after: float | None = None,
              cwd: Path = REPO) -> _Live:
        self.names[name] += 1
        log = open(self.log_dir / f"{name}.{self.names[name]}.log", "wb")  # noqa: SIM115 - closed in _reap
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        live = _Live(name, process, log, None if kill_after is None else time.monotonic() + kill_after, on_exit)
        self.live.append(live)
        return live

    def reap(self) -> None:
        for live in list(self.live):
            if live.kill_at is not None and time.monotonic() >= live.kill_at and live.process.poll() is None:
                _kill_group(live.process.pid)
            code = live.process.poll()
            if code is None:
                continue
            self.live.remove(live)
            live.log.write(f"[exit {code} after {time.monotonic() - live.started:.1f} s]\n".encode())
            live.log.close()
            if live.on_exit:
                live.on_exit(code)

    def kill_everything(self) -> list[str]:
        """Every process of the seed killed (groups first, then anything marked that escaped them); returns the
        marked processes that were still there after the groups went."""
        for ds in self.ds.values():
            ds.stop_tasks()
        for live in self.live:
            _kill_group(live.process.pid)
        for live in self.live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                live.process.wait(timeout=10)
        self.reap()
        # a local run killed here (a hung seed) has workers that stop by themselves once their driver is gone
        until = time.monotonic() + LEFTOVER_GRACE_SECONDS
        while marked_processes(self.mark) and time.monotonic() < until:
            time.sleep(POLL_SECONDS)
        left = marked_processes(self.mark)
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return [f"{pid} " + b" ".join(argv).decode(errors="replace") for pid, argv in left]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def limit_seconds(plan: Scenario) -> float:
    return BASE_LIMIT_SECONDS + PER_JOB_SECONDS * plan.jobs


def run_seed(seed: int, log_root: Path) -> SeedResult:
    plan = scenario(seed)
    log_dir = Path(log_root) / f"seed-{seed}"
    shutil.rmtree(log_dir, ignore_errors=True)  # a replay's logs are its own
    log_dir.mkdir(parents=True)
    (log_dir / "schedule.txt").write_text(plan.describe())
    began = time.monotonic()
    state = Seed(plan, log_dir)
    audit_path = log_dir / "audit.jsonl"
    recorder = Recorder(audit_path)
    with emulator(port=0) as endpoint:
        _account(endpoint, plan.bucket)
        state.endpoint = endpoint
        if plan.ds_runs:
            state.ds_account = ds_run.prepare_account(endpoint, REGION)
        bystander(endpoint, REGION, log_dir)  # a queue and an alarm of no run, which must survive the seed
        proxy = ChaosProxy(endpoint, seed, observer=recorder.observe).start()
        state.proxy_url = proxy.url
        try:
            _play(state, proxy)
        finally:
            left = state.kill_everything()
            proxy.stop()
        if left:
            state.violations.append(Violation("leftover-process", "", "; ".join(left)))
        state.faults["requests failed"] += proxy.total_faults
        state.faults["requests delayed"] += proxy.delayed
        world = ChaosWorld(seed, endpoint, REGION, plan.bucket, plan.dead_letter_queue, tuple(
            ChaosRun(run.app_name, state.config_path(run), state.run_dir(run) / "out", state.jobs[run.app_name],
                     run.ds_image, run.app_name in state.torn_down_early, run.app_name in state.sent_late,
                     run.app_name in state.redriven)
            for run in plan.runs), audit_path, log_dir)
        state.violations.extend(check(world))
        state.violations.extend(_final_tick(state, endpoint))
    result = SeedResult(seed, sum(len(jobs) for jobs in state.jobs.values()), state.faults, state.violations,
                        time.monotonic() - began, log_dir)
    (log_dir / "violations.txt").write_text("".join(f"{v.kind} {v.run}: {v.detail}\n" for v in state.violations))
    (log_dir / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _account(endpoint: str, bucket: str) -> None:
    """What the user made once before any run: the shared bucket (each run's local mode makes the rest), and the
    Spot quotas raised here, in the emulator's process: local mode raises them in its own, which with --endpoint
    is not the one serving."""
    raise_spot_quotas(REGION)
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="chaos-harness",
                 aws_secret_access_key=DUMMY_KEY).create_bucket(Bucket=bucket)


def _play(state: Seed, proxy: ChaosProxy) -> None:
    plan = state.plan
    starts = sorted(plan.runs, key=lambda run: run.start_at)
    events, postponed = list(plan.events), []
    deadline = time.monotonic() + limit_seconds(plan)
    t0 = time.monotonic()
    for run in plan.runs:
        state.write_run_files(run)
    faults_t0 = None
    while True:
        now = time.monotonic() - t0
        while starts and starts[0].start_at <= now:
            _start_run(state, starts.pop(0), proxy.url)
        if faults_t0 is None and any(state.submitted(app) for app in state.local):
            # the schedule's clock starts with the first jobs sent: a loaded machine takes seconds more to get
            # there, and faults before it would only hit the runs' setup
            faults_t0 = time.monotonic()
        now = -1.0 if faults_t0 is None else time.monotonic() - faults_t0
        while events and events[0].at <= now:
            event = events.pop(0)
            if event.run and not state.started(event.run):
                # a user acts on a run once it has started: an append before its first submit would be refused
                # by it (its queue holds jobs already), a teardown would find no run
                postponed.append(dataclasses.replace(event, at=now + POSTPONE_SECONDS))
            else:
                _inject(state, event, proxy)
        if postponed:
            events = sorted(events + postponed, key=lambda item: item.at)
            postponed = []
        state.reap()
        for ds in state.ds.values():
            if ds.over:
                ds.stop_tasks()  # its monitor has exited: the run is torn down, or a command of it crashed
            else:
                ds.step()
            for kind, detail in ds.problems:
                state.violations.append(Violation(kind, ds.app, detail))
            ds.problems.clear()
        for app, live in state.local.items():
            code = live.process.poll()
            if code is None or app in state.ended:
                continue
            state.ended.add(app)
            # 0: every job done, 1: some failed or not run; either way after the summary table. An "error:" line
            # instead (exit 1 for an AWS refusal, 2 for bad input) is a run that never got going
            if code not in (0, 1) or SUMMARY_LINE not in Path(live.log.name).read_text(errors="replace"):
                state.violations.append(Violation("run-crashed", app, f"cli.py local exited {code} without its "
                                                  f"summary; see {live.log.name}"))
        if not starts and not state.running_apps():
            break
        if time.monotonic() > deadline:
            running = state.running_apps()
            state.violations.append(Violation("hung", ",".join(running), f"runs still going after "
                                              f"{limit_seconds(plan):.0f} s: {', '.join(running)}"))
            return
        time.sleep(POLL_SECONDS)
    # the runs are over: the commands of the schedule still going (a teardown, a redrive) get their time
    for ds in state.ds.values():
        ds.stop_tasks()
    until = time.monotonic() + COMMAND_SECONDS
    while any(live.kill_at is None for live in state.live) and time.monotonic() < until:
        state.reap()
        time.sleep(POLL_SECONDS)
    stuck = [live.name for live in state.live if live.kill_at is None and live.process.poll() is None]
    if stuck:
        state.violations.append(Violation("hung", "", f"commands still going {COMMAND_SECONDS:.0f} s after the runs "
                                                      f"ended: {', '.join(stuck)}"))


def _start_run(state: Seed, run: RunPlan, endpoint: str) -> None:
    if run.ds_image:
        state.ds[run.app_name].begin()
        return
    folder = state.run_dir(run)
    argv = [sys.executable, str(CLI), "local", str(folder / "jobs.json"), "--config", str(state.config_path(run)),
            "--out", str(folder / "out"), "--workers", str(run.workers), "--endpoint", endpoint]
    if run.interrupt_rate:
        argv += ["--interrupt-rate", str(run.interrupt_rate), "--seed", str(state.plan.seed)]
        state.faults["spot"] += 1
    env = state.environment(f"chaos-{run.app_name}", endpoint)
    env["CHAOS_RUN"] = run.app_name  # kill-worker finds the run's workers by it
    state.local[run.app_name] = state.start(f"{run.app_name}.local", argv, env)
    state.faults["attack"] += sum(mode.startswith("attack:") for _, mode in run.jobs)
    for job_id, mode in run.jobs:  # the job such an attack sends runs in this run, and fails every attempt
        if mode.startswith("attack:foreign-message:"):
            state.jobs[run.app_name][FORGED_PREFIX + job_id] = "fail"


def _inject(state: Seed, event: Event, proxy: ChaosProxy) -> None:
    plan = state.plan
    runs = {run.app_name: run for run in plan.runs}
    if event.kind in ("throttle", "5xx", "latency"):
        proxy.open(event)
    elif event.kind == "kill-worker":
        workers = state.ds[event.run].worker_pids() if event.run in state.ds else [
            pid for pid, argv in marked_processes(state.mark) if b"--single" in argv and _run_of(pid) == event.run]
        if not workers:
            return  # not started yet, or over: nothing to kill (not counted)
        with contextlib.suppress(ProcessLookupError):
            os.kill(random.Random(f"{plan.seed}/{event.at}").choice(sorted(workers)), signal.SIGKILL)
    elif event.kind in ("tick", "tick-overlap", "tick-killed"):
        env = state.environment(LAMBDA_KEY, proxy.url)
        argv = [sys.executable, "-m", "tests.chaos.tick", plan.bucket, str(LAMBDA_SECONDS)]
        state.start("tick", argv, env, kill_after=event.seconds if event.kind == "tick-killed" else None)
        if event.kind == "tick-overlap":  # an alarm's tick while the scheduled one runs
            state.start("tick", [*argv, "alarm"], env)
    elif event.kind == "spot":  # a reclaim aimed at the DS run (a local run's are its --interrupt-rate's)
        if state.over(event.run) or state.ds[event.run].reclaim(random.Random(f"{plan.seed}/{event.at}")) is None:
            return  # over, or no machine to reclaim: nothing done (not counted)
    elif event.kind == "teardown":
        if state.over(event.run):
            return  # the run is over already
        state.torn_down_early.add(event.run)
        _cli(state, event, proxy, ["teardown", "--period", "1"])
    elif event.kind == "redrive":
        state.sent_late.add(event.run)
        state.redriven.add(event.run)
        _cli(state, event, proxy, ["redrive"])
    elif event.kind == "append":
        run = runs[event.run]
        # named after its first job: two appends postponed to the same moment must not share a file
        path = state.job_file(state.run_dir(run) / f"append-{event.jobs[0][0]}.json", event.jobs)

        state.sent_late.add(event.run)  # even when it fails: some of its batches may have gone

        def sent(code: int, jobs=event.jobs, app=event.run) -> None:
            if code == 0:
                state.jobs[app].update(jobs)

        _cli(state, event, proxy, ["submit", str(path), "--append"], on_exit=sent)
    state.faults[event.kind] += 1


def _cli(state: Seed, event: Event, proxy: ChaosProxy, args: list[str], on_exit=None) -> None:
    if event.run in state.ds:
        state.ds[event.run].cli(args[0], args, on_exit=on_exit)
        return
    run = next(run for run in state.plan.runs if run.app_name == event.run)
    argv = [sys.executable, str(CLI), *args, "--config", str(state.config_path(run))]
    state.start(f"{event.run}.{args[0]}", argv, state.environment(f"chaos-{event.run}", proxy.url), on_exit=on_exit)


def _run_of(pid: int) -> str:
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"CHAOS_RUN="):
                return item[len(b"CHAOS_RUN="):].decode()
    return ""


def _final_tick(state: Seed, endpoint: str) -> list[Violation]:
    """A tick after everything: every run torn down, so it must find nothing to do."""
    env = state.environment(LAMBDA_KEY, endpoint)
    result = subprocess.run([sys.executable, "-m", "tests.chaos.tick", state.plan.bucket], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=COMMAND_SECONDS)
    (state.log_dir / "final-tick.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        return [Violation("final-tick", "", f"the final tick exited {result.returncode}: "
                                            f"{result.stderr.strip().splitlines()[-1:]}")]
    found = []
    for line in result.stdout.splitlines():
        outcome = json.loads(line)
        if outcome.get("actions") or outcome.get("skipped") or outcome.get("error") or "unreadable" in outcome:
            found.append(Violation("final-tick", outcome.get("run", ""), f"the final tick found work: {line}"))
    return found
