"""The status API for a run of 100,000 submitted jobs, with Chalice's own test client.

The jobs go in with operations.submit (as `cli.py submit` sends them), the run
is started, 1,000 jobs are taken as done and 10 are held as running, then
GET /runs/TestApp is timed. Only the answer's correctness is asserted; the
time (the API function's budget is its 30 s Lambda timeout) is printed with -s
and kept in RELIABILITY.md. moto's queue counts are exact, so the counts are too.
"""

from __future__ import annotations

import time

import pytest

from chalicelib import aws as clients
from chalicelib.model.jobs import parse_job_document
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from operations.submit import submit
from tests.integration.world import Account, drain

pytestmark = pytest.mark.slow

JOBS = 100_000


def test_status_of_a_run_of_100000_jobs_is_correct_and_timed(aws, tmp_path, monkeypatch, client):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs")
    jobs = parse_job_document({"groups": [{"plate": f"P{index:06d}"} for index in range(JOBS)]}, account.settings)
    started = time.perf_counter()
    assert submit(account.settings, jobs).sent == JOBS
    submitted = time.perf_counter() - started
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    assert drain(account, count=1000) == 1000
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=account.settings.SQS_QUEUE_NAME)["QueueUrl"]
    for _ in range(10):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)

    started = time.perf_counter()
    response = client.http.get("/runs/TestApp")
    answered = time.perf_counter() - started

    assert response.status_code == 200
    assert response.json_body["jobs"] == {"submitted": JOBS, "waiting": JOBS - 1010, "running": 10, "done": 1000,
                                          "failed": 0}
    print(f"\nstatus at {JOBS} jobs: submitted in {submitted:.1f} s; GET /runs/TestApp answered in {answered:.2f} s "
          "(budget: the 30 s Lambda timeout)")
