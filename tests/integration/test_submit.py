"""`submit` on moto: every job arrives exactly once; a bad file or a missing queue sends nothing."""

import json

import botocore.exceptions
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from operations.setup import resources
from tests.integration.world import write_config, write_jobs


def _drain(settings) -> list[dict]:
    sqs = clients.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    bodies = []
    while True:
        # Deleting as we go keeps moto's queue small (moto slows down with depth).
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)])


def test_two_thousand_jobs_arrive_exactly_once_each(aws, tmp_path, settings):
    resources.setup(settings)
    jobs = write_jobs(tmp_path, 2000)
    result = CliRunner().invoke(cli, ["submit", str(jobs), "--config", str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stdout == "submitted 2000 jobs to TestAppQueue\n"  # no progress bar when not on a terminal
    bodies = _drain(settings)
    plates = sorted(body["group"]["plate"] for body in bodies)
    assert plates == [f"P{index:05d}" for index in range(2000)]
    assert all(body["pipeline"] == "measure" and "_comment" not in body for body in bodies)


def test_one_bad_group_submits_nothing(aws, tmp_path, settings):
    resources.setup(settings)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"groups": [{"plate": "A"}, {"plate": "B"}, {"well": "C"}]}))
    result = CliRunner().invoke(cli, ["submit", str(path), "--config", str(write_config(tmp_path))])
    assert result.exit_code == 2
    assert result.stderr == (f"error: {path}: groups[2]: missing key 'plate' used as {{plate}} in COMMAND; "
                             "add it to the group or to the top level\n")
    assert _drain(settings) == []


def test_submitting_the_same_file_twice_asks_for_append_and_sends_nothing_without_it(aws, tmp_path, settings):
    resources.setup(settings)
    args = ["submit", str(write_jobs(tmp_path, 3)), "--config", str(write_config(tmp_path))]
    first, second = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    appended = CliRunner().invoke(cli, [*args, "--append"])

    assert first.exit_code == 0 and second.exit_code == 2, second.output
    assert second.stderr == ("error: queue TestAppQueue already holds 3 job(s) of run TestApp (waiting or running): "
                             "sending the file again would run its jobs twice; add --append to send these jobs as "
                             "well, or --skip-done with --append to send only those not done; nothing was sent\n")
    assert appended.exit_code == 0 and appended.stdout == "submitted 3 jobs to TestAppQueue\n"
    bodies = _drain(settings)
    assert len(bodies) == 6


def test_every_message_carries_its_run_so_a_shared_dead_letter_queue_can_tell_runs_apart(aws, tmp_path, settings):
    resources.setup(settings)
    CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 12)), "--config", str(write_config(tmp_path))])
    sqs = clients.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    runs = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                          MessageAttributeNames=["All"]).get("Messages"):
        runs += [message["MessageAttributes"]["dsr-app"]["StringValue"] for message in messages]
    assert runs == ["TestApp"] * 12


def test_submit_without_setup_is_one_line_and_exit_2(aws, tmp_path):
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 3)), "--config",
                                      str(write_config(tmp_path))])
    assert result.exit_code == 2
    assert result.stderr == "error: queue 'TestAppQueue' does not exist; run 'python cli.py setup' first\n"


def test_skip_done_sends_only_jobs_without_outputs(aws, tmp_path, settings):
    resources.setup(settings)
    s3 = clients.client("s3", settings)
    s3.create_bucket(Bucket="test-bucket")
    for plate in ("P00001", "P00003"):
        s3.put_object(Bucket="test-bucket", Key=f"TestApp/{plate}/result.csv", Body=b"done")
    s3.put_object(Bucket="test-bucket", Key="TestApp/P00004/empty.csv", Body=b"")  # too small to count
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 5)), "--skip-done",
                                      "--config", str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stdout == "2 of 5 already done\nsubmitted 3 jobs to TestAppQueue\n"
    assert sorted(body["group"]["plate"] for body in _drain(settings)) == ["P00000", "P00002", "P00004"]


def test_skip_done_looks_for_outputs_in_the_destination_bucket(aws, tmp_path, settings):
    resources.setup(settings)
    s3 = clients.client("s3", settings)
    for bucket in ("test-bucket", "lab-results"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="lab-results", Key="TestApp/P00001/result.csv", Body=b"done")
    s3.put_object(Bucket="test-bucket", Key="TestApp/P00002/result.csv", Body=b"in AWS_BUCKET: not an output")
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 3)), "--skip-done",
                                      "--config", str(write_config(tmp_path, DESTINATION_BUCKET="lab-results"))])
    assert result.stdout == "1 of 3 already done\nsubmitted 2 jobs to TestAppQueue\n", result.output
    assert sorted(body["group"]["plate"] for body in _drain(settings)) == ["P00000", "P00002"]


def test_ds_spelling_submitjob_works(aws, tmp_path, settings):
    resources.setup(settings)
    result = CliRunner().invoke(cli, ["submitJob", str(write_jobs(tmp_path, 12)), "--config",
                                      str(write_config(tmp_path))])
    assert (result.exit_code, result.stdout) == (0, "submitted 12 jobs to TestAppQueue\n")


def test_aws_stopping_a_submit_part_way_is_one_line_exit_1_with_what_was_sent(aws, tmp_path, settings):
    """Not a mistake in the input (exit 2 means that): SQS refused part of the sending."""
    resources.setup(settings)
    calls = []

    def refuse_after_the_first(params, **_):
        calls.append(params)
        if len(calls) > 1:  # SQS answers the later batches with a refusal no retry can fix
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "KmsAccessDenied", "Message": "the queue's key refuses"}}, "SendMessageBatch")

    session = clients.session(settings.AWS_REGION, None)
    session.events.register("provide-client-params.sqs.SendMessageBatch", refuse_after_the_first)
    try:
        result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 40)), "--config",
                                          str(write_config(tmp_path))])
    finally:
        session.events.unregister("provide-client-params.sqs.SendMessageBatch", refuse_after_the_first)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    sent = len(_drain(settings))
    assert line.startswith(f"error: sent {sent} of 40 jobs, then stopped: ClientError: An error occurred "
                           "(KmsAccessDenied)"), line
    # what to do next must not send the queued jobs twice: --skip-done alone would (they have no outputs yet)
    assert line.endswith("; the queue keeps what was sent; sending the file again (--append) would queue those "
                         "jobs twice, and --skip-done leaves out only jobs whose outputs already exist"), line
    assert 10 <= sent < 40


def test_a_bad_group_at_the_end_of_a_large_file_submits_nothing(aws, tmp_path, settings):
    """The file is validated whole before the first message, though it is read (and sent) a job at a time."""
    resources.setup(settings)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"groups": [*({"plate": f"P{index:05d}"} for index in range(20_000)),
                                           {"well": "A01"}], "pipeline": "measure"}))
    result = CliRunner().invoke(cli, ["submit", str(path), "--config", str(write_config(tmp_path))])
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {path}: groups[20000]: missing key 'plate' used as {{plate}} in COMMAND; "
                             "add it to the group or to the top level\n")
    assert _drain(settings) == []


def test_a_job_file_changed_after_it_was_validated_submits_nothing(aws, tmp_path, settings):
    """The user saves the file again while submit checks the queue: what was validated is gone, and the new text
    was never validated, so neither is sent."""
    resources.setup(settings)
    path = write_jobs(tmp_path, 30)

    def save_the_file_again(**_):
        path.write_text(json.dumps({"pipeline": "measure", "groups": [{"plate": "../../escape"}]}))

    session = clients.session(settings.AWS_REGION, None)
    session.events.register("before-call.sqs.GetQueueAttributes", save_the_file_again)  # after validation
    try:
        result = CliRunner().invoke(cli, ["submit", str(path), "--config", str(write_config(tmp_path))])
    finally:
        session.events.unregister("before-call.sqs.GetQueueAttributes", save_the_file_again)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {path}: changed since it was validated; nothing was sent from it; submit it "
                             "again\n")
    assert _drain(settings) == []


def test_skip_done_over_more_jobs_than_it_checks_at_a_time_sends_exactly_the_others(aws, tmp_path, settings):
    """--skip-done checks the jobs a chunk at a time (operations.submit.done_flags) and reads the file again to send
    the others: a done job in the second chunk is left out as one in the first."""
    resources.setup(settings)
    path = write_jobs(tmp_path, 1100)
    s3 = clients.client("s3", settings)
    s3.create_bucket(Bucket="test-bucket")
    for plate in ("P00003", "P01050"):
        s3.put_object(Bucket="test-bucket", Key=f"TestApp/{plate}/result.csv", Body=b"done")
    result = CliRunner().invoke(cli, ["submit", str(path), "--skip-done", "--config", str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stdout == "2 of 1100 already done\nsubmitted 1098 jobs to TestAppQueue\n"
    assert sorted(body["group"]["plate"] for body in _drain(settings)) == [
        f"P{index:05d}" for index in range(1100) if index not in (3, 1050)]
