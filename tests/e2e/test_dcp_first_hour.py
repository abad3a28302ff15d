"""A Distributed-CellProfiler user's first hour, as they would spend it: their repo's files as DCP has them today,
the emulator in one shell, the commands in another, the run rehearsed to its end. Every command runs as a user runs
it (a process of its own) and what it prints is checked for what the user needs to see.

The files are DCP's at 17388b3 (2026-06-30), copied unchanged to tests/data/dcp_17388b3/: config.py, and
files/exampleJob.json and files/exampleFleet_us-east-1.json. The user changes what every DCP user changes: the
bucket names in config.py (lines 13-16). The fleet file stays as it is: the emulator writes its copy naming the
emulated account's subnet, security group and instance profile. The pipeline and load-data file go to the
workspace bucket, where DCP's worker reads them (worker/cp-worker.py, lines 185-206).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.e2e.local_world import CLI, REPO

DCP = REPO / "tests" / "data" / "dcp_17388b3"
STANDIN_WORKER = Path(__file__).with_name("dcp_standin_worker.py")
BUCKETS = {"AWS_BUCKET = 'your-bucket-name'": "AWS_BUCKET = 'lab-dcp'",
           "SOURCE_BUCKET = 'bucket-name'": "SOURCE_BUCKET = 'lab-images'",
           "WORKSPACE_BUCKET = 'bucket-name'": "WORKSPACE_BUCKET = 'lab-dcp'",
           "DESTINATION_BUCKET = 'bucket-name'": "DESTINATION_BUCKET = 'lab-results'"}
FIFTEEN_MINUTES = 15 * 60


class Shell:
    """The user's second shell: the emulator's variables exported, the repo as working directory."""

    def __init__(self, repo: Path, url: str):
        self.repo = repo
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_ENDPOINT_URL": url,
                    "AWS_ACCESS_KEY_ID": "local-mode", "AWS_SECRET_ACCESS_KEY": "local-mode",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        self.transcript: list[str] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, str(CLI), *args], env=self.env, cwd=self.repo, capture_output=True,
                                text=True, timeout=180)
        self.transcript.append(f"$ python cli.py {' '.join(args)}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                            aws_access_key_id="local-mode", aws_secret_access_key="local-mode")


def dcp_repo(folder: Path) -> Path:
    """The user's clone of DCP, its config.py's buckets named."""
    repo = folder / "Distributed-CellProfiler"
    (repo / "files").mkdir(parents=True)
    config = (DCP / "config.py").read_text()
    for old, new in BUCKETS.items():  # only the buckets: DCP's config.py otherwise loads as it is
        assert old in config
        config = config.replace(old, new)
    (repo / "config.py").write_text(config)
    for name in ("exampleJob.json", "exampleFleet_us-east-1.json"):
        shutil.copy(DCP / name, repo / "files" / name)
    return repo


@contextlib.contextmanager
def emulator(repo: Path):
    """`python cli.py emulator --config config.py --fleet files/exampleFleet_us-east-1.json` in the first shell."""
    process = subprocess.Popen([sys.executable, str(CLI), "emulator", "--port", "0", "--config", "config.py",
                                "--fleet", "files/exampleFleet_us-east-1.json"],
                               cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made, announced = process.stdout.readline(), process.stdout.readline()
        exported = process.stdout.readline()
        url = re.search(r"emulator at (http://127\.0\.0\.1:\d+);", announced).group(1)
        assert made == ("made bucket lab-dcp, lab-images, lab-results, the roles (setup-account), a private subnet "
                        "and a security group; the fleet file for them: fleet.emulator.json\n")
        assert exported.strip() == (f"export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID=local-mode "
                                    "AWS_SECRET_ACCESS_KEY=local-mode AWS_DEFAULT_REGION=us-east-1")
        yield Shell(repo, url)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0 and rest.rstrip().endswith("emulator stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def up_to_a_started_run(shell: Shell) -> None:
    """setup-account, setup, the workspace files uploaded, submit, start-cluster, status: each command's output
    checked for what the user needs from it."""
    fleet = json.loads((shell.repo / "fleet.emulator.json").read_text())
    [spec] = fleet["LaunchSpecifications"]
    assert spec["IamInstanceProfile"]["Arn"].endswith(":instance-profile/dsr-ecs-instance-role")

    account = shell.cli("setup-account", "--config", "config.py").stdout
    assert "unchanged instance profile dsr-ecs-instance-role" in account  # the emulator made it
    assert "IamFleetRole" not in account  # DCP's fleet file names one; it is not used, so nothing to change

    setup = shell.cli("setup", "--config", "config.py").stdout.splitlines()
    assert setup == ["created queue user_DeadMessages", "created queue DistributedCPQueue",
                     "created log group DistributedCP", "created log group DistributedCP_perInstance",
                     "created topic Monitor", "created ECS cluster default",
                     "created task definition DistributedCPTask:1", "created ECS service DistributedCPService"]

    s3 = shell.client("s3")  # as `aws s3 cp` would: DCP's worker reads both from WORKSPACE_BUCKET
    s3.put_object(Bucket="lab-dcp", Key="projects/analysis.cppipe", Body=b"CellProfiler Pipeline\n")
    s3.put_object(Bucket="lab-dcp", Key="projects/list_of_images.csv", Body=b"Metadata_Plate,Metadata_Well\n")

    submitted = shell.cli("submit", "files/exampleJob.json", "--config", "config.py")
    assert submitted.stdout == "submitted 2 jobs to DistributedCPQueue\n"

    started = shell.cli("start-cluster", "fleet.emulator.json", "--config", "config.py")
    assert re.search(r"^created EC2 Fleet fleet-\S+ \(3 x m5\.xlarge, price-capacity-optimized, Spot price, cost "
                     r"ceiling \$0\.6/h\)$", started.stdout, re.M), started.stdout
    assert "set DistributedCPService to 3 tasks" in started.stdout
    assert re.search(r"^fleet fleet-\S+: 3 of 3 machines running$", started.stdout, re.M), started.stdout
    # two warnings: DCP's example's DOWNLOAD_FILES 'False' (an s3fs mount that cannot get credentials here), and its
    # lowestPrice, with what it becomes and how to keep it
    assert started.stderr.splitlines() == [
        "warning: DOWNLOAD_FILES is 'False': DCP's worker would mount s3://lab-images with s3fs using the machine's "
        "own credentials, which containers cannot reach here (the instance metadata service answers the host only) "
        "and which hold no S3 rights; set DOWNLOAD_FILES = 'True' so each job's files are downloaded with the task "
        "role's rights",
        "warning: fleet.emulator.json: AllocationStrategy: 'lowestPrice' (DS's example) is run as "
        "'price-capacity-optimized', which AWS recommends for Spot (lowest price is interrupted more often); "
        "write 'lowest-price' to keep it"]

    status = shell.cli("status", "--config", "config.py").stdout
    assert re.search(r"^jobs +2 submitted, 2 waiting, 0 running, 0 done, 0 failed$", status, re.M), status
    assert re.search(r"^fleet +target 3, fulfilled 3, 3 machine\(s\)$", status, re.M), status


def images_worker(shell: Shell) -> subprocess.CompletedProcess:
    """What ECS would start on each machine: DCP's worker with the task definition's environment."""
    [container] = shell.client("ecs").describe_task_definition(taskDefinition="DistributedCPTask")[
        "taskDefinition"]["containerDefinitions"]
    variables = {item["name"]: item["value"] for item in container["environment"]}
    env = {"PATH": os.environ["PATH"], "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           **{k: v for k, v in shell.env.items() if k.startswith("AWS_")}, **variables}
    return subprocess.run([sys.executable, str(STANDIN_WORKER)], env=env, capture_output=True, text=True, timeout=60)


def finished(shell: Shell) -> None:
    """The user watches the run from the terminal (the Lambda does it on AWS) until it is torn down."""
    watched = shell.cli("monitor", "--config", "config.py", "--period", "1").stdout
    assert watched.rstrip().endswith("run torn down; summary at s3://lab-dcp/monitors/finished/DistributedCP_summary.json")
    status = shell.cli("status", "--config", "config.py").stdout
    assert re.search(r"^state +finished$", status, re.M), status
    assert re.search(r"^stop reason +queue empty and no job in flight on two consecutive checks$", status, re.M)
    assert re.search(r"^jobs done +2$", status, re.M) and re.search(r"^jobs failed +0$", status, re.M), status


def test_a_dcp_users_first_hour_reaches_a_started_run_and_tears_it_down(tmp_path):
    began = time.monotonic()
    with emulator(dcp_repo(tmp_path)) as shell:
        up_to_a_started_run(shell)
        torn = shell.cli("teardown", "--config", "config.py", "--period", "1").stdout
        assert torn.rstrip().endswith("torn down; summary at s3://lab-dcp/monitors/finished/DistributedCP_summary.json")
    seconds = time.monotonic() - began
    print(f"\nwall clock: {seconds:.1f} s\n\n" + "\n".join(shell.transcript))
    assert seconds < FIFTEEN_MINUTES


def test_a_dcp_users_run_finishes_with_dcps_worker(tmp_path):
    """DCP's worker reads message['Metadata'] (cp-worker.py 125-160): submit writes DCP's message shape for DCP's
    config.py (DCP run.py 547-571), not DS's `group` (DS run.py 547-555), or every job would stop with KeyError."""
    began = time.monotonic()
    with emulator(dcp_repo(tmp_path)) as shell:
        up_to_a_started_run(shell)
        worker = images_worker(shell)
        assert worker.returncode == 0, worker.stderr[-2000:]
        s3 = shell.client("s3")
        outputs = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="lab-results")["Contents"])
        assert outputs == ["projects/output/Plate1-A01-1/Image.csv", "projects/output/Plate1-A01-2/Image.csv"]
        finished(shell)
    seconds = time.monotonic() - began
    print(f"\nwall clock: {seconds:.1f} s\n\n" + "\n".join(shell.transcript))
    assert seconds < FIFTEEN_MINUTES
