"""Batching and per-entry retries of submit, against a fake SQS client (no AWS)."""

import pytest

from chalicelib.errors import UserError
from chalicelib.jobs import Job
from chalicelib.submit import SubmitError, batches, send_batch, send_jobs


def _job(index: int, size: int = 10) -> Job:
    return Job(job_id=f"job{index}", body="x" * size, body_bytes=size, values={}, output_prefix=f"out/{index}",
               input_prefix=None)


class FakeSQS:
    """SendMessageBatch as SQS answers it: some entries may fail while the request succeeds."""

    def __init__(self, fail_first_times: int = 0, sender_fault: bool = False):
        self.fail_first_times = fail_first_times
        self.sender_fault = sender_fault
        self.received: list[str] = []
        self.calls = 0

    def send_message_batch(self, QueueUrl, Entries):
        self.calls += 1
        assert len(Entries) <= 10
        assert sum(len(entry["MessageBody"]) for entry in Entries) <= 262_144
        failed = []
        for position, entry in enumerate(Entries):
            if position == 0 and self.calls <= self.fail_first_times:
                failed.append({"Id": entry["Id"], "SenderFault": self.sender_fault, "Code": "InternalError",
                               "Message": "try again"})
            else:
                self.received.append(entry["MessageBody"])
        return {"Successful": [], "Failed": failed}


def test_batches_hold_ten_jobs_at_most():
    sizes = [len(batch) for batch in batches([_job(index) for index in range(25)])]
    assert sizes == [10, 10, 5]


def test_batches_stay_within_the_batch_payload_limit():
    jobs = [_job(index, size=100_000) for index in range(5)]
    assert [len(batch) for batch in batches(jobs)] == [2, 2, 1]


def test_batches_are_packed_by_the_size_validation_measured_not_by_encoding_again():
    # what validation says the bodies weigh is what counts: 2 x 150,000 bytes do not fit one batch
    jobs = [Job(job_id=f"job{index}", body="x", body_bytes=150_000, values={}, output_prefix=f"out/{index}",
                input_prefix=None) for index in range(3)]
    assert [len(batch) for batch in batches(jobs)] == [1, 1, 1]


def test_failed_entries_are_resent_and_only_those():
    sqs = FakeSQS(fail_first_times=2)
    jobs = [_job(index) for index in range(10)]
    assert send_batch(sqs, "url", jobs, sleep=lambda seconds: None) == 10
    assert sorted(sqs.received) == sorted(job.body for job in jobs)
    assert sqs.calls == 3


def test_a_sender_fault_stops_with_the_jobs_id():
    sqs = FakeSQS(fail_first_times=1, sender_fault=True)
    with pytest.raises(SubmitError, match="SQS rejected job 'job0': InternalError: try again"):
        send_batch(sqs, "url", [_job(0)], sleep=lambda seconds: None)


def test_entries_that_keep_failing_are_reported_after_the_last_attempt():
    sqs = FakeSQS(fail_first_times=99)
    with pytest.raises(SubmitError, match=r"SQS kept failing 1 job\(s\) after 5 attempts \(InternalError\)"):
        send_batch(sqs, "url", [_job(0), _job(1)], sleep=lambda seconds: None)


def test_send_jobs_sends_everything_once_across_threads_and_reports_progress():
    sqs = FakeSQS()
    progress = []
    jobs = [_job(index, size=index % 7 + 1) for index in range(1234)]
    assert send_jobs(sqs, "url", jobs, concurrency=8, on_sent=progress.append) == 1234
    assert sorted(sqs.received) == sorted(job.body for job in jobs)
    assert sum(progress) == 1234


def test_a_failure_part_way_says_how_many_were_sent():
    sqs = FakeSQS(fail_first_times=99, sender_fault=True)
    with pytest.raises(SubmitError) as failure:
        send_jobs(sqs, "url", [_job(index) for index in range(30)], concurrency=1)
    assert str(failure.value).startswith("sent 0 of 30 jobs, then stopped: SQS rejected job 'job0'")
    assert isinstance(failure.value, UserError)
