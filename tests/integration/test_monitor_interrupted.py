"""`cli.py monitor` stopped with Ctrl-C, as a user's terminal does it: a real process and a real SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.integration.world import Account, the_run

REPO = Path(__file__).resolve().parents[2]


def test_ctrl_c_in_monitor_stops_watching_with_one_line_and_exit_130(moto_server, tmp_path):
    account = Account(tmp_path)
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=tmp_path / "files")
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "monitor", "--config", str(account.config_path),
                                "--period", "60"], cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # watching ...: the first check follows at once
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert first.startswith("watching s3://test-bucket/monitors/TestAppSpotFleetRequestId.json every 60 s")
    assert process.returncode == 130
    assert err.strip() == "stopped watching; run TestApp goes on (the Lambda, if deployed, still watches it)"
    assert "Traceback" not in out + err
    assert the_run(account) is not None  # the run itself is untouched
