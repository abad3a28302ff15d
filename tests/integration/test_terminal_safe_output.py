"""A job that prints terminal sequences: `failed` and `logs` show them as visible text, never raw.

A real worker runs the job, which prints a clipboard write (OSC 52), a window title (OSC 0), a clear screen
(CSI 2J, and its 8-bit C1 form) and a right-to-left override, then fails; its failure record and its log stream
hold them as printed. click strips CSI sequences (not OSC ones) when output is not a terminal, so the tests
look for ESC itself, which a terminal would obey, and for the escaped text a user should see instead.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chalicelib.aws import client as aws_client
from chalicelib.runfiles import failures
from cli import cli
from localrun import triage
from tests.unit.test_printable import HOSTILE, SHOWN
from tests.worker_world import run_workers, script

RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile(started):
    run_workers(started, script("import sys\n"
                                "if sys.argv[1] == 'P00000':\n"
                                f"    print({HOSTILE!r}, flush=True); sys.exit(2)"))
    return started


def cli_run(account, *args):
    return CliRunner().invoke(cli, [*args, "--config", str(account.config_path)])


def test_failed_shows_the_jobs_terminal_sequences_as_text(hostile):
    result = cli_run(hostile, "failed")

    assert result.exit_code == 0, result.output
    assert f"    | {SHOWN}" in result.output.splitlines()
    assert not any(character in result.output for character in RAW), repr(result.output)


def test_logs_shows_the_jobs_terminal_sequences_as_text(hostile):
    result = cli_run(hostile, "logs", "P00000")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines().count(SHOWN) == 3  # one per attempt (JOB_RETRIES)
    assert not any(character in result.output for character in RAW), repr(result.output)


def test_logs_of_a_local_run_shows_them_as_text_too(started, tmp_path):
    logs = tmp_path / "out" / "logs"
    logs.mkdir(parents=True)
    (logs / "j00.log").write_text(f"started: job\n{HOSTILE}\rhidden\nfailed: exit code 2\n")

    result = cli_run(started, "logs", "j00", "--local-run", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["started: job", f"{SHOWN}\\x0dhidden", "failed: exit code 2"]


def test_failed_of_a_local_run_shows_them_as_text_too(hostile, tmp_path):
    # what a local run leaves in its --out for `failed --local-run`: the records its workers wrote, as it writes them
    out = tmp_path / "out"
    out.mkdir()
    (out / triage.SUMMARY).write_text("{}\n")
    settings = hostile.settings
    triage.write_failure_records(out, failures.list_records(aws_client("s3"), settings.AWS_BUCKET, settings.APP_NAME))

    result = cli_run(hostile, "failed", "--local-run", str(out))

    assert result.exit_code == 0, result.output
    assert f"    | {SHOWN}" in result.output.splitlines()
    assert not any(character in result.output for character in RAW), repr(result.output)
