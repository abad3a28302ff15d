"""Real `python -m worker` processes against a ThreadedMotoServer, running real commands.

Each test reads the world back (S3 objects, queue counts, the dead-letter queue,
log streams) rather than the worker's own account of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import aws
from chalicelib.runfiles import leases
from tests.conftest import make_settings
from tests.waiting import wait_for
from tests.worker_world import (
    WorkerProcess,
    job_command,
    log_lines,
    make_world,
    queue_counts,
    s3_keys,
    send_jobs,
    worker_env,
    write_job_script,
)

pytestmark = pytest.mark.slow


class World:
    def __init__(self, endpoint: str, tmp_path):
        self.endpoint = endpoint
        self.tmp_path = tmp_path
        self.sqs, self.s3, self.logs = aws.client("sqs"), aws.client("s3"), aws.client("logs")
        self.script, self.marks = write_job_script(tmp_path)
        self.workers: list[WorkerProcess] = []

    def setup(self, *values: str, **overrides):
        self.settings = make_settings(COMMAND=job_command(self.script, self.marks, *values), **overrides)
        self.queue_url, self.dlq_url = make_world(self.sqs, self.s3, self.settings)
        return self.settings

    def send(self, groups, **shared):
        return send_jobs(self.sqs, self.queue_url, self.settings, groups, **shared)

    def worker(self, *args: str, env: dict[str, str] | None = None, **knobs) -> WorkerProcess:
        process = WorkerProcess(self.tmp_path, {**worker_env(self.endpoint, self.settings, **knobs), **(env or {})},
                                *args)
        self.workers.append(process)
        return process

    def attempts(self, name: str) -> int:
        path = self.marks / f"{name}.attempts"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def counts(self):
        return queue_counts(self.sqs, self.queue_url)

    def log(self, job_id: str) -> list[str]:
        return log_lines(self.logs, self.settings.LOG_GROUP_NAME, job_id)

    def outputs(self, job) -> list[str]:
        return s3_keys(self.s3, self.settings.AWS_BUCKET, job.output_prefix + "/")

    def complete(self, job) -> bool:
        """The job script's two outputs in S3, and the worker's completion marker after them."""
        expected = ("_SUCCESS", "args.json", "sub/note.txt")
        return self.outputs(job) == [f"{job.output_prefix}/{name}" for name in expected]

    def details(self) -> str:
        return "\n".join(f"--- {worker.output_path.name}\n{worker.output}" for worker in self.workers)


@pytest.fixture
def world(moto_server, tmp_path):
    world = World(moto_server, tmp_path)
    yield world
    for worker in world.workers:
        worker.close()


def test_a_job_succeeds_its_outputs_are_in_s3_and_its_message_is_gone(world):
    world.setup("{plate}")
    [job] = world.send([{"plate": "P1", "mode": "ok"}])
    scratch = world.tmp_path / "scratch"
    scratch.mkdir()

    assert world.worker("--exit-when-empty", work_dir=scratch).wait() == 0, world.details()

    assert world.outputs(job) == [f"TestApp/{job.job_id}/_SUCCESS", f"TestApp/{job.job_id}/args.json",
                                  f"TestApp/{job.job_id}/sub/note.txt"]
    assert world.counts() == (0, 0)
    lines = world.log(job.job_id)
    [started] = [line for line in lines if line.startswith("started: ")]
    assert re.fullmatch(rf"started: {re.escape(world.settings.COMMAND[0])} {re.escape(str(world.script))} "
                        rf"/\S+/output {re.escape(str(world.marks))} ok P1", started), lines
    assert lines[0].startswith("received: message ") and "attempt 1 of 3" in lines[0]
    assert "job P1 attempt 1 mode ok" in lines and "wrote outputs" in lines
    assert list(scratch.iterdir()) == [], "the job's temporary folder is removed"
    assert re.match(r"succeeded: exit code 0; run [\d.]+ s, upload 2 files \(\d+ bytes\)", lines[-1])


def test_values_with_spaces_quotes_and_semicolons_arrive_as_single_arguments(world):
    world.setup("{plate}", "{label}", "{quoted}")
    tricky = {"plate": "P 2", "label": "a;b && echo pwned > /tmp/x", "quoted": "it's \"quoted\" $HOME `id`",
              "mode": "ok"}
    [job] = world.send([tricky])

    assert world.worker("--exit-when-empty").wait() == 0, world.details()

    body = world.s3.get_object(Bucket=world.settings.AWS_BUCKET, Key=f"{job.output_prefix}/args.json")["Body"]
    assert json.loads(body.read()) == [tricky["plate"], tricky["label"], tricky["quoted"]]


def test_a_done_job_is_skipped_and_an_unfinished_one_runs(world):
    world.setup("{plate}", CHECK_IF_DONE_BOOL=True, NECESSARY_STRING="Cells", EXPECTED_NUMBER_FILES=2,
                MIN_FILE_SIZE_BYTES=5)
    done, partial = world.send([{"plate": "done", "mode": "ok"}, {"plate": "partial", "mode": "ok"}])
    bucket = world.settings.AWS_BUCKET
    for key, body in [(f"{done.output_prefix}/Cells.csv", b"123456"),
                      (f"{done.output_prefix}/more/Cells_2.csv", b"12345"),
                      (f"{partial.output_prefix}/Cells.csv", b"123456"),  # one counts, two are needed:
                      (f"{partial.output_prefix}/Nuclei.csv", b"123456"),  # no NECESSARY_STRING
                      (f"{partial.output_prefix}/Cells_small.csv", b"1")]:  # under MIN_FILE_SIZE_BYTES
        world.s3.put_object(Bucket=bucket, Key=key, Body=body)

    assert world.worker("--exit-when-empty").wait() == 0, world.details()

    assert world.attempts("done") == 0 and world.attempts("partial") == 1
    assert world.counts() == (0, 0)
    assert world.log(done.job_id)[-1].startswith("skipped: already done")
    assert not any(line.startswith("started") for line in world.log(done.job_id))
    assert world.log(partial.job_id)[-1].startswith("succeeded")


def test_a_failing_job_reaches_the_dead_letter_queue_after_job_retries_attempts(world):
    world.setup("{plate}", JOB_RETRIES=2)
    [job] = world.send([{"plate": "bad", "mode": "fail"}])

    assert world.worker("--exit-when-empty").wait() == 0, world.details()

    assert world.attempts("bad") == 2
    assert world.counts() == (0, 0)
    dead = world.sqs.receive_message(QueueUrl=world.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in dead] == [job.body]
    lines = world.log(job.job_id)
    failures = [line for line in lines if line.startswith("failed: ")]
    assert len(failures) == 2 and all(line.startswith("failed: exit code 3 after") for line in failures)
    assert "it will be retried in 1 s" in failures[0]
    assert "last of 2 attempts: the job moves to the dead-letter queue user_DeadMessages" in failures[1]
    assert "failing on purpose" in lines


def test_a_job_longer_than_the_visibility_timeout_runs_exactly_once(world):
    # Visibility 2 s, job 6 s, two workers polling: without the heartbeat the second worker gets it too.
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=2)
    [job] = world.send([{"plate": "long", "mode": "slow:6"}])

    first, second = world.worker("--exit-when-empty"), world.worker("--exit-when-empty")
    assert first.wait() == 0 and second.wait() == 0, world.details()

    assert world.attempts("long") == 1
    assert world.complete(job) and world.counts() == (0, 0)
    assert sum(line.startswith("started") for line in world.log(job.job_id)) == 1


def test_a_worker_killed_mid_job_loses_nothing(world):
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=2)
    [job] = world.send([{"plate": "P9", "mode": "first-hangs"}])
    doomed = world.worker()
    wait_for(lambda: (world.marks / "P9.running").exists(), "the first attempt to start", details=world.details)

    doomed.kill_all()  # SIGKILL the whole container: nothing gets to clean up
    assert world.outputs(job) == []

    assert world.worker("--exit-when-empty").wait() == 0, world.details()
    assert world.attempts("P9") == 2
    assert world.complete(job) and world.counts() == (0, 0)


def test_a_worker_process_killed_mid_job_is_replaced_and_the_job_finished(world):
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=2)
    [job] = world.send([{"plate": "P8", "mode": "first-hangs"}])
    container = world.worker("--exit-when-empty")
    wait_for(lambda: (world.marks / "P8.running").exists(), "the first attempt to start", details=world.details)
    [first] = container.worker_pids()

    os.kill(first, signal.SIGKILL)  # the OOM killer, say: only this worker process dies

    # the supervisor starts another worker, which takes the job once its visibility timeout ends
    assert container.wait() == 0, container.output
    assert "worker process 1 died (exit -9); starting another" in container.output
    assert world.attempts("P8") == 2
    assert world.complete(job) and world.counts() == (0, 0)
    # the replacement is worker slot 1 again: its busy lease and its row in the run report are the dead one's
    # (the killed worker's own lines were never flushed: the last attempt's is the one in the log)
    [received] = [line for line in world.log(job.job_id) if line.startswith("received: ")]
    assert f" pid {first};" not in received and received.endswith(f" worker {socket.gethostname()}-w1"), received


@contextlib.contextmanager
def metadata_tripwire():
    """Where the instance metadata service would be, a server that answers every request with 403 and records it:
    on EC2 a container's requests get no token back either (the launch template's hop limit of 1)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(f"{self.command} {self.path}")
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_without_the_metadata_service_a_job_runs_and_names_its_machine_from_the_hosts_file(world):
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=600)
    [job] = world.send([{"plate": "P2", "mode": "first-hangs"}])
    host = world.tmp_path / "host"  # what the task definition mounts read-only from the machine's boot script
    host.mkdir()
    (host / "instance-id").write_text("i-0c0ffee0123456789\n")
    with metadata_tripwire() as (url, requests):
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "DSR_INSTANCE_ID_FILE": str(host / "instance-id")}
        running = world.worker(env=env)
        wait_for(lambda: (world.marks / "P2.running").exists(), "the first attempt to start", details=world.details)
        [lease] = wait_for(lambda: s3_keys(world.s3, world.settings.AWS_BUCKET, leases.prefix("TestApp")),
                           "the busy lease", details=world.details)
        running.process.send_signal(signal.SIGTERM)  # a spot notice, as ECS's spot draining delivers it
        assert running.wait() == 0, world.details()
        assert world.worker("--exit-when-empty", env=env).wait() == 0, world.details()
        assert requests == [], "nothing asked the metadata service"

    assert world.complete(job) and world.counts() == (0, 0)
    assert lease.startswith(leases.prefix("TestApp") + "i-0c0ffee0123456789/"), "the busy lease names the machine"
    received = [line for line in world.log(job.job_id) if line.startswith("received: ")]
    assert len(received) == 2 and all(" machine i-0c0ffee0123456789 worker " in line for line in received), received


def test_an_interrupted_worker_releases_its_job_at_once_and_exits_0(world):
    # A visibility of 10 minutes: the job can only be visible again because it was released.
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=600)
    [job] = world.send([{"plate": "P3", "mode": "first-hangs"}])
    interrupted = world.worker()
    wait_for(lambda: (world.marks / "P3.running").exists(), "the first attempt to start", details=world.details)
    assert world.counts() == (0, 1)
    # ECS stops the task (docker stop): on a spot interruption notice too, with ECS_ENABLE_SPOT_INSTANCE_DRAINING
    interrupted.process.send_signal(signal.SIGTERM)

    assert interrupted.wait() == 0, world.details()
    assert world.counts() == (1, 0), "the job is visible again at once"

    assert world.worker("--exit-when-empty").wait() == 0, world.details()
    assert world.attempts("P3") == 2
    assert world.complete(job) and world.counts() == (0, 0)
    lines = world.log(job.job_id)
    [released] = [line for line in lines if line.startswith("released: ")]
    assert "stopped (SIGTERM)" in released
    assert lines[-1].startswith("succeeded")


def test_a_job_id_with_odd_characters_gets_a_valid_log_stream(world):
    world.setup("{plate}")
    [job] = world.send([{"plate": "a/b:c*d é 10%", "mode": "ok"}])

    assert world.worker("--exit-when-empty").wait() == 0, world.details()

    streams = [stream["logStreamName"] for stream in world.logs.describe_log_streams(
        logGroupName=world.settings.LOG_GROUP_NAME)["logStreams"]]
    assert streams == [job.job_id]
    # CloudWatch's rule for stream names: 1 to 512 characters, no ':' or '*'.
    assert re.fullmatch(r"[^:*]{1,512}", job.job_id)
    assert world.log(job.job_id)[-1].startswith("succeeded")


def test_a_container_runs_docker_cores_workers_makes_no_alarm_and_logs_resources(world):
    world.setup("{plate}", DOCKER_CORES=2)
    jobs = world.send([{"plate": f"P{i}", "mode": "slow:1"} for i in range(4)])
    (world.tmp_path / "instance-id").write_text("i-0c0ffee\n")
    container = world.worker("--exit-when-empty", instance_id_file=str(world.tmp_path / "instance-id"),
                             resources_seconds=0.2)
    assert container.wait() == 0, world.details()

    assert all(world.complete(job) for job in jobs) and world.counts() == (0, 0)
    workers = {re.search(r"pid (\d+)", world.log(job.job_id)[0]).group(1) for job in jobs}
    assert len(workers) == 2, "both worker processes took jobs"
    # the machine's idle alarm is the monitor's to make (chalicelib/monitor/idle_alarm.py): a container has no alarm
    # rights
    assert aws.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert re.search(r"resources: disk \d+% \([\d.]+ GiB free\), inodes \d+%, memory \d+%", container.output)


def test_workers_release_their_jobs_when_the_supervisor_is_killed(world):
    # The supervisor dies by SIGKILL but its machine lives on: its workers must not run orphaned.
    world.setup("{plate}", SQS_MESSAGE_VISIBILITY=600)
    world.send([{"plate": "P4", "mode": "first-hangs"}])
    container = world.worker()
    wait_for(lambda: (world.marks / "P4.running").exists(), "the first attempt to start", details=world.details)

    container.process.kill()  # the supervisor only; its worker process gets SIGTERM from the kernel

    wait_for(lambda: world.counts() == (1, 0), "the orphaned worker to release its job", timeout=30,
             details=world.details)
    assert any(line.startswith("released: stopped (SIGTERM)") for line in world.log("first-hangs-P4"))
