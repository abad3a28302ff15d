"""What a worker asks AWS per job: four calls for a no-op job in steady state, the rest once per busy period.

Every call is recorded with botocore's own `before-call` event on the worker's clients (as
test_worker_iam_policy.py does), in order, with the S3 key it names.
"""

from __future__ import annotations

import dataclasses

from chalicelib.model.names import failures_prefix
from chalicelib.runfiles import leases
from tests.worker_world import FAST, send_jobs, world
from worker.worker import Outcome

# The job's lines go out in one put when it ends, however slow a shared machine makes the job (production flushes
# every 5 s: a job that runs longer sends a put per 5 s of output, which is its log, not overhead); no heartbeat.
OPTIONS = dataclasses.replace(FAST, instance_id="i-0abc", log_flush_seconds=3600, heartbeat_seconds=3600)
# What one no-op job costs once its worker is busy: the receive, its log stream (made, then one batched put of
# its lines at the end), the delete. No output, so no upload and no _SUCCESS marker.
PER_JOB = ["sqs:ReceiveMessage", "logs:CreateLogStream", "sqs:DeleteMessage", "logs:PutLogEvents"]


def recorder(clients) -> list[str]:
    calls = []

    def record(model, params, **_):
        call = f"{model.service_model.endpoint_prefix}:{model.name}"
        if model.service_model.endpoint_prefix == "s3":  # the request's path, and the listing's prefix
            query = params.get("query_string")
            prefix = query.get("prefix") if isinstance(query, dict) else None
            call += " " + _what(params["url_path"] + (f" prefix={prefix}" if prefix else ""))
        calls.append(call)

    for client in clients.values():
        client.meta.events.register("before-call", record)
    return calls


def _what(path: str) -> str:
    """An S3 request's object, by kind: the busy lease, the failure records, or the path itself."""
    if "/leases/" in path:
        return "lease"
    if "/failures/" in path:
        return "failure records"
    return path


def test_a_no_op_job_costs_four_calls_once_its_worker_is_busy(clients):
    settings, worker, queue_url, _ = world(clients, OPTIONS, COMMAND=["true", "{plate}"])
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": f"P{n}"} for n in range(6)])
    calls = recorder(clients)

    assert worker.run_once() is Outcome.SUCCEEDED
    # the busy period's first job: the queue URL and the log group once per worker, the lease once per busy period,
    # and one listing of the run's failure records (none: the job's record, if it had one, would be deleted)
    first = list(calls)
    assert first == ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "logs:CreateLogGroup", "logs:CreateLogStream",
                     "s3:PutObject lease", "sqs:DeleteMessage", "s3:ListObjectsV2 failure records", "logs:PutLogEvents"]

    for _ in range(5):
        calls.clear()
        assert worker.run_once() is Outcome.SUCCEEDED
        assert calls == PER_JOB

    calls.clear()
    assert worker.run_once() is Outcome.EMPTY
    assert calls == ["sqs:ReceiveMessage", "s3:DeleteObject lease"]  # idle: the lease goes at once
    assert not clients["s3"].list_objects_v2(Bucket=settings.AWS_BUCKET, Prefix=leases.prefix("TestApp")).get(
        "Contents")
    assert not clients["s3"].list_objects_v2(Bucket=settings.AWS_BUCKET, Prefix=failures_prefix("TestApp")).get(
        "Contents")
    worker.close()
