"""The worker's own lines in a job's log stream, which give an attempt its shape, and the rule that keeps a
command's output from passing for one of them.

An attempt is the lines from "received: " to its outcome line ("succeeded: ", "failed: ", "released: ",
"skipped: "), with "started: " before the command (worker/worker.py writes them; the run report and local mode's
results read them back). Both the "received: " line and the outcome line end with the attempt's worker
(WORKER_SIGNATURE): two attempts of one job can overlap in its stream (a released job is taken by another
worker at once; a message whose visibility ran out is received again while its first worker still runs), and
the signature closes the attempt its worker opened, whatever was written between.

A command that prints a line starting the same way (a tool reporting "failed: 2 tests", say) would end the
attempt early in those readings, so such an output line is written with OUTPUT_MARK in front
(worker/joblog.py): the stream still shows it, and no reader takes it for the worker's.
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
OTHER_WORKER_PREFIXES = (LONG_JOB_WARNING, NOT_EXTENDED_WARNING, OWN_MARKER_NOTE)
SHAPE_PREFIXES = (RECEIVED, STARTED) + tuple(OUTCOME_PREFIXES)
WORKER_PREFIXES = SHAPE_PREFIXES + OTHER_WORKER_PREFIXES
OUTPUT_MARK = "output: "
# How the worker's "received: " and outcome lines end: the machine and the worker process (its busy lease's id).
WORKER_SIGNATURE = "; machine {machine} worker {worker}"
_SIGNED = re.compile(r"; machine (\S+) worker (\S+)$")


def output_line(text: str) -> str:
    """A line of the command's output as the job's log stream holds it."""
    return OUTPUT_MARK + text if text.startswith(SHAPE_PREFIXES) else text


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
