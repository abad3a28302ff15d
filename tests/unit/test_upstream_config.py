"""DS's and DCP's config.py as upstream has them today load unchanged (chalicelib/model/dsconfig.py with the tables of
chalicelib/model/upstream_keys.py); a typo is still refused with "did you mean"; a key newer than the tables is a
warning, and reaches the image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.model import upstream_keys
from chalicelib.model.dsconfig import read_ds_config
from chalicelib.model.errors import ConfigError
from chalicelib.model.settings import KEYS_BY_NAME, Settings
from cli import cli

UPSTREAM = Path(__file__).resolve().parents[1] / "data" / "upstream"
# Distributed-Something's config.py, byte for byte: `git show d1d6e62:config.py` in
# DistributedScience/Distributed-Something (d1d6e62 is its main today).
DS_CONFIG = UPSTREAM / "ds_config_d1d6e62.py"
# Distributed-CellProfiler's config.py, byte for byte: `git show 17388b3:config.py` in
# DistributedScience/Distributed-CellProfiler (its master today; config.py last changed in bccb4ce). Line 59 is
# ALWAYS_CONTINUE, added in 707b3cd ("Add ALWAYS_CONTINUE (#169)", July 2024).
DCP_CONFIG = UPSTREAM.parent / "dcp_17388b3" / "config.py"  # with its job and fleet files (tests/e2e)


def _with(tmp_path: Path, original: Path, *lines: str) -> Path:
    """Upstream's file with lines added as a user edits it: at the end, or in DS's file just above its last
    section (line 50, "# PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE"), whose variables are the program's."""
    text, added = original.read_text(), "".join(line + "\n" for line in lines)
    heading = "# PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE"
    path = tmp_path / "config.py"
    path.write_text(text.replace(heading, added + heading) if heading in text else text + added)
    return path


def test_dss_config_py_loads_unchanged_in_ds_image_mode_without_a_warning():
    settings, warnings = Settings.load_with_warnings(DS_CONFIG)

    assert warnings == []
    assert settings.ds_image_mode
    assert (settings.APP_NAME, settings.CPU_SHARES, settings.SECONDS_TO_START, settings.ASSIGN_IP) == (
        "DistributedSomething", 4096, 180, False)
    assert settings.ENVIRONMENT == ()  # DS's "PUT ANYTHING SPECIFIC TO YOUR PROGRAM" section is empty
    assert settings.JOB_MESSAGE_FORMAT == "DS"  # DS's worker reads message['group']


def test_dcps_current_config_py_loads_unchanged_and_its_image_keys_become_its_environment():
    settings, warnings = Settings.load_with_warnings(DCP_CONFIG)

    assert warnings == []
    assert (settings.SOURCE_BUCKET, settings.DESTINATION_BUCKET, settings.JOB_RETRIES) == ("bucket-name",
                                                                                           "bucket-name", 3)
    # as DCP's run.py passes them: ALWAYS_CONTINUE, DOWNLOAD_FILES and USE_PLUGINS always, WORKSPACE_BUCKET as it
    # is not 'False', the plugin switches not at all while USE_PLUGINS is 'False'
    assert settings.environment == {"WORKSPACE_BUCKET": "bucket-name", "DOWNLOAD_FILES": "False",
                                    "ALWAYS_CONTINUE": "False", "USE_PLUGINS": "False"}
    assert settings.JOB_MESSAGE_FORMAT == "DCP"  # DCP's keys: DCP's worker, which reads message['Metadata']


def test_dcps_config_with_plugins_passes_the_plugin_switches_in_run_pys_text_forms(tmp_path):
    # DCP's run.py writes str(UPDATE_PLUGINS) and the like: a Python True is 'True', a number its digits
    path = _with(tmp_path, DCP_CONFIG, "USE_PLUGINS = 'True'", "UPDATE_PLUGINS = True", "PLUGINS_COMMIT = 4.2",
                 "WORKSPACE_BUCKET = 'False'")

    environment = Settings.load(path).environment

    assert {name: environment.get(name) for name in ("USE_PLUGINS", "UPDATE_PLUGINS", "PLUGINS_COMMIT",
                                                     "INSTALL_REQUIREMENTS", "REQUIREMENTS", "WORKSPACE_BUCKET")} == {
        "USE_PLUGINS": "True", "UPDATE_PLUGINS": "True", "PLUGINS_COMMIT": "4.2", "INSTALL_REQUIREMENTS": "False",
        "REQUIREMENTS": "", "WORKSPACE_BUCKET": None}


def test_an_old_dcp_configs_requirements_file_is_read_as_requirements(tmp_path):
    # DCP's run.py lines 21 and 31-32: `if REQUIREMENTS_FILE: REQUIREMENTS = REQUIREMENTS_FILE`
    path = _with(tmp_path, DCP_CONFIG, "USE_PLUGINS = 'True'", "REQUIREMENTS_FILE = 'requirements.txt'")

    config = read_ds_config(path)

    assert config.settings["ENVIRONMENT"]["REQUIREMENTS"] == "requirements.txt"
    assert "REQUIREMENTS_FILE" not in config.settings["ENVIRONMENT"]
    assert "REQUIREMENTS_FILE: DCP's run.py (17388b3) reads it as REQUIREMENTS" in config.notes


@pytest.mark.parametrize("original, line, said", [
    (DCP_CONFIG, "ALWAYS_CONTINU = 'True'", "unknown key 'ALWAYS_CONTINU' in {path}, line 63; did you mean "
                                            "'ALWAYS_CONTINUE'?"),
    (DCP_CONFIG, "WORKSPACE_BUCKETS = 'imaging'", "unknown key 'WORKSPACE_BUCKETS' in {path}, line 63; did you mean "
                                                  "'WORKSPACE_BUCKET'?"),
    (DS_CONFIG, "CLUSTER_MACHINE = 4", "unknown key 'CLUSTER_MACHINE' in {path}, line 50; did you mean "
                                       "'CLUSTER_MACHINES'?"),
    (DS_CONFIG, "expected_number_files = 3", "unknown key 'expected_number_files' in {path}, line 50; did you mean "
                                             "'EXPECTED_NUMBER_FILES'?"),
])
def test_a_typo_of_a_known_key_is_refused_with_did_you_mean_in_one_line_exit_2(tmp_path, original, line, said):
    path = _with(tmp_path, original, line)

    result = CliRunner().invoke(cli, ["submit", "jobs.json", "--config", str(path)])

    assert result.exit_code == 2
    assert result.output == f"error: {said.format(path=path)}\n"


def test_a_key_upstream_adds_later_is_a_warning_naming_it_and_reaches_the_image(tmp_path):
    # a key neither this project nor DCP's run.py at 17388b3 knows, shaped as DCP names its keys
    path = _with(tmp_path, DCP_CONFIG, "CELLPROFILER_FLAGS = '--conserve-memory'")

    result = CliRunner().invoke(cli, ["convert-config", "--config", str(path)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ENVIRONMENT"]["CELLPROFILER_FLAGS"] == "--conserve-memory"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {path}: line 63: CELLPROFILER_FLAGS is neither a key of this project nor one DS's run.py "
        "(d1d6e62) or DCP's run.py (17388b3) passes to its image; taken for a key upstream added later, it reaches "
        "the image as the environment variable CELLPROFILER_FLAGS"]
    assert Settings.load(path).environment["CELLPROFILER_FLAGS"] == "--conserve-memory"


def test_every_command_with_a_config_py_prints_the_later_keys_warning(tmp_path):
    path = _with(tmp_path, DS_CONFIG, "MONITOR_SNS = 'arn:aws:sns:us-east-1:123456789012:runs'")  # DS's older key

    result = CliRunner().invoke(cli, ["submit", str(tmp_path / "missing.json"), "--config", str(path)])

    assert result.stderr.startswith(f"warning: {path}: line 50: MONITOR_SNS is neither a key of this project")
    assert result.exit_code == 2  # then the command goes on, here to the missing job file


@pytest.mark.parametrize("line, said", [
    ("helper = 'lab'", "unknown key 'helper' in {path}, line 50; expected a key of this project or of DS's or "
                       "DCP's run.py (UPPER_CASE, not starting with AWS_ or DSR_): see the configuration table in "
                       "README.md"),
    ("AWS_SESSION_TOKEN = 'secret'", "unknown key 'AWS_SESSION_TOKEN' in {path}, line 50; expected a key of this "
                                     "project or of DS's or DCP's run.py (UPPER_CASE, not starting with AWS_ or DSR_): "
                                     "see the configuration table in README.md"),
    ("EXTRA_TYPES = ['m5.large']", "unknown key 'EXTRA_TYPES' in {path}, line 50; expected text or a number, as a "
                                   "key upstream passes to its image becomes an environment variable, got list"),
    ("SQS_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/1/Other'", "unknown key 'SQS_QUEUE_URL' in {path}, line "
     "50; SQS_QUEUE_URL is not a key: it is computed, by DS's run.py (d1d6e62) and DCP's run.py (17388b3) and by "
     "this project"),
    ("DOCKER_CORE_COUNT = None", "unknown key 'DOCKER_CORE_COUNT' in {path}, line 50; did you mean 'DOCKER_CORES'? "
                                 "If not, expected text or a number, as a key upstream passes to its image becomes "
                                 "an environment variable, got NoneType"),
])
def test_an_unknown_key_that_cannot_be_upstreams_is_refused(tmp_path, line, said):
    path = _with(tmp_path, DS_CONFIG, line)

    with pytest.raises(ConfigError) as caught:
        read_ds_config(path)

    assert str(caught.value) == said.format(path=path)


def test_the_ds_image_environment_holds_every_variable_ds_and_dcps_run_py_pass_of_this_projects_keys():
    variables = Settings.load(DCP_CONFIG).ds_environment("https://sqs/queue")

    for upstream in upstream_keys.UPSTREAMS:
        ours = {variable.name for variable in upstream.variables
                if not variable.from_config or variable.name in KEYS_BY_NAME}
        assert ours <= set(variables), upstream.short
    assert not any(name.startswith("AWS_") and name != "AWS_REGION" and name != "AWS_BUCKET" for name in variables)


def test_each_table_names_its_upstream_commit_and_dcps_extends_dss():
    assert (upstream_keys.DS.commit[:7], upstream_keys.DCP.commit[:7]) == ("d1d6e62", "17388b3")
    assert set(upstream_keys.DS.variables) <= set(upstream_keys.DCP.variables)


def test_variables_under_dss_last_section_are_the_programs_without_a_warning(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(DS_CONFIG.read_text() + "MY_THREADS = 4\nmodel_name = 'cells'\n")

    settings, warnings = Settings.load_with_warnings(path)

    assert (settings.environment, warnings) == ({"MY_THREADS": "4", "model_name": "cells"}, [])
