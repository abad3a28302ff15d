"""DCP's current config.py, unchanged, drives setup-account and setup on moto in DS image mode, and its keys are in
the task definition as DCP's run.py puts them there (names and text forms), read back from ECS."""

from __future__ import annotations

from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from tests.unit.test_upstream_config import DCP_CONFIG, DS_CONFIG, _with

# DCP's run.py at 17388b3, generate_task_definition (lines 120-164), for DCP's config.py at the same commit:
# the always-passed list (lines 120-135) with str() around the numbers and USE_PLUGINS and the others as written;
# SOURCE_BUCKET and DESTINATION_BUCKET as SOURCE_BUCKET is not 'false' (136-145), WORKSPACE_BUCKET likewise
# (146-151), UPLOAD_FLAGS as '' is not 'false' (152-157); no plugin switches, USE_PLUGINS being 'False' (158-164).
# AWS_REGION comes from TASK_DEFINITION (lines 42-51). The AWS keys run.py adds without a role_arn are never here.
DCP_TASK_ENVIRONMENT = {
    "AWS_REGION": "us-east-1", "APP_NAME": "DistributedCP", "AWS_BUCKET": "your-bucket-name", "DOCKER_CORES": "4",
    "LOG_GROUP_NAME": "DistributedCP", "CHECK_IF_DONE_BOOL": "False", "EXPECTED_NUMBER_FILES": "7",
    "ECS_CLUSTER": "default", "SECONDS_TO_START": "180", "MIN_FILE_SIZE_BYTES": "1", "USE_PLUGINS": "False",
    "NECESSARY_STRING": "", "DOWNLOAD_FILES": "False", "ALWAYS_CONTINUE": "False",
    "SOURCE_BUCKET": "bucket-name", "DESTINATION_BUCKET": "bucket-name", "WORKSPACE_BUCKET": "bucket-name",
    "UPLOAD_FLAGS": "",
}


def _setup(config) -> dict[str, str]:
    s3 = clients.client("s3", region="us-east-1")
    for bucket in ("your-bucket-name", "bucket-name"):  # the buckets DCP's file names
        s3.create_bucket(Bucket=bucket)
    for command in ("setup-account", "setup"):
        result = CliRunner().invoke(cli, [command, "--config", str(config)])
        assert result.exit_code == 0, (command, result.output)
    [container] = clients.client("ecs", region="us-east-1").describe_task_definition(
        taskDefinition="DistributedCPTask")["taskDefinition"]["containerDefinitions"]
    return {item["name"]: item["value"] for item in container["environment"]}


def test_dcps_current_config_py_puts_dcps_keys_in_the_task_definition_as_dcps_run_py_does(aws):
    variables = _setup(DCP_CONFIG)

    queue_url = variables.pop("SQS_QUEUE_URL")
    assert queue_url.endswith("/DistributedCPQueue")
    assert variables == DCP_TASK_ENVIRONMENT


def test_with_plugins_and_a_later_key_the_task_definition_holds_them_too(aws, tmp_path):
    config = _with(tmp_path, DCP_CONFIG, "USE_PLUGINS = 'True'", "PLUGINS_COMMIT = 'v4.2.8'",
                   "CELLPROFILER_FLAGS = '--conserve-memory'")

    variables = _setup(config)

    assert {name: variables.get(name) for name in ("USE_PLUGINS", "UPDATE_PLUGINS", "PLUGINS_COMMIT",
                                                   "INSTALL_REQUIREMENTS", "REQUIREMENTS", "CELLPROFILER_FLAGS")} == {
        "USE_PLUGINS": "True", "UPDATE_PLUGINS": "False", "PLUGINS_COMMIT": "v4.2.8", "INSTALL_REQUIREMENTS": "False",
        "REQUIREMENTS": "", "CELLPROFILER_FLAGS": "--conserve-memory"}


def test_dss_config_py_puts_no_dcp_only_key_in_the_task_definition(aws):
    s3 = clients.client("s3", region="us-east-1")
    s3.create_bucket(Bucket="your-bucket-name")
    for command in ("setup-account", "setup"):
        result = CliRunner().invoke(cli, [command, "--config", str(DS_CONFIG)])
        assert result.exit_code == 0, (command, result.output)
    [container] = clients.client("ecs", region="us-east-1").describe_task_definition(
        taskDefinition="DistributedSomethingTask")["taskDefinition"]["containerDefinitions"]

    names = {item["name"] for item in container["environment"]}
    assert not names & {"ALWAYS_CONTINUE", "USE_PLUGINS", "DOWNLOAD_FILES", "WORKSPACE_BUCKET"}
