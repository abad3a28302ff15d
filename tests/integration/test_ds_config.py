"""A DS user's config.py (DS's own example, its bucket named and COMMAND added) drives setup, submit and
start-cluster on moto, and its YOUR CONFIGURATIONS variable reaches the job's environment."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.settings import Settings
from cli import cli
from tests.integration.world import Account, write_jobs
from tests.worker_world import FAST, aws_clients
from worker.worker import Worker

DS_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "ds_config.py"
COMMAND = [sys.executable, "-c", "import os, pathlib, sys; pathlib.Path(sys.argv[1], 'threads.txt')"
           ".write_text(os.environ['MY_THREADS'])", "{output_dir}", "{plate}"]


def test_dss_config_py_runs_setup_submit_and_start_cluster_and_its_variable_reaches_the_job(aws, tmp_path):
    account = Account(tmp_path)  # the bucket, roles and network a user has; its config.json is not used
    config = tmp_path / "config.py"
    config.write_text(DS_EXAMPLE.read_text()
                      .replace("AWS_BUCKET = 'your-bucket-name'", "AWS_BUCKET = 'test-bucket'")
                      .replace("# PUT ANYTHING", f"COMMAND = {COMMAND!r}\n# PUT ANYTHING"))

    for args in (["setup-account"], ["setup"], ["submit", str(write_jobs(tmp_path, 2))],
                 ["start-cluster", str(account.fleet_path), "--wait", "0"]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert result.exit_code == 0, (args, result.output)
    settings = Settings.load(config)
    worker = Worker(settings, options=FAST, **aws_clients())
    worker.run_forever(exit_when_empty=True)
    worker.close()

    s3 = clients.client("s3")
    outputs = {key: s3.get_object(Bucket="test-bucket", Key=key)["Body"].read() for key in (
        "DistributedSomething/P00000/threads.txt", "DistributedSomething/P00001/threads.txt")}
    assert set(outputs.values()) == {b"4"}
    assert clients.client("sqs").get_queue_url(QueueName="DeadMessages")["QueueUrl"].endswith("/DeadMessages")
