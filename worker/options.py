"""The worker's runtime knobs: how it polls and waits, not what it runs.

What to run comes from the run's settings (config keys, in DSR_CONFIG). These
are properties of where the worker runs (its machine) or of how
patient it is, so they are environment variables, all prefixed DSR_. Tests and
local mode shrink the waits here instead of the code sleeping less.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from chalicelib.model import names
from chalicelib.model.errors import ConfigError


@dataclass(frozen=True)
class WorkerOptions:
    # The file holding this machine's instance id: the machine's boot script writes it, the task definition mounts
    # it read-only (chalicelib/model/names.py). Containers cannot reach the instance metadata service; nothing here
    # asks it.
    instance_id_file: str = f"{names.CONTAINER_HOST_DIR}/{names.INSTANCE_ID_FILE}"
    # SQS long poll, in seconds (0 to 20). 20 s is the cheapest; tests use 1 s.
    wait_seconds: int = 20
    # Seconds a failed job stays hidden before its next attempt (DS: 60 s).
    retry_delay_seconds: int = 60
    # Seconds between visibility extensions; None: a third of the visibility timeout.
    heartbeat_seconds: float | None = None
    # Seconds a stopped command gets between SIGTERM and SIGKILL (ECS waits 30 s, spot 120 s).
    stop_grace_seconds: float = 10.0
    # Seconds between resource lines (disk, inodes, memory, CPU) in the container log.
    resources_seconds: float = 30.0
    # Seconds between sends of a running job's buffered log lines to CloudWatch.
    log_flush_seconds: float = 5.0
    # Folder holding each job's temporary folder; None: the system's temp folder.
    work_dir: str | None = None
    # The EC2 instance this worker runs on (the supervisor reads it from instance_id_file); names the
    # worker's busy lease, which tells the monitor this machine runs a job (chalicelib/runfiles/leases.py).
    instance_id: str | None = None
    # The supervisor's number for this worker process (1 to DOCKER_CORES): a worker started in place of one
    # that died keeps it, so its busy lease and its row in the run report are the dead one's. None: its pid.
    worker_slot: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> WorkerOptions:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = "DSR_" + field.name.upper()
            if name not in environ:
                continue
            text = environ[name]
            values[field.name] = _parse(name, text, field.default)
        return cls(**values)


_TEXT_FIELDS = {"DSR_INSTANCE_ID_FILE", "DSR_WORK_DIR", "DSR_INSTANCE_ID", "DSR_WORKER_SLOT"}
_LIMITS = {"DSR_WAIT_SECONDS": 20, "DSR_RETRY_DELAY_SECONDS": 43200}  # SQS's own limits


def _parse(name: str, text: str, default: object) -> str | float | None:
    if name in _TEXT_FIELDS:
        return text if name == "DSR_INSTANCE_ID_FILE" else (text or None)
    if text == "" and default is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"environment: {name}: expected a number, got {text!r}") from None
    high = _LIMITS.get(name)
    if not value >= 0 or (high is not None and value > high):
        expected = f"from 0 to {high}" if high is not None else ">= 0"
        raise ConfigError(f"environment: {name}: expected a number {expected}, got {text!r}")
    if isinstance(default, int):
        if value != int(value):
            raise ConfigError(f"environment: {name}: expected a whole number of seconds, got {text!r}")
        return int(value)
    return value

