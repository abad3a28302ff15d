"""Raw boto3 calls found in source with `ast`, from botocore's own service models (nothing of ours is imported).

A call `X.op(...)` is raw when `op` is the snake_case name of an operation of a service the project uses (or one of
the methods boto3 injects into clients) and at least one keyword argument names a member of that operation's
input, or is a `**mapping`: boto3 takes AWS's own parameter names (`Bucket=`, `QueueUrl=`), while a layer function
of the same name takes snake_case ones, which is how the two are told apart.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import botocore.session
from botocore import xform_name

SERVICES = ("apigateway", "cloudwatch", "ec2", "ecs", "iam", "lambda", "logs", "resourcegroupstaggingapi", "s3",
            "service-quotas", "sns", "sqs", "ssm", "sts")
# boto3's own client methods (not operations of the service model): what each takes, by boto3's signatures
INJECTED = {
    "upload_file": {"Filename", "Bucket", "Key", "ExtraArgs", "Callback", "Config"},
    "download_file": {"Bucket", "Key", "Filename", "ExtraArgs", "Callback", "Config"},
    "upload_fileobj": {"Fileobj", "Bucket", "Key", "ExtraArgs", "Callback", "Config"},
    "download_fileobj": {"Bucket", "Key", "Fileobj", "ExtraArgs", "Callback", "Config"},
    "copy": {"CopySource", "Bucket", "Key", "ExtraArgs", "Callback", "SourceClient", "Config"},
    "generate_presigned_url": {"ClientMethod", "Params", "ExpiresIn", "HttpMethod"},
}
ALWAYS_RAW = ("get_paginator", "get_waiter")  # a client's own: there is no layer function of that name


@functools.cache
def operation_inputs() -> dict[str, frozenset[str]]:
    """snake_case operation name -> the member names of its input shape, over every service of SERVICES."""
    session = botocore.session.get_session()
    found: dict[str, set[str]] = {name: set(members) for name, members in INJECTED.items()}
    for service in SERVICES:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            shape = model.operation_model(operation).input_shape
            found.setdefault(xform_name(operation), set()).update(shape.members if shape is not None else ())
    return {name: frozenset(members) for name, members in found.items()}


@dataclass(frozen=True)
class RawCall:
    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}"


def raw_calls(path: Path, shown_as: str | None = None) -> list[RawCall]:
    """The raw boto3 calls in one file."""
    inputs = operation_inputs()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        op = node.func.attr
        # `**request`: a dict of AWS's own names, as boto3 takes them (a layer function is called with its own)
        raw = op in ALWAYS_RAW or (op in inputs and any(kw.arg is None or kw.arg in inputs[op] for kw in node.keywords))
        if raw:
            found.append(RawCall(shown_as or str(path), node.lineno, ast.unparse(node.func)))
    return found
