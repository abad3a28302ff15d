"""`submit`: send validated jobs to the job queue, fast.

DS sends one SendMessage per job, one at a time: about 60 jobs a second. Here
jobs go 10 to a SendMessageBatch (SQS's maximum), packed so a batch also stays
within SQS's 256 KiB batch payload limit (by the sizes validation measured:
no body is encoded twice). Whole-request failures are retried by botocore's
standard retry mode; entries SQS reports as failed in an otherwise successful
batch are retried here, and a sender fault (SQS says the message itself is
wrong) stops the submission with the job's id.

How many requests are in flight, and in how many processes:
- A client spends about 0.6 ms of CPU per SendMessageBatch (botocore's
  serialization, signing, the MD5 check of every message) under the GIL, so
  one process tops out near 16,000 jobs/s whatever its threads. Files of at
  least 2 x PROCESS_JOBS jobs are sent by several processes, one per CPU, the
  caller's own among them (`processes_for`).
- The other processes are started first: they boot (about a second) while
  the caller makes its client, checks the queue and starts sending. Batches
  are handed out in chunks from the caller's process as senders ask, so a
  process that starts late or runs slower simply takes fewer.
- Each process keeps `in_flight` requests open: the first PROBE_BATCHES
  batches go one at a time and their round trip is timed; by Little's law, a
  process sending PROCESS_REQUESTS_PER_SECOND needs rate x round trip requests
  in flight (`in_flight_for`): 34 at 17 ms, the cap (64) from 32 ms.

Every job is sent once or reported: a failure anywhere stops every sender, the
requests in flight finish, and the error says exactly how many jobs went. Ctrl-C
does the same (SubmitInterrupted); the other processes ignore SIGINT so the
caller can count what they sent, and die with the caller if it is killed.

The job file is validated completely before this module sees it
(chalicelib.model.jobs), so a bad group never leaves half a file in the queue.
The jobs are read as they are sent (a JobFile reads its file again, a job at a
time): batches are made as the senders take them, so a million jobs are never
all in memory, here or in the job file's reading.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, NamedTuple, Protocol

from chalicelib import aws
from chalicelib.aws.sqs import find_queue_url, queue_depth
from chalicelib.model.errors import UserError
from chalicelib.model.jobs import SQS_MESSAGE_BYTES, Job
from chalicelib.model.names import RUN_ATTRIBUTE_BYTES, run_attributes
from chalicelib.model.settings import Settings
from worker.done import is_done

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    import multiprocessing.synchronize

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_BATCH_ENTRIES = 10  # SQS's limit per SendMessageBatch
MAX_BATCH_BYTES = SQS_MESSAGE_BYTES  # SQS's limit on a batch's total payload, message attributes included
CONCURRENCY = 16  # S3 lookups in flight for --skip-done
ENTRY_ATTEMPTS = 5

# In flight per process. At least MIN: a request spends more than the bare round trip in flight when the
# machine is busy (its own preparation, the server's queue): with the stand-in at 0 ms, two processes sent about
# 24,500 jobs/s with 8 in flight each and 22,000 with 4. At most MAX, and no more than the round trip calls
# for: threads beyond that wait for the GIL and cost CPU (at 15 ms, two processes sent 17,000 to 19,800 jobs/s
# with 34 each and 12,900 to 14,700 with 64). Measured on the development machine, 2 vCPUs.
MIN_IN_FLIGHT = 8
MAX_IN_FLIGHT = 64
# The rate in-flight requests are sized for: a little over the most one process sent on the development machine
# (about 0.6 ms of CPU per request when busy). Not measured per run: a request timed alone costs twice the CPU it
# costs among many (1.3 vs 0.6 ms there), so the probe would halve the estimate; and a few requests too many in
# flight cost a little GIL contention where too few cost throughput (MIN_IN_FLIGHT's comment).
PROCESS_REQUESTS_PER_SECOND = 2_000
PROBE_BATCHES = 3  # sent one at a time and timed (the least round trip is used) before the others
# A process is worth starting for about this many jobs: it boots for most of a second (an interpreter, boto3, a
# client; about 0.3 s of CPU) before its first request, while the caller's process sends several thousand jobs
# alone. On the development machine (2 vCPUs), with 20,000 jobs two processes were 1.4x to 1.6x as fast as one
# when it was otherwise idle (bench/README.md, "the process threshold"), and about even when other work kept its
# CPUs busy; with fewer jobs the second process would be left little more than its boot.
PROCESS_JOBS = 10_000
MAX_PROCESSES = 8
CHUNK_BATCHES = 64  # batches handed to another process at a time; the last chunk is its tail of idle time
PROGRESS_SECONDS = 0.1  # how often progress is reported (on_sent) and a stop request noticed


class SubmitError(UserError):
    """Sending stopped part way; the message says how many jobs were sent. AWS stopped it, not a mistake in the
    input (that is refused before anything is sent), so the CLI exits 1."""

    exit_code = 1


class SubmitInterrupted(SubmitError):
    """Ctrl-C stopped the sending; the message says how many jobs were sent. Exit status as a shell's for SIGINT."""

    exit_code = 130


class BatchFailed(SubmitError):
    """SQS refused entries of a batch; `sent` of its jobs were accepted (they are in the queue and counted)."""

    def __init__(self, message: str, sent: int):
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class SubmitResult:
    queue: str
    sent: int
    already_done: int = 0
    considered: int = 0


class Outgoing(NamedTuple):
    """What sending a job needs (its id names it in an error): what other processes get instead of `Job`s."""

    job_id: str
    body: str


Batch = Sequence[Job | Outgoing]  # one SendMessageBatch's jobs


class Jobs(Protocol):
    """What submit sends: a list of jobs, or a JobFile (chalicelib.model.jobs), whose every iteration reads its
    file again. Iterated once to send, and once more before that with --skip-done."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Job]: ...


def batches(jobs: Iterable[Job], max_entries: int = MAX_BATCH_ENTRIES,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[Job]]:
    """Consecutive jobs, at most `max_entries` and `max_bytes` of bodies and attributes per batch, made as they
    are taken."""
    current: list[Job] = []
    size = 0
    for job in jobs:
        body_size = job.body_bytes + RUN_ATTRIBUTE_BYTES
        if current and (len(current) == max_entries or size + body_size > max_bytes):
            yield current
            current, size = [], 0
        current.append(job)
        size += body_size
    if current:
        yield current


def queue_url(sqs: SQSClient, settings: Settings) -> str:
    url = find_queue_url(sqs, settings.SQS_QUEUE_NAME)
    if url is None:
        raise UserError(f"queue '{settings.SQS_QUEUE_NAME}' does not exist; run 'python cli.py setup' first")
    return url


def send_batch(sqs: SQSClient, url: str, batch: Sequence[Job | Outgoing], attempts: int = ENTRY_ATTEMPTS,
               sleep: Callable[[float], None] = time.sleep, app_name: str | None = None) -> int:
    """Send one batch (each message tagged with `app_name`, names.RUN_ATTRIBUTE), retrying the entries SQS
    failed; returns how many were sent."""
    pending = {str(index): job for index, job in enumerate(batch)}
    attributes = run_attributes(app_name) if app_name else None
    for attempt in range(attempts):
        entries: list[SendMessageBatchRequestEntryTypeDef] = (
            [{"Id": entry_id, "MessageBody": job.body, "MessageAttributes": attributes}
             for entry_id, job in pending.items()] if attributes else
            [{"Id": entry_id, "MessageBody": job.body} for entry_id, job in pending.items()])
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        failed = response.get("Failed", [])
        for failure in failed:
            if failure.get("SenderFault"):
                job = pending[failure["Id"]]
                raise BatchFailed(f"SQS rejected job {job.job_id!r}: {failure.get('Code')}: "
                                  f"{failure.get('Message', '')}".rstrip(": "), sent=len(batch) - len(failed))
        pending = {failure["Id"]: pending[failure["Id"]] for failure in failed}
        if not pending:
            return len(batch)
        sleep(min(0.05 * 2 ** attempt, 1.0))  # SQS-side failures are transient: back off, then resend only those
    codes = sorted({failure.get("Code", "?") for failure in failed})
    raise BatchFailed(f"SQS kept failing {len(pending)} job(s) after {attempts} attempts ({', '.join(codes)})",
                      sent=len(batch) - len(pending))


def sending_client(settings: Settings) -> SQSClient:
    """The SQS client jobs are sent with (and the queue checked with): a connection for each request in flight,
    and no client-side parameter validation. botocore checks every request's parameters against the API model
    before sending it, about a fifth of the client's CPU per SendMessageBatch (2.6 s against 2.1 s for 30,000
    jobs on the development machine); here they are built by `send_batch` alone from validated jobs (string ids
    and bodies, one fixed attribute), and SQS checks them again on arrival, so a mistake would still be an
    error, SQS's instead of botocore's."""
    client: SQSClient = aws.client("sqs", settings, max_pool_connections=MAX_IN_FLIGHT, parameter_validation=False)
    return client


def in_flight_for(round_trip: float) -> int:
    """Requests a process keeps in flight, from a request's round trip (seconds): by Little's law, what it takes
    to send PROCESS_REQUESTS_PER_SECOND (in flight = rate x time in flight), within [MIN, MAX]_IN_FLIGHT."""
    return max(MIN_IN_FLIGHT, min(MAX_IN_FLIGHT, math.ceil(round_trip * PROCESS_REQUESTS_PER_SECOND)))


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may run on (taskset, some containers)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def processes_for(jobs: int, cpus: int | None = None) -> int:
    """How many processes send `jobs`: one per CPU, each with about PROCESS_JOBS jobs at least, MAX_PROCESSES
    at most; 1 (only the caller's) below 2 x PROCESS_JOBS."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, min(cpus, MAX_PROCESSES, jobs // PROCESS_JOBS))


def send_jobs(sqs: SQSClient, url: str, jobs: Jobs, concurrency: int | None = None,
              on_sent: Callable[[int], None] | None = None, app_name: str | None = None,
              processes: int = 1, settings: Settings | None = None) -> int:
    """Send every job; returns the count. On failure (or Ctrl-C) stops early and says how many went.

    `concurrency`: requests in flight per process; None measures the round trip first (in_flight_for).
    `processes` > 1 sends from that many processes (this one included), each making its own SQS client from
    `settings` and the environment: only where such a client reaches the same queue as `sqs` (not under a
    session factory such as local mode's, nor an in-process mock). `on_sent` is called in this thread."""
    if processes > 1 and settings is None:
        raise ValueError("sending from several processes needs the settings to make their clients")
    # they boot while the probe runs (settings is not None here: checked above)
    children = _Children(processes - 1, settings) if processes > 1 and settings is not None else None
    return _send(sqs, url, jobs, concurrency, on_sent, app_name, children)


def _send(sqs: SQSClient, url: str, jobs: Jobs, concurrency: int | None, on_sent: Callable[[int], None] | None,
          app_name: str | None, children: _Children | None) -> int:
    source = _Batches(batches(jobs))
    progress = _Progress(on_sent)
    interrupt = threading.Event()
    try:
        with _ctrl_c_sets(interrupt):
            if concurrency is None:
                concurrency = _probe(sqs, url, source, app_name, progress, interrupt)
            probed = progress.sent
            if children:
                children.start(url, app_name, concurrency)
            local = _Senders(sqs, url, source, concurrency, app_name)
            while True:
                if children is None or children.finished:
                    local.wait(PROGRESS_SECONDS)
                else:
                    children.serve(source, PROGRESS_SECONDS)
                if interrupt.is_set() or local.failure or (children and children.failure) or source.failure:
                    source.close()  # no more batches to anyone; what is in flight finishes and is counted
                    if children:
                        children.stop()
                done = local.finished and (children is None or children.finished)  # read before the counts
                progress.report(probed + local.sent + (children.sent if children else 0))
                if done:
                    break
    except _Halted as halted:  # in the probe
        if children:
            children.abandon()
        raise _stopped(halted.sent, len(jobs), halted.cause) from halted.cause
    except BaseException:  # a second Ctrl-C, or a bug: leave now, the count unknown
        if children:
            children.abandon()
        raise
    failure = source.failure or local.failure or (children.failure if children else None)
    if failure is source.failure and isinstance(failure, UserError) and progress.sent == 0:
        raise failure  # the jobs could not be read (a job file changed since it was validated): the user's to fix
    if failure is not None:
        raise _stopped(progress.sent, len(jobs), failure, lower_bound=bool(children and children.lost)) from (
            failure if isinstance(failure, BaseException) else None)
    if interrupt.is_set():
        raise _stopped(progress.sent, len(jobs), KeyboardInterrupt())
    return progress.sent


@contextlib.contextmanager
def _ctrl_c_sets(interrupt: threading.Event) -> Iterator[None]:
    """While open, a first Ctrl-C sets `interrupt` (the senders stop taking batches, and what they sent is counted)
    and a second raises KeyboardInterrupt. Python's own handler is replaced only when it is the one in place and
    this is the main thread (where handlers run); a caller's own handler (local mode's) is left alone."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()

    signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stopped(sent: int, total: int, cause: BaseException | str, lower_bound: bool = False) -> SubmitError:
    """The one-line error for a submission stopped part way: how many jobs went, and why it stopped."""
    counted = f"sent {'at least ' if lower_bound else ''}{sent} of {total} jobs, then stopped"
    # Not "re-run with --skip-done": that skips only jobs whose outputs exist, so the jobs still waiting in the
    # queue would go twice; and with several processes the jobs sent are not a prefix of the file.
    kept = ("the queue keeps what was sent; sending the file again (--append) would queue those jobs twice, "
            "and --skip-done leaves out only jobs whose outputs already exist")
    if isinstance(cause, KeyboardInterrupt):
        return SubmitInterrupted(f"{counted}: interrupted (Ctrl-C); {kept}")
    return SubmitError(f"{counted}: {_describe(cause)}; {kept}")


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):  # from another process, described there
        return error
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


class _Halted(Exception):
    def __init__(self, sent: int, cause: BaseException):
        super().__init__(sent, cause)
        self.sent, self.cause = sent, cause


def _probe(sqs: SQSClient, url: str, source: _Batches, app_name: str | None, progress: _Progress,
           interrupt: threading.Event) -> int:
    """Send the first batches one at a time, timing each; the requests to keep in flight from then on, from the
    least round trip: contention (other processes booting, a busy machine) only ever adds to one."""
    round_trips: list[float] = []
    for _ in range(PROBE_BATCHES):
        if interrupt.is_set():
            raise _Halted(progress.sent, KeyboardInterrupt())
        batch = source.take()
        if batch is None:
            break
        started = time.perf_counter()
        try:
            count = send_batch(sqs, url, batch, app_name=app_name)
        except Exception as error:
            raise _Halted(progress.sent + (error.sent if isinstance(error, BatchFailed) else 0), error) from error
        round_trips.append(time.perf_counter() - started)
        progress.report(progress.sent + count)
    return in_flight_for(min(round_trips)) if round_trips else MIN_IN_FLIGHT


class _Progress:
    """The count sent so far, passed on to `on_sent` as increments, from the thread that calls `report`."""

    def __init__(self, on_sent: Callable[[int], None] | None):
        self.on_sent = on_sent
        self.sent = 0

    def report(self, sent: int) -> None:
        if sent != self.sent:
            if self.on_sent:
                self.on_sent(sent - self.sent)
            self.sent = sent


class _Batches:
    """The batches still to send, handed out one (or a chunk) at a time to any thread; once closed, none more.
    `items` is read only as batches are taken (one thread at a time); if reading it fails (a job file changed
    since it was validated), `failure` holds why and no batch more is handed out. `refill` (in another process:
    asks the caller's for a chunk) is called when it runs out; [] means none left."""

    def __init__(self, items: Iterable[Batch], refill: Callable[[], list[Batch]] | None = None):
        self._items: Iterator[Batch] = iter(items)
        self._refill = refill
        self._closed = False
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    def take(self) -> Batch | None:
        with self._lock:
            if self._closed:
                return None
            batch = self._next()
            if batch is None and self._refill is not None and not self._closed:
                self._items = iter(self._refill())
                batch = self._next()
                if batch is None:
                    self._refill = None
            return batch

    def take_chunk(self, count: int) -> list[Batch]:
        with self._lock:
            if self._closed:
                return []
            chunk: list[Batch] = []
            while len(chunk) < count and (batch := self._next()) is not None:
                chunk.append(batch)
            return chunk

    def _next(self) -> Batch | None:
        try:
            return next(self._items, None)
        except Exception as error:  # noqa: BLE001 - kept for the caller, who raises it with the count sent
            self.failure = self.failure or error
            self._closed = True
            return None

    def close(self) -> None:
        with self._lock:
            self._closed = True


class _Senders:
    """`count` threads, each sending the next batch from `source` until none is left or one of them fails
    (the first failure closes the source: the others finish the request they are in and stop)."""

    def __init__(self, sqs: SQSClient, url: str, source: _Batches, count: int, app_name: str | None):
        self.sqs, self.url, self.source, self.app_name = sqs, url, source, app_name
        self.sent = 0
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._running = count = max(1, count)
        self._finished = threading.Event()
        for number in range(count):
            # daemon: a second Ctrl-C leaves without waiting for them
            threading.Thread(target=self._run, name=f"submit-{number}", daemon=True).start()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float) -> bool:
        return self._finished.wait(timeout)

    def _run(self) -> None:
        try:
            while (batch := self.source.take()) is not None:
                count = send_batch(self.sqs, self.url, batch, app_name=self.app_name)
                with self._lock:
                    self.sent += count
        except Exception as error:  # noqa: BLE001 - any error ends the sending: kept for the caller, who raises it
            with self._lock:
                self.sent += error.sent if isinstance(error, BatchFailed) else 0  # the part SQS took
                self.failure = self.failure or error
            self.source.close()
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    self._finished.set()


class _Children:
    """The other sending processes and the caller's end of their pipes. Protocol: caller -> child ("start", url,
    app_name, in_flight) once; then child -> caller ("need",), answered by ("chunk", batches) ([]: none left),
    ("sent", n) progress, and ("done", sent) or ("failed", sent, error) as its last word."""

    def __init__(self, count: int, settings: Settings):
        # spawn: a fresh interpreter, not a fork of one whose boto3 sessions, locks and threads may be mid-use
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self._pipes: dict[int, multiprocessing.connection.Connection] = {}
        self._progress: dict[int, int] = {}
        self._final: dict[int, int] = {}
        self.failure: str | None = None
        self.lost = False  # a child died without its last word: its count is a lower bound
        with _sigint_blocked():  # the children start with SIGINT blocked, then ignore it (_child_main)
            for number in range(count):
                mine, theirs = context.Pipe()
                process = context.Process(target=_child_main, name=f"submit-{number + 1}", daemon=True,
                                          args=(theirs, self._stop, settings, os.getpid()))
                process.start()
                theirs.close()
                self._processes[number], self._pipes[number], self._progress[number] = process, mine, 0

    @property
    def finished(self) -> bool:
        return not self._pipes

    @property
    def sent(self) -> int:
        return sum(self._final.get(number, progress) for number, progress in self._progress.items())

    def start(self, url: str, app_name: str | None, in_flight: int) -> None:
        for number in list(self._pipes):
            self._send(number, ("start", url, app_name, in_flight))

    def stop(self) -> None:
        self._stop.set()

    def serve(self, source: _Batches, timeout: float) -> None:
        ready = multiprocessing.connection.wait(list(self._pipes.values()), timeout)
        for number, pipe in list(self._pipes.items()):
            if pipe not in ready:
                continue
            try:
                message = pipe.recv()
            except (EOFError, OSError):  # it died before its last word
                self._died(number)
                continue
            kind = message[0]
            if kind == "need":
                chunk = source.take_chunk(CHUNK_BATCHES)
                self._send(number, ("chunk", [[Outgoing(job.job_id, job.body) for job in batch]
                                              for batch in chunk]))
            elif kind == "sent":
                self._progress[number] += message[1]
            else:  # "done" or "failed": its exact count, then it exits
                self._final[number] = message[1]
                if kind == "failed":
                    self.failure = self.failure or message[2]
                self._close(number)

    def abandon(self) -> None:
        """Stop every child now: this process is leaving without counting (or before they started)."""
        self._stop.set()
        for pipe in self._pipes.values():
            pipe.close()  # a child waiting for its start or a chunk reads EOF and leaves
        self._pipes.clear()
        for process in self._processes.values():
            process.join(1)
            if process.is_alive():
                process.kill()
                process.join()

    def _send(self, number: int, message: tuple[object, ...]) -> None:
        try:
            self._pipes[number].send(message)
        except OSError:  # it died
            self._died(number)

    def _died(self, number: int) -> None:
        process = self._processes[number]
        process.join(5)
        self.lost = True
        self.failure = self.failure or f"a sending process died (exit status {process.exitcode})"
        self._close(number)

    def _close(self, number: int) -> None:
        pipe = self._pipes.pop(number, None)
        if pipe is not None:
            pipe.close()
        self._processes[number].join(5)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread, and so in the processes it starts meanwhile (they inherit the mask): a
    terminal's Ctrl-C reaches the whole process group, and a child must not die of it before it ignores it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a Ctrl-C meanwhile is delivered now


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the process that started this one dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl: nobody will signal this one
        os._exit(1)


def _child_main(pipe: multiprocessing.connection.Connection, stop: multiprocessing.synchronize.Event,
                settings: Settings, parent: int) -> None:
    """Another sending process: its own SQS client, then `in_flight` threads, batches a chunk at a time from the
    caller's process, progress every PROGRESS_SECONDS, its exact count as its last word."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops us and counts
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    lock = threading.Lock()  # one message at a time on the pipe, whichever thread sends

    def refill() -> list[Batch]:
        if stop.is_set():
            return []
        with lock:
            pipe.send(("need",))
            answer: tuple[str, list[Batch]] = pipe.recv()
        _, chunk = answer
        return chunk

    senders: _Senders | None = None
    try:
        sqs = sending_client(settings)
        _, url, app_name, in_flight = pipe.recv()
        source = _Batches((), refill)
        senders = _Senders(sqs, url, source, in_flight, app_name)
        reported = 0
        while not senders.wait(PROGRESS_SECONDS):
            if stop.is_set():
                source.close()
            reported = _report(pipe, lock, senders.sent, reported)
        if senders.failure is not None:
            raise senders.failure
        pipe.send(("done", senders.sent))
    except (EOFError, BrokenPipeError):
        return  # the caller is gone or gave up on us: nobody to tell
    except Exception as error:  # noqa: BLE001 - any error goes to the parent process, which raises it for the user
        with lock:
            pipe.send(("failed", senders.sent if senders else 0, _describe(error)))


def _report(pipe: multiprocessing.connection.Connection, lock: threading.Lock, sent: int, reported: int) -> int:
    if sent != reported:
        with lock:
            pipe.send(("sent", sent - reported))
    return sent


def done_flags(s3: S3Client, settings: Settings, jobs: Iterable[Job], concurrency: int = CONCURRENCY) -> bytearray:
    """For each job in order, 1 if its outputs are in S3 (the CHECK_IF_DONE rule), else 0: a byte a job, where
    the jobs themselves are read a few thousand at a time."""
    flags = bytearray()
    jobs = iter(jobs)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="skip-done") as pool:
        while chunk := list(itertools.islice(jobs, concurrency * 64)):
            flags.extend(pool.map(lambda job: is_done(s3, settings, job.output_prefix), chunk))
    return flags


def not_done(s3: S3Client, settings: Settings, jobs: Iterable[Job], concurrency: int = CONCURRENCY) -> list[Job]:
    """The jobs whose outputs are not yet in S3 (the CHECK_IF_DONE rule), in file order."""
    jobs = list(jobs)
    return [job for job, done in zip(jobs, done_flags(s3, settings, jobs, concurrency), strict=True) if not done]


class _NotDone:
    """The jobs `flags` (done_flags) marks not done, read from `jobs` again each time this is iterated."""

    def __init__(self, jobs: Jobs, flags: bytearray):
        self._jobs, self._flags = jobs, flags
        self._count = flags.count(0)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Job]:
        return itertools.compress(self._jobs, (not done for done in self._flags))


def submit(settings: Settings, jobs: Jobs, skip_done: bool = False,
           on_total: Callable[[int], None] | None = None, on_sent: Callable[[int], None] | None = None,
           concurrency: int | None = None, append: bool = False, processes: int | None = 1,
           before_send: Callable[[Jobs, bool], None] | None = None) -> SubmitResult:
    """Check the queue exists (and, unless `append`, holds none of the run's jobs yet), optionally drop jobs
    already done, then send the rest. `before_send(jobs to send, queue already holds jobs)` runs just before.

    `processes`: how many processes send (send_jobs); None chooses by the file's size and the CPUs
    (processes_for) where other processes can make the same clients, that is unless a session factory is in
    use (local mode, tests recording calls): the CLI's choice. The default, 1, is for callers whose clients
    other processes could not reproduce (an in-process mock)."""
    chosen = processes is None
    if processes is None:
        processes = processes_for(len(jobs)) if aws.default_sessions() else 1
    # The other processes boot (about a second) while this one makes its client and checks the queue; with
    # --skip-done, once the jobs to send are known.
    children = _Children(processes - 1, settings) if processes > 1 and not skip_done else None
    try:
        sqs = sending_client(settings)
        url = queue_url(sqs, settings)
        depth = queue_depth(sqs, url)
        if depth is not None and not depth.empty and not append:
            raise UserError(f"queue {settings.SQS_QUEUE_NAME} already holds {depth.waiting + depth.in_flight} job(s) "
                            f"of run {settings.APP_NAME} (waiting or running): sending the file again would run its "
                            "jobs twice; add --append to send these jobs as well, or --skip-done with --append to "
                            "send only those not done; nothing was sent")
        todo = _NotDone(jobs, done_flags(aws.client("s3", settings), settings, jobs)) if skip_done else jobs
        if on_total:
            on_total(len(todo))
        if before_send:
            before_send(todo, depth is None or not depth.empty)
        if skip_done and processes > 1:
            processes = processes_for(len(todo)) if chosen else processes
            children = _Children(processes - 1, settings) if processes > 1 else None
        sent = _send(sqs, url, todo, concurrency, on_sent, settings.APP_NAME, children)
    except BaseException:
        if children:
            children.abandon()  # idempotent: _send abandons them itself when it cannot count
        raise
    return SubmitResult(queue=settings.SQS_QUEUE_NAME, sent=sent, already_done=len(jobs) - len(todo),
                        considered=len(jobs))
