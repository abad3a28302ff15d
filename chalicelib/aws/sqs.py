"""SQS, by intent: a queue's URL, depth, tags and dead-letter queue; messages received, sent, hidden and deleted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import QUEUE_MISSING, error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import MessageSystemAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

# ChangeMessageVisibilityBatch takes at most 10 entries a call (SQS API Reference, ChangeMessageVisibilityBatch).
MAX_BATCH_ENTRIES = 10


@dataclass(frozen=True)
class QueueDepth:
    waiting: int  # visible + delayed: jobs no worker holds yet
    in_flight: int  # received and not deleted: running, or failed and waiting for their retry

    @property
    def empty(self) -> bool:
        return self.waiting == 0 and self.in_flight == 0


def queue_depth(sqs: SQSClient, url: str) -> QueueDepth | None:
    """The queue's approximate counts, or None when the queue no longer exists."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
    return QueueDepth(waiting=int(attributes.get("ApproximateNumberOfMessages", 0))
                      + int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
                      in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)))


def dead_letter_queue_arn(sqs: SQSClient, url: str) -> str | None:
    """The dead-letter queue of the queue's redrive policy, or None (no policy, or the queue is gone)."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
    try:
        policy = json.loads(attributes.get("RedrivePolicy") or "null")
    except ValueError:
        return None
    # AWS leaves the attribute out when there is no policy; moto answers "null"
    return policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None


def queue_tags(sqs: SQSClient, url: str) -> dict[str, str] | None:
    """The queue's tags, or None when the queue is gone."""
    try:
        return sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise


def find_queue_url(sqs: SQSClient, name: str) -> str | None:
    """The queue's URL, or None where no queue has that name."""
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise


def existing_queue_url(sqs: SQSClient, name: str) -> str:
    """The queue's URL; a queue that does not exist is AWS's error, raised (the worker has nothing to do then)."""
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def receive(sqs: SQSClient, url: str, most: int, wait_seconds: int, visibility_seconds: int,
            system_attributes: Sequence[MessageSystemAttributeNameType] = (),
            message_attributes: Sequence[str] = ()) -> list[MessageTypeDef]:
    """Up to `most` messages (at most 10, SQS's bound), each hidden for `visibility_seconds`; [] when none came
    within `wait_seconds`."""
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=most, WaitTimeSeconds=wait_seconds,
                               VisibilityTimeout=visibility_seconds,
                               MessageSystemAttributeNames=list(system_attributes),
                               MessageAttributeNames=list(message_attributes)).get("Messages", [])


def send(sqs: SQSClient, url: str, body: str, attributes: dict[str, MessageAttributeValueTypeDef]) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


def delete_message(sqs: SQSClient, url: str, receipt_handle: str) -> None:
    sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle)


def set_visibility(sqs: SQSClient, url: str, receipt_handle: str, seconds: int) -> None:
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)


def set_visibilities(sqs: SQSClient, url: str, receipt_handles: Sequence[str], seconds: int) -> None:
    """Hide (or, with 0, show) many received messages: MAX_BATCH_ENTRIES a call. Entries SQS reports as failed
    are left to their own visibility timeout."""
    for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
            for index, handle in enumerate(receipt_handles[start:start + MAX_BATCH_ENTRIES])])


def delete_queue(sqs: SQSClient, url: str) -> None:
    sqs.delete_queue(QueueUrl=url)
