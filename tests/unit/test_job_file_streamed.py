"""JobFile: a job file validated whole, then read again a job at a time, with the refusals and places of reading it
whole (chalicelib/model/jsonfile.py), whatever falls on the edges of its reading window."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.model import jsonfile
from chalicelib.model.errors import JobFileError
from chalicelib.model.jobs import Job, JobFile, parse_job_document
from tests.conftest import make_settings

DCP_JOB_FILE = Path(__file__).resolve().parents[1] / "data" / "dcp_17388b3" / "exampleJob.json"


def settings(**overrides):
    return make_settings(**{"COMMAND": ["run", "{plate}", "{output_dir}"], **overrides})


def refused(path: Path, **overrides) -> str:
    with pytest.raises(JobFileError) as caught:
        JobFile(path, settings(**overrides))
    assert "\n" not in str(caught.value)
    return str(caught.value)


def groups_text(count: int, special: dict[int, str] | None = None) -> str:
    """The groups of a file as its text, group `index` replaced by `special[index]` (raw JSON)."""
    special = special or {}
    return ",\n".join(special.get(index, json.dumps({"plate": f"P{index:04d}"})) for index in range(count))


@pytest.fixture(params=[1, 7, 4096], ids=["window 1", "window 7", "window 4096"])
def window(request, monkeypatch):
    """Every edge of the reading window: one character at a time, a few, and more than these files hold."""
    monkeypatch.setattr(jsonfile, "WINDOW_CHARS", request.param)
    return request.param


def test_a_duplicate_key_deep_in_group_900_is_refused_with_its_place(tmp_path, window):
    path = tmp_path / "jobs.json"
    path.write_text('{"pipeline": "p", "groups": [' + groups_text(1000, {
        900: '{"plate": "P900", "meta": {"site": {"x": 1, "x": 2}}}'}) + "]}")

    assert refused(path) == (f"{path}: groups[900].meta.site.x: expected each key once in an object, got this key "
                             "twice (only the last value would be kept)")


def test_refusals_name_their_place_in_the_file(tmp_path, window):
    long_number = "9" * 5000
    cases = {
        '{"groups": [{"plate": "A"}, {"plate": ' + long_number + "}]}":
            "groups[1].plate: expected an integer of at most 20 digits, got one of 5,000 digits (write a longer "
            "number in quotes, as text)",
        '{"groups": [{"plate": "A", "n": [1, NaN]}]}':
            "groups[0].n[1]: expected a number JSON allows, got NaN (JSON has no NaN or Infinity)",
        '{"groups": [{"plate": "A"}], "pipeline": 1e400}':
            "pipeline: expected a number JSON readers can hold, got 1e400 (beyond a 64-bit float: it would be read "
            "as Infinity)",
        '{"groups": [{"plate": "A"}], "groups": []}':
            "groups: expected each key once in an object, got this key twice (only the last value would be kept)",
        '[{"plate": "A"}]': "expected a JSON object with a 'groups' list, got list",
        '{"groups": []}': "groups: expected at least one job, got an empty list",
        '{"groups": {"plate": "A"}}': "groups: expected a list of objects, got dict",
        '{"pipeline": "p"}': "missing key 'groups' (the list of jobs)",
    }
    for text, expected in cases.items():
        path = tmp_path / "jobs.json"
        path.write_text(text)
        assert refused(path) == f"{path}: {expected}"


@pytest.mark.parametrize("text", [
    '{"groups": [{"plate": "A"},\n {"plate": "B"} {"plate": "C"}]}',
    '{"groups": [{"plate": "A"}]}\n x',
    '{"groups": [{"plate": "A"}]',
    '{\n  "pipeline": "p",\n  "groups": [\n    {"plate": "A"},\n    {"plate": tru}\n  ]\n}',
    '{"groups" [{"plate": "A"}]}',
    "",
    '{"groups": [{"plate": "A"},]}',
])
def test_invalid_json_is_refused_at_the_line_and_column_json_gives(tmp_path, window, text):
    path = tmp_path / "jobs.json"
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(text)

    assert refused(path) == (f"{path}: invalid JSON at line {whole.value.lineno} column {whole.value.colno}: "
                             f"{whole.value.msg}")


def test_shared_keys_after_the_groups_and_comments_anywhere_make_the_same_messages(tmp_path, window):
    document = {"_comment1": "first", "groups": [{"plate": "P1"}, {"plate": "P2", "n": 12345678901234567890}],
                "_comment2": "between", "pipeline": "p.cppipe", "threads": 1.5, "_comment2 ": "again"}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(document, indent=3))

    streamed = list(JobFile(path, settings()))
    assert streamed == parse_job_document(document, settings())
    assert json.loads(streamed[1].body) == {"pipeline": "p.cppipe", "threads": 1.5,
                                            "group": {"plate": "P2", "n": 12345678901234567890}}


def test_dcps_example_file_in_dcps_message_shape_as_read_whole(tmp_path, window):
    dcp = make_settings(COMMAND=None, JOB_MESSAGE_FORMAT="DCP", OUTPUT_PREFIX="{APP_NAME}/{job_id}")
    path = tmp_path / "exampleJob.json"
    path.write_bytes(b"\xef\xbb\xbf" + DCP_JOB_FILE.read_bytes())  # and a byte order mark, which json allows

    assert list(JobFile(path, dcp)) == parse_job_document(json.loads(DCP_JOB_FILE.read_text()), dcp, str(path))


def test_the_overlap_check_still_catches_two_groups_far_apart(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(2000, {3: '{"plate": "P1"}', 1950: '{"plate": "P1/A01"}'}) + "]}")

    assert refused(path, OUTPUT_PREFIX="out/{plate}") == (
        f"{path}: groups[3]: OUTPUT_PREFIX renders to 'out/P1', the parent of groups[1950]'s 'out/P1/A01', so one "
        "job's outputs would land among the other's; end OUTPUT_PREFIX with a value of each job's own, such as "
        "{job_id}")


def test_a_job_id_given_twice_far_apart_names_both_groups(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(3000, {10: '{"plate": "A", "job_id": "same"}',
                                                        2500: '{"plate": "B", "job_id": "same"}'}) + "]}")

    assert refused(path, OUTPUT_PREFIX="out/{plate}") == (
        f"{path}: groups[2500]: job id 'same' is also the id of groups[10]; job ids must be unique (set 'job_id' in "
        "the group)")


def test_a_bad_group_at_the_end_is_refused_before_any_job_is_read_out(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(5000, {4999: '{"well": "A01"}'}) + "]}")

    assert refused(path) == (f"{path}: groups[4999]: missing key 'plate' used as {{plate}} in COMMAND; add it to "
                             "the group or to the top level")


def test_the_jobs_are_read_as_they_are_taken_never_kept_in_a_list(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(100) + "]}")
    job_file = JobFile(path, settings())

    jobs = iter(job_file)
    assert isinstance(jobs, Iterator) and len(job_file) == 100
    assert not any(isinstance(value, list | tuple) and value and isinstance(value[0], Job)
                   for value in vars(job_file).values())
    assert next(jobs).job_id == "P0000"
    assert [job.job_id for job in job_file] == [f"P{index:04d}" for index in range(100)]  # read again, whole


def test_a_file_changed_after_validation_yields_no_job(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(10) + "]}")
    job_file = JobFile(path, settings())
    path.write_text('{"groups": [' + groups_text(10, {0: '{"plate": "other"}'}) + "]}")

    with pytest.raises(JobFileError) as caught:
        next(iter(job_file))
    assert str(caught.value) == f"{path}: changed since it was validated; nothing was sent from it; submit it again"


def test_a_write_racing_the_reading_stops_it_at_the_first_job_that_differs(tmp_path, monkeypatch):
    """A write after the reading opened the file (which compares its identity once, at the start): each job is
    compared with what validation read."""
    monkeypatch.setattr(jsonfile, "WINDOW_CHARS", 64)  # the change is not yet read when the write happens
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(2000) + "]}")  # beyond the reader's buffer too (8 KiB)
    job_file = JobFile(path, settings())
    jobs = iter(job_file)
    read = [next(jobs), next(jobs)]
    text = path.read_text()
    with open(path, "r+") as handle:  # same size, in place
        handle.write(text.replace('"P1500"', '"X1500"'))

    with pytest.raises(JobFileError) as caught:
        read.extend(jobs)
    assert str(caught.value) == (f"{path}: groups[1500]: changed since the file was validated; no job from it on was "
                                 "sent")
    assert [job.job_id for job in read] == [f"P{index:04d}" for index in range(1500)]


def test_a_file_changed_between_the_two_readings_of_validation_is_refused(tmp_path, monkeypatch):
    """A top-level key after the groups makes validation read the file twice (the groups are built again with it)."""
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [' + groups_text(10) + '], "pipeline": "p"}')
    opened = []
    real_open = jsonfile.open_file

    def open_and_change_before_the_second(where, error):
        opened.append(where)
        if len(opened) == 2:  # the second reading: someone saved the file meanwhile
            Path(where).write_text('{"groups": [' + groups_text(10, {5: '{"plate": "new"}'}) + '], "pipeline": "p"}')
            os.utime(where, ns=(0, 0))
        return real_open(where, error)

    monkeypatch.setattr("chalicelib.model.jobs.open_file", open_and_change_before_the_second)
    assert refused(path) == (f"{path}: changed while it was being validated; nothing was sent; submit it again "
                             "once it is written")


def test_a_top_level_key_after_the_groups_counts_for_every_group(tmp_path, window):
    """Groups without 'plate' are refused with the keys before them, and good with the one after them."""
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [{"well": "A01"}, {"well": "B02"}], "_comment": "x", "plate": "P1"}')

    jobs = list(JobFile(path, settings(OUTPUT_PREFIX="out/{plate}/{well}")))
    assert [json.loads(job.body) for job in jobs] == [{"plate": "P1", "group": {"well": "A01"}},
                                                     {"plate": "P1", "group": {"well": "B02"}}]


def test_a_bad_group_before_invalid_json_is_reported_as_the_invalid_json(tmp_path, window):
    """As when the file was read whole: what is not JSON first, then the groups."""
    text = '{"groups": [{"well": "A01"}, {"plate": "P1"}], "pipeline": "p",}'
    path = tmp_path / "jobs.json"
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(text)

    assert refused(path) == (f"{path}: invalid JSON at line {whole.value.lineno} column {whole.value.colno}: "
                             f"{whole.value.msg}")
