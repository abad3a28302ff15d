"""`status` warns when no deployed monitor watches the run's bucket: read back from the Lambda functions
`chalice deploy` leaves on this project's emulator (their MONITOR_BUCKETS), and fixed by `monitor-config` for
the run's config and a new deploy."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from operations.deployed import monitor_policy
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.iam_engine import chalicelib_uses, iam_enforced, policy_session
from tests.integration.test_chalice_deploy import chalice, copy_project, watch
from tests.integration.world import Account

NO_MONITOR = ("warning: no monitor deployed in us-east-1 (app ds-runner-monitor): the run will not be scaled down or "
              "torn down until `chalice deploy` (or while `python cli.py monitor` runs)\n")


def status(account: Account):
    return CliRunner().invoke(cli, ["status", "--config", str(account.config_path)])


def start(account: Account, folder) -> None:
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=folder / "files")


@pytest.mark.slow
def test_status_warns_while_the_deployed_monitor_watches_another_bucket_until_monitor_config_and_deploy(
        moto_server, tmp_path):
    account = Account(tmp_path, ECS_CLUSTER="runs")
    start(account, tmp_path)
    project = copy_project(tmp_path / "project")
    other = tmp_path / "other-lab.json"  # the monitor deployed for another lab's bucket, as the README's was
    other.write_text(json.dumps({**json.loads(account.config_path.read_text()), "AWS_BUCKET": "my-lab-bucket"}))
    watch(project, other)
    chalice(project, "deploy")

    mismatched = status(account)
    watch(project, account.config_path)
    chalice(project, "deploy")
    watched = status(account)

    assert mismatched.exit_code == 0, mismatched.output
    assert mismatched.stderr == (
        "warning: the deployed monitor does not watch test-bucket (ds-runner-monitor-dev watches my-lab-bucket): "
        "the run will not be scaled down or torn down; run "
        f"`python cli.py monitor-config {account.config_path}` and `chalice deploy`\n")
    assert mismatched.stdout.startswith("run ")
    assert (watched.exit_code, watched.stderr) == (0, "")
    assert watched.stdout.startswith("run ")


def test_status_says_when_no_monitor_is_deployed(started):
    result = status(started)

    assert (result.exit_code, result.stderr) == (0, NO_MONITOR)
    assert "12 submitted" in result.stdout


def test_status_says_nothing_of_the_monitor_to_a_caller_who_may_not_read_lambda(started):
    """The status API's own policy reads everything status shows, and no Lambda function."""
    reader = policy_session(monitor_policy.api_policy(monitor_policy.Watched(("test-bucket",), ("user_DeadMessages",))))

    with iam_enforced(), chalicelib_uses(reader):
        result = status(started)

    assert (result.exit_code, result.stderr) == (0, "")
    assert "12 submitted" in result.stdout


def test_a_finished_run_needs_no_monitor(started):
    CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(started.config_path)])

    result = status(started)

    assert (result.exit_code, result.stderr) == (0, "")
    assert "finished" in result.stdout
