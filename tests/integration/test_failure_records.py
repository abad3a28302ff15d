"""Per-run failure records (chalicelib/runfiles/failures.py), written by the worker and read back from moto.

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

from chalicelib.aws import Clients
from chalicelib.aws import client as aws_client
from chalicelib.model.jobs import job_from_message
from chalicelib.model.names import failure_key, failures_prefix
from chalicelib.runfiles import failures
from operations import triage
from tests.worker_world import FAST, python, queue_counts, send_jobs, world
from worker.options import WorkerOptions
from worker.records import REFRESH_SECONDS, FailureRecords
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


def test_a_redrive_that_crashed_before_removing_the_record_still_ends_with_no_record(clients, tmp_path,
                                                                                    monkeypatch):
    """redrive sends the job, then deletes its record: a crash in between leaves both. The worker that does the
    job finds the record and deletes it, so the run does not list a done job as failed."""
    settings, worker, queue_url, _ = world(clients, OPTIONS, JOB_RETRIES=1,
                                           COMMAND=python(FLAKY, "{output_dir}", str(tmp_path / "seen"), "{plate}"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    assert [worker.run_once(), worker.run_once()] == [Outcome.FAILED, Outcome.EMPTY]  # dead-lettered, recorded

    def crash(*_):
        raise RuntimeError("redrive died between its send and its delete")

    with monkeypatch.context() as patched:
        patched.setattr(failures, "delete", crash)
        with pytest.raises(RuntimeError, match="redrive died"):
            triage.redrive(Clients(settings), settings)
    assert count(clients, settings) == 1 and queue_counts(clients["sqs"], queue_url) == (1, 0)

    assert [worker.run_once(), worker.run_once()] == [Outcome.SUCCEEDED, Outcome.EMPTY]
    assert count(clients, settings) == 0


def test_a_record_written_after_the_workers_listing_goes_when_the_job_is_sent_again_and_done(clients, tmp_path):
    """The worker listed the records at its busy period's first job, before P1's last attempt failed elsewhere;
    P1 is then sent again and done by this worker, still busy: it was sent after the listing, so the worker
    lists again before deciding."""
    settings, worker, queue_url, _ = world(clients, OPTIONS, JOB_RETRIES=1, COMMAND=python("pass", "{plate}"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P0"}])
    assert worker.run_once() is Outcome.SUCCEEDED  # listed: no record
    record = failures.FailureRecord(job_id="P1", attempts=1, reason="exit code 3 after 0.1 s", exit_code=3,
                                    last_lines=(), message_body="{}", time=time.time(), instance_id="i-other")
    failures.put(clients["s3"], settings.AWS_BUCKET, "TestApp", record)  # another worker's last attempt

    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])  # sent again (submit, or a redrive)
    assert worker.run_once() is Outcome.SUCCEEDED
    assert count(clients, settings) == 0


# A record's removal: the record, then its failure journal entry (chalicelib/runfiles/failure_journal.py)
REMOVAL = ["DeleteObject", "PutObject"]


def _known(settings, clock=time.monotonic):
    """A worker's FailureRecords on a client of its own, whose calls are recorded (the test reads S3 with
    another)."""
    s3, calls = aws_client("s3"), []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return FailureRecords(s3, settings.AWS_BUCKET, settings.APP_NAME, clock=clock), calls, s3


def _put_record(clients, settings, job_id):
    record = failures.FailureRecord(job_id=job_id, attempts=1, reason="x", exit_code=1, last_lines=(),
                                    message_body="{}", time=1.0, instance_id=None)
    failures.put(clients["s3"], settings.AWS_BUCKET, settings.APP_NAME, record)


def test_a_listing_answers_for_messages_sent_before_it_and_is_made_again_for_later_ones(clients):
    settings, _, _, _ = world(clients)
    _put_record(clients, settings, "P1")
    now = [0.0]
    known, calls, _ = _known(settings, clock=lambda: now[0])

    known.job_done("P0", attempt=1, sent_ms=1_000, received_ms=5_000)  # lists: covers what was sent before 5,000
    known.job_done("P2", attempt=1, sent_ms=4_999, received_ms=6_000)  # covered, no record: no call
    known.job_done("P1", attempt=1, sent_ms=2_000, received_ms=7_000)  # covered, has one: deleted
    assert calls == ["ListObjectsV2", *REMOVAL] and count(clients, settings) == 0

    _put_record(clients, settings, "P3")
    calls.clear()
    known.job_done("P3", attempt=1, sent_ms=5_000, received_ms=8_000)  # sent after the listing: listed again
    assert calls == ["ListObjectsV2", *REMOVAL] and count(clients, settings) == 0

    _put_record(clients, settings, "P4")  # with a time a re-sender kept from before (not one this code expects)
    calls.clear()
    known.job_done("P4", attempt=1, sent_ms=1_000, received_ms=9_000)
    assert calls == [] and count(clients, settings) == 1  # trusted while the listing is younger than a minute...
    now[0] += REFRESH_SECONDS
    known.job_done("P4", attempt=1, sent_ms=1_000, received_ms=9_000)
    assert calls == ["ListObjectsV2", *REMOVAL] and count(clients, settings) == 0  # ...then made again


def test_a_job_received_again_deletes_its_record_unasked_and_a_missing_time_lists_again(clients):
    settings, _, _, _ = world(clients)
    known, calls, _ = _known(settings)
    known.job_done("P0", attempt=1, sent_ms=1_000, received_ms=5_000)
    _put_record(clients, settings, "P1")
    calls.clear()

    # attempt 2: its record may be its own (written before JOB_RETRIES was raised), whatever the listing says
    known.job_done("P1", attempt=2, sent_ms=1_000, received_ms=3_000)
    assert calls == REMOVAL and count(clients, settings) == 0
    calls.clear()
    known.job_done("P2", attempt=1, sent_ms=None, received_ms=None)  # SQS gave no times: no trust
    known.job_done("P3", attempt=1, sent_ms=1_000, received_ms=6_000)  # nor did that listing cover anything
    assert calls == ["ListObjectsV2", "ListObjectsV2"]
    known.forget()  # the busy period ended
    calls.clear()
    known.job_done("P4", attempt=1, sent_ms=1_000, received_ms=9_000)
    assert calls == ["ListObjectsV2"]


def test_a_worker_that_may_not_list_deletes_each_record_directly_and_says_so_once(clients, caplog):
    settings, _, _, _ = world(clients)
    _put_record(clients, settings, "P1")

    def refuse(params, **_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")

    known, calls, s3 = _known(settings)
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", refuse)
    with caplog.at_level(logging.WARNING, logger="worker"):
        known.job_done("P0", attempt=1, sent_ms=1_000, received_ms=5_000)
        known.job_done("P1", attempt=1, sent_ms=1_000, received_ms=6_000)
    assert calls == REMOVAL * 2  # as before there were listings: one delete per job
    assert count(clients, settings) == 0
    assert caplog.text.count("could not list the run's failure records (AccessDenied)") == 1


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
    assert ("skipping unreadable failure record s3://test-bucket/runs/TestApp/failures/J0001.json: invalid JSON at "
            "line 1 column 2") in caplog.text
    assert "skipping failure record s3://test-bucket/runs/TestApp/failures/J0002.json: it claims job 'J0000'" in \
        caplog.text
    assert failures.count(s3, bucket, "TestAppB") == 1 and failures.count(s3, bucket, "Nobody") == 0


@pytest.mark.parametrize("body", [b"", b"[]", json.dumps({"job_id": "x"}).encode()])
def test_list_records_skips_every_kind_of_bad_body(clients, body):
    settings, _, _, _ = world(clients)
    clients["s3"].put_object(Bucket=settings.AWS_BUCKET, Key=failure_key("TestApp", "x"), Body=body)
    assert records(clients, settings) == [] and count(clients, settings) == 1
