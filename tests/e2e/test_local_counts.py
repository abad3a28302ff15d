"""The counts of a local run agree everywhere (chalicelib/counts.py): the progress lines, the summary table,
summary.json and the monitor's summary; and with what the job file and the program did.

Each run is small: a few jobs of tests/e2e/local_world.py's job program, run as a user runs `cli.py local`.
"""

from __future__ import annotations

import json
import re

from tests.e2e.local_world import Run, local_args, processes_marked, run_local, table_value

PROGRESS = re.compile(r"^(\d+)/(\d+) done, (\d+) failed, (\d+) left")
WHY = re.compile(r"^why: (?:all (\d+) failed job\(s\)|\d+ of (\d+) failed jobs)", re.MULTILINE)


def progress_lines(stdout: str) -> list[tuple[int, int, int, int]]:
    """(done, total, failed, left) of each progress line, in order."""
    return [tuple(int(number) for number in match.groups())
            for match in map(PROGRESS.match, stdout.splitlines()) if match]


def counts_agree(stdout: str, run: Run, jobs: int) -> dict:
    """Every place's counts against the others; returns the table's, by row."""
    table = {row: int(table_value(stdout, row))
             for row in ("jobs", "done", "skipped as already done", "failed", "not run")}
    assert table["jobs"] == jobs == sum(table[row] for row in ("done", "skipped as already done", "failed",
                                                                "not run")), stdout
    lines = progress_lines(stdout)
    done_seen = [done for done, *_ in lines]
    assert done_seen == sorted(done_seen), f"the progress line's done went down:\n{stdout}"
    assert all(total == jobs for _, total, *_ in lines)
    assert lines[-1] == (table["done"] + table["skipped as already done"], jobs, table["failed"],
                         table["not run"]), stdout
    if table["failed"]:
        why = WHY.search(stdout)
        listed = [line for line in stdout.splitlines() if re.match(r"^  j\d\d  ", line)]
        assert why and int(why.group(1) or why.group(2)) == table["failed"] == len(listed), stdout
    document = json.loads((run.out / "summary.json").read_text())
    assert document["counts"] == {"submitted": table["jobs"], "done": table["done"],
                                  "skipped_as_already_done": table["skipped as already done"],
                                  "failed": table["failed"], "not_run": table["not run"]}
    assert (len(document["done"]), len(document["failed"]), len(document["not_run"])) == \
        (table["done"], table["failed"], table["not run"])
    monitor = document["monitor_summary"]
    assert (monitor["jobs_submitted"], monitor["jobs_done"], monitor["jobs_failed"], monitor["jobs_left"]) == \
        (jobs, table["done"] + table["skipped as already done"], table["failed"], table["not run"]), monitor
    return table


def test_failures_a_retry_that_succeeds_and_a_timeout_are_counted_alike_everywhere(tmp_path):
    run = Run(tmp_path, JOB_TIMEOUT=2, JOB_RETRIES=2)
    modes = ["ok", "fail", "ok", "flaky", "fail", "ok", "sleep:30", "ok"]
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out)), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    table = counts_agree(result.stdout, run, len(modes))
    # what the program did: the flaky job ran twice and is done; the failing and the hanging ones used both attempts
    assert (table["done"], table["failed"], table["not run"]) == (5, 3, 0), result.stdout
    assert run.starts("j03") == 2 and (run.out / "outputs" / "j03" / "result.txt").exists()
    assert run.starts("j01") == run.starts("j04") == run.starts("j06") == 2
    assert processes_marked(mark) == []


def test_a_breaker_stop_counts_each_failed_job_once_though_its_message_never_reached_the_dead_letter_queue(tmp_path):
    # One attempt each: a failed job's message goes back to the queue, and SQS moves it to the dead-letter queue
    # only when a worker receives it again, which the stopped run never does for some of them
    run = Run(tmp_path, JOB_RETRIES=1, STOP_AFTER_FAILED_JOBS=3)
    modes = ["fail"] * 8 + ["ok"] * 2
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out)), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "the monitor stopped it: circuit breaker" in result.stdout
    table = counts_agree(result.stdout, run, len(modes))
    started = {f"j{index:02d}" for index in range(len(modes)) if run.starts(f"j{index:02d}")}
    assert table["failed"] == len(started & {f"j{index:02d}" for index in range(8)})  # each failing job that ran
    assert processes_marked(mark) == []


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
