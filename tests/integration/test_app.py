"""The Chalice app's handlers, in-process with Chalice's own test client, against moto.

moto never evaluates alarms nor publishes their actions, so the SNS event is a
real recorded CloudWatch-alarm-via-SNS payload from tests/events/.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from chalicelib import aws as clients
from tests.integration.world import JOBS, NOTHING_LEFT, drain, the_run, what_is_left

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
