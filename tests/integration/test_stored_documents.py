"""Stored documents read through one schema (chalicelib/model/schema.py): what a hostile or broken one used to do
to its reader, and the one line it gives now.

A job writes its run's failure records and busy leases (tests/integration/test_task_role_enforced.py shows the
task role may); only the user and the monitor write under monitors/ (the run summary), but a bucket is shared.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import pytest

from chalicelib import aws as clients
from chalicelib.model.names import failure_key, summary_key
from chalicelib.monitor import service
from chalicelib.runfiles import failures, leases

BUCKET = "documents-bucket"
RECORD = failures.FailureRecord(job_id="J1", attempts=1, reason="exit code 1 after 0.01 s", exit_code=1,
                                last_lines=("boom",), message_body='{"group": {}}', time=1_700_000_000.0,
                                instance_id="i-0123456789abcdef0")


@pytest.fixture
def s3(aws):
    client = clients.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.mark.parametrize("body,reason", [
    # `cli.py failed` shows each record's time as a date: Python cannot for these, and the command died
    (RECORD.to_json().replace("1700000000.0", "1e300"),
     "time: expected a number from 0 to 253,402,300,799, got 1e+300"),
    (RECORD.to_json().replace("1700000000.0", "1e999"),
     "time: expected a number JSON readers can hold, got 1e999 (beyond a 64-bit float: it would be read as "
     "Infinity)"),
    # a reason of 900 kB stayed within the record's byte bound and was printed whole by `cli.py failed`
    (dataclasses.replace(RECORD, reason="x" * 900_000).to_json(),
     "reason: expected a string of at most 2,000 characters, got 900,000 characters"),
    # 20,000 one-character lines instead of the 20 a worker keeps
    (dataclasses.replace(RECORD, last_lines=("x",) * 20_000).to_json(),
     "last_lines: expected a list of at most 20 items, got 20,000 items"),
    # the job id given twice: Python's reader kept the second, unlike others
    (RECORD.to_json().replace('"job_id": "J1"', '"job_id": "J1", "job_id": "J1"'),
     "job_id: expected each key once in an object, got this key twice (only the last value would be kept)"),
])
def test_a_job_written_failure_record_out_of_bounds_is_skipped_with_one_line(s3, caplog, body, reason):
    s3.put_object(Bucket=BUCKET, Key=failure_key("App", "J1"), Body=body.encode())
    with caplog.at_level(logging.WARNING):
        assert failures.list_records(s3, BUCKET, "App") == []
    assert caplog.messages == [f"skipping unreadable failure record s3://{BUCKET}/runs/App/failures/J1.json: {reason}"]


def test_only_lease_keys_a_worker_puts_count_as_busy_workers(s3):
    """INSTANCE/WORKER is a lease; a key of another shape (a job may put any key under its leases prefix) was
    counted as a busy worker of the instance its first part names, keeping that machine from being released."""
    for key in ("i-0abc/w1", "i-0abc", "i-0abc/w2/extra", "i-0abc/", "not-an-instance/w1", f"i-0abc/{'w' * 301}"):
        s3.put_object(Bucket=BUCKET, Key=leases.prefix("App") + key, Body=b"J1")
    assert leases.busy_jobs_by_instance(s3, BUCKET, "App", datetime.now(UTC)) == {"i-0abc": 1}


@pytest.mark.parametrize("body,reason", [
    (b"{not json", "invalid JSON at line 1 column 2"),
    (b'{"app_name": "App"}', "stop_reason: missing, expected a string of at most 8,192 characters"),
    (b"[]", "expected a JSON object, got a list"),
])
def test_status_of_a_finished_run_with_an_unreadable_summary_says_why_in_one_line(s3, body, reason):
    """The status API and `cli.py status` raised (json.loads) on a summary that is not one, or passed on what the
    status table then failed on."""
    s3.put_object(Bucket=BUCKET, Key=summary_key("App"), Body=body)
    assert service.find_status("App", [BUCKET], clients.Clients()) == {
        "app_name": "App", "state": "unreadable",
        "reason": f"not a run summary: s3://{BUCKET}/monitors/finished/App_summary.json: {reason}"}
