"""Job files: DS's shape, ids, templates, and every rejection with its exact message."""

import json
from pathlib import Path

import pytest

from chalicelib.model.errors import JobFileError
from chalicelib.model.jobs import (
    MAX_MESSAGE_BYTES,
    NotAJob,
    derive_job_id,
    job_from_message,
    job_id_of_message,
    load_job_file,
    output_prefix_of_message,
    parse_job_document,
)
from tests.conftest import make_settings

# The shape of DS's own example job file: shared keys, comment keys, groups.
DS_EXAMPLE = {
    "_comment1": "Paths in this file are relative to the root of your S3 bucket",
    "pipeline": "projects/analysis.cppipe",
    "data_file": "projects/load_data.csv",
    "input": "projects/input/",
    "output": "projects/output/",
    "output_structure": "Metadata_Plate-Metadata_Well-Metadata_Site",
    "_comment2": "The following groups are tasks, and each will be run in parallel",
    "groups": [
        {"Metadata": "Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site=1"},
        {"Metadata": "Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site=2"},
    ],
}


def settings(**overrides):
    base = {"COMMAND": ["python", "run.py", "--plate", "{plate}", "--out", "{output_dir}"]}
    return make_settings(**{**base, **overrides})


def rejected(document, **overrides) -> str:
    with pytest.raises(JobFileError) as caught:
        parse_job_document(document, settings(**overrides), "jobs.json")
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_ds_example_shape():
    jobs = parse_job_document(DS_EXAMPLE, settings(COMMAND=["cp", "{pipeline}", "{output_dir}"]))
    assert [job.job_id for job in jobs] == [
        "Metadata_Plate_Plate1_Metadata_Well_A01_Metadata_Site_1",
        "Metadata_Plate_Plate1_Metadata_Well_A01_Metadata_Site_2",
    ]
    message = json.loads(jobs[0].body)
    assert "_comment1" not in message and "groups" not in message
    assert message == {
        "pipeline": "projects/analysis.cppipe", "data_file": "projects/load_data.csv", "input": "projects/input/",
        "output": "projects/output/", "output_structure": "Metadata_Plate-Metadata_Well-Metadata_Site",
        "group": {"Metadata": "Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site=1"},
    }
    assert jobs[0].output_prefix == "TestApp/Metadata_Plate_Plate1_Metadata_Well_A01_Metadata_Site_1"


def test_job_id_is_group_values_in_sorted_key_order_joined_by_dash():
    jobs = parse_job_document({"groups": [{"well": "A01", "plate": "P1", "site": 3}]}, settings())
    assert jobs[0].job_id == "P1-3-A01"


def test_a_group_may_name_its_own_id():
    jobs = parse_job_document({"groups": [{"plate": "P1", "job_id": "first"}]}, settings())
    assert jobs[0].job_id == "first"


@pytest.mark.parametrize("values,expected", [
    (["a/b", "c d"], "a_b-c_d"),
    (["../../etc", "x"], "etc-x"),
    (["/abs"], "abs"),
    (["ok.csv"], "ok.csv"),
    (["x:y*z"], "x_y_z"),
    ([1, True, None], "1-true-null"),
])
def test_derived_ids_are_safe_for_log_streams_and_s3_keys(values, expected):
    assert derive_job_id(values) == expected


def test_long_ids_are_shortened_and_stay_unique():
    first, second = derive_job_id(["x" * 300 + "1"]), derive_job_id(["x" * 300 + "2"])
    assert len(first) == 200 and first != second


def test_command_renders_as_argument_list_with_values_intact():
    job = parse_job_document({"mode": "fast", "groups": [{"plate": "P 1; rm -rf / \"'"}]}, settings())[0]
    assert job.command(settings(), "/tmp/out", "/tmp/in") == ["python", "run.py", "--plate",
                                                              "P 1; rm -rf / \"'", "--out", "/tmp/out"]


def test_group_values_override_shared_values():
    job = parse_job_document({"plate": "shared", "groups": [{"plate": "own"}]}, settings())[0]
    assert job.values["plate"] == "own"


def test_templates_see_app_name_and_job_keys():
    job = parse_job_document({"batch": "b1", "groups": [{"plate": "P1"}]},
                             settings(OUTPUT_PREFIX="{APP_NAME}/{batch}/{plate}", INPUT_PREFIX="in/{plate}/"))[0]
    assert (job.output_prefix, job.input_prefix) == ("TestApp/b1/P1", "in/P1")


def test_ten_thousand_groups():
    document = {"_comment": "x", "pipeline": "p", "groups": [{"plate": f"P{i:05d}", "well": "A01"}
                                                               for i in range(10_000)]}
    jobs = parse_job_document(document, settings())
    assert len(jobs) == 10_000 and len({job.job_id for job in jobs}) == 10_000
    assert jobs[-1].job_id == "P09999-A01"


def test_message_round_trips_through_the_worker_edge():
    s = settings()
    job = parse_job_document({"pipeline": "p", "groups": [{"plate": "P1"}]}, s)[0]
    again = job_from_message(job.body, s)
    assert (again.job_id, again.output_prefix, again.body) == (job.job_id, job.output_prefix, job.body)


@pytest.mark.parametrize("body,reason", [
    ("not json", "message body is not JSON"),
    ('["a"]', "message is not a JSON object with a 'group' object"),
    ('{"plate": "P1"}', "message is not a JSON object with a 'group' object"),
    ('{"group": {"x": 1}}', "message: missing key 'plate' used as {plate} in COMMAND; add it to the group or to "
                            "the top level"),
    ('{"group": {"plate": "P1", "job_id": "../x"}}', None),
    # what a job file may not hold, a message (sent by anyone who may send to the queue) may not either
    ('{"group": {"plate": NaN}}', "message body is not JSON: group.plate: expected a number JSON allows, got NaN "
                                  "(JSON has no NaN or Infinity)"),
    ('{"group": {"plate": "P1", "plate": "P2"}}', "message body is not JSON: group.plate: expected each key once in "
                                                  "an object, got this key twice (only the last value would be kept)"),
    ('{"group": {"plate": "P1\\u0000"}}', 'message.plate: expected no NUL character (it is an argument of COMMAND, '
                                           'which a program\'s arguments cannot hold), got "P1\\u0000"'),
])
def test_messages_that_are_not_our_jobs(body, reason):
    with pytest.raises(NotAJob) as caught:
        job_from_message(body, settings())
    if reason:
        assert str(caught.value) == reason


def test_a_messages_job_id_is_read_without_the_runs_settings_as_the_worker_reads_it():
    """The monitor Lambda has no settings: GET /runs/{app}/failed reads a dead-letter message's job id alone."""
    s = settings()
    jobs = parse_job_document({"pipeline": "p", "groups": [{"plate": "P1", "well": "A 01"},
                                                           {"plate": "P2", "job_id": "mine"}]}, s)
    assert [job_id_of_message(job.body) for job in jobs] == [job_from_message(job.body, s).job_id
                                                            for job in jobs] == ["P1-A_01", "mine"]
    assert job_id_of_message('{"group": {"x": 1}}') == "1"  # whether it may run is the worker's check, not this
    for body in ("not json", '{"plate": "P1"}', '{"group": {"plate": "P1", "job_id": "../x"}}', '{"group": {}}'):
        with pytest.raises(NotAJob):
            job_id_of_message(body)


REJECTIONS = [
    ([], "jobs.json: expected a JSON object with a 'groups' list, got list"),
    ({"pipeline": "p"}, "jobs.json: missing key 'groups' (the list of jobs)"),
    ({"groups": {"a": 1}}, "jobs.json: groups: expected a list of objects, got dict"),
    ({"groups": []}, "jobs.json: groups: expected at least one job, got an empty list"),
    ({"groups": [{"plate": "P1"}, "P2"]}, "jobs.json: groups[1]: expected an object of job values, got str"),
    ({"groups": [{"plate": "P1"}, {"well": "A1"}]}, "jobs.json: groups[1]: missing key 'plate' used as {plate} in "
                                                    "COMMAND; add it to the group or to the top level"),
    ({"groups": [{"plate": "P1"}, {"plate": "P1"}]}, "jobs.json: groups[1]: job id 'P1' is also the id of "
                                                     "groups[0]; job ids must be unique (set 'job_id' in the group)"),
    ({"groups": [{"plate": "a/b"}, {"plate": "a b"}]}, "jobs.json: groups[1]: job id 'a_b' is also the id of "
                                                       "groups[0]; job ids must be unique (set 'job_id' in the "
                                                       "group)"),
    ({"groups": [{"plate": "P1", "job_id": "../up"}]}, "jobs.json: groups[0]: job_id: expected 1 to 200 letters, "
                                                       "digits, '.', '-' or '_' (no '..'), got \"../up\""),
    ({"groups": [{"plate": "P1", "job_id": 7}]}, "jobs.json: groups[0]: job_id: expected 1 to 200 letters, "
                                                 "digits, '.', '-' or '_' (no '..'), got 7"),
    ({"groups": [{}]}, "jobs.json: groups[0]: cannot make a job id from this group's values; add a 'job_id'"),
    ({"group": 1, "groups": [{"plate": "P1"}]}, "jobs.json: group: reserved top-level key (each message carries "
                                                "its group under it)"),
    ({"groups": [{"plate": "P1", "blob": "x" * MAX_MESSAGE_BYTES}]}, "jobs.json: groups[0]: message is 262094 "
                                                                     "bytes, over the limit of 262056 (SQS's 262144 "
                                                                     "less 88 for the run's message attribute); keep "
                                                                     "large data in S3 and pass its key"),
]


@pytest.mark.parametrize("document,message", REJECTIONS)
def test_rejections(document, message):
    assert rejected(document) == message


def test_a_template_that_escapes_the_output_prefix_is_rejected():
    assert rejected({"groups": [{"plate": "../../other"}]}, OUTPUT_PREFIX="{plate}") == (
        "jobs.json: groups[0]: OUTPUT_PREFIX renders to '../../other'; expected a relative S3 prefix without "
        "empty, '.' or '..' parts")
    assert rejected({"groups": [{"plate": "/etc"}]}, OUTPUT_PREFIX="{plate}/x") == (
        "jobs.json: groups[0]: OUTPUT_PREFIX renders to '/etc/x'; expected a relative S3 prefix without empty, "
        "'.' or '..' parts")
    assert rejected({"groups": [{"plate": "..", "job_id": "j1"}]}, INPUT_PREFIX="in/{plate}") == (
        "jobs.json: groups[0]: INPUT_PREFIX renders to 'in/..'; expected a relative S3 prefix without empty, "
        "'.' or '..' parts")


def test_missing_placeholder_in_output_prefix_names_it():
    assert rejected({"groups": [{"plate": "P1"}]}, OUTPUT_PREFIX="{batch}/{job_id}") == (
        "jobs.json: groups[0]: missing key 'batch' used as {batch} in OUTPUT_PREFIX; add it to the group or to the "
        "top level")


def test_load_job_file_reports_the_path(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text('{"groups": [')
    with pytest.raises(JobFileError, match=r"jobs.json: invalid JSON at line 1 column 13"):
        load_job_file(path, settings())
    path.write_text(json.dumps({"groups": [{"plate": "P1"}]}))
    assert load_job_file(path, settings())[0].job_id == "P1"


# A job value that renders empty would make its prefix the parent of every other job's prefix.
PARENT_OF_OTHERS = ("jobs.json: groups[3]: OUTPUT_PREFIX: {plate} is empty, so the prefix would be 'out', the "
                    "parent of other jobs' prefixes; give 'plate' a value")


@pytest.mark.parametrize("empty", ["", "/", "//", None])
def test_a_job_value_rendering_empty_in_output_prefix_is_refused(empty):
    groups = [{"plate": f"P{i}"} for i in range(3)] + [{"plate": empty, "job_id": "fourth"}]
    assert rejected({"groups": groups}, OUTPUT_PREFIX="out/{plate}") == PARENT_OF_OTHERS


def test_an_empty_value_in_input_prefix_is_refused_too():
    assert rejected({"groups": [{"plate": "P1", "batch": ""}]}, INPUT_PREFIX="in/{batch}/") == (
        "jobs.json: groups[0]: INPUT_PREFIX: {batch} is empty, so the prefix would be 'in', the parent of other "
        "jobs' prefixes; give 'batch' a value")


def test_an_empty_value_inside_a_part_is_refused_with_the_prefix_it_gives():
    assert rejected({"groups": [{"plate": "", "well": "A01"}]}, OUTPUT_PREFIX="out/{plate}{well}") == (
        "jobs.json: groups[0]: OUTPUT_PREFIX: {plate} is empty, so the prefix would be 'out/A01'; give 'plate' a "
        "value")


def test_the_run_wide_placeholders_are_not_job_values():
    prefix = "{APP_NAME}/{AWS_BUCKET}/{plate}"
    job = parse_job_document({"groups": [{"plate": "P1"}]}, settings(OUTPUT_PREFIX=prefix))[0]
    assert job.output_prefix == "TestApp/test-bucket/P1"


def test_the_worker_edge_refuses_an_empty_value_as_submit_does():
    with pytest.raises(NotAJob) as caught:
        job_from_message('{"group": {"plate": "/", "job_id": "j"}}', settings(OUTPUT_PREFIX="out/{plate}"))
    assert str(caught.value) == ("message: OUTPUT_PREFIX: {plate} is empty, so the prefix would be 'out', the parent "
                                 "of other jobs' prefixes; give 'plate' a value")


def test_an_output_prefix_that_is_the_parent_of_another_names_both_groups():
    # 'out/P1-b' sorts between 'out/P1' and 'out/P1/A01' as plain strings: the check must still find the pair
    groups = [{"path": "P2"}, {"path": "P1/A01"}, {"path": "P1-b"}, {"path": "P1"}]
    assert rejected({"groups": groups}, OUTPUT_PREFIX="out/{path}", COMMAND=["run", "{path}"]) == (
        "jobs.json: groups[3]: OUTPUT_PREFIX renders to 'out/P1', the parent of groups[1]'s 'out/P1/A01', so one "
        "job's outputs would land among the other's; end OUTPUT_PREFIX with a value of each job's own, such as "
        "{job_id}")


def test_siblings_sharing_a_start_are_not_parents():
    groups = [{"path": "P1"}, {"path": "P10"}, {"path": "P1-b"}, {"path": "P1.c/x"}]
    jobs = parse_job_document({"groups": groups}, settings(OUTPUT_PREFIX="out/{path}", COMMAND=["run", "{path}"]))
    assert len(jobs) == 4


def test_a_shared_output_prefix_is_refused_only_with_check_if_done():
    document = {"groups": [{"plate": "P1", "well": "A01"}, {"plate": "P2", "well": "A01"},
                           {"plate": "P1", "well": "B02"}]}
    assert len(parse_job_document(document, settings(OUTPUT_PREFIX="out/{plate}"))) == 3
    assert rejected(document, OUTPUT_PREFIX="out/{plate}", CHECK_IF_DONE_BOOL=True) == (
        "jobs.json: groups[2]: OUTPUT_PREFIX renders to 'out/P1', as it does for groups[0]; with CHECK_IF_DONE_BOOL "
        "on, one job's outputs would make the other count as done; give each job its own prefix, such as with "
        "{job_id}")


def test_a_large_file_passes_the_prefix_checks_with_every_prefix_its_own():
    # How long it takes is bench/bench_jobs.py's to measure (100,000 groups), never a clock in a test
    document = {"groups": [{"plate": f"P{i // 100}", "well": f"W{i % 100}"} for i in range(50_000)]}
    jobs = parse_job_document(document, settings(OUTPUT_PREFIX="out/{plate}/{well}", CHECK_IF_DONE_BOOL=True))
    assert len({job.output_prefix for job in jobs}) == len(jobs) == 50_000


# ---- DCP's message shape (JOB_MESSAGE_FORMAT "DCP", DS image mode)

DCP_JOB_FILE = Path(__file__).resolve().parents[1] / "data" / "dcp_17388b3" / "exampleJob.json"


def _dcp_settings(**overrides):
    return make_settings(COMMAND=None, JOB_MESSAGE_FORMAT="DCP", OUTPUT_PREFIX="{APP_NAME}/{job_id}", **overrides)


def test_dcps_example_job_file_becomes_the_messages_dcps_run_py_submits():
    """DCP's run.py submitJob (17388b3 lines 547-571): templateMessage = {'Metadata', 'pipeline', 'output', 'input',
    'data_file', 'output_structure'}, Metadata the group's; its worker reads message['Metadata']."""
    jobs = parse_job_document(json.loads(DCP_JOB_FILE.read_text()), _dcp_settings(), "exampleJob.json")
    assert [json.loads(job.body) for job in jobs] == [
        {"Metadata": f"Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site={site}",
         "pipeline": "projects/analysis.cppipe", "output": "projects/output/", "input": "projects/input/",
         "data_file": "projects/list_of_images.csv", "output_structure": "Metadata_Plate-Metadata_Well-Metadata_Site"}
        for site in (1, 2)]
    # the monitor and triage name a dead-lettered DCP message's job as submit did
    assert [job_id_of_message(job.body) for job in jobs] == [job.job_id for job in jobs]


def test_a_dcp_group_of_parameters_is_its_metadata_and_output_structure_defaults_to_empty():
    document = {"pipeline": "p.cppipe", "output": "out/", "input": "in/", "data_file": "d.csv",
                "groups": [{"Metadata_Plate": "P1", "Metadata_Well": "A01"}]}
    [job] = parse_job_document(document, _dcp_settings())
    assert json.loads(job.body) == {"Metadata": {"Metadata_Plate": "P1", "Metadata_Well": "A01"},
                                    "pipeline": "p.cppipe", "output": "out/", "input": "in/", "data_file": "d.csv",
                                    "output_structure": ""}
    assert job_id_of_message(job.body) == job.job_id


@pytest.mark.parametrize("change,error", [
    (lambda d: d.pop("pipeline"), "jobs.json: missing key 'pipeline' at the top level (DCP's run.py puts pipeline, "
                                  "output, input, data_file and output_structure in every message; JOB_MESSAGE_FORMAT "
                                  "is DCP)"),
    (lambda d: d["groups"][0].update(job_id="x"), "jobs.json: groups[0]: expected only 'Metadata' in a group (DCP's "
                                                  "messages carry nothing else of it; JOB_MESSAGE_FORMAT is DCP), got "
                                                  "also 'job_id'"),
])
def test_a_job_file_dcps_run_py_could_not_submit_is_refused(change, error):
    document = json.loads(DCP_JOB_FILE.read_text())
    change(document)
    with pytest.raises(JobFileError) as caught:
        parse_job_document(document, _dcp_settings())
    assert str(caught.value) == error


def test_with_a_command_this_projects_worker_reads_ds_shaped_messages_whatever_the_format():
    jobs = parse_job_document(json.loads(DCP_JOB_FILE.read_text()),
                              make_settings(COMMAND=["run", "{Metadata}"], JOB_MESSAGE_FORMAT="DCP"))
    assert "group" in json.loads(jobs[0].body)


def test_a_messages_output_prefix_is_the_one_its_job_was_built_with_for_a_reader_without_the_settings():
    """The monitor has the OUTPUT_PREFIX template and the run's values (its run record), not the settings: the prefix
    it makes of a message is the one submit and the worker make of the job (chaos seed 61's rule lists it)."""
    settings = make_settings(OUTPUT_PREFIX="{AWS_BUCKET}-results/{APP_NAME}/{plate}/{job_id}")
    jobs = parse_job_document({"pipeline": "measure", "groups": [{"plate": "P1"}, {"plate": "P2", "job_id": "two"}]},
                              settings)
    run_values = {"APP_NAME": "TestApp", "AWS_BUCKET": "test-bucket"}

    assert [output_prefix_of_message(job.body, settings.OUTPUT_PREFIX, run_values) for job in jobs] == [
        job.output_prefix for job in jobs] == ["test-bucket-results/TestApp/P1/P1",
                                               "test-bucket-results/TestApp/P2/two"]
    for body, template in (('{"group": {"plate": "P1"}}', "{well}"),  # a value the message does not carry
                           ('{"group": {"plate": "../.."}}', "{plate}"),  # no relative S3 prefix
                           ('{"Metadata": "Metadata_Plate=P1", "output": "out"}', "{job_id}"),  # DCP's shape
                           ('{"group": {"plate": "P1"}}', "{plate")):  # a template no config could hold
        with pytest.raises(NotAJob):
            output_prefix_of_message(body, template, run_values)
