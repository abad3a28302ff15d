"""When jobs fail: `failed`, `logs`, `redrive` and GET /runs/{app}/failed, on two runs that share an account, a
bucket and DS's default dead-letter queue. Real workers fail the jobs; only this run's are listed and moved."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model.jobs import load_job_file
from chalicelib.model.names import success_marker_key
from chalicelib.monitor import deadletters
from cli import cli
from tests.integration.world import drain, fail_every_job, reconcile_until_gone
from tests.worker_world import run_workers, script

FAILING = ("P00000", "P00001")  # of the started run's 12 jobs; every job of the victim run fails


@pytest.fixture
def failures(started, victim):
    run_workers(started, script("import sys; plate = sys.argv[1]; print('measuring', plate)\n"
                                f"if plate in {FAILING!r}: print('error: no such file sampl.py'); sys.exit(2)"))
    run_workers(victim, script("import sys; print('victim fails'); sys.exit(1)"))
    return started


def cli_run(account, *args):
    return CliRunner().invoke(cli, [*args, "--config", str(account.config_path)])


def dead_letter_runs() -> list[str]:
    """The run (message attribute) of each message in the shared dead-letter queue."""
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    runs, handles = [], []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                          MessageAttributeNames=["All"]).get("Messages"):
        runs.extend(message["MessageAttributes"]["dsr-app"]["StringValue"] for message in messages)
        handles.extend(message["ReceiptHandle"] for message in messages)
    for handle in handles:  # visible again, as before the look
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return sorted(runs)


def test_failed_lists_only_this_runs_failed_jobs_with_their_last_lines(failures, client):
    table = cli_run(failures, "failed")
    listed = json.loads(cli_run(failures, "failed", "--json").output)

    assert table.exit_code == 0, table.output
    assert "P00000  3 attempt(s), failed " in table.output and ": exit code 2 after" in table.output
    assert "    | error: no such file sampl.py" in table.output
    assert table.output.endswith("2 failed job(s); the whole log of one: python cli.py logs JOB_ID; send them again: "
                                 "python cli.py redrive\n")
    assert [(job["job_id"], job["attempts"], job["exit_code"], job["last_lines"][-1]) for job in listed] == [
        (job_id, 3, 2, "error: no such file sampl.py") for job_id in FAILING]
    assert [job["job_id"] for job in client.http.get("/runs/TestApp/failed").json_body["failed"]] == list(FAILING)
    assert len(client.http.get("/runs/Victim/failed").json_body["failed"]) == 3
    assert client.http.get("/runs/Nobody/failed").status_code == 404


def test_logs_prints_every_attempt_of_one_job(failures):
    result = cli_run(failures, "logs", "P00000")

    assert result.exit_code == 0, result.output
    assert result.output.count("measuring P00000") == 3 and result.output.count("failed: exit code 2") == 3
    missing = cli_run(failures, "logs", "P99999")
    assert missing.exit_code == 2 and missing.output.startswith("error: no log for job 'P99999' in log group TestApp")


def test_redrive_sends_this_runs_failed_jobs_back_once_with_a_fresh_attempt_count(failures, victim):
    assert dead_letter_runs() == ["TestApp"] * 2 + ["Victim"] * 3  # one shared queue
    result = cli_run(failures, "redrive")
    again = cli_run(failures, "redrive")

    assert result.exit_code == 0, result.output
    assert result.output == "sent 2 failed job(s) back to TestAppQueue (2 taken off user_DeadMessages)\n"
    assert again.output == "sent 0 failed job(s) back to TestAppQueue (0 taken off user_DeadMessages)\n"
    assert dead_letter_runs() == ["Victim"] * 3  # though two of its bodies equal the ones redriven
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="TestAppQueue")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"])
    assert sorted(json.loads(m["Body"])["group"]["plate"] for m in messages["Messages"]) == list(FAILING)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in messages["Messages"]} == {"1"}
    assert cli_run(failures, "failed").output.startswith("no failed job in run TestApp")
    assert "3 failed job(s)" in cli_run(victim, "failed").output  # the other run's failures are its own still


def test_redrive_of_named_jobs_moves_only_those_and_warns_of_unknown_ids(failures):
    result = cli_run(failures, "redrive", "P00001", "P77777")

    assert result.exit_code == 0, result.output
    assert "warning: P77777 is not a failed job of run TestApp; not sent" in result.output
    assert "sent 1 failed job(s) back to TestAppQueue (1 taken off user_DeadMessages)" in result.output
    assert [job["job_id"] for job in json.loads(cli_run(failures, "failed", "--json").output)] == ["P00000"]


def test_failed_waits_for_another_readers_dead_letters_and_warns_when_they_stay_held(started, monkeypatch):
    """A reader that stopped half-way through the shared dead-letter queue keeps what it read hidden for a minute:
    `failed` waits for it (deadletters.OTHERS_WAIT_SECONDS, shortened here), then lists what it saw and says the
    list may miss jobs, rather than presenting a partial list as the whole."""
    monkeypatch.setattr(deadletters, "OTHERS_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(deadletters, "OTHERS_POLL_SECONDS", 0.1)
    fail_every_job(started)
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)  # the reader that stopped

    result = cli_run(started, "failed", "--json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 11
    assert "the dead-letter queue user_DeadMessages counted messages this look could not read" in result.stderr


def test_a_job_whose_worker_was_killed_on_its_last_attempt_is_listed_and_redriven(started, victim):
    """A worker killed during a job's last attempt (a spot reclaim, the OOM killer) writes no failure record, and
    SQS still moves the message to the dead-letter queue once its receives are spent: the job is failed, so
    `failed` lists it and `redrive` sends it back (chaos seeds 14, 16 and 2808 found it listed nowhere). The
    victim run's own dead letters, in the same queue, are neither listed nor moved."""
    fail_every_job(victim)
    fail_every_job(started)  # every attempt of every job ends with its worker gone: no record anywhere
    listed = json.loads(cli_run(started, "failed", "--json").output)
    assert sorted(job["job_id"] for job in listed) == [f"P{index:05d}" for index in range(12)]
    assert all("no failure record: its worker was stopped" in job["reason"] for job in listed)

    result = cli_run(started, "redrive")

    assert result.exit_code == 0, result.output
    sqs = clients.client("sqs")
    queue = sqs.get_queue_url(QueueName=started.settings.SQS_QUEUE_NAME)["QueueUrl"]
    assert int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"]) == 12
    assert dead_letter_runs() == ["Victim"] * 3
    assert json.loads(cli_run(started, "failed", "--json").output) == []


def test_chaos_seed_229_a_copy_a_redrive_could_not_take_off_the_dead_letter_queue_is_listed_by_no_one(
        failures, victim, client, monkeypatch):
    """Two redrives at once (and other runs' ends sweeping the shared queue): one redrive's removal met the copies
    held by the other readers until its wait ran out, and removes only what it sees. The copy left behind had no
    failure record any more, so `failed` listed the job as killed on its last attempt while it waited in the queue
    (the summary: not run). The redrive notes each message it sent back (runs/APP/sent-back/): such a copy is
    listed by no one, counted in no summary, and the next redrive takes it off."""
    monkeypatch.setattr(deadletters, "OTHERS_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(deadletters, "OTHERS_POLL_SECONDS", 0.1)
    sqs = clients.client("sqs")
    dead_letter_url = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    held = sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    assert len(held) == 5  # another reader holds every copy, the two of this run's and the victim's three

    result = cli_run(failures, "redrive")
    for message in held:  # the other reader is done
        sqs.change_message_visibility(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=0)

    assert result.exit_code == 0, result.output
    assert result.output == "sent 2 failed job(s) back to TestAppQueue (0 taken off user_DeadMessages)\n"
    assert dead_letter_runs() == ["TestApp"] * 2 + ["Victim"] * 3  # the copies are still there
    assert json.loads(cli_run(failures, "failed", "--json").output) == []
    assert client.http.get("/runs/TestApp/failed").json_body["failed"] == []
    assert len(client.http.get("/runs/Victim/failed").json_body["failed"]) == 3  # another run's are its own still

    again = cli_run(failures, "redrive")

    assert again.output == "sent 0 failed job(s) back to TestAppQueue (2 taken off user_DeadMessages)\n"
    assert dead_letter_runs() == ["Victim"] * 3


def test_a_run_whose_redriven_copies_stay_in_the_dead_letter_queue_ends_with_none_of_them_failed(failures,
                                                                                                 monkeypatch):
    """The summary's count at teardown reads the dead-letter queue as `failed` does: a copy already sent back is no
    failure (its job ran again, here done)."""
    monkeypatch.setattr(deadletters, "OTHERS_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(deadletters, "OTHERS_POLL_SECONDS", 0.1)
    sqs = clients.client("sqs")
    dead_letter_url = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    held = sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    assert "(0 taken off user_DeadMessages)" in cli_run(failures, "redrive").output
    for message in held:
        sqs.change_message_visibility(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=0)
    drain(failures)  # the two jobs sent back, done this time

    reconcile_until_gone(failures)

    summary = json.loads(clients.client("s3").get_object(
        Bucket="test-bucket", Key="monitors/finished/TestApp_summary.json")["Body"].read())
    assert (summary["jobs_failed"], summary["jobs_failed_exact"]) == (0, True)
    assert dead_letter_runs().count("TestApp") == 2  # left for the next redrive; counted by no one


def test_chaos_seed_61_a_dead_lettered_job_whose_outputs_are_complete_is_done_not_failed(started, client):
    """Seed 61: a worker was killed after its upload and before its delete on a job's last receive; SQS dead-lettered
    the message, with no failure record, while the job was done. `failed`, the status API and the summary count it
    done, by one rule: its outputs listed complete, with the worker's `_SUCCESS` marker. A job whose worker was killed
    during its upload (outputs there, no marker) is failed still."""
    jobs = {job.job_id: job for job in load_job_file(started.folder / "jobs.json", started.settings)}
    s3, bucket = clients.client("s3"), started.settings.DESTINATION_BUCKET
    for job_id in ("P00002", "P00003"):  # both uploaded their output; P00003's worker was killed before its marker
        s3.put_object(Bucket=bucket, Key=f"{jobs[job_id].output_prefix}/result.txt", Body=b"measured")
    s3.put_object(Bucket=bucket, Key=success_marker_key(jobs["P00002"].output_prefix), Body=b"")
    fail_every_job(started)  # every attempt of every job ends with its worker gone before its delete

    listed = json.loads(cli_run(started, "failed", "--json").output)
    from_api = client.http.get("/runs/TestApp/failed").json_body["failed"]
    reconcile_until_gone(started)

    failed = [f"P{index:05d}" for index in range(12) if index != 2]
    assert sorted(job["job_id"] for job in listed) == failed
    assert sorted(job["job_id"] for job in from_api) == failed
    summary = json.loads(s3.get_object(Bucket="test-bucket", Key="monitors/finished/TestApp_summary.json")[
        "Body"].read())
    assert (summary["jobs_done"], summary["jobs_failed"], summary["jobs_failed_exact"]) == (1, 11, True)
    assert dead_letter_runs() == ["TestApp"] * 12  # the done job's copy is only not counted: nothing was deleted
