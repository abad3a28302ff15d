"""Sent-back notes: the failed messages `redrive` has sent back to the run's queue, one empty S3 object per message
id (`runs/APP_NAME/sent-back/MESSAGE_ID`).

A redrive sends each failed job again, removes its failure record and takes its message's copy off the dead-letter
queue. That last step can fall short: DS's default dead-letter queue is shared, and while other readers (another
run's end, another redrive) hold its messages a sweep cannot see them all (chaos seed 229: two redrives at once left
a copy of a job already sent back, which `failed` then listed as killed on its last attempt, while the summary
called it not run). SQS keeps a message's id when it moves it to the dead-letter queue, so a copy whose id is noted
here has been sent back: every listing of failed jobs leaves it out (chalicelib/monitor/failed.py), and the next
redrive that meets it deletes it. A failure of the message the redrive sent has a new id, and counts.

One object per id rather than a document per run: one listing reads them all, and two redrives at once never write
over each other's notes. Within the run's trust like its failure records (a job may write its run's files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.aws.s3 import list_objects, put_object
from chalicelib.model.names import sent_back_prefix

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs.type_defs import MessageTypeDef


def note(s3: S3Client, bucket: str, app_name: str, message_id: str) -> None:
    put_object(s3, bucket, sent_back_prefix(app_name) + message_id, b"")


def message_ids(s3: S3Client, bucket: str, app_name: str) -> frozenset[str]:
    """Every message id noted for the run, every page of the listing."""
    prefix = sent_back_prefix(app_name)
    return frozenset(item.key[len(prefix):] for item in list_objects(s3, bucket, prefix)
                     if "/" not in item.key[len(prefix):])


def split(s3: S3Client, bucket: str, app_name: str,
          ours: list[MessageTypeDef]) -> tuple[list[MessageTypeDef], list[MessageTypeDef]]:
    """The run's dead-letter messages (deadletters.attribute's `ours`) as (failed still, sent back already); the
    notes are listed only when there is a message to look up."""
    noted = message_ids(s3, bucket, app_name) if ours else frozenset()
    return ([message for message in ours if message["MessageId"] not in noted],
            [message for message in ours if message["MessageId"] in noted])
