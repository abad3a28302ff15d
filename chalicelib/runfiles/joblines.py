"""The worker's own lines in a job's log stream, which give an attempt its shape, and the rule that keeps a
command's output from passing for one of them.

An attempt is the lines from "received: " to its outcome line ("succeeded: ", "failed: ", "released: ",
"skipped: "), with "started: " before the command (worker/worker.py writes them; the run report and local mode's
results read them back). Both the "received: " line and the outcome line end with the attempt's worker
(WORKER_SIGNATURE): two attempts of one job can overlap in its stream (a released job is taken by another
worker at once; a message whose visibility ran out is received again while its first worker still runs), and
the signature closes the attempt its worker opened, whatever was written between. Between "received: " and
"started: ", an "inputs: " line says how many input files the attempt downloaded, and from where.

A command that prints a line starting the same way (a tool reporting "failed: 2 tests", say) would end the
attempt early in those readings (or, "inputs: ", be left out of a failure's last line), so such an output line
is written with OUTPUT_MARK in front (worker/joblog.py): the stream still shows it, and no reader takes it for
the worker's.
"""

from __future__ import annotations

import re

RECEIVED, STARTED = "received: ", "started: "
SUCCEEDED, FAILED, RELEASED, SKIPPED = "succeeded", "failed", "released", "skipped"
OUTCOME_PREFIXES = {f"{outcome}: ": outcome for outcome in (SUCCEEDED, FAILED, RELEASED, SKIPPED)}
SKIPPED_AS_DONE = "skipped: already done"
# What else the worker writes in a job's stream, by how each line starts (worker/heartbeat.py's warnings, a note
# on the command's own _SUCCESS): not the attempt's shape, only kept out of a failure's "last line". Whole
# phrases, so that a command's own "warning: ..." still counts as its output.
LONG_JOB_WARNING = "warning: this job has run "
NOT_EXTENDED_WARNING = "warning: could not extend the message's visibility "
OWN_MARKER_NOTE = "note: the command's own "
# Before "started: ", what the attempt downloaded: a job whose command found nothing to read says so in its own
# log. Not a whole phrase, so a command's output starting the same way is marked like a shape line's.
INPUTS = "inputs: "
INPUTS_LINE = INPUTS + "{files} files from {where}"
NO_INPUT_PREFIX_LINE = INPUTS + "none (INPUT_PREFIX is not set)"
OTHER_WORKER_PREFIXES = (LONG_JOB_WARNING, NOT_EXTENDED_WARNING, OWN_MARKER_NOTE, INPUTS)
SHAPE_PREFIXES = (RECEIVED, STARTED, *OUTCOME_PREFIXES)
WORKER_PREFIXES = SHAPE_PREFIXES + OTHER_WORKER_PREFIXES
_MARKED_PREFIXES = (*SHAPE_PREFIXES, INPUTS)
OUTPUT_MARK = "output: "
# How the worker's "received: " and outcome lines end: the machine and the worker process (its busy lease's id).
WORKER_SIGNATURE = "; machine {machine} worker {worker}"
_SIGNED = re.compile(r"; machine (\S+) worker (\S+)$")


def output_line(text: str) -> str:
    """A line of the command's output as the job's log stream holds it."""
    return OUTPUT_MARK + text if text.startswith(_MARKED_PREFIXES) else text


def outcome_of(line: str) -> str | None:
    """The outcome a worker's line gives its attempt, or None."""
    return next((outcome for prefix, outcome in OUTCOME_PREFIXES.items() if line.startswith(prefix)), None)


def signed_by(line: str) -> tuple[str | None, str | None, str]:
    """(machine, worker, the line without its signature); (None, None, line) for a line written before the
    worker signed its outcome lines."""
    found = _SIGNED.search(line)
    if found is None:
        return None, None, line
    return found.group(1), found.group(2), line[:found.start()]


# What an attempt's command used, in its outcome line after what happened and before what comes next ("; peak
# memory 512 MiB, cpu 3.10 s; it will be retried in 10 s"; worker/attempt_usage.py measures it): the command's
# own peak resident memory ("at most" when it is a bound: the command stayed within the worker's own size) and CPU
# time (its process tree's largest process, from wait4), and, in a container with a memory limit, the
# container's peak and limit. Lines written before these figures were logged (and DS's) have none: a reader takes
# them as unknown.
USAGE = "peak memory {at_most}{peak:.0f} MiB, cpu {cpu:.2f} s"
AT_MOST = "at most "
CONTAINER_USAGE = ", container peak {peak:.0f} of {limit:.0f} MiB"
_USAGE = re.compile(r"(?:^|; )peak memory (?:at most )?(\d+(?:\.\d+)?) MiB, cpu (\d+(?:\.\d+)?) s"
                    r"(?:, container peak (\d+(?:\.\d+)?) of (\d+(?:\.\d+)?) MiB)?(?=;|$)")
# How an attempt the kernel's OOM killer ended starts its reason (the outcome line, the failure record): a kill
# -9 that is not the OOM killer's keeps "exit code -9".
OUT_OF_MEMORY = "out of memory: "
_OUT_OF_MEMORY = "out of memory: peak {peak:.0f} MiB, limit {limit:.0f} MiB (MEMORY)"
_OOM_LIMIT = re.compile(r"out of memory: peak \d+ MiB, limit (\d+) MiB")


def usage_text(peak_mib: float, cpu_seconds: float, container_peak_mib: float | None = None,
               container_limit_mib: float | None = None, at_most: bool = False) -> str:
    text = USAGE.format(peak=peak_mib, cpu=cpu_seconds, at_most=AT_MOST if at_most else "")
    if container_peak_mib is not None and container_limit_mib is not None:
        text += CONTAINER_USAGE.format(peak=container_peak_mib, limit=container_limit_mib)
    return text


def out_of_memory_text(peak_mib: float, limit_mib: float) -> str:
    return _OUT_OF_MEMORY.format(peak=peak_mib, limit=limit_mib)


def usage_of(text: str) -> tuple[float, float, float | None, float | None] | None:
    """(peak MiB, cpu seconds, container peak MiB or None, container limit MiB or None) an outcome line's text
    gives, or None for a line without them (written before they were logged, or no command ran). A peak "at most"
    reads as its bound: for sizing MEMORY, that is on the safe side."""
    # the last: the worker writes its figures after the reason's own text (an error's, say)
    found = next(reversed(list(_USAGE.finditer(text))), None)
    if found is None:
        return None
    peak, cpu, container_peak, container_limit = found.groups()
    return (float(peak), float(cpu), float(container_peak) if container_peak is not None else None,
            float(container_limit) if container_limit is not None else None)


def out_of_memory_cause(reason: str) -> str | None:
    """A failed attempt's cause when the OOM killer ended it, the same for every job at one limit, else None."""
    found = _OOM_LIMIT.match(reason)
    return f"out of memory at the limit of {found.group(1)} MiB (MEMORY)" if found else None
