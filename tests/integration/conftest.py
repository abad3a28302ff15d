"""Fixtures the integration tests share: a started run, a second, unrelated run beside it, the worker's clients
and the Chalice app's test client."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import chalice.local
import chalice.test
import pytest
from chalice.test import Client
from click.testing import CliRunner

import app as monitor_app
from chalicelib.aws import client as aws_client
from chalicelib.monitor import status_index
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.integration.world import JOBS, Account, as_previous_version_run, the_run, write_jobs
from tests.worker_world import aws_clients

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def started(aws, tmp_path, monkeypatch):
    """A run with 12 jobs on 2 machines, its fleet fulfilled (moto launches at once)."""
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs", CREATE_DASHBOARD=True, CLEAN_DASHBOARD=True)
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, JOBS)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    logs = aws_client("logs")
    for group, stream in (("TestApp", "P00000"), ("TestApp_perInstance", "TestApp/TestApp/task1")):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)  # as a worker and ECS would
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "started: job"}])
    return account


@pytest.fixture
def victim(started, tmp_path):
    """A second, unrelated run in the same account and bucket: its own cluster, queue, fleet, logs and alarms."""
    folder = tmp_path / "victim"
    folder.mkdir()
    account = Account(folder, APP_NAME="Victim", ECS_CLUSTER="victims", AUTO_MONITOR=True)
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(folder, 3)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=folder / "files")
    reconcile(the_run(account))  # its monitor has looked once: its machines have their idle alarms
    return account


@pytest.fixture
def ds_image_run(started, tmp_path):
    """A run in DS image mode (COMMAND null: its image runs its own worker, which writes no failure record)
    beside `started`, in the same account and bucket, sharing its dead-letter queue: 2 jobs, started."""
    return start_ds_image_run(tmp_path / "dsimage")


def start_ds_image_run(folder: Path, **config) -> Account:
    """The DS image run of `ds_image_run` (with `config` over its settings), submitted and started."""
    folder.mkdir()
    account = Account(folder, **{"APP_NAME": "DsImage", "ECS_CLUSTER": "dsimages", "COMMAND": None, **config})
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(folder, 2)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=folder / "files")
    reconcile(the_run(account))  # its monitor has looked once: its machines have their idle alarms
    return account


@pytest.fixture
def legacy_run(started, tmp_path):
    """A run the previous version started, on a spot fleet request (world.as_previous_version_run), beside
    `started` in the same account and bucket: 3 jobs."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    account = Account(folder, APP_NAME="Legacy", ECS_CLUSTER="legacies")
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(folder, 3)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=folder / "files")
    as_previous_version_run(account)
    return account


@pytest.fixture
def clients(aws):
    """The worker's clients, by name, as Worker takes them."""
    return aws_clients()


@pytest.fixture
def client(tmp_path, monkeypatch):
    """The test client sets the stage's environment from .chalice/config.json on every call, so the
    tests use a copy of the real config that watches the test bucket."""
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    # chalice.test gives every invoke a context of 3 s (LambdaContext's default), not the function's timeout; the
    # monitor budgets its tick by the time left, so its invokes get the stage's lambda_timeout as on Lambda
    timeout_ms = config["stages"]["dev"]["lambda_timeout"] * 1000
    monkeypatch.setattr(chalice.test, "LambdaContext",
                        functools.partial(chalice.local.LambdaContext, max_runtime_ms=timeout_ms))
    config["stages"]["dev"]["environment_variables"]["MONITOR_BUCKETS"] = "test-bucket"
    # each test's account is new, and so is its Lambda container: no status index known from an earlier test's
    monkeypatch.setattr(status_index, "_known", {})
    monkeypatch.setattr(status_index, "_indexed", {})
    project = tmp_path / "project"
    (project / ".chalice").mkdir(parents=True)
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with Client(monitor_app.app, project_dir=str(project)) as test_client:
        yield test_client
