"""MEMORY and TASKS_PER_MACHINE from a run's own figures: each job's peak memory (its outcome lines,
chalicelib/runfiles/joblines.py) against the MEMORY it had, and what to ask for next time.

The suggestion: MEMORY = the highest job peak x DOCKER_CORES (the jobs one container runs at once) x HEADROOM,
rounded up to ROUND_MIB, and no less than the highest container peak the workers logged (which holds the worker
processes too) x HEADROOM; then, per MACHINE_TYPE, the containers of that size its memory (less what the OS and
ECS agent keep) and CPU units hold. A peak is the largest process of a job's tree (wait4's ru_maxrss), not the
sum of its processes: a job that runs many processes at once needs more than it says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.runfiles.joblines import FAILED, SUCCEEDED
from operations.report.data import Attempt

HEADROOM = 1.25
ROUND_MIB = 256
MOST_SHOWN = 10


@dataclass(frozen=True)
class MachineSize:
    """One MACHINE_TYPE as EC2 describes it, and the memory ECS leaves for tasks on it."""

    memory_mib: int
    usable_mib: int
    vcpus: int


@dataclass(frozen=True)
class MachineFit:
    machine_type: str
    size: MachineSize
    tasks: int  # TASKS_PER_MACHINE at the suggested MEMORY (and the run's CPU_SHARES)
    bound_by: str  # "memory" or "CPU"


@dataclass(frozen=True)
class JobPeak:
    job_id: str
    peak_mib: float  # the highest of its attempts
    cpu_seconds: float  # of that attempt
    out_of_memory: bool  # an attempt of it was ended by the OOM killer


@dataclass(frozen=True)
class Sizing:
    peaks: list[JobPeak]  # every measured job, highest peak first
    median_mib: float
    p90_mib: float
    highest_mib: float
    cpu_median_seconds: float
    cpu_share: float | None  # CPU time over the measured attempts' time (1.0: one vCPU busy throughout)
    highest_container_mib: float | None  # the containers' own peak (workers included), where they had a limit
    memory: int | None  # the run's MEMORY, per container
    docker_cores: int
    suggested_memory: int
    basis: str  # how suggested_memory was found, in words
    fits: list[MachineFit]
    unmeasured_jobs: int  # jobs that succeeded or failed with no figure (logged before the worker measured, or
    # by DS's worker; or no command ran: its inputs could not be downloaded)

    @property
    def per_job_mib(self) -> float | None:
        """MEMORY shared by the DOCKER_CORES jobs a container runs at once."""
        return self.memory / self.docker_cores if self.memory else None

    @property
    def out_of_memory(self) -> list[str]:
        return [peak.job_id for peak in self.peaks if peak.out_of_memory]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank of sorted `values` (not empty)."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


def suggested_memory(highest_job_mib: float, docker_cores: int, highest_container_mib: float | None) -> int:
    need = max(highest_job_mib * docker_cores, highest_container_mib or 0.0) * HEADROOM
    return max(ROUND_MIB, math.ceil(need / ROUND_MIB) * ROUND_MIB)


def tasks_per_machine(size: MachineSize, memory: int, cpu_shares: int | None) -> tuple[int, str]:
    by_memory = size.usable_mib // memory
    by_cpu = size.vcpus * 1024 // cpu_shares if cpu_shares else by_memory
    return (by_cpu, "CPU") if by_cpu < by_memory else (by_memory, "memory")


def sizing(attempts: Sequence[Attempt], settings: Mapping[str, Any],
           machines: Mapping[str, MachineSize]) -> Sizing | None:
    """None when no attempt logged its figures (a run of workers older than them, or DS's)."""
    best: dict[str, JobPeak] = {}
    oom: set[str] = set()
    containers = []
    cpu_total = measured_seconds = 0.0
    for attempt in attempts:
        oom.update([attempt.job_id] if attempt.out_of_memory else [])
        if attempt.container_peak_mib is not None:
            containers.append(attempt.container_peak_mib)
        if attempt.peak_memory_mib is None:
            continue
        cpu_total += attempt.cpu_seconds or 0.0
        measured_seconds += attempt.duration
        known = best.get(attempt.job_id)
        if known is None or attempt.peak_memory_mib > known.peak_mib:
            best[attempt.job_id] = JobPeak(attempt.job_id, attempt.peak_memory_mib, attempt.cpu_seconds or 0.0, False)
    if not best:
        return None
    peaks = sorted((JobPeak(p.job_id, p.peak_mib, p.cpu_seconds, p.job_id in oom) for p in best.values()),
                   key=lambda peak: (-peak.peak_mib, peak.job_id))
    values = sorted(peak.peak_mib for peak in peaks)
    cpus = sorted(peak.cpu_seconds for peak in peaks)
    cores = int(settings.get("DOCKER_CORES") or 1)
    memory = settings.get("MEMORY")
    container = max(containers) if containers else None
    suggested = suggested_memory(values[-1], cores, container)
    basis = (f"the highest job peak {values[-1]:.0f} MiB x DOCKER_CORES {cores} x {HEADROOM:g}"
             + (f" (the highest container peak, workers included, was {container:.0f} MiB)" if container else "")
             + f", rounded up to {ROUND_MIB} MiB")
    if oom:
        basis += (f"; {len(oom)} job(s) ran out of memory, so their real peak is higher than logged: this is a "
                  "step up, not a measurement")
    cpu_shares = settings.get("CPU_SHARES")
    fits = [MachineFit(name, size, *tasks_per_machine(size, suggested, cpu_shares))
            for name, size in machines.items()]
    ran = {attempt.job_id for attempt in attempts if attempt.outcome in (SUCCEEDED, FAILED)}
    unmeasured = len(ran - set(best))
    return Sizing(peaks=peaks, median_mib=percentile(values, 0.5), p90_mib=percentile(values, 0.9),
                  highest_mib=values[-1], cpu_median_seconds=percentile(cpus, 0.5),
                  cpu_share=cpu_total / measured_seconds if measured_seconds > 0 else None,
                  highest_container_mib=container,
                  memory=int(memory) if memory else None, docker_cores=cores, suggested_memory=suggested, basis=basis,
                  fits=fits, unmeasured_jobs=unmeasured)
