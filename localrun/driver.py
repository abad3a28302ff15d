"""`cli.py local`: a whole run on this machine, through the real code paths, against an embedded moto.

setup-account, bucket and network (account.py) -> setup -> inputs upload ->
submit -> start-cluster -> then, once a second, the monitor's own reconcile
(what the Lambda runs), after which the machines follow the fleet (machines.py),
spot notices are played (spot.py) and the progress line is drawn. Apart from the
checks, a machine stops as soon as its instance is terminated (terminations.py). When the
monitor has torn the run down (its record is gone), the outputs and logs come
to --out (results.py) and the summary is printed.

Ctrl-C (or SIGTERM) stops the workers the way ECS would (they release their
jobs), asks the monitor to tear down, finishes the teardown and still writes
what finished. A second Ctrl-C stops at once (everything of ours is killed).
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from chalicelib import aws
from chalicelib.model.names import record_key
from chalicelib.monitor.runs import load_run
from localrun import report, triage
from localrun.account import REWRITTEN, localize_fleet, prepare_account
from localrun.embedded import check_clients_are_local, embedded_aws
from localrun.machines import LOCAL_KNOBS, Machines
from localrun.prepare import OUT_MARKER, LocalRun, reset_out
from localrun.progress import Progress
from localrun.results import collect_results
from localrun.retried import retried
from localrun.spot import SpotMarket
from localrun.terminations import TerminationWatch
from operations import monitor_loop
from operations.report.sources import SERIES_SOURCE, report_input, write_report
from operations.start import cluster
from operations.submit import submit

MONITOR_PERIOD_SECONDS = 1.0  # the Lambda runs every minute; here the run is seconds long
FLEET_WAIT_SECONDS = 10.0  # moto launches at once; this only bounds a surprise
START_ATTEMPTS, START_PAUSE_SECONDS = 4, 5.0
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class StopRequest:
    """Ctrl-C / SIGTERM as a flag the run checks; the second one aborts at once."""

    def __init__(self):
        self.event = threading.Event()
        self.reason = ""

    def _handle(self, signum, _frame):
        if self.event.is_set():
            raise KeyboardInterrupt  # second time: the finally blocks kill everything of ours
        self.reason = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.event.set()

    def install(self) -> dict:
        return {signum: signal.signal(signum, self._handle) for signum in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def restore(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def run_local(local: LocalRun, stream: IO[str] = sys.stdout, report_path: Path | None = None) -> int:
    stop = StopRequest()
    previous = stop.install()
    try:
        return _run(local, stream, stop, report_path)
    finally:
        StopRequest.restore(previous)


def _run(local: LocalRun, stream: IO[str], stop: StopRequest, report_path: Path | None) -> int:
    began = time.monotonic()
    settings = local.settings
    # CHECK_IF_DONE: the last run's outputs in --out go back into the (new, empty) emulated bucket, so its done
    # jobs are skipped as they would be on AWS; --only-failed: the done jobs' outputs and logs stay in --out. Kept
    # aside until this run's outputs are written
    previous = set_aside(local.out) if settings.CHECK_IF_DONE_BOOL or local.only_failed else None
    reset_out(local.out)
    progress = Progress(stream, total=len(local.jobs))
    say = progress.say
    with embedded_aws(settings.AWS_REGION, local.endpoint) as endpoint:
        check_clients_are_local(settings, endpoint)
        import moto

        where = "the emulator you started" if local.endpoint else f"moto {moto.__version__}, in this process"
        say(f"local mode: AWS is {where} at {endpoint}; nothing reaches real AWS")
        account = prepare_account(settings)
        fleet_path = local.out / "fleet.local.json"
        fleet = localize_fleet(local.fleet, account, fleet_path)
        say(f"fleet file {local.fleet.source}: a copy for the emulated account ({', '.join(REWRITTEN)} "
            f"rewritten) is {fleet_path}")
        for change in local.command_changes:
            say(f"COMMAND runs on this machine: {change}")
        if local.inputs is not None:
            files, size = upload_inputs(settings, local.inputs)
            say(f"uploaded {files} files ({size:,} bytes) from {local.inputs} to "
                f"s3://{settings.SOURCE_BUCKET}/{local.inputs.resolve().name}/")
        if local.only_failed:
            say(f"{triage.ONLY_FAILED}: running the {len(local.jobs)} job(s) the runs in {local.out} have not done; "
                f"the {len(local.kept)} done there keep their outputs and logs")
        if previous is not None and settings.CHECK_IF_DONE_BOOL:
            files = put_back_outputs(settings, previous, local.jobs)
            say(f"CHECK_IF_DONE: {files} output files of the last run in {local.out} put back; jobs whose outputs "
                "are complete are skipped")
        if stop.requested:
            say(f"stopped ({stop.reason}) before any job was submitted; nothing ran")
            return EXIT_INTERRUPTED
        sent = submit(settings, local.jobs)
        say(f"submitted {sent.sent} jobs to {sent.queue}")
        # start-cluster resumes what an earlier attempt made (its claim, fleet and record): one that met a long outage
        # is made again rather than leaving the run set up, its jobs sent and nothing to tear it down (chaos seed 187)
        claim_token = secrets.token_hex(16)
        started = retried(lambda: cluster.start_cluster(settings, fleet, wait_seconds=FLEET_WAIT_SECONDS,
                                                        poll_seconds=0.1, files_dir=local.out / "files",
                                                        claim_token=claim_token),
                          "start-cluster", say, START_ATTEMPTS, START_PAUSE_SECONDS, stop.event.wait)
        for warning in started.warnings:
            say(f"warning: {warning}")
        per_machine = settings.TASKS_PER_MACHINE * settings.DOCKER_CORES
        say(f"fleet {started.record.MONITOR_FLEET_ID}: {cluster.describe_request(settings, fleet)}; {per_machine} "
            f"worker process(es) each, at most {local.workers} in all (--workers)")
        if started.image is not None:
            say(f"machines boot {started.image}")
        say(f"local timings: monitor every {MONITOR_PERIOD_SECONDS:g} s (Lambda: 60 s); workers: "
            + ", ".join(f"{name}={value}" for name, value in LOCAL_KNOBS.items()))
        if local.interrupt_rate:
            say(f"spot interruptions: each machine gets a notice with chance {local.interrupt_rate:g} per check")
        machines = Machines(settings, endpoint, local.out / "machines", local.workers, secrets.token_hex(6))
        watcher = Watcher(local, machines, progress, stop, started.record.MONITOR_FLEET_ID)
        try:
            with TerminationWatch(settings, machines):
                watcher.watch()
        finally:
            progress.finish()
            machines.stop_all("the run is over")
            machines.close()
        results = collect_results(settings, local.jobs, local.out, say)
        progress.update(results.counts, machines=0, workers=0, over=True)  # the exact counts: the summary's
        progress.finish()
        if report_path is not None:
            write_report(report_input(settings, aws.Clients(settings), "local run", results.run_summary,
                                      SERIES_SOURCE.format(period=f" every {MONITOR_PERIOD_SECONDS:g} s"),
                                      streams=results.log_events, worker_hours=machines.worker_hours()),
                         report_path)
        if local.only_failed:
            triage.keep_earlier(previous, local.out, list(local.kept))
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)  # every output is in --out again
    wall = time.monotonic() - began
    code = exit_code(results, stop.requested, watcher.crashed)
    commands = triage.commands(local.again, settings.source, str(local.out))
    kept = [job.job_id for job in local.kept]
    (local.out / triage.SUMMARY).write_text(json.dumps(
        report.summary_document(results, machines=len(machines.ever), wall_seconds=wall,
                                notices=watcher.spot.notices, stopped_by=stop.reason or None,
                                exit_code=code, kept=kept, commands=commands), indent=2) + "\n")
    stream.write(report.table(settings, results, local.out, machines=len(machines.ever), wall_seconds=wall,
                              notices=watcher.spot.notices, replacements=watcher.spot.replacements,
                              stopped_by=stop.reason or None, crashed=watcher.crashed, kept=len(kept),
                              commands=commands))
    if report_path is not None:
        stream.write(f"run report: {report.show(report_path)}\n")
    stream.flush()
    return code


def exit_code(results, interrupted: bool, crashed: list) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if results.failed or results.not_run or crashed:
        return EXIT_FAILED
    return EXIT_OK


class Watcher:
    """The monitor loop of one local run, plus what AWS and ECS would do between its ticks."""

    def __init__(self, local: LocalRun, machines: Machines, progress: Progress, stop: StopRequest, fleet_id: str):
        self.settings = local.settings
        self.machines = machines
        self.progress = progress
        self.stop = stop
        self.spot = SpotMarket(aws.client("ec2", self.settings), fleet_id, machines, local.interrupt_rate,
                               rng=random.Random(local.seed))
        self.s3 = aws.client("s3", self.settings)
        self.key = record_key(self.settings.APP_NAME)
        self.teardown_asked = False
        self.crashed: list[str] = []
        self.refusal_said: str | None = None

    def watch(self) -> None:
        monitor_loop.watch(self._load, MONITOR_PERIOD_SECONDS, self._after_reconcile, sleep=self.stop.event.wait,
                   on_error=lambda error: self.progress.say(f"warning: monitor check failed, retrying: {error}"))

    def _load(self):
        run = load_run(self.s3, self.settings.AWS_BUCKET, self.key)
        if run is not None and self.stop.requested and not self.teardown_asked:
            self.progress.say(f"stopping ({self.stop.reason}): workers release their jobs and exit; then teardown "
                              "(Ctrl-C again stops at once)")
            self.machines.stop_all(self.stop.reason)
            self._teardown(run, f"{self.stop.reason} in local mode")
            run = load_run(self.s3, self.settings.AWS_BUCKET, self.key)
        return run

    def _teardown(self, run, reason: str) -> None:
        if not self.teardown_asked:
            self.teardown_asked = True
            monitor_loop.request_teardown(run, reason)

    def _after_reconcile(self, result) -> None:
        observation = result.observation
        if observation.refused:
            # A refused check read nothing of the run, its machines included: they keep their workers until a check
            # that reads them (stopping them all on it lost seed 2808's jobs). Said once while it lasts.
            if observation.refused != self.refusal_said:
                self.progress.say(f"warning: the monitor's check was refused ({observation.refused}); the machines "
                                  "keep running until a check reads the run again")
            self.refusal_said = observation.refused
        else:
            self.refusal_said = None
            # After a stop, no instance gets workers again: the teardown is cancelling the fleet.
            self.machines.sync([] if self.teardown_asked else list(observation.active_instance_ids))
        for ended in self.machines.poll():
            self._ended(ended)
        for instance_id in self.spot.tick():
            self.progress.say(f"spot: interruption notice to {instance_id}; its workers release their jobs")
        if observation.refused:
            return  # its counts are none: the progress line keeps the last check's
        running = sum(1 for machine in self.machines.live if machine.running)
        self.progress.update(observation.counts, running, self.machines.worker_processes(),
                             observation.state.tearing_down)

    def _ended(self, ended) -> None:
        if ended.stopped:
            return
        if ended.interrupted:
            try:
                replaced = self.spot.reclaim(ended.instance_id)
            except Exception as error:  # noqa: BLE001 - the monitor still sees the machine and releases it
                self.progress.say(f"warning: could not reclaim {ended.instance_id}: {error}")
                return
            self.progress.say(f"spot: {ended.instance_id} reclaimed" + ("; the fleet launched a replacement"
                                                                       if replaced else ""))
            return
        # A supervisor never exits on its own: a crash here would leave jobs waiting for ever.
        self.crashed.append(ended.instance_id)
        self.progress.say(f"error: the workers of {ended.instance_id} exited with code {ended.exit_code} "
                          f"(see {ended.log_path}); tearing the run down")
        run = load_run(self.s3, self.settings.AWS_BUCKET, self.key)
        if run is not None:
            self.machines.stop_all("a machine's workers crashed")
            self._teardown(run, f"the workers of {ended.instance_id} crashed in local mode")


def set_aside(out: Path) -> Path | None:
    """A previous local run's --out, moved beside it (the run empties --out), or None when there is none. A
    folder set aside by a run that then died is kept as it is: it holds the last outputs written."""
    folder = triage.aside(out)
    if folder.is_dir():
        return folder
    if not (out / OUT_MARKER).exists():
        return None
    out.rename(folder)
    return folder


def put_back_outputs(settings, previous: Path, jobs) -> int:
    """The files a previous run left at the jobs' OUTPUT_PREFIXes (their _SUCCESS markers too), uploaded to
    the same keys. Returns how many."""
    files = [(path, path.relative_to(previous).as_posix()) for job in jobs
             for path in triage.output_files(previous, job)]
    s3 = aws.client("s3", settings)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: s3.upload_file(str(item[0]), settings.DESTINATION_BUCKET, item[1]), files))
    return len(files)


def upload_inputs(settings, folder: Path) -> tuple[int, int]:
    """Every file under `folder` to s3://SOURCE_BUCKET/<folder's name>/<path relative to folder>."""
    root = folder.resolve()
    files = sorted(path for path in root.rglob("*") if path.is_file())
    s3 = aws.client("s3", settings)

    def upload(path: Path) -> int:
        s3.upload_file(str(path), settings.SOURCE_BUCKET, f"{root.name}/{path.relative_to(root).as_posix()}")
        return path.stat().st_size

    with ThreadPoolExecutor(16) as pool:
        return len(files), sum(pool.map(upload, files))
