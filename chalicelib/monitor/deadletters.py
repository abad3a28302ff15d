"""Which messages of a dead-letter queue are a run's: those SQS itself moved there from the run's own queue.

DS's default dead-letter queue (`user_DeadMessages`) is shared by every run. Each job message carries its run's
name as the `dsr-app` attribute (chalicelib/model/names.py), but the sender sets that attribute, and every job may send
to its own run's queue: a job can send a body naming another run, receive it until SQS moves it to the shared
queue, and have it taken as that run's failure, listed and then redriven into that run's queue, to run in its
image with its task role. What no sender can set is the system attribute SQS stamps on a message when it moves
it, DeadLetterQueueSourceArn (the queue it came from; SendMessage takes no system attribute but AWSTraceHeader).
So a run takes as its own exactly the messages whose source is its queue's ARN; `dsr-app` is only a hint, used to
count (and report) the messages that name the run but did not come from its queue.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chalicelib.aws import sqs as aws_sqs
from chalicelib.model.names import RUN_ATTRIBUTE

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import MessageSystemAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef

SOURCE_ARN: Final = "DeadLetterQueueSourceArn"  # the system attribute SQS stamps when it dead-letters a message

# Receives of the dead-letter queue in one sweep: every message is received once (each stays hidden while the
# sweep goes on), then the others are made visible again at once (`release`), so other readers (a redrive,
# the API, another run's `failed`) miss them only for the sweep's few seconds. Not VisibilityTimeout=0: a
# message received with 0 can come back in the next receive, so a sweep could never tell it had seen every
# message (moto returns the same first ten each time). 60 s bounds the hiding when a reader dies mid-sweep
# (the API's Lambda times out after 30 s).
SWEEP_VISIBILITY_SECONDS = 60


@dataclass(frozen=True)
class Attributed:
    ours: list[MessageTypeDef]  # moved by SQS from the run's queue
    others: list[MessageTypeDef]  # every other message: other runs', and those below
    ignored: int  # of the others, those that name the run (`dsr-app`) though SQS did not move them from its queue


def run_queue_arn(sqs: SQSClient, dead_letter_url: str, queue_name: str) -> str:
    """The source ARN SQS stamps on the run's dead-lettered messages: its job queue's. The dead-letter queue is
    found by name in the run's own account and region, where its job queue is, so the two ARNs differ only by
    the name. Derived rather than read from the job queue, so it holds after a teardown deleted that queue (the
    messages SQS moved from it keep their stamp)."""
    arn = aws_sqs.queue_arn(sqs, dead_letter_url)
    return arn.rsplit(":", 1)[0] + ":" + queue_name


def attribute(messages: list[MessageTypeDef], queue_arn: str, app_name: str) -> Attributed:
    """Split swept messages into the run's (their DeadLetterQueueSourceArn is `queue_arn`) and the rest."""
    ours: list[MessageTypeDef] = []
    others: list[MessageTypeDef] = []
    ignored = 0
    for message in messages:
        if message.get("Attributes", {}).get(SOURCE_ARN) == queue_arn:
            ours.append(message)
            continue
        others.append(message)
        ignored += named_run(message) == app_name
    return Attributed(ours, others, ignored)


def named_run(message: MessageTypeDef) -> str | None:
    """The run a message's sender says it belongs to (`dsr-app`): a hint, never proof."""
    run = message.get("MessageAttributes", {}).get(RUN_ATTRIBUTE)
    return None if run is None else run.get("StringValue")


def ignored_note(count: int, app_name: str, queue_name: str) -> str:
    """The one line `failed` and `redrive` print when they left messages out (the API returns the count)."""
    return (f"warning: ignored {count} dead-letter message(s) that name run {app_name} but that SQS did not move "
            f"from its queue {queue_name} (their DeadLetterQueueSourceArn is another queue's, or none)")


def sweep(sqs: SQSClient, url: str,
          attribute_names: tuple[MessageSystemAttributeNameType, ...] = ()) -> list[MessageTypeDef]:
    """Every message of the queue, each received once (hidden while the sweep goes on), with its source ARN, its
    `dsr-app` attribute and the system attributes named; the caller deletes or releases them."""
    return sweep_within(sqs, url, None, attribute_names)[0]


# How long the last, long-poll receive of a sweep waits. A short poll (WaitTimeSeconds 0) asks a sample of SQS's
# servers, so an empty answer does not prove the queue empty; a long poll asks them all ("Amazon SQS short and long
# polling", Amazon SQS Developer Guide). Only the receive that would end the sweep pays it.
CONFIRM_EMPTY_SECONDS = 1


# How long a sweep that has read every visible message waits for those another reader holds (another run's sweep,
# a redrive: each hides what it reads until it is done, a few seconds; one that died hides them for
# SWEEP_VISIBILITY_SECONDS). Below that, so this sweep's own messages stay hidden while it waits. Short, because the
# counts it goes by are approximate: SQS says they "may not achieve consistency until at least 1 minute after the
# producers stop sending messages" (GetQueueAttributes, SQS API Reference), so counts not yet settled can make a lone
# sweep wait for messages nobody holds; that costs it this long and a "not complete", never a message missed.
OTHERS_WAIT_SECONDS = 20
OTHERS_POLL_SECONDS = 1
# Two sweeps at once each wait for what the other holds: after this long (times 1 to 3, at random, so that one
# of them goes first) without anything new, a sweep gives its messages back and pauses (times 1 to 2) before it
# starts again; the other then reads the whole queue, finishes and releases it all.
YIELD_SECONDS = 2


def sweep_within(sqs: SQSClient, url: str, seconds: float | None,
                 attribute_names: tuple[MessageSystemAttributeNameType, ...] = (),
                 sleep: Callable[[float], None] = time.sleep) -> tuple[list[MessageTypeDef], bool]:
    """sweep, stopped once `seconds` have gone by (a caller with a deadline: the status API's function stops at
    30 s, and a shared dead-letter queue of a lab's history can take minutes to read); the messages, and whether
    the sweep saw the whole queue.

    A sweep that has read every visible message is not done while the queue counts more messages in flight than
    it holds, or counts visible ones again (another reader has just released them): another reader holds those,
    and would hide a job this run's end must count (chaos seed 2808: two runs ending at once on DS's shared queue,
    one summary calling a dead-lettered job not run). It waits for them, reads what they release, yields its own to
    a sweep waiting likewise (YIELD_SECONDS), and after OTHERS_WAIT_SECONDS with some still held says it is not
    complete."""
    messages: list[MessageTypeDef] = []
    seen: set[str] = set()
    ends = None if seconds is None else time.monotonic() + seconds
    others_until: float | None = None
    yield_at: float | None = None
    wait = 0
    while ends is None or time.monotonic() < ends:
        received = aws_sqs.receive(sqs, url, most=10, wait_seconds=wait, visibility_seconds=SWEEP_VISIBILITY_SECONDS,
                                   system_attributes=[SOURCE_ARN, *attribute_names],
                                   message_attributes=[RUN_ATTRIBUTE])
        fresh = [message for message in received if message["MessageId"] not in seen]
        if not fresh and wait:
            depth = aws_sqs.queue_depth(sqs, url)
            # done when no message is visible (one released since the receive above would be) and none is in
            # flight but those this sweep holds
            if depth is None or (depth.waiting == 0 and depth.in_flight <= len(messages)):
                return messages, True
            now = time.monotonic()
            others_until = others_until or now + OTHERS_WAIT_SECONDS
            if now >= others_until:
                return messages, False
            if yield_at is None:
                yield_at = now + YIELD_SECONDS * random.uniform(1, 3)
            elif now >= yield_at:  # the other may be waiting for these: given back, the sweep starts again
                release(sqs, url, messages)
                messages, seen, yield_at = [], set(), None
                sleep(YIELD_SECONDS * random.uniform(1, 2))  # the other's turn to take them and finish first
            sleep(OTHERS_POLL_SECONDS)
            wait = 0
            continue
        if fresh:
            yield_at = None
        wait = 0 if fresh else CONFIRM_EMPTY_SECONDS  # nothing new: ask every server before believing it
        seen.update(message["MessageId"] for message in fresh)
        messages.extend(fresh)
    return messages, False


def release(sqs: SQSClient, url: str, messages: list[MessageTypeDef]) -> None:
    """Make swept messages visible again at once."""
    aws_sqs.set_visibilities(sqs, url, [message["ReceiptHandle"] for message in messages], 0)
