"""Everything local mode checks before it starts anything, and how a run's COMMAND runs on this machine.

Every mistake here is a UserError (one line, exit 2) raised before the embedded
server, a file or a process exists.

COMMAND in local mode: the worker runs each job's command in a temporary folder
on this machine, not in a container, so two things are adapted (on a copy of
the settings; the config file is not changed):
- a leading "python" or "python3" becomes this Python (the one running cli.py);
- an argument naming an existing file relative to the config file's folder
  becomes its absolute path (examples/config.json says "measure.py").
An argument that looks like a script (an interpreter's first argument, or a
script's file extension) and names no file there is refused: the job would run
in its temporary folder, where no such file is, and every job would fail.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from chalicelib.model.errors import UserError
from chalicelib.model.jobs import Job, load_job_file
from chalicelib.model.settings import Settings
from localrun import triage
from localrun.embedded import ensure_local
from operations.start.fleet import FleetFile, load_fleet_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FLEET = REPO / "examples" / "fleet.json"
OUT_MARKER = ".dsr-local-run"  # marks a folder local mode made, so a re-run may empty it
PYTHON_NAMES = ("python", "python3")
# Programs whose first argument that is not an option is the script they run.
INTERPRETERS = (*PYTHON_NAMES, "bash", "sh", "zsh", "Rscript", "perl", "ruby", "node", "julia")
INLINE_OPTIONS = frozenset(("-m", "-c", "-e"))  # the program runs a module or inline code, not a script file
# Endings only a script has: an output's name ("result.csv") may well not exist before the job.
SCRIPT_SUFFIXES = frozenset((".py", ".sh", ".bash", ".r", ".pl", ".rb", ".js", ".jl", ".m", ".ipynb"))


@dataclass(frozen=True)
class LocalRun:
    """A checked local run: what to run, where the results go."""

    settings: Settings  # COMMAND adapted to this machine
    jobs: list[Job]
    fleet: FleetFile  # as the user wrote it; rewritten for the emulated account later
    inputs: Path | None
    out: Path
    workers: int
    interrupt_rate: float
    command_changes: tuple[str, ...]
    endpoint: str | None = None  # an emulator already running on this machine; None: start moto here
    seed: int | None = None  # of the spot notices' random draws; None: different every run
    only_failed: bool = False  # run only the jobs the runs in `out` have not done (local mode's redrive)
    kept: tuple[Job, ...] = ()  # with only_failed: the jobs done before, whose outputs and logs stay in `out`
    again: tuple[str, ...] = ()  # the command that runs this run's failed and not-run jobs again, as typed


def prepare(settings: Settings, jobfile: str, fleetfile: str | None, inputs: str | None, out: str | None,
            workers: int | None, interrupt_rate: float, endpoint: str | None = None,
            seed: int | None = None, only_failed: bool = False) -> LocalRun:
    if endpoint is not None:
        ensure_local(endpoint)
    jobs = load_job_file(jobfile, settings)
    if not jobs:
        raise UserError(f"{jobfile}: groups: no jobs to run")
    fleet = load_fleet_file(fleetfile or DEFAULT_FLEET)
    inputs_dir = _inputs(inputs)
    local_settings, changes = localize_command(settings)
    out_dir = Path(out) if out else triage.default_out(settings.APP_NAME)
    _check_out(out_dir)
    if workers is not None and workers < 1:
        raise UserError(f"--workers: expected 1 or more, got {workers}")
    kept: list[Job] = []
    if only_failed:
        jobs, kept = triage.not_done(out_dir, jobs)
    again = ("python", "cli.py", "local", jobfile, "--config", settings.source, "--out", str(out_dir),
             *(("--fleet", fleetfile) if fleetfile else ()), *(("--inputs", inputs) if inputs else ()),
             triage.ONLY_FAILED)
    return LocalRun(local_settings, jobs, fleet, inputs_dir, out_dir, workers or os.cpu_count() or 1,
                    interrupt_rate, changes, endpoint, seed, only_failed, tuple(kept), again)


def _inputs(inputs: str | None) -> Path | None:
    if inputs is None:
        return None
    path = Path(inputs)
    if not path.is_dir():
        raise UserError(f"--inputs {inputs}: no such folder")
    if not path.resolve().name:
        raise UserError(f"--inputs {inputs}: the folder needs a name (it becomes the S3 prefix)")
    return path


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / OUT_MARKER).exists():
        raise UserError(f"--out {out}: folder is not empty and was not made by local mode; choose another "
                        "(a local-mode folder is emptied on the next run)")


def localize_command(settings: Settings) -> tuple[Settings, tuple[str, ...]]:
    """COMMAND as it runs on this machine, and one line per change for the output."""
    if settings.ds_image_mode:
        raise UserError(f"{settings.source}: COMMAND is null (DS image mode: your image's own worker runs the jobs); "
                        "local mode runs COMMAND on this machine: give COMMAND, or rehearse with "
                        "'python cli.py emulator' and your image")
    folder = Path(settings.source).resolve().parent
    argv, changes = list(settings.COMMAND), []
    if argv[0] in PYTHON_NAMES:
        argv[0] = sys.executable
        changes.append(f"{settings.COMMAND[0]} -> {sys.executable}")
    for index, arg in enumerate(argv):
        if "{" in arg or os.path.isabs(arg) or not arg:
            continue
        candidate = folder / arg
        if candidate.is_file():
            argv[index] = str(candidate)
            changes.append(f"{arg} -> {candidate}")
        elif index > 0 and _looks_like_a_script(settings.COMMAND, index):
            raise UserError(f"{settings.source}: COMMAND: script {arg!r} not found: looked for {candidate} "
                            "(local mode runs each job in a temporary folder; a relative path is taken from the "
                            "config file's folder)")
    program = argv[0]
    if "{" not in program and not (os.path.isfile(program) or shutil.which(program)):
        raise UserError(f"{settings.source}: COMMAND: program {program!r} not found on this machine "
                        "(local mode runs COMMAND here, not in the Docker image)")
    return dataclasses.replace(settings, COMMAND=tuple(argv), AWS_PROFILE=None), tuple(changes)


def _looks_like_a_script(command: tuple[str, ...], index: int) -> bool:
    """Whether COMMAND's argument at index (not a template, not absolute) names a script rather than a value."""
    arg = command[index]
    if arg.startswith("-") or "://" in arg:
        return False
    if Path(arg).suffix.lower() in SCRIPT_SUFFIXES:
        return True
    # "bash scripts/run": a path (a slash or an extension: "python -X dev" has an option's value there) as the
    # interpreter's first argument that is not an option ("-m"/"-c"/"-e": a module or inline code, no script)
    program, earlier = Path(command[0]).name, command[1:index]
    return (("/" in arg or bool(Path(arg).suffix)) and program in INTERPRETERS
            and all(option.startswith("-") for option in earlier) and not set(earlier) & INLINE_OPTIONS)


def reset_out(out: Path) -> None:
    """Empty a folder a previous local run made (checked in prepare), and mark it as ours."""
    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / OUT_MARKER).write_text("made by 'python cli.py local'; emptied by the next run\n")
