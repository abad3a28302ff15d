"""`python -m worker`: the container's main process (DS's run-worker.sh, in Python).

The supervisor starts DOCKER_CORES worker processes, SECONDS_TO_START apart,
and owns what there is one of per container: the machine's identity and the
resource logger. SIGTERM (ECS stopping the task; on a spot interruption notice
ECS's spot draining does so) or SIGINT is forwarded to every worker as SIGTERM:
each stops taking messages, stops its command, releases its message and exits;
then the supervisor exits 0.

`python -m worker --single` is one worker process (what the supervisor starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from types import FrameType

from chalicelib.model.errors import UserError
from chalicelib.model.settings import Settings
from worker.host import read_instance_id
from worker.options import WorkerOptions
from worker.orphans import PARENT_PID_ENV, die_with_parent, parent_gone
from worker.resources_log import ResourceLogger

log = logging.getLogger("worker")

RESTART_LIMIT = 5  # quick crashes in a row before a worker slot is given up
CRASH_WINDOW_SECONDS = 60.0  # a worker that dies sooner than this after its start crashed "quickly"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes to start (default: DOCKER_CORES)")
    parser.add_argument("--exit-when-empty", action="store_true",
                        help="exit once the queue holds no message, visible or in flight (tests, local mode)")
    parser.add_argument("--single", action="store_true", help="run one worker in this process (no supervisor)")
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        settings = Settings.from_environment()
        options = WorkerOptions.from_environment()
    except UserError as error:
        log.error("%s", error)
        return 2
    if args.single:
        return run_single(settings, options, args.exit_when_empty)
    return Supervisor(settings, options, args.processes or settings.DOCKER_CORES, args.exit_when_empty).run()


def _configure_logging() -> None:
    # stdout is the container log (the _perInstance group); one line per event, with the process id.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s worker[%(process)d] %(message)s")
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------------- one worker process
def run_single(settings: Settings, options: WorkerOptions, exit_when_empty: bool) -> int:
    from worker.worker import Worker  # after logging is set up

    die_with_parent()
    worker = Worker(settings, options=options)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        worker.request_stop(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    log.info("worker started on queue %s", settings.SQS_QUEUE_NAME)
    try:
        worker.run_forever(exit_when_empty=exit_when_empty)
    except UserError as error:
        log.error("%s", error)
        return 2
    finally:
        worker.close()
    log.info("worker stopped%s", f" ({worker._stop_reason})" if worker.stop_requested else "")
    return 0


# ---------------------------------------------------------------------- the supervisor
class Supervisor:
    def __init__(self, settings: Settings, options: WorkerOptions, processes: int, exit_when_empty: bool):
        self.settings = settings
        self.options = options
        self.processes = processes
        self.exit_when_empty = exit_when_empty
        self.children: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._reason = ""
        self.instance_id: str | None = None
        self._started_at: list[float] = []
        self._quick_crashes: list[int] = []
        self._given_up: set[int] = set()

    def stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._reason = reason
            log.info("stopping: %s; workers release their jobs and exit", reason)
            self._stop.set()

    def _on_sigterm(self, _signum: int, _frame: FrameType | None) -> None:
        if parent_gone():
            # local mode's driver died, and the emulator with it: no job can be released, so end at once (this
            # process group holds the workers; their commands die with them, orphans.command_killed_with_parent)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        self.stop("SIGTERM")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, lambda signum, _: self.stop("SIGINT"))
        die_with_parent()  # local mode's driver sets DSR_PARENT_PID: its machines go when it goes
        resources = ResourceLogger(self.options.resources_seconds, self.options.work_dir or tempfile.gettempdir())
        resources.start()
        instance_id = read_instance_id(self.options.instance_id_file)
        if instance_id:
            log.info("on EC2 instance %s", instance_id)
            self.instance_id = instance_id
        try:
            self._start_children()
            codes = self._wait_children()
        finally:
            resources.stop()
        failed = [code for code in codes if code != 0]
        if failed:
            log.error("%d of %d worker processes failed (exit codes %s)", len(failed), len(codes), failed)
            return 1
        return 0

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "worker", "--single"] + (["--exit-when-empty"] if self.exit_when_empty else [])
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid()), "DSR_WORKER_SLOT": str(index + 1)}
        if self.instance_id:
            env["DSR_INSTANCE_ID"] = self.instance_id
        return subprocess.Popen(command, env=env)

    def _start_children(self) -> None:
        for index in range(self.processes):
            if index and self._stop.wait(self.settings.SECONDS_TO_START):
                break
            if self._stop.is_set():
                break
            self.children.append(self._spawn(index))
            self._started_at.append(time.monotonic())
            self._quick_crashes.append(0)
        log.info("started %d worker processes", len(self.children))

    def _restart_crashed(self, codes: list[int | None]) -> None:
        """A worker process that died (OOM killer, SIGKILL, a bug) is replaced, as DS's loop would not:
        the container keeps its DOCKER_CORES jobs at once. Its job returns to the queue when the message's
        visibility timeout ends. A slot that keeps dying within a minute of its start is given up after
        RESTART_LIMIT tries, so a broken image does not spin."""
        for index, code in enumerate(codes):
            if code in (None, 0) or self._stop.is_set() or index in self._given_up:
                continue
            quick = time.monotonic() - self._started_at[index] < CRASH_WINDOW_SECONDS
            self._quick_crashes[index] = self._quick_crashes[index] + 1 if quick else 1
            if self._quick_crashes[index] > RESTART_LIMIT:
                log.error("worker process %d keeps dying (exit %s); not restarting it again", index + 1, code)
                self._given_up.add(index)
                continue
            log.warning("worker process %d died (exit %s); starting another; its job, if any, returns to the "
                        "queue after its visibility timeout", index + 1, code)
            self.children[index] = self._spawn(index)
            self._started_at[index] = time.monotonic()
            codes[index] = None

    def _wait_children(self) -> list[int]:
        forwarded = False
        while True:
            codes = [child.poll() for child in self.children]
            self._restart_crashed(codes)
            exited = [code for code in codes if code is not None]
            if len(exited) == len(codes):
                return exited
            if self._stop.is_set() and not forwarded:
                forwarded = True
                for child in self.children:
                    if child.poll() is None:
                        child.send_signal(signal.SIGTERM)
            if forwarded:
                time.sleep(0.05)  # the workers are finishing: notice their exit promptly
            else:
                self._stop.wait(0.2)  # returns at once when a stop arrives
