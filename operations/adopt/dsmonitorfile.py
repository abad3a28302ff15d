"""The monitor file Distributed-Something's and Distributed-CellProfiler's run.py write when a run starts
(files/APP_NAMESpotFleetRequestId.json), read as each version of them writes it: what `monitor FILE` adopts.

run.py writes the file line by line, not with a JSON writer, and the versions differ:
- DS from 9a7788b (2023-03-14, "create auto-monitor") to its main today (d1d6e62), and DCP from 0295eb5 to
  f99af21 (2023): an object of seven keys closed by `}`, then the line `"CLEAN_DASHBOARD" : "False"}` after it.
  That line is read as what it was meant to be, the object's last member, and nothing else after the object is.
- DCP from f57acdc (2023-06-15) to its main today: one object of the eight keys.
- DS before 9a7788b and DCP before 0295eb5: one object of the seven keys, without CLEAN_DASHBOARD; the dashboard
  is then kept, as run.py's default CLEAN_DASHBOARD = 'False' does.
DCP's f99af21 wrote no comma before CLEAN_DASHBOARD for three weeks of 2023: that file is not JSON and refused.
The queue is a name (MONITOR_QUEUE_NAME): adopt.py finds its URL. Otherwise nothing is taken that run.py does
not write: jsonfile.py's strict rules, only these keys, each value a string (run.py quotes every one), and a
file of at most MAX_BYTES.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.model.errors import UserError
from chalicelib.model.jsonfile import NotStrictJSON, loads_strict, read_file_bytes
from chalicelib.monitor.runrecord import RunRecord

MAX_BYTES = 64 * 1024  # run.py's file is some 350 bytes
REQUIRED_KEYS = ("MONITOR_FLEET_ID", "MONITOR_APP_NAME", "MONITOR_ECS_CLUSTER", "MONITOR_QUEUE_NAME",
                 "MONITOR_BUCKET_NAME", "MONITOR_LOG_GROUP_NAME", "MONITOR_START_TIME")
KEYS = (*REQUIRED_KEYS, "CLEAN_DASHBOARD")
# Keys only this project's run records have: a file holding one is ours, and the run record's error stands
_RECORD_ONLY_KEYS = frozenset(item.name for item in dataclasses.fields(RunRecord)) - set(KEYS)
_NEITHER = ("neither a run record of this project nor a monitor file of Distributed-Something or "
            "Distributed-CellProfiler")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")  # SQS's rule for a standard queue's name
# run.py writes request_spot_fleet's SpotFleetRequestId: sfr- and a UUID on AWS (moto's are 17 hex digits)
_SPOT_FLEET_ID = re.compile(r"sfr-[0-9a-f-]{1,36}")
_MAX_START_DIGITS = 20


@dataclass(frozen=True)
class DSMonitorFile:
    """The file's keys, as run.py means them."""

    MONITOR_FLEET_ID: str
    MONITOR_APP_NAME: str
    MONITOR_ECS_CLUSTER: str
    MONITOR_QUEUE_NAME: str
    MONITOR_BUCKET_NAME: str
    MONITOR_LOG_GROUP_NAME: str
    MONITOR_START_TIME: int  # milliseconds since 1970
    CLEAN_DASHBOARD: bool


def read(path: str | Path) -> DSMonitorFile | None:
    """DS's or DCP's monitor file; None when it is one of this project's run records (it has keys only those
    have), so that the run record's own error stands. UserError, one line, for any other file."""
    document = _document(path, _text(path))
    if not isinstance(document, dict):
        raise UserError(f"{path}: {_NEITHER}: expected a JSON object")
    unknown = [key for key in document if key not in KEYS]
    if unknown and _RECORD_ONLY_KEYS & set(document):
        return None
    if unknown:
        shown = ", ".join(repr(key[:40]) for key in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise UserError(f"{path}: {_NEITHER}: unexpected key(s) {shown}; expected the keys {', '.join(KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise UserError(f"{path}: not a complete Distributed-Something monitor file: missing key(s) "
                        f"{', '.join(missing)}")
    values: dict[str, str] = {}
    for key, value in document.items():
        if not isinstance(value, str):
            raise UserError(f"{path}: {key}: expected a string (run.py writes each value in quotes), got "
                            f"{json.dumps(value)[:40]}")
        values[key] = value
    if not _SPOT_FLEET_ID.fullmatch(values["MONITOR_FLEET_ID"]):
        raise UserError(f"{path}: MONITOR_FLEET_ID: expected a spot fleet request id (sfr-...), got "
                        f"{values['MONITOR_FLEET_ID'][:40]!r}")
    start_time = _start_time(path, values["MONITOR_START_TIME"])
    queue_name = _queue_name(path, values["MONITOR_QUEUE_NAME"])
    clean_dashboard = _flag(path, values.get("CLEAN_DASHBOARD", "False"))
    return DSMonitorFile(MONITOR_FLEET_ID=values["MONITOR_FLEET_ID"], MONITOR_APP_NAME=values["MONITOR_APP_NAME"],
                         MONITOR_ECS_CLUSTER=values["MONITOR_ECS_CLUSTER"], MONITOR_QUEUE_NAME=queue_name,
                         MONITOR_BUCKET_NAME=values["MONITOR_BUCKET_NAME"],
                         MONITOR_LOG_GROUP_NAME=values["MONITOR_LOG_GROUP_NAME"], MONITOR_START_TIME=start_time,
                         CLEAN_DASHBOARD=clean_dashboard)


def _text(path: str | Path) -> str:
    raw = read_file_bytes(path, UserError, MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise UserError(f"{path}: {_NEITHER}: expected at most {MAX_BYTES // 1024} KiB, the file is larger")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: expected UTF-8 JSON text") from None


def _document(path: str | Path, text: str) -> Any:
    """The JSON document, DS's line after the object joined to it as its last member."""
    try:
        return loads_strict(text)
    except json.JSONDecodeError as problem:
        if problem.msg != "Extra data":
            raise UserError(f"{path}: invalid JSON at line {problem.lineno} column {problem.colno}: "
                            f"{problem.msg}") from None
        where = f"{path}: invalid JSON at line {problem.lineno} column {problem.colno}"
        head, tail = text[:problem.pos], text[problem.pos:]
    except NotStrictJSON as problem:
        raise UserError(f"{path}: {problem}") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None
    try:
        document, member = loads_strict(head), loads_strict("{" + tail)
    except (ValueError, RecursionError):
        document = member = None
    if not (isinstance(document, dict) and isinstance(member, dict) and set(member) == {"CLEAN_DASHBOARD"}
            and "CLEAN_DASHBOARD" not in document):
        raise UserError(f"{where}: text after the JSON object (the only line DS's run.py writes after it is "
                        '"CLEAN_DASHBOARD" : "True"} or "False"})')
    return {**document, **member}


def _start_time(path: str | Path, text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_START_DIGITS):
        raise UserError(f"{path}: MONITOR_START_TIME: expected milliseconds since 1970, got {text[:40]!r}")
    return int(text)


def _queue_name(path: str | Path, name: str) -> str:
    if not _QUEUE_NAME.fullmatch(name):
        raise UserError(f"{path}: MONITOR_QUEUE_NAME: expected a queue name (SQS_QUEUE_NAME: 1 to 80 letters, "
                        f"digits, - or _), got {name[:40]!r}")
    return name


def _flag(path: str | Path, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise UserError(f"{path}: CLEAN_DASHBOARD: expected 'True' or 'False', got {text[:40]!r}")
    return text.lower() == "true"
