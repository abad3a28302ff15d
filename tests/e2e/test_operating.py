"""Operating on one machine, as a user does it in two shells: the driver killed with SIGKILL leaves nothing
running; the README's rehearsal (the emulator, then every AWS command against it); a plain moto refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid

from moto.server import ThreadedMotoServer

from tests.e2e.local_world import CLI, REPO, Run, environment, local_args, processes_marked, run_local, table_value
from tests.waiting import wait_for


def test_the_drivers_processes_stop_within_seconds_when_it_is_killed(tmp_path):
    run = Run(tmp_path)
    mark = uuid.uuid4().hex
    driver = subprocess.Popen(local_args(run.jobs(*["sleep:60"] * 4), run.config, "--out", str(run.out)),
                              cwd=tmp_path, env=environment(mark), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def a_job_started() -> bool:  # a command is running on a machine
        assert driver.poll() is None, "the driver ended before a job started"
        return bool(list(run.marks.glob("*.started")))

    try:
        wait_for(a_job_started, "a job to start", timeout=180)  # local mode boots its world first: slow under load
        driver.kill()  # SIGKILL: no handler runs, nothing is cleaned up by the driver
        driver.wait()
        wait_for(lambda: not processes_marked(mark), "supervisors, workers and commands to stop when their driver "
                 "dies", timeout=20, interval=0.2, details=lambda: "\n".join(processes_marked(mark)))
    finally:
        for line in processes_marked(mark):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def cli(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_readmes_rehearsal_runs_every_aws_command_against_the_emulator(tmp_path):
    config = str(REPO / "examples" / "config.json")
    emulator = subprocess.Popen([sys.executable, str(CLI), "emulator", "--port", "0", "--config", config],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made = emulator.stdout.readline()
        announced = emulator.stdout.readline()
        url = re.search(r"emulator at (http://127\.0\.0\.1:\d+);", announced).group(1)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_ENDPOINT_URL": url,
               "AWS_ACCESS_KEY_ID": "local-mode", "AWS_SECRET_ACCESS_KEY": "local-mode"}
        steps = [("setup-account", "--config", config), ("selftest", "fleet.emulator.json", "--config", config),
                 ("setup", "--config", config),
                 ("submit", str(REPO / "examples" / "jobs.json"), "--config", config),
                 ("start-cluster", "fleet.emulator.json", "--config", config, "--wait", "0"),
                 ("status", "--config", config), ("plan", "--config", config),
                 ("teardown", "--config", config, "--period", "1")]
        results = {step[0]: cli(*step, env=env, cwd=tmp_path) for step in steps}
        emulator.send_signal(signal.SIGINT)
        out, _ = emulator.communicate(timeout=30)
    finally:
        if emulator.poll() is None:
            emulator.kill()

    assert made.startswith("made bucket demo-bucket, the roles (setup-account), a private subnet")
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout, result.stderr)
    assert results["selftest"].stdout.rstrip().endswith("self-test passed: this account can run DemoPlates")
    assert "ok    agent: machine i-" in results["selftest"].stdout  # the emulator's machines join ECS as AWS's do
    assert "submitted 48 jobs to DemoPlatesQueue" in results["submit"].stdout
    assert "48 submitted, 48 waiting" in results["status"].stdout
    assert results["teardown"].stdout.rstrip().endswith("torn down; summary at "
                                                        "s3://demo-bucket/monitors/finished/DemoPlates_summary.json")
    assert emulator.returncode == 0 and out.rstrip().endswith("emulator stopped")


def test_local_refuses_a_plain_moto_server_in_one_line(tmp_path):
    run = Run(tmp_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        result = subprocess.run(local_args(run.jobs("ok"), run.config, "--endpoint", f"http://{host}:{port}"),
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        server.stop()

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (f"error: local mode: http://{host}:{port} is a plain moto server, without this "
                             "project's patches (a run on it never finishes tearing down); start 'python cli.py "
                             "emulator --port N' instead\n")


def test_a_second_local_run_with_check_if_done_resumes_skipping_what_the_first_did(tmp_path):
    run = Run(tmp_path, CHECK_IF_DONE_BOOL=True)
    args = local_args(run.jobs("ok", "fail", "ok"), run.config, "--out", str(run.out))
    first, _ = run_local(args, cwd=tmp_path)
    second, mark = run_local(args, cwd=tmp_path)

    assert first.returncode == 1 and table_value(first.stdout, "done") == "2", first.stdout
    assert second.returncode == 1, second.stdout + second.stderr
    assert "CHECK_IF_DONE: 4 output files of the last run in" in second.stdout  # 2 results + 2 _SUCCESS markers
    assert (table_value(second.stdout, "skipped as already done"), table_value(second.stdout, "done"),
            table_value(second.stdout, "failed")) == ("2", "0", "1")
    assert run.starts("j00") == 1 and run.starts("j02") == 1 and run.starts("j01") == 4  # 2 attempts per run
    for name in ("j00", "j02"):  # the outputs are in --out still
        assert (run.out / "outputs" / name / "result.txt").read_text() == name + "\n"
    assert processes_marked(mark) == []


def test_the_local_report_says_when_the_monitor_stopped_the_run_and_why(tmp_path):
    run = Run(tmp_path, MAX_RUN_HOURS=0.0005)  # 1.8 s
    result, mark = run_local(local_args(run.jobs("sleep:30", "sleep:30"), run.config, "--out", str(run.out)),
                             cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "E2E: finished; the monitor stopped it: MAX_RUN_HOURS reached (0.0005 h); jobs left in the queue are " \
           "kept" in result.stdout.splitlines()
    assert table_value(result.stdout, "not run") == "2"
    assert processes_marked(mark) == []
