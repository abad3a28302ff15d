"""A run's job logs read back as typed attempts: the facts the run report draws.

Each job's log stream (worker/joblog.py) holds, per attempt, the worker's own lines with their
CloudWatch timestamps:

    received: message M, attempt a of N, on HOST pid P; machine i-0abc worker HOST-PID
    started: COMMAND                         (absent when skipped, or stopped before the command)
    ...the command's output...
    succeeded: ... | failed: ... | released: ... | skipped: ...   ; machine i-0abc worker HOST-PID
                                             (with "; peak memory M MiB, cpu C s" where the command ran)

An attempt runs from its "received:" line to its outcome line, signed by the same machine and worker. Lines
written before this project logged the machine and worker ("received: ... on HOST pid P" and nothing after)
still parse: their attempts go to the UNKNOWN machine (chalicelib/runfiles/joblines.py says how the command's own
output is told from these lines). An attempt with no outcome line (its worker was killed before the last line
went out) is LOST and ends at its last line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.runfiles.joblines import (
    FAILED,
    OUT_OF_MEMORY,
    OUTPUT_MARK,
    RELEASED,
    SKIPPED,
    SUCCEEDED,
    WORKER_PREFIXES,
    outcome_of,
    signed_by,
    usage_of,
)

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_logs import CloudWatchLogsClient

LOST = "lost"
OUTCOMES = (SUCCEEDED, FAILED, RELEASED, SKIPPED, LOST)
UNKNOWN = "unknown"  # the machine (or worker) of an attempt logged before they were written

_RECEIVED = re.compile(r"received: message \S+, attempt (\d+) of (\d+)(?:, on (.*?) pid (\d+))?"
                       r"(?:; machine (\S+) worker (\S+))?")
_EXIT_CODE = re.compile(r"exit code (-?\d+)")


class _OpenAttempt(TypedDict):
    """An attempt parse_stream has seen received and not yet closed."""

    start: float
    last_seen: float
    attempt: int
    retries: int
    machine: str
    slot: str
    last_line: str


@dataclass(frozen=True)
class Attempt:
    job_id: str
    machine: str  # EC2 instance id, or UNKNOWN
    slot: str  # the worker process (its busy lease's id), or UNKNOWN
    start: float  # epoch seconds: the "received:" line
    end: float  # epoch seconds: the outcome line
    outcome: str  # one of OUTCOMES
    attempt: int  # SQS's receive count (1 for the first)
    retries: int  # JOB_RETRIES as the worker logged it
    exit_code: int | None = None
    last_line: str = ""  # the command's last output line before the outcome ("" when it printed nothing)
    reason: str = ""  # the outcome line's text after its prefix
    # What the command used (joblines.usage_of); None in lines written before the worker logged it, or by DS
    peak_memory_mib: float | None = None
    cpu_seconds: float | None = None
    container_peak_mib: float | None = None  # the container's peak so far, when it has a memory limit
    container_limit_mib: float | None = None

    @property
    def out_of_memory(self) -> bool:
        """The kernel's OOM killer ended it."""
        return self.outcome == FAILED and self.reason.startswith(OUT_OF_MEMORY)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def final_failure(self) -> bool:
        """Failed on its last allowed attempt: the job went to the dead-letter queue."""
        return self.outcome == FAILED and self.attempt >= self.retries


def parse_stream(job_id: str, events: Iterable[tuple[float, str]]) -> list[Attempt]:
    """One job's attempts from its log events (epoch seconds, message), oldest first.

    Attempts can overlap in a stream (joblines.py): each is keyed by the machine and worker its "received:" line
    names, and a signed outcome line closes the attempt of its signer. Unsigned lines (the command's output,
    "started:", an outcome written before outcomes were signed) go to the attempt received last."""
    attempts: list[Attempt] = []
    open_attempts: dict[tuple[str, str], _OpenAttempt] = {}  # by (machine, worker), in the order received
    for when, message in events:
        received = _RECEIVED.match(message)
        if received:
            number, retries, _host, _pid, machine, slot = received.groups()
            key = (machine or UNKNOWN, slot or UNKNOWN)
            # The same worker again (a replacement keeps its slot), or a line from before workers were named:
            # the attempt it had open never wrote its outcome.
            earlier = open_attempts.pop(key, None)
            if earlier is not None:
                attempts.append(_close(job_id, earlier, earlier["last_seen"], LOST, ""))
            open_attempts[key] = {"start": when, "last_seen": when, "attempt": int(number),
                                  "retries": int(retries), "machine": key[0], "slot": key[1], "last_line": ""}
            continue
        if not open_attempts:
            continue  # lines before any "received:" (a truncated stream): no attempt to put them in
        outcome = outcome_of(message)
        if outcome is not None:
            machine, slot, text = signed_by(message)
            key = (machine, slot) if machine is not None and slot is not None else next(reversed(open_attempts))
            current = open_attempts.pop(key, None)
            if current is not None:
                attempts.append(_close(job_id, current, when, outcome, text.split(": ", 1)[1]))
            continue
        current = open_attempts[next(reversed(open_attempts))]
        current["last_seen"] = when
        if not message.startswith(WORKER_PREFIXES) and message.strip():
            current["last_line"] = message.removeprefix(OUTPUT_MARK)  # as the command printed it
    for current in open_attempts.values():
        attempts.append(_close(job_id, current, current["last_seen"], LOST, ""))
    return sorted(attempts, key=lambda attempt: attempt.start)


def _close(job_id: str, current: _OpenAttempt, end: float, outcome: str, reason: str) -> Attempt:
    code = _EXIT_CODE.search(reason) if outcome == FAILED else None
    usage = usage_of(reason) or (None, None, None, None)
    return Attempt(job_id=job_id, machine=current["machine"], slot=current["slot"], start=current["start"],
                   end=end, outcome=outcome, attempt=current["attempt"], retries=current["retries"],
                   exit_code=int(code.group(1)) if code else None,
                   last_line=current["last_line"] if outcome == FAILED else "", reason=reason,
                   peak_memory_mib=usage[0], cpu_seconds=usage[1], container_peak_mib=usage[2],
                   container_limit_mib=usage[3])


def attempts_by_job(streams: Mapping[str, Sequence[tuple[float, str]]]) -> dict[str, list[Attempt]]:
    """Each job's attempts (what local mode's results classify jobs by, so its summary and the report agree)."""
    return {job_id: parse_stream(job_id, events) for job_id, events in streams.items()}


def parse_streams(streams: Mapping[str, Sequence[tuple[float, str]]]) -> list[Attempt]:
    """Every job's attempts, sorted by start."""
    attempts = [attempt for job_attempts in attempts_by_job(streams).values() for attempt in job_attempts]
    return sorted(attempts, key=lambda attempt: (attempt.start, attempt.job_id))


class NoLogs(Exception):
    """The run's log group does not exist (never created, or deleted after its 60 days)."""


def read_log_events(logs: CloudWatchLogsClient, group: str) -> dict[str, list[tuple[float, str]]]:
    """Each stream's events (epoch seconds, message) of the log group, oldest first: one paginated
    FilterLogEvents listing (a few requests for thousands of jobs, rather than a GetLogEvents per stream), also
    what local mode's results read (localrun/results.py fetch_log_events)."""
    streams: dict[str, list[tuple[float, str]]] = {}
    try:
        for event in aws.paged(logs, "filter_log_events", "events", logGroupName=group):
            streams.setdefault(event["logStreamName"], []).append((event["timestamp"] / 1000, event["message"]))
    except ClientError as error:
        if aws.error_code(error) == "ResourceNotFoundException":
            raise NoLogs(group) from None
        raise
    for events in streams.values():
        events.sort(key=lambda event: event[0])  # stable: a stream's lines with one timestamp keep their order
    return streams
