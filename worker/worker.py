"""The polling worker: one message at a time, from receipt to delete.

`Worker.run_once()` is the whole life of a job and what the tests drive:
receive one message (long poll) -> check it is one of our jobs -> skip it if
its outputs are already complete in S3 (worker/done.py) -> download inputs
-> run COMMAND (an argument list, never a shell) in a fresh temporary folder
while a heartbeat keeps the message hidden -> upload outputs, then the
`_SUCCESS` marker that says they are all there -> delete the message. A
failure makes the message visible again after a short delay; SQS's redrive
policy moves it to the dead-letter queue after JOB_RETRIES receives, and the
last failed attempt leaves a failure record for the run
(chalicelib/runfiles/failures.py). A stop request (SIGTERM: ECS stopping the task, as
its spot draining does on an interruption notice) stops the command and
releases the message at once.

The busy lease (chalicelib/runfiles/leases.py) spans a busy period: put before the first
job after an empty receive, kept fresh across the jobs that follow, deleted on
the next empty receive, a stop or exit. So a no-op job costs four AWS calls in
steady state: the receive, its log stream's create and one batched put, the
delete (the lease and the failure-record check cost calls per busy period,
worker/records.py). Within a busy period a receive waits a second at most, so a
busy period ends about a second after its last job.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.aws import sqs
from chalicelib.aws.sqs import queue_depth
from chalicelib.model import names
from chalicelib.model.errors import UserError
from chalicelib.model.jobs import Job, NotAJob, job_from_message
from chalicelib.model.names import SUCCESS_MARKER
from chalicelib.model.settings import Settings
from chalicelib.runfiles import failures, leases

# The lines that shape an attempt, as the run report and local mode's results read them back
from chalicelib.runfiles.joblines import (
    INPUTS_LINE,
    NO_INPUT_PREFIX_LINE,
    OWN_MARKER_NOTE,
    RECEIVED,
    SKIPPED_AS_DONE,
    STARTED,
    WORKER_SIGNATURE,
)
from worker.attempt_usage import AttemptUsage, MemoryCgroup, attempt_usage, wait_for_exit, worker_size_kib
from worker.done import is_done
from worker.heartbeat import Heartbeat, default_interval
from worker.joblog import JobLog, ensure_log_group
from worker.options import WorkerOptions
from worker.orphans import command_killed_with_parent
from worker.records import FailureRecords
from worker.upload import TransferError, Transfers

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the worker image
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import MessageSystemAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("worker")

# Within a busy period the next receive waits at most this long: a queue holding jobs answers at once anyway,
# and an empty one ends the busy period (the lease goes) a second after the last job instead of a whole long
# poll later, so the monitor can release the machine on its next check. Still a long poll (WaitTimeSeconds > 0
# asks every SQS server): a short poll may answer empty while jobs wait.
BUSY_PERIOD_WAIT_SECONDS = 1
# The attempt (JOB_RETRIES), and the two times that tell whether a listing of failure records answers for the
# message (worker/records.py).
RECEIVED_ATTRIBUTES: list[MessageSystemAttributeNameType] = [
    "ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]
# What S3 and the transfer manager raise for a transfer that failed (botocore's ParamValidationError included): the
# job failed. Anything else out of a transfer is a bug of ours and takes the internal-error path (_handle).
AWS_ERRORS = (BotoCoreError, ClientError)


class Outcome(enum.StrEnum):
    EMPTY = "empty"            # no message arrived during the long poll
    NOT_A_JOB = "not a job"    # left in the queue for the dead-letter queue, never run
    SKIPPED = "skipped"        # outputs already in S3 (CHECK_IF_DONE_BOOL); message deleted
    SUCCEEDED = "succeeded"    # command exited 0 and its outputs are in S3; message deleted
    FAILED = "failed"          # visible again after the retry delay
    RELEASED = "released"      # stopped mid-job; visible again at once for another worker
    STOPPED = "stopped"        # a stop was requested before any message was taken


@dataclass
class _Run:
    """The command being run, so a stop request from another thread can end it."""

    process: subprocess.Popen[str]
    stopped_by: str | None = None  # "stop" or "timeout" once we signalled it
    kill_timer: threading.Timer | None = None


class _Result(NamedTuple):
    """How one attempt ended: the outcome, the text for the job's log, the command's exit code when it ended
    by itself, and what the command used when it ran."""

    outcome: Outcome
    text: str
    exit_code: int | None = None
    usage: AttemptUsage | None = None

    def line(self, facts: str, next_step: str) -> str:
        """The outcome line's text before its signature: what happened, the command's figures, what comes next."""
        figures = self.usage.text() if self.usage is not None else ""
        return "; ".join(part for part in (facts, figures, next_step) if part)


class _Ended(NamedTuple):
    """How the command ended: its exit code, who stopped it, why it could not start, what it used."""

    code: int | None
    stopped_by: str | None
    problem: str | None
    usage: AttemptUsage | None = None


class Worker:
    def __init__(self, settings: Settings | None = None, sqs: SQSClient | None = None, s3: S3Client | None = None,
                 logs: CloudWatchLogsClient | None = None, options: WorkerOptions | None = None):
        self.settings = settings or Settings.from_environment()
        if self.settings.ds_image_mode:
            raise UserError("COMMAND is null (DS image mode): the image's own worker runs the jobs, not this one")
        self.options = options or WorkerOptions.from_environment()
        self.sqs = sqs or aws.client("sqs", self.settings)
        self.s3 = s3 or aws.client("s3", self.settings)
        self.logs = logs or aws.client("logs", self.settings)
        # Asked for on receive, so the worker, not the queue's attribute, decides how long a job hides.
        self.visibility = max(1, self.settings.SQS_MESSAGE_VISIBILITY)
        # At least once per lease refresh, so the monitor never takes a long job's machine for idle.
        self.heartbeat_seconds = self.options.heartbeat_seconds or min(default_interval(self.visibility),
                                                                       leases.REFRESH_SECONDS)
        # The worker's id names its busy lease and, in each job's "received:" line, the slot the run report
        # draws the attempt on (operations/report/data.py reads it back). The host name is the container's.
        slot = f"w{self.options.worker_slot}" if self.options.worker_slot else str(os.getpid())
        self.worker_id = f"{socket.gethostname()}-{slot}"
        # Ends the attempt's "received:" and outcome lines, so a reader tells overlapping attempts apart.
        self.signature = WORKER_SIGNATURE.format(machine=self.options.instance_id or leases.UNKNOWN_INSTANCE,
                                                 worker=self.worker_id)
        self.lease = leases.Lease(self.s3, self.settings.AWS_BUCKET, self.settings.APP_NAME,
                                  self.options.instance_id, self.worker_id)
        self.failure_records = FailureRecords(self.s3, self.settings.AWS_BUCKET, self.settings.APP_NAME)
        self._queue_url: str | None = None
        self._transfers: Transfers | None = None
        self._log_group_ready = False
        self._stop = threading.Event()
        self._stop_reason = ""
        # Re-entrant: a signal handler runs on the main thread, possibly while it holds the lock.
        self._lock = threading.RLock()
        self._run: _Run | None = None
        # The container's memory cgroup, found once: each attempt reads its OOM-kill counter before and after
        # (tests point it at a folder of their own).
        self.memory_cgroup = MemoryCgroup.find()

    # ------------------------------------------------------------------ control
    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            self._queue_url = sqs.existing_queue_url(self.sqs, self.settings.SQS_QUEUE_NAME)
        return self._queue_url

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, reason: str) -> None:
        """Take no new message and end the running command. Safe from signal handlers and other threads."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
        self._signal_run("stop")

    def run_forever(self, exit_when_empty: bool = False) -> None:
        """Handle messages until a stop is requested (or, if asked, until the queue has no work left)."""
        try:
            while not self.stop_requested:
                try:
                    outcome = self.run_once()
                except Exception as error:  # noqa: BLE001 - a transient AWS error must not end the worker
                    log.warning("error while polling %s or handling a message (%s: %s); going on shortly",
                                self.settings.SQS_QUEUE_NAME,
                                type(error).__name__, aws.error_code(error) or error)
                    self._end_busy_period()  # no job runs while it waits: the monitor need not keep the machine
                    self._stop.wait(min(5.0, self.options.wait_seconds or 1))
                    continue
                if outcome is Outcome.EMPTY and exit_when_empty and self._queue_is_drained():
                    log.info("queue %s has no work left; exiting", self.settings.SQS_QUEUE_NAME)
                    return
        finally:
            self._end_busy_period()

    def close(self) -> None:
        """The worker is done: its lease goes (run_forever's end did it already, unless run_once was driven)."""
        self._end_busy_period()
        if self._transfers is not None:
            self._transfers.close()

    # ------------------------------------------------------------------ one message
    def run_once(self) -> Outcome:
        # the event itself each time, not the property: another thread (a signal) sets it while this runs
        if self._stop.is_set():
            self._end_busy_period()
            return Outcome.STOPPED
        wait = self.options.wait_seconds
        if self.lease.held:
            wait = min(wait, BUSY_PERIOD_WAIT_SECONDS)
        messages = sqs.receive(self.sqs, self.queue_url, most=1, wait_seconds=wait,
                               visibility_seconds=self.visibility, system_attributes=RECEIVED_ATTRIBUTES)
        if not messages:
            # Idle: the lease goes now, so the monitor may release this machine on its next look.
            self._end_busy_period()
            return Outcome.EMPTY
        received_at = time.monotonic()
        message = messages[0]
        if self._stop.is_set():  # the stop came during the long poll: this machine takes no new work
            self._release(message)
            self._end_busy_period()
            return Outcome.RELEASED
        try:
            job = job_from_message(message["Body"], self.settings)
        except NotAJob as problem:
            log.error("message %s is not a job of this run (%s); it is left for the dead-letter queue %s and "
                      "never run", message["MessageId"], problem, self.settings.SQS_DEAD_LETTER_QUEUE)
            self._change_visibility(message, self.options.retry_delay_seconds)
            return Outcome.NOT_A_JOB
        try:
            return self._handle(job, message, received_at)
        finally:
            if self._stop.is_set():  # the job was released; this worker takes no other
                self._end_busy_period()

    def _handle(self, job: Job, message: MessageTypeDef, received_at: float) -> Outcome:
        attributes = message.get("Attributes", {})
        attempt = int(attributes.get("ApproximateReceiveCount", "1"))
        self._ensure_log_group()
        joblog = JobLog(self.logs, self.settings.LOG_GROUP_NAME, job.job_id, self.options.log_flush_seconds, log)
        # Before the command starts, so the monitor never takes this machine for idle while it runs; a put
        # only at the busy period's first job (or when due for a refresh).
        self._lease("hold", job.job_id)
        try:
            joblog.event(f"{RECEIVED}message {message['MessageId']}, attempt {attempt} of "
                         f"{self.settings.JOB_RETRIES}, on {_where()}{self.signature}")
            if self.settings.CHECK_IF_DONE_BOOL and is_done(self.s3, self.settings, job.output_prefix):
                joblog.event(f"{SKIPPED_AS_DONE} (s3://{self.settings.DESTINATION_BUCKET}/{job.output_prefix}/ "
                             f"holds {self.settings.EXPECTED_NUMBER_FILES} or more outputs){self.signature}")
                self._delete(message)
                self._forget_failure(job, attempt, attributes)
                return Outcome.SKIPPED
            heartbeat = Heartbeat(self.sqs, self.queue_url, message["ReceiptHandle"], self.visibility,
                                  self.heartbeat_seconds, joblog.event, received_at=received_at,
                                  on_beat=lambda: self._lease("refresh"))
            heartbeat.start()
            try:
                result = self._attempt(job, joblog)
            finally:
                heartbeat.stop()  # joined: no extension may land after the delete or release below
            total = time.monotonic() - received_at
            # The outcome line is written (its time taken) before the job is handed to another worker: a worker
            # that takes it at once writes its "received:" after this line, so the stream reads in order.
            if result.outcome is Outcome.SUCCEEDED:
                self._delete(message)
                self._forget_failure(job, attempt, attributes)
                joblog.event(f"succeeded: {result.line(f'{result.text}; total {total:.2f} s', '')}{self.signature}")
            elif result.outcome is Outcome.RELEASED:
                joblog.event(f"released: {result.line(result.text, 'the job is visible again for another worker')}"
                             f"{self.signature}")
                self._release(message)
            else:
                if self._is_last(attempt):
                    self._record_failure(job, message, attempt, result, joblog.tail)
                joblog.event(f"failed: {result.line(f'{result.text}; total {total:.2f} s', self._next_step(attempt))}"
                             f"{self.signature}")
                self._change_visibility(message, self.options.retry_delay_seconds)
            return result.outcome
        except Exception as error:
            reason = f"internal error {type(error).__name__}: {error}"
            if self._is_last(attempt):
                self._record_failure(job, message, attempt, _Result(Outcome.FAILED, reason), joblog.tail)
            joblog.event(f"failed: {reason}; {self._next_step(attempt)}{self.signature}")
            self._change_visibility(message, self.options.retry_delay_seconds, quiet=True)
            raise
        finally:
            joblog.close()

    def _attempt(self, job: Job, joblog: JobLog) -> _Result:
        """Download, run, upload in a temporary folder that is always removed."""
        scratch = Path(tempfile.mkdtemp(prefix="dsr-job-", dir=self.options.work_dir))
        try:
            output_dir, input_dir = scratch / "output", scratch / "input"
            output_dir.mkdir()
            input_dir.mkdir()
            timings = []
            if job.input_prefix:
                started = time.monotonic()
                try:
                    got = self.transfers.download_prefix(job.input_prefix, input_dir)
                except (TransferError, OSError) as error:
                    return _Result(Outcome.FAILED, f"input download failed: {error}")
                except AWS_ERRORS as error:  # the job, not the worker, failed; a bug of ours is an internal error
                    return _Result(Outcome.FAILED, f"input download failed: {aws.error_code(error) or error}")
                timings.append(f"download {got.files} files in {time.monotonic() - started:.2f} s")
                where = f"s3://{self.settings.SOURCE_BUCKET}/{job.input_prefix}/"
                joblog.event(INPUTS_LINE.format(files=got.files, where=where))
                if self.settings.REQUIRE_INPUTS and not got.files:
                    # Retried like any failure: nothing marks a failure final, and the inputs may yet be uploaded
                    return _Result(Outcome.FAILED, f"no input files under {where}")
            else:
                joblog.event(NO_INPUT_PREFIX_LINE)
            if self.stop_requested:
                return _Result(Outcome.RELEASED, f"stopped ({self._stop_reason}) before the command started")
            argv = job.command(self.settings, str(output_dir), str(input_dir))
            started = time.monotonic()
            code, stopped_by, problem, usage = self._run_command(argv, scratch, joblog)
            run_text = f"run {time.monotonic() - started:.2f} s"
            if stopped_by == "stop":
                return _Result(Outcome.RELEASED, f"stopped ({self._stop_reason}) after {run_text[4:]}", usage=usage)
            if problem:
                return _Result(Outcome.FAILED, problem)
            if stopped_by == "timeout":
                return _Result(Outcome.FAILED, f"timed out after {self.settings.JOB_TIMEOUT:g} s", usage=usage)
            if code != 0:
                # The kernel's OOM killer: said so, with the figures to size MEMORY by; "exit code" kept after it
                why = f"{usage.out_of_memory(self.settings.MEMORY)}; " if usage and usage.oom_killed else ""
                return _Result(Outcome.FAILED, f"{why}exit code {code} after {run_text[4:]}", code, usage)
            timings.append(run_text)
            started = time.monotonic()
            if (output_dir / SUCCESS_MARKER).is_file():
                joblog.event(f"{OWN_MARKER_NOTE}{SUCCESS_MARKER} is not uploaded; the worker writes its "
                             "completion marker there after the last output, if there is one")
            try:
                sent = self.transfers.upload_folder(output_dir, job.output_prefix, job.job_id)
                # No marker without outputs: it only tells complete outputs from a killed upload, and no files
                # are never done by CHECK_IF_DONE (EXPECTED_NUMBER_FILES is at least 1), marker or not.
                if sent.files:
                    self.transfers.mark_complete(job.output_prefix, job.job_id, sent)
            except (TransferError, OSError) as error:
                return _Result(Outcome.FAILED, f"exit code 0 but the upload failed: {error}", 0, usage)
            except AWS_ERRORS as error:
                return _Result(Outcome.FAILED, f"exit code 0 but the upload failed: {aws.error_code(error) or error}",
                               0, usage)
            where = f"s3://{self.settings.DESTINATION_BUCKET}/{job.output_prefix}/"
            timings.append(f"upload {sent.files} files ({sent.bytes} bytes) to {where} in "
                           f"{time.monotonic() - started:.2f} s")
            return _Result(Outcome.SUCCEEDED, "exit code 0; " + ", ".join(timings), 0, usage)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run_command(self, argv: list[str], cwd: Path, joblog: JobLog) -> _Ended:
        """How the command ended. Output goes to the job log line by line."""
        joblog.event(STARTED + shlex.join(argv))
        env = {**os.environ, **self.settings.environment}
        oom_kills_before = self.memory_cgroup.oom_kills() if self.memory_cgroup is not None else None
        worker_kib = worker_size_kib()  # what the command's peak inherits of the worker's (worker/attempt_usage.py)
        try:
            # A worker that dies (SIGKILL, OOM) takes its command along.
            spawned, preexec = command_killed_with_parent(argv, cwd, env)
            # Own session and process group: a stop reaches the command's children too, and a
            # terminal's Ctrl-C reaches the worker, which then stops the command itself.
            process = subprocess.Popen(
                spawned, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, text=True, errors="replace", preexec_fn=preexec)
        except OSError as error:
            return _Ended(None, None, f"cannot start {argv[0]!r}: {error.strerror or error}")
        run = _Run(process)
        with self._lock:
            self._run = run
        timeout = None
        if self.settings.JOB_TIMEOUT:
            timeout = threading.Timer(self.settings.JOB_TIMEOUT, self._signal_run, ("timeout",))
            timeout.daemon = True
            timeout.start()
        if self.stop_requested:
            self._signal_run("stop")
        try:
            assert process.stdout is not None  # stdout=PIPE
            for line in process.stdout:
                joblog.output(line)
            # wait4 rather than wait: the same reaping, and the command's peak memory and CPU time with it. The
            # process group (and its id, which a stop signals) outlives the reaped command while any child of it
            # lives, as it did with wait.
            code, command_usage = wait_for_exit(process, worker_kib)
        finally:
            with self._lock:
                self._run = None
                if run.kill_timer is not None:
                    run.kill_timer.cancel()
            if timeout is not None:
                timeout.cancel()
        usage = attempt_usage(code, command_usage, self.memory_cgroup, oom_kills_before)
        return _Ended(code, run.stopped_by, None, usage)

    def _signal_run(self, why: str) -> None:
        """SIGTERM the running command's group now, SIGKILL it after the grace period."""
        with self._lock:
            run = self._run
            if run is None or run.stopped_by is not None:
                return
            run.stopped_by = why
            _kill_group(run.process, signal.SIGTERM)
            run.kill_timer = threading.Timer(self.options.stop_grace_seconds, _kill_group,
                                             (run.process, signal.SIGKILL))
            run.kill_timer.daemon = True
            run.kill_timer.start()

    # ------------------------------------------------------------------ helpers
    @property
    def transfers(self) -> Transfers:
        if self._transfers is None:
            settings = self.settings
            self._transfers = Transfers(self.s3, settings.SOURCE_BUCKET, settings.DESTINATION_BUCKET,
                                        settings.upload_args)
        return self._transfers

    def _ensure_log_group(self) -> None:
        if not self._log_group_ready:
            ensure_log_group(self.logs, self.settings.LOG_GROUP_NAME)
            self._log_group_ready = True

    def _end_busy_period(self) -> None:
        """No job now and none known to come: the lease goes, and the next job lists failure records afresh."""
        self._lease("release")
        self.failure_records.forget()

    def _lease(self, step: str, *args: object) -> None:
        """Busy lease for the monitor; a failure here must never fail the job (the monitor then sees the
        machine as idle at worst, and a machine it stops releases its job through SIGTERM)."""
        try:
            getattr(self.lease, step)(*args)
        except Exception as error:  # noqa: BLE001 - the lease is the monitor's hint; the job goes on without it
            log.warning("could not %s the busy lease %s (%s)", step, self.lease.key, aws.error_code(error) or error)

    def _record_failure(self, job: Job, message: MessageTypeDef, attempt: int, result: _Result,
                        last_lines: tuple[str, ...]) -> None:
        """The run's own count of failed jobs (the dead-letter queue may be shared with other runs). Like the
        lease, it must never fail the worker: at worst the run's failure count misses this job."""
        usage = result.usage
        record = failures.FailureRecord(
            job_id=job.job_id, attempts=attempt, reason=result.text[:failures.REASON_CHARS], exit_code=result.exit_code,
            last_lines=last_lines, message_body=job.body, time=time.time(), instance_id=self.options.instance_id,
            peak_memory_mib=usage.peak_mib if usage else None, cpu_seconds=usage.cpu_seconds if usage else None,
            memory_limit_mib=usage.limit_mib(self.settings.MEMORY) if usage else None,
            out_of_memory=bool(usage and usage.oom_killed), message_id=message["MessageId"])
        try:
            failures.put(self.s3, self.settings.AWS_BUCKET, self.settings.APP_NAME, record)
        except (BotoCoreError, ClientError) as error:
            log.warning("could not write the failure record of job %s (%s)", job.job_id,
                        aws.error_code(error) or error)

    def _forget_failure(self, job: Job, attempt: int, attributes: Mapping[MessageSystemAttributeNameType, str]) -> None:
        """A job done after all (sent again, redriven) is failed no longer: its record, if any, goes (an S3 call
        only when it has one, or when the run's records must be listed again: worker/records.py)."""
        sent, received = (attributes.get(name) for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"))
        try:
            self.failure_records.job_done(job.job_id, attempt, int(sent) if sent else None,
                                          int(received) if received else None)
        except (BotoCoreError, ClientError) as error:
            log.warning("could not delete the failure record of job %s (%s); the run may count it as failed",
                        job.job_id, aws.error_code(error) or error)

    def _is_last(self, attempt: int) -> bool:
        return attempt >= self.settings.JOB_RETRIES

    def _next_step(self, attempt: int) -> str:
        if self._is_last(attempt):
            return (f"that was the last of {self.settings.JOB_RETRIES} attempts: the job moves to the dead-letter "
                    f"queue {self.settings.SQS_DEAD_LETTER_QUEUE}")
        return f"it will be retried in {self.options.retry_delay_seconds} s"

    def _delete(self, message: MessageTypeDef) -> None:
        sqs.delete_message(self.sqs, self.queue_url, message["ReceiptHandle"])

    def _release(self, message: MessageTypeDef) -> None:
        """Hand the job to another worker at once without spending one of its JOB_RETRIES.

        SQS counts every receive, so a job released for a spot interruption or a stop would reach
        the dead-letter queue after JOB_RETRIES interruptions though it never failed. A fresh copy
        is queued (its receive count starts at 0) and this receipt deleted. If the copy cannot be
        sent, the message is made visible at once instead; if the delete fails after the send, the
        job may run twice, which SQS's at-least-once delivery allows anyway, but is never lost.
        """
        try:
            sqs.send(self.sqs, self.queue_url, message["Body"], names.run_attributes(self.settings.APP_NAME))
        except Exception as error:  # noqa: BLE001 - fall back to the plain release
            log.warning("could not requeue message %s (%s); releasing it instead", message["MessageId"],
                        aws.error_code(error) or error)
            self._change_visibility(message, 0)
            return
        try:
            self._delete(message)
        except Exception as error:  # noqa: BLE001 - the old copy returns after its visibility timeout
            log.warning("requeued message %s but could not delete the original (%s); the job may run twice",
                        message["MessageId"], aws.error_code(error) or error)

    def _change_visibility(self, message: MessageTypeDef, seconds: int, quiet: bool = False) -> None:
        try:
            sqs.set_visibility(self.sqs, self.queue_url, message["ReceiptHandle"], seconds)
        except Exception as error:  # noqa: BLE001 - the visibility timeout returns it anyway, only later
            if not quiet:
                log.warning("could not make message %s visible in %s s (%s); it returns when its visibility "
                            "timeout ends", message["MessageId"], seconds, aws.error_code(error) or error)

    def _queue_is_drained(self) -> bool:
        depth = queue_depth(self.sqs, self.queue_url)
        return depth is None or depth.empty


def _kill_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, sig)


def _where() -> str:
    return f"{os.uname().nodename} pid {os.getpid()}"
