"""What the worker knows of its machine, without the instance metadata service.

The launch template's hop limit of 1 keeps the metadata service's answers from
reaching any container, so the instance role's credentials stay on the host. The
machine's boot script asks it instead and leaves the instance id in a file the
task definition mounts read-only (operations/start/cluster.py, operations/setup/resources.py).
Spot interruptions need no watch either: ECS's spot draining stops the task, and
the supervisor gets SIGTERM.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("worker.host")

INSTANCE_ID = re.compile(r"i-[0-9a-f]{1,32}")


def read_instance_id(path: str) -> str | None:
    """The instance id in `path`, or None (off EC2, or the file is missing or not an instance id)."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read(64).strip()
    except OSError as error:
        log.warning("no instance id (%s: %s); this machine's jobs and busy leases name it 'unknown'", path,
                    error.strerror or error)
        return None
    if not INSTANCE_ID.fullmatch(text):
        log.warning("no instance id: %s holds %r, not an instance id; this machine's jobs and busy leases name it "
                    "'unknown'", path, text[:40])
        return None
    return text
