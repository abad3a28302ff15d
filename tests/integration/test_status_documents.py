"""The status API in constant calls (issue 29 item 3): each tick writes a run's status document beside its state,
and the scheduled tick an index of a bucket's documents; GET /runs reads the index (and only the documents it does
not hold as listed) and GET /runs/{app} a document, never the runs' live resources; teardown removes it with the
rest.

Every AWS call is counted at botocore's before-call event, on every session our code makes (aws.sessions_from),
as bench/bench_monitor.py counts them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from click.testing import CliRunner

from chalicelib import aws
from chalicelib.model.names import STATUS_INDEX_KEY
from chalicelib.monitor import service, status_doc, status_index
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from tests.hooked import hooked_sessions
from tests.integration.world import NOTHING_LEFT, drain, the_run, what_is_left

BUCKET = "test-bucket"
# What differs between two looks at an unchanged run a moment apart (status_doc.CLOCK_FIELDS), and the document's
# own time
MOVES_WITH_THE_CLOCK = (*status_doc.CLOCK_FIELDS, "as_of")


@contextmanager
def counted() -> Iterator[Counter[tuple[str, str]]]:
    """Every AWS call made while open: (service, operation) -> count; S3 PutObject also by key."""
    calls: Counter[tuple[str, str]] = Counter()

    def count(model, params, **_: object) -> None:
        calls[(model.service_model.service_name, model.name)] += 1

    def put(params, **_: object) -> None:
        calls[("s3.PutObject", params["Key"])] += 1

    with hooked_sessions(("before-call", count), ("before-parameter-build.s3.PutObject", put)):
        yield calls


def tick(client) -> None:
    client.lambda_.invoke("every_period", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))


def steady(status: dict) -> dict:
    return {key: value for key, value in status.items() if key not in MOVES_WITH_THE_CLOCK}


def test_get_runs_reads_one_listing_and_one_index_and_never_the_runs_resources(started, victim, legacy_run, client):
    tick(client)
    with counted() as calls:
        listed = client.http.get("/runs").json_body
    assert sorted(run["app_name"] for run in listed["runs"]) == ["Legacy", "TestApp", "Victim"]
    assert {run["state"] for run in listed["runs"]} == {"running"}
    assert all(isinstance(run["as_of"], int) for run in listed["runs"])
    # one listing of monitors/ and the bucket's index, whatever the number of runs: nothing of SQS, EC2, ECS,
    # CloudWatch or Logs
    assert calls == Counter({("s3", "ListObjectsV2"): 1, ("s3", "GetObject"): 1}), calls
    # what each run's own document says, as a read of it would
    assert listed["runs"] == [status_doc.read(aws.client("s3"), BUCKET, app) for app in ("Legacy", "TestApp", "Victim")]


def test_without_an_index_get_runs_reads_each_runs_document_and_says_the_same(started, victim, legacy_run, client):
    tick(client)
    indexed = client.http.get("/runs").json_body
    aws.client("s3").delete_object(Bucket=BUCKET, Key=STATUS_INDEX_KEY)
    with counted() as calls:
        read = client.http.get("/runs").json_body
    assert read == indexed
    assert calls == Counter({("s3", "ListObjectsV2"): 1, ("s3", "GetObject"): 4}), calls  # the index, 3 documents


def test_a_document_written_since_the_index_is_read_from_the_document(started, victim, client):
    """The alarm's function, or `cli.py monitor`, writes a run's document between two scheduled ticks: GET /runs
    must show that document, not the index's older copy (the listing's ETag tells them apart)."""
    from operations import monitor_loop

    tick(client)
    drain(started, count=2)
    checks = iter([the_run(started), None])  # another writer: one check of TestApp, then the loop ends
    monitor_loop.watch(lambda: next(checks), 0, lambda result: None, sleep=lambda seconds: None)
    with counted() as calls:
        listed = {run["app_name"]: run for run in client.http.get("/runs").json_body["runs"]}
    assert listed["TestApp"]["jobs"]["done"] == 2
    assert listed["Victim"] == status_doc.read(aws.client("s3"), BUCKET, "Victim")
    assert calls == Counter({("s3", "ListObjectsV2"): 1, ("s3", "GetObject"): 2}), calls  # the index, TestApp's
    tick(client)  # the schedule's next tick takes the new document into the index
    with counted() as calls:
        assert client.http.get("/runs").json_body["runs"][0]["jobs"]["done"] == 2
    assert calls[("s3", "GetObject")] == 1


def test_a_run_started_since_the_index_is_listed_and_a_torn_down_one_is_not(started, victim, client):
    tick(client)
    victim_record = aws.client("s3").get_object(Bucket=BUCKET, Key="monitors/VictimSpotFleetRequestId.json")
    aws.client("s3").delete_object(Bucket=BUCKET, Key="monitors/VictimSpotFleetRequestId.json")
    aws.client("s3").put_object(Bucket=BUCKET, Key="monitors/LaterSpotFleetRequestId.json",
                                Body=victim_record["Body"].read())
    listed = client.http.get("/runs").json_body
    assert [(run["app_name"], run["state"]) for run in listed["runs"]] == [("Later", "starting"),
                                                                             ("TestApp", "running")]


def test_an_unusable_index_is_ignored_and_every_run_still_listed(started, victim, client):
    tick(client)
    expected = client.http.get("/runs").json_body
    for body in (b"not json", json.dumps({"version": 99, "runs": {}}).encode(),
                 b" " * (status_index.MAX_BYTES + 1)):
        aws.client("s3").put_object(Bucket=BUCKET, Key=STATUS_INDEX_KEY, Body=body)
        assert client.http.get("/runs").json_body == expected


def test_a_steady_tick_writes_no_index_a_change_writes_it_once_and_a_new_container_reads_no_document(started,
                                                                                                     client):
    tick(client)
    tick(client)  # the runs' bookkeeping settles
    with counted() as calls:
        tick(client)
    assert calls[("s3.PutObject", STATUS_INDEX_KEY)] == 0
    drain(started, count=3)
    with counted() as calls:
        tick(client)
    assert calls[("s3.PutObject", STATUS_INDEX_KEY)] == 1
    # a new container (a cold start): the index as the last one left it, not every document, is read again
    status_index._known.clear()
    status_index._indexed.clear()
    with counted() as calls:
        assert status_index.refresh(aws.client("s3"), BUCKET) is False
    assert calls == Counter({("s3", "ListObjectsV2"): 1, ("s3", "GetObject"): 1}), calls


def test_get_run_after_a_tick_is_what_the_live_status_says(started, client):
    drain(started, count=2)
    tick(client)
    tick(client)  # the document is what a tick saw before acting: this one sees the first one's idle alarms
    with counted() as calls:
        served = client.http.get("/runs/TestApp").json_body
    assert calls == Counter({("s3", "GetObject"): 1}), calls
    live = service.find_status("TestApp", [BUCKET])
    assert steady(served) == steady(live)
    assert served["jobs"]["done"] == 2 and served["state"] == "running"


def test_a_steady_tick_writes_no_status_document_and_a_change_writes_it(started, client):
    tick(client)
    tick(client)  # the runs' bookkeeping settles
    with counted() as calls:
        tick(client)
    assert calls[("s3.PutObject", "monitors/TestApp_status.json")] == 0
    drain(started, count=3)
    with counted() as calls:
        tick(client)
    assert calls[("s3.PutObject", "monitors/TestApp_status.json")] == 1
    assert client.http.get("/runs/TestApp").json_body["jobs"]["done"] == 3


def test_a_run_the_monitor_has_not_looked_at_yet_is_listed_as_starting(started, client):
    listed = client.http.get("/runs").json_body
    assert [(run["app_name"], run["state"], run["reason"]) for run in listed["runs"]] == [
        ("TestApp", "starting", status_doc.STARTING)]
    # one run alone is looked at live until its first document: within the API's time
    assert client.http.get("/runs/TestApp").json_body["state"] == "running"


def test_teardown_leaves_no_status_document(started, client):
    tick(client)
    assert "monitors/TestApp_status.json" in what_is_left(started)["monitor_objects"]
    drain(started)
    for _ in range(6):
        tick(client)
    assert what_is_left(started) == NOTHING_LEFT
    assert client.http.get("/runs").json_body["runs"] == []
    assert client.http.get("/runs/TestApp").json_body["state"] == "finished"


def test_an_oversized_status_document_is_refused_unread_and_the_others_still_listed(started, victim, client):
    tick(client)
    aws.client("s3").put_object(Bucket=BUCKET, Key="monitors/Victim_status.json",
                                Body=b" " * (status_doc.MAX_BYTES + 1) + b"{}")
    listed = {run["app_name"]: run for run in client.http.get("/runs").json_body["runs"]}
    assert listed["TestApp"]["state"] == "running"
    assert listed["Victim"]["state"] == "unavailable" and "ObjectTooLarge" in listed["Victim"]["reason"]
    assert client.http.get("/runs/Victim").json_body["state"] == "running"  # looked at live instead


def test_cli_status_reads_the_document_and_live_looks_now(started, client):
    tick(client)
    drain(started, count=4)  # since the tick: only a live look sees it
    config = str(started.config_path)
    document = CliRunner().invoke(cli, ["status", "--config", config])
    live = CliRunner().invoke(cli, ["status", "--live", "--config", config])
    assert document.exit_code == 0 and live.exit_code == 0, document.output + live.output
    assert "0 done" in document.output and "as of" in document.output
    assert "4 done" in live.output and "as of" not in live.output
    as_json = json.loads(CliRunner().invoke(cli, ["status", "--live", "--json", "--config", config]).stdout)
    assert steady(as_json) == steady(service.find_status("TestApp", [BUCKET], aws.Clients(started.settings)))


def test_a_status_written_as_another_writer_finishes_the_teardown_is_removed(started):
    """A tick that looked before a teardown from the CLI removed the run's files writes its status after: the
    document must not outlive the run (it would shadow the run's summary in GET /runs/{app})."""
    run = the_run(started)
    looked = service.RunOutcome(run, result=reconcile(run, dry_run=True))
    s3 = aws.client("s3")
    s3.delete_object(Bucket=BUCKET, Key=run.key)  # the other writer's teardown, finished meanwhile
    status_doc.publish(looked)
    assert "monitors/TestApp_status.json" not in what_is_left(started)["monitor_objects"]


def test_a_run_watched_from_the_cli_has_its_status_document_too(started, client):
    """`cli.py monitor` (and local mode) reconcile through monitor_loop.watch, not the Lambda's tick: the run's
    status document is written all the same, so GET /runs shows it running rather than "starting"."""
    from operations import monitor_loop

    assert [run["state"] for run in client.http.get("/runs").json_body["runs"]] == ["starting"]
    checks = iter([the_run(started), None])  # one check, then the loop ends as when the record is gone
    monitor_loop.watch(lambda: next(checks), 0, lambda result: None, sleep=lambda seconds: None)
    listed = client.http.get("/runs").json_body["runs"]
    assert [(run["app_name"], run["state"]) for run in listed] == [("TestApp", "running")]
