"""The DS image mode run's parts: DS's worker stand-in (tests/chaos/ds_worker.py) on a queue with a redrive policy,
and the harness's ECS emulation (tests/chaos/ds_run.py) keeping a service's tasks on the run's machines."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from chalicelib.model import names
from tests.chaos.ds_run import WORKER, DsRun, config_document
from tests.chaos.scenario import RunPlan
from tests.conftest import REGION
from tests.waiting import wait_for

BUCKET = "chaos-bucket"
APP = "ChaosDS"


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_dss_worker_does_skips_and_leaves_jobs_to_the_dead_letter_queue_as_upstreams(moto_server, tmp_path):
    """ok: its outputs, then the message deleted; fail: never deleted, so SQS dead-letters it past maxReceiveCount;
    flaky: fails its first receive only; a job whose outputs are there already is deleted unrun
    (CHECK_IF_DONE_BOOL); the worker exits once the queue is empty."""
    sqs, s3 = client("sqs", moto_server), client("s3", moto_server)
    s3.create_bucket(Bucket=BUCKET)
    dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="jobs", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})})["QueueUrl"]
    for job_id, mode in (("d1", "ok"), ("d2", "fail"), ("d3", "flaky"), ("d4", "ok")):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"group": {"job_id": job_id, "mode": mode}}))
    for number in range(2):  # d4's outputs, from an earlier run
        s3.put_object(Bucket=BUCKET, Key=f"{APP}/d4/earlier-{number}.txt", Body=b"earlier\n")
    env = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "SQS_QUEUE_URL": queue, "AWS_BUCKET": BUCKET, "APP_NAME": APP,
           "CHECK_IF_DONE_BOOL": "True", "EXPECTED_NUMBER_FILES": "2", "MIN_FILE_SIZE_BYTES": "1",
           "NECESSARY_STRING": "", "CHAOS_DS_WAIT_SECONDS": "1", "CHAOS_DS_RETURN_VISIBILITY": "0"}
    result = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-2:] == ["No messages in the queue", "Worker finished"]
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == [f"{APP}/d1/out-0.txt", f"{APP}/d1/out-1.txt", f"{APP}/d3/out-0.txt", f"{APP}/d3/out-1.txt",
                    f"{APP}/d4/earlier-0.txt", f"{APP}/d4/earlier-1.txt"]
    assert "File not run due to > expected number of files" in result.stdout
    dead_letters = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(message["Body"])["group"]["job_id"] for message in dead_letters] == ["d2"]
    assert result.stdout.count("Running d2 (fail") == 2 and "Running d3 (flaky, receive 2)" in result.stdout


class Processes:
    """The harness's Seed.start, for the emulation: each task a sleeping process in a session of its own."""

    def __init__(self):
        self.started: list[SimpleNamespace] = []

    def start(self, name, argv, env, on_exit=None, kill_after=None, cwd=None):
        assert argv == [sys.executable, str(WORKER)]
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env,
                                   start_new_session=True)
        live = SimpleNamespace(name=name, process=process, env=env)
        self.started.append(live)
        return live

    def kill_all(self) -> None:
        for live in self.started:
            if live.process.poll() is None:
                live.process.kill()
            live.process.wait()


@pytest.fixture
def ecs_world(moto_server, tmp_path):
    """A DS run's service (desiredCount 3) and task definition in the default cluster, and two of its machines."""
    ecs, ec2 = client("ecs", moto_server), client("ec2", moto_server)
    ecs.create_cluster(clusterName="default")
    ecs.register_task_definition(family=f"{APP}Task", containerDefinitions=[{
        "name": "worker", "image": "example/chaos-ds:1", "memory": 512,
        "environment": [{"name": "SQS_QUEUE_URL", "value": "http://queue"}, {"name": "APP_NAME", "value": APP}]}])
    ecs.create_service(cluster="default", serviceName=f"{APP}Service", taskDefinition=f"{APP}Task", desiredCount=3)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    machines = [instance["InstanceId"] for instance in ec2.run_instances(
        ImageId=image, MinCount=2, MaxCount=2, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": names.RUN_TAG, "Value": APP}]}])["Instances"]]
    run = RunPlan(APP, (("j000", "ok"),), 0.0, 1, 2, 5, 2, 0.0, ds_image=True, tasks_per_machine=1)
    folder = Path(tmp_path) / APP
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config_document(run, BUCKET, "dead", REGION)))
    processes = Processes()
    ds = DsRun(run, folder, moto_server, REGION, processes.start, lambda key_id: {"KEY": key_id})
    try:
        yield SimpleNamespace(ds=ds, ecs=ecs, ec2=ec2, machines=sorted(machines), processes=processes)
    finally:
        ds.stop_tasks()
        processes.kill_all()


def tasks_become(ds: DsRun, count: int) -> None:
    def stepped() -> bool:
        ds.step(force=True)
        return len(ds.tasks) == count

    wait_for(stepped, f"{count} task(s)", timeout=30, interval=0.2, details=lambda: repr(ds.tasks))


def test_the_ecs_emulation_keeps_the_services_tasks_on_the_runs_machines(ecs_world):
    ds, ecs = ecs_world.ds, ecs_world.ecs
    tasks_become(ds, 2)  # 3 wanted, 2 machines of 1 task each
    assert sorted(task.instance_id for task in ds.tasks) == ecs_world.machines
    env = ds.tasks[0].live.env
    assert (env["SQS_QUEUE_URL"], env["APP_NAME"], env["KEY"], env["CHAOS_RUN"]) == (
        "http://queue", APP, f"chaos-{APP}", APP)

    ecs.update_service(cluster="default", service=f"{APP}Service", desiredCount=1)  # the monitor scales in
    tasks_become(ds, 1)
    [stopped] = [live for live in ecs_world.processes.started if live is not ds.tasks[0].live]
    assert stopped.process.wait(timeout=30) == -9  # SIGKILLed, as ECS's scale-in stops DS's worker

    [task] = ds.tasks
    ecs_world.ec2.terminate_instances(InstanceIds=[task.instance_id])  # its machine is gone: so is it
    tasks_become(ds, 1)
    assert task.live.process.wait(timeout=30) == -9 and ds.tasks[0].instance_id != task.instance_id

    ds.tasks[0].live.process.kill()  # a task that ended is started again, as the service scheduler does
    started = len(ecs_world.processes.started)
    wait_for(lambda: ds.step(force=True) or len(ecs_world.processes.started) > started, "a task started again",
             timeout=30, interval=0.2)

    ecs.delete_service(cluster="default", service=f"{APP}Service", force=True)  # teardown
    tasks_become(ds, 0)


def test_a_spot_reclaim_takes_one_machine_and_its_tasks(ecs_world):
    ds = ecs_world.ds
    tasks_become(ds, 2)
    machine = ds.reclaim(random.Random(1))
    assert machine in ecs_world.machines and ds.machines() == [m for m in ecs_world.machines if m != machine]
    assert [task.instance_id for task in ds.tasks] == [m for m in ecs_world.machines if m != machine]
