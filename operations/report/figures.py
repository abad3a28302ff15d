"""The run report's figures from the attempts, the monitor's summary and its series: no drawing here.

Everything a reader compares with the run's own summary is computed once, here, so render.py only lays out
numbers it is given (and the tests check these, not pixels).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.monitor.counts import Counts
from chalicelib.runfiles.joblines import FAILED, SKIPPED, SUCCEEDED
from operations.report.causes import FailureGroup, common_cause, failure_groups, why
from operations.report.data import OUTCOMES, UNKNOWN, Attempt
from operations.report.sizing import MachineSize, Sizing, sizing

MAX_ROWS = 200  # timeline rows drawn; more machines share a row
MAX_BARS = 20_000  # attempts drawn one by one; more: each row's busy time merged (failures still drawn one by one)
LONGEST = 10


@dataclass(frozen=True)
class Point:
    """One look at the run: machines in the fleet, jobs waiting and running (the monitor's Observation)."""

    time: float
    machines: int
    waiting: int | None  # None: not known (a series derived from the logs)
    running: int


@dataclass(frozen=True)
class ReportInput:
    app_name: str
    state: str  # "finished", "running", "local run"
    settings: dict[str, Any]  # the settings that matter, by their config names
    slots_per_machine: int  # TASKS_PER_MACHINE x DOCKER_CORES
    machine_price: float
    attempts: Sequence[Attempt]
    summary: dict[str, Any] | None = None  # the monitor's summary (plan.summary): machine-hours, cost ceiling, counts
    series: Sequence[Point] = ()
    series_source: str = "the monitor's observations"
    machines: Mapping[str, MachineSize] = field(default_factory=dict)  # MACHINE_TYPE's sizes, where EC2 said
    config_source: str = ""  # the config file the settings came from: config.json, or DS's config.py
    # The hours the run's workers were up, where the run knows it (local mode, which may run fewer workers than
    # TASKS_PER_MACHINE x DOCKER_CORES per machine: --workers); else machine-hours x slots_per_machine
    worker_hours: float | None = None
    machines_now: int = 0  # a live run's machines in its fleet, as `status` lists them


@dataclass
class Row:
    label: str
    # start, end, outcome, job id, why it ended so (causes.why: "" for a success)
    bars: list[tuple[float, float, str, str, str]] = field(default_factory=list)


@dataclass
class Timeline:
    rows: list[Row]
    start: float
    end: float
    notes: list[str]  # what was aggregated, said on the page
    drawn_bars: int


@dataclass
class Figures:
    attempts_by_outcome: dict[str, int]
    jobs: int
    jobs_done: int
    jobs_skipped: int
    jobs_failed: int  # failed every attempt
    failed_ids: list[str]
    durations: list[float]  # succeeded attempts, seconds
    histogram: list[tuple[float, float, int]]  # low, high, count (log-scale bins)
    longest: list[Attempt]
    failure_groups: list[FailureGroup]
    failure_summary: str | None
    machine_hours: float
    machine_hours_source: str
    cost_ceiling: float
    cost_per_job: float | None
    busy_slot_hours: float
    idle_share: float | None
    machines_seen: int
    series: list[Point]
    series_source: str
    timeline: Timeline
    window: tuple[float, float]  # epoch seconds: the time axis the timeline and the series share
    sizing: Sizing | None = None  # peak memory per job and the MEMORY it suggests; None: no attempt measured


def figures(data: ReportInput) -> Figures:
    attempts = list(data.attempts)
    by_job: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_job[attempt.job_id].append(attempt)
    done = {job for job, items in by_job.items() if any(a.outcome == SUCCEEDED for a in items)}
    skipped = {job for job, items in by_job.items() if job not in done and any(a.outcome == SKIPPED for a in items)}
    failed = sorted(job for job, items in by_job.items()
                    if job not in done and job not in skipped and items[-1].final_failure)
    durations = sorted(a.duration for a in attempts if a.outcome == SUCCEEDED)
    longest = sorted((a for a in attempts if a.outcome in (SUCCEEDED, FAILED)), key=lambda a: -a.duration)[:LONGEST]
    busy = sum(a.duration for a in attempts)
    hours, source = _machine_hours(data, attempts)
    ceiling = (data.summary or {}).get("cost_ceiling_usd")
    ceiling = float(ceiling) if ceiling is not None else hours * data.machine_price
    capacity = (data.worker_hours if data.worker_hours is not None else hours * data.slots_per_machine) * 3600
    series, series_source = (list(data.series), data.series_source) if data.series else (
        derived_series(attempts), "derived from the job logs (machines with a job so far, attempts running; "
                                  "jobs waiting are not in the logs)")
    counts = Counts.of_jobs(by_job, done=done, skipped=skipped, failed=failed)
    drawn = timeline(attempts)
    return Figures(
        attempts_by_outcome={outcome: sum(a.outcome == outcome for a in attempts) for outcome in OUTCOMES},
        jobs=_jobs(data, counts), jobs_done=counts.done, jobs_skipped=counts.skipped, jobs_failed=counts.failed,
        failed_ids=failed,
        durations=durations, histogram=log_histogram(durations), longest=longest,
        failure_groups=failure_groups(attempts, set(failed)),
        failure_summary=common_cause([by_job[job][-1] for job in failed]),
        machine_hours=hours, machine_hours_source=source, cost_ceiling=ceiling,
        cost_per_job=ceiling / len(done) if done else None, busy_slot_hours=busy / 3600,
        idle_share=max(0.0, 1 - busy / capacity) if capacity > 0 else None,
        machines_seen=_machines(data, attempts), series=series, series_source=series_source,
        timeline=drawn, window=shared_window(drawn, series), sizing=sizing(attempts, data.settings, data.machines))


def _jobs(data: ReportInput, counts: Counts) -> int:
    """The run's jobs as `status` counts them (chalicelib/monitor/counts.py): its record's, or summary's, submitted
    jobs,
    since a job never received has no log (and a run whose jobs wait for machines has none yet), else the jobs in
    the logs."""
    submitted = (data.summary or {}).get("jobs_submitted")
    return max(counts.submitted, submitted if isinstance(submitted, int) else 0)


def _machines(data: ReportInput, attempts: Sequence[Attempt]) -> int:
    """The machines the run had: in its fleet now, in the monitor's series, or in the logs, whichever saw most
    (a machine that ran no job is in the fleet and the series only)."""
    return max([data.machines_now, len({a.machine for a in attempts})] + [p.machines for p in data.series])


def shared_window(drawn: Timeline, series: Sequence[Point]) -> tuple[float, float]:
    """One time axis for both drawings, so a bar and the machine count under it line up: from the first
    observation or attempt to the last (the monitor sees machines before their first job and after the last)."""
    times = ([drawn.start, drawn.end] if drawn.rows else []) + ([series[0].time, series[-1].time] if series else [])
    return (min(times), max(times)) if times else (0.0, 0.0)


def _machine_hours(data: ReportInput, attempts: Sequence[Attempt]) -> tuple[float, str]:
    """The monitor's machine-hours (every machine from launch to its end, billed or not) when known; else the
    series' area; else each machine from its first job to its last (an underestimate, said so)."""
    summary = data.summary or {}
    if summary.get("machine_hours") is not None:
        return float(summary["machine_hours"]), "the monitor's count (launch to termination)"
    if len(data.series) > 1:
        points = data.series
        area = sum(a.machines * (b.time - a.time) for a, b in itertools.pairwise(points))
        return area / 3600, "the machines observed over time"
    spans: dict[str, list[float]] = {}
    for attempt in attempts:
        span = spans.setdefault(attempt.machine, [attempt.start, attempt.end])
        span[0], span[1] = min(span[0], attempt.start), max(span[1], attempt.end)
    return sum(end - start for end, start in ((s[1], s[0]) for s in spans.values())) / 3600, (
        "each machine's first to last job in the logs (a lower bound)")


def log_histogram(values: Sequence[float], bins_per_decade: int = 4) -> list[tuple[float, float, int]]:
    """Counts in log-scale bins (durations span seconds to hours); values under 0.01 s count in the first bin."""
    if not values:
        return []
    floor = 0.01
    low = math.floor(math.log10(max(floor, min(values))) * bins_per_decade)
    high = math.floor(math.log10(max(floor, max(values))) * bins_per_decade)
    counts = Counter(math.floor(math.log10(max(floor, value)) * bins_per_decade) for value in values)
    return [(10 ** (index / bins_per_decade), 10 ** ((index + 1) / bins_per_decade), counts.get(index, 0))
            for index in range(low, high + 1)]


def derived_series(attempts: Sequence[Attempt]) -> list[Point]:
    """Attempts running and machines seen so far, at each attempt's start and end (no waiting count: the logs
    do not know the queue)."""
    changes: list[tuple[float, int]] = []
    first_seen: dict[str, float] = {}
    for attempt in attempts:
        changes += [(attempt.start, 1), (attempt.end, -1)]
        first_seen[attempt.machine] = min(first_seen.get(attempt.machine, attempt.start), attempt.start)
    machine_starts = sorted(first_seen.values())
    points, running, seen = [], 0, 0
    for when, change in sorted(changes):
        running += change
        while seen < len(machine_starts) and machine_starts[seen] <= when:
            seen += 1
        points.append(Point(when, seen, None, running))
    return points


def timeline(attempts: Sequence[Attempt], max_rows: int = MAX_ROWS, max_bars: int = MAX_BARS) -> Timeline:
    """Rows of bars: one per machine and worker; one per machine when those are too many; several machines per
    row when even machines are too many. Past max_bars, each row's busy time is merged into intervals (drawn
    as 'busy') and only the attempts that did not succeed are drawn one by one."""
    notes: list[str] = []
    if not attempts:
        return Timeline([], 0.0, 0.0, ["no job attempt in the logs yet"], 0)
    start = min(a.start for a in attempts)
    end = max(a.end for a in attempts)
    slots = sorted({(a.machine, a.slot) for a in attempts}, key=_row_order)
    machines = sorted({a.machine for a in attempts}, key=lambda machine: (machine == UNKNOWN, machine))
    key: Callable[[Attempt], str]  # an attempt's row label
    if len(slots) <= max_rows:
        labels = {slot: f"{slot[0]} / {slot[1]}" for slot in slots}
        key = lambda a: labels[(a.machine, a.slot)]  # noqa: E731
        order = [labels[slot] for slot in slots]
    elif len(machines) <= max_rows:
        notes.append(f"{len(slots)} workers on {len(machines)} machines: one row per machine (its workers' bars "
                     "overlap)")
        key = lambda a: a.machine  # noqa: E731
        order = machines
    else:
        per_row = math.ceil(len(machines) / max_rows)
        index = {machine: position // per_row for position, machine in enumerate(machines)}
        names: dict[int, list[str]] = {}
        for machine in machines:
            names.setdefault(index[machine], []).append(machine)
        labels_of = {row: (f"{group[0]} .. {group[-1]} ({len(group)})" if len(group) > 1 else group[0])
                     for row, group in names.items()}
        notes.append(f"{len(machines)} machines: {per_row} machines per row ({len(labels_of)} rows)")
        key = lambda a: labels_of[index[a.machine]]  # noqa: E731
        order = [labels_of[row] for row in sorted(labels_of)]
    rows = {label: Row(label) for label in order}
    if len(attempts) <= max_bars:
        for a in attempts:
            rows[key(a)].bars.append((a.start, a.end, a.outcome, a.job_id, why(a)))
    else:
        notes.append(f"{len(attempts):,} attempts: more than {max_bars:,}, so each row shows its busy time merged "
                     "(grey); attempts that did not succeed are still drawn one by one")
        busy: dict[str, list[tuple[float, float]]] = defaultdict(list)
        others = []
        for a in attempts:
            busy[key(a)].append((a.start, a.end))
            if a.outcome != SUCCEEDED:
                others.append(a)
        for label, intervals in busy.items():
            rows[label].bars.extend((s, e, "busy", "", "") for s, e in merge(intervals, gap=(end - start) / 2000))
        for a in others[:max_bars]:
            rows[key(a)].bars.append((a.start, a.end, a.outcome, a.job_id, why(a)))
    drawn = sum(len(row.bars) for row in rows.values())
    return Timeline(list(rows.values()), start, end, notes, drawn)


def _row_order(slot: tuple[str, str]) -> tuple[bool, str, str]:
    return (slot[0] == UNKNOWN, slot[0], slot[1])


def merge(intervals: list[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    """Overlapping intervals (or ones closer than `gap`: invisible at the drawing's scale) merged."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def downsample(points: Sequence[Point], limit: int = 2000) -> list[Point]:
    """At most `limit` points for drawing: every k-th, the last kept."""
    if len(points) <= limit:
        return list(points)
    step = math.ceil(len(points) / limit)
    kept = list(points[::step])
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept
