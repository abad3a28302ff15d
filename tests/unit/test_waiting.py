"""tests/waiting.py: a poll returns what it waited for, or fails saying what, after how long, and what it last saw."""

from __future__ import annotations

import pytest

from tests.waiting import wait_for


def test_a_poll_returns_the_first_truthy_value():
    values = iter([0, [], None, ["P1"]])
    assert wait_for(lambda: next(values), "a job", interval=0) == ["P1"]


def test_a_poll_past_its_deadline_names_what_it_waited_for_its_last_value_and_the_details():
    with pytest.raises(AssertionError) as failed:
        wait_for(list, "the queue to fill", timeout=0, interval=0, details=lambda: "worker output")
    assert str(failed.value) == "timed out after 0 s waiting for the queue to fill (last value: [])\nworker output"
