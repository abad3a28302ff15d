"""The end of a local run: what is in the emulated account, brought to --out, and the summary.

- Outputs: every object under a job's OUTPUT_PREFIX, at the same path under
  --out (OUTPUT_PREFIX "outputs/{plate}" gives OUT/outputs/P01/...), the
  workers' `_SUCCESS` markers included (the folder mirrors the bucket); the
  count shown is of the jobs' own files, markers left out.
- Logs: each job's log stream as OUT/logs/<job id>.log, one line per event.
- Outcome of each job (chalicelib/monitor/counts.py), from what AWS holds: the
  dead-letter queue (the messages SQS moved there from the run's queue) and
  the failure records (a failed job whose message a stopped run never moved
  there) say which failed; the job's log
  says which succeeded or were skipped as already done, and so does the
  worker's `_SUCCESS` marker (written after its last upload) when a killed
  worker never sent its last log line. A job with none of these was not run (a Ctrl-C, a
  MAX_RUN_* stop), even if its prefix holds files: a job of the run may write
  under another job's prefix (chaos seed 39), and only a worker writes the marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from chalicelib import aws
from chalicelib.aws.s3 import Listed, list_objects
from chalicelib.aws.sqs import find_queue_url
from chalicelib.model.jobs import Job, NotAJob, job_from_message
from chalicelib.model.names import success_marker_key
from chalicelib.model.settings import Settings
from chalicelib.monitor import deadletters, run_summary, sent_back
from chalicelib.monitor.breaker import common_failure, failed_job
from chalicelib.monitor.counts import Counts
from chalicelib.runfiles import failures
from chalicelib.runfiles.joblines import SKIPPED, STARTED, SUCCEEDED
from chalicelib.runfiles.outputs import Tally
from localrun import triage
from localrun.retried import retried
from operations.report.data import NoLogs, attempts_by_job, read_log_events

DOWNLOAD_THREADS = 16  # concurrent downloads of outputs from the embedded server


@dataclass
class Results:
    jobs: int
    succeeded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # in the dead-letter queue, or with a failure record
    not_run: list[str] = field(default_factory=list)
    output_files: int = 0  # the jobs' own files, without the workers' _SUCCESS markers
    output_prefixes: list[str] = field(default_factory=list)
    log_files: dict[str, Path] = field(default_factory=dict)  # job id -> its log file
    started_lines: dict[str, int] = field(default_factory=dict)  # job id -> "started:" lines in its log
    run_summary: dict | None = None  # what the monitor wrote at teardown
    log_events: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # job id -> its log events
    failure_cause: str | None = None  # what the failed jobs have in common (monitor/breaker.py's words)

    @property
    def counts(self) -> Counts:
        return Counts.of_jobs(self.succeeded + self.skipped + self.failed + self.not_run, done=self.succeeded,
                              skipped=self.skipped, failed=self.failed)


# A read of the run's end that AWS failed past botocore's own retries (chaos seed 45: an S3 5xx burst of 9 s, 69 % of
# requests) is not the run's failure: its results are all still there. collect only reads (and rewrites --out), so
# the whole of it is made again, after a pause, this many times in all.
COLLECT_ATTEMPTS = 4
COLLECT_PAUSE_SECONDS = 5.0


def collect_results(settings: Settings, jobs: list[Job], out: Path, say: Callable[[str], None],
                    sleep: Callable[[float], None] = time.sleep) -> Results:
    """`collect`, made again when AWS answered one of its reads with an error botocore retries (aws.transient)."""
    return retried(lambda: collect(settings, jobs, out), "reading the run's results", say, COLLECT_ATTEMPTS,
                   COLLECT_PAUSE_SECONDS, sleep)


def collect(settings: Settings, jobs: list[Job], out: Path) -> Results:
    results = Results(jobs=len(jobs), output_prefixes=sorted({job.output_prefix for job in jobs}))
    listed = download_outputs(settings, jobs, out)
    markers = {success_marker_key(prefix) for prefix in results.output_prefixes}
    results.output_files = sum(item.key not in markers for item in listed)
    marked = _marked_done(settings, jobs, listed)
    results.log_events = fetch_log_events(settings)
    lines = {job.job_id: [message for _, message in results.log_events[job.job_id]]
             if job.job_id in results.log_events else None for job in jobs}
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for job_id, events in lines.items():
        if events is None:
            continue
        path = log_dir / f"{job_id}.log"
        path.write_text("".join(line + "\n" for line in events))
        results.log_files[job_id] = path
        results.started_lines[job_id] = sum(line.startswith(STARTED) for line in events)
    records = failures.list_records(aws.client("s3", settings), settings.AWS_BUCKET, settings.APP_NAME)
    # A record is deleted when its job later succeeds, so it stands for a failed job as its dead letter does, but a
    # dead letter with no record whose outputs carry the marker: its worker was killed after its upload, before its
    # delete, on its last receive, and the job is done (`failed` leaves it out by the same rule: chaos seed 61)
    recorded = {record.job_id for record in records}
    failed = recorded | (set(dead_letter_job_ids(settings)) - recorded - marked)
    # Read as the run report reads them (one parse of the same events), so the two never disagree
    attempts = attempts_by_job(results.log_events)
    for job in jobs:
        outcomes = {attempt.outcome for attempt in attempts.get(job.job_id, ())}
        if job.job_id in failed:
            results.failed.append(job.job_id)
        elif SUCCEEDED in outcomes:
            results.succeeded.append(job.job_id)
        elif SKIPPED in outcomes:
            results.skipped.append(job.job_id)  # its outputs were there before this run: not done by it
        elif job.job_id in marked:
            # the marker without a "succeeded:" line: the worker was killed after its upload and marker, before its
            # last log line went out
            results.succeeded.append(job.job_id)
        else:
            results.not_run.append(job.job_id)
    summary = run_summary.find(aws.client("s3", settings), settings.AWS_BUCKET, settings.APP_NAME)
    results.run_summary = summary.parse() if summary else None
    if results.failed:
        failed_records = [record for record in records if record.job_id in results.failed]
        results.failure_cause = common_failure([failed_job(record) for record in failed_records])
        triage.write_failure_records(out, failed_records)  # read by `failed --local-run`
    return results


def _marked_done(settings: Settings, jobs: list[Job], listed: list[Listed]) -> set[str]:
    """Jobs whose prefix has the worker's marker and the count it was written for, from the one listing. Not DS's
    count alone (worker.done's rule for outputs made before the run): a never-run job whose prefix got a file from
    another job of the run counted as done by it (chaos seed 39's outside-prefix attack)."""
    tallies = {job.output_prefix: Tally.for_prefix(job.output_prefix) for job in jobs}
    for item in listed:
        for parent in PurePosixPath(item.key).parents:
            tally = tallies.get(str(parent))
            if tally is not None:
                tally.add(item, settings)
    return {job.job_id for job in jobs if tallies[job.output_prefix].marked
            and tallies[job.output_prefix].counted >= settings.EXPECTED_NUMBER_FILES}


def download_outputs(settings: Settings, jobs: list[Job], out: Path) -> list[Listed]:
    """One listing of the bucket (not one per job: 2,000 jobs would be 2,000 calls), then the transfers.
    Returns the listed objects under the jobs' prefixes."""
    prefixes = {job.output_prefix for job in jobs}
    s3 = aws.client("s3", settings)
    listed = [item for item in list_objects(s3, settings.DESTINATION_BUCKET, "")
              if any(str(parent) in prefixes for parent in PurePosixPath(item.key).parents)]
    keys = [item.key for item in listed]
    def download(key: str) -> None:
        target = out.joinpath(*PurePosixPath(key).parts)  # prefixes never hold ".." (chalicelib.model.jobs)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(settings.DESTINATION_BUCKET, key, str(target))

    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        list(pool.map(download, keys))
    return listed


def fetch_log_events(settings: Settings) -> dict[str, list[tuple[float, str]]]:
    """Each job's log events (epoch seconds, line), oldest first, by job id; a job that logged nothing (never
    received) has none. Read with the run report's one paginated FilterLogEvents listing of the group
    (operations.report.data), once: the run report is built from the same events."""
    try:
        return read_log_events(aws.client("logs", settings), settings.LOG_GROUP_NAME)
    except NoLogs:  # no log group: no job was ever received
        return {}


def dead_letter_job_ids(settings: Settings) -> list[str]:
    """Job ids of the messages SQS moved from the run's queue to the dead-letter queue: in the fresh emulated
    account, every message there but one sent to it directly (the rule of `cli.py failed` for a DS image run,
    chalicelib/monitor/deadletters.py), and but one a redrive has sent back already (chalicelib/monitor/sent_back.py:
    `failed` leaves it out too)."""
    sqs = aws.client("sqs", settings)
    url = find_queue_url(sqs, settings.SQS_DEAD_LETTER_QUEUE)
    if url is None:
        return []
    queue_arn = deadletters.run_queue_arn(sqs, url, settings.SQS_QUEUE_NAME)
    messages = deadletters.sweep(sqs, url)
    # Visible again at once: an emulator given with --endpoint outlives the run, and a redrive there right after
    # it would find its copies hidden for the sweep's minute and leave them in the queue
    deadletters.release(sqs, url, messages)
    failed, _ = sent_back.split(aws.client("s3", settings), settings.AWS_BUCKET, settings.APP_NAME,
                                deadletters.attribute(messages, queue_arn, settings.APP_NAME).ours)
    ids = []
    for message in failed:
        try:
            ids.append(job_from_message(message["Body"], settings).job_id)
        except NotAJob:
            ids.append(f"(not a job: message {message['MessageId']})")
    return ids
