"""DS image mode under real Docker: DS's example config.py (no COMMAND) is set up against the moto server, and
a stand-in DS image (tests/container/ds_standin: its own worker, reading only DS's variables) runs with exactly
the environment the task definition holds, as ECS would start it. Every assertion reads what the moto server
holds or what Docker reports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import aws
from cli import cli
from tests.container.conftest import DS_STANDIN_IMAGE, timed
from tests.integration.world import write_jobs
from tests.worker_world import queue_counts, s3_keys

pytestmark = pytest.mark.slow

DS_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "ds_config.py"
JOBS = 3


def test_a_ds_image_given_exactly_the_task_definitions_environment_does_the_runs_jobs(containers, moto_server,
                                                                                    tmp_path):
    config = tmp_path / "config.py"
    config.write_text(DS_EXAMPLE.read_text().replace("AWS_BUCKET = 'your-bucket-name'", "AWS_BUCKET = 'test-bucket'"))
    s3, sqs, logs, ecs = (aws.client(name) for name in ("s3", "sqs", "logs", "ecs"))
    s3.create_bucket(Bucket="test-bucket")  # the user's bucket, which DS's config names
    for args in (["setup-account"], ["setup"], ["submit", str(write_jobs(tmp_path, JOBS))]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert result.exit_code == 0, (args, result.output)
    [definition] = ecs.describe_task_definition(taskDefinition="DistributedSomethingTask")["taskDefinition"][
        "containerDefinitions"]
    assert definition["image"] == "user/distributed-something:sometag"  # what ECS would pull: here, the stand-in
    variables = {item["name"]: item["value"] for item in definition["environment"]}
    queue = variables["SQS_QUEUE_URL"]
    assert queue_counts(sqs, queue) == (JOBS, 0)

    started = time.monotonic()
    # The task role's credentials and the AWS endpoint are what ECS and AWS would give; everything else is the
    # task definition's (no AWS_DEFAULT_REGION: the worker's region is DS's AWS_REGION).
    container = containers.run(DS_STANDIN_IMAGE, {**variables, "AWS_ENDPOINT_URL": moto_server,
                                                  "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert container.wait(timeout=90) == 0, container.logs()
    timed("stand-in DS container start to exit", started)

    jobs = [f"P{index:05d}" for index in range(JOBS)]
    assert s3_keys(s3, "test-bucket", "DistributedSomething/") == [f"DistributedSomething/{job}/result.txt"
                                                                    for job in jobs]
    # MY_THREADS = 4, the config's own variable under "PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE"
    assert {s3.get_object(Bucket="test-bucket", Key=f"DistributedSomething/{job}/result.txt")["Body"].read()
            for job in jobs} == {b"4"}
    assert queue_counts(sqs, queue) == (0, 0)
    dead_letter = sqs.get_queue_url(QueueName="DeadMessages")["QueueUrl"]  # the ARN in DS's config, by name
    assert queue_counts(sqs, dead_letter) == (0, 0)
    for job in jobs:  # the job's log, where DS's LOG_GROUP_NAME says
        events = logs.get_log_events(logGroupName="DistributedSomething", logStreamName=job)["events"]
        assert [event["message"] for event in events] == [f"ran {job} with MY_THREADS=4"]
