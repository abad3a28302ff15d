"""The run report as one self-contained HTML page: inline CSS and static SVG, no script, no network.

Each drawn attempt is an SVG rect with class "bar o-OUTCOME" and data-job (tests count them); every number
comes from figures.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from operations.report.figures import Figures, ReportInput, downsample
from operations.report.sizing import MOST_SHOWN, Sizing

COLOURS = {"succeeded": "#2e8b57", "failed": "#d62728", "released": "#ff9f1c", "skipped": "#8da0cb",
           "lost": "#6a3d9a", "busy": "#9e9e9e"}
LABELS = {"succeeded": "succeeded", "failed": "failed", "released": "released (spot interruption or stop)",
          "skipped": "skipped: already done", "lost": "lost (no outcome line)", "busy": "busy (merged)"}
WIDTH, LEFT, RIGHT = 1200, 230, 20
MACHINE_AXIS = 80  # room right of the series drawing for the machines' own axis
MAX_PEAK_BARS = 600  # jobs drawn in the peak memory drawing; more: every k-th of them, highest first

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1260px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666} .note{color:#8a5a00;background:#fff7e0;padding:4px 8px;margin:4px 0}
.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.tile b{display:block;font-size:22px} table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top} th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums} .ids{font-family:monospace;font-size:12px;max-width:700px}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-1px} svg text{font:11px system-ui,sans-serif;fill:#333}
"""


def render(data: ReportInput, fig: Figures, generated_at: float) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Run report: "
             f"{escape(data.app_name)}</title><style>{CSS}</style></head><body>",
             f"<h1>Run report: {escape(data.app_name)}</h1>",
             f"<div class='meta'>{escape(data.state)}; {_period(fig)}; report made {_time(generated_at)} UTC</div>",
             _tiles(fig), "<h2>Timeline</h2>", _timeline(fig), "<h2>Machines and jobs over time</h2>",
             _series(fig), "<h2>Job durations</h2>", _durations(fig), "<h2>Memory and CPU</h2>", _memory(fig),
             "<h2>Failures</h2>", _failures(fig),
             "<h2>Cost</h2>", _cost(data, fig), "<h2>Settings</h2>", _settings(data), "</body></html>"]
    return "\n".join(parts)


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _period(fig: Figures) -> str:
    if not fig.timeline.rows:
        return "no job attempt yet"
    t = fig.timeline
    return f"jobs from {_time(t.start)} to {_time(t.end)} UTC ({_seconds(t.end - t.start)})"


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _tiles(fig: Figures) -> str:
    tiles = [("jobs", fig.jobs), ("done", fig.jobs_done), ("skipped as done", fig.jobs_skipped),
             ("failed", fig.jobs_failed), ("attempts", sum(fig.attempts_by_outcome.values())),
             ("released", fig.attempts_by_outcome["released"]), ("machines", fig.machines_seen),
             ("cost ceiling", f"${fig.cost_ceiling:,.2f}" if fig.cost_ceiling >= 1 else f"${fig.cost_ceiling:.4f}")]
    return "<div class='tiles'>" + "".join(
        f"<div class='tile' data-figure='{escape(name)}'><b>{escape(str(value))}</b>{escape(name)}</div>"
        for name, value in tiles) + "</div>"


def _legend(outcomes: Iterable[str]) -> str:
    return "<div class='legend'>" + "".join(f"<span><i style='background:{COLOURS[o]}'></i>{LABELS[o]}</span>"
                                            for o in outcomes) + "</div>"


def _axis(start: float, end: float, top: int, height: int) -> list[str]:
    """Five ticks of elapsed time under a drawing."""
    out = []
    for step in range(6):
        x = LEFT + (WIDTH - LEFT - RIGHT) * step / 5
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{top + height}' stroke='#eee'/>"
                   f"<text x='{x:.1f}' y='{top + height + 14}' text-anchor='middle'>"
                   f"{_seconds((end - start) * step / 5)}</text>")
    return out


def _timeline(fig: Figures) -> str:
    t = fig.timeline
    notes = "".join(f"<div class='note'>{escape(note)}</div>" for note in t.notes)
    if not t.rows:
        return notes
    row_h = 16 if len(t.rows) <= 60 else max(3, 900 // len(t.rows))
    height = row_h * len(t.rows)
    origin, end = fig.window
    scale = (WIDTH - LEFT - RIGHT) / max(end - origin, 1e-9)
    svg = [f"<svg class='timeline' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height + 24}'>"]
    svg += _axis(origin, end, 0, height)
    for index, row in enumerate(t.rows):
        y = index * row_h
        if row_h >= 10:
            svg.append(f"<text x='{LEFT - 6}' y='{y + row_h - 4}' text-anchor='end'>{escape(row.label[:38])}</text>")
        for start, end, outcome, job, ended in row.bars:
            x = LEFT + (start - origin) * scale
            w = max(1.0, (end - start) * scale)
            because = f" ({ended})" if ended else ""
            title = f"<title>{escape(f'{job}: {outcome}{because}')}, {_seconds(end - start)}</title>" if job else ""
            svg.append(f"<rect class='bar o-{outcome}' data-job='{escape(job)}' x='{x:.1f}' y='{y + 1}' "
                       f"width='{w:.1f}' height='{max(1, row_h - 2)}' fill='{COLOURS[outcome]}'>{title}</rect>")
    svg.append("</svg>")
    outcomes = sorted({bar[2] for row in t.rows for bar in row.bars}, key=list(COLOURS).index)
    return notes + _legend(outcomes) + "".join(svg)


def _series(fig: Figures) -> str:
    points = downsample(fig.series)
    note = f"<div class='meta'>Source: {escape(fig.series_source)}" + (
        f"; {len(fig.series):,} points, {len(points):,} drawn" if len(points) < len(fig.series) else "") + "</div>"
    if not points:
        return note + "<p>No observation to draw.</p>"
    start, end = fig.window  # the timeline's axis: the same time is at the same x in both drawings
    span = max(end - start, 1e-9)
    # Jobs on the left axis, machines on their own on the right: 2 machines beside 48 jobs would be a flat line
    tops = {"jobs": max(max(p.running, p.waiting or 0) for p in points) or 1,
            "machines": max(p.machines for p in points) or 1}
    height = 220
    lines = {"machines": [(p.time, p.machines) for p in points], "running": [(p.time, p.running) for p in points],
             "waiting": [(p.time, p.waiting) for p in points if p.waiting is not None]}
    colours = {"machines": "#1f77b4", "running": "#2e8b57", "waiting": "#ff7f0e"}
    svg = [f"<svg class='series' xmlns='http://www.w3.org/2000/svg' width='{WIDTH + MACHINE_AXIS}' "
           f"height='{height + 24}'>"]
    svg += _axis(start, end, 0, height)
    right = WIDTH - RIGHT + 6
    svg.append(f"<text class='axis-jobs' x='{LEFT - 6}' y='10' text-anchor='end'>{tops['jobs']}</text>"
               f"<text x='{LEFT - 6}' y='24' text-anchor='end'>jobs</text>"
               f"<text x='{LEFT - 6}' y='{height}' text-anchor='end'>0</text>"
               f"<text class='axis-machines' x='{right}' y='10'>{tops['machines']}</text>"
               f"<text x='{right}' y='24'>machines</text><text x='{right}' y='{height}'>0</text>")
    for name, values in lines.items():
        if not values:
            continue
        top = tops["machines" if name == "machines" else "jobs"]
        # a step line: each count holds until the next observation, the last one to the axis' end
        coords = []
        for (when, value), (after, _) in zip(values, [*values[1:], (max(end, values[-1][0]), None)], strict=True):
            x0 = LEFT + (when - start) / span * (WIDTH - LEFT - RIGHT)
            x1 = LEFT + (after - start) / span * (WIDTH - LEFT - RIGHT)
            y = height - value / top * (height - 4)
            coords.append(f"{x0:.1f},{y:.1f} {x1:.1f},{y:.1f}")
        svg.append(f"<polyline class='line-{name}' fill='none' stroke='{colours[name]}' stroke-width='1.5' "
                   f"points='{' '.join(coords)}'/>")
    svg.append("</svg>")
    legend = "<div class='legend'>" + "".join(
        f"<span><i style='background:{colours[name]}'></i>{label}</span>" for name, label in
        (("machines", "machines (right axis)"), ("running", "jobs running"), ("waiting", "jobs waiting"))
        if lines[name]) + "</div>"
    return note + legend + "".join(svg)


def _durations(fig: Figures) -> str:
    if not fig.durations:
        return "<p>No job has succeeded yet.</p>"
    d = fig.durations
    median = d[len(d) // 2]
    head = (f"<p>{len(d):,} successful attempts: median {_seconds(median)}, shortest {_seconds(d[0])}, "
            f"longest {_seconds(d[-1])} (from receipt to the outcome line).</p>")
    most = max(count for _, _, count in fig.histogram) or 1
    bar_w = min(60, (WIDTH - LEFT - RIGHT) // max(1, len(fig.histogram)))
    height = 160
    svg = [f"<svg class='histogram' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height + 30}'>"]
    for index, (low, high, count) in enumerate(fig.histogram):
        x = LEFT + index * bar_w
        h = count / most * (height - 14)
        svg.append(f"<rect class='hist' data-count='{count}' x='{x}' y='{height - h:.1f}' width='{bar_w - 2}' "
                   f"height='{h:.1f}' fill='#2e8b57'><title>{_seconds(low)} to {_seconds(high)}: {count}</title>"
                   f"</rect>")
        if count:
            svg.append(f"<text x='{x + bar_w / 2 - 1:.1f}' y='{height - h - 3:.1f}' text-anchor='middle'>"
                       f"{count}</text>")
        if index % 2 == 0:
            svg.append(f"<text x='{x}' y='{height + 14}'>{_seconds(low)}</text>")
    svg.append(f"<text x='{LEFT - 6}' y='{height + 14}' text-anchor='end'>log scale</text></svg>")
    rows = "".join(f"<tr class='longest'><td>{escape(a.job_id)}</td><td class='n'>{_seconds(a.duration)}</td>"
                   f"<td>{a.outcome}</td><td>{escape(a.machine)}</td></tr>" for a in fig.longest)
    return (head + "".join(svg) + "<h3>The ten longest attempts</h3><table><tr><th>job</th><th>duration</th>"
            f"<th>outcome</th><th>machine</th></tr>{rows}</table>")


def _memory(fig: Figures) -> str:
    """Each job's peak memory against its share of MEMORY, and the MEMORY and TASKS_PER_MACHINE they suggest."""
    sizing = fig.sizing
    if sizing is None:
        return ("<p>No job logged its peak memory (its workers are older than these figures, or the run used DS's "
                "own worker).</p>")
    share = sizing.per_job_mib
    against = (f", against MEMORY {sizing.memory} MiB per container" + (
        f" ({share:.0f} MiB for each of its DOCKER_CORES {sizing.docker_cores} jobs at once)"
        if sizing.docker_cores > 1 else "") if sizing.memory else "")
    head = (f"<p class='memory-summary'>{len(sizing.peaks):,} jobs measured: peak memory median "
            f"{sizing.median_mib:.0f} MiB, 90th percentile {sizing.p90_mib:.0f} MiB, highest "
            f"{sizing.highest_mib:.0f} MiB{escape(against)}; CPU time median {_seconds(sizing.cpu_median_seconds)} "
            "per job" + (f", {sizing.cpu_share:.0%} of their attempts' time (100% is one vCPU busy throughout)"
                         if sizing.cpu_share is not None else "") + ".")
    if sizing.unmeasured_jobs:
        head += f" {sizing.unmeasured_jobs:,} job(s) have no figure (logged by an older worker, or no command ran)."
    head += "</p>"
    if sizing.out_of_memory:
        ids = ", ".join(sizing.out_of_memory[:50]) + (" ..." if len(sizing.out_of_memory) > 50 else "")
        head += (f"<div class='note out-of-memory'>{len(sizing.out_of_memory)} job(s) ran out of memory: "
                 f"{escape(ids)}</div>")
    suggestion = (f"<p class='suggestion' data-memory='{sizing.suggested_memory}'>Suggested MEMORY: "
                  f"<b>{sizing.suggested_memory} MiB</b> ({escape(sizing.basis)}).</p>")
    fits = ""
    if sizing.fits:
        fits = ("<table><tr><th>MACHINE_TYPE</th><th>memory</th><th>for tasks</th><th>vCPUs</th>"
                f"<th>TASKS_PER_MACHINE at {sizing.suggested_memory} MiB</th><th>bound by</th></tr>" + "".join(
                    f"<tr class='fit' data-type='{escape(fit.machine_type)}' data-tasks='{fit.tasks}'>"
                    f"<td>{escape(fit.machine_type)}</td><td class='n'>{fit.size.memory_mib} MiB</td>"
                    f"<td class='n'>{fit.size.usable_mib} MiB</td><td class='n'>{fit.size.vcpus}</td>"
                    f"<td class='n'>{fit.tasks}</td><td>{fit.bound_by}</td></tr>" for fit in sizing.fits) + "</table>")
    return head + suggestion + fits + _peaks_drawing(sizing) + _highest_peaks(sizing)


def _peaks_drawing(sizing: Sizing) -> str:
    """Every measured job's peak, highest first (every k-th past MAX_PEAK_BARS), under a line at its share of
    MEMORY."""
    peaks = sizing.peaks
    step = max(1, -(-len(peaks) // MAX_PEAK_BARS))
    drawn = peaks[::step]
    share = sizing.per_job_mib
    top = max(sizing.highest_mib, share or 0.0) * 1.05 or 1.0
    height, span = 160, WIDTH - LEFT - RIGHT
    bar_w = span / len(drawn)
    svg = [f"<svg class='peaks' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height + 20}'>",
           f"<text x='{LEFT - 6}' y='10' text-anchor='end'>{top:.0f} MiB</text>"
           f"<text x='{LEFT - 6}' y='{height}' text-anchor='end'>0</text>"]
    for index, peak in enumerate(drawn):
        h = peak.peak_mib / top * height
        colour = COLOURS["failed"] if peak.out_of_memory else COLOURS["succeeded"]
        svg.append(f"<rect class='peak' data-job='{escape(peak.job_id)}' data-mib='{peak.peak_mib:.0f}' "
                   f"x='{LEFT + index * bar_w:.1f}' y='{height - h:.1f}' width='{max(0.5, bar_w - 1):.1f}' "
                   f"height='{h:.1f}' fill='{colour}'><title>{escape(peak.job_id)}: {peak.peak_mib:.0f} MiB"
                   f"</title></rect>")
    if share:
        y = height - share / top * height
        svg.append(f"<line class='memory-share' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='#d62728' stroke-dasharray='4 3'/><text x='{LEFT - 6}' y='{y + 4:.1f}' "
                   f"text-anchor='end'>MEMORY{'/' + str(sizing.docker_cores) if sizing.docker_cores > 1 else ''} "
                   f"{share:.0f}</text>")
    note = ("<div class='meta'>Peak memory per job, highest first" +
            (f"; {len(peaks):,} jobs, one in {step} drawn" if step > 1 else "") + "</div>")
    return note + "".join(svg) + "</svg>"


def _highest_peaks(sizing: Sizing) -> str:
    rows = "".join(f"<tr class='highest-peak'><td>{escape(peak.job_id)}</td><td class='n'>{peak.peak_mib:.0f} MiB"
                   f"</td><td class='n'>{_seconds(peak.cpu_seconds)}</td>"
                   f"<td>{'out of memory' if peak.out_of_memory else ''}</td></tr>"
                   for peak in sizing.peaks[:MOST_SHOWN])
    return ("<h3>The highest peaks</h3><table><tr><th>job</th><th>peak memory</th><th>CPU time</th><th></th></tr>"
            f"{rows}</table>")


def _failures(fig: Figures) -> str:
    if not fig.failure_groups:
        return "<p>No attempt failed.</p>"
    head = f"<p>{fig.jobs_failed} job(s) failed every attempt"
    head += f": {escape(fig.failure_summary)}.</p>" if fig.failure_summary else ".</p>"
    rows = "".join(
        f"<tr class='failure-group'><td>{escape(group.cause)}{_variants(group.variants)}</td>"
        f"<td class='n'>{group.attempts}</td>"
        f"<td class='n'>{group.final}</td><td class='ids'>{escape(', '.join(group.job_ids[:200]))}"
        f"{' ...' if len(group.job_ids) > 200 else ''}</td></tr>" for group in fig.failure_groups[:50])
    return (head + "<table><tr><th>common cause</th><th>failed attempts</th><th>jobs failed for good</th>"
            f"<th>jobs</th></tr>{rows}</table>")


def _variants(count: int) -> str:
    """Said under a group's example cause when its causes differ in ids or numbers."""
    return (f"<div class='meta variants' data-variants='{count}'>one of {count} causes alike but for their ids and "
            "numbers</div>") if count > 1 else ""


def _cost(data: ReportInput, fig: Figures) -> str:
    rows = [("machine-hours", f"{fig.machine_hours:.4f}", fig.machine_hours_source),
            ("cost ceiling", f"${fig.cost_ceiling:.4f}", f"machine-hours x MACHINE_PRICE ${data.machine_price:g}"),
            ("cost per job done", f"${fig.cost_per_job:.5f}" if fig.cost_per_job is not None else "-",
             f"ceiling / {fig.jobs_done} jobs done"),
            ("busy worker-hours", f"{fig.busy_slot_hours:.4f}", "sum of every attempt, receipt to outcome"),
            ("idle share", f"{fig.idle_share:.0%}" if fig.idle_share is not None else "-",
             f"1 - busy / {data.worker_hours:.4f} worker-hours (each worker that ran, from its start to its end)"
             if data.worker_hours is not None else
             f"1 - busy / (machine-hours x {data.slots_per_machine} worker(s) per machine)")]
    return "<table>" + "".join(f"<tr data-cost='{escape(name)}'><th>{escape(name)}</th><td class='n'>{value}</td>"
                               f"<td>{escape(how)}</td></tr>" for name, value, how in rows) + "</table>"


def _settings(data: ReportInput) -> str:
    python = data.config_source.endswith(".py")
    return "<table>" + "".join(f"<tr><th>{escape(key)}</th><td>{escape(as_written(value, python))}</td></tr>"
                               for key, value in data.settings.items()) + "</table>"


def as_written(value: object, python: bool = False) -> str:
    """A setting as its config holds it: a JSON value (a list is ["m5.large"], not a Python tuple), or, from
    DS's config.py, a Python literal; a text without its quotes, as the table shows it."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        value = list(value)
    return repr(value) if python else json.dumps(value)
