"""Waiting in tests: poll for what a test expects, with a deadline, instead of sleeping a fixed time.

A fixed sleep is a guess at how fast the machine is: on a loaded CI machine (load average 6 on two cores) the
guess is wrong and the test fails though nothing is. A deadline is reached only when something is wrong, so it
can be generous (tens of seconds) at no cost to a passing run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.1,
             details: Callable[[], str] = lambda: "") -> Any:
    """Poll until `predicate()` is truthy and return that value; after `timeout` seconds fail with `what`, the
    predicate's last value and `details()` (a process's output, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})\n"
                                 f"{details()}")
        time.sleep(interval)
