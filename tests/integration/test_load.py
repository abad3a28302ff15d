"""Load: 8 worker processes, 2,000 short jobs, one queue; nothing lost, duplicates counted and harmless.

Real `python -m worker --processes 8 --exit-when-empty` against the moto
server. All 2,000 jobs are submitted at once with operations.submit (moto
with the SQS clock patch copes; the wall time is reported). Each job's
command appends a line to its own marks file (so a job run twice is counted)
and writes one output whose content is derived from its value, so a
duplicate that corrupted an output would show in the contents check.

Reported (printed with -s): wall time, jobs per second, duplicate runs.
"""

from __future__ import annotations

import logging
import sys
import time

import pytest

from chalicelib import aws
from chalicelib.model.jobs import parse_job_document
from operations.submit import send_jobs
from tests.conftest import make_settings
from tests.worker_world import WorkerProcess, make_world, queue_counts, worker_env

pytestmark = pytest.mark.slow

JOBS = 2000
PROCESSES = 8
# Writes out.txt = the value three times, and records the run in MARKS/<value>.
JOB = ("import os, pathlib, sys; out, marks, n = sys.argv[1:]; "
       "open(os.path.join(marks, n), 'a').write(str(os.getpid()) + '\\n'); "
       "pathlib.Path(out, 'out.txt').write_text(n * 3)")


def expected_content(value: str) -> bytes:
    return (value * 3).encode()


# About a minute on an idle machine; several times that beside other work (a CI machine at load 6, or
# `make test`'s other worker): the hang guards are far above both, the time itself is what this test reports.
@pytest.mark.timeout(900)
def test_8_processes_run_2000_jobs_with_nothing_lost_and_duplicates_harmless(moto_server, tmp_path):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    marks = tmp_path / "marks"
    marks.mkdir()
    settings = make_settings(COMMAND=[sys.executable, "-c", JOB, "{output_dir}", str(marks), "{n}"],
                             SECONDS_TO_START=0, SQS_MESSAGE_VISIBILITY=120, JOB_RETRIES=5)
    sqs, s3 = aws.client("sqs"), aws.client("s3")
    queue_url, dlq_url = make_world(sqs, s3, settings)
    values = [f"{index:05d}" for index in range(JOBS)]
    jobs = parse_job_document({"groups": [{"n": value} for value in values]}, settings)

    started = time.perf_counter()
    assert send_jobs(sqs, queue_url, jobs) == JOBS
    submitted = time.perf_counter() - started
    worker = WorkerProcess(tmp_path, worker_env(moto_server, settings, resources_seconds="3600"),
                           "--processes", str(PROCESSES), "--exit-when-empty")
    try:
        assert worker.wait(timeout=840) == 0, worker.output
    finally:
        worker.close()
    wall = time.perf_counter() - started

    assert queue_counts(sqs, queue_url) == (0, 0) and queue_counts(sqs, dlq_url) == (0, 0)
    runs = {path.name: len(path.read_text().splitlines()) for path in marks.iterdir()}
    assert sorted(runs) == values, "a job never ran"
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.AWS_BUCKET, Prefix="TestApp/") for item in page.get("Contents", ())]
    # each job's output, and its completion marker written last
    assert sorted(keys) == [f"TestApp/{value}/{name}" for value in values for name in ("_SUCCESS", "out.txt")], (
        "an output is missing or extra")
    wrong = [value for value in values if s3.get_object(Bucket=settings.AWS_BUCKET, Key=f"TestApp/{value}/out.txt")
             ["Body"].read() != expected_content(value)]
    assert not wrong, f"outputs with wrong contents: {wrong[:10]}"
    duplicates = sum(count - 1 for count in runs.values())
    print(f"\nload: {JOBS} jobs, {PROCESSES} processes: submitted in {submitted:.1f} s, all done in {wall:.1f} s "
          f"({JOBS / wall:.1f} jobs/s); {duplicates} duplicate run(s) "
          f"({sum(1 for count in runs.values() if count > 1)} job(s) run more than once); no output corrupted")
