"""The rule `failed`, the API and the summaries share for a dead-lettered job with no failure record: done when its
outputs, listed, are complete (chalicelib/monitor/output_rule.py, failed.not_done; chaos seed 61)."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.aws import client as aws_client
from chalicelib.model.jobs import parse_job_document
from chalicelib.model.names import success_marker_key
from chalicelib.monitor.failed import FailedJobs, not_done
from chalicelib.monitor.output_rule import OutputRule
from chalicelib.runfiles.failures import FailureRecord
from tests.conftest import make_settings
from tests.hooked import hooked_sessions

SETTINGS = make_settings(OUTPUT_PREFIX="out/{plate}", EXPECTED_NUMBER_FILES=2, MIN_FILE_SIZE_BYTES=3,
                         NECESSARY_STRING=".csv")


def dead_lettered(*plates: str) -> FailedJobs:
    jobs = parse_job_document({"groups": [{"plate": plate} for plate in plates]}, SETTINGS)
    return FailedJobs([FailureRecord(job_id=job.job_id, attempts=3, reason="in the dead-letter queue", exit_code=None,
                                     last_lines=(), message_body=job.body, time=0.0, instance_id=None)
                       for job in jobs])


@pytest.fixture
def s3(aws):
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=SETTINGS.DESTINATION_BUCKET)
    return s3


def put(s3, *keys: str, body: bytes = b"1,2,3") -> None:
    for key in keys:
        s3.put_object(Bucket=SETTINGS.DESTINATION_BUCKET, Key=key, Body=body)


def test_a_job_is_done_with_its_count_met_and_the_marker_or_in_ds_image_mode_its_count_alone(s3):
    put(s3, "out/P1/a.csv", "out/P1/b.csv", success_marker_key("out/P1"))  # complete, marked
    put(s3, "out/P2/a.csv", "out/P2/b.csv")  # complete, no marker: a killed upload, or a DS image's worker
    put(s3, "out/P3/a.csv", "out/P3/b.txt", success_marker_key("out/P3"))  # one file lacks NECESSARY_STRING
    put(s3, "out/P4/a.csv", success_marker_key("out/P4"))
    put(s3, "out/P4/b.csv", body=b"1")  # under MIN_FILE_SIZE_BYTES
    put(s3, "out/P55/a.csv", "out/P55/b.csv", success_marker_key("out/P55"))  # P5's prefix is no parent of it
    rule = OutputRule.of_settings(SETTINGS)
    ds_rule = dataclasses.replace(rule, MARKER=False)
    candidates = dead_lettered("P1", "P2", "P3", "P4", "P5")

    assert [job.job_id for job in not_done(s3, rule, candidates).records] == ["P2", "P3", "P4", "P5"]
    assert [job.job_id for job in not_done(s3, ds_rule, candidates).records] == ["P3", "P4", "P5"]
    assert not_done(s3, None, candidates) == candidates  # a record without the rule: every one stays failed


def test_the_jobs_not_listed_in_time_stay_failed_and_the_answer_says_it_is_not_complete(s3):
    put(s3, "out/P1/a.csv", "out/P1/b.csv", success_marker_key("out/P1"))
    left = not_done(s3, OutputRule.of_settings(SETTINGS), dead_lettered("P1", "P2"), seconds=0)

    assert ([job.job_id for job in left.records], left.complete) == (["P1", "P2"], False)


def test_the_listing_stops_at_the_page_that_answers(aws):
    """DS's count alone (DS image mode) is answered by the first page, which meets the count; the marker rule reads
    on looking for the marker (`_SUCCESS` sorts after these outputs' names), to the last page when there is none."""
    listed: list[str] = []
    with hooked_sessions(("provide-client-params.s3.ListObjectsV2",
                                          lambda params, **_: listed.append(params["Prefix"]))):
        s3 = aws_client("s3")
        s3.create_bucket(Bucket=SETTINGS.DESTINATION_BUCKET)
        for number in range(1001):
            put(s3, f"out/P1/{number:04d}.csv")
        rule = OutputRule.of_settings(SETTINGS)
        assert not_done(s3, dataclasses.replace(rule, MARKER=False), dead_lettered("P1")).records == []
        pages_ds = len(listed)
        assert [job.job_id for job in not_done(s3, rule, dead_lettered("P1")).records] == ["P1"]  # no marker

    assert (pages_ds, len(listed) - pages_ds) == (1, 2)
