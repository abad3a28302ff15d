"""`cli.py api PATH` against the status API as `chalice deploy` leaves it on this project's emulator: the request
signed with the config's credentials, answered by the deployed Lambda (localrun/api_gateway.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.integration.test_chalice_deploy import chalice, project  # noqa: F401 - project is a fixture
from tests.integration.world import Account

pytestmark = pytest.mark.slow


def api(account: Account, *args: str):
    return CliRunner().invoke(cli, ["api", *args, "--config", str(account.config_path)])


def test_api_answers_from_the_deployed_monitor_and_a_bad_path_is_one_line(moto_server, project,  # noqa: F811
                                                                          tmp_path):
    account = Account(tmp_path, ECS_CLUSTER="runs")
    chalice(project, "deploy")
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=tmp_path / "files")

    listed = api(account)  # PATH defaults to /runs
    one = api(account, "/runs/TestApp")
    missing = api(account, "/runs/NoSuchRun")
    no_route = api(account, "/nothing")

    assert listed.exit_code == 0, listed.output
    assert [run["app_name"] for run in json.loads(listed.output)["runs"]] == ["TestApp"]
    assert listed.output.startswith('{\n  "')  # pretty, as a user reads it
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["app_name"] == "TestApp"
    assert (missing.exit_code, missing.output) == (
        2, "error: GET /runs/NoSuchRun: HTTP 404: no run named 'NoSuchRun' in test-bucket\n")
    assert (no_route.exit_code, no_route.output) == (
        2, "error: GET /nothing: HTTP 403: Missing Authentication Token\n")


def test_api_before_chalice_deploy_says_to_deploy(moto_server, tmp_path):
    account = Account(tmp_path)

    result = api(account)

    assert (result.exit_code, result.output) == (
        2, "error: no status API 'ds-runner-monitor' deployed in us-east-1: run 'chalice deploy' first\n")
