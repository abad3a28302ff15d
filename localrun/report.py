"""The summary a local run ends with: a table for the terminal, a JSON document for --out/summary.json."""

from __future__ import annotations

import os
from pathlib import Path

from chalicelib.model.printable import printable
from chalicelib.model.settings import Settings
from chalicelib.monitor.breaker import REDRIVE_ADVICE
from chalicelib.monitor.plan import REASON_DRAINED
from localrun.results import Results
from localrun.triage import KEPT


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min {value % 60:.0f} s"


def table(settings: Settings, results: Results, out: Path, machines: int, wall_seconds: float, notices: int,
          replacements: int, stopped_by: str | None, crashed: list[str], kept: int = 0,
          commands: dict[str, str] | None = None) -> str:
    counts = results.counts  # chalicelib/monitor/counts.py: the last progress line's, summary.json's
    rows = [
        ("jobs", counts.submitted),
        ("done", counts.done),
        ("skipped as already done", counts.skipped),
        ("failed", counts.failed),
        ("not run", counts.not_run),
        ("machines used", machines),
        ("spot interruptions", f"{notices} ({replacements} replaced)"),
        ("wall time", _seconds(wall_seconds)),
    ]
    if kept:
        rows.insert(1, ("kept from earlier runs", f"{kept} done (outputs and logs in {show(out)})"))
    width = max(len(name) for name, _ in rows)
    stop_reason = (results.run_summary or {}).get("stop_reason")
    if stop_reason:
        stop_reason = stop_reason.replace(REDRIVE_ADVICE, "")  # AWS's way on; local mode's is printed below
    lines = ["", f"{settings.APP_NAME}: " + (f"stopped ({stopped_by})" if stopped_by else "finished")
             + (f"; the monitor stopped it: {printable(stop_reason)}" if stop_reason not in (None, REASON_DRAINED)
                and not stopped_by else "")]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if results.failed:
        if results.failure_cause:
            lines.append(f"why: {printable(results.failure_cause)}")  # quotes the jobs' own output
        lines.append(f"failed jobs (in the dead-letter queue {settings.SQS_DEAD_LETTER_QUEUE}, or on their way there "
                     "when the run stopped first), with their logs:")
        for job_id in results.failed:
            path = results.log_files.get(job_id)
            lines.append(f"  {printable(job_id)}  {show(path) if path else '(no log)'}")
    for instance_id in crashed:
        lines.append(f"error: the workers of {instance_id} crashed; see {show(out / 'machines' / instance_id)}.log")
    lines.append(f"outputs:  {show(out / outputs_folder(results.output_prefixes))}{os.sep} "
                 f"({results.output_files} files, at each job's OUTPUT_PREFIX)")
    lines.append(f"job logs: {show(out / 'logs')}{os.sep} (one file per job, named after the job)")
    if commands and results.failed:
        lines.append(f"the failed jobs, why and their last lines: {commands['failed']}")
        lines.append(f"one job's whole log: {commands['logs']}")
    if commands and (results.failed or results.not_run):
        what = " and ".join(part for part in (results.failed and f"{len(results.failed)} failed",
                                              results.not_run and f"{len(results.not_run)} not run") if part)
        lines.append(f"{'once the cause is fixed, ' if results.failed else ''}run only the {what} job(s) again "
                     f"(the done ones keep their outputs): {commands['run_again']}")
    return "\n".join(lines) + "\n"


def outputs_folder(prefixes: list[str]) -> str:
    """The folder all jobs' outputs share (OUTPUT_PREFIX "outputs/{plate}" -> "outputs")."""
    return os.path.commonpath(prefixes) if prefixes else ""


def show(path: Path) -> str:
    """Relative to the current folder when inside it: shorter, and what the user typed."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary_document(results: Results, machines: int, wall_seconds: float, notices: int, stopped_by: str | None,
                     exit_code: int, kept: list[str] = (), commands: dict[str, str] | None = None) -> dict:
    counts = results.counts
    return {
        "jobs": counts.submitted,
        # the table's numbers (chalicelib/monitor/counts.py); the lists below name the jobs of each
        "counts": {"submitted": counts.submitted, "done": counts.done, "skipped_as_already_done": counts.skipped,
                   "failed": counts.failed, "not_run": counts.not_run},
        "done": sorted(results.succeeded),
        "skipped_as_already_done": sorted(results.skipped),
        "failed": {job_id: str(results.log_files[job_id]) if job_id in results.log_files else None
                   for job_id in results.failed},
        "not_run": sorted(results.not_run),
        "output_files": results.output_files,
        "machines_used": machines,
        "spot_interruption_notices": notices,
        "wall_seconds": round(wall_seconds, 2),
        "stopped_by": stopped_by,
        "exit_code": exit_code,
        "monitor_summary": results.run_summary,
        KEPT: sorted(kept),  # done by earlier runs in --out, not run again by this --only-failed one
        "commands": commands or {},  # triage of this run: failed, logs, and running its failed jobs again
    }
