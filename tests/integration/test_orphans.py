"""A job's command dies with its worker, however the worker dies, through setpriv or the preexec_fn fallback;
a program that cannot be run is refused as Popen would refuse it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for
from tests.worker_world import process_alive
from worker import orphans

REPO = Path(__file__).resolve().parents[2]

# The parent: starts `sleep 600` as the worker starts a command, prints its pid, waits to be killed.
PARENT = """
import os, subprocess, sys, time
from worker import orphans
if sys.argv[1] == "fallback":
    orphans._SETPRIV = None
argv, preexec = orphans.command_killed_with_parent(["sleep", "600"], ".", dict(os.environ))
child = subprocess.Popen(argv, preexec_fn=preexec, start_new_session=True)
print(child.pid, argv[0], flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["setpriv", "fallback"])
def test_a_command_dies_when_its_worker_is_killed(how):
    if how == "setpriv" and orphans._SETPRIV is None:
        pytest.skip("util-linux's setpriv is not installed here")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    pid_text, program = parent.stdout.readline().split()
    child = int(pid_text)
    try:
        assert process_alive(child)
        assert (program == orphans._SETPRIV) == (how == "setpriv")
        # setpriv sets the death signal, then execs sleep: only then is it armed (a worker killed in that
        # instant leaves its command running: worker/orphans.py)
        wait_for(lambda: Path(f"/proc/{child}/comm").read_text().strip() == "sleep", "the command to start")
        parent.kill()  # SIGKILL: nothing in the parent runs
        parent.wait()
        wait_for(lambda: not process_alive(child), "the command to die with the process that started it", timeout=30)
    finally:
        if process_alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(orphans._SETPRIV is None, reason="without setpriv Popen itself checks the program")
def test_a_program_that_cannot_run_is_refused_before_setpriv(tmp_path):
    env = {"PATH": str(tmp_path)}
    (tmp_path / "data.txt").write_text("not a program")
    (tmp_path / "tool").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "tool").chmod(0o755)

    for program, code in [("no-such-tool", errno.ENOENT), ("/no/such/program", errno.ENOENT),
                          ("./data.txt", errno.EACCES), ("data.txt", errno.EACCES)]:
        with pytest.raises(OSError) as refused:
            orphans.command_killed_with_parent([program], tmp_path, env)
        assert (refused.value.errno, refused.value.strerror) == (code, os.strerror(code)), program

    for program in ("tool", "./tool", str(tmp_path / "tool")):
        argv, preexec = orphans.command_killed_with_parent([program, "x"], tmp_path, env)
        assert argv[-2:] == [program, "x"] and preexec is None
        assert subprocess.run(argv, cwd=tmp_path, env=env).returncode == 0
