"""Every AWS call the Lambda and the worker make goes through the AWS layer (chalicelib/aws/), read from the source.

tests/aws_calls.py tells a raw boto3 call (`s3.put_object(Bucket=...)`) from a layer function of the same name
(`put_object(s3, bucket, ...)`) by botocore's own service models; these tests run it over the shipped code and
prove that it does find a raw call.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from tests.aws_calls import raw_calls
from tests.imports import REPO

LAYER = REPO / "chalicelib" / "aws"
SHIPPED = [REPO / "app.py", *sorted((REPO / "chalicelib").rglob("*.py")), *sorted((REPO / "worker").rglob("*.py"))]
EVERY_MODULE = [path for place in ("app.py", "cli.py", "chalicelib", "worker", "operations", "localrun")
                for path in ([REPO / place] if place.endswith(".py") else sorted((REPO / place).rglob("*.py")))]


def outside_the_layer(paths: list[Path]) -> list[Path]:
    return [path for path in paths if not path.is_relative_to(LAYER)]


def test_the_lambda_and_the_worker_make_no_raw_aws_call():
    found = [str(call) for path in outside_the_layer(SHIPPED) for call in raw_calls(path, str(path.relative_to(REPO)))]
    assert found == []


def test_only_the_layer_asks_for_a_paginator():
    """Listing is the layer's: every lister pages through the whole answer in one place."""
    found = [f"{path.relative_to(REPO)}:{node.lineno}" for path in outside_the_layer(EVERY_MODULE)
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "get_paginator"]
    assert found == []


@pytest.mark.parametrize("source, raw", [
    ('s3.put_object(Bucket="b", Key="k", Body=b"")', ["s3.put_object"]),
    ("self.clients.sqs.delete_queue(QueueUrl=url)", ["self.clients.sqs.delete_queue"]),
    ("cloudwatch.put_metric_alarm(**request)", ["cloudwatch.put_metric_alarm"]),
    ('s3.get_paginator("list_objects_v2")', ["s3.get_paginator"]),
    ('s3.upload_file("f", "b", "k", ExtraArgs={})', ["s3.upload_file"]),
    # the layer's own functions of the same names, with their snake_case parameters: not raw
    ('s3.put_object(client, "b", "k", b"", content_type="application/json")', []),
    ("sqs.delete_queue(client, url)", []),
    ("ec2.terminate(client, ids)", []),
])
def test_a_raw_call_is_found_and_a_layer_call_is_not(tmp_path, source, raw):
    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent(f"""
        def f(s3, sqs, ec2, cloudwatch, client, url, ids, request, self):
            {source}
    """))
    assert [call.call for call in raw_calls(path)] == raw
