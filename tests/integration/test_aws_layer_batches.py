"""Writes that AWS's API reference bounds per call go in calls within the bound, whatever the plan asks at once:
each request as botocore sent it (its before-call event), and what moto holds afterwards."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.aws import Clients
from chalicelib.aws.s3 import list_objects
from chalicelib.model.names import record_key
from chalicelib.monitor import actions as act
from chalicelib.monitor import deadletters
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.deadletters import release, sweep, sweep_within
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import Run
from chalicelib.monitor.runrecord import RunRecord
from chalicelib.runfiles import leases

REGION, BUCKET, APP = "us-east-1", "run-bucket", "Batches"
WHY = {"reason": "a test"}


def a_run() -> Run:
    record = RunRecord(
        MONITOR_FLEET_ID="fleet-1", MONITOR_APP_NAME=APP, MONITOR_ECS_CLUSTER="default",
        MONITOR_QUEUE_NAME=f"{APP}Queue", MONITOR_BUCKET_NAME=BUCKET, MONITOR_LOG_GROUP_NAME=APP,
        MONITOR_START_TIME=1700000000000, CLEAN_DASHBOARD=True, REGION=REGION, QUEUE_URL="u",
        DEAD_LETTER_QUEUE_NAME="d", DEAD_LETTER_QUEUE_URL="du", SERVICE_NAME=f"{APP}Service",
        TASK_FAMILY=f"{APP}Task", TASK_DEFINITION_ARN="arn", PER_INSTANCE_LOG_GROUP=f"{APP}_perInstance",
        EXPORTED_LOGS_PREFIX=f"exportedlogs/{APP}/", TOPIC_ARN="t", ALARM_NAMES=(), INSTANCE_ALARM_PREFIX=f"{APP}_",
        DASHBOARD_NAME=None, ECS_CONFIG_KEY="k",
        MONITOR_FILE_KEY=record_key(APP), INSTANCE_NAME_TAG=f"{APP}Worker", CLUSTER_MACHINES=2, TASKS_PER_MACHINE=1,
        DOCKER_CORES=1, MACHINE_TYPE=("m5.large",), MACHINE_PRICE=0.1, CHEAPEST=False, AUTO_MONITOR=True,
        JOBS_AT_START=None)
    return Run(record=record, state=MonitorState(), bucket=BUCKET, key=record_key(APP))


def sent(client, operation: str, size) -> list[int]:
    """The size (by `size(params)`) of each `operation` request the client sends from now on."""
    sizes: list[int] = []
    client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_name}.{operation}",
                                lambda params, **_: sizes.append(size(params)))
    return sizes


@pytest.fixture
def clients(aws):
    return Clients(region=REGION)


def test_more_than_1000_machines_are_terminated_in_calls_of_at_most_1000(clients):
    """TerminateInstances takes "up to 1000 instance IDs" a call (EC2 API Reference): a teardown of more used to
    send them all in one request, over that bound (moto takes it; AWS's answer to an invalid request terminates
    none of them)."""
    image = clients.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = [item["InstanceId"] for item in clients.ec2.run_instances(
        ImageId=image, MinCount=1001, MaxCount=1001, InstanceType="t3.micro")["Instances"]]
    calls = sent(clients.ec2, "TerminateInstances", lambda params: len(params["InstanceIds"]))

    Applier(a_run(), clients).apply([act.TerminateInstances(instance_ids=tuple(ids), **WHY)])

    assert calls == [1000, 1]
    states = {item["InstanceId"]: item["State"]["Name"] for chunk in (ids[:1000], ids[1000:])  # 1,000 ids a call
              for reservation in clients.ec2.describe_instances(InstanceIds=chunk)["Reservations"]
              for item in reservation["Instances"]}
    assert set(states.values()) <= {"shutting-down", "terminated"} and len(states) == 1001


def test_more_than_1000_objects_are_deleted_in_calls_of_at_most_1000_the_record_last(clients):
    clients.s3.create_bucket(Bucket=BUCKET)
    for index in range(1001):
        clients.s3.put_object(Bucket=BUCKET, Key=leases.key(APP, f"i-{index:04x}", "w"), Body=b"")
    clients.s3.put_object(Bucket=BUCKET, Key=record_key(APP), Body=b"{}")
    calls = sent(clients.s3, "DeleteObjects", lambda params: [item["Key"] for item in params["Delete"]["Objects"]])

    Applier(a_run(), clients).apply([act.RemoveRunRecord(bucket=BUCKET, keys=(record_key(APP),), **WHY)])

    assert [len(keys) for keys in calls] == [1000, 3]  # 1,001 leases, the status document and the record
    assert calls[-1][-1] == record_key(APP)  # the run is still watched until everything else is gone
    assert list(list_objects(clients.s3, BUCKET, "")) == []


def test_more_than_100_alarms_are_deleted_in_calls_of_at_most_100(clients):
    names = tuple(f"{APP}_i-{index:04x}" for index in range(101))
    for name in names:
        clients.cloudwatch.put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                            Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                            ComparisonOperator="LessThanThreshold")
    calls = sent(clients.cloudwatch, "DeleteAlarms", lambda params: len(params["AlarmNames"]))

    Applier(a_run(), clients).apply([act.DeleteAlarms(names=names, **WHY)])

    assert calls == [100, 1]
    assert clients.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_more_than_10_swept_messages_are_released_in_batches_of_at_most_10(clients):
    url = clients.sqs.create_queue(QueueName="Dead")["QueueUrl"]
    for index in range(11):
        clients.sqs.send_message(QueueUrl=url, MessageBody=str(index))
    swept = sweep(clients.sqs, url)
    calls = sent(clients.sqs, "ChangeMessageVisibilityBatch", lambda params: len(params["Entries"]))

    release(clients.sqs, url, swept)

    assert len(swept) == 11 and calls == [10, 1]
    assert sorted(int(message["Body"]) for message in sweep(clients.sqs, url)) == list(range(11))


def test_a_sweep_ends_only_on_an_empty_long_poll_and_stops_at_its_time_limit(clients):
    """A short poll asks a sample of SQS's servers, so its empty answer does not prove the queue empty; a long poll
    asks them all (Amazon SQS Developer Guide, "Amazon SQS short and long polling"). And a caller with a deadline
    (the status API's 30 s function) gets what it read, told that it is not the whole queue."""
    url = clients.sqs.create_queue(QueueName="Dead")["QueueUrl"]
    for index in range(25):
        clients.sqs.send_message(QueueUrl=url, MessageBody=str(index))
    waits = sent(clients.sqs, "ReceiveMessage", lambda params: params.get("WaitTimeSeconds", 0))

    messages, complete = sweep_within(clients.sqs, url, None)

    assert (len(messages), complete) == (25, True)
    assert waits[-1] >= 1 and all(wait == 0 for wait in waits[:-1]), waits
    release(clients.sqs, url, messages)
    assert sweep_within(clients.sqs, url, 0) == ([], False)


def test_a_sweep_sees_what_another_sweep_held_when_it_looked(clients):
    """Two readers of DS's shared dead-letter queue at once (two runs ending, a redrive beside a `failed`): each
    hides what it reads until it is done, so without waiting the second would miss the first's messages and a run's
    end would call a dead-lettered job not run (chaos seed 2808). It waits until the other releases them."""
    url = clients.sqs.create_queue(QueueName="Dead")["QueueUrl"]
    for index in range(15):
        clients.sqs.send_message(QueueUrl=url, MessageBody=str(index))
    held, _ = sweep_within(clients.sqs, url, None)
    slept: list[float] = []

    def other_reader_finishes(seconds: float) -> None:  # the other sweep ends while this one waits
        slept.append(seconds)
        if len(slept) == 2:
            release(clients.sqs, url, held[:7])  # it deleted the rest (a redrive's own)
            for message in held[7:]:
                clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    messages, complete = sweep_within(clients.sqs, url, None, sleep=other_reader_finishes)

    assert complete and sorted(message["Body"] for message in messages) == sorted(m["Body"] for m in held[:7])
    assert len(slept) == 2


def test_two_sweeps_at_once_each_read_the_whole_queue(clients):
    """Two runs' ends reading the shared queue at the same moment: each holds part of it and waits for the other's
    part; one gives its part back (YIELD_SECONDS), the other reads all and releases it, and then so does the first.
    Neither ends with part of the queue, and neither waits for ever."""
    url = clients.sqs.create_queue(QueueName="Dead")["QueueUrl"]
    for first in range(0, 30, 10):
        clients.sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(index), "MessageBody": str(first + index)} for index in range(10)])
    both = threading.Barrier(2)

    def one_sweep() -> tuple[list[str], bool]:
        both.wait()
        messages, complete = sweep_within(clients.sqs, url, None)
        release(clients.sqs, url, messages)
        return sorted(message["Body"] for message in messages), complete

    with ThreadPoolExecutor(2) as pool:
        answers = [answer.result() for answer in [pool.submit(one_sweep) for _ in range(2)]]

    assert answers == [(sorted(str(index) for index in range(30)), True)] * 2


def test_a_sweep_whose_messages_another_reader_keeps_says_it_is_not_complete(clients, monkeypatch):
    """A reader that died mid-sweep holds its messages for SWEEP_VISIBILITY_SECONDS: the sweep waits its bound,
    then returns what it saw, told that it is not the whole queue (the API says so; `failed` warns)."""
    monkeypatch.setattr(deadletters, "OTHERS_WAIT_SECONDS", 0.5)
    url = clients.sqs.create_queue(QueueName="Dead")["QueueUrl"]
    for index in range(3):
        clients.sqs.send_message(QueueUrl=url, MessageBody=str(index))
    clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)  # the dead reader's

    messages, complete = sweep_within(clients.sqs, url, None, sleep=lambda seconds: time.sleep(0.1))

    assert (len(messages), complete) == (2, False)


def test_a_listing_of_more_than_one_page_is_read_whole(clients):
    clients.s3.create_bucket(Bucket=BUCKET)
    keys = [*(f"p/{index:04d}" for index in range(1001)), "p/sub/deeper"]
    for key in keys:
        clients.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    assert [item.key for item in list_objects(clients.s3, BUCKET, "p/")] == sorted(keys)
    assert [item.key for item in list_objects(clients.s3, BUCKET, "p/", delimiter="/")] == sorted(keys)[:-1]
    assert {item.size for item in list_objects(clients.s3, BUCKET, "p/")} == {1}
