"""A run's failed jobs as the status API and `cli.py failed` both list them.

In DS image mode (COMMAND null) the image's own worker writes no failure record: the run's failed jobs are the
dead-letter messages SQS moved there from the run's own queue (deadletters.py: the source ARN SQS stamps, never
the `dsr-app` attribute a job could set). With this project's worker they are its failure records plus those
messages whose job has no record (a worker killed during the last attempt writes none). Messages that name the run
but did not come from its queue are left out, and counted, so `failed`, `redrive` and the API can say so; so is a
dead-lettered job with no record whose outputs are complete (output_rule.py): it is done.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import QUEUE_MISSING, error_code
from chalicelib.model.jobs import NotAJob, job_id_of_message
from chalicelib.monitor import deadletters, sent_back
from chalicelib.monitor.output_rule import OutputRule
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


def run_failures(dead_lettered: FailedJobs, records: list[FailureRecord] | None, s3: S3Client,
                 rule: OutputRule | None, seconds: float | None = None) -> FailedJobs:
    """A run's failed jobs, oldest first, as `cli.py failed`, redrive and the API list them. With `records` (a run of
    this project's worker): its failure records, and the jobs SQS moved from its queue to the dead-letter queue that
    have none. A worker killed during a job's last attempt (a spot reclaim, the OOM killer, SIGKILL) writes no
    record, yet SQS still moves the message once its receives are spent: without these, `failed`, `redrive` and the
    API would never show that job (chaos seeds 14, 16 and 2808). Without records (DS image mode: its worker keeps
    none), the dead-lettered jobs alone. In both, a dead-lettered job with no record whose outputs are complete is
    done, not failed (`not_done`: chaos seed 61)."""
    extra = unrecorded(s3, rule, dead_lettered, {record.job_id for record in records or ()}, seconds)
    if records is None:
        return extra
    killed = [dataclasses.replace(record, reason=KILLED_ON_LAST_ATTEMPT) for record in extra.records]
    return dataclasses.replace(extra, records=sorted(records + killed, key=lambda record: record.time))


def unrecorded(s3: S3Client, rule: OutputRule | None, dead_lettered: FailedJobs, recorded: Collection[str],
               seconds: float | None = None) -> FailedJobs:
    """The dead-lettered jobs that have no failure record (`recorded`: the ids of those that have one) and whose
    outputs are not complete (`not_done`): failed with nothing else to say so."""
    return not_done(s3, rule, dataclasses.replace(dead_lettered, records=[
        record for record in dead_lettered.records if record.job_id not in recorded]), seconds)


def not_done(s3: S3Client, rule: OutputRule | None, dead_lettered: FailedJobs,
             seconds: float | None = None) -> FailedJobs:
    """`dead_lettered` (jobs with no failure record) but those whose outputs are complete by the run's `rule`
    (output_rule.py): a worker killed after its upload and before its delete, on the job's last receive, left the
    job done and its message dead-lettered (chaos seed 61). One listing of a job's outputs each, until `seconds` run
    out: the jobs not looked at by then stay, and the answer is not complete. Without a rule (a record from before
    it, an adopted DS run), all stay."""
    if rule is None or not dead_lettered.records:
        return dead_lettered
    ends = None if seconds is None else time.monotonic() + seconds
    done: dict[str, bool] = {}  # by message body: two copies of a job (a redrive's, a spot release's) list once
    kept, complete = [], dead_lettered.complete
    for record in dead_lettered.records:
        body = record.message_body
        if body not in done:
            if ends is not None and time.monotonic() >= ends:
                kept.append(record)
                complete = False
                continue
            done[body] = rule.done(s3, body)
        if not done[body]:
            kept.append(record)
    return dataclasses.replace(dead_lettered, records=kept, complete=complete)
