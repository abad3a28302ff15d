"""`submit`: send validated jobs to the job queue, fast.

DS sends one SendMessage per job, one at a time: about 60 jobs a second. Here
jobs go 10 to a SendMessageBatch (SQS's maximum), packed so a batch also stays
within SQS's 256 KiB batch payload limit, with `concurrency` batches in flight
on a thread pool (boto3 clients are thread-safe). Whole-request failures are
retried by botocore's standard retry mode; entries SQS reports as failed in an
otherwise successful batch are retried here, and a sender fault (SQS says the
message itself is wrong) stops the submission with the job's id.

The job file is validated completely before this module sees it
(chalicelib.jobs), so a bad group never leaves half a file in the queue.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from chalicelib import aws
from chalicelib.awsapi import queue_depth
from chalicelib.done import is_done
from chalicelib.errors import UserError
from chalicelib.jobs import SQS_MESSAGE_BYTES, Job
from chalicelib.names import RUN_ATTRIBUTE_BYTES, run_attributes
from chalicelib.resources import find_queue_url
from chalicelib.settings import Settings

MAX_BATCH_ENTRIES = 10  # SQS's limit per SendMessageBatch
MAX_BATCH_BYTES = SQS_MESSAGE_BYTES  # SQS's limit on a batch's total payload, message attributes included
CONCURRENCY = 16  # batches in flight; 16 x 10 messages / ~15 ms is ~10,000 jobs/s before client overhead
ENTRY_ATTEMPTS = 5


class SubmitError(UserError):
    """Sending stopped part way; the message says how many jobs were sent. AWS stopped it, not a mistake in the
    input (that is refused before anything is sent), so the CLI exits 1."""

    exit_code = 1


@dataclass(frozen=True)
class SubmitResult:
    queue: str
    sent: int
    already_done: int = 0
    considered: int = 0


def batches(jobs: Sequence[Job], max_entries: int = MAX_BATCH_ENTRIES,
            max_bytes: int = MAX_BATCH_BYTES) -> list[list[Job]]:
    """Consecutive jobs, at most `max_entries` and `max_bytes` of bodies and attributes per batch."""
    out: list[list[Job]] = []
    current: list[Job] = []
    size = 0
    for job in jobs:
        body_size = job.body_bytes + RUN_ATTRIBUTE_BYTES  # measured at validation: no body is encoded twice
        if current and (len(current) == max_entries or size + body_size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(job)
        size += body_size
    if current:
        out.append(current)
    return out


def queue_url(sqs, settings: Settings) -> str:
    url = find_queue_url(sqs, settings.SQS_QUEUE_NAME)
    if url is None:
        raise UserError(f"queue '{settings.SQS_QUEUE_NAME}' does not exist; run 'python cli.py setup' first")
    return url


def send_batch(sqs, url: str, batch: Sequence[Job], attempts: int = ENTRY_ATTEMPTS,
               sleep: Callable[[float], None] = time.sleep, app_name: str | None = None) -> int:
    """Send one batch (each message tagged with `app_name`, names.RUN_ATTRIBUTE), retrying the entries SQS
    failed; returns how many were sent."""
    pending = {str(index): job for index, job in enumerate(batch)}
    tagged = {"MessageAttributes": run_attributes(app_name)} if app_name else {}
    for attempt in range(attempts):
        response = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": entry_id, "MessageBody": job.body, **tagged} for entry_id, job in pending.items()])
        failed = response.get("Failed", [])
        for failure in failed:
            if failure.get("SenderFault"):
                job = pending[failure["Id"]]
                raise SubmitError(f"SQS rejected job {job.job_id!r}: {failure.get('Code')}: "
                                  f"{failure.get('Message', '')}".rstrip(": "))
        pending = {failure["Id"]: pending[failure["Id"]] for failure in failed}
        if not pending:
            return len(batch)
        sleep(min(0.05 * 2 ** attempt, 1.0))  # SQS-side failures are transient: back off, then resend only those
    codes = sorted({failure.get("Code", "?") for failure in failed})
    raise SubmitError(f"SQS kept failing {len(pending)} job(s) after {attempts} attempts ({', '.join(codes)})")


def send_jobs(sqs, url: str, jobs: Sequence[Job], concurrency: int = CONCURRENCY,
              on_sent: Callable[[int], None] | None = None, app_name: str | None = None) -> int:
    """Send every job; returns the count. On failure stops early and says how many went."""
    sent = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
        futures = {pool.submit(send_batch, sqs, url, batch, app_name=app_name) for batch in batches(jobs)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    count = future.result()  # re-raises the first failure
                    sent += count
                    if on_sent:
                        on_sent(count)
        except Exception as error:
            for future in pending:
                future.cancel()
            wait(futures)
            # Every batch that went (before, beside or after the failure) is in the queue: count them all,
            # so the message is true.
            sent = sum(future.result() for future in futures if not future.cancelled() and future.exception() is None)
            detail = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            raise SubmitError(f"sent {sent} of {len(jobs)} jobs, then stopped: {detail}; the queue keeps what "
                              "was sent (re-run with --skip-done only if your jobs write outputs)") from error
    return sent


def not_done(s3, settings: Settings, jobs: Iterable[Job], concurrency: int = CONCURRENCY) -> list[Job]:
    """The jobs whose outputs are not yet in S3 (the CHECK_IF_DONE rule), in file order."""
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="skip-done") as pool:
        done = list(pool.map(lambda job: is_done(s3, settings, job.output_prefix), jobs))
    return [job for job, finished in zip(jobs, done) if not finished]


def submit(settings: Settings, jobs: Sequence[Job], skip_done: bool = False,
           on_total: Callable[[int], None] | None = None, on_sent: Callable[[int], None] | None = None,
           concurrency: int = CONCURRENCY, append: bool = False) -> SubmitResult:
    """Check the queue exists (and, unless `append`, holds none of the run's jobs yet), optionally drop jobs
    already done, then send the rest."""
    sqs = aws.client("sqs", settings)
    url = queue_url(sqs, settings)
    depth = queue_depth(sqs, url)
    if depth is not None and not depth.empty and not append:
        raise UserError(f"queue {settings.SQS_QUEUE_NAME} already holds {depth.waiting + depth.in_flight} job(s) of "
                        f"run {settings.APP_NAME} (waiting or running): sending the file again would run its jobs "
                        "twice; add --append to send these jobs as well, or --skip-done with --append to send only "
                        "those not done; nothing was sent")
    todo = not_done(aws.client("s3", settings), settings, jobs, concurrency) if skip_done else list(jobs)
    if on_total:
        on_total(len(todo))
    sent = send_jobs(sqs, url, todo, concurrency, on_sent, app_name=settings.APP_NAME)
    return SubmitResult(queue=settings.SQS_QUEUE_NAME, sent=sent, already_done=len(jobs) - len(todo),
                        considered=len(jobs))
