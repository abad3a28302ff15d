"""Batching, per-entry retries, in-flight sizing and stopping of submit, against a fake SQS client (no AWS)."""

import os
import signal
import time

import pytest

from chalicelib.model.errors import UserError
from chalicelib.model.jobs import Job
from operations.submit import (
    SubmitError,
    SubmitInterrupted,
    batches,
    in_flight_for,
    processes_for,
    send_batch,
    send_jobs,
)


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
        self.on_call = None

    def send_message_batch(self, QueueUrl, Entries):
        self.calls += 1
        if self.on_call:
            self.on_call(self.calls)
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
    # SQS took the other 9 entries of the refused batch: they are in the queue, so they are counted
    assert len(sqs.received) == 9
    assert str(failure.value).startswith("sent 9 of 30 jobs, then stopped: SQS rejected job 'job0'")
    assert isinstance(failure.value, UserError)


def test_a_refusal_in_the_probe_counts_what_sqs_took_too():
    sqs = FakeSQS(fail_first_times=99, sender_fault=True)
    with pytest.raises(SubmitError, match=r"^sent 9 of 30 jobs, then stopped: SQS rejected job 'job0'"):
        send_jobs(sqs, "url", [_job(index) for index in range(30)])  # concurrency=None: the probe sends first


def test_measuring_the_round_trip_first_still_sends_and_counts_every_job():
    sqs = FakeSQS()
    progress = []
    jobs = [_job(index) for index in range(1234)]
    assert send_jobs(sqs, "url", jobs, on_sent=progress.append) == 1234  # concurrency=None: the probe, then the rest
    assert sorted(sqs.received) == sorted(job.body for job in jobs)
    assert sum(progress) == 1234


@pytest.mark.parametrize("round_trip, in_flight", [(0.0005, 8), (0.017, 34), (0.032, 64), (0.5, 64)])
def test_requests_in_flight_follow_the_round_trip_within_bounds(round_trip, in_flight):
    assert in_flight_for(round_trip) == in_flight


@pytest.mark.parametrize("jobs, cpus, processes", [(19_999, 8, 1), (20_000, 2, 2), (100_000, 2, 2),
                                                   (100_000, 1, 1), (35_000, 8, 3), (10**6, 32, 8)])
def test_processes_one_per_cpu_for_large_files_only(jobs, cpus, processes):
    assert processes_for(jobs, cpus) == processes


def test_ctrl_c_stops_the_senders_and_says_how_many_jobs_went():
    def slow_then_ctrl_c(calls):
        time.sleep(0.005)  # as a request takes time; the main thread, which handles the signal, gets to run
        if calls == 20:
            os.kill(os.getpid(), signal.SIGINT)

    sqs = FakeSQS()
    sqs.on_call = slow_then_ctrl_c
    jobs = [_job(index) for index in range(1000)]
    with pytest.raises(SubmitInterrupted) as stopped:
        send_jobs(sqs, "url", jobs, concurrency=2)
    sent = len(sqs.received)
    assert 200 <= sent < 1000  # the batches in flight when it came finish; no new one starts
    assert str(stopped.value).startswith(f"sent {sent} of 1000 jobs, then stopped: interrupted (Ctrl-C)")
    assert stopped.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back
