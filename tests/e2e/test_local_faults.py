"""Local runs under faults: workers killed at random, and no secret in anything a run writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid

import pytest

from tests.e2e.local_world import Run, environment, local_args, marked_processes, processes_marked, table_value

JOBS = 500


def worker_pids(mark: str) -> list[int]:
    """The `python -m worker --single` processes of this run (not supervisors, not commands)."""
    return [pid for pid, argv in marked_processes(mark) if b"--single" in argv]


@pytest.mark.slow
def test_workers_killed_at_random_during_a_run_of_500_jobs_lose_nothing(tmp_path):
    # A short visibility: a killed worker's job comes back within seconds for another worker.
    run = Run(tmp_path, CLUSTER_MACHINES=2, DOCKER_CORES=2, SQS_MESSAGE_VISIBILITY=3, JOB_RETRIES=5)
    names = [f"j{index:03d}" for index in range(JOBS)]
    jobfile = tmp_path / "jobs.json"
    jobfile.write_text(json.dumps({"groups": [{"job_id": name, "name": name, "mode": "sleep:0.05"}
                                              for name in names]}))
    mark = uuid.uuid4().hex
    chance = random.Random(20261126)
    process = subprocess.Popen(local_args(jobfile, run.config, "--out", str(run.out), "--workers", "4"),
                               cwd=tmp_path, env=environment(mark), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    killed = 0
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and killed < 6 and time.monotonic() < deadline:
            time.sleep(chance.uniform(1.0, 3.0))
            started = len(list(run.marks.glob("*.started")))
            pids = worker_pids(mark)
            if pids and 20 < started < JOBS - 50:  # mid-run, while jobs are still waiting
                os.kill(chance.choice(pids), signal.SIGKILL)
                killed += 1
        stdout, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()

    assert killed >= 3, f"only {killed} kills landed mid-run:\n{stdout}"
    assert process.returncode == 0, stdout
    assert table_value(stdout, "done") == str(JOBS)
    for name in names:  # a killed worker's job ran again elsewhere: every output is there, and whole
        assert (run.out / "outputs" / name / "result.txt").read_text() == name + "\n"
    assert processes_marked(mark) == []
    machine_logs = "".join(path.read_text() for path in (run.out / "machines").glob("*.log"))
    # each kill was replaced, unless it hit a machine that was already being stopped
    assert 1 <= machine_logs.count("died (exit -9); starting another") <= killed


def test_no_secret_of_the_users_environment_lands_in_anything_a_local_run_writes(tmp_path):
    secret = "wJalrXUtnFEMI/K7MDENG/" + uuid.uuid4().hex
    key_id = "AKIA" + uuid.uuid4().hex[:16].upper()
    run = Run(tmp_path)
    env_extra = {"AWS_SECRET_ACCESS_KEY": secret, "AWS_ACCESS_KEY_ID": key_id, "AWS_SESSION_TOKEN": secret}
    mark = uuid.uuid4().hex
    result = subprocess.run(local_args(run.jobs("ok", "ok", "fail"), run.config, "--out", str(run.out)),
                            cwd=tmp_path, env={**environment(mark), **env_extra}, capture_output=True, text=True,
                            timeout=300)  # as run_local's: a hang guard
    assert result.returncode == 1, result.stdout + result.stderr  # one job fails on purpose
    written = [path for path in run.out.rglob("*") if path.is_file()]
    assert len(written) > 5
    for path in written:
        data = path.read_bytes()
        assert secret.encode() not in data and key_id.encode() not in data, path
    assert secret not in result.stdout + result.stderr and key_id not in result.stdout + result.stderr
    assert processes_marked(mark) == []


@pytest.mark.slow
def test_a_local_run_of_300_jobs_completes_under_throttling(moto_server, tmp_path):
    """The moto server of the tests (patched, in this process) behind the fault proxy: 10 % of every
    request of the CLI, the monitor and the workers fail with the protocol's throttling error or a 500."""
    from tests.faults import FaultProxy

    run = Run(tmp_path, CLUSTER_MACHINES=2, DOCKER_CORES=2, SQS_MESSAGE_VISIBILITY=10, JOB_RETRIES=3)
    names = [f"j{index:04d}" for index in range(300)]
    jobfile = tmp_path / "jobs.json"
    jobfile.write_text(json.dumps({"groups": [{"job_id": name, "name": name, "mode": "ok"} for name in names]}))
    mark = uuid.uuid4().hex
    with FaultProxy(moto_server, rate=0.1, seed=11) as proxy:
        result = subprocess.run(local_args(jobfile, run.config, "--out", str(run.out), "--workers", "4",
                                           "--endpoint", proxy.url),
                                cwd=tmp_path, env=environment(mark), capture_output=True, text=True, timeout=600)
    print(f"faults injected: {proxy.total_faults} of {proxy.total_faults + proxy.forwarded} requests: "
          f"{dict(sorted(proxy.faults.items()))}")
    assert proxy.total_faults > 50
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_value(result.stdout, "done") == "300"
    for name in names:
        assert (run.out / "outputs" / name / "result.txt").read_text() == name + "\n"
    assert processes_marked(mark) == []
