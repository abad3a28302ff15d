"""Whose a dead-letter message is: SQS's source stamp decides, the sender's `dsr-app` only counts what is left out."""

from __future__ import annotations

from chalicelib.monitor.deadletters import attribute

OURS, THEIRS = "arn:aws:sqs:us-east-1:123456789012:RunQueue", "arn:aws:sqs:us-east-1:123456789012:OtherQueue"


def message(body: str, source: str | None, named: str | None) -> dict:
    return {"Body": body, "Attributes": {"DeadLetterQueueSourceArn": source} if source else {},
            "MessageAttributes": {"dsr-app": {"DataType": "String", "StringValue": named}} if named else {}}


def test_a_run_takes_what_sqs_moved_from_its_queue_and_counts_what_names_it_from_elsewhere():
    messages = [
        message("ours", OURS, "Run"),
        message("ours, untagged (sent by DS's own submitJob)", OURS, None),
        message("ours, naming another run (sent by one of our jobs)", OURS, "Other"),
        message("injected by another run's job", THEIRS, "Run"),
        message("sent straight to the dead-letter queue", None, "Run"),
        message("another run's", THEIRS, "Other"),
        message("nobody's", None, None),
    ]

    attributed = attribute(messages, OURS, "Run")

    assert [m["Body"] for m in attributed.ours] == [m["Body"] for m in messages[:3]]
    assert [m["Body"] for m in attributed.others] == [m["Body"] for m in messages[3:]]
    assert attributed.ignored == 2
