"""The monitor's state in S3: read with its ETag, written only over what was read.

One run's state has several writers: the alarm Lambda's reconcile and the schedule's, `cli.py teardown`, `cli.py
monitor` and local mode's stop. Each decides from the state it read, so a write over a state that changed since
would silently undo the other's (a user's teardown request overwritten by a tick that read before it). Every write
is therefore an S3 conditional write, If-Match on the ETag read, or If-None-Match: * when there was no state yet:
S3 decides it atomically and refuses it if the state is no longer what was read, and the writer reads again and
decides again (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). It needs no right
beyond s3:PutObject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import OBJECT_MISSING, error_code
from chalicelib.aws.s3 import put_object, read_object_and_etag
from chalicelib.model.errors import UserError
from chalicelib.monitor.observation import MonitorState

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

# S3's refusals of a conditional write: 412, the object changed (or exists, for If-None-Match); 409, another
# conditional write at the same moment; 404, If-Match on an object deleted since (the run's teardown finished).
_CHANGED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", *OBJECT_MISSING)


class StateChanged(Exception):
    """The state is no longer what the writer read: read it again, then decide again."""


class StateContended(UserError):
    """The state kept changing under one writer (others writing at the same moment): nothing was written by it,
    nothing of theirs was lost; trying again later is all there is to do."""

    exit_code = 1


def read(s3: S3Client, bucket: str, key: str) -> tuple[bytes | None, str | None]:
    """The state's bytes and ETag, or (None, None) when there is no state yet."""
    return read_object_and_etag(s3, bucket, key)


def write(s3: S3Client, bucket: str, key: str, state: MonitorState, etag: str | None) -> str:
    """Write `state` over the one read with `etag` (None: there was none); its new ETag. Raises StateChanged."""
    try:
        return put_object(s3, bucket, key, state.to_json().encode(), content_type="application/json",
                          if_match=etag or None, if_none_match=not etag)
    except ClientError as error:
        if error_code(error) in _CHANGED:
            raise StateChanged(f"s3://{bucket}/{key} changed since it was read ({error_code(error)})") from None
        raise
