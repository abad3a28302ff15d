"""UPLOAD_FLAGS: DCP's text for `aws s3 cp`, read as an allowlist of boto3 upload arguments."""

from __future__ import annotations

import pytest

from chalicelib.model.errors import ConfigError
from chalicelib.model.uploadflags import parse_upload_flags
from tests.conftest import make_settings


@pytest.mark.parametrize("text, args", [
    ("", {}),
    ("--acl bucket-owner-full-control", {"ACL": "bucket-owner-full-control"}),
    ("  --acl=bucket-owner-full-control  --storage-class INTELLIGENT_TIERING --sse aws:kms",
     {"ACL": "bucket-owner-full-control", "StorageClass": "INTELLIGENT_TIERING", "ServerSideEncryption": "aws:kms"}),
    ("--sse 'AES256'", {"ServerSideEncryption": "AES256"}),
])
def test_dcps_flags_become_upload_arguments(text, args):
    assert parse_upload_flags(text) == args
    assert make_settings(UPLOAD_FLAGS=text).upload_args == args


@pytest.mark.parametrize("value, why", [
    ("--recursive", "expected only --acl, --storage-class, --sse (each with a value); '--recursive' is not accepted "
                    "here"),
    ("--sse-kms-key-id arn:aws:kms:us-east-1:1:key/k", "'--sse-kms-key-id' is not accepted here"),
    ("--endpoint-url http://evil", "'--endpoint-url' is not accepted here"),
    ("bucket-owner-full-control", "'bucket-owner-full-control' is not accepted here"),
    ("--acl", "expected a value after --acl"),
    ("--acl --sse AES256", "expected a value after --acl"),
    ("--acl owner", "expected --acl to be one of private, public-read, public-read-write, authenticated-read, "
                    "aws-exec-read, bucket-owner-read, bucket-owner-full-control, not 'owner'"),
    ("--storage-class cold", "expected --storage-class to be one of STANDARD"),
    ("--acl private --acl private", "expected --acl once"),
    ("--acl 'private", "expected flags as the AWS CLI reads them (No closing quotation)"),
    (["--acl", "private"], "expected a string of flags such as '--acl bucket-owner-full-control'"),
])
def test_anything_else_is_refused_with_one_line_naming_the_key(value, why):
    with pytest.raises(ConfigError) as refused:
        make_settings(UPLOAD_FLAGS=value)
    message = str(refused.value)
    assert message.startswith("config.json: UPLOAD_FLAGS: ") and why in message and "\n" not in message, message
