"""chalicelib/monitor/counts.py: one definition of submitted, done, failed, skipped and not run, and the monitor's use
of it."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.monitor.actions import SaveState
from chalicelib.monitor.counts import Counts
from chalicelib.monitor.plan import plan, summary
from chalicelib.monitor.status import run_status
from tests.unit.test_plan import BREAKERS, POLICY, failed_jobs, world


def test_a_job_is_in_exactly_one_count_and_a_failure_that_stands_wins():
    counts = Counts.of_jobs(["a", "b", "c", "d", "e"], done=["a", "b"], skipped=["c"], failed=["b", "d", "x"])
    assert (counts.submitted, counts.done, counts.skipped, counts.failed, counts.not_run) == (5, 1, 1, 2, 1)


def test_a_failed_jobs_message_still_in_the_queue_is_neither_a_new_job_nor_a_job_left():
    # 30 jobs: 19 failed jobs in the dead-letter queue and 3 more whose last attempt failed, their messages still
    # in the run's queue with 8 never run: what made the summary say 33 jobs submitted
    counts = Counts.live(30, waiting=11, in_flight=0, failed=22)
    assert (counts.submitted, counts.failed, counts.done + counts.not_run) == (30, 22, 8)
    assert counts.submitted == counts.done + counts.failed + counts.not_run


def test_done_never_goes_below_what_was_seen_while_a_failed_jobs_message_waits_for_its_move():
    before = Counts.live(30, waiting=0, in_flight=4, failed=0)  # 26 done
    failing = Counts.live(30, waiting=1, in_flight=3, failed=1, done_before=before.done)  # its message is back
    assert (before.done, failing.done, failing.failed, failing.not_run) == (26, 26, 1, 3)


def test_the_monitor_remembers_the_jobs_done_and_its_summary_and_status_show_the_same_counts():
    # the last check saw one more job waiting: this one sees it done, so it saves a series point and the count
    seen = world(visible=0, in_flight=4, jobs_at_start=30, failed=0)
    seen = replace(seen, state=replace(seen.state, series=[[seen.now - 60, 4, 1, 4]]))
    [save] = [action for action in plan(seen, POLICY) if isinstance(action, SaveState)]
    assert save.jobs_done_seen == 26
    later = world(visible=1, in_flight=3, jobs_at_start=30, failed=1,
                  state=replace(seen.state, jobs_done_seen=save.jobs_done_seen))
    figures = summary(later, POLICY, "")
    jobs = run_status(later, POLICY)["jobs"]
    assert (figures["jobs_submitted"], figures["jobs_done"], figures["jobs_failed"], figures["jobs_left"]) == \
        (30, 26, 1, 3)
    assert (jobs["submitted"], jobs["done"], jobs["failed"], jobs["waiting"] + jobs["running"]) == (30, 26, 1, 3)


def test_the_failure_breaker_weighs_the_jobs_done_not_the_queues_double_count():
    # 12 jobs, 5 done, 6 failed whose messages wait in the queue for their move, 1 left: 6 of 11 finished jobs
    # failed, well under the breaker's share; counted twice, the failed jobs' messages hid the 5 done
    observation = world(failed=6, failed_jobs=failed_jobs(6), visible=1, in_flight=6, jobs_at_start=12,
                        state=replace(world().state, jobs_done_seen=5))
    assert observation.jobs_done == 5
    assert not [action for action in plan(observation, BREAKERS) if getattr(action, "tearing_down", None)]
