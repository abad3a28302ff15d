"""Sessions whose clients call handlers at botocore events: how a test counts, refuses or fails the AWS calls our
code makes anywhere, through the AWS layer's one seam (chalicelib.aws.sessions_from)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3

from chalicelib import aws
from tests.conftest import REGION


@contextmanager
def hooked_sessions(*hooks: tuple[str, Callable[..., object]]) -> Iterator[None]:
    """While open, every session our code makes registers each (event, handler) of `hooks`."""
    def session(region: str | None, profile: str | None) -> boto3.Session:
        made = boto3.Session(region_name=region or REGION)
        for event, handler in hooks:
            made.events.register(event, handler)
        return made

    with aws.sessions_from(session):
        yield
