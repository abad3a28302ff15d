"""CHECK_IF_DONE with the completion marker, against moto: no partial job counts as done.

A worker killed half-way through its upload leaves some of a job's outputs and
no `_SUCCESS`; those outputs carry the project's metadata, so the job is not
done and runs again. Outputs DS or a user made (no metadata, no marker) count
as DS counts them.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.model.names import success_marker_key
from operations.submit import not_done
from tests.worker_world import log_lines, python, queue_counts, s3_keys, send_jobs, world
from worker.done import is_done
from worker.upload import Transfers
from worker.worker import Outcome

# Writes N files of 10 bytes: `python -c WRITE OUT N`.
WRITE = ("import sys; [open(sys.argv[1] + '/part%04d.csv' % i, 'w').write('0123456789') "
         "for i in range(int(sys.argv[2]))]")


def checking(clients, files: int = 3, **overrides):
    return world(clients, COMMAND=python(WRITE, "{output_dir}", str(files)), CHECK_IF_DONE_BOOL=True,
                 EXPECTED_NUMBER_FILES=files, **overrides)


def put(s3, bucket: str, key: str, body: bytes = b"0123456789", **extra) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def test_a_completed_job_has_its_marker_after_its_outputs_and_counts_as_done(clients):
    settings, worker, queue_url, _ = checking(clients)
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    s3 = clients["s3"]

    assert worker.run_once() is Outcome.SUCCEEDED

    prefix = job.output_prefix
    assert s3_keys(s3, settings.AWS_BUCKET, prefix + "/") == [
        f"{prefix}/_SUCCESS", f"{prefix}/part0000.csv", f"{prefix}/part0001.csv", f"{prefix}/part0002.csv"]
    marker = json.loads(s3.get_object(Bucket=settings.AWS_BUCKET, Key=f"{prefix}/_SUCCESS")["Body"].read())
    assert (marker["job_id"], marker["files"], marker["bytes"]) == ("P1", 3, 30) and marker["time"] > 1.7e9
    head = s3.head_object(Bucket=settings.AWS_BUCKET, Key=f"{prefix}/part0001.csv")
    assert head["Metadata"] == {"dsr-job": "P1"}  # every output says which job of this project wrote it
    assert is_done(s3, settings, prefix)

    # sent again, it is skipped as done
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    assert worker.run_once() is Outcome.SKIPPED


def test_outputs_of_a_killed_upload_are_not_done_and_the_job_runs_again_to_completion(clients, tmp_path):
    settings, worker, queue_url, _ = checking(clients)
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    s3 = clients["s3"]
    # the kill: a worker uploaded the outputs through the transfer manager and died before its marker
    folder = tmp_path / "partial"
    folder.mkdir()
    for index in range(3):
        (folder / f"part{index:04d}.csv").write_text("0123456789")
    transfers = Transfers(s3, settings.AWS_BUCKET, settings.AWS_BUCKET)
    transfers.upload_folder(folder, job.output_prefix, job.job_id)
    transfers.close()

    # DS's count alone is met (3 of 3), yet the job is not done: its outputs are this project's, unmarked
    assert not is_done(s3, settings, job.output_prefix)
    assert not_done(s3, settings, [job]) == [job]  # submit --skip-done sends it

    assert worker.run_once() is Outcome.SUCCEEDED  # run again, not skipped
    assert f"{job.output_prefix}/_SUCCESS" in s3_keys(s3, settings.AWS_BUCKET, job.output_prefix + "/")
    assert is_done(s3, settings, job.output_prefix)
    assert any(line.startswith("started: ") for line in log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1"))


def test_outputs_made_by_ds_or_by_hand_count_as_ds_counts_them(clients):
    settings, worker, queue_url, _ = checking(clients, files=2, NECESSARY_STRING="Cells", MIN_FILE_SIZE_BYTES=5)
    done, partial = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "done"}, {"plate": "partial"}])
    s3, bucket = clients["s3"], settings.AWS_BUCKET
    put(s3, bucket, f"{done.output_prefix}/Cells.csv")
    put(s3, bucket, f"{done.output_prefix}/deep/Cells_2.csv")
    put(s3, bucket, f"{partial.output_prefix}/Cells.csv")
    put(s3, bucket, f"{partial.output_prefix}/Nuclei.csv")  # no NECESSARY_STRING
    put(s3, bucket, f"{partial.output_prefix}/Cells_small.csv", b"1")  # under MIN_FILE_SIZE_BYTES

    assert is_done(s3, settings, done.output_prefix) and not is_done(s3, settings, partial.output_prefix)
    assert not_done(s3, settings, [done, partial]) == [partial]
    assert worker.run_once() is Outcome.SKIPPED  # "done", made by DS: no marker, no metadata


def test_the_marker_never_counts_toward_expected_number_files(clients):
    settings, _, _, _ = checking(clients, files=2)
    s3, bucket, prefix = clients["s3"], settings.AWS_BUCKET, "TestApp/P1"
    put(s3, bucket, f"{prefix}/_SUCCESS", b'{"job_id": "P1", "files": 2, "bytes": 20, "time": 0}')
    put(s3, bucket, f"{prefix}/part0000.csv", Metadata={"dsr-job": "P1"})
    assert not is_done(s3, settings, prefix)  # one output and the marker: 1 of 2

    put(s3, bucket, f"{prefix}/part0001.csv", Metadata={"dsr-job": "P1"})
    assert is_done(s3, settings, prefix)


def test_a_marked_job_needs_no_head_and_an_unmarked_one_only_one(clients):
    settings, _, _, _ = checking(clients, files=2)
    s3, bucket = clients["s3"], settings.AWS_BUCKET
    for prefix in ("TestApp/marked", "TestApp/unmarked"):
        for index in range(3):
            put(s3, bucket, f"{prefix}/part{index}.csv")
    put(s3, bucket, success_marker_key("TestApp/marked"), b"{}")
    heads = []
    s3.meta.events.register("provide-client-params.s3.HeadObject", lambda params, **_: heads.append(params["Key"]))

    assert is_done(s3, settings, "TestApp/marked") and heads == []
    assert is_done(s3, settings, "TestApp/unmarked") and heads == ["TestApp/unmarked/part0.csv"]


@pytest.mark.parametrize("marked", [True, False])
def test_every_page_of_the_listing_is_read_for_the_marker(clients, marked):
    """'_SUCCESS' sorts after 'Z': behind 1,000 upper-case keys it is on the second page."""
    settings, _, _, _ = checking(clients, files=1)
    s3, bucket, prefix = clients["s3"], settings.AWS_BUCKET, "TestApp/big"
    for index in range(1000):
        put(s3, bucket, f"{prefix}/P{index:04d}.csv", Metadata={"dsr-job": "big"})
    if marked:
        put(s3, bucket, success_marker_key(prefix), b"{}")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["IsTruncated"] is marked

    assert is_done(s3, settings, prefix) is marked


def test_a_commands_own_success_file_is_replaced_by_the_workers_marker(clients):
    write = "import sys; open(sys.argv[1] + '/out.csv', 'w').write('data'); open(sys.argv[1] + '/_SUCCESS', 'w')"
    settings, worker, queue_url, _ = world(clients, COMMAND=python(write, "{output_dir}"))
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED

    marker = clients["s3"].get_object(Bucket=settings.AWS_BUCKET, Key=f"{job.output_prefix}/_SUCCESS")["Body"]
    assert json.loads(marker.read())["files"] == 1
    lines = log_lines(clients["logs"], settings.LOG_GROUP_NAME, "P1")
    assert "note: the command's own _SUCCESS is not uploaded; the worker writes its completion marker there after " \
           "the last output, if there is one" in lines
    assert queue_counts(clients["sqs"], queue_url) == (0, 0)


@pytest.mark.parametrize("writes", ["nothing", "only its own _SUCCESS"])
def test_a_job_with_no_output_gets_no_marker_and_is_never_skipped_as_done(clients, writes):
    """The marker tells complete outputs from a killed upload; with no output there is nothing to tell, and
    CHECK_IF_DONE never counts no file as done (EXPECTED_NUMBER_FILES is at least 1), marker or not. So the
    worker saves the call: sent again, the job runs again, as it did when it had a marker."""
    own_marker = "import sys; open(sys.argv[1] + '/_SUCCESS', 'w')"
    settings, worker, queue_url, _ = world(
        clients, COMMAND=python("pass" if writes == "nothing" else own_marker, "{output_dir}"),
        CHECK_IF_DONE_BOOL=True, EXPECTED_NUMBER_FILES=1)
    [job] = send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])

    assert worker.run_once() is Outcome.SUCCEEDED
    assert s3_keys(clients["s3"], settings.AWS_BUCKET, job.output_prefix + "/") == []
    assert not is_done(clients["s3"], settings, job.output_prefix)
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    assert worker.run_once() is Outcome.SUCCEEDED
