"""AWS throttles: setup, submit of 1,000 jobs and a whole teardown through a proxy failing 10 % of requests.

Every client our code makes honours AWS_ENDPOINT_URL, so pointing it at the
fault proxy (tests/faults.py) puts the throttling between the real code and
moto without touching either. The proof is read back from moto: each job is
in the queue exactly once, and nothing of the run is left after teardown.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from tests.faults import FaultProxy
from tests.integration.world import NOTHING_LEFT, Account, reconcile_until_gone, what_is_left, write_jobs

JOBS = 1000

pytestmark = pytest.mark.slow


@pytest.fixture
def throttled(moto_server, monkeypatch):
    with FaultProxy(moto_server, rate=0.1, seed=9) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients.forget_sessions()
        yield proxy
    clients.forget_sessions()


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"{args[0]}: {result.output}"


def drain_and_count(account) -> list[str]:
    """Every message's job id, each deleted as a finished worker would (the drain before teardown)."""
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=account.settings.SQS_QUEUE_NAME)["QueueUrl"]
    seen = []
    while True:
        # a long visibility timeout: a message seen once is not received again within the drain
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", [])
        if not messages:
            return seen
        seen.extend(json.loads(m["Body"])["group"]["plate"] for m in messages)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def test_setup_submit_and_teardown_complete_under_throttling(throttled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    account = Account(tmp_path, ECS_CLUSTER="runs", CREATE_DASHBOARD=True, CLEAN_DASHBOARD=True)
    config = str(account.config_path)
    invoke("setup", "--config", config)  # a second setup over the throttled endpoint changes nothing, and says so
    invoke("submit", str(write_jobs(tmp_path, JOBS)), "--config", config)
    invoke("start-cluster", str(account.fleet_path), "--config", config, "--wait", "0")
    logs = clients.client("logs")
    for group, stream in (("TestApp", "P00000"), ("TestApp_perInstance", "TestApp/TestApp/task1")):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)  # as a worker and ECS would
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "started: job"}])

    plates = drain_and_count(account)
    reconcile_until_gone(account, limit=15)
    elapsed = time.perf_counter() - started

    assert len(plates) == JOBS and sorted(plates) == [f"P{index:05d}" for index in range(JOBS)]
    assert what_is_left(account) == NOTHING_LEFT
    assert throttled.total_faults > 0.05 * (throttled.total_faults + throttled.forwarded)
    by_service = dict(sorted(throttled.faults.items()))
    print(f"\nfault proxy: {throttled.total_faults} faulted of {throttled.total_faults + throttled.forwarded} "
          f"requests in {elapsed:.1f} s; by (service, kind): {by_service}")
