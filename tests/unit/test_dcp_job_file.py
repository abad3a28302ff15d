"""Distributed-CellProfiler's example job file as DCP has it (files/exampleJob.json at 17388b3, copied unchanged to
tests/data/dcp_17388b3/): its "_comment2" is given twice (lines 3 and 9, since DCP's first version, 29e038d). A
repeated comment key is let through, since every reader drops comments; any other repeated key is still refused."""

from pathlib import Path

import pytest

from chalicelib.model.errors import JobFileError
from chalicelib.model.jobs import load_job_file
from tests.conftest import make_settings

DCP_JOB_FILE = Path(__file__).resolve().parents[1] / "data" / "dcp_17388b3" / "exampleJob.json"


def test_dcps_example_job_file_loads_its_two_jobs():
    jobs = load_job_file(DCP_JOB_FILE, make_settings(COMMAND=None))

    assert [job.values["Metadata"] for job in jobs] == ["Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site=1",
                                                        "Metadata_Plate=Plate1,Metadata_Well=A01,Metadata_Site=2"]
    assert all("_comment" not in key for job in jobs for key in job.values)


def test_a_repeated_key_that_is_not_a_comment_is_still_refused(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(DCP_JOB_FILE.read_text().replace('"_comment2": "The following', '"output": "The following'))

    with pytest.raises(JobFileError) as caught:
        load_job_file(path, make_settings(COMMAND=None))
    assert str(caught.value) == (f"{path}: output: expected each key once in an object, got this key twice (only the "
                                 "last value would be kept)")
