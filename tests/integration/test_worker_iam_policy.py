"""The worker's task role grants exactly what a worker calls, no more.

A worker runs in this process through every path a job can take (not a job, released at a spot notice,
done already, inputs, a multipart-sized output, a failure, a job done after its record of an earlier failure,
a drained queue)
with the clients a container has (no alarm: the monitor makes the machine's idle
alarm, and a job may make none). Every AWS operation is recorded with botocore's own `before-call` event
on those clients, turned into its IAM action, and compared with the task role
policy `setup-account` put into (moto's) IAM. A missing grant would fail the
job on AWS; an unused one is a permission nobody needs.
"""

from __future__ import annotations

import json
import sys
import threading

import pytest

from chalicelib import aws as clients
from chalicelib.model import names
from chalicelib.runfiles import failures, leases
from operations.setup import iam, resources
from tests.conftest import make_settings
from tests.integration.test_iam_policy import IAM_ACTION, SERVICE_PREFIX
from tests.worker_world import send_jobs
from worker.options import WorkerOptions
from worker.worker import Outcome, Worker

# Multipart uploads are authorized as s3:PutObject (IAM has no action of their own for these three).
WORKER_IAM_ACTION = {**IAM_ACTION, ("s3", "CreateMultipartUpload"): "s3:PutObject",
                     ("s3", "UploadPart"): "s3:PutObject", ("s3", "CompleteMultipartUpload"): "s3:PutObject"}
FAST = WorkerOptions(wait_seconds=0, retry_delay_seconds=0, log_flush_seconds=0.2,
                     instance_id="i-0123456789abcdef0")
# A job writing a small file and, for the "big" plate, one past the transfer manager's 8 MiB multipart threshold.
WRITE_OUTPUTS = ("import pathlib, sys; out, plate = pathlib.Path(sys.argv[1]), sys.argv[2]; "
                 "(out / 'result.txt').write_text(plate); "
                 "plate == 'big' and (out / 'image.raw').write_bytes(bytes(9 * 1024 * 1024)); "
                 "plate == 'slow' and __import__('time').sleep(30); "
                 "sys.exit(plate == 'bad')")


def record_calls(recorded: set, *clients) -> None:
    def record(model, params, **_):
        service = SERVICE_PREFIX.get(model.service_model.endpoint_prefix, model.service_model.endpoint_prefix)
        recorded.add(WORKER_IAM_ACTION.get((service, model.name), f"{service}:{model.name}"))
        if "x-amz-acl" in {name.lower() for name in params.get("headers", {})}:
            recorded.add("s3:PutObjectAcl")  # a write that sets an ACL is authorized as PutObjectAcl too

    for client in clients:
        client.meta.events.register("before-call", record)


def task_role_statements(settings) -> list[dict]:
    document = clients.client("iam").get_role_policy(RoleName=names.task_role(settings), PolicyName=iam.POLICY_NAME)
    document = document["PolicyDocument"]
    return (json.loads(document) if isinstance(document, str) else document)["Statement"]


def granted(statements) -> set[str]:
    actions = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


# DCP's layout: inputs read from a data set's bucket, outputs written (handed over with an ACL) to the lab's.
THREE_BUCKETS = {"SOURCE_BUCKET": "public-images", "DESTINATION_BUCKET": "lab-results",
                 "UPLOAD_FLAGS": "--acl bucket-owner-full-control --storage-class STANDARD_IA"}


@pytest.fixture(params=["one bucket", "three buckets"])
def account(aws, request):
    settings = make_settings(COMMAND=[sys.executable, "-c", WRITE_OUTPUTS, "{output_dir}", "{plate}"],
                             CHECK_IF_DONE_BOOL=True, EXPECTED_NUMBER_FILES=1, INPUT_PREFIX="inputs/{plate}",
                             JOB_RETRIES=2, **(THREE_BUCKETS if request.param == "three buckets" else {}))
    aws_s3 = clients.client("s3")
    for bucket in {settings.AWS_BUCKET, settings.SOURCE_BUCKET, settings.DESTINATION_BUCKET}:
        aws_s3.create_bucket(Bucket=bucket)
    iam.setup_account(settings)
    resources.setup(settings)
    return settings


def test_the_task_role_grants_exactly_what_a_worker_calls(account):
    settings = account
    sqs, s3 = (clients.client(name) for name in ("sqs", "s3"))
    queue_url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    s3.put_object(Bucket=settings.SOURCE_BUCKET, Key="inputs/P1/in.csv", Body=b"1,2")
    s3.put_object(Bucket=settings.DESTINATION_BUCKET, Key="TestApp/done/result.txt", Body=b"done before")
    # P1 failed in an earlier submission: its record goes when it is done (the worker lists the records to know)
    failures.put(s3, settings.AWS_BUCKET, settings.APP_NAME, failures.FailureRecord(
        job_id="P1", attempts=2, reason="exit code 1 after 0.1 s", exit_code=1, last_lines=(), message_body="{}",
        time=1.0, instance_id=None))
    send_jobs(sqs, queue_url, settings, [{"plate": plate} for plate in ("P1", "big", "done", "bad")])
    sqs.send_message(QueueUrl=queue_url, MessageBody='{"not": "a job"}')

    # the container's clients, made as the worker makes them, recorded from here on
    worker_clients = {name: clients.client(name, settings) for name in ("sqs", "s3", "logs")}
    calls: set[str] = set()
    record_calls(calls, *worker_clients.values())
    worker = Worker(settings, options=FAST, **worker_clients)
    worker.run_forever(exit_when_empty=True)  # every message to its end: done, skipped, dead-lettered
    worker.close()
    # a spot notice mid-job: the job is requeued as a fresh message (Worker._release)
    send_jobs(sqs, queue_url, settings, [{"plate": "slow"}])
    stopped = Worker(settings, options=FAST, **worker_clients)
    threading.Timer(1.0, stopped.request_stop, ("spot interruption notice",)).start()
    assert stopped.run_once() is Outcome.RELEASED
    stopped.close()

    # the run happened as described (read back from moto), so the calls cover every path
    assert sorted(item["Key"] for item in s3.list_objects_v2(Bucket=settings.DESTINATION_BUCKET, Prefix="TestApp/")
                  ["Contents"]) == ["TestApp/P1/_SUCCESS", "TestApp/P1/result.txt", "TestApp/big/_SUCCESS",
                                    "TestApp/big/image.raw", "TestApp/big/result.txt", "TestApp/done/result.txt"]
    assert not s3.list_objects_v2(Bucket=settings.AWS_BUCKET, Prefix=leases.prefix(settings.APP_NAME)).get("Contents")
    assert failures.job_ids(s3, settings.AWS_BUCKET, settings.APP_NAME) == {"bad"}  # P1's record went
    dead = sqs.get_queue_url(QueueName=settings.SQS_DEAD_LETTER_QUEUE)["QueueUrl"]
    assert int(sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == 2  # "bad" after 2 failures, and the non-job

    allowed = granted(task_role_statements(settings))
    assert not calls - allowed, f"the task role lacks: {sorted(calls - allowed)}"
    assert not allowed - calls, f"granted but never called: {sorted(allowed - calls)}"


def test_the_task_role_grants_no_cloudwatch_right_at_all(account):
    """Whoever may make an alarm may have any instance of the account terminated (its EC2 action runs as
    CloudWatch's own role, and nothing limits its dimensions): a job gets no alarm right, nor any other."""
    statements = task_role_statements(account)
    assert [action for statement in statements for action in statement["Action"]
            if action.lower().startswith(("cloudwatch:", "monitoring:", "*"))] == []


def test_the_task_role_may_delete_only_its_own_run_files(account):
    """Outputs are never deleted by a worker; it deletes only its own run's busy leases and stale failure records."""
    statements = task_role_statements(account)
    deleting = [statement for statement in statements if "s3:DeleteObject" in statement["Action"]]
    assert [statement["Resource"] for statement in deleting] == ["arn:aws:s3:::test-bucket/runs/TestApp/*"]
