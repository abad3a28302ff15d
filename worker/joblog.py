"""One CloudWatch log stream per job, named after the job id.

DS users ask "which jobs failed, and where is their log": here the answer is
the stream LOG_GROUP_NAME/<job id>, holding every attempt's command line,
output, outcome and timings. watchtower (what DS uses) batches the lines on a
background thread and sends them with put_log_events every few seconds and at
close, never one call per line.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import watchtower
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import error_code
from chalicelib.aws import logs as aws_logs
from chalicelib.runfiles.failures import LAST_LINES, LINE_CHARS
from chalicelib.runfiles.joblines import output_line

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the worker image
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger("worker.joblog")

# CloudWatch rejects empty events; a blank output line is kept as one space.
_BLANK = " "


def ensure_log_group(logs: CloudWatchLogsClient, name: str) -> None:
    """setup creates the group; doing it here too keeps a bare worker (tests, local mode) working."""
    try:
        aws_logs.ensure_log_group(logs, name)
    except (BotoCoreError, ClientError) as error:  # any AWS trouble: warned, never fatal
        log.warning("could not create log group %s (%s); job logs may be lost", name, error_code(error) or error)


class JobLog:
    """Lines of one job attempt, sent to its stream; also echoed to the container log if asked."""

    def __init__(self, logs: CloudWatchLogsClient, group: str, job_id: str, flush_seconds: float = 5.0,
                 echo: logging.Logger | None = None, tail_lines: int = LAST_LINES):
        self.stream = job_id
        self.echo = echo
        # The last output lines, kept for a failure record (chalicelib/runfiles/failures.py): bounded, whatever the job
        # prints.
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._create_stream(logs, group)
        # watchtower would create the stream too, but only after a failed put (three calls instead of one).
        # send_interval: watchtower annotates an int, and adds it to time.time(): seconds as a float work as well
        self._handler = watchtower.CloudWatchLogHandler(
            log_group_name=group, log_stream_name=job_id, boto3_client=logs, create_log_group=False,
            send_interval=flush_seconds)  # type: ignore[arg-type]
        self._logger = logging.Logger(f"job.{job_id}")  # not registered: nothing else writes here
        self._logger.propagate = False
        self._logger.addHandler(self._handler)

    def _create_stream(self, logs: CloudWatchLogsClient, group: str) -> None:
        try:  # a retried job appends to its existing stream
            aws_logs.ensure_log_stream(logs, group, self.stream)
        except (BotoCoreError, ClientError) as error:
            log.warning("could not create log stream %s/%s (%s)", group, self.stream, error_code(error) or error)

    def output(self, line: str) -> None:
        """A line of the command's output."""
        text = line.rstrip("\r\n") or _BLANK
        self._tail.append(text[:LINE_CHARS])
        self._logger.info(output_line(text))  # never taken for one of the worker's own lines

    @property
    def tail(self) -> tuple[str, ...]:
        """The command's last output lines, oldest first."""
        return tuple(self._tail)

    def event(self, text: str) -> None:
        """A line of the worker's own (started, succeeded, failed, ...), in the container log too."""
        self._logger.info(text)
        if self.echo is not None:
            self.echo.info("[%s] %s", self.stream, text)

    def close(self) -> None:
        started = time.monotonic()
        self._handler.close()  # type: ignore[no-untyped-call]  # watchtower leaves close() unannotated
        log.debug("job log %s flushed in %.3f s", self.stream, time.monotonic() - started)

