"""One run can never stop the monitor for every run (issue 24, item 4): what a job can write is read only up to a
bound, and a tick's time is shared between the runs.

A job writes its run's failure records (runs/APP_NAME/failures/: tests/integration/test_task_role_enforced.py
shows the task role may). One of 40 MB once made a reconcile peak at 123 MB (read whole, then parsed): past
about 170 MB the Lambda's 512 MB is gone, the invocation dies, and the runs after it are never reconciled.
"""

from __future__ import annotations

import json
import logging
import tracemalloc

import chalice.test
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from chalicelib import aws as clients
from chalicelib.aws.s3 import ObjectTooLarge, read_object
from chalicelib.model.jobs import MAX_MESSAGE_BYTES
from chalicelib.model.names import failure_key
from chalicelib.monitor.budget import MARGIN_SECONDS
from chalicelib.runfiles import failures
from tests.integration.world import BUCKET, the_run

MiB = 2 ** 20
HUGE = 200 * MiB
# What a whole tick of two runs (and the API's answer) may allocate, whatever a record's size: far below the
# Lambda's 512 MB, and far below the record, so a record of any size costs no more.
TICK_MEMORY = 32 * MiB


def grow(bucket: str, key: str, size: int) -> None:
    """Make the stored object `size` bytes long, as a job's PutObject of that many bytes would, without this
    process ever holding them: moto keeps a body over 5 MB in a temporary file, written here 1 MiB at a time. The
    object then carries no checksum, as one put without (the job chooses) does."""
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
    chunk = b" " * MiB
    with stored.lock:
        stored._value_buffer.seek(0, 2)
        for _ in range((size - stored.contentsize) // MiB):
            stored._value_buffer.write(chunk)
        stored._value_buffer.write(b" " * ((size - stored.contentsize) % MiB))
        stored.contentsize = size
        stored.checksum_algorithm = stored.checksum_value = None


def a_record(job_id: str) -> failures.FailureRecord:
    return failures.FailureRecord(job_id=job_id, attempts=3, reason="exit code 1 after 0.10 s", exit_code=1,
                                  last_lines=("Traceback", "ValueError: bad plate"), message_body="{}", time=1.0,
                                  instance_id=None)


def schedule(client):
    return client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                           resources=[])


@pytest.fixture
def monitor_log(caplog):
    """The monitor's log lines, and those of what it calls."""
    caplog.set_level(logging.INFO)
    return caplog


def scheduled_tick(client, capsys) -> list[str]:
    """One scheduled tick; the runs it reconciled: each has its own metrics document, as CloudWatch receives them.
    Not the runs' states: the victim fixture has reconciled its run once already."""
    capsys.readouterr()
    client.lambda_.invoke("every_period", schedule(client))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    return sorted(document["run"] for document in documents if "run" in document)


def test_a_200_mb_failure_record_is_refused_unread_and_every_run_is_reconciled_in_the_same_tick(
        started, victim, client, monitor_log, capsys):
    s3 = clients.client("s3")
    # The job trips its own run's failure breaker (5 records: that may stay within its run), one record huge.
    for index in range(4):
        failures.put(s3, BUCKET, "TestApp", a_record(f"P{index:05d}"))
    huge = failure_key("TestApp", "P00004")
    s3.put_object(Bucket=BUCKET, Key=huge, Body=b'{"job_id": "P00004", "last_lines": ["')
    grow(BUCKET, huge, HUGE)
    assert s3.head_object(Bucket=BUCKET, Key=huge)["ContentLength"] == HUGE

    tracemalloc.start()
    try:
        ticked = scheduled_tick(client, capsys)
        answer = client.http.get("/runs/TestApp/failed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < TICK_MEMORY, f"a tick and the API's answer allocated {peak / MiB:.0f} MiB"
    assert ticked == ["TestApp", "Victim"], "the other run was reconciled in the same tick"
    assert the_run(started).state.stop_reason.startswith("circuit breaker: 5 job(s) failed every attempt")
    assert "all 4 failed job(s) (12 attempts) ended with: ValueError: bad plate" in the_run(started).state.stop_reason
    assert answer.status_code == 200
    assert [job["job_id"] for job in answer.json_body["failed"]] == ["P00000", "P00001", "P00002", "P00003"]
    refused = [record.getMessage() for record in monitor_log.records if huge in record.getMessage()]
    assert refused == [f"skipping unreadable failure record s3://{BUCKET}/{huge}: 209,715,200 bytes, over the "
                       f"{failures.MAX_RECORD_BYTES:,} bytes its reader takes: not read"] * 2  # the tick, the API


def test_a_bounded_read_asks_s3_for_one_byte_past_the_bound_and_refuses_a_larger_object(aws):
    s3 = clients.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="runs/TestApp/failures/big.json", Body=b"x" * 10_000)
    s3.put_object(Bucket=BUCKET, Key="runs/TestApp/failures/fits.json", Body=b"x" * 1_000)
    s3.put_object(Bucket=BUCKET, Key="runs/TestApp/failures/empty.json", Body=b"")
    sent = []
    s3.meta.events.register("after-call.s3.GetObject",
                            lambda parsed, **_: sent.append((parsed.get("ContentLength"), parsed.get("ContentRange"))))

    with pytest.raises(ObjectTooLarge) as refused:
        read_object(s3, BUCKET, "runs/TestApp/failures/big.json", max_bytes=1_000)

    assert (refused.value.size, str(refused.value)) == (10_000, "10,000 bytes, over the 1,000 bytes its reader "
                                                        "takes: not read")
    assert sent[0] == (1_001, "bytes 0-1000/10000"), "S3 sent no more than the bound and one byte"
    assert read_object(s3, BUCKET, "runs/TestApp/failures/fits.json", max_bytes=1_000) == b"x" * 1_000
    assert read_object(s3, BUCKET, "runs/TestApp/failures/empty.json", max_bytes=1_000) == b""
    assert read_object(s3, BUCKET, "runs/TestApp/failures/gone.json", max_bytes=1_000) is None


def test_the_largest_record_a_worker_writes_is_read(aws):
    """The bound refuses only what no worker writes: a message body of SQS's largest message and the last lines at
    their longest, every character the costliest to escape (a surrogate pair: 12 bytes)."""
    s3 = clients.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    widest = "\U0001F600"  # 4 bytes of UTF-8, 12 in JSON
    record = failures.FailureRecord(
        job_id="J" * 200, attempts=3, reason="input download failed: " + widest * 250, exit_code=None,
        last_lines=(widest * failures.LINE_CHARS,) * failures.LAST_LINES,
        message_body=widest * (MAX_MESSAGE_BYTES // 4), time=1.0, instance_id="i-0123456789abcdef0")
    failures.put(s3, BUCKET, "TestApp", record)
    size = s3.head_object(Bucket=BUCKET, Key=failure_key("TestApp", record.job_id))["ContentLength"]

    assert 0.95 * failures.MAX_RECORD_BYTES < size <= failures.MAX_RECORD_BYTES
    assert failures.list_records(s3, BUCKET, "TestApp") == [record]


class ScriptedContext:
    """A Lambda context whose remaining time is a script: one value per look, the last one kept."""

    aws_request_id = "scripted"

    def __init__(self, *remaining_ms: int):
        self._script = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self._script.pop(0) if len(self._script) > 1 else self._script[0]


def test_a_tick_short_of_time_reconciles_what_fits_and_the_next_tick_serves_the_others_first(
        started, victim, client, monkeypatch, monitor_log, capsys):
    # time for one reconcile, then less than the margin: each tick reaches exactly one run
    enough, short = int((MARGIN_SECONDS + 40) * 1000), int(MARGIN_SECONDS * 1000) - 1
    monkeypatch.setattr(chalice.test, "LambdaContext", lambda *_, **__: ScriptedContext(enough, short))

    def tick() -> tuple[list[str], list[list[str]]]:
        """The runs the tick reconciled and those its log says it did not reach (which run a new container takes
        first rotates with the minute)."""
        reconciled = scheduled_tick(client, capsys)
        lines = [record for record in monitor_log.records if record.getMessage().startswith("not reconciled")]
        monitor_log.clear()
        return reconciled, [line.runs for line in lines]

    reconciled, not_reached = tick()
    [first] = reconciled
    [second] = {"TestApp", "Victim"} - {first}
    assert not_reached == [[second]]

    assert tick() == ([second], [[first]]), "the run the last tick did not reach went first"
