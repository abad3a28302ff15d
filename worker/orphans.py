"""No orphans: a process dies with the one that started it (Linux's PR_SET_PDEATHSIG; elsewhere, nothing).

A worker's command gets SIGKILL when its worker dies, however the worker died (set by util-linux's setpriv, which
then execs the command, or by a preexec_fn where setpriv is missing); a worker gets SIGTERM when its
supervisor dies (it then releases its job); in local mode a supervisor gets SIGTERM when the `cli.py local`
driver dies, and with the driver gone the emulator is gone too, so it ends its whole process group at once.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence

PARENT_PID_ENV = "DSR_PARENT_PID"  # the process whose death ends this one: a supervisor's or local mode's pid
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved before any fork: the child only calls it
# util-linux's setpriv sets the death signal and then execs the command. Setting it from Python instead needs a
# preexec_fn, and any preexec_fn makes subprocess fork the whole worker rather than vfork: 3.8 ms of CPU per job
# against 1.5 through setpriv (0.7 with neither), measured on a worker with its boto3 clients loaded.
# Looked for where util-linux installs it, not on PATH: a folder earlier on PATH must not choose what starts jobs.
_SETPRIV = next((path for path in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(path, os.X_OK)),
                None) if _prctl is not None else None


def killed_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets `signum` when the thread that started it exits (None off Linux)."""
    if _prctl is None:
        return None
    prctl = _prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signum)

    return set_death_signal


def command_killed_with_parent(argv: Sequence[str], cwd: str | os.PathLike[str], env: dict[str, str],
                               signum: int = signal.SIGKILL) -> tuple[list[str], Callable[[], None] | None]:
    """(argv, preexec_fn) for Popen: the command gets `signum` when the thread that starts it exits.

    Through setpriv where it is installed, else a preexec_fn (None off Linux). A program that cannot be run
    raises the OSError Popen would (FileNotFoundError, PermissionError), checked here because through setpriv
    it would only be setpriv's exit code. Through setpriv, Popen returns once setpriv runs, a moment before it
    has set the signal and started the command: a worker killed in that moment leaves its command running to
    its end (its job is then run again elsewhere, as for any lost worker)."""
    if _SETPRIV is None:
        return list(argv), killed_with_parent(signum)
    _check_runnable(argv[0], cwd, env)
    return [_SETPRIV, "--pdeathsig", signal.Signals(signum).name[3:], "--", *argv], None


def _check_runnable(program: str, cwd: str | os.PathLike[str], env: dict[str, str]) -> None:
    """As exec would look for `program`: a path from the command's folder, a bare name on the command's PATH."""
    if os.path.dirname(program):
        candidates = [os.path.join(cwd, program)]
    else:
        candidates = [os.path.join(folder, program) for folder in os.get_exec_path(env)]
    found = [path for path in candidates if os.path.isfile(path)]
    if any(os.access(path, os.X_OK) for path in found):
        return
    code = errno.EACCES if found else errno.ENOENT
    raise OSError(code, os.strerror(code), program)


def die_with_parent() -> None:
    """SIGTERM to this process when the parent named by DSR_PARENT_PID dies (even by SIGKILL)."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent_gone():  # it died before prctl: nobody will signal us
        os.kill(os.getpid(), signal.SIGTERM)


def parent_gone() -> bool:
    """True when DSR_PARENT_PID names a parent this process no longer has."""
    parent = os.environ.get(PARENT_PID_ENV)
    return bool(parent and os.getppid() != int(parent))
