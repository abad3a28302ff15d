"""An output upload that fails half-way: the job is retried and its outputs end complete.

The worker runs in this process against the moto server through the fault
proxy, which fails every try botocore makes (the first and its 8 retries) to put one of the
job's two output files, on the first try only. So the first attempt uploads
`args.json`, fails on `sub/note.txt`, and the job is failed; the second
attempt runs the command again and uploads both, with the second attempt's
contents.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import aws
from tests.conftest import make_settings
from tests.faults import FaultProxy
from tests.worker_world import job_command, make_world, queue_counts, s3_keys, send_jobs, write_job_script
from worker.options import WorkerOptions
from worker.worker import Outcome, Worker

pytestmark = pytest.mark.slow  # botocore backs off through 8 retries

FAST = WorkerOptions(wait_seconds=0, retry_delay_seconds=0, log_flush_seconds=0.2)


@pytest.fixture
def marks(tmp_path):
    return write_job_script(tmp_path)


@pytest.fixture
def proxy(moto_server, monkeypatch, marks):
    def first_attempt_running() -> bool:
        attempts = marks[1] / "P1.attempts"
        return attempts.exists() and attempts.read_text().count("\n") == 1

    # every try botocore makes (the first and RETRY_ATTEMPTS retries), during the job's first attempt only
    def failing_note(request):
        is_note = request.method == "PUT" and request.path.endswith("/sub/note.txt")
        return "500" if is_note and first_attempt_running() else None

    with FaultProxy(moto_server, rate=0, rule=failing_note) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        aws.forget_sessions()
        yield proxy
    aws.forget_sessions()


def test_an_upload_failing_half_way_fails_the_attempt_and_the_retry_completes_the_outputs(proxy, marks):
    script, marks = marks
    settings = make_settings(COMMAND=job_command(script, marks, "{plate}"), JOB_RETRIES=3)
    sqs, s3, logs = aws.client("sqs"), aws.client("s3"), aws.client("logs")
    queue_url, dlq_url = make_world(sqs, s3, settings)
    [job] = send_jobs(sqs, queue_url, settings, [{"plate": "P1"}], mode="ok")
    worker = Worker(settings, sqs=sqs, s3=s3, logs=logs, options=FAST)
    prefix = job.output_prefix + "/"

    assert worker.run_once() is Outcome.FAILED
    # half-way: the first file went up, the second did not, and so no completion marker either
    assert s3_keys(s3, settings.AWS_BUCKET, prefix) == [prefix + "args.json"]
    assert proxy.faults == {("s3", "500"): 1 + aws.RETRY_ATTEMPTS}  # botocore: max_attempts counts retries

    assert worker.run_once() is Outcome.SUCCEEDED
    worker.close()
    # complete, and marked so: the completion marker went up after both
    assert s3_keys(s3, settings.AWS_BUCKET, prefix) == [prefix + name
                                                        for name in ("_SUCCESS", "args.json", "sub/note.txt")]
    read = lambda key: s3.get_object(Bucket=settings.AWS_BUCKET, Key=prefix + key)["Body"].read().decode()  # noqa: E731
    assert json.loads(read("args.json")) == ["P1"]
    assert read("sub/note.txt") == "done by attempt 2"
    assert (marks / "P1.attempts").read_text().count("\n") == 2
    assert queue_counts(sqs, queue_url) == (0, 0) and queue_counts(sqs, dlq_url) == (0, 0)
