"""Failure records as text: what a worker writes, and what a reader refuses."""

import dataclasses
import json

import pytest

from chalicelib.runfiles.failures import FailureRecord

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
    ("not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    (json.dumps({"job_id": "P1"}), "missing key 'attempts'"),
    (changed(job_id=""), "job_id: unexpected value"),
    (changed(attempts=True), "attempts: unexpected value true"),
    (changed(attempts=0), "attempts: unexpected value 0"),
    (changed(exit_code="3"), "exit_code: unexpected value \"3\""),
    (changed(last_lines=["ok", 7]), "last_lines: unexpected value"),
    (changed(last_lines="one line"), "last_lines: unexpected value"),
    (changed(message_body={"group": {}}), "message_body: unexpected value"),
    (changed(time=-1), "time: unexpected value -1"),
    (changed(instance_id=5), "instance_id: unexpected value 5"),
    (changed(peak_memory_mib="512"), "peak_memory_mib: unexpected value \"512\""),
    (changed(cpu_seconds=-1), "cpu_seconds: unexpected value -1"),
    (changed(out_of_memory=1), "out_of_memory: unexpected value 1"),
])
def test_bad_records_raise_value_error(text, message):
    with pytest.raises(ValueError) as caught:
        FailureRecord.from_json(text)
    assert str(caught.value).startswith(message)
