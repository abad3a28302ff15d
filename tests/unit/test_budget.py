"""Whose turn it is in a tick, and whether one more reconcile fits (chalicelib/monitor/budget.py)."""

from __future__ import annotations

from types import SimpleNamespace

from chalicelib.monitor.budget import MARGIN_SECONDS, MAX_SKIPPED_TICKS, Backoff, Turns, enough_time
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run


def a_run(name: str, started: int = 1) -> Run:
    # Turns reads only where the record was found and when the run started
    return Run(record=SimpleNamespace(MONITOR_START_TIME=started), state=MonitorState(), bucket="b",
               key=f"monitors/{name}SpotFleetRequestId.json")


def names(runs) -> list[str]:
    return [run.key.removeprefix("monitors/").removesuffix("SpotFleetRequestId.json") for run in runs]


def test_the_run_served_longest_ago_goes_first_and_one_never_served_before_all():
    turns, (a, b, c) = Turns(), (a_run("A"), a_run("B"), a_run("C"))
    turns.served(b)
    turns.served(a)
    assert names(turns.order([a, b, c], now=0)) == ["C", "B", "A"]


def test_a_new_container_starts_at_another_run_each_minute():
    """After a timeout the turns are gone: a slow run never keeps the same others behind it on every tick."""
    runs = [a_run("A"), a_run("B"), a_run("C")]
    assert [names(Turns().order(runs, now=minute * 60))[0] for minute in range(4)] == ["A", "B", "C", "A"]


def test_a_run_started_again_under_its_name_is_a_new_run():
    turns = Turns()
    turns.served(a_run("A", started=1))
    assert names(turns.order([a_run("A", started=2), a_run("B")], now=0)) == ["A", "B"]


def test_one_more_reconcile_fits_while_the_time_left_covers_the_longest_so_far_and_the_margin():
    assert enough_time(None, longest=10_000)  # no context: nothing stops the process
    assert enough_time(lambda: MARGIN_SECONDS + 5, longest=5)
    assert not enough_time(lambda: MARGIN_SECONDS + 5, longest=6)


def test_a_run_whose_reconcile_keeps_failing_is_tried_less_and_less_often_and_a_success_forgets_it():
    backoff, broken, other = Backoff(), a_run("Broken"), a_run("Other")
    tried = []
    for tick in range(1, 60):
        backoff.next_tick()
        assert backoff.due(other)  # the others are never held back
        if backoff.due(broken):
            tried.append(tick)
            backoff.failed(broken)
    assert tried == [1, 2, 4, 8, 16, 32, 48]  # waits of 0, 1, 3, 7, then MAX_SKIPPED_TICKS ticks
    assert tried[-1] - tried[-2] == MAX_SKIPPED_TICKS + 1
    backoff.succeeded(broken)
    backoff.next_tick()
    assert backoff.due(broken)
    backoff.failed(broken)
    backoff.next_tick()
    assert backoff.due(broken)  # one failure after a success: tried again at once


def test_in_the_lambda_a_call_is_retried_and_timed_out_within_the_budgets_margin(monkeypatch):
    from chalicelib import aws

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    outside = aws.client_config()
    assert outside.retries["max_attempts"] == aws.RETRY_ATTEMPTS and outside.read_timeout == 60  # botocore's default
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ds-runner-monitor-dev-EveryPeriod")
    inside = aws.client_config()
    assert (inside.retries["max_attempts"], inside.connect_timeout, inside.read_timeout) == (
        aws.LAMBDA_ATTEMPTS, aws.LAMBDA_CONNECT_SECONDS, aws.LAMBDA_READ_SECONDS)
    assert inside.max_pool_connections == aws.MAX_POOL_CONNECTIONS
    assert aws.LAMBDA_CALL_SECONDS <= MARGIN_SECONDS
