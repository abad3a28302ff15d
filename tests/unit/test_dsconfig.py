"""DS's config.py, read and never run (chalicelib/model/dsconfig.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.model.dsconfig import read_ds_config
from chalicelib.model.errors import ConfigError
from chalicelib.model.settings import Settings

# DS's own example config.py, as DS ships it, with one variable under its last section.
DS_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "ds_config.py"


def test_dss_example_is_read_with_its_arithmetic_names_and_program_section():
    config = read_ds_config(DS_EXAMPLE)

    assert config.settings["CPU_SHARES"] == 4 * 1024 and config.settings["SECONDS_TO_START"] == 180
    assert config.settings["SQS_QUEUE_NAME"] == "DistributedSomethingQueue"
    assert config.settings["SQS_DEAD_LETTER_QUEUE"] == "DeadMessages"  # DS's ARN, as the name this project takes
    assert config.settings["ENVIRONMENT"] == {"MY_THREADS": "4"}
    assert config.settings["COMMAND"] is None  # no COMMAND in DS's file: DS image mode
    assert "MY_THREADS" not in config.settings
    assert [note.split(":")[0] for note in config.notes] == ["SQS_DEAD_LETTER_QUEUE", "COMMAND", "PRIVILEGED",
                                                                 "AWS_PROFILE"]


def test_with_a_command_added_it_loads_as_settings(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(DS_EXAMPLE.read_text().replace("# PUT ANYTHING",
                                                   "COMMAND = ['measure', '{plate}']\n# PUT ANYTHING"))

    settings = Settings.load(path)

    assert (settings.CHECK_IF_DONE_BOOL, settings.MACHINE_TYPE, settings.CPU_SHARES) == (False, ("m4.xlarge",), 4096)
    assert settings.to_environment()["MY_THREADS"] == "4"


@pytest.mark.parametrize("line, why", [
    ("import os", "line 2: expected NAME = value"),
    ("X = __import__('os').system('rm -rf /')", "line 2: Call is not allowed here; this file is read, never run"),
    ("X = APP_NAME.lower()", "line 2: Call is not allowed here"),
    ("X = f'{APP_NAME}'", "line 2: JoinedStr is not allowed here"),
    ("X = [n for n in range(3)]", "line 2: ListComp is not allowed here"),
    ("X = UNDEFINED + 1", "line 2: UNDEFINED is used before it is assigned"),
    ("X = 'a' * 'b'", "line 2: cannot compute this value"),
    ("X = 1 / 0", "line 2: cannot compute this value (division by zero)"),
    ("A, B = 1, 2", "line 2: expected NAME = value"),
    ("X = (", "line 2: not valid Python"),
])
def test_anything_but_plain_assignments_is_refused_with_its_line(tmp_path, line, why):
    path = tmp_path / "config.py"
    path.write_text(f"APP_NAME = 'App'\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        read_ds_config(path)
    assert str(caught.value).startswith(f"{path}: {why}")


def test_a_program_variable_must_be_text_or_a_number(tmp_path):
    path = tmp_path / "config.py"
    path.write_text("# PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE\nFLAG = True\nNAMES = ['a']\n")
    with pytest.raises(ConfigError, match="line 3: NAMES: a variable for your program must be text or a number"):
        read_ds_config(path)


def test_convert_config_prints_the_json_and_each_difference_on_stderr():
    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["convert-config", "--config", str(DS_EXAMPLE)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == read_ds_config(DS_EXAMPLE).settings
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == [
        "SQS_DEAD_LETTER_QUEUE", "COMMAND", "PRIVILEGED", "AWS_PROFILE"]
    assert all(line.startswith("note: ") for line in result.stderr.splitlines())


# A config.py laid out as Distributed-CellProfiler's: three buckets, UPLOAD_FLAGS, its plugin switches.
DCP_EXAMPLE = DS_EXAMPLE.parent / "dcp_config.py"


def test_dcps_config_keeps_its_buckets_and_hands_its_image_switches_to_the_image():
    config = read_ds_config(DCP_EXAMPLE)
    settings = Settings.from_mapping(config.settings, str(DCP_EXAMPLE))

    assert (settings.AWS_BUCKET, settings.SOURCE_BUCKET, settings.DESTINATION_BUCKET) == (
        "lab-runs", "public-images", "lab-results")
    assert settings.upload_args == {"ACL": "bucket-owner-full-control"}
    variables = settings.ds_environment("https://queue")
    assert {name: variables[name] for name in ("SOURCE_BUCKET", "DESTINATION_BUCKET", "UPLOAD_FLAGS",
                                               "WORKSPACE_BUCKET", "DOWNLOAD_FILES", "USE_PLUGINS")} == {
        "SOURCE_BUCKET": "public-images", "DESTINATION_BUCKET": "lab-results",
        "UPLOAD_FLAGS": "--acl bucket-owner-full-control", "WORKSPACE_BUCKET": "lab-runs", "DOWNLOAD_FILES": "False",
        "USE_PLUGINS": "False"}
    assert "REQUIREMENTS" not in variables  # DCP's run.py passes the plugin switches only with USE_PLUGINS 'True'
    assert any(note.startswith("WORKSPACE_BUCKET, DOWNLOAD_FILES, USE_PLUGINS") for note in config.notes)


def test_without_dcps_buckets_inputs_and_outputs_stay_in_aws_bucket():
    settings = Settings.load(DS_EXAMPLE)

    assert settings.SOURCE_BUCKET == settings.DESTINATION_BUCKET == settings.AWS_BUCKET == "your-bucket-name"
    assert settings.upload_args == {}
