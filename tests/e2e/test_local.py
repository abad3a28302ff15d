"""`cli.py local` end to end, as a user runs it: a real subprocess, real workers, the embedded moto.

The tests read what a user sees: the exit code, the summary, the files in
--out (outputs, one log per job, summary.json with what the monitor wrote to
the emulated S3 at teardown), and after the run, whether any process is left.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid

import pytest

from chalicelib.runfiles.joblines import signed_by
from tests.e2e.local_world import (
    REPO,
    Run,
    environment,
    local_args,
    log_lines,
    processes_marked,
    run_local,
    table_value,
)
from tests.waiting import wait_for

EXAMPLES = REPO / "examples"
PLATES = [f"P{number:02d}" for number in range(1, 49)]


@pytest.mark.slow
def test_the_example_runs_end_to_end_with_every_plate_measured(tmp_path):
    out = tmp_path / "out"
    result, mark = run_local(local_args(EXAMPLES / "jobs.json", EXAMPLES / "config.json",
                                        "--inputs", str(EXAMPLES / "inputs"), "--out", str(out)), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    for plate in PLATES:
        summary = json.loads((out / "outputs" / plate / "summary.json").read_text())
        assert summary["plate"] == plate and summary["wells"] == 96
        assert (out / "outputs" / plate / "wells_flagged.csv").exists()
        assert json.loads((out / "outputs" / plate / "_SUCCESS").read_text())["files"] == 2  # the worker's marker
        assert log_lines(out, plate)[-1].startswith("succeeded: exit code 0")
    assert table_value(result.stdout, "done") == "48"
    assert table_value(result.stdout, "failed") == "0"
    document = json.loads((out / "summary.json").read_text())
    assert document["done"] == PLATES and document["exit_code"] == 0
    # the jobs' own files: the 48 completion markers are in --out but not counted as outputs
    assert document["output_files"] == 96 and "(96 files, at each job's OUTPUT_PREFIX)" in result.stdout
    # what the monitor itself wrote to the emulated S3 when it tore the run down
    assert document["monitor_summary"]["jobs_done"] == 48
    assert document["monitor_summary"]["stop_reason"].startswith("queue empty")
    fleet = json.loads((out / "fleet.local.json").read_text())
    example = json.loads((EXAMPLES / "fleet.json").read_text())["LaunchSpecifications"][0]
    [spec] = fleet["LaunchSpecifications"]
    assert spec["IamInstanceProfile"] != example["IamInstanceProfile"]  # the emulated account's
    assert "ImageId" not in spec  # none in the example: the emulator's latest ECS-optimized AMI, from its SSM
    assert "the latest ECS-optimized AMI (/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id)" \
        in result.stdout
    assert "fleet.local.json" in result.stdout, "the output says the fleet file was rewritten, and where"
    assert processes_marked(mark) == []


def test_with_dcps_buckets_inputs_come_from_the_source_and_outputs_from_the_destination(tmp_path):
    config = json.loads((EXAMPLES / "config.json").read_text())
    config.update(SOURCE_BUCKET="demo-images", DESTINATION_BUCKET="demo-results",
                  UPLOAD_FLAGS="--storage-class STANDARD_IA", CHECK_IF_DONE_BOOL=True)
    config["COMMAND"][1] = str(EXAMPLES / "measure.py")
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "jobs.json").write_text(json.dumps({"groups": [{"plate": plate} for plate in PLATES[:3]]}))
    out = tmp_path / "out"
    result, mark = run_local(local_args(tmp_path / "jobs.json", tmp_path / "config.json",
                                        "--inputs", str(EXAMPLES / "inputs"), "--out", str(out)), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3://demo-images/inputs/" in result.stdout
    for plate in PLATES[:3]:
        assert json.loads((out / "outputs" / plate / "summary.json").read_text())["wells"] == 96
        assert f"to s3://demo-results/outputs/{plate}/" in log_lines(out, plate)[-1]
    assert table_value(result.stdout, "done") == "3"
    assert processes_marked(mark) == []


def test_a_job_that_always_fails_is_listed_with_its_log_and_the_run_exits_1(tmp_path):
    run = Run(tmp_path)
    result, mark = run_local(local_args(run.jobs("ok", "fail", "ok"), run.config, "--out", str(run.out)),
                             cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert table_value(result.stdout, "failed") == "1" and table_value(result.stdout, "done") == "2"
    failed_log = run.out / "logs" / "j01.log"
    assert f"  j01  {failed_log.relative_to(tmp_path)}" in result.stdout.splitlines() or \
        f"  j01  {failed_log}" in result.stdout.splitlines(), result.stdout
    lines = log_lines(run.out, "j01")
    assert "failing on purpose" in lines
    machine, worker, last_failure = signed_by([line for line in lines if line.startswith("failed: exit code 3")][-1])
    assert last_failure.endswith("that was the last of 2 attempts: the job moves to the dead-letter queue "
                                 "user_DeadMessages") and machine.startswith("i-") and worker
    assert run.starts("j01") == 2  # JOB_RETRIES
    assert "why: all 1 failed job(s) (2 attempts) ended with: failing on purpose" in result.stdout.splitlines()
    for name in ("j00", "j02"):
        assert (run.out / "outputs" / name / "result.txt").read_text() == name + "\n"
    assert not (run.out / "outputs" / "j01").exists()
    assert processes_marked(mark) == []


@pytest.mark.slow
def test_with_spot_interruptions_every_job_is_done_exactly_once(tmp_path):
    # JOB_RETRIES 1: a released attempt is requeued as a fresh message, so however often a job is
    # interrupted it never reaches the dead-letter queue for it (SQS counts every receive).
    run = Run(tmp_path, CLUSTER_MACHINES=3, JOB_RETRIES=1)
    names = [f"j{index:02d}" for index in range(16)]
    result, mark = run_local(local_args(run.jobs(*["sleep:1"] * 16), run.config, "--out", str(run.out),
                                        "--workers", "6", "--interrupt-rate", "0.25", "--seed", "7"), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    notices = int(table_value(result.stdout, "spot interruptions").split()[0])
    assert notices > 0, result.stdout
    released = 0
    for name in names:
        assert (run.out / "outputs" / name / "result.txt").read_text() == name + "\n"
        lines = log_lines(run.out, name)
        assert sum(line.startswith("succeeded: ") for line in lines) == 1, lines
        job_released = sum(line.startswith("released: ") for line in lines)
        released += job_released
        # a released attempt may or may not have started its command; the successful one did
        started = sum(line.startswith("started: ") for line in lines)
        assert 1 <= started <= 1 + job_released, lines
        # a stop can land between the worker's Popen (its "started:" line) and the job's first line (its start
        # mark): such an attempt never ran a line of the job, so marks may be fewer than "started:" lines
        assert 1 <= run.starts(name) <= started, lines
    assert table_value(result.stdout, "done") == "16"
    assert processes_marked(mark) == []


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_tears_down_and_leaves_no_process(tmp_path):
    run = Run(tmp_path)
    mark = uuid.uuid4().hex
    process = subprocess.Popen(local_args(run.jobs(*["sleep:60"] * 4), run.config, "--out", str(run.out)),
                               cwd=tmp_path, env=environment(mark), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)

    def a_job_started() -> bool:  # a command is running on a machine
        assert process.poll() is None, f"the run ended before a job started: {process.communicate()[0]}"
        return bool(list(run.marks.glob("*.started")))

    try:
        wait_for(a_job_started, "a job to start", timeout=180)  # local mode boots its world first: slow under load
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 130, stdout
    assert processes_marked(mark) == [], "no worker, command or server outlives the run"
    assert "stopped (Ctrl-C)" in stdout
    assert table_value(stdout, "done") == "0" and table_value(stdout, "not run") == "4"
    started = [path.stem for path in run.marks.glob("*.started")]
    for name in started:
        assert log_lines(run.out, name)[-1].startswith("released: stopped"), "the job was given back to the queue"
    document = json.loads((run.out / "summary.json").read_text())
    assert document["stopped_by"] == "Ctrl-C" and document["monitor_summary"]["jobs_left"] == 4


@pytest.mark.parametrize("case, expected", [
    ("missing job file", "error: {tmp}/nope.json: file not found"),
    ("bad config key", "error: unknown key 'CLUSTER_MACHINE' in {tmp}/config.json; did you mean 'CLUSTER_MACHINES'?"),
    ("missing inputs", "error: --inputs {tmp}/no-inputs: no such folder"),
    ("bad fleet file", "error: {tmp}/fleet.json: LaunchSpecifications: expected a non-empty list of launch "
                       "specifications"),
    ("program not found", "error: {tmp}/config.json: COMMAND: program 'no-such-program' not found on this machine"),
    ("script not found", "error: {tmp}/config.json: COMMAND: script 'scripts/measure.py' not found: looked for "
                         "{tmp}/scripts/measure.py"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_starts(tmp_path, case, expected):
    run = Run(tmp_path)
    jobfile, extra = run.jobs("ok"), []
    if case == "missing job file":
        jobfile = tmp_path / "nope.json"
    elif case == "bad config key":
        config = json.loads(run.config.read_text())
        config["CLUSTER_MACHINE"] = config.pop("CLUSTER_MACHINES")
        run.config.write_text(json.dumps(config))
    elif case == "missing inputs":
        extra = ["--inputs", str(tmp_path / "no-inputs")]
    elif case == "bad fleet file":
        (tmp_path / "fleet.json").write_text(json.dumps({"IamFleetRole": "role", "LaunchSpecifications": []}))
        extra = ["--fleet", str(tmp_path / "fleet.json")]
    elif case == "program not found":
        config = json.loads(run.config.read_text())
        config["COMMAND"] = ["no-such-program", "{name}"]
        run.config.write_text(json.dumps(config))
    elif case == "script not found":
        config = json.loads(run.config.read_text())
        config["COMMAND"] = ["python", "scripts/measure.py", "{name}"]
        run.config.write_text(json.dumps(config))

    result, mark = run_local(local_args(jobfile, run.config, "--out", str(run.out), *extra), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(expected.format(tmp=tmp_path)), line
    assert not run.out.exists(), "nothing was started or written"
    assert processes_marked(mark) == []


def test_a_folder_local_mode_did_not_make_is_never_emptied(tmp_path):
    run = Run(tmp_path)
    run.out.mkdir()
    (run.out / "precious.txt").write_text("keep me")

    result, _ = run_local(local_args(run.jobs("ok"), run.config, "--out", str(run.out)), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --out {run.out}: folder is not empty and was not made by local mode")
    assert (run.out / "precious.txt").read_text() == "keep me"
