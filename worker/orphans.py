"""No orphans: a process dies with the one that started it (Linux's PR_SET_PDEATHSIG; elsewhere, nothing).

A worker's command gets SIGKILL when its worker dies, however the worker died; a worker gets SIGTERM when its
supervisor dies (it then releases its job); in local mode a supervisor gets SIGTERM when the `cli.py local`
driver dies, and with the driver gone the emulator is gone too, so it ends its whole process group at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

PARENT_PID_ENV = "DSR_PARENT_PID"  # the process whose death ends this one: a supervisor's or local mode's pid
_PR_SET_PDEATHSIG = 1


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved before any fork: the child only calls it


def killed_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets `signum` when the thread that started it exits (None off Linux)."""
    if _prctl is None:
        return None
    prctl = _prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signum)

    return set_death_signal


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
    return bool(parent) and os.getppid() != int(parent)
