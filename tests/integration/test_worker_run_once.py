"""Worker.run_once in this process against moto (mock_aws): the edges of one message's life."""

from __future__ import annotations

import pytest

from tests.waiting import wait_for
from tests.worker_world import FAST, log_lines, python, queue_counts, s3_keys, send_jobs, world
from worker import upload as worker_upload
from worker.options import WorkerOptions
from worker.upload import Transfers
from worker.worker import Outcome


def test_a_message_that_is_not_a_job_is_never_run_and_ends_in_the_dead_letter_queue(clients, tmp_path, caplog):
    marker = tmp_path / "ran"
    _, worker, queue_url, dlq_url = world(
        clients, JOB_RETRIES=2, COMMAND=python("import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", str(marker)))
    sqs = clients["sqs"]
    message_id = sqs.send_message(QueueUrl=queue_url, MessageBody='{"not": "a job"}')["MessageId"]

    assert [worker.run_once() for _ in range(3)] == [Outcome.NOT_A_JOB, Outcome.NOT_A_JOB, Outcome.EMPTY]

    assert not marker.exists()
    assert f"message {message_id} is not a job of this run" in caplog.text
    assert queue_counts(sqs, queue_url) == (0, 0)
    assert [m["MessageId"] for m in sqs.receive_message(QueueUrl=dlq_url)["Messages"]] == [message_id]


def test_inputs_are_downloaded_into_input_dir(clients):
    copy = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], dirs_exist_ok=True)"
    settings, worker, queue_url, _ = world(clients, COMMAND=python(copy, "{input_dir}", "{output_dir}"),
                                           INPUT_PREFIX="inputs/{plate}")
    s3 = clients["s3"]
    s3.put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P1/a.csv", Body=b"1,2")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P1/deep/b.csv", Body=b"3,4")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P10/not-mine.csv", Body=b"no")
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    assert s3_keys(s3, settings.AWS_BUCKET, job.output_prefix) == ["TestApp/P1/_SUCCESS", "TestApp/P1/a.csv",
                                                                     "TestApp/P1/deep/b.csv"]
    lines = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")
    assert "download 2 files" in lines[-1]
    assert [line for line in lines if line.startswith("inputs: ")] == [
        f"inputs: 2 files from s3://{settings.AWS_BUCKET}/inputs/P1/"]
    assert lines.index(f"inputs: 2 files from s3://{settings.AWS_BUCKET}/inputs/P1/") < next(
        index for index, line in enumerate(lines) if line.startswith("started: "))


def test_a_job_whose_prefix_holds_no_input_says_so_in_its_log(clients):
    settings, worker, queue_url, _ = world(clients, COMMAND=python("print('nothing to read')"),
                                           INPUT_PREFIX="inputs/{plate}")
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}, {"plate": "P2"}])
    clients["s3"].put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P2/only.csv", Body=b"1")

    assert [worker.run_once(), worker.run_once()] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]

    said = {plate: [line for line in log_lines(clients["logs"], settings.LOG_GROUP_NAME, plate)
                    if line.startswith("inputs: ")] for plate in ("P1", "P2")}
    assert said == {"P1": [f"inputs: 0 files from s3://{settings.AWS_BUCKET}/inputs/P1/"],
                    "P2": [f"inputs: 1 files from s3://{settings.AWS_BUCKET}/inputs/P2/"]}


def test_with_require_inputs_a_job_without_input_fails_before_its_command_and_is_retried(clients, tmp_path):
    marker = tmp_path / "ran"
    settings, worker, queue_url, dlq_url = world(
        clients, JOB_RETRIES=2, REQUIRE_INPUTS=True, INPUT_PREFIX="inputs/{plate}",
        COMMAND=python("import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", str(marker)))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED

    assert not marker.exists()
    last = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")[-1]
    assert last.startswith(f"failed: no input files under s3://{settings.AWS_BUCKET}/inputs/P1/; total ")
    assert "it will be retried" in last
    assert queue_counts(clients["sqs"], queue_url) == (1, 0)  # visible again for its retry (no delay here)
    assert queue_counts(clients["sqs"], dlq_url) == (0, 0)


def test_with_require_inputs_a_job_with_its_input_runs(clients):
    settings, worker, queue_url, _ = world(clients, REQUIRE_INPUTS=True, INPUT_PREFIX="inputs/{plate}",
                                           COMMAND=python("print('ok')"))
    clients["s3"].put_object(Bucket=settings.AWS_BUCKET, Key="inputs/P1/a.csv", Body=b"1")
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED


def test_a_job_without_input_prefix_says_it_downloaded_nothing(clients):
    settings, worker, queue_url, _ = world(clients, COMMAND=python("print('inputs: 7 of mine')"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    lines = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")
    assert [line for line in lines if "inputs: " in line and not line.startswith("started: ")] == [
        "inputs: none (INPUT_PREFIX is not set)", "output: inputs: 7 of mine"]


def test_an_output_linking_outside_the_folder_fails_the_job_and_nothing_is_uploaded(clients, tmp_path):
    secret = tmp_path / "credentials"
    secret.write_text("secret")
    link = ("import os, sys; open(sys.argv[1] + '/ok.txt', 'w').write('x'); "
            "os.symlink(sys.argv[2], sys.argv[1] + '/leak')")
    settings, worker, queue_url, _ = world(clients, COMMAND=python(link, "{output_dir}", str(secret)))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED
    worker.close()  # its busy period's lease goes with it
    assert s3_keys(clients["s3"], settings.AWS_BUCKET) == []
    last = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")[-1]
    assert "upload failed: output leak is a symlink to" in last and "refusing" in last
    assert "secret" not in last.replace(str(secret), "")
    assert queue_counts(clients["sqs"], queue_url) == (1, 0)


def test_a_link_inside_the_output_folder_is_uploaded_as_a_file(clients):
    link = ("import os, sys; open(sys.argv[1] + '/real.txt', 'w').write('x'); "
            "os.symlink('real.txt', sys.argv[1] + '/alias.txt')")
    settings, worker, queue_url, _ = world(clients, COMMAND=python(link, "{output_dir}"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    worker.close()  # its busy period's lease goes with it
    assert s3_keys(clients["s3"], settings.AWS_BUCKET) == ["TestApp/P1/_SUCCESS", "TestApp/P1/alias.txt",
                                                               "TestApp/P1/real.txt"]


def test_a_job_past_its_timeout_is_stopped_and_failed(clients):
    options = WorkerOptions(**{**FAST.__dict__, "stop_grace_seconds": 1})
    settings, worker, queue_url, _ = world(clients, options, JOB_TIMEOUT=0.5, COMMAND=python("import time; "
                                                                                             "time.sleep(60)"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED
    assert log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")[-1].startswith("failed: timed out after 0.5 s")


def test_a_program_that_cannot_start_fails_the_job_with_a_clear_line(clients):
    settings, worker, queue_url, _ = world(clients, COMMAND=["/no/such/program", "{plate}"])
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.FAILED
    assert log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")[-1].startswith(
        "failed: cannot start '/no/such/program': No such file or directory")


def test_the_job_log_is_sent_in_batches_not_one_call_per_line(clients):
    settings, worker, queue_url, _ = world(clients, COMMAND=python("for i in range(2000): print('line', i)"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    calls = []
    clients["logs"].meta.events.register("before-call.cloudwatch-logs.PutLogEvents", lambda **_: calls.append(1))

    assert worker.run_once() is Outcome.SUCCEEDED
    lines = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")
    assert [line for line in lines if line.startswith("line ")] == [f"line {i}" for i in range(2000)]
    assert 1 <= len(calls) <= 5


def test_a_stop_requested_before_polling_takes_no_message(clients):
    settings, worker, queue_url, _ = world(clients)
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    worker.request_stop("test")

    assert worker.run_once() is Outcome.STOPPED
    assert queue_counts(clients["sqs"], queue_url) == (1, 0)


def test_the_command_gets_the_configs_environment(clients):
    write = "import os, sys; open(sys.argv[1] + '/env.txt', 'w').write(os.environ['THREADS'])"
    settings, worker, queue_url, _ = world(clients, COMMAND=python(write, "{output_dir}"), ENVIRONMENT={"THREADS": "4"})
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    body = clients["s3"].get_object(Bucket=settings.AWS_BUCKET, Key=f"{job.output_prefix}/env.txt")["Body"]
    assert body.read() == b"4"


def test_a_job_stopped_mid_run_is_requeued_without_spending_a_retry(clients, tmp_path):
    import threading

    started = tmp_path / "started"
    settings, worker, queue_url, dlq_url = world(clients, JOB_RETRIES=1, COMMAND=python(
        "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(60)", str(started), "{plate}"))
    sqs = clients["sqs"]
    sent = send_jobs(sqs, queue_url, settings, [{"plate": "P1"}])[0]
    # mid-run: once the command runs (a stop before the worker polls would take no message at all)
    stopper = threading.Thread(target=lambda: (wait_for(started.exists, "the command to start"),
                                               worker.request_stop("spot interruption notice")))
    stopper.start()

    assert worker.run_once() is Outcome.RELEASED
    stopper.join()

    # a fresh copy waits, visible at once, its receive count back at zero; nothing went to the DLQ
    again = sqs.receive_message(QueueUrl=queue_url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again["Messages"]] == [(sent.body, "1")]
    assert sqs.receive_message(QueueUrl=dlq_url).get("Messages", []) == []
    lines = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")
    assert any(line.startswith("released: stopped (spot interruption notice)") for line in lines)


def _a_bug(*args, **kwargs):
    raise TypeError("a bug in the transfer code")


@pytest.mark.parametrize("where", ["download", "upload"])
def test_a_bug_in_the_transfer_code_is_an_internal_error_not_a_failed_transfer(clients, monkeypatch, where):
    # Only AWS's errors mean the transfer failed; a bug of ours must surface as one, not pass for the job's failure
    if where == "download":
        monkeypatch.setattr(Transfers, "download_prefix", _a_bug)
    else:
        monkeypatch.setattr(worker_upload, "_metadata", _a_bug)  # called by upload_folder before anything is sent
    settings, worker, queue_url, _ = world(clients, INPUT_PREFIX="inputs/{plate}", COMMAND=python("print('ok')"))
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    with pytest.raises(TypeError, match="a bug in the transfer code"):
        worker.run_once()

    last = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")[-1]
    assert last.startswith("failed: internal error TypeError: a bug in the transfer code; it will be retried")
    assert queue_counts(clients["sqs"], queue_url) == (1, 0)  # visible again for another try
