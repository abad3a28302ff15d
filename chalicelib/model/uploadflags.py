"""UPLOAD_FLAGS: Distributed-CellProfiler's flags for each output upload, read as an allowlist.

DCP passes the text to `aws s3 cp`, so any flag of the AWS CLI goes (`--acl bucket-owner-full-control` is the
common one: a lab writing into a collaborator's bucket must hand the objects over). Here the flags become
boto3 upload arguments, and only those that change how an object is stored are accepted: `--acl`,
`--storage-class` and `--sse`. Anything else (`--recursive`, `--exclude`, `--sse-kms-key-id`, `--metadata`,
endpoint or credential flags) is refused: it would either change what is uploaded or need rights the task
role does not hold (a customer-managed KMS key needs kms: grants on that key).
"""

from __future__ import annotations

import shlex
from typing import Any

# The canned ACLs S3 takes on an object.
ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read", "bucket-owner-read",
        "bucket-owner-full-control")
STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
                   "DEEP_ARCHIVE", "GLACIER_IR")
# aws:kms without a key id uses the account's AWS-managed key, whose key policy already lets anyone in the
# account who may write to S3 use it through S3: no kms: grant is needed.
ENCRYPTIONS = ("AES256", "aws:kms")
FLAGS = {"--acl": ("ACL", ACLS), "--storage-class": ("StorageClass", STORAGE_CLASSES),
         "--sse": ("ServerSideEncryption", ENCRYPTIONS)}


def parse_upload_flags(text: str) -> dict[str, str]:
    """DCP's text ('--acl bucket-owner-full-control') -> boto3 ExtraArgs ({'ACL': 'bucket-owner-full-control'});
    ValueError with the 'expected ...' part of a message."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise ValueError(f"expected flags as the AWS CLI reads them ({error})") from None
    args: dict[str, str] = {}
    while words:
        flag, _, value = words.pop(0).partition("=")
        if flag not in FLAGS:
            raise ValueError(f"expected only {', '.join(FLAGS)} (each with a value); {flag!r} is not accepted here")
        if not value:
            if not words or words[0].startswith("--"):
                raise ValueError(f"expected a value after {flag}")
            value = words.pop(0)
        name, allowed = FLAGS[flag]
        if value not in allowed:
            raise ValueError(f"expected {flag} to be one of {', '.join(allowed)}, not {value!r}")
        if name in args:
            raise ValueError(f"expected {flag} once")
        args[name] = value
    return args


def needs_acl_grant(args: dict[str, Any]) -> bool:
    """PutObject with an ACL is also a PutObjectAcl: the task role needs that action too."""
    return "ACL" in args
