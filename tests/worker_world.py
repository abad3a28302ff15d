"""Helpers for worker tests: the queues setup would make, jobs, real worker processes (waits: tests/waiting.py).

The queue pair is made here the way `cli.py setup` makes it (a dead-letter
queue and a redrive policy with maxReceiveCount = JOB_RETRIES), so the worker
tests do not depend on setup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from chalicelib import aws
from chalicelib.aws.sqs import queue_depth
from chalicelib.model.jobs import Job, parse_job_document
from chalicelib.model.settings import Settings
from tests.conftest import make_settings
from tests.waiting import wait_for as wait_for  # its home before tests/waiting.py: still importable from here
from worker.options import WorkerOptions
from worker.worker import Worker

REPO = Path(__file__).resolve().parent.parent

# A job program for the tests: `job.py OUT MARKS MODE VALUE...`. Every run appends
# a line to MARKS/attempts, so a test can count how often a job really ran.
JOB_SCRIPT = textwrap.dedent('''
    import json, os, pathlib, sys, time
    out, marks, mode, values = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
    name = "".join(c if c.isalnum() else "_" for c in values[0]) if values else "job"
    with open(marks / (name + ".attempts"), "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    attempt = len((marks / (name + ".attempts")).read_text().splitlines())
    print(f"job {name} attempt {attempt} mode {mode}", flush=True)
    print("", flush=True)

    def sleep(seconds):
        # Exit when the worker is gone (SIGKILL): a real machine would have died with it.
        parent, end = os.getppid(), time.monotonic() + seconds
        while time.monotonic() < end:
            if os.getppid() != parent:
                sys.exit(9)
            time.sleep(0.05)

    if mode == "fail":
        print("failing on purpose", flush=True)
        sys.exit(3)
    if mode.startswith("slow:"):
        sleep(float(mode[5:]))
    if mode == "first-hangs" and attempt == 1:
        (marks / (name + ".running")).write_text("yes")
        sleep(600)
    pathlib.Path(out, "sub").mkdir()
    pathlib.Path(out, "args.json").write_text(json.dumps(values))
    pathlib.Path(out, "sub", "note.txt").write_text("done by attempt " + str(attempt))
    print("wrote outputs", flush=True)
''')


def write_job_script(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    marks = tmp_path / "marks"
    marks.mkdir()
    return script, marks


def job_command(script: Path, marks: Path, *values: str) -> list[str]:
    return [sys.executable, str(script), "{output_dir}", str(marks), "{mode}", *values]


def make_world(sqs, s3, settings: Settings) -> tuple[str, str]:
    """The bucket, the job queue and its dead-letter queue; returns (queue url, dead-letter queue url)."""
    s3.create_bucket(Bucket=settings.AWS_BUCKET)
    dlq_url = sqs.create_queue(QueueName=settings.SQS_DEAD_LETTER_QUEUE)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=settings.SQS_QUEUE_NAME, Attributes={
        "VisibilityTimeout": str(settings.SQS_MESSAGE_VISIBILITY),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.JOB_RETRIES}),
    })["QueueUrl"]
    return queue_url, dlq_url


def send_jobs(sqs, queue_url: str, settings: Settings, groups: list[dict], **shared) -> list[Job]:
    jobs = parse_job_document({**shared, "groups": groups}, settings)
    for job in jobs:
        sqs.send_message(QueueUrl=queue_url, MessageBody=job.body)
    return jobs


def queue_counts(sqs, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    depth = queue_depth(sqs, queue_url)
    return depth.waiting, depth.in_flight


def s3_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", ()))


def log_lines(logs, group: str, stream: str) -> list[str]:
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [event["message"] for event in events]


def worker_env(endpoint: str, settings: Settings, **knobs: str) -> dict[str, str]:
    """Only what a worker container would have: no profile, dummy credentials, the endpoint, DSR_*."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": settings.AWS_REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # Small waits so the suite is fast; the code paths are the production ones.
        "DSR_WAIT_SECONDS": "1",
        "DSR_RETRY_DELAY_SECONDS": "1",
        "DSR_LOG_FLUSH_SECONDS": "0.5",
        "DSR_STOP_GRACE_SECONDS": "5",
        **settings.to_environment(),
    }
    env.update({"DSR_" + name.upper(): str(value) for name, value in knobs.items()})
    return env


class WorkerProcess:
    """`python -m worker` as a real process; its output goes to a file shown when a wait fails."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str, name: str = "worker"):
        self.output_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        self._output = open(self.output_path, "wb")  # noqa: SIM115 - open while the worker runs; close() closes it
        self.process = subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=REPO, env=env,
                                        stdout=self._output, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout} s; its output:\n{self.output}") from None

    def worker_pids(self) -> list[int]:
        """The supervisor's worker processes (its direct children), read from /proc."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return sorted(pids)

    def kill_all(self) -> None:
        """SIGKILL the worker's whole process group: the machine died."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, 9)
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill_all()
        self._output.close()


# No waiting in these tests: short polls and failed jobs visible again at once.
FAST = WorkerOptions(wait_seconds=0, retry_delay_seconds=0, log_flush_seconds=0.2)


def process_alive(pid: int) -> bool:
    """A process that has not died (a zombie has: only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between the open and the read
        return False


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def aws_clients():
    return {"sqs": aws.client("sqs"), "s3": aws.client("s3"), "logs": aws.client("logs")}


def world(clients, options=FAST, **overrides):
    """A Worker in this process with its settings, over a fresh queue and dead-letter queue."""
    settings = make_settings(**overrides)
    queue_url, dlq_url = make_world(clients["sqs"], clients["s3"], settings)
    worker = Worker(settings, options=options, **clients)
    return settings, worker, queue_url, dlq_url


def run_workers(account, command: tuple[str, ...]) -> None:
    """The run's jobs to their end: done, or failed JOB_RETRIES times and moved to the dead-letter queue."""
    settings = dataclasses.replace(account.settings, COMMAND=command)
    worker = Worker(settings, options=FAST, **aws_clients())
    worker.run_forever(exit_when_empty=True)
    worker.close()


def script(code: str) -> tuple[str, ...]:
    """A COMMAND running Python `code` with the job's plate as sys.argv[1]."""
    return (sys.executable, "-c", code, "{plate}")
