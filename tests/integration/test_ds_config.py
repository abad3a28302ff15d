"""A DS user's config.py (DS's own example, its bucket named and COMMAND added) drives setup, submit and
start-cluster on moto, and its YOUR CONFIGURATIONS variable reaches the job's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model.settings import Settings
from cli import cli
from tests.integration.world import Account, write_jobs
from tests.worker_world import FAST, aws_clients
from worker.worker import Worker

DS_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "ds_config.py"
COMMAND = [sys.executable, "-c", "import os, pathlib, sys; pathlib.Path(sys.argv[1], 'threads.txt')"
           ".write_text(os.environ['MY_THREADS'])", "{output_dir}", "{plate}"]


def test_dss_config_py_runs_setup_submit_and_start_cluster_and_its_variable_reaches_the_job(aws, tmp_path):
    account = Account(tmp_path)  # the bucket, roles and network a user has; its config.json is not used
    config = tmp_path / "config.py"
    config.write_text(DS_EXAMPLE.read_text()
                      .replace("AWS_BUCKET = 'your-bucket-name'", "AWS_BUCKET = 'test-bucket'")
                      .replace("# PUT ANYTHING", f"COMMAND = {COMMAND!r}\n# PUT ANYTHING"))

    for args in (["setup-account"], ["setup"], ["submit", str(write_jobs(tmp_path, 2))],
                 ["start-cluster", str(account.fleet_path), "--wait", "0"]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert result.exit_code == 0, (args, result.output)
    settings = Settings.load(config)
    worker = Worker(settings, options=FAST, **aws_clients())
    worker.run_forever(exit_when_empty=True)
    worker.close()

    s3 = clients.client("s3")
    outputs = {key: s3.get_object(Bucket="test-bucket", Key=key)["Body"].read() for key in (
        "DistributedSomething/P00000/threads.txt", "DistributedSomething/P00001/threads.txt")}
    assert set(outputs.values()) == {b"4"}
    assert clients.client("sqs").get_queue_url(QueueName="DeadMessages")["QueueUrl"].endswith("/DeadMessages")


# A stand-in for a DS image's own worker, shared with the container test (tests/container/ds_standin).
DS_WORKER = Path(__file__).resolve().parents[1] / "ds_standin_worker.py"
DS_VARIABLES = {"AWS_REGION", "APP_NAME", "SQS_QUEUE_URL", "AWS_BUCKET", "DOCKER_CORES", "LOG_GROUP_NAME",
                "CHECK_IF_DONE_BOOL", "EXPECTED_NUMBER_FILES", "ECS_CLUSTER", "SECONDS_TO_START",
                "MIN_FILE_SIZE_BYTES", "NECESSARY_STRING"}
DCP_VARIABLES = {"SOURCE_BUCKET", "DESTINATION_BUCKET", "UPLOAD_FLAGS"}  # Distributed-CellProfiler's run.py adds these


def test_dss_config_py_unchanged_runs_in_ds_image_mode_and_its_image_worker_gets_dss_variables(moto_server, tmp_path):
    account = Account(tmp_path)
    config = tmp_path / "config.py"
    config.write_text(DS_EXAMPLE.read_text().replace("AWS_BUCKET = 'your-bucket-name'", "AWS_BUCKET = 'test-bucket'"))

    for args in (["setup-account"], ["setup"], ["submit", str(write_jobs(tmp_path, 2))],
                 ["start-cluster", str(account.fleet_path), "--wait", "0"]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert result.exit_code == 0, (args, result.output)
    [container] = clients.client("ecs").describe_task_definition(
        taskDefinition="DistributedSomethingTask")["taskDefinition"]["containerDefinitions"]
    variables = {item["name"]: item["value"] for item in container["environment"]}
    assert set(variables) == DS_VARIABLES | DCP_VARIABLES | {"MY_THREADS"}  # no DSR_CONFIG, and never AWS keys
    assert (variables["CHECK_IF_DONE_BOOL"], variables["SECONDS_TO_START"], variables["DOCKER_CORES"]) == (
        "False", "180", "4")
    assert variables["SQS_QUEUE_URL"].endswith("/DistributedSomethingQueue")
    assert not container.get("privileged")
    # the task definition's variables and what stands in for the task role; its region is AWS_REGION's
    env = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **variables}
    subprocess.run([sys.executable, str(DS_WORKER)], env=env, check=True, timeout=60)

    s3 = clients.client("s3")
    assert [s3.get_object(Bucket="test-bucket", Key=f"DistributedSomething/P0000{n}/result.txt")["Body"].read()
            for n in range(2)] == [b"4", b"4"]
    teardown = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(config)])
    assert teardown.exit_code == 0, teardown.output
    summary = json.loads(s3.get_object(Bucket="test-bucket", Key="monitors/finished/DistributedSomething_summary.json")[
        "Body"].read())
    assert (summary["jobs_done"], summary["jobs_left"]) == (2, 0)


def test_a_ds_image_runs_failed_jobs_are_listed_and_redriven_from_the_shared_dead_letter_queue(aws, tmp_path):
    """DS's worker keeps no failure record: the run's dead-letter messages (those SQS moved from its queue) are the
    list."""
    Account(tmp_path)  # another run, TestApp, shares the dead-letter queue's account and bucket
    config = tmp_path / "config.py"
    config.write_text(DS_EXAMPLE.read_text().replace("AWS_BUCKET = 'your-bucket-name'", "AWS_BUCKET = 'test-bucket'")
                      .replace("'arn:aws:sqs:some-region:111111100000:DeadMessages'", "'user_DeadMessages'"))
    for args in (["setup-account"], ["setup"], ["submit", str(write_jobs(tmp_path, 2))]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert result.exit_code == 0, (args, result.output)
    sqs = clients.client("sqs")
    other = sqs.get_queue_url(QueueName="TestAppQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=other, MessageBody=json.dumps({"group": {"plate": "P00000"}}),
                     MessageAttributes={"dsr-app": {"DataType": "String", "StringValue": "TestApp"}})
    for url in (sqs.get_queue_url(QueueName="DistributedSomethingQueue")["QueueUrl"], other):
        for _ in range(12):  # a worker that fails every job: received, never deleted, until SQS dead-letters it
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)

    listed = CliRunner().invoke(cli, ["failed", "--json", "--config", str(config)])
    redriven = CliRunner().invoke(cli, ["redrive", "--config", str(config)])

    assert [(job["job_id"], job["exit_code"]) for job in json.loads(listed.stdout)] == [("P00000", None),
                                                                                       ("P00001", None)]
    assert redriven.stdout == "sent 2 failed job(s) back to DistributedSomethingQueue (2 taken off user_DeadMessages)\n"
    # the run was torn down: nothing takes them until the next start-cluster, and the user is told
    assert redriven.stderr == ("note: no run of DistributedSomething is started (it was torn down), so nothing takes "
                               "them off DistributedSomethingQueue yet: start one with 'python cli.py start-cluster "
                               "FLEETFILE'\n")
    assert CliRunner().invoke(cli, ["failed", "--config", str(config)]).output.startswith(
        "no failed job in run DistributedSomething")
    dead = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "1"  # TestApp's, left where it was
