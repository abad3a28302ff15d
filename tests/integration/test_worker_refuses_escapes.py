"""A message whose templates escape OUTPUT_PREFIX or INPUT_PREFIX, or make either the parent of other jobs'
prefixes (an empty value), is never run and writes nothing.

`submit` refuses such a job file (tests/unit/test_jobs.py); these messages are
put on the queue directly, as anyone with SendMessage on it could, so the
worker's own edge check is what is tested. The command would touch a marker
file if it ran; the bucket is read back whole afterwards.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.worker_world import queue_counts, s3_keys, world
from worker.worker import Outcome

ESCAPES = [
    ("output prefix with ..", {"OUTPUT_PREFIX": "out/{plate}"}, {"plate": "../../monitors", "job_id": "a"}),
    ("output prefix absolute", {"OUTPUT_PREFIX": "{plate}"}, {"plate": "/etc", "job_id": "b"}),
    ("output prefix empty part", {"OUTPUT_PREFIX": "out/{plate}/x"}, {"plate": "", "job_id": "c"}),
    ("output prefix parent of others", {"OUTPUT_PREFIX": "out/{plate}"}, {"plate": "", "job_id": "e"}),
    ("output prefix parent of others via /", {"OUTPUT_PREFIX": "out/{plate}"}, {"plate": "/", "job_id": "f"}),
    ("input prefix with ..", {"INPUT_PREFIX": "in/{plate}"}, {"plate": "../secret", "job_id": "d"}),
    ("input prefix parent of others", {"INPUT_PREFIX": "in/{plate}"}, {"plate": "", "job_id": "g"}),
    ("job id with ..", {}, {"plate": "P1", "job_id": "../up"}),
]


@pytest.mark.parametrize("name, overrides, group", ESCAPES, ids=[case[0] for case in ESCAPES])
def test_a_message_escaping_its_prefix_runs_nothing_and_writes_nothing(clients, tmp_path, caplog, name, overrides,
                                                                      group):
    marker = tmp_path / "ran"
    settings, worker, queue_url, dlq_url = world(
        clients, JOB_RETRIES=1, COMMAND=[sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()",
                                         str(marker), "{plate}"], **overrides)
    s3 = clients["s3"]
    s3.put_object(Bucket=settings.AWS_BUCKET, Key="secret/keep.txt", Body=b"not for jobs")
    before = s3_keys(s3, settings.AWS_BUCKET)
    message_id = clients["sqs"].send_message(QueueUrl=queue_url, MessageBody=json.dumps({"group": group}))["MessageId"]

    assert worker.run_once() is Outcome.NOT_A_JOB
    assert worker.run_once() is Outcome.EMPTY  # JOB_RETRIES=1: it went to the dead-letter queue

    assert not marker.exists()
    assert s3_keys(s3, settings.AWS_BUCKET) == before  # no output, no lease, nothing anywhere in the bucket
    assert f"message {message_id} is not a job of this run" in caplog.text
    assert queue_counts(clients["sqs"], queue_url) == (0, 0) and queue_counts(clients["sqs"], dlq_url) == (1, 0)


def test_a_job_whose_prefix_would_hold_other_jobs_outputs_is_not_skipped_as_done_but_never_run(clients, tmp_path,
                                                                                              caplog):
    """With CHECK_IF_DONE, 'out/{plate}' with plate '' is 'out', which holds every other job's outputs: the job
    would be deleted as done without running. It is refused instead, and left for the dead-letter queue."""
    marker = tmp_path / "ran"
    settings, worker, queue_url, dlq_url = world(
        clients, JOB_RETRIES=1, OUTPUT_PREFIX="out/{plate}", CHECK_IF_DONE_BOOL=True,
        COMMAND=[sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", str(marker),
                 "{plate}"])
    s3 = clients["s3"]
    s3.put_object(Bucket=settings.AWS_BUCKET, Key="out/P1/result.csv", Body=b"another job's output")
    clients["sqs"].send_message(QueueUrl=queue_url, MessageBody=json.dumps({"group": {"plate": "", "job_id": "j"}}))

    assert worker.run_once() is Outcome.NOT_A_JOB
    assert worker.run_once() is Outcome.EMPTY

    assert not marker.exists()
    assert "{plate} is empty, so the prefix would be 'out', the parent of other jobs' prefixes" in caplog.text
    assert queue_counts(clients["sqs"], dlq_url) == (1, 0)  # not deleted as done: a user sees it failed
