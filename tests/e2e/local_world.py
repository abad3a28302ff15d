"""Helpers for the e2e tests: `cli.py local` as a real subprocess, small generated runs, and /proc checks.

Every process local mode starts inherits the environment; the tests put a
unique marker in it (E2E_RUN_MARK) so that, after the CLI exits, a scan of
/proc finds anything left behind, whichever session or process group it is in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "cli.py"
MARK_VARIABLE = "E2E_RUN_MARK"

# `job.py MODE NAME OUT MARKS`: appends to MARKS/NAME.started on every start, then by MODE:
# ok (write OUT/result.txt), fail (exit 3), flaky (fail on its first start, then as ok), sleep:S (sleep S seconds,
# then as ok).
JOB_SCRIPT = textwrap.dedent('''
    import os, pathlib, sys, time
    mode, name, out, marks = sys.argv[1:5]
    with open(pathlib.Path(marks, name + ".started"), "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    print(f"job {name} mode {mode}", flush=True)
    if mode == "fail" or (mode == "flaky" and len(pathlib.Path(marks, name + ".started").read_text().split()) == 1):
        print("failing on purpose", flush=True)
        sys.exit(3)
    if mode.startswith("sleep:"):
        time.sleep(float(mode[6:]))
    pathlib.Path(out, "result.txt").write_text(name + "\\n")
    print("wrote result.txt", flush=True)
''')


class Run:
    """A generated job program, config and job file in `folder`."""

    def __init__(self, folder: Path, **config):
        self.folder = folder
        self.script = folder / "job.py"
        self.script.write_text(JOB_SCRIPT)
        self.marks = folder / "marks"
        self.marks.mkdir()
        self.out = folder / "out"
        self.config = folder / "config.json"
        self.config.write_text(json.dumps({
            "APP_NAME": "E2E", "DOCKERHUB_TAG": "example/e2e:1", "AWS_PROFILE": None, "AWS_BUCKET": "e2e-bucket",
            "CLUSTER_MACHINES": 2, "MACHINE_TYPE": ["m5.large"], "MACHINE_PRICE": 0.05, "DOCKER_CORES": 2,
            "SQS_MESSAGE_VISIBILITY": 30, "JOB_RETRIES": 2, "OUTPUT_PREFIX": "outputs/{name}",
            "COMMAND": ["python", "job.py", "{mode}", "{name}", "{output_dir}", str(self.marks)],
            **config}))

    def jobs(self, *modes: str) -> Path:
        """One job per mode, named j00, j01, ..."""
        path = self.folder / "jobs.json"
        path.write_text(json.dumps({"groups": [{"job_id": f"j{index:02d}", "name": f"j{index:02d}", "mode": mode}
                                               for index, mode in enumerate(modes)]}))
        return path

    def starts(self, name: str) -> int:
        path = self.marks / f"{name}.started"
        return len(path.read_text().splitlines()) if path.exists() else 0


def local_args(jobfile: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(CLI), "local", str(jobfile), "--config", str(config), *extra]


def environment(mark: str) -> dict[str, str]:
    return {**os.environ, MARK_VARIABLE: mark, "PYTHONUNBUFFERED": "1"}


def run_local(args: list[str], cwd: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, str]:
    """Run to the end; returns the result and the run's marker (for leftover checks). The timeout is a hang guard:
    a small run takes seconds on an idle machine, and several times that on a loaded one."""
    mark = uuid.uuid4().hex
    result = subprocess.run(args, cwd=cwd, env=environment(mark), capture_output=True, text=True, timeout=timeout)
    return result, mark


def marked_processes(mark: str) -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose environment holds our marker."""
    wanted = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")))
        except OSError:
            continue
    return found


def processes_marked(mark: str) -> list[str]:
    """`pid cmdline` of every process whose environment holds our marker."""
    return [f"{pid} " + b" ".join(argv).decode() for pid, argv in marked_processes(mark)]


def log_lines(out: Path, job_id: str) -> list[str]:
    return (out / "logs" / f"{job_id}.log").read_text().splitlines()


def table_value(stdout: str, row: str) -> str:
    """The value of a row of the summary table ("  done   48" -> "48")."""
    for line in stdout.splitlines():
        if line.startswith("  " + row + " "):
            return line[len(row) + 2:].strip()
    raise AssertionError(f"no row {row!r} in the summary:\n{stdout}")
