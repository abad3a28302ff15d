"""One schema tool for every stored document (chalicelib/model/schema.py): each document round-trips, and each
kind of bad field gives its one line naming the document, the field's path and what was expected."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import pytest

from chalicelib.model import schema
from chalicelib.model.schema import SchemaError, bounds
from chalicelib.monitor import run_summary
from chalicelib.monitor.observation import MAX_STATE_BYTES, MonitorState
from chalicelib.monitor.runrecord import MAX_RECORD_BYTES, RunRecord
from chalicelib.runfiles import leases
from tests.unit.test_fleet_request import _record


@dataclass(frozen=True)
class Inner:
    name: str = field(metadata=bounds(max_length=3))


@dataclass(frozen=True)
class Example:
    count: int = field(metadata=bounds(minimum=1, maximum=9))
    names: tuple[str, ...] = field(metadata=bounds(max_items=2, item=bounds(max_length=3)))
    inner: Inner
    by_name: dict[str, float] = field(default_factory=dict, metadata=bounds(item=bounds(minimum=0)))
    code: str | None = field(default=None, metadata=bounds(pattern="[A-Z]{2}"))
    on: bool = field(default=False, metadata=bounds(accept=schema.words_as_bool))


GOOD = {"count": 3, "names": ["a", "bc"], "inner": {"name": "x"}}


def refusal(cls: type, document: object, name: str = "doc") -> str:
    with pytest.raises(SchemaError) as caught:
        schema.read(cls, json.dumps(document), name, 1_000_000)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    return str(caught.value)


def test_a_document_reads_into_its_dataclass_ignoring_unknown_keys_and_defaulting_missing_optional_ones():
    assert schema.read(Example, json.dumps({**GOOD, "later": 1}), "doc", 10_000) == Example(
        count=3, names=("a", "bc"), inner=Inner("x"))
    assert schema.read(Example, json.dumps({**GOOD, "code": "AB", "on": "True", "by_name": {"a": 1.5}}), "doc",
                       10_000) == Example(3, ("a", "bc"), Inner("x"), {"a": 1.5}, "AB", True)


@pytest.mark.parametrize("change,message", [
    ({"count": "3"}, "doc: count: expected an integer from 1 to 9, got a string"),
    ({"count": True}, "doc: count: expected an integer from 1 to 9, got true"),
    ({"count": 1.5}, "doc: count: expected an integer from 1 to 9, got 1.5"),
    ({"count": 10}, "doc: count: expected an integer from 1 to 9, got 10"),
    ({"names": ["a", "b", "c"]}, "doc: names: expected a list of at most 2 items, got 3 items"),
    ({"names": ["a", "long"]}, "doc: names[1]: expected a string of at most 3 characters, got 4 characters"),
    ({"names": "a"}, "doc: names: expected a list of at most 2 items, got a string"),
    ({"inner": {"name": "long"}}, "doc: inner.name: expected a string of at most 3 characters, got 4 characters"),
    ({"inner": {}}, "doc: inner.name: missing, expected a string of at most 3 characters"),
    ({"inner": []}, "doc: inner: expected a JSON object, got a list"),
    ({"by_name": {"a": -1}}, "doc: by_name.a: expected a number of at least 0, got -1"),
    ({"code": "abc"}, 'doc: code: expected a string matching [A-Z]{2} or null, got "abc"'),
    ({"code": 5}, "doc: code: expected a string matching [A-Z]{2} or null, got 5"),
    ({"on": "yes"}, "doc: on: expected true or false, got a string"),
])
def test_each_kind_of_bad_field_gives_one_line_naming_it(change, message):
    assert refusal(Example, {**GOOD, **change}) == message


def test_a_missing_required_field_and_a_document_of_the_wrong_shape_are_named():
    assert refusal(Example, {"names": [], "inner": {"name": ""}}) == "doc: count: missing, expected an integer " \
                                                                     "from 1 to 9"
    assert refusal(Example, [1]) == "doc: expected a JSON object, got a list"


@pytest.mark.parametrize("data,message", [
    (b"{" + b" " * 10_000 + b"}", "doc: expected at most 10,000 bytes, got 10,002"),
    (b"\xff", "doc: not UTF-8 text"),
    (b'{"count": ', "doc: invalid JSON at line 1 column 11"),
    (b'{"count": NaN}', "doc: count: expected a number JSON allows, got NaN (JSON has no NaN or Infinity)"),
    (b"[" * 100_000 + b"]" * 100_000, "doc: expected at most 10,000 bytes, got 200,000"),
])
def test_raw_bytes_are_bounded_before_they_are_parsed_strictly(data, message):
    with pytest.raises(SchemaError) as caught:
        schema.read(Example, data, "doc", 10_000)
    assert str(caught.value) == message


def test_deep_nesting_within_the_bound_is_one_line_too():
    with pytest.raises(SchemaError) as caught:
        schema.read(Example, b"[" * 50_000 + b"]" * 50_000, "doc", 200_000)
    assert str(caught.value) == "doc: JSON nested too deeply"


# ---------------------------------------------------------------- the run record


def test_the_run_record_round_trips_and_reads_ds_spellings_declared_in_its_schema():
    record = _record(MACHINE_TYPE=("m5.large", "c5.xlarge"), MAX_RUN_HOURS=2.5)
    assert RunRecord.from_json(record.to_json()) == record
    document = {**json.loads(record.to_json()), "MONITOR_START_TIME": "1700000000000", "CHEAPEST": "True",
                "AUTO_MONITOR": "false", "CLEAN_DASHBOARD": "False", "WRITTEN_BY": "a later version"}
    assert RunRecord.from_dict(document) == dataclasses.replace(record, CHEAPEST=True, AUTO_MONITOR=False,
                                                                CLEAN_DASHBOARD=False)


@pytest.mark.parametrize("change,message", [
    ({"MACHINE_TYPE": ["m5.large", "m5.xlarge", "m" * 65]},
     "MACHINE_TYPE[2]: expected a string of at most 64 characters, got 65 characters"),
    ({"MACHINE_TYPE": ["m5.large"] * 1001}, "MACHINE_TYPE: expected a list of at most 1,000 items, got 1,001 items"),
    ({"MONITOR_QUEUE_NAME": "q" * 81}, "MONITOR_QUEUE_NAME: expected a string of at most 80 characters, got 81 "
                                       "characters"),
    ({"CLUSTER_MACHINES": -1}, "CLUSTER_MACHINES: expected an integer of at least 0, got -1"),
    ({"MONITOR_START_TIME": "soon"}, "MONITOR_START_TIME: expected an integer from 0 to 253,402,300,799,000, got a "
                                     "string"),
    ({"DASHBOARD_NAME": 3}, "DASHBOARD_NAME: expected a string of at most 255 characters or null, got 3"),
    ({"CHEAPEST": "maybe"}, "CHEAPEST: expected true or false, got a string"),
])
def test_a_bad_run_record_field_gives_one_line(change, message):
    assert refusal(RunRecord, {**json.loads(_record().to_json()), **change}, "run record") == f"run record: {message}"


def test_a_run_record_over_its_byte_bound_is_refused_unparsed():
    with pytest.raises(SchemaError) as caught:
        RunRecord.from_json(b" " * (MAX_RECORD_BYTES + 1))
    assert str(caught.value) == f"run record: expected at most {MAX_RECORD_BYTES:,} bytes, got {MAX_RECORD_BYTES + 1:,}"


# ---------------------------------------------------------------- the monitor state


def test_the_monitor_state_round_trips_and_an_older_one_reads_with_defaults():
    state = MonitorState(empty_observations=2, tearing_down=True, stop_reason="drained",
                         known_instances={"i-0abc": 1.5}, retired_machine_seconds=10.0,
                         export_tasks={"/aws/A": "task-1"}, jobs_started=True, series=[[1.0, 1, 2, 3]],
                         jobs_done_seen=4)
    assert MonitorState.from_json(state.to_json()) == state
    assert MonitorState.from_json('{"empty_observations": 1}') == MonitorState(empty_observations=1)
    assert MonitorState.from_json(None) == MonitorState() == MonitorState.from_json(b"")


@pytest.mark.parametrize("document,message", [
    ({"tearing_down": "yes"}, "tearing_down: expected true or false, got a string"),
    ({"known_instances": {"i-1": "x"}}, "known_instances.i-1: expected a number of at least 0, got a string"),
    ({"export_tasks": {"g": "t" * 513}}, "export_tasks.g: expected a string of at most 512 characters, got 513 "
                                         "characters"),
    ({"series": [[0, 1, 2, 3]] * 1001}, "series: expected a list of at most 1,000 items, got 1,001 items"),
    ({"jobs_done_seen": -1}, "jobs_done_seen: expected an integer of at least 0, got -1"),
])
def test_a_bad_monitor_state_field_gives_one_line(document, message):
    assert refusal(MonitorState, document, "monitor state") == f"monitor state: {message}"


def test_a_monitor_state_over_its_byte_bound_is_refused_unparsed():
    with pytest.raises(SchemaError, match=f"^monitor state: expected at most {MAX_STATE_BYTES:,} bytes"):
        MonitorState.from_json(b" " * (MAX_STATE_BYTES + 1))


# ---------------------------------------------------------------- the lease's key


def test_a_lease_key_reads_as_instance_and_worker():
    key = leases.key("App", "i-0123456789abcdef0", "host-1")
    assert leases.name_of("App", key) == leases.LeaseName("i-0123456789abcdef0", "host-1")
    assert leases.name_of("App", leases.key("App", None, "w")).instance_id == leases.UNKNOWN_INSTANCE


@pytest.mark.parametrize("rest,message", [
    ("i-0abc", "worker_id: expected a string of 1 to 300 characters matching [^/]+, got 0 characters"),
    ("i-0abc/w/x", 'worker_id: expected a string of 1 to 300 characters matching [^/]+, got "w/x"'),
    ("db/w", 'instance_id: expected a string matching i-[0-9a-f]{1,17}|unknown, got "db"'),
])
def test_a_key_no_worker_puts_is_refused_in_one_line(rest, message):
    with pytest.raises(SchemaError) as caught:
        leases.name_of("App", leases.prefix("App") + rest)
    assert str(caught.value) == f"lease runs/App/leases/{rest}: {message}"


# ---------------------------------------------------------------- the run summary

SUMMARY = {"app_name": "App", "stop_reason": "drained", "started_at": 1_700_000_000.0, "ended_at": 1_700_003_600.5,
           "jobs_submitted": 10, "jobs_done": 9, "jobs_failed": 1, "jobs_left": 0, "machine_hours": 2.5,
           "cost_ceiling_usd": 0.25, "log_exports": {"App": "done"}, "exported_logs": "s3://b/exportedlogs/App",
           "series": [[1_700_000_000.0, 1, 10, 0]]}


def test_the_summary_round_trips_and_an_older_one_keeps_only_its_own_keys():
    assert run_summary.parse(json.dumps(SUMMARY)) == SUMMARY
    assert list(run_summary.parse(json.dumps(SUMMARY))) == list(SUMMARY)  # the order status shows them in
    older = {key: SUMMARY[key] for key in list(SUMMARY)[:10]}  # before log exports and the series
    assert run_summary.parse(json.dumps({**older, "later_key": 1})) == older


@pytest.mark.parametrize("change,message", [
    ({"jobs_done": "9"}, "jobs_done: expected an integer of at least 0, got a string"),
    ({"ended_at": 1e20}, "ended_at: expected a number from 0 to 253,402,300,799, got 1e+20"),
    ({"log_exports": {"App": 1}}, "log_exports.App: expected a string of at most 512 characters, got 1"),
    ({"series": [[1, 2]]}, "series[0]: expected a list of 4 items, got 2 items"),
])
def test_a_bad_summary_field_gives_one_line(change, message):
    with pytest.raises(SchemaError) as caught:
        run_summary.parse(json.dumps({**SUMMARY, **change}), "run summary s3://b/monitors/finished/App_summary.json")
    assert str(caught.value) == f"run summary s3://b/monitors/finished/App_summary.json: {message}"


def test_a_key_a_job_wrote_is_named_on_one_line_that_a_terminal_shows_as_it_is():
    document = '{"job_id": "J1", "x\\n\\u001b[31m": 1, "x\\n\\u001b[31m": 2}'
    with pytest.raises(SchemaError) as caught:
        schema.read(Example, document, "doc", 1_000)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert str(caught.value).startswith("doc: x\\x0a\\x1b[31m: expected each key once")
