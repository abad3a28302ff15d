"""Failure records as text: what a worker writes, and what a reader refuses."""

import dataclasses
import json

import pytest

from chalicelib.runfiles.failures import MAX_RECORD_BYTES, FailureRecord

RECORD = FailureRecord(job_id="P1", attempts=3, reason="exit code 3 after 0.12 s", exit_code=3,
                       last_lines=("reading", "failing on purpose"), message_body='{"group": {"plate": "P1"}}',
                       time=1_700_000_000.5, instance_id="i-0123456789abcdef0")


def test_a_record_round_trips_through_json():
    assert FailureRecord.from_json(RECORD.to_json()) == RECORD
    assert FailureRecord.from_json(RECORD.to_json().encode()) == RECORD
    assert json.loads(RECORD.to_json())["last_lines"] == ["reading", "failing on purpose"]


def test_extra_keys_are_ignored_and_nulls_allowed_where_they_mean_something():
    document = {**json.loads(RECORD.to_json()), "exit_code": None, "instance_id": None, "written_by": "a later version"}
    record = FailureRecord.from_json(json.dumps(document))
    assert (record.exit_code, record.instance_id, record.reason) == (None, None, RECORD.reason)


def test_a_record_written_before_the_memory_figures_reads_without_them_and_a_new_one_keeps_them():
    old = {key: value for key, value in json.loads(RECORD.to_json()).items()
           if key not in ("peak_memory_mib", "cpu_seconds", "memory_limit_mib", "out_of_memory")}
    record = FailureRecord.from_json(json.dumps(old))
    assert record == RECORD and (record.peak_memory_mib, record.out_of_memory) == (None, False)
    oom = dataclasses.replace(RECORD, reason="out of memory: peak 180 MiB, limit 192 MiB (MEMORY); exit code -9 after "
                              "2.00 s", exit_code=-9, peak_memory_mib=180.4, cpu_seconds=1.5, memory_limit_mib=192.0,
                              out_of_memory=True)
    assert FailureRecord.from_json(oom.to_json()) == oom
    assert {key: oom.public()[key] for key in ("peak_memory_mib", "memory_limit_mib", "out_of_memory")} == {
        "peak_memory_mib": 180.4, "memory_limit_mib": 192.0, "out_of_memory": True}


def changed(**values) -> str:
    return json.dumps({**json.loads(RECORD.to_json()), **values})


@pytest.mark.parametrize("text,message", [
    ("not json", "failure record: invalid JSON at line 1 column 1"),
    (b"\xff\xfe", "failure record: not UTF-8 text"),
    ("[1, 2]", "failure record: expected a JSON object, got a list"),
    (json.dumps({"job_id": "P1"}), "failure record: attempts: missing, expected an integer of at least 1"),
    (changed(job_id=""), "failure record: job_id: expected a string of 1 to 200 characters, got 0 characters"),
    (changed(attempts=True), "failure record: attempts: expected an integer of at least 1, got true"),
    (changed(attempts=0), "failure record: attempts: expected an integer of at least 1, got 0"),
    (changed(exit_code="3"), "failure record: exit_code: expected an integer from -255 to 255 or null, got a string"),
    (changed(exit_code=2**40), "failure record: exit_code: expected an integer from -255 to 255 or null, got "
                               "1099511627776"),
    (changed(last_lines=["ok", 7]), "failure record: last_lines[1]: expected a string of at most 1,000 characters, "
                                    "got 7"),
    (changed(last_lines="one line"), "failure record: last_lines: expected a list of at most 20 items, got a string"),
    (changed(last_lines=["x"] * 21), "failure record: last_lines: expected a list of at most 20 items, got 21 items"),
    (changed(last_lines=["x" * 1001]), "failure record: last_lines[0]: expected a string of at most 1,000 "
                                       "characters, got 1,001 characters"),
    (changed(message_body={"group": {}}), "failure record: message_body: expected a string of at most 262,144 "
                                          "characters, got an object"),
    (changed(time=-1), "failure record: time: expected a number from 0 to 253,402,300,799, got -1"),
    (changed(instance_id=5), "failure record: instance_id: expected a string of at most 64 characters or null, got 5"),
    (changed(peak_memory_mib="512"), "failure record: peak_memory_mib: expected a number of at least 0 or null, got "
                                     "a string"),
    (changed(cpu_seconds=-1), "failure record: cpu_seconds: expected a number of at least 0 or null, got -1"),
    (changed(out_of_memory=1), "failure record: out_of_memory: expected true or false, got 1"),
    (changed(reason="r" * 2001), "failure record: reason: expected a string of at most 2,000 characters, got 2,001 "
                                 "characters"),
    (changed(time=float("nan")), "failure record: time: expected a number JSON allows, got NaN (JSON has no NaN or "
                                 "Infinity)"),
    ('{"job_id": "P1", "job_id": "P2"}', "failure record: job_id: expected each key once in an object, got this key "
                                         "twice (only the last value would be kept)"),
    (" " * (MAX_RECORD_BYTES + 1), f"failure record: expected at most {MAX_RECORD_BYTES:,} bytes, got "
                                   f"{MAX_RECORD_BYTES + 1:,}"),
])
def test_bad_records_raise_value_error(text, message):
    with pytest.raises(ValueError) as caught:
        FailureRecord.from_json(text)
    assert str(caught.value) == message


def test_the_largest_record_a_worker_writes_reads_back():
    """Every field at its bound, in the characters JSON escapes longest (a message body holds only those SQS takes,
    and is at most 262,144 bytes): still under MAX_RECORD_BYTES, and read."""
    largest = dataclasses.replace(RECORD, job_id="j" * 200, reason="\U0001F600" * 2000,
                                  last_lines=("\U0001F600" * 1000,) * 20, message_body="\u00e9" * 131_072,
                                  instance_id="i" * 64)
    assert len(largest.to_json().encode()) <= MAX_RECORD_BYTES
    assert FailureRecord.from_json(largest.to_json()) == largest
