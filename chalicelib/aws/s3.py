"""S3, by intent: objects read (bounded where a job may have written them), written, listed and deleted.

Every S3 listing of the project is `list_objects`: one paginated lister, so no caller reads
only the first 1,000 keys. The worker's transfers stay with s3transfer's TransferManager (worker/upload.py),
which takes the client as these functions do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import OBJECT_MISSING, error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        GetObjectOutputTypeDef,
        GetObjectRequestTypeDef,
        ListObjectsV2RequestPaginateTypeDef,
        PutObjectRequestTypeDef,
    )

# DeleteObjects: "up to 1,000 keys" a request (S3 API Reference, DeleteObjects).
MAX_DELETE_KEYS = 1000


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime
    size: int
    etag: str = ""  # as GetObject and PutObject give it: a reader can tell an object it has already read


def list_objects(s3: S3Client, bucket: str, prefix: str, delimiter: str | None = None,
                 start_after: str | None = None) -> Iterator[Listed]:
    """Every object under `prefix` (with `delimiter`, only those directly under it; with `start_after`, only keys
    after it), every page, in S3's (key) order. A generator: a caller that has its answer stops, and no further
    page is asked for."""
    request: ListObjectsV2RequestPaginateTypeDef = {"Bucket": bucket, "Prefix": prefix}
    if delimiter is not None:
        request["Delimiter"] = delimiter
    if start_after is not None:
        request["StartAfter"] = start_after
    for page in s3.get_paginator("list_objects_v2").paginate(**request):
        for item in page.get("Contents", ()):
            yield Listed(item["Key"], item["LastModified"], item["Size"], item.get("ETag", ""))


class ObjectTooLarge(ValueError):
    """An object larger than its reader takes, refused unread: a job may have written it (DESIGN.md "Trust
    boundary"). A ValueError, as an unparsable body is: readers skip and report both alike."""

    def __init__(self, bucket: str, key: str, size: int | None, limit: int):
        self.bucket, self.key, self.size, self.limit = bucket, key, size, limit
        told = f"{size:,} bytes" if size is not None else "larger"  # the message, as a parse error's, names no key
        super().__init__(f"{told}, over the {limit:,} bytes its reader takes: not read")


def read_object(s3: S3Client, bucket: str, key: str, max_bytes: int | None = None) -> bytes | None:
    """An S3 object's bytes, or None when there is no such key.

    `max_bytes`, for every key a job can write: the GET asks for the first max_bytes + 1 bytes only (a ranged GET,
    one request, so nothing can swap the object between a size check and the read), and a larger object raises
    ObjectTooLarge with its size having cost at most that much memory, whatever its size."""
    return read_object_and_etag(s3, bucket, key, max_bytes)[0]


def read_object_and_etag(s3: S3Client, bucket: str, key: str,
                         max_bytes: int | None = None) -> tuple[bytes | None, str | None]:
    """`read_object`, and the ETag of what was read: for a write made conditional on it (`put_object`'s if_match),
    or to tell later whether a listed object is still the one read. (None, None) when there is no such key."""
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key} if max_bytes is None else {
        "Bucket": bucket, "Key": key, "Range": f"bytes=0-{max_bytes}"}
    try:
        answer = s3.get_object(**request)
    except ClientError as error:  # only "no such key" is an answer
        code = error_code(error)
        if code in OBJECT_MISSING:
            return None, None
        if max_bytes is not None and code == "InvalidRange":  # S3's answer to any range of an empty object
            return b"", None
        raise
    if max_bytes is None:
        return answer["Body"].read(), answer["ETag"]
    with contextlib.closing(answer["Body"]) as body:
        data = body.read(max_bytes + 1)  # bounded even if the range were ignored
    if len(data) > max_bytes:
        raise ObjectTooLarge(bucket, key, _object_size(answer), max_bytes)
    return data, answer["ETag"]


def _object_size(answer: GetObjectOutputTypeDef) -> int | None:
    """The whole object's size: a ranged GET's Content-Range says it ("bytes 0-1024/209715200"), a whole one's
    Content-Length."""
    content_range = answer.get("ContentRange")  # boto3-stubs say every answer has one; only a ranged GET's has
    if not content_range:
        return answer.get("ContentLength")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in OBJECT_MISSING:
            return False
        raise
    return True


def object_metadata(s3: S3Client, bucket: str, key: str) -> dict[str, str] | None:
    """The object's user metadata (x-amz-meta-*), or None when there is no such key."""
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
    except ClientError as error:
        if error_code(error) in OBJECT_MISSING:
            return None
        raise


def put_object(s3: S3Client, bucket: str, key: str, body: bytes, content_type: str | None = None,
               metadata: Mapping[str, str] | None = None, extra_args: Mapping[str, str] | None = None,
               if_match: str | None = None, if_none_match: bool = False) -> str:
    """Write the object; its new ETag. `extra_args`: S3 request parameters passed as they are (a worker's upload
    flags, each checked by chalicelib/model/uploadflags.py). `if_match` / `if_none_match`: a conditional write,
    refused by S3 (PreconditionFailed, ConditionalRequestConflict) when the object is no longer that one / exists."""
    request: PutObjectRequestTypeDef = {"Bucket": bucket, "Key": key, "Body": body}
    if content_type is not None:
        request["ContentType"] = content_type
    if metadata is not None:
        request["Metadata"] = dict(metadata)
    if if_match is not None:
        request["IfMatch"] = if_match
    if if_none_match:
        request["IfNoneMatch"] = "*"
    # uploadflags.py checked each of extra_args' keys and values against PutObject's own
    return s3.put_object(**request, **(extra_args or {}))["ETag"]


def delete_object(s3: S3Client, bucket: str, key: str) -> None:
    """Gone afterwards (S3 answers a missing key with success too)."""
    s3.delete_object(Bucket=bucket, Key=key)


def delete_objects(s3: S3Client, bucket: str, keys: Sequence[str]) -> None:
    """Delete `keys` in their order, MAX_DELETE_KEYS a request: a caller that must delete one key last puts it
    last."""
    for start in range(0, len(keys), MAX_DELETE_KEYS):
        chunk = keys[start:start + MAX_DELETE_KEYS]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True})
