"""The circuit breakers: a run that can only fail stops spending. Pure, like plan.py, which calls them.

Two ways a run burns money without progress:
- its jobs fail: at least STOP_AFTER_FAILED_JOBS jobs have failed every attempt and they are at least
  FAILED_SHARE of the jobs finished (so one bad job in a hundred never trips it);
- its machines run no job: the first machine came up STOP_IF_NO_JOB_STARTS_MINUTES ago and no job has
  been seen running, done or failed since (an image that cannot be pulled, a task too big for the machine).

Either is a stop reason: the fleet is cancelled and the queue is kept (even empty: a redrive sends the failed
jobs back onto it).
The reason names the common cause, so status, the summary and the log say what to fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from chalicelib.monitor.observation import FailedJob, Observation, Policy
from chalicelib.runfiles.failures import FailureRecord
from chalicelib.runfiles.joblines import out_of_memory_cause

FAILED_SHARE = 0.9
PREFIX = "circuit breaker: "  # every breaker's stop reason starts so: plan keeps such a run's queue
# How a run on AWS goes on once its cause is fixed; local mode, which has its own way, leaves it out of what it prints
REDRIVE_ADVICE = " (fix the cause, then 'python cli.py redrive' and start-cluster again)"


def failures_trip(failed: int, done: int, threshold: int | None) -> bool:
    """The failure breaker's rule; observe asks it too, to read failure records only when it holds."""
    return threshold is not None and failed >= threshold and failed >= FAILED_SHARE * (failed + done)


def failure_stop(observation: Observation, policy: Policy) -> str | None:
    counts = observation.counts
    failed, done = counts.failed, counts.done
    if not failures_trip(failed, done, policy.stop_after_failed_jobs):
        return None
    return (f"{PREFIX}{failed} job(s) failed every attempt and {done} succeeded; "
            f"{common_failure(observation.failed_jobs)}; jobs left are kept in the queue{REDRIVE_ADVICE}")


def idle_stop(observation: Observation, policy: Policy, jobs_started: bool) -> str | None:
    minutes = policy.stop_if_no_job_starts_minutes
    if minutes is None or jobs_started:
        return None
    launches = [instance.launched_at for instance in observation.instances]
    launches.extend(observation.state.known_instances.values())
    if not launches or observation.now - min(launches) < minutes * 60:
        return None
    return (f"{PREFIX}machines have run {minutes:g} min and no job has started (can the machines pull "
            "the image, and does the task's CPU and MEMORY fit them? see the ECS service's events and the "
            "_perInstance log group); jobs are kept in the queue")


def failed_job(record: FailureRecord) -> FailedJob:
    return FailedJob(record.job_id, record.attempts, record.reason, record.exit_code,
                     record.last_lines[-1] if record.last_lines else "")


def common_failure(jobs: Sequence[FailedJob]) -> str:
    """What the failed jobs have in common, in words: the OOM killer, else the last output line, else the exit
    code, else the reason."""
    if not jobs:
        return "their failure records could not be read"
    attempts = sum(job.attempts for job in jobs)
    for describe in (lambda job: (cause := out_of_memory_cause(job.reason)) and f"ran {cause}",
                     lambda job: job.last_line and f"ended with: {job.last_line}",
                     lambda job: job.exit_code is not None and f"exited with code {job.exit_code}",
                     lambda job: f"failed: {job.reason}"):
        counts = Counter(describe(job) or None for job in jobs)
        text, count = counts.most_common(1)[0]
        if text and count == len(jobs):
            return f"all {len(jobs)} failed job(s) ({attempts} attempts) {text}"
    text, count = Counter(job.last_line or job.reason for job in jobs).most_common(1)[0]
    return f"{count} of {len(jobs)} failed jobs ended with: {text}"
