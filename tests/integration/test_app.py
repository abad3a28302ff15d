"""The Chalice app's handlers, in-process with Chalice's own test client, against moto.

moto never evaluates alarms nor publishes their actions, so the SNS event is a
real recorded CloudWatch-alarm-via-SNS payload from tests/events/.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import botocore.exceptions

from chalicelib import aws as clients
from tests.integration.world import JOBS, NOTHING_LEFT, drain, fail_every_job, the_run, what_is_left
from tests.worker_world import queue_counts

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"


def alarm_event() -> dict:
    return json.loads((EVENTS / "sns_alarm_queue_empty.json").read_text())


def test_an_alarm_reconciles_its_run_and_a_duplicate_is_harmless(started, client):
    drain(started)
    for _ in range(2):  # the first empty look only counts; the duplicate delivery starts teardown
        client.lambda_.invoke("on_alarm", alarm_event())
    assert the_run(started).state.tearing_down
    for _ in range(4):
        client.lambda_.invoke("on_alarm", alarm_event())
    assert what_is_left(started) == NOTHING_LEFT


def test_an_alarm_of_an_unknown_queue_changes_nothing(started, client):
    event = alarm_event()
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["Trigger"]["Dimensions"][0]["value"] = "SomebodyElsesQueue"
    message["AlarmName"] = "ApproximateNumberOfMessagesVisibleisZero_Other"
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    before = the_run(started)
    client.lambda_.invoke("on_alarm", event)
    assert the_run(started) == before


def test_a_message_that_is_not_an_alarm_is_ignored(started, client):
    response = client.lambda_.invoke("on_alarm", client.events.generate_sns_event(message="hello", subject="test"))
    assert response.payload is None
    assert the_run(started).state.known_instances == {}


def test_the_schedule_reconciles_every_run(started, client):
    drain(started)
    for _ in range(6):
        client.lambda_.invoke("every_period", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert what_is_left(started) == NOTHING_LEFT


def test_a_run_with_auto_monitor_off_is_left_to_its_user_and_its_status_still_served(started, victim, client):
    """The victim run has AUTO_MONITOR true; this one is set false in its record, as start-cluster writes it."""
    run = the_run(started)
    record = dataclasses.replace(run.record, AUTO_MONITOR=False)
    clients.client("s3").put_object(Bucket=run.bucket, Key=run.key, Body=record.to_json().encode())
    drain(started)
    drain(victim)
    for _ in range(6):
        client.lambda_.invoke("every_period", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
        client.lambda_.invoke("on_alarm", alarm_event())

    assert the_run(started).state == run.state  # not even its bookkeeping was touched
    assert what_is_left(started)["fleets"] != []
    assert the_run(victim) is None  # the schedule still tears the other run down
    assert client.http.get("/runs/TestApp").json_body["state"] == "running"


def test_status_routes(started, client):
    drain(started, count=2)
    listed = client.http.get("/runs")
    assert listed.status_code == 200
    runs = listed.json_body["runs"]
    assert [run["app_name"] for run in runs] == ["TestApp"]
    one = client.http.get("/runs/TestApp")
    assert one.status_code == 200
    assert one.json_body["jobs"] == {"submitted": JOBS, "waiting": JOBS - 2, "running": 0, "done": 2, "failed": 0}
    assert one.json_body["fleet"]["target"] == 2 and len(one.json_body["machines"]) == 2
    assert one.json_body["resources"]["queue_url"].endswith("/TestAppQueue")


def test_unknown_run_is_a_json_404(aws, client):
    clients.client("s3").create_bucket(Bucket="test-bucket")
    response = client.http.get("/runs/Nobody")
    assert response.status_code == 404
    assert response.json_body["Code"] == "NotFoundError"
    assert "no run named 'Nobody'" in response.json_body["Message"]


def test_a_ds_image_runs_failed_jobs_are_its_own_messages_in_the_shared_dead_letter_queue(started, ds_image_run,
                                                                                         client):
    """DS's worker writes no failure record, so GET /runs/{app}/failed lists the run's dead-letter messages (those
    SQS moved from its queue): not the other run's, though TestApp's P00000 and P00001 have the very same bodies."""
    fail_every_job(ds_image_run)
    fail_every_job(started)
    sqs = clients.client("sqs")
    dead_letter = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    assert queue_counts(sqs, dead_letter) == (2 + JOBS, 0)

    response = client.http.get("/runs/DsImage/failed")

    assert response.status_code == 200
    assert (the_run(ds_image_run).record.DS_IMAGE_MODE, the_run(started).record.DS_IMAGE_MODE) == (True, False)
    failed = response.json_body["failed"]
    assert [(job["job_id"], job["exit_code"], job["last_lines"]) for job in failed] == [
        ("P00000", None, []), ("P00001", None, [])]
    assert all(job["reason"].startswith("in the dead-letter queue") and job["attempts"] >= 3 for job in failed)
    assert queue_counts(sqs, dead_letter) == (2 + JOBS, 0), "the look hid no message from other readers"
    # TestApp runs this project's worker: its failure records (none: no worker wrote one) and its own dead-lettered
    # jobs without one, all 12 (the ones a killed worker leaves), never DsImage's though two have the same bodies
    own = client.http.get("/runs/TestApp/failed").json_body["failed"]
    assert sorted(job["job_id"] for job in own) == [f"P{index:05d}" for index in range(JOBS)]
    assert all(job["reason"].startswith("in the dead-letter queue with no failure record") for job in own)
    missing = client.http.get("/runs/Nobody/failed")
    assert missing.status_code == 404 and "no run named 'Nobody'" in missing.json_body["Message"]
    assert response.json_body["complete"] is True


def test_a_dead_letter_queue_too_long_to_read_in_the_apis_time_is_listed_as_far_as_read(started, ds_image_run,
                                                                                         client, monkeypatch):
    """A lab's shared dead-letter queue can hold more than the API's 30 s function can read: it answers with what
    it read in its time, says so, and hides nothing from the other readers."""
    from chalicelib.monitor import service

    fail_every_job(ds_image_run)
    monkeypatch.setattr(service, "API_SWEEP_SECONDS", 0)

    body = client.http.get("/runs/DsImage/failed").json_body

    assert (body["failed"], body["complete"]) == ([], False)
    assert "cli.py failed` reads all of it" in body["note"]
    sqs = clients.client("sqs")
    assert queue_counts(sqs, sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]) == (2, 0)


def emf_documents(printed: str) -> list[dict]:
    """The CloudWatch embedded-metric documents powertools printed (one JSON line each), as Lambda logs them."""
    lines = (json.loads(line) for line in printed.splitlines() if line.startswith("{"))
    return [line for line in lines if "_aws" in line]


def run_figures(printed: str) -> dict:
    """Per run: the metrics of its one document this tick, each a list of values as EMF writes them."""
    found: dict = {}
    for document in emf_documents(printed):
        if "run" in document:
            names = [metric["Name"] for block in document["_aws"]["CloudWatchMetrics"] for metric in block["Metrics"]]
            assert document["run"] not in found, f"two documents for run {document['run']}"
            found[document["run"]] = {name: document[name] for name in names}
    return found


def test_a_run_whose_reconcile_fails_counts_a_reconcile_error_and_the_others_count_none(started, victim, client,
                                                                                         capsys):
    fleet = the_run(started).record.MONITOR_FLEET_ID

    def refuse_the_fleet(params, **_):  # AWS refuses the monitor one run's fleet: that run's reconcile raises
        if params.get("FleetIds") == [fleet]:
            raise botocore.exceptions.ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
                                                  "DescribeFleets")

    session = clients.session("us-east-1", None)
    session.events.register("provide-client-params.ec2.DescribeFleets", refuse_the_fleet)
    capsys.readouterr()
    try:
        client.lambda_.invoke("every_period", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    finally:
        session.events.unregister("provide-client-params.ec2.DescribeFleets", refuse_the_fleet)
    figures = run_figures(capsys.readouterr().out)

    assert figures["TestApp"] == {"ReconcileErrors": [1.0]}
    assert figures["Victim"]["ReconcileErrors"] == [0.0] and figures["Victim"]["JobsWaiting"] == [3.0]

    client.lambda_.invoke("every_period", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert run_figures(capsys.readouterr().out)["TestApp"]["ReconcileErrors"] == [0.0]  # the next good tick says so


def tick_figures(printed: str) -> dict:
    """The tick's own document (no run dimension): its metrics."""
    [document] = [document for document in emf_documents(printed) if "run" not in document]
    names = [metric["Name"] for block in document["_aws"]["CloudWatchMetrics"] for metric in block["Metrics"]]
    return {name: document[name] for name in names}


def test_a_run_whose_reconcile_keeps_failing_backs_off_and_never_holds_back_the_others(started, victim, client,
                                                                                         capsys):
    fleet = the_run(started).record.MONITOR_FLEET_ID

    def refuse_the_fleet(params, **_):  # AWS keeps refusing the monitor one run's fleet
        if params.get("FleetIds") == [fleet]:
            raise botocore.exceptions.ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
                                                  "DescribeFleets")

    session = clients.session("us-east-1", None)
    session.events.register("provide-client-params.ec2.DescribeFleets", refuse_the_fleet)
    tried, ticks = [], []
    capsys.readouterr()
    try:
        for _ in range(5):
            client.lambda_.invoke("every_period", client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
            printed = capsys.readouterr().out
            figures = run_figures(printed)
            assert figures["Victim"]["ReconcileErrors"] == [0.0]  # reconciled on every tick
            tried.append("TestApp" in figures)
            ticks.append(tick_figures(printed))
    finally:
        session.events.unregister("provide-client-params.ec2.DescribeFleets", refuse_the_fleet)

    assert tried == [True, True, False, True, False]  # after its k-th failure it sits out 2**(k-1) - 1 ticks
    assert [tick["ReconcileErrors"] for tick in ticks] == [[1.0], [1.0], [0.0], [1.0], [0.0]]
    assert [tick["RunsReconciled"] for tick in ticks] == [[2.0], [2.0], [1.0], [2.0], [1.0]]
    assert all(tick["TickSeconds"][0] > 0 for tick in ticks)
