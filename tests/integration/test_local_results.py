"""The end of a local run reads its results again when AWS fails a read past botocore's own retries (chaos seed 45:
an S3 5xx burst outlasted the standard retry mode's attempts on one output's download, and `cli.py local` exited 1
with no summary although every result was still there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import client as aws_client
from chalicelib.model.jobs import parse_job_document
from chalicelib.model.names import success_marker_key
from chalicelib.monitor import sent_back
from localrun.results import COLLECT_ATTEMPTS, COLLECT_PAUSE_SECONDS, collect_results
from tests.conftest import make_settings
from tests.hooked import hooked_sessions


def answered(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@contextmanager
def failing_reads(error: ClientError, times: int) -> Iterator[list[str]]:
    """Every client made meanwhile fails its first `times` GetObject calls with `error`, raised as botocore raises it
    once its attempts are spent."""
    failed: list[str] = []

    def fail(params, **_: object) -> None:
        if len(failed) < times:
            failed.append(params["Key"])
            raise error

    with hooked_sessions(("provide-client-params.s3.GetObject", fail)):
        yield failed


@pytest.fixture
def finished(aws, tmp_path):
    """A run's end as the emulator holds it: one job done, its output and marker in the bucket."""
    settings = make_settings(OUTPUT_PREFIX="out/{plate}")
    [job] = parse_job_document({"groups": [{"plate": "P1"}]}, settings)
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=settings.AWS_BUCKET)
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=f"{job.output_prefix}/result.csv", Body=b"1,2\n")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=success_marker_key(job.output_prefix),
                  Body=json.dumps({"job_id": job.job_id, "files": 1}).encode())
    return settings, [job], tmp_path / "out"


def test_a_read_aws_failed_past_its_retries_is_made_again_and_the_run_ends_with_its_results(finished):
    settings, jobs, out = finished
    said, slept = [], []
    with failing_reads(answered("InternalError", 500), times=1) as failed:
        results = collect_results(settings, jobs, out, said.append, sleep=slept.append)
    assert failed and results.succeeded == ["P1"] and results.not_run == []
    assert (out / "out" / "P1" / "result.csv").read_bytes() == b"1,2\n"
    assert slept == [COLLECT_PAUSE_SECONDS]
    assert said[0] == (f"warning: reading the run's results failed ({answered('InternalError', 500)}); trying "
                       f"again in {COLLECT_PAUSE_SECONDS:g} s")


def test_a_refusal_is_not_read_again_and_a_fault_that_lasts_ends_the_run_as_before(finished):
    settings, jobs, out = finished
    said, slept = [], []
    with failing_reads(answered("AccessDenied", 403), times=1), pytest.raises(ClientError, match="AccessDenied"):
        collect_results(settings, jobs, out, said.append, sleep=slept.append)
    assert said == slept == []
    with failing_reads(answered("SlowDown", 503), times=100), pytest.raises(ClientError, match="SlowDown"):
        collect_results(settings, jobs, out, said.append, sleep=slept.append)
    assert len(said) == len(slept) == COLLECT_ATTEMPTS - 1


def test_chaos_seed_39_a_file_another_job_wrote_into_a_never_run_jobs_prefix_is_not_that_job_done(finished):
    """Seed 39: a hostile job of the run wrote one file under another job's prefix (the task role may write the whole
    output root), the user tore the run down before that job ran, and the summary called it done: DS's count was met
    and the file was not a worker's unfinished upload. Only the worker's marker says a job of this run finished."""
    settings, jobs, out = finished
    [never_run] = parse_job_document({"groups": [{"plate": "P2"}]}, settings)
    aws_client("s3").put_object(Bucket=settings.AWS_BUCKET, Key=f"{never_run.output_prefix}/forged-j049.txt",
                                Body=b"written by another job\n")
    results = collect_results(settings, [*jobs, never_run], out, lambda line: None)
    assert results.succeeded == ["P1"] and results.not_run == ["P2"]
    assert results.counts.done == 1
    assert (out / "out" / "P2" / "forged-j049.txt").exists()  # still brought to --out, as every file of a prefix


def dead_lettered(settings, job) -> str:
    """`job` sent to the run's queue and received past its maxReceiveCount (1), as workers killed before their delete
    on every attempt leave it: SQS moves it to the dead-letter queue, and no failure record is written. Its id."""
    sqs = aws_client("sqs")
    dead_letters = sqs.create_queue(QueueName=settings.SQS_DEAD_LETTER_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=settings.SQS_QUEUE_NAME, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 1})})["QueueUrl"]
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=job.body)["MessageId"]
    for _ in range(2):  # the second receive is past maxReceiveCount: SQS moves the message
        sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)
    return message_id


def test_chaos_seed_61_a_dead_lettered_job_whose_outputs_carry_the_marker_is_done_in_the_local_summary(finished):
    """Seed 61: P1's worker was killed after its upload and marker, before its delete, on its last receive: SQS
    dead-lettered it, with no failure record. `failed` calls it done (its outputs listed complete, with the marker);
    the local summary must too. P2, killed during its upload (an output, no marker), is failed."""
    settings, jobs, out = finished
    [unfinished] = parse_job_document({"groups": [{"plate": "P2"}]}, settings)
    aws_client("s3").put_object(Bucket=settings.AWS_BUCKET, Key=f"{unfinished.output_prefix}/result.csv", Body=b"1")
    for job in (*jobs, unfinished):
        dead_lettered(settings, job)

    results = collect_results(settings, [*jobs, unfinished], out, lambda line: None)

    assert (results.succeeded, results.failed) == (["P1"], ["P2"])


def test_a_dead_letter_copy_a_redrive_sent_back_is_not_a_failed_job_of_the_local_run(finished):
    """A redrive during a local run (or on the emulator it was given) sent P2 back but could not take its copy off
    the dead-letter queue (another reader held it: chaos seed 229). `failed` leaves a noted copy out; the local
    run's summary must too, or the two disagree."""
    settings, jobs, out = finished
    [redriven] = parse_job_document({"groups": [{"plate": "P2"}]}, settings)
    message_id = dead_lettered(settings, redriven)
    assert collect_results(settings, [*jobs, redriven], out, lambda line: None).failed == ["P2"]

    sent_back.note(aws_client("s3"), settings.AWS_BUCKET, settings.APP_NAME, message_id)
    results = collect_results(settings, [*jobs, redriven], out, lambda line: None)

    assert results.failed == [] and results.not_run == ["P2"]
