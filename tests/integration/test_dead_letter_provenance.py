"""A job cannot put a message into another run's failed jobs: a dead-letter message is a run's only if SQS moved
it there from that run's queue (its DeadLetterQueueSourceArn), whatever its `dsr-app` attribute says.

The attack (issue 24): a job of run TestApp, with exactly TestApp's task role, sends its own queue a body shaped
like one of run DsImage's jobs, carrying `dsr-app=DsImage`, and receives it until SQS moves it to the dead-letter
queue every run shares (DS's default). DsImage runs a DS image (COMMAND null), so its failed jobs are its
dead-letter messages: before, `failed`, GET /runs/DsImage/failed and `redrive` took the injected body as
DsImage's, and the redrive sent it into DsImage's queue, to run in DsImage's image with DsImage's task role.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model import names
from chalicelib.model.jobs import parse_job_document
from chalicelib.model.names import run_attributes
from cli import cli
from tests.iam_engine import iam_enforced, role_session
from tests.integration.world import drain, fail_every_job
from tests.worker_world import queue_counts, run_workers, script

INJECTED = "P66666"  # the plate of the body the hostile job makes up


def ignored(app_name: str) -> str:
    return (f"warning: ignored 1 dead-letter message(s) that name run {app_name} but that SQS did not move from its "
            f"queue {app_name}Queue")


IGNORED = ignored("DsImage")


def cli_run(account, *args):
    return CliRunner().invoke(cli, [*args, "--config", str(account.config_path)])


def inject_as_a_job(attacker, victim, plate: str = INJECTED) -> None:
    """What a job of `attacker` can do with its task role alone: a body of the victim's shape, naming the victim,
    sent to its own queue and received until SQS dead-letters it (after JOB_RETRIES receives)."""
    sqs = role_session(names.task_role(attacker.settings)).client("sqs")
    url = sqs.get_queue_url(QueueName=attacker.settings.SQS_QUEUE_NAME)["QueueUrl"]
    body = parse_job_document({"pipeline": "measure", "groups": [{"plate": plate}]}, victim.settings)[0].body
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=run_attributes(victim.settings.APP_NAME))
    for _ in range(20):
        if not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            return
    raise AssertionError("the injected message never left the attacker's queue")


def plates(sqs, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(json.loads(message["Body"])["group"]["plate"] for message in messages)


def dead_letters(sqs) -> list[tuple[str, str, str]]:
    """(plate, dsr-app, source queue ARN) of each message in the shared dead-letter queue, left visible."""
    url = sqs.get_queue_url(QueueName="user_DeadMessages")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                   MessageAttributeNames=["All"],
                                   MessageSystemAttributeNames=["DeadLetterQueueSourceArn"]).get("Messages", [])
    return sorted((json.loads(message["Body"])["group"]["plate"],
                   message["MessageAttributes"]["dsr-app"]["StringValue"],
                   message["Attributes"]["DeadLetterQueueSourceArn"]) for message in messages)


def test_a_message_a_job_sent_naming_another_run_is_never_that_runs_failed_job(started, ds_image_run, client):
    fail_every_job(ds_image_run)  # DsImage's own failures: P00000 and P00001
    drain(started)  # TestApp's jobs are done; its queue now holds only what its hostile job sends
    sqs = clients.client("sqs")
    dead_letter, victim_queue = (sqs.get_queue_url(QueueName=name)["QueueUrl"]
                                 for name in ("user_DeadMessages", "DsImageQueue"))

    with iam_enforced() as engine:
        inject_as_a_job(started, ds_image_run)

    assert engine.denied() == [] and engine.checked("sqs:SendMessage")
    assert queue_counts(sqs, dead_letter) == (3, 0)  # the injected message is in the shared queue, beside DsImage's
    listed = cli_run(ds_image_run, "failed", "--json")
    table = cli_run(ds_image_run, "failed")
    api = client.http.get("/runs/DsImage/failed").json_body
    only_it = cli_run(ds_image_run, "redrive", INJECTED)

    assert [job["job_id"] for job in json.loads(listed.stdout)] == ["P00000", "P00001"], listed.output
    assert IGNORED in listed.stderr and IGNORED in table.output and INJECTED not in table.output
    assert table.output.count("\n") == 4  # the note, a line per job, the summary
    assert [job["job_id"] for job in api["failed"]] == ["P00000", "P00001"]
    assert api["ignored_dead_letter_messages"] == 1
    assert only_it.exit_code == 2
    assert f"warning: {INJECTED} is not a failed job of run DsImage; not sent" in only_it.output
    assert IGNORED in only_it.output
    assert queue_counts(sqs, victim_queue) == (0, 0)  # the victim's queue unchanged

    redriven = cli_run(ds_image_run, "redrive")

    assert redriven.exit_code == 0, redriven.output
    assert redriven.stdout == "sent 2 failed job(s) back to DsImageQueue (2 taken off user_DeadMessages)\n"
    assert IGNORED in redriven.stderr
    assert plates(sqs, victim_queue) == ["P00000", "P00001"]  # DsImage's own jobs, never the injected one
    assert dead_letters(sqs) == [(INJECTED, "DsImage", ATTACKER_QUEUE)]  # left where it was


ATTACKER_QUEUE = "arn:aws:sqs:us-east-1:123456789012:TestAppQueue"


def test_a_redrive_takes_off_the_dead_letter_queue_its_own_copies_never_a_jobs_copy_of_the_same_body(started,
                                                                                                  victim):
    """Run Victim runs this project's worker: its failure records say which jobs failed, and a redrive takes each
    one's message off the dead-letter queue. A job of another run that sent a copy of one of those bodies naming
    Victim has its copy left there (it is not Victim's to delete), and the redrive says it ignored it."""
    drain(started)
    with iam_enforced() as engine:  # first in the dead-letter queue, so first in a redrive's sweep
        inject_as_a_job(started, victim, plate="P00000")
    run_workers(victim, script("import sys; print('victim fails'); sys.exit(1)"))  # P00000..P00002 fail
    sqs = clients.client("sqs")
    victim_arn = ATTACKER_QUEUE.replace("TestAppQueue", "VictimQueue")
    assert engine.denied() == []
    assert dead_letters(sqs) == [("P00000", "Victim", ATTACKER_QUEUE), ("P00000", "Victim", victim_arn),
                                 ("P00001", "Victim", victim_arn), ("P00002", "Victim", victim_arn)]

    redriven = cli_run(victim, "redrive")

    assert redriven.exit_code == 0, redriven.output
    assert redriven.stdout == "sent 3 failed job(s) back to VictimQueue (3 taken off user_DeadMessages)\n"
    assert ignored("Victim") in redriven.stderr
    assert dead_letters(sqs) == [("P00000", "Victim", ATTACKER_QUEUE)]
