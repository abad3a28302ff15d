"""A local run's failed jobs are triaged as an AWS run's are, with the commands the run itself prints.

A user whose local run had failing jobs reads the advice at its end and types it: `failed` and `logs` read what
the run left in --out (the emulated account is gone), and `local ... --only-failed` runs only the jobs not done,
keeping the done ones' outputs. No line of it names an AWS-only command (redrive, start-cluster).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap

import boto3

from chalicelib.runfiles.failures import FailureRecord
from tests.e2e.local_world import CLI, Run, environment, local_args, run_local, table_value

# `job.py MODE NAME OUT MARKS`, as local_world's, where MODE "flaky" fails while the file `broken` is beside it
FLAKY_JOB = textwrap.dedent('''
    import pathlib, sys
    mode, name, out, marks = sys.argv[1:5]
    with open(pathlib.Path(marks, name + ".started"), "a") as handle:
        handle.write("started\\n")
    print(f"job {name}", flush=True)
    if mode == "flaky" and pathlib.Path(__file__).with_name("broken").exists():
        print("broken input", flush=True)
        sys.exit(3)
    pathlib.Path(out, "result.txt").write_text(name + "\\n")
''')
AWS_ONLY = ("redrive", "start-cluster")
AWS_ACCESS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL")


def flaky_run(tmp_path, **config) -> Run:
    run = Run(tmp_path, **config)
    run.script.write_text(FLAKY_JOB)
    (tmp_path / "broken").write_text("")
    return run


def advice(stdout: str, marker: str) -> list[str]:
    """The command (argv) printed at the end of the line that holds `marker`, as the user would type it."""
    lines = [line for line in stdout.splitlines() if marker in line]
    assert len(lines) == 1, f"expected one line with {marker!r}:\n{stdout}"
    command = shlex.split(lines[0][lines[0].index("python cli.py"):])
    return [sys.executable, str(CLI), *command[2:]]  # "python cli.py" from the repository, as the README says


def typed(argv: list[str], cwd, without_aws: bool = False) -> subprocess.CompletedProcess:
    env = environment("triage")
    if without_aws:  # no credentials at all, as on a laptop that only ever ran local mode
        env = {name: value for name, value in env.items() if name not in AWS_ACCESS}
        env["AWS_EC2_METADATA_DISABLED"] = "true"  # botocore would otherwise wait for a metadata server
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=150)


def test_the_advice_of_a_local_run_with_a_failed_job_lists_it_shows_its_log_and_runs_only_it_again(tmp_path):
    run = flaky_run(tmp_path)
    result, _ = run_local(local_args(run.jobs("ok", "flaky"), run.config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert table_value(result.stdout, "failed") == "1"
    assert not [word for word in AWS_ONLY if word in result.stdout], result.stdout

    # the AWS form, without credentials, says which local command the user probably meant
    aws_form = typed([sys.executable, str(CLI), "failed", "--config", str(run.config)], tmp_path, without_aws=True)
    assert (aws_form.returncode, aws_form.stdout) == (2, "")
    printed = shlex.join(["python", "cli.py", *advice(result.stdout, "the failed jobs, why")[2:]])
    assert aws_form.stderr.startswith("error: no usable AWS credentials (")
    assert aws_form.stderr.endswith(f"; for the local run in local-run/E2E, use: {printed}\n"), aws_form.stderr

    listed = typed(advice(result.stdout, "the failed jobs, why"), tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith("j01  2 attempt(s), failed ")
    assert "    | broken input" in listed.stdout.splitlines()
    assert not [word for word in AWS_ONLY if word in listed.stdout], listed.stdout
    as_json = typed([*advice(result.stdout, "the failed jobs, why"), "--json"], tmp_path)
    records = json.loads(as_json.stdout)
    # the shape of `failed --json` on AWS: each failure record as the status API shows it
    assert [sorted(record) for record in records] == [sorted(_public_keys())]
    assert records[0]["job_id"] == "j01" and records[0]["exit_code"] == 3

    log = typed([("j01" if arg == "JOB_ID" else arg) for arg in advice(result.stdout, "one job's whole log")],
                tmp_path)
    assert log.returncode == 0, log.stderr
    assert "broken input" in log.stdout.splitlines() and sum(line.startswith("started:")
                                                             for line in log.stdout.splitlines()) == 2

    (tmp_path / "broken").unlink()  # the cause fixed
    again = typed(advice(result.stdout, "run only the 1 failed job(s) again"), tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert table_value(again.stdout, "jobs") == "1" and table_value(again.stdout, "done") == "1"
    assert run.starts("j00") == 1 and run.starts("j01") == 3  # the done job did not run again
    out = tmp_path / "local-run" / "E2E"
    assert (out / "outputs" / "j00" / "result.txt").read_text() == "j00\n"  # kept from the first run
    assert (out / "outputs" / "j01" / "result.txt").read_text() == "j01\n"
    assert (out / "logs" / "j00.log").is_file()
    assert typed(advice(result.stdout, "the failed jobs, why"), tmp_path).stdout == "no failed job in run E2E\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == ["j01"] and summary["kept_from_earlier_runs"] == ["j00"] and summary["failed"] == {}


def test_a_local_run_the_breaker_stopped_names_only_local_commands_and_its_advice_finishes_the_run(tmp_path):
    run = flaky_run(tmp_path, STOP_AFTER_FAILED_JOBS=1, CLUSTER_MACHINES=1, DOCKER_CORES=1, JOB_RETRIES=1)
    result, _ = run_local(local_args(run.jobs("flaky", "flaky", "flaky"), run.config, "--workers", "1"),
                          cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the monitor stopped it: circuit breaker: " in result.stdout
    assert not [word for word in AWS_ONLY if word in result.stdout], result.stdout
    left = int(table_value(result.stdout, "failed")) + int(table_value(result.stdout, "not run"))
    assert left == 3, result.stdout

    (tmp_path / "broken").unlink()
    again = typed(advice(result.stdout, "run only the "), tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert table_value(again.stdout, "done") == "3" and table_value(again.stdout, "failed") == "0"


def _public_keys() -> list[str]:
    record = FailureRecord(job_id="j", attempts=1, reason="r", exit_code=1, last_lines=(), message_body="{}",
                           time=0.0, instance_id=None)
    return list(record.public())


def test_redrive_on_the_emulator_right_after_a_local_run_takes_the_failed_copies_off_the_dead_letter_queue(
        moto_server, tmp_path):
    # `cli.py emulator` + AWS_ENDPOINT_URL: the emulator outlives the local run, so the AWS commands apply to it
    run = Run(tmp_path)
    result, _ = run_local(local_args(run.jobs("ok", "fail"), run.config, "--out", str(run.out),
                                     "--endpoint", moto_server), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    command = [sys.executable, str(CLI)]
    setup = typed([*command, "setup", "--config", str(run.config)], tmp_path)  # the run's teardown took its queue
    assert setup.returncode == 0, setup.stderr

    redrive = typed([*command, "redrive", "--config", str(run.config)], tmp_path)
    assert (redrive.returncode, redrive.stdout) == (0, "sent 1 failed job(s) back to E2EQueue (1 taken off "
                                                       "user_DeadMessages)\n"), redrive.stderr
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)

    def held(name: str) -> int:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                         "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(value) for value in counts["Attributes"].values())

    assert (held("user_DeadMessages"), held("E2EQueue")) == (0, 1)


def test_triage_of_a_folder_no_local_run_finished_in_is_one_line_and_exit_2(tmp_path):
    run = Run(tmp_path)
    jobs = run.jobs("ok")
    listed = typed([sys.executable, str(CLI), "failed", "--local-run", str(run.out), "--config", str(run.config)],
                   tmp_path)
    assert (listed.returncode, listed.stdout) == (2, "")
    assert listed.stderr == (f"error: --local-run {run.out}: no summary.json there: expected the --out folder of a "
                             "finished 'python cli.py local' run (by default local-run/APP_NAME)\n")

    again = typed(local_args(jobs, run.config, "--out", str(run.out), "--only-failed"), tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (f"error: --only-failed: no {run.out / 'summary.json'}: no local run finished in --out "
                            f"{run.out}; run without --only-failed\n")
    assert not run.out.exists() and run.starts("j00") == 0  # nothing started
