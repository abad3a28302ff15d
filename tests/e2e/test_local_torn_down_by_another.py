"""A local run torn down by another (`cli.py teardown` in a second shell) stops its machines at once, as AWS does
when the teardown cancels the fleet, even while the checks of a run that is ending are slow (chaos seeds 134 and
184: the shared dead-letter queue, held by another reader, made each teardown check sweep it for 20 s, the first
one before it cancelled the fleet; meanwhile the machines ran 42 and 61 more jobs, and the queue the teardown had
kept for them was left empty). Two fixes, each needed (without either, 20-30 more jobs start): the sweep waits for
the run's machines to be gone (observe.py), and local mode stops a machine as soon as its instance is terminated,
apart from its checks (localrun/terminations.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import boto3

from tests.e2e.local_world import CLI, Run, environment, local_args, processes_marked, table_value
from tests.waiting import wait_for

JOBS = 40
HELD_SECONDS = 30  # another reader's hold on the dead-letter queue: each teardown check sweeps it up to 20 s
# Jobs that may still start once the teardown is asked: the check under way ends (a second or two on a loaded
# machine), then the machines stop. Without the stop, a 20 s sweep lets the one worker start about 15 more.
STARTED_AFTER_AT_MOST = 6


def test_a_teardown_from_another_shell_stops_the_machines_before_the_slow_checks_of_the_runs_end(moto_server,
                                                                                              tmp_path):
    run = Run(tmp_path, APP_NAME="TornDown", CLUSTER_MACHINES=1, DOCKER_CORES=1, SQS_MESSAGE_VISIBILITY=10,
              SQS_DEAD_LETTER_QUEUE="TornDownDead")
    mark = uuid.uuid4().hex
    local = subprocess.Popen(local_args(run.jobs(*["sleep:1"] * JOBS), run.config, "--out", str(run.out),
                                        "--workers", "1", "--endpoint", moto_server),
                             cwd=tmp_path, env=environment(mark), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        def started() -> int:
            assert local.poll() is None, "local mode ended before the teardown"
            return len(list(run.marks.glob("*.started")))

        wait_for(lambda: started() >= 3, "three jobs to start", timeout=180)
        sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        dead = sqs.get_queue_url(QueueName="TornDownDead")["QueueUrl"]
        sqs.send_message(QueueUrl=dead, MessageBody='{"group": {"job_id": "someone-elses"}}')
        assert sqs.receive_message(QueueUrl=dead, VisibilityTimeout=HELD_SECONDS)["Messages"]
        asked_at = started()
        teardown = subprocess.run(
            [sys.executable, str(CLI), "teardown", "--config", str(run.config), "--period", "1"], cwd=tmp_path,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_ENDPOINT_URL": moto_server,
                 "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"},
            capture_output=True, text=True, timeout=240)
        output, _ = local.communicate(timeout=240)
    finally:
        if local.poll() is None:
            local.kill()
        for line in processes_marked(mark):
            os.kill(int(line.split()[0]), 9)

    assert teardown.returncode == 0, teardown.stdout + teardown.stderr
    ran = len(list(run.marks.glob("*.started")))
    assert ran <= asked_at + STARTED_AFTER_AT_MOST, (asked_at, ran, output)
    left = int(table_value(output, "not run"))
    assert left >= JOBS - ran and left > 0, output
    # the teardown kept the queue for the jobs left, and they are in it (not an empty queue outliving the run)
    queue = sqs.get_queue_url(QueueName="TornDownQueue")["QueueUrl"]
    waiting = int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"])
    assert waiting == left, (waiting, left, output)
