"""A run of 1,500 machines on the emulator, which refuses what AWS refuses (localrun/moto_limits.py): once its jobs
are done the monitor releases every machine and tears the run down, within AWS's per-call limits."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from localrun.moto_patches import set_service_quota
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.integration.world import Account, drain, reconcile_until_gone, write_jobs

pytestmark = pytest.mark.slow

MACHINES = 1500


def live_machines() -> list[str]:
    pages = clients.client("ec2").get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [instance["InstanceId"] for page in pages for reservation in page["Reservations"]
            for instance in reservation["Instances"]]


def test_a_drained_run_of_1500_machines_is_torn_down(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    account = Account(tmp_path, ECS_CLUSTER="runs", CLUSTER_MACHINES=MACHINES)
    set_service_quota("L-34B43A08", 2.0 * MACHINES)  # the Standard Spot vCPUs of 1,500 m5.large machines
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 12)), "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0)
    assert len(live_machines()) == MACHINES

    assert drain(account) == 12
    reconcile_until_gone(account)

    assert live_machines() == []
