"""A run's failed jobs as the status API and `cli.py failed` both list them.

In DS image mode (COMMAND null) the image's own worker writes no failure record: the run's failed jobs are the
dead-letter messages SQS moved there from the run's own queue (deadletters.py: the source ARN SQS stamps, never
the `dsr-app` attribute a job could set). With this project's worker they are its failure records plus those
messages whose job has no record (a worker killed during the last attempt writes none). Messages that name the run
but did not come from its queue are left out, and counted, so `failed`, `redrive` and the API can say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import QUEUE_MISSING, error_code
from chalicelib.model.jobs import NotAJob, job_id_of_message
from chalicelib.monitor import deadletters, sent_back
from chalicelib.runfiles.failures import FailureRecord

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class FailedJobs:
    records: list[FailureRecord]
    # dead-letter messages that name the run (`dsr-app`) but that SQS did not move from its queue: left out
    ignored_dead_letters: int = 0
    complete: bool = True  # False: the dead-letter queue was not read to its end within the caller's time


def dead_letter_failures(sqs: SQSClient, url: str, app_name: str, queue_name: str, s3: S3Client, bucket: str,
                         seconds: float | None = None) -> FailedJobs:
    """A DS-image run's failed jobs: its image's worker keeps no failure record, so they are the dead-letter
    messages SQS moved there from the run's queue `queue_name` (the queue is shared, and `dsr-app` is the
    sender's word: chalicelib/monitor/deadletters.py). `cli.py failed` and GET /runs/{app}/failed both read them here;
    the job id is read without the run's settings (the Lambda has none), and redrive checks each body against
    them before sending it.

    Side effects: every message is hidden only while the sweep runs, then made visible again at once (see
    deadletters.sweep); SQS counts the look as a receive, so a message's ApproximateReceiveCount (shown as
    attempts) grows by one per listing.

    A message `redrive` has already sent back (its id noted in the run's files at `bucket`: sent_back.py) is left
    out: its job is in the queue again (chaos seed 229)."""
    try:
        queue_arn = deadletters.run_queue_arn(sqs, url, queue_name)
        messages, complete = deadletters.sweep_within(sqs, url, seconds, ("ApproximateReceiveCount", "SentTimestamp"))
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return FailedJobs([])  # deleted since the run started: no dead-letter message left to list
        raise
    deadletters.release(sqs, url, messages)  # only looked at
    attributed = deadletters.attribute(messages, queue_arn, app_name)
    failed, _ = sent_back.split(s3, bucket, app_name, attributed.ours)
    records = []
    for message in failed:
        try:
            job_id = job_id_of_message(message["Body"])
        except NotAJob:
            continue
        records.append(FailureRecord(
            job_id=job_id, attempts=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            reason="in the dead-letter queue (the image's own worker keeps no failure record; see its log)",
            exit_code=None, last_lines=(), message_body=message["Body"],
            time=int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000, instance_id=None,
            message_id=message["MessageId"]))
    return FailedJobs(sorted(records, key=lambda record: record.job_id), attributed.ignored, complete)


KILLED_ON_LAST_ATTEMPT = ("in the dead-letter queue with no failure record: its worker was stopped during its last "
                          "attempt (a spot reclaim, out of memory, killed); see its log")


def with_dead_letters(records: list[FailureRecord], dead_lettered: FailedJobs) -> FailedJobs:
    """A run of this project's worker: its failure records, and the jobs SQS moved from its queue to the dead-letter
    queue that have none. A worker killed during a job's last attempt (a spot reclaim, the OOM killer, SIGKILL) writes
    no record, yet SQS still moves the message once its receives are spent: without these, `failed`, `redrive`
    and the API would never show that job (chaos seeds 14, 16 and 2808)."""
    recorded = {record.job_id for record in records}
    extra = [dataclasses.replace(record, reason=KILLED_ON_LAST_ATTEMPT) for record in dead_lettered.records
             if record.job_id not in recorded]
    return FailedJobs(sorted(records + extra, key=lambda record: record.time), dead_lettered.ignored_dead_letters,
                      dead_lettered.complete)

