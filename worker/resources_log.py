"""Disk, inode, memory and CPU use, every 30 s, to the container's log (as DS has).

A job that fills the disk or the memory fails in ways its own log rarely
explains; these lines, in the `_perInstance` log group, do. Past 90 % of disk,
inodes or memory a line starts with WARNING. Standard library only: memory
is the container's cgroup (its hard limit is what kills it), falling back to
the machine's /proc/meminfo; CPU is the machine's, from /proc/stat.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("worker.resources")

WARN_PERCENT = 90.0
_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")


@dataclass(frozen=True)
class Sample:
    disk_percent: float
    disk_free_gib: float
    inode_percent: float
    memory_percent: float | None
    memory_used_mib: float | None
    memory_limit_mib: float | None
    cpu_percent: float | None

    def line(self) -> str:
        parts = [f"disk {self.disk_percent:.0f}% ({self.disk_free_gib:.1f} GiB free)",
                 f"inodes {self.inode_percent:.0f}%"]
        if self.memory_percent is not None:
            parts.append(f"memory {self.memory_percent:.0f}% ({self.memory_used_mib:.0f} of "
                         f"{self.memory_limit_mib:.0f} MiB)")
        if self.cpu_percent is not None:
            parts.append(f"cpu {self.cpu_percent:.0f}%")
        text = "resources: " + ", ".join(parts)
        full = [name for name, value in (("disk", self.disk_percent), ("inodes", self.inode_percent),
                                         ("memory", self.memory_percent)) if value is not None and value > WARN_PERCENT]
        return f"WARNING {text} ({' and '.join(full)} over {WARN_PERCENT:.0f}%)" if full else text


def disk_use(path: str) -> tuple[float, float, float]:
    """(percent used, GiB free, percent of inodes used) of the file system holding `path`."""
    stat = os.statvfs(path)
    total = stat.f_blocks * stat.f_frsize
    free = stat.f_bavail * stat.f_frsize
    used_percent = 100.0 * (total - free) / total if total else 0.0
    inode_percent = 100.0 * (stat.f_files - stat.f_favail) / stat.f_files if stat.f_files else 0.0
    return used_percent, free / 2**30, inode_percent


def memory_use(cgroup_v2: Path = _CGROUP_V2, cgroup_v1: Path = _CGROUP_V1_MEMORY,
               meminfo: Path = Path("/proc/meminfo")) -> tuple[float, float] | None:
    """(used MiB, limit MiB): the container's cgroup limit when it has one, else the machine's memory."""
    for used_file, limit_file in ((cgroup_v2 / "memory.current", cgroup_v2 / "memory.max"),
                                  (cgroup_v1 / "memory.usage_in_bytes", cgroup_v1 / "memory.limit_in_bytes")):
        try:
            used, limit = used_file.read_text().strip(), limit_file.read_text().strip()
        except OSError:
            continue
        # "max" (v2) or a huge number (v1) means no limit: use the machine's total instead.
        if limit.isdigit() and int(limit) < 2**60:
            return int(used) / 2**20, int(limit) / 2**20
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        total = int(fields["MemTotal"].split()[0]) / 1024
        available = int(fields["MemAvailable"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None
    return total - available, total


def cpu_times(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, total) jiffies since boot."""
    try:
        values = [int(value) for value in stat.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


class ResourceLogger(threading.Thread):
    def __init__(self, interval: float, path: str):
        super().__init__(name="resources", daemon=True)
        self.interval = interval
        self.path = path
        self._stopped = threading.Event()
        self._last_cpu = cpu_times()

    def sample(self) -> Sample:
        disk_percent, free_gib, inode_percent = disk_use(self.path)
        memory = memory_use()
        cpu = cpu_times()
        cpu_percent = None
        if cpu and self._last_cpu and cpu[1] > self._last_cpu[1]:
            cpu_percent = 100.0 * (cpu[0] - self._last_cpu[0]) / (cpu[1] - self._last_cpu[1])
        self._last_cpu = cpu
        used, limit = memory if memory else (None, None)
        return Sample(disk_percent, free_gib, inode_percent, 100.0 * memory[0] / memory[1] if memory else None, used,
                      limit, cpu_percent)

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                line = self.sample().line()
            except OSError as error:
                line = f"resources: cannot measure ({error})"
            (log.warning if line.startswith("WARNING") else log.info)(line.removeprefix("WARNING "))

    def stop(self) -> None:
        self._stopped.set()
