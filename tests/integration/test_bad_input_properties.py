"""Any JSON value at any key of config.json or a job file: it loads, or it is one clean line.

hypothesis puts arbitrary JSON (nulls, booleans, huge and non-finite numbers,
odd text, nested lists and objects) at the known keys, at unknown keys, and as
the whole document. Loading must give a value or a UserError whose message is
one line; any other exception is a bug. A job file the loader rejects is then
submitted through `cli.py` against moto: exit code 2, one `error:` line, and
the queue still empty (nothing half-done).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib import aws as clients
from chalicelib.model.errors import UserError
from chalicelib.model.jobs import parse_job_document
from chalicelib.model.settings import KEYS_BY_NAME, Settings
from cli import cli
from operations.setup import resources
from tests.conftest import BASE_CONFIG, make_settings

BOUNDED = hypothesis_settings(max_examples=200, deadline=2000, derandomize=True,
                              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30) | \
    st.floats() | st.sampled_from([float("nan"), float("inf"), -float("inf")]) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)
config_keys = st.sampled_from(sorted(KEYS_BY_NAME)) | st.text(min_size=1, max_size=20)
job_keys = st.sampled_from(["plate", "well", "job_id", "group", "groups", "_comment", "pipeline"]) | \
    st.text(min_size=1, max_size=12)


def one_line(error: Exception) -> bool:
    return isinstance(error, UserError) and "\n" not in str(error) and str(error).strip() != ""


@BOUNDED
@given(changes=st.dictionaries(config_keys, json_values, min_size=1, max_size=3))
def test_any_value_at_any_config_key_loads_or_is_one_clean_line(changes):
    try:
        Settings.from_mapping({**BASE_CONFIG, **changes})
    except UserError as error:
        assert one_line(error), repr(str(error))


@BOUNDED
@given(document=json_values)
def test_any_json_document_as_config_loads_or_is_one_clean_line(document):
    try:
        Settings.from_mapping(document)
    except UserError as error:
        assert one_line(error), repr(str(error))


def job_documents():
    group = st.dictionaries(job_keys, json_values, max_size=3).map(lambda values: {"plate": "P1", **values})
    groups = st.lists(group | json_values, min_size=0, max_size=3)
    shared = st.dictionaries(job_keys, json_values, max_size=3)
    return st.one_of(
        st.builds(lambda s, g: {**s, "groups": g}, shared, groups),
        st.builds(lambda s, g: {**s, "groups": g}, shared, json_values),
        json_values)


JOB_SETTINGS = make_settings(COMMAND=["python", "-c", "print(1)", "{plate}"])


@BOUNDED
@given(document=job_documents())
def test_any_job_document_loads_or_is_one_clean_line(document):
    try:
        jobs = parse_job_document(document, JOB_SETTINGS)
    except UserError as error:
        assert one_line(error), repr(str(error))
    else:
        assert jobs and all(json.loads(job.body)["group"] for job in jobs)


@pytest.fixture
def queue(aws, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**BASE_CONFIG, "COMMAND": JOB_SETTINGS.COMMAND}))
    resources.setup(JOB_SETTINGS)
    sqs = clients.client("sqs")
    return config, sqs, sqs.get_queue_url(QueueName=JOB_SETTINGS.SQS_QUEUE_NAME)["QueueUrl"]


def _dumps(document) -> str:
    # Python's json writes NaN and Infinity, and reads them back: a user's file may hold them too
    return json.dumps(document, allow_nan=True)


@hypothesis_settings(max_examples=100, deadline=5000, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=job_documents())
def test_submit_of_a_rejected_job_file_exits_2_with_one_line_and_sends_nothing(queue, tmp_path_factory, document):
    config, sqs, url = queue
    try:
        parse_job_document(document, JOB_SETTINGS, "jobs.json")
        return  # accepted: not this test's subject
    except UserError:
        pass
    path = tmp_path_factory.mktemp("jobs") / "jobs.json"
    path.write_text(_dumps(document))
    result = CliRunner().invoke(cli, ["submit", str(path), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


