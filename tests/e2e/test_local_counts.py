"""The counts of a local run agree everywhere (chalicelib/monitor/counts.py): the progress lines, the summary table,
summary.json, the monitor's summary and the run report's headline numbers; and with what the job file and the
program did.

Each run is small: a few jobs of tests/e2e/local_world.py's job program, run as a user runs `cli.py local`.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.local_world import Run, local_args, processes_marked, run_local, table_value

TILE = re.compile(r"data-figure='([^']+)'><b>([^<]*)</b>")
PROGRESS = re.compile(r"^(\d+)/(\d+) done, (\d+) failed, (\d+) left")
FAILED_NAMED = re.compile(r"all (\d+) failed job\(s\)|\d+ of (\d+) failed jobs")
WHY = re.compile(r"^why: (?:all (\d+) failed job\(s\)|\d+ of (\d+) failed jobs)", re.MULTILINE)


def progress_lines(stdout: str) -> list[tuple[int, int, int, int]]:
    """(done, total, failed, left) of each progress line, in order."""
    return [tuple(int(number) for number in match.groups())
            for match in map(PROGRESS.match, stdout.splitlines()) if match]


def counts_agree(stdout: str, run: Run, jobs: int) -> dict:
    """Every place's counts against the others; returns the table's, by row."""
    table = {row: int(table_value(stdout, row))
             for row in ("jobs", "done", "skipped as already done", "failed", "not run")}
    lines = progress_lines(stdout)
    done_seen = [done for done, *_ in lines]
    assert done_seen == sorted(done_seen), f"the progress line's done went down:\n{stdout}"
    # the stop reason's and the why line's "all N failed job(s)" name the failed jobs the table counts and lists
    named = [int(all_of or of) for all_of, of in FAILED_NAMED.findall(stdout)]
    listed = [line for line in stdout.splitlines() if re.match(r"^  j\d\d  ", line)]
    assert all(number == table["failed"] for number in named) and len(listed) == table["failed"], stdout
    assert bool(WHY.search(stdout)) == bool(table["failed"]), stdout
    document = json.loads((run.out / "summary.json").read_text())
    monitor = document["monitor_summary"]
    assert monitor["jobs_submitted"] == jobs, monitor  # a message sent again is not a new job
    assert table["jobs"] == jobs == sum(table[row] for row in ("done", "skipped as already done", "failed",
                                                                "not run")), stdout
    assert (monitor["jobs_done"], monitor["jobs_failed"], monitor["jobs_left"]) == \
        (table["done"] + table["skipped as already done"], table["failed"], table["not run"]), monitor
    assert all(total == jobs for _, total, *_ in lines)
    assert lines[-1] == (table["done"] + table["skipped as already done"], jobs, table["failed"],
                         table["not run"]), stdout
    assert document["counts"] == {"submitted": table["jobs"], "done": table["done"],
                                  "skipped_as_already_done": table["skipped as already done"],
                                  "failed": table["failed"], "not_run": table["not run"]}
    assert (len(document["done"]), len(document["failed"]), len(document["not_run"])) == \
        (table["done"], table["failed"], table["not run"])
    report = run.out / "report.html"
    if report.exists():  # the run report's headline numbers
        tiles = dict(TILE.findall(report.read_text()))
        assert (tiles["jobs"], tiles["done"], tiles["skipped as done"], tiles["failed"]) == \
            tuple(str(table[row]) for row in ("jobs", "done", "skipped as already done", "failed")), tiles
    return table


def test_a_retry_that_succeeds_and_timeouts_never_make_the_progress_line_go_back(tmp_path):
    # One worker: a timed-out job's last attempt leaves its message in the queue (SQS moves it to the dead-letter
    # queue on its next receive) while the worker runs the next job for JOB_TIMEOUT: failed, and still queued
    run = Run(tmp_path, JOB_TIMEOUT=2, JOB_RETRIES=2)
    modes = ["ok", "flaky", "ok", "sleep:30", "sleep:30"]
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out), "--workers", "1",
                                        "--report"), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    table = counts_agree(result.stdout, run, len(modes))
    # what the program did: the flaky job ran twice and is done; the hanging ones used both attempts
    assert (table["done"], table["failed"], table["not run"]) == (3, 2, 0), result.stdout
    assert run.starts("j01") == 2 and (run.out / "outputs" / "j01" / "result.txt").exists()
    assert run.starts("j03") == run.starts("j04") == 2
    assert "timed out after 2 s" in (run.out / "logs" / "j03.log").read_text()
    assert processes_marked(mark) == []


@pytest.fixture(scope="module")
def breaker_run(tmp_path_factory):
    # One attempt each, one worker: the second failed job's message goes back to the queue while the worker takes
    # the long job, so no receive ever moves it to the dead-letter queue before the breaker stops the run
    folder = tmp_path_factory.mktemp("breaker")
    run = Run(folder, CLUSTER_MACHINES=1, JOB_RETRIES=1, STOP_AFTER_FAILED_JOBS=2)
    modes = ["fail", "fail", "sleep:60", "ok"]
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out), "--workers", "1",
                                        "--report"), cwd=folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the monitor stopped it: circuit breaker" in result.stdout
    assert processes_marked(mark) == []
    return run, result.stdout, len(modes)


def test_a_breaker_stop_counts_each_failed_job_once_though_its_message_never_reached_the_dead_letter_queue(
        breaker_run):
    run, stdout, _ = breaker_run
    assert "all 2 failed job(s) (2 attempts) ended with: failing on purpose" in stdout
    assert table_value(stdout, "failed") == "2", stdout
    assert run.starts("j00") == run.starts("j01") == 1 and run.starts("j03") == 0


def test_the_monitor_summary_of_a_breaker_stop_counts_the_jobs_submitted_not_the_messages(breaker_run):
    run, _, jobs = breaker_run
    assert json.loads((run.out / "summary.json").read_text())["monitor_summary"]["jobs_submitted"] == jobs


def test_after_a_breaker_stop_every_count_agrees(breaker_run):
    run, stdout, jobs = breaker_run
    table = counts_agree(stdout, run, jobs)
    assert (table["failed"], table["done"], table["not run"]) == (2, 0, 2), stdout


def test_spot_interruptions_release_jobs_that_are_never_counted_twice(tmp_path):
    # JOB_RETRIES 1: a released job is sent again as a fresh message, the same job, not a new one
    run = Run(tmp_path, CLUSTER_MACHINES=2, JOB_RETRIES=1)
    modes = ["sleep:1"] * 6
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out), "--workers", "4",
                                        "--interrupt-rate", "0.3", "--seed", "7"), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "spot: interruption notice" in result.stdout
    table = counts_agree(result.stdout, run, len(modes))
    assert table["done"] == len(modes)
    assert processes_marked(mark) == []


def test_a_resumed_run_counts_the_jobs_it_skipped_as_already_done_once(tmp_path):
    # the progress line's done is every job with nothing left to do: the queue cannot tell skipped from done
    run = Run(tmp_path, CHECK_IF_DONE_BOOL=True)
    args = local_args(run.jobs("ok", "fail", "ok"), run.config, "--out", str(run.out), "--report")
    run_local(args, cwd=tmp_path)
    second, mark = run_local(args, cwd=tmp_path)

    assert second.returncode == 1, second.stdout + second.stderr
    table = counts_agree(second.stdout, run, 3)
    assert (table["skipped as already done"], table["done"], table["failed"]) == (2, 0, 1), second.stdout
    assert processes_marked(mark) == []
