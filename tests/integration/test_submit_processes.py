"""`submit` from several processes, through the moto server (other processes reach it over HTTP): every job
arrives exactly once, a failure or Ctrl-C says exactly how many went, no sending process outlives the command.

The file-size threshold is lowered (PROCESS_JOBS) and two CPUs assumed, so 1,000 jobs take the path a 20,000-job
file takes. The caller's own sending is slowed where a test needs the other process to take part: it sends from
the start and would otherwise finish 1,000 jobs before another interpreter has booted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import operations.submit as submit_module
from chalicelib import aws as clients
from chalicelib.model.jobs import parse_job_document
from cli import cli
from operations.setup import resources
from tests.faults import FaultProxy
from tests.integration.world import write_config, write_jobs
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
JOBS = 1000


@pytest.fixture
def two_processes(monkeypatch):
    monkeypatch.setattr(submit_module, "PROCESS_JOBS", 100)
    monkeypatch.setattr(submit_module, "usable_cpus", lambda: 2)


@pytest.fixture
def slow_caller(monkeypatch):
    """This process sends one batch at a time, 0.1 s each (the other process, a fresh interpreter, is not
    slowed); two requests in flight per process, so this one holds two batches at most. Once it has timed its
    round trip (the first PROBE_BATCHES batches, sent before the other process is given any) it waits until the
    queue holds a batch it did not send: how long the other interpreter takes to boot depends on the machine's
    load, not on the code, so it is not raced. Returns the count of each batch this process sent."""
    real, lock, sent = submit_module.send_batch, threading.Lock(), []
    monkeypatch.setattr(submit_module, "in_flight_for", lambda round_trip: 2)

    def one_at_a_time(sqs, url, *args, **kwargs):
        with lock:
            if len(sent) >= submit_module.PROBE_BATCHES:
                wait_for(lambda: _queued(sqs, url) > sum(sent), "a batch from the other sending process")
            time.sleep(0.1)
            sent.append(real(sqs, url, *args, **kwargs))
            return sent[-1]

    monkeypatch.setattr(submit_module, "send_batch", one_at_a_time)
    return sent


def _messages(settings) -> list[dict]:
    """Every message in the queue (deleted as read, so moto stays fast), with its attributes."""
    sqs = clients.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600,
                                          MessageAttributeNames=["All"]).get("Messages"):
        found += messages
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)])
    return found


def test_a_large_file_goes_out_from_two_processes_each_job_exactly_once_and_tagged(moto_server, tmp_path, settings,
                                                                                    two_processes, slow_caller):
    resources.setup(settings)
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, JOBS)), "--config",
                                      str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"submitted {JOBS} jobs to TestAppQueue\n"
    messages = _messages(settings)
    plates = sorted(json.loads(message["Body"])["group"]["plate"] for message in messages)
    assert plates == [f"P{index:05d}" for index in range(JOBS)]
    assert {message["MessageAttributes"]["dsr-app"]["StringValue"] for message in messages} == {"TestApp"}
    assert len(slow_caller) < JOBS // 10  # batches: the other process sent the rest


def test_aws_refusing_part_way_is_one_line_with_exactly_what_was_sent(moto_server, tmp_path, settings, monkeypatch,
                                                                      two_processes, slow_caller):
    resources.setup(settings)
    forwarded = []

    def refuse_after_30_batches(request):
        if request.target == "AmazonSQS.SendMessageBatch":
            if len(forwarded) >= 30:
                return "sqs:KmsAccessDenied"  # not retried: the queue's key refuses
            forwarded.append(request)
        return None

    result = submit_through_proxy(moto_server, refuse_after_30_batches, tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: sent 300 of {JOBS} jobs, then stopped: KmsAccessDenied: An error occurred "
                           "(KmsAccessDenied)"), line
    assert len(_messages(settings)) == 300
    assert len(slow_caller) < 30  # the other process sent some of the 30 batches


def test_a_sending_process_killed_part_way_is_reported_with_what_was_counted(moto_server, tmp_path, settings,
                                                                             monkeypatch, two_processes, slow_caller):
    import multiprocessing

    resources.setup(settings)
    seen = []

    def kill_the_others_at_batch_20(request):
        if request.target == "AmazonSQS.SendMessageBatch":
            seen.append(request)
            if len(seen) == 20:
                for child in multiprocessing.active_children():
                    if child.name.startswith("submit-"):
                        os.kill(child.pid, signal.SIGKILL)
        return

    # the killed process's connections break: not news here
    result = submit_through_proxy(moto_server, kill_the_others_at_batch_20, tmp_path, monkeypatch, quiet=True)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    prefix = "error: sent at least "
    assert line.startswith(prefix) and f" of {JOBS} jobs, then stopped: a sending process died (exit status -9)" in line
    counted = int(line[len(prefix):].split()[0])
    in_queue = len(_messages(settings))
    assert 0 < counted <= in_queue < JOBS  # what it could not count is in the queue, and said to be "at least"


def test_a_missing_queue_is_one_line_and_the_processes_started_for_it_are_gone(moto_server, tmp_path, two_processes):
    import multiprocessing

    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, JOBS)), "--config",
                                      str(write_config(tmp_path))])
    assert result.exit_code == 2
    assert result.stderr == "error: queue 'TestAppQueue' does not exist; run 'python cli.py setup' first\n"
    assert [child for child in multiprocessing.active_children() if child.name.startswith("submit-")] == []


def test_under_a_session_factory_everything_is_sent_from_this_process(aws, settings, monkeypatch, two_processes):
    """Local mode makes its clients through a session factory other processes do not have: one process only."""
    import boto3

    from operations.submit import submit

    def no_other_processes(*args, **kwargs):
        raise AssertionError("another process was started")

    monkeypatch.setattr(submit_module, "_Children", no_other_processes)
    resources.setup(settings)
    jobs = parse_job_document({"groups": [{"plate": f"P{index:05d}"} for index in range(300)]}, settings)
    with clients.sessions_from(lambda region, profile: boto3.session.Session(region_name=region)):
        assert submit(settings, jobs, processes=None).sent == 300
    assert len(_messages(settings)) == 300


# A user's `python cli.py submit` in its own process group, as a terminal runs it; the threshold lowered as above.
_SUBMIT = ("import sys; import operations.submit as s; s.PROCESS_JOBS = 100; s.usable_cpus = lambda: 2; "
           "import cli; sys.argv[0] = 'cli.py'; sys.exit(cli.cli())")


def _children_of(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_every_process_and_says_exactly_how_many_jobs_went(moto_server, tmp_path, settings):
    resources.setup(settings)
    total = 20_000
    sqs = clients.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    command = subprocess.Popen([sys.executable, "-c", _SUBMIT, "submit", str(write_jobs(tmp_path, total)),
                                "--config", str(write_config(tmp_path))], cwd=REPO, env=os.environ.copy(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def senders_while_running() -> list[int]:
        assert command.poll() is None, "the command ended before a second sending process started"
        return [pid for pid, cmdline in _children_of(command.pid).items() if "spawn_main" in cmdline]

    def well_under_way() -> bool:  # the other process booted or booting
        assert command.poll() is None, "the command ended before 2,000 jobs were queued"
        return _queued(sqs, url) >= 2000

    try:
        senders = wait_for(senders_while_running, "a second sending process to start")
        wait_for(well_under_way, "2,000 jobs in the queue")
        os.killpg(command.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process of the group
        out, err = command.communicate(timeout=60)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
    assert command.returncode == 130, err

    def running_senders() -> list[int]:
        return [pid for pid in senders if Path(f"/proc/{pid}").exists()]

    # a sender ends with the command, though on a busy machine its exit may be seen a moment later
    wait_for(lambda: not running_senders(), "the sending processes to end with the command", timeout=30,
             details=lambda: f"still running: {running_senders()}")
    [line] = err.splitlines()
    sent = _queued(sqs, url)  # counted once no sender is left: one that outlived the command would have changed it
    assert sent < total
    assert line.startswith(f"error: sent {sent} of {total} jobs, then stopped: interrupted (Ctrl-C)"), line
    assert out == ""


def _queued(sqs, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def submit_through_proxy(moto_server, rule, tmp_path, monkeypatch, quiet: bool = False):
    """`cli.py submit` of JOBS jobs with every request (the other processes' too: they inherit the endpoint)
    passing through a FaultProxy applying `rule`; the endpoint is moto's again afterwards."""
    with FaultProxy(moto_server, rate=0, rule=rule) as proxy:
        if quiet:
            proxy._server.handle_error = lambda *args: None
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients.forget_sessions()
        result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, JOBS)), "--config",
                                          str(write_config(tmp_path))])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    clients.forget_sessions()
    return result
