"""A monitor check refused for a moment (the queue's run tag unreadable as the run's) leaves local mode's machines
running: the check read nothing of the run, so it says nothing of its machines (chaos seed 2808: a check refused
while the Lambda tore the run down stopped every machine of the run, and nothing started them again)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import boto3

from chalicelib.model import names
from tests.e2e.local_world import Run, environment, local_args, processes_marked, table_value

JOBS = 12
REFUSED = "the monitor's check was refused"


def untag_the_queue_until_refused(endpoint: str, queue: str, app: str, untagged: threading.Event,
                                  said: list[str]) -> None:
    """As soon as the run's queue holds its jobs and its machines work, its run tag removed; put back once local mode
    has said a check was refused (polled, not a fixed time: a check under load can outlast a few seconds)."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get(names.RUN_TAG) == app:
                break
        except sqs.exceptions.QueueDoesNotExist:
            pass
        time.sleep(0.1)
    else:
        return
    time.sleep(2.0)  # the run's machines have started their workers
    sqs.untag_queue(QueueUrl=url, TagKeys=[names.RUN_TAG])
    untagged.set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(REFUSED in line for line in said):
        time.sleep(0.1)
    time.sleep(2.0)  # more checks refused meanwhile: the warning must still be said once
    sqs.tag_queue(QueueUrl=url, Tags={names.RUN_TAG: app})


def test_a_refused_check_leaves_the_machines_running_and_the_run_ends_with_every_job_done(moto_server, tmp_path):
    run = Run(tmp_path, APP_NAME="Refused", CLUSTER_MACHINES=2, DOCKER_CORES=1, SQS_MESSAGE_VISIBILITY=10)
    jobfile = run.jobs(*["sleep:1"] * JOBS)
    mark = uuid.uuid4().hex
    untagged = threading.Event()
    said: list[str] = []
    meddler = threading.Thread(target=untag_the_queue_until_refused,
                               args=(moto_server, "RefusedQueue", "Refused", untagged, said), daemon=True)
    meddler.start()

    local = subprocess.Popen(local_args(jobfile, run.config, "--out", str(run.out), "--workers", "2",
                                        "--endpoint", moto_server),
                             cwd=tmp_path, env=environment(mark), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        for line in local.stdout:
            said.append(line)
        local.wait(timeout=240)
    finally:
        if local.poll() is None:
            local.kill()
    meddler.join(timeout=10)
    output = "".join(said)

    assert untagged.is_set()
    assert local.returncode == 0, output
    assert table_value(output, "done") == str(JOBS)
    refusals = [line for line in said if REFUSED in line]
    assert len(refusals) == 1, output  # said once, not every second
    assert "does not carry the tag dsr:app=Refused" in refusals[0]
    assert processes_marked(mark) == []
