"""A step of local mode made again when AWS answered with an error botocore retries (aws.transient) and its
attempts were spent: a 5xx or throttle that lasts longer than botocore's backoff (the fault campaign's outages
last up to 10 s). Only for steps that are safe to repeat whole."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws

T = TypeVar("T")


def retried(step: Callable[[], T], doing: str, say: Callable[[str], None], attempts: int, pause: float,
            sleep: Callable[[float], None] = time.sleep) -> T:
    """`step()`, made again up to `attempts` times in all, `pause` seconds apart, while it fails transiently; the
    last attempt's error is raised as it is."""
    for _ in range(attempts - 1):
        try:
            return step()
        except (BotoCoreError, ClientError) as error:
            if not aws.transient(error):
                raise
            say(f"warning: {doing} failed ({error}); trying again in {pause:g} s")
            sleep(pause)
    return step()
