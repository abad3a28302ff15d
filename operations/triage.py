"""After jobs fail: list a run's failed jobs, read one job's log, send the failed jobs back (redrive).

The source of truth is the run's failure records (chalicelib/runfiles/failures.py), not the dead-letter queue: DS's
default dead-letter queue is shared by every run, so only the records say which failed messages are this run's. A
redrive sends each record's message again as a new message (so it gets a fresh attempt count), notes the failed
message's id as sent back (chalicelib/monitor/sent_back.py: a copy left in the dead-letter queue is then listed by
no one), removes that record, and takes the same message off the dead-letter queue; other runs' messages there are
left as they were. In DS image
mode (COMMAND null) the image's own worker writes no record: the run's failed jobs are then the dead-letter messages
SQS moved there from the run's own queue, as chalicelib/monitor/failed.py reads them for `failed` and the status API
alike; with this project's worker, those messages whose job has no record are failed jobs too (a worker killed
during a job's last attempt writes none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import Clients, error_code
from chalicelib.aws.s3 import object_exists
from chalicelib.aws.sqs import delete_message, find_queue_url, send
from chalicelib.model.errors import UserError
from chalicelib.model.jobs import NotAJob, job_from_message
from chalicelib.model.names import record_key, run_attributes
from chalicelib.model.settings import Settings
from chalicelib.monitor import deadletters, sent_back
from chalicelib.monitor.failed import FailedJobs, dead_letter_failures, run_failures
from chalicelib.monitor.output_rule import OutputRule
from chalicelib.runfiles import failures

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_logs.type_defs import GetLogEventsRequestTypeDef

LOG_LINES_SHOWN = 5  # of a failed job's last lines, in `cli.py failed`'s table


def failed_jobs(clients: Clients, settings: Settings) -> FailedJobs:
    """The run's jobs whose last attempt failed and that have not been done since, oldest first."""
    records = (None if settings.ds_image_mode
               else failures.list_records(clients.s3, settings.AWS_BUCKET, settings.APP_NAME))
    return run_failures(_dead_letter_jobs(clients, settings), records, clients.s3, OutputRule.of_settings(settings))


# ---------------------------------------------------------------- one job's log


def log_lines(clients: Clients, settings: Settings, job_id: str, follow: bool = False, poll_seconds: float = 2.0,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The job's CloudWatch stream (LOG_GROUP_NAME/<job id>), every attempt, oldest first; with `follow`, new
    lines as they come until the caller stops iterating."""
    logs = clients.logs
    request: GetLogEventsRequestTypeDef = {"logGroupName": settings.LOG_GROUP_NAME, "logStreamName": job_id,
                                           "startFromHead": True}
    try:
        while True:
            page = logs.get_log_events(**request)
            for event in page["events"]:
                yield event["message"]
            token = page.get("nextForwardToken")
            if token == request.get("nextToken"):  # the end of the stream, for now
                if not follow:
                    return
                sleep(poll_seconds)
            if token is not None:  # CloudWatch Logs always answers one; without it, the next read starts over
                request["nextToken"] = token
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise UserError(f"no log for job {job_id!r} in log group {settings.LOG_GROUP_NAME}: the job has not "
                            "started yet, or the id is not one of this run's (see 'python cli.py failed')") from None
        raise


# ---------------------------------------------------------------- redrive


@dataclass(frozen=True)
class Redriven:
    sent: tuple[str, ...]  # job ids sent again
    removed_from_dead_letter: int  # of their messages taken off the dead-letter queue
    unknown: tuple[str, ...]  # ids asked for that are not failed jobs of this run
    ignored_dead_letters: int = 0  # messages naming the run that SQS did not move from its queue: never sent
    started: bool = True  # a run of the APP_NAME is started (its run record is there): its workers take them


def redrive(clients: Clients, settings: Settings, job_ids: tuple[str, ...] = ()) -> Redriven:
    """Send the run's failed jobs (all, or those of `job_ids`) back to its job queue, once each."""
    failed = failed_jobs(clients, settings)
    records = {record.job_id: record for record in failed.records}
    unknown = tuple(job_id for job_id in job_ids if job_id not in records)
    chosen = [records[job_id] for job_id in (job_ids or tuple(records)) if job_id in records]
    if not chosen:  # copies sent back earlier that their redrive could not take off are taken off still
        removed, ignored = _remove_from_dead_letter(clients, settings, set())
        return Redriven((), removed, unknown, max(ignored, failed.ignored_dead_letters))
    queue_url = find_queue_url(clients.sqs, settings.SQS_QUEUE_NAME)
    if queue_url is None:
        raise UserError(f"the job queue {settings.SQS_QUEUE_NAME} does not exist (the run was torn down with it "
                        "empty): run 'python cli.py setup' first, then redrive and start-cluster")
    for record in chosen:
        try:
            job_from_message(record.message_body, settings)  # the worker's edge check, before anything moves
        except NotAJob as error:
            raise UserError(f"failure record of job {record.job_id!r} does not hold one of this run's jobs "
                            f"({error}); nothing was sent") from None
    sent = []
    for record in chosen:
        # sent first, noted and its record removed after: a crash in between leaves the record, so the job is listed
        # as failed still and nothing is lost; a new message starts with a fresh receive count
        send(clients.sqs, queue_url, record.message_body, run_attributes(settings.APP_NAME))
        if record.message_id is not None:
            sent_back.note(clients.s3, settings.AWS_BUCKET, settings.APP_NAME, record.message_id)
        failures.delete(clients.s3, settings.AWS_BUCKET, settings.APP_NAME, record.job_id)
        sent.append(record.job_id)
    removed, ignored = _remove_from_dead_letter(clients, settings, {record.message_body for record in chosen
                                                                   if record.message_id is None})
    # the listing looked at the dead-letter queue only in DS image mode; the removal always does: the same messages
    # A run torn down (by its monitor, its breaker, `teardown`) keeps a queue holding jobs: they wait there for
    # the next start-cluster, which the user must be told, not left to think them running.
    started = object_exists(clients.s3, settings.AWS_BUCKET, record_key(settings.APP_NAME))
    return Redriven(tuple(sent), removed, unknown, max(ignored, failed.ignored_dead_letters), started)


def _remove_from_dead_letter(clients: Clients, settings: Settings, bodies: set[str]) -> tuple[int, int]:
    """Take the run's messages already sent back off the dead-letter queue: those whose id is noted (sent_back.py:
    this redrive's, and any an earlier one could not see while other readers held them), and one copy of each of
    `bodies` (jobs whose failure record was written before records kept their message's id). Only the run's own
    messages: another run's, or one a job sent naming this run, may hold the same body. Returns (removed, ignored as
    deadletters counts)."""
    url = _dead_letter_url(clients, settings)
    if url is None:
        return 0, 0
    queue_arn = deadletters.run_queue_arn(clients.sqs, url, settings.SQS_QUEUE_NAME)
    attributed = deadletters.attribute(deadletters.sweep(clients.sqs, url), queue_arn, settings.APP_NAME)
    failed, removable = sent_back.split(clients.s3, settings.AWS_BUCKET, settings.APP_NAME, attributed.ours)
    kept = list(attributed.others)
    for message in failed:
        if message["Body"] in bodies:
            bodies.discard(message["Body"])  # one copy per job: a second copy is another failure
            removable.append(message)
        else:
            kept.append(message)
    for message in removable:
        delete_message(clients.sqs, url, message["ReceiptHandle"])
    deadletters.release(clients.sqs, url, kept)  # other runs' failures: visible again at once
    return len(removable), attributed.ignored


def _dead_letter_jobs(clients: Clients, settings: Settings) -> FailedJobs:
    url = _dead_letter_url(clients, settings)
    return FailedJobs([]) if url is None else dead_letter_failures(clients.sqs, url, settings.APP_NAME,
                                                                   settings.SQS_QUEUE_NAME, clients.s3,
                                                                   settings.AWS_BUCKET)


def _dead_letter_url(clients: Clients, settings: Settings) -> str | None:
    return find_queue_url(clients.sqs, settings.SQS_DEAD_LETTER_QUEUE)

