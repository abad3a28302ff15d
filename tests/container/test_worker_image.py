"""The worker image as ECS runs it: `docker run` with the task definition's DSR_CONFIG, against moto.

Every container is the real image (tini, the supervisor, its worker processes, the job as user dsr) under a
real dockerd; every assertion reads what AWS (the moto server) holds or what Docker reports, not the worker's
own account. The job program below is passed in COMMAND as `python -c`, so the jobs need no volume.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
import uuid

import pytest

from tests.conftest import make_settings
from tests.container.conftest import docker, timed
from tests.waiting import wait_for
from tests.worker_world import aws_clients, make_world, process_alive, queue_counts, s3_keys, send_jobs

pytestmark = pytest.mark.slow

# `python -c JOB OUTPUT_DIR MODE`, run by the worker inside the container. Modes:
#   ok             write the outputs
#   hang           run until stopped
#   wait-for:PATH  run until PATH exists in the container (the test creates it with `docker exec`)
#   allocate-mib:N hold N MiB, 16 MiB at a time, then write the outputs (if the kernel lets it live)
# The outputs say who ran the job: `id -u`, as a user's program would see it.
JOB = textwrap.dedent('''
    import os, pathlib, subprocess, sys, time
    out, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
    print("running", mode, "as uid", os.getuid(), flush=True)
    if mode == "hang":
        time.sleep(3600)
    elif mode.startswith("wait-for:"):
        gate, deadline = pathlib.Path(mode.split(":", 1)[1]), time.monotonic() + 120
        while not gate.exists():
            if time.monotonic() > deadline:
                sys.exit("the gate was never opened")
            time.sleep(0.1)
    elif mode.startswith("allocate-mib:"):
        held = []
        for step in range(int(mode.split(":", 1)[1]) // 16):
            held.append(b"x" * (16 << 20))  # bytes filled in: every page really is in memory
            print("holding", 16 * (step + 1), "MiB", flush=True)
    uid = subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout
    (out / "uid.txt").write_text(uid)
    (out / "mode.txt").write_text(mode)
    print("wrote outputs", flush=True)
''')
COMMAND = ["python", "-c", JOB, "{output_dir}", "{mode}"]


class World:
    """The run's queues and bucket in moto, made as `setup` makes them, and what they hold."""

    def __init__(self, **overrides):
        self.clients = aws_clients()
        self.sqs, self.s3, self.logs = self.clients["sqs"], self.clients["s3"], self.clients["logs"]
        self.settings = make_settings(COMMAND=COMMAND, **overrides)
        self.queue_url, self.dlq_url = make_world(self.sqs, self.s3, self.settings)

    def send(self, *modes: str):
        groups = [{"plate": f"P{uuid.uuid4().hex[:6]}", "mode": mode} for mode in modes]
        return send_jobs(self.sqs, self.queue_url, self.settings, groups)

    def counts(self) -> tuple[int, int]:
        return queue_counts(self.sqs, self.queue_url)

    def outputs(self, job) -> list[str]:
        return [key[len(job.output_prefix) + 1:] for key in s3_keys(self.s3, self.settings.AWS_BUCKET,
                                                                    job.output_prefix + "/")]

    def output(self, job, name: str) -> str:
        key = f"{job.output_prefix}/{name}"
        return self.s3.get_object(Bucket=self.settings.AWS_BUCKET, Key=key)["Body"].read().decode()

    def streams(self) -> list[str]:
        try:
            found = self.logs.describe_log_streams(logGroupName=self.settings.LOG_GROUP_NAME)["logStreams"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []
        return [stream["logStreamName"] for stream in found]

    def log(self, job) -> list[str]:
        """The job's CloudWatch log stream; [] until the worker has made it."""
        if job.job_id not in self.streams():
            return []
        events = self.logs.get_log_events(logGroupName=self.settings.LOG_GROUP_NAME, logStreamName=job.job_id,
                                          startFromHead=True)["events"]
        return [event["message"] for event in events]

    def dead_letters(self) -> list[str]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10)
        return [message["Body"] for message in messages.get("Messages", ())]

    def logged(self, job, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.log(job))


def test_a_job_run_by_the_container_leaves_its_outputs_in_s3_its_message_deleted_and_its_log_stream(containers):
    world = World()
    [job] = world.send("ok")
    started = time.monotonic()
    container = containers(world.settings)

    wait_for(lambda: world.counts() == (0, 0) and "_SUCCESS" in world.outputs(job), "the job to be done",
             details=container.logs)
    timed("container start to job done", started)

    assert world.outputs(job) == ["_SUCCESS", "mode.txt", "uid.txt"]
    assert world.output(job, "mode.txt") == "ok"
    assert world.counts() == (0, 0) and world.dead_letters() == []
    assert world.streams() == [job.job_id]
    lines = wait_for(lambda: world.logged(job, "succeeded: ") and world.log(job), "the job's last log line",
                     details=container.logs)
    assert lines[0].startswith("received: ") and "attempt 1 of 3" in lines[0]
    assert "running ok as uid 1000" in lines and "wrote outputs" in lines
    assert lines[-1].startswith("succeeded: exit code 0")
    assert container.running, "the container keeps polling for more work"


def test_docker_stop_mid_job_releases_the_message_at_once(containers):
    # A visibility timeout of 10 minutes: the message can only be visible again soon because it was released.
    world = World(SQS_MESSAGE_VISIBILITY=600)
    [job] = world.send("hang")
    container = containers(world.settings)
    wait_for(lambda: "running hang as uid 1000" in world.log(job), "the job to start", details=container.logs)
    assert world.counts() == (0, 1)

    started = time.monotonic()
    container.stop()  # SIGTERM to tini, PID 1, which passes it to the supervisor
    elapsed = timed("docker stop", started)

    assert world.counts() == (1, 0), "visible again at once, not after the visibility timeout"
    assert elapsed < 20, "released before docker's SIGKILL, well within ECS's 30 s"
    assert container.state("ExitCode") == "0" and container.state("OOMKilled") == "false", container.logs()
    lines = world.log(job)
    assert any(line.startswith("released: stopped (SIGTERM)") for line in lines), lines
    assert not any(line.startswith(("failed", "succeeded")) for line in lines), lines
    assert world.outputs(job) == []


def test_without_the_metadata_service_the_container_names_its_machine_and_a_spot_stop_releases_its_job(
        containers, tmp_path):
    world = World(SQS_MESSAGE_VISIBILITY=600)
    [job] = world.send("hang")
    # What the task definition mounts read-only: the folder the machine's boot script wrote the instance id to.
    # No metadata server runs anywhere: on EC2 the launch template's hop limit of 1 keeps its answers from a
    # container, and the worker does not ask.
    host = tmp_path / "host"
    host.mkdir()
    (host / "instance-id").write_text("i-0c0ffee0123456789\n")
    container = containers(world.settings, "-v", f"{host}:/etc/dsr/host:ro")
    wait_for(lambda: "running hang as uid 1000" in world.log(job), "the job to start", details=container.logs)
    assert world.counts() == (0, 1)

    started = time.monotonic()
    container.stop()  # ECS's spot draining stops the task on an interruption notice: SIGTERM to tini, PID 1
    timed("spot stop to container exit", started)

    assert world.counts() == (1, 0), "visible again at once, not after the visibility timeout"
    assert container.state("ExitCode") == "0", container.logs()
    lines = world.log(job)
    assert any(line.startswith("released: stopped (SIGTERM)") for line in lines), lines
    [received] = [line for line in lines if line.startswith("received: ")]
    assert " machine i-0c0ffee0123456789 worker " in received, "the run report draws the job on its machine's row"


# The container's memory: the supervisor and one worker process (Python and boto3 each) fit, a job holding
# JOB_MIB does not. Swap is the same as memory, so the kernel cannot push the job out instead of killing it.
MEMORY_LIMIT = "192m"
JOB_MIB = 512


def test_a_job_exceeding_the_containers_memory_is_a_failed_attempt_and_the_container_keeps_serving(containers):
    world = World(JOB_RETRIES=1)  # one attempt: the failure goes to the dead-letter queue, which the test reads
    [hog] = world.send(f"allocate-mib:{JOB_MIB}")
    since = str(int(time.time()) - 1)
    container = containers(world.settings, "--memory", MEMORY_LIMIT, "--memory-swap", MEMORY_LIMIT)

    lines = wait_for(lambda: world.logged(hog, "failed: ") and world.log(hog), "the memory hog to fail",
                     details=container.logs)
    [failed] = [line for line in lines if line.startswith("failed: ")]
    # SIGKILL by the kernel's OOM killer, said in words: the job's own peak (wait4) against the cgroup's limit
    said = re.match(r"failed: out of memory: peak (\d+) MiB, limit 192 MiB \(MEMORY\); exit code -9 after ", failed)
    assert said, lines
    peak = int(said.group(1))
    # What the job held when it was killed: about the limit less the workers' share. Resident memory counts the
    # shared libraries' pages too, which the cgroup charges once, so the figure is no exact part of the limit.
    assert 16 <= peak < 192 + 32, failed
    # "at most" if the job was killed while still within the worker's own size (worker/attempt_usage.py)
    assert re.search(rf"; peak memory (at most )?{peak} MiB, cpu \d+\.\d\d s, container peak \d+ of 192 MiB;", failed)
    assert "the job moves to the dead-letter queue" in failed
    assert any(line.startswith("holding ") for line in lines) and "wrote outputs" not in lines
    assert world.outputs(hog) == []
    assert wait_for(world.dead_letters, "the hog's message in the dead-letter queue") == [hog.body]
    failure = json.loads(world.s3.get_object(Bucket=world.settings.AWS_BUCKET,
                                             Key=f"runs/TestApp/failures/{hog.job_id}.json")["Body"].read())
    assert failure["exit_code"] == -9 and failure["job_id"] == hog.job_id
    assert failure["reason"].startswith(f"out of memory: peak {peak} MiB, limit 192 MiB (MEMORY); exit code -9")
    assert failure["out_of_memory"] is True and failure["memory_limit_mib"] == 192
    # Docker saw the kernel's OOM kill in this container's memory cgroup.
    events = docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                    f"container={container.name}", "--filter", "event=oom", "--format", "{{.Status}}").stdout
    assert events.split() != [], "no OOM event: the job was killed by something else"
    assert container.running, "the OOM killer took the job, not the container's main process"

    [after] = world.send("ok")
    # the marker goes up before the message is deleted: wait for both
    wait_for(lambda: "_SUCCESS" in world.outputs(after) and world.counts() == (0, 0), "the next job to succeed",
             details=container.logs)
    assert world.outputs(after) == ["_SUCCESS", "mode.txt", "uid.txt"]
    assert container.running


def test_docker_cores_worker_processes_run_jobs_at_once_in_one_container(containers):
    world = World(DOCKER_CORES=2, SECONDS_TO_START=0)
    gate = f"/tmp/gate-{uuid.uuid4().hex[:8]}"
    jobs = world.send(f"wait-for:{gate}", f"wait-for:{gate}")
    container = containers(world.settings)

    # Both jobs wait at the gate: they can only both be running if two workers took one each.
    def running_jobs():
        return [args for _, args in container.processes() if f"wait-for:{gate}" in args]

    wait_for(lambda: len(running_jobs()) == 2, "two jobs running at once", details=container.logs)
    assert world.counts() == (0, 2)
    docker("exec", container.name, "touch", gate)

    # the marker goes up before the message is deleted: done means both, so wait for both
    wait_for(lambda: all("_SUCCESS" in world.outputs(job) for job in jobs) and world.counts() == (0, 0),
             "both jobs to be done", details=container.logs)
    # the job logs are flushed on their own clock, after the delete maybe: wait for both "received:" lines
    wait_for(lambda: all(world.log(job) for job in jobs), "both jobs' log lines", details=container.logs)
    # "received: ... on HOST pid N": two different worker processes
    workers = {world.log(job)[0].rsplit(" pid ", 1)[1] for job in jobs}
    assert len(workers) == 2, [world.log(job)[0] for job in jobs]


def test_jobs_and_the_worker_run_as_the_unprivileged_user(containers):
    world = World()
    gate = f"/tmp/gate-{uuid.uuid4().hex[:8]}"
    [job] = world.send(f"wait-for:{gate}")
    container = containers(world.settings)
    wait_for(lambda: any(f"wait-for:{gate}" in args for _, args in container.processes()), "the job to start",
             details=container.logs)

    processes = container.processes()  # tini, the supervisor, its worker, the job
    assert len(processes) >= 4 and {uid for uid, _ in processes} == {1000}, processes
    docker("exec", container.name, "touch", gate)

    wait_for(lambda: "_SUCCESS" in world.outputs(job), "the job to be done", details=container.logs)
    assert world.output(job, "uid.txt") == "1000\n"  # what `id -u` said inside the job


def test_a_killed_worker_takes_its_command_along_and_is_replaced(containers):
    # The image has util-linux's setpriv: the command is started through it, with the parent death signal set.
    world = World(SQS_MESSAGE_VISIBILITY=2)
    [job] = world.send("hang")
    container = containers(world.settings)
    wait_for(lambda: any(args.endswith(" hang") for _, args in container.host_pids()), "the job to start",
             details=container.logs)
    processes = container.host_pids()
    [worker] = [pid for pid, args in processes if "--single" in args]
    [command] = [pid for pid, args in processes if args.endswith(" hang")]
    assert not any("setpriv" in args for _, args in processes), "setpriv execs the command: it never stays"

    os.kill(worker, signal.SIGKILL)  # the OOM killer, say: the worker process alone

    wait_for(lambda: not process_alive(command), "the orphaned command to die", details=container.logs)
    # the supervisor started another worker, which takes the job again once its visibility timeout ends
    wait_for(lambda: any(line.startswith("received: ") and "attempt 2 of" in line for line in world.log(job)),
             "the job to be received again", details=container.logs)
