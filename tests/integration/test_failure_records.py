"""Per-run failure records (chalicelib/failures.py), written by the worker and read back from moto.

The dead-letter queue may be shared with other runs; these records are the
run's own count of failed jobs: one per job whose last attempt failed, gone
again once the job is done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import pytest
from botocore.exceptions import ClientError

from chalicelib import failures
from chalicelib.jobs import job_from_message
from chalicelib.names import failure_key, failures_prefix
from tests.worker_world import FAST, python, queue_counts, send_jobs, world
from worker.options import WorkerOptions
from worker.worker import Outcome

OPTIONS = WorkerOptions(**{**FAST.__dict__, "instance_id": "i-0123456789abcdef0"})
# Prints 30 numbered lines, then fails with exit code 3.
FAIL = "import sys; [print('line', i) for i in range(30)]; sys.exit(3)"
# Fails on its first run only (it leaves a file behind), writes an output on the next.
FLAKY = ("import os, sys; seen = os.path.exists(sys.argv[2]); open(sys.argv[2], 'w').close(); "
         "seen and open(sys.argv[1] + '/out.txt', 'w').write('ok'); sys.exit(0 if seen else 3)")


def records(clients, settings):
    return failures.list_records(clients["s3"], settings.AWS_BUCKET, settings.APP_NAME)


def count(clients, settings):
    return failures.count(clients["s3"], settings.AWS_BUCKET, settings.APP_NAME)


def test_a_job_failing_every_attempt_leaves_exactly_one_record(clients):
    settings, worker, queue_url, dlq_url = world(clients, OPTIONS, JOB_RETRIES=2, COMMAND=python(FAIL, "{plate}"))
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    started = time.time()

    assert worker.run_once() is Outcome.FAILED
    assert count(clients, settings) == 0  # not the last attempt yet
    assert worker.run_once() is Outcome.FAILED
    assert worker.run_once() is Outcome.EMPTY  # moved to the dead-letter queue

    [record] = records(clients, settings)
    assert count(clients, settings) == 1 and queue_counts(clients["sqs"], dlq_url) == (1, 0)
    assert (record.job_id, record.attempts, record.exit_code) == ("P1", 2, 3)
    assert record.reason.startswith("exit code 3 after ") and record.reason.endswith(" s")
    assert record.last_lines == tuple(f"line {i}" for i in range(10, 30))  # the last 20 lines of the output
    assert record.instance_id == "i-0123456789abcdef0" and started <= record.time <= time.time()
    assert job_from_message(record.message_body, settings) == job  # a redrive can send it as it was
    stored = clients["s3"].get_object(Bucket=settings.AWS_BUCKET, Key=failure_key("TestApp", "P1"))
    assert stored["ContentType"] == "application/json"


def test_a_job_failing_once_then_succeeding_leaves_none(clients, tmp_path):
    settings, worker, queue_url, _ = world(clients, OPTIONS, JOB_RETRIES=2,
                                           COMMAND=python(FLAKY, "{output_dir}", str(tmp_path / "seen"), "{plate}"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert [worker.run_once(), worker.run_once()] == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert count(clients, settings) == 0


def test_a_job_done_after_its_record_was_written_has_its_record_deleted(clients, tmp_path):
    """Failed in an earlier submission, sent again and done now: the run no longer counts it as failed."""
    settings, worker, queue_url, _ = world(clients, OPTIONS, JOB_RETRIES=1,
                                           COMMAND=python(FLAKY, "{output_dir}", str(tmp_path / "seen"), "{plate}"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    assert worker.run_once() is Outcome.FAILED
    [record] = records(clients, settings)
    failures.put(clients["s3"], settings.AWS_BUCKET, "TestApp", dataclasses.replace(record, job_id="P9"))

    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])  # the user submits it again
    assert worker.run_once() is Outcome.SUCCEEDED
    assert [record.job_id for record in records(clients, settings)] == ["P9"]  # only its own record went


def test_a_timed_out_last_attempt_has_no_exit_code(clients):
    options = WorkerOptions(**{**OPTIONS.__dict__, "stop_grace_seconds": 1})
    settings, worker, queue_url, _ = world(clients, options, JOB_RETRIES=1, JOB_TIMEOUT=0.5,
                                           COMMAND=python("import time; print('working', flush=True); time.sleep(60)"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED
    [record] = records(clients, settings)
    assert (record.reason, record.exit_code, record.last_lines) == ("timed out after 0.5 s", None, ("working",))


def test_a_failed_input_download_is_recorded_with_its_reason(clients):
    settings, worker, queue_url, _ = world(clients, OPTIONS, JOB_RETRIES=1, INPUT_PREFIX="inputs/{plate}")
    clients["s3"].put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P1/../escape.csv", Body=b"x")
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED
    [record] = records(clients, settings)
    assert record.reason.startswith("input download failed: input s3://test-bucket/inputs/P1/../escape.csv would "
                                    "land outside {input_dir}")
    assert (record.exit_code, record.last_lines) == (None, ())


def test_a_record_that_cannot_be_written_never_fails_the_worker(clients, caplog):
    settings, worker, queue_url, dlq_url = world(clients, OPTIONS, JOB_RETRIES=1, COMMAND=python(FAIL))

    def refuse(params, **_):
        if params["Key"].startswith(failures_prefix(settings.APP_NAME)):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    clients["s3"].meta.events.register("provide-client-params.s3.PutObject", refuse)
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    with caplog.at_level(logging.WARNING, logger="worker"):
        assert worker.run_once() is Outcome.FAILED
    assert "could not write the failure record of job P1 (AccessDenied)" in caplog.text
    assert worker.run_once() is Outcome.EMPTY and queue_counts(clients["sqs"], dlq_url) == (1, 0)
    assert count(clients, settings) == 0


def test_count_reads_every_page_and_list_skips_what_it_cannot_read(clients, caplog):
    settings, _, _, _ = world(clients)
    s3, bucket = clients["s3"], settings.AWS_BUCKET
    record = failures.FailureRecord(job_id="J0000", attempts=1, reason="exit code 1 after 0.01 s", exit_code=1,
                                    last_lines=(), message_body="{}", time=1.0, instance_id=None)
    for index in range(1001):  # past one page of 1,000 keys
        failures.put(s3, bucket, "TestApp", dataclasses.replace(record, job_id=f"J{index:04d}"))
    s3.put_object(Bucket=bucket, Key=failure_key("TestApp", "J0001"), Body=b"{not json")
    s3.put_object(Bucket=bucket, Key=failure_key("TestApp", "J0002"), Body=record.to_json().encode())  # says J0000
    s3.put_object(Bucket=bucket, Key=failures_prefix("TestApp") + "nested/J9.json", Body=record.to_json().encode())
    failures.put(s3, bucket, "TestAppB", record)  # another run whose name starts the same

    assert failures.count(s3, bucket, "TestApp") == 1001
    with caplog.at_level(logging.WARNING):
        listed = failures.list_records(s3, bucket, "TestApp")
    assert len(listed) == 999 and {r.job_id for r in listed} == {f"J{i:04d}" for i in range(1001)} - {"J0001", "J0002"}
    assert "skipping unreadable failure record s3://test-bucket/runs/TestApp/failures/J0001.json: not JSON" in \
        caplog.text
    assert "skipping failure record s3://test-bucket/runs/TestApp/failures/J0002.json: it claims job 'J0000'" in \
        caplog.text
    assert failures.count(s3, bucket, "TestAppB") == 1 and failures.count(s3, bucket, "Nobody") == 0


@pytest.mark.parametrize("body", [b"", b"[]", json.dumps({"job_id": "x"}).encode()])
def test_list_records_skips_every_kind_of_bad_body(clients, body):
    settings, _, _, _ = world(clients)
    clients["s3"].put_object(Bucket=settings.AWS_BUCKET, Key=failure_key("TestApp", "x"), Body=body)
    assert records(clients, settings) == [] and count(clients, settings) == 1
