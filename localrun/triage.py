"""Triage of a finished local run, from what it left in its --out: the emulated account is gone by then.

A local run writes to --out what `failed` and `logs` read on AWS: each failed job's failure record
(chalicelib/runfiles/failures.py) as OUT/failures/<job id>.json, each job's log as OUT/logs/<job id>.log, and
summary.json.
`cli.py failed --local-run OUT` and `cli.py logs JOB_ID --local-run OUT` read them. Local mode's redrive is
`cli.py local JOBS --only-failed`: it runs the jobs of JOBS that the runs in OUT have not done (failed, not run,
or new in JOBS) and keeps the done ones' outputs and logs in OUT. The run prints these commands at its end, with
the paths it was given, and summary.json holds them ("commands").
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from chalicelib.model.errors import UserError
from chalicelib.model.jobs import Job
from chalicelib.runfiles.failures import FailureRecord

FAILURES = "failures"
LOGS = "logs"
SUMMARY = "summary.json"
KEPT = "kept_from_earlier_runs"  # summary.json: done jobs an --only-failed run did not run again
ONLY_FAILED = "--only-failed"


def default_out(app_name: str) -> Path:
    """Where a local run writes when not given --out."""
    return Path("local-run") / app_name


def recorded_commands(out: Path) -> dict[str, str] | None:
    """The triage commands the run in `out` printed at its end (summary.json "commands"); None without a
    readable summary there."""
    try:
        return json.loads((out / SUMMARY).read_text()).get("commands") or {}
    except (OSError, ValueError, AttributeError):
        return None


def output_files(folder: Path, job: Job) -> list[Path]:
    """The files under `folder` at the job's OUTPUT_PREFIX (its _SUCCESS marker too), as a run's --out holds
    them."""
    prefix = folder.joinpath(*job.output_prefix.split("/"))
    return sorted(path for path in prefix.rglob("*") if path.is_file()) if prefix.is_dir() else []


def hint(app_name: str, command: str) -> str | None:
    """For a triage command that found no AWS credentials: the local command to use instead, when a local run of
    the app left its folder here (the user may well have meant that run)."""
    out = default_out(app_name)
    recorded = recorded_commands(out)
    if recorded is None:
        return None
    local = {"failed": recorded.get("failed"), "logs": recorded.get("logs"), "redrive": recorded.get("run_again")}
    return local.get(command) and f"for the local run in {out}, use: {local[command]}"


def aside(out: Path) -> Path:
    """Where a run keeps the last run's --out while it empties --out (localrun/driver.py set_aside)."""
    return out.with_name(f".{out.name}.previous")


def write_failure_records(out: Path, records: list[FailureRecord]) -> None:
    folder = out / FAILURES
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        (folder / f"{record.job_id}.json").write_text(record.to_json() + "\n")


def failure_records(out: Path) -> list[FailureRecord]:
    """The failed jobs' records a local run left in `out`, oldest first, as failures.list_records gives them."""
    if not (out / SUMMARY).is_file():
        raise UserError(f"--local-run {out}: no {SUMMARY} there: expected the --out folder of a finished "
                        "'python cli.py local' run (by default local-run/APP_NAME)")
    records = []
    for path in sorted((out / FAILURES).glob("*.json")):
        try:
            record = FailureRecord.from_json(path.read_bytes(), f"failure record {path}")
        except ValueError as error:
            raise UserError(str(error)) from None
        records.append(record)
    return sorted(records, key=lambda record: record.time)


def failed_footer(out: Path) -> str:
    """What `cli.py failed --local-run` ends with: the next commands, those the run printed at its end."""
    recorded = recorded_commands(out) or {}
    again = recorded.get("run_again") or shlex.join(["python", "cli.py", "local", "JOBFILE", "--out", str(out),
                                                     ONLY_FAILED])
    logs = recorded.get("logs") or shlex.join(["python", "cli.py", "logs", "JOB_ID", "--local-run", str(out)])
    return f"the whole log of one: {logs}; once the cause is fixed, run them again: {again}"


def log_path(out: Path, job_id: str) -> Path:
    path = out / LOGS / f"{job_id}.log"
    if not path.is_file():
        raise UserError(f"{path}: no such log; job ids are the file names in {out / LOGS}")
    return path


def last_summary(out: Path) -> dict:
    """summary.json of the last finished run in `out` (in the folder set aside when a run died before its end)."""
    folder = aside(out) if aside(out).is_dir() else out
    path = folder / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{ONLY_FAILED}: no {path}: no local run finished in --out {out}; run without "
                        f"{ONLY_FAILED}") from None
    except ValueError as error:
        raise UserError(f"{path}: not JSON ({error})") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path}: expected a JSON object")
    return summary


def not_done(out: Path, jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(jobs to run again, jobs done by the runs in `out`): done are those the last run did or skipped as done,
    and those it kept from the runs before it."""
    summary = last_summary(out)
    done = {job_id for key in ("done", "skipped_as_already_done", KEPT) for job_id in summary.get(key) or ()
            if isinstance(job_id, str)}
    return [job for job in jobs if job.job_id not in done], [job for job in jobs if job.job_id in done]


def keep_earlier(previous: Path, out: Path, kept: list[Job]) -> int:
    """Copy the kept jobs' outputs (the files at their OUTPUT_PREFIX) and logs from the last run's folder into
    this run's `out`, never over a file this run wrote. Returns how many output files."""
    copied = 0
    for job in kept:
        for path in output_files(previous, job):
            copied += _copy_new(path, out / path.relative_to(previous))
        log = previous / LOGS / f"{job.job_id}.log"
        if log.is_file():
            _copy_new(log, out / LOGS / log.name)
    return copied


def _copy_new(source: Path, target: Path) -> bool:
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return True


def commands(again: tuple[str, ...], config: str, out: str) -> dict[str, str]:
    """The commands that triage this local run, as a user types them (summary.json "commands")."""
    where = ["--local-run", out, "--config", config]
    return {"failed": shlex.join(["python", "cli.py", "failed", *where]),
            "logs": shlex.join(["python", "cli.py", "logs", "JOB_ID", *where]),
            "run_again": shlex.join(again)}
