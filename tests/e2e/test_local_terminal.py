"""`cli.py local` with a job that prints terminal sequences and fails: the summary's `why:` line quotes its last
line as visible text, and `cli.py logs --local-run` shows its log the same way; nothing raw reaches the terminal."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.local_world import CLI, Run, environment, local_args, processes_marked, run_local
from tests.unit.test_printable import HOSTILE, SHOWN

RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_the_why_line_and_the_local_log_show_a_jobs_terminal_sequences_as_text(tmp_path):
    program = tmp_path / "hostile.py"
    program.write_text(f"print({HOSTILE!r}, flush=True)\nraise SystemExit(3)\n")
    run = Run(tmp_path, COMMAND=["python", str(program), "{name}"])
    result, mark = run_local(local_args(run.jobs("fail"), run.config, "--out", str(run.out)), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"why: all 1 failed job(s) (2 attempts) ended with: {SHOWN}" in result.stdout.splitlines()
    assert not any(character in result.stdout + result.stderr for character in RAW), repr(result.stdout)
    assert processes_marked(mark) == []

    logs = subprocess.run([sys.executable, str(CLI), "logs", "j00", "--local-run", str(run.out), "--config",
                           str(run.config)], cwd=tmp_path, env=environment(mark), capture_output=True, text=True,
                          timeout=60)

    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines().count(SHOWN) == 2  # one per attempt (JOB_RETRIES)
    assert not any(character in logs.stdout for character in RAW), repr(logs.stdout)
