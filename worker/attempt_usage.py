"""What one attempt's command used, and whether the kernel's OOM killer ended it.

Nobody could size MEMORY or TASKS_PER_MACHINE, and an out-of-memory kill read as "exit code -9" (DCP #158:
"if your dockers run out of memory jobs fail silently"). Two sources, both standard library:

- The command's own figures, per attempt, with no cgroup needed: wait4 returns the reaped child's rusage, whose
  ru_maxrss is the peak resident memory of the largest process in its tree (the command and the children it
  waited for; not their sum) and whose ru_utime + ru_stime is their CPU time. One catch: Linux's exec keeps the
  replaced memory's high-water mark in ru_maxrss, and a child's memory before its exec is the worker's (vfork
  shares it, fork copies it). So the figure is at least the worker's resident size at the spawn: above it, it is
  the command's own peak; at or under it, only a bound ("at most"). The worker's own mark is reset to its
  current size before each spawn (/proc/self/clear_refs), so the bound is the worker as it is, not its peak.
- The memory cgroup the worker runs in (the container's, under ECS or docker): its OOM-kill counter read before
  and after the attempt (an increase: the kernel's OOM killer fired meanwhile), its limit and its peak. cgroup v2
  (memory.events, memory.max, memory.peak) or v1 (memory.oom_control, memory.limit_in_bytes,
  memory.max_usage_in_bytes: Docker on a v1 host, as ECS-optimized Amazon Linux 2 is). Whatever is missing (no
  cgroup: macOS; a root cgroup; a kernel without the file) is None and never an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from chalicelib.runfiles.joblines import out_of_memory_text, usage_text

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_SELF_CGROUP = Path("/proc/self/cgroup")
_NO_LIMIT = 2**60  # v1 writes "no limit" as a page-rounded 2**63 - 1
_MIB = 2**20
# ru_maxrss is in KiB on Linux, in bytes on macOS (getrusage(2) of each).
_MAXRSS_PER_MIB = _MIB if sys.platform == "darwin" else 1024


# What a child's figure may hold of the worker's memory over the worker's resident size read before the spawn
# (pages a fork's child touches before its exec).
_SPAWN_SLACK_KIB = 2048


@dataclass(frozen=True)
class CommandUsage:
    """The command's own figures, from wait4."""

    peak_mib: float
    cpu_seconds: float
    at_most: bool = False  # the peak is a bound: the command stayed within the worker's size at its spawn


def worker_size_kib(status: Path = Path("/proc/self/status"), clear_refs: Path = Path("/proc/self/clear_refs")
                    ) -> int | None:
    """The worker's resident size (KiB) as a child spawned now inherits it in its peak: its high-water mark, first
    reset to its current size. None off Linux."""
    with contextlib.suppress(OSError):  # an older kernel: the mark stays the worker's peak, a higher bound
        clear_refs.write_text("5")  # 5: reset the peak resident size to the current one (proc(5), Linux 4.0)
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def wait_for_exit(process: subprocess.Popen[str], worker_kib: int | None = None) -> tuple[int, CommandUsage | None]:
    """Reap the command as Popen.wait would (its exit code: negative for a signal) and return its usage too;
    `worker_kib`: worker_size_kib() read before the spawn.

    Popen learns the code, so it never waits for the pid again. Where wait4 does not exist (Windows), or
    someone else reaped the child, the usage is None."""
    if not hasattr(os, "wait4"):
        return process.wait(), None
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except ChildProcessError:
        return process.wait(), None
    process.returncode = os.waitstatus_to_exitcode(status)
    at_most = worker_kib is not None and usage.ru_maxrss <= worker_kib + _SPAWN_SLACK_KIB
    return process.returncode, CommandUsage(usage.ru_maxrss / _MAXRSS_PER_MIB, usage.ru_utime + usage.ru_stime,
                                            at_most)


@dataclass(frozen=True)
class CgroupMemory:
    """One reading of the memory cgroup's files; each figure None where its file is missing."""

    oom_kills: int | None
    limit_mib: float | None  # None: no limit
    peak_mib: float | None


class MemoryCgroup:
    """The memory cgroup this process is in, as its files say (v2 or v1)."""

    def __init__(self, folder: Path, version: int):
        self.folder, self.version = folder, version

    @classmethod
    def find(cls, root: Path = _CGROUP_ROOT, self_cgroup: Path = _SELF_CGROUP) -> MemoryCgroup | None:
        """The process's own cgroup folder when it is visible (a host, a container sharing the host's cgroup
        namespace), else the mount's root (a container's own namespace shows its cgroup there); None when neither
        holds the OOM-kill counter."""
        try:
            lines = self_cgroup.read_text().splitlines()
        except OSError:
            lines = []
        paths = {controllers: path.lstrip("/") for _, controllers, path in
                 (line.split(":", 2) for line in lines if line.count(":") >= 2)}
        v1_path = next((path for controllers, path in paths.items() if "memory" in controllers.split(",")), "")
        for version, base, own, counter in ((2, root, paths.get("", ""), "memory.events"),
                                            (1, root / "memory", v1_path, "memory.oom_control")):
            for folder in (base / own, base) if own else (base,):
                if (folder / counter).is_file():
                    return cls(folder, version)
        return None

    def read(self) -> CgroupMemory:
        if self.version == 2:
            events = _fields(self.folder / "memory.events")
            return CgroupMemory(events.get("oom_kill"), _mib(self.folder / "memory.max"),
                                _mib(self.folder / "memory.peak"))
        control = _fields(self.folder / "memory.oom_control")
        return CgroupMemory(control.get("oom_kill"), _mib(self.folder / "memory.limit_in_bytes"),
                            _mib(self.folder / "memory.max_usage_in_bytes"))

    def oom_kills(self) -> int | None:
        """The counter alone: read before each attempt, so it costs one small file."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _fields(self.folder / name).get("oom_kill")


def _fields(path: Path) -> dict[str, int]:
    """A flat-keyed file ("oom_kill 3" lines); {} when it cannot be read."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def _mib(path: Path) -> float | None:
    """A byte count in MiB; None for "max" (v2's no limit), v1's no limit, or a missing file."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= _NO_LIMIT:
        return None
    return int(text) / _MIB


@dataclass(frozen=True)
class AttemptUsage:
    """One attempt's figures, as its outcome line and failure record give them."""

    command: CommandUsage | None
    container: CgroupMemory | None
    oom_killed: bool

    @property
    def peak_mib(self) -> float | None:
        return self.command.peak_mib if self.command else None

    @property
    def cpu_seconds(self) -> float | None:
        return self.command.cpu_seconds if self.command else None

    def limit_mib(self, memory_setting: int) -> float:
        """The limit that killed it: the cgroup's, else the MEMORY setting the task definition gives."""
        limit = self.container.limit_mib if self.container else None
        return limit if limit is not None else float(memory_setting)

    def text(self) -> str:
        """The outcome line's figures ("" when the command was not waited for)."""
        if self.command is None:
            return ""
        container = self.container
        command = self.command
        if container is None or container.limit_mib is None:  # no container: a laptop's cgroup says nothing useful
            return usage_text(command.peak_mib, command.cpu_seconds, at_most=command.at_most)
        return usage_text(command.peak_mib, command.cpu_seconds, container.peak_mib, container.limit_mib,
                          at_most=command.at_most)

    def out_of_memory(self, memory_setting: int) -> str:
        """The reason's first words for an attempt the OOM killer ended."""
        return out_of_memory_text(self.peak_mib or 0.0, self.limit_mib(memory_setting))


def attempt_usage(code: int | None, command: CommandUsage | None, cgroup: MemoryCgroup | None,
                  oom_kills_before: int | None) -> AttemptUsage:
    """OOM-killed: the command died of SIGKILL and the cgroup's counter rose meanwhile. With DOCKER_CORES workers
    in one container another job's kill could raise it too; the SIGKILL of this command is what ties it here."""
    container = cgroup.read() if cgroup is not None else None
    rose = (container is not None and container.oom_kills is not None and oom_kills_before is not None
            and container.oom_kills > oom_kills_before)
    return AttemptUsage(command, container, rose and code == -signal.SIGKILL)
