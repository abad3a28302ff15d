"""Why an attempt failed, in words, and failures grouped by cause.

The cause is the worker's verdict where it gave one (timed out, the OOM killer, a signal, an input download or
upload that failed: worker/worker.py writes it first in the outcome line), else the command's last output line,
else its exit code: a job that hangs past JOB_TIMEOUT printed "hanging..." last, but it timed out.

Causes that differ only in an id or a number (the job's plate, a uuid, a temporary folder) are one cause: they
are grouped by their pattern, the cause with those parts masked, and the report shows one of them as the example.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

from chalicelib.runfiles.joblines import FAILED, RELEASED, out_of_memory_cause
from operations.report.data import LOST, Attempt

_PLAIN_EXIT = re.compile(r"exit code -?\d+ after ")  # the command ended by itself: its own output says why
# Masked in this order: a uuid holds hex runs, and a hex id holds numbers.
_MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    # tempfile's folders and files (the worker's scratch folder is mkdtemp's "dsr-job-" and 8 random characters)
    (re.compile(r"\b(dsr-job-|tmp)[a-z0-9_]{8}\b"), r"\1<tmp>"),
    # hex ids of 6 or more characters, letters and digits both (i-0abc12..., a commit, a request id)
    (re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{6,}(?![0-9A-Za-z])", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def cause(attempt: Attempt) -> str:
    """A failed attempt's cause, as the failures table shows it."""
    oom = out_of_memory_cause(attempt.reason)
    if oom:
        return f"ran {oom}"
    verdict = attempt.reason.split("; ")[0]
    if verdict and not _PLAIN_EXIT.match(verdict):
        return verdict
    if attempt.exit_code is not None and attempt.exit_code < 0:
        return f"killed by {_signal_name(-attempt.exit_code)} (exit code {attempt.exit_code})"
    if attempt.last_line:
        return f"ended with: {attempt.last_line}"
    if attempt.exit_code is not None:
        return f"exited with code {attempt.exit_code}"
    return "failed"


def why(attempt: Attempt) -> str:
    """Why any attempt ended as it did, for its bar's tooltip: a failure's cause, the worker's word for a release
    (a spot interruption, a stop), "" for a success or a skip."""
    if attempt.outcome == FAILED:
        return cause(attempt)
    if attempt.outcome == RELEASED:
        return attempt.reason.split("; ")[0]
    if attempt.outcome == LOST:
        return "no outcome line: its worker was gone before writing one"
    return ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def pattern(text: str) -> str:
    """`text` with its ids and numbers masked: what two causes of the same failure have in common."""
    for expression, mask in _MASKS:
        text = expression.sub(mask, text)
    return text


@dataclass
class FailureGroup:
    cause: str  # the first cause of the group, as an example
    job_ids: list[str]  # jobs with a failed attempt of this cause
    attempts: int
    final: int  # of those jobs, how many failed for good (dead-letter queue)
    variants: int = 1  # distinct causes in the group (they differ only in ids and numbers)
    _seen: set[str] = field(default_factory=set, repr=False)
    _causes: set[str] = field(default_factory=set, repr=False)


def failure_groups(attempts: Sequence[Attempt], final: set[str]) -> list[FailureGroup]:
    groups: dict[str, FailureGroup] = {}
    for attempt in attempts:
        if attempt.outcome != FAILED:
            continue
        text = cause(attempt)
        group = groups.setdefault(pattern(text), FailureGroup(text, [], 0, 0))
        group.attempts += 1
        group._causes.add(text)
        group.variants = len(group._causes)
        if attempt.job_id not in group._seen:
            group._seen.add(attempt.job_id)
            group.job_ids.append(attempt.job_id)
            group.final += attempt.job_id in final
    for group in groups.values():
        group.job_ids.sort()
    return sorted(groups.values(), key=lambda group: (-group.attempts, group.cause))


def common_cause(last_attempts: Sequence[Attempt]) -> str | None:
    """What the jobs that failed for good have in common, from their last attempts; None when none did."""
    if not last_attempts:
        return None
    groups = failure_groups(last_attempts, set())
    top = max(groups, key=lambda group: len(group.job_ids))
    tries = sum(attempt.attempt for attempt in last_attempts)
    if len(top.job_ids) == len(last_attempts):
        return f"all {len(last_attempts)} failed job(s) ({tries} attempts) {top.cause}" + (
            f" (and {top.variants - 1} more like it but for ids and numbers)" if top.variants > 1 else "")
    return f"{len(top.job_ids)} of {len(last_attempts)} failed jobs: {top.cause}"
