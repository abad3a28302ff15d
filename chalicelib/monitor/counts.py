"""The one definition of a run's job counts, used by every place that shows them.

A job is one entry of the job file (one job id), however many messages carry it: a retry, a job released by a
spot interruption or a stop (sent again as a fresh copy), a redrive, are the same job again, never a new one.
Each job is in exactly one of:

- done: an attempt succeeded (its "succeeded:" line), or its outputs are complete by CHECK_IF_DONE's rule
  (worker.done) though its worker was killed before its last log line;
- skipped: its outputs were complete before this run ("skipped:"): nothing left to do, not done by this run;
- failed: its last attempt failed (its JOB_RETRIES-th, or SQS moved it to the dead-letter queue) and no attempt
  succeeded: it has a failure record (chalicelib.runfiles.failures) or its message is in the dead-letter queue. A failed
  job's message may still be in the run's queue (SQS moves it on the next receive, which a stopped run never
  makes): it is failed, not left;
- not run (left): none of these yet: waiting, running, between two attempts, or never started (a breaker stop,
  a MAX_RUN_* stop, Ctrl-C).

submitted = done + skipped + failed + not run.

Two ways to know them:
- `Counts.of_jobs`, exact, after a run, from each job's evidence (the local summary, summary.json, the report).
- `Counts.live`, while a run goes, from what the monitor reads every tick: the queue's approximate counts and the
  run's failure records. The queue cannot tell a message of a job not yet run from one of a failed job waiting to
  be moved to the dead-letter queue, nor a done job from a skipped one, so: submitted is the jobs in the queue
  when the run started (or more, if the queue ever holds more); failed is the failure records; left is the queue's
  messages but never more than the jobs not failed; done (skipped included) is the rest, and never less than the
  monitor saw before (`done_before`): a job done stays done, while the queue's double counting comes and goes.
  So the live done can lag the exact one, never pass it: the last progress line is the exact count.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    submitted: int
    done: int
    failed: int
    skipped: int = 0
    not_run: int = 0  # left: waiting, running, between attempts, or never started
    running: int = 0  # of not_run: received by a worker now (live counts only; 0 after a run)

    @property
    def finished(self) -> int:
        """Jobs with nothing left to do and a success: done and skipped (the live counts cannot tell them apart)."""
        return self.done + self.skipped

    @property
    def waiting(self) -> int:
        return self.not_run - self.running

    @classmethod
    def live(cls, jobs_at_start: int | None, waiting: int, in_flight: int, failed: int,
             done_before: int = 0) -> Counts:
        queued = max(0, waiting) + max(0, in_flight)
        submitted = max(jobs_at_start or 0, queued)
        failed = min(max(0, failed), submitted)
        left = min(queued, submitted - failed)
        done = min(max(done_before, submitted - failed - left), submitted - failed)
        left = submitted - failed - done
        return cls(submitted=submitted, done=done, failed=failed, not_run=left, running=min(max(0, in_flight), left))

    @classmethod
    def of_jobs(cls, jobs: Collection[str], done: Collection[str], skipped: Collection[str],
                failed: Collection[str]) -> Counts:
        """Each job in the first of failed, done, skipped it is in (a job is failed while its failure stands)."""
        jobs, failed = set(jobs), set(failed) & set(jobs)
        done = (set(done) & jobs) - failed
        skipped = (set(skipped) & jobs) - failed - done
        return cls(submitted=len(jobs), done=len(done), failed=len(failed), skipped=len(skipped),
                   not_run=len(jobs - failed - done - skipped))
