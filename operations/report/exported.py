"""A finished run's job logs read back from the S3 export its teardown made, for when the log group is gone
(CloudWatch keeps it 60 days; the export stays as long as the bucket keeps it).

CloudWatch Logs writes an export as PREFIX/<task id>/<stream name>/000000.gz, 000001.gz, ...: gzip text, one
event per line, "2026-11-30T02:19:46.123Z message". A message holding line breaks continues on the lines that
follow without a timestamp. The stream name is the job id (worker/joblog.py) and may itself hold "/".
"""

from __future__ import annotations

import gzip
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.aws.s3 import list_objects

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

_PART = re.compile(r"(?P<stream>.+)/(?P<part>\d+)\.gz")
_STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)", re.S)
DOWNLOAD_THREADS = 32  # one object per job: a 10,000-job run's export is 10,000 small GETs


def read_exported_events(s3: S3Client, bucket: str, prefix: str) -> dict[str, list[tuple[float, str]]]:
    """Each stream's events (epoch seconds, message) from the export under `prefix`, oldest first, as
    data.read_log_events gives them from the log group; {} when nothing was exported there."""
    parts: dict[str, list[tuple[int, str]]] = {}
    base = prefix.rstrip("/") + "/"
    for item in list_objects(s3, bucket, base):
        task_and_rest = item.key[len(base):].split("/", 1)  # <task id>/<stream name>/<part>.gz
        found = _PART.fullmatch(task_and_rest[-1]) if len(task_and_rest) == 2 else None
        if found:
            parts.setdefault(found["stream"], []).append((int(found["part"]), item.key))

    def read(stream: str) -> tuple[str, list[tuple[float, str]]]:
        events: list[tuple[float, str]] = []
        for _, key in sorted(parts[stream]):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            events.extend(parse_export(gzip.decompress(body).decode("utf-8", errors="replace")))
        events.sort(key=lambda event: event[0])  # stable: lines with one timestamp keep their order
        return stream, events

    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        return dict(pool.map(read, sorted(parts)))


def parse_export(text: str) -> list[tuple[float, str]]:
    """One export file's events; a line without a timestamp continues the event before it."""
    events: list[tuple[float, str]] = []
    for line in text.splitlines():
        stamped = _STAMPED.fullmatch(line)
        if stamped:
            events.append((datetime.fromisoformat(stamped.group(1)).timestamp(), stamped.group(2)))
        elif events:
            events[-1] = (events[-1][0], events[-1][1] + "\n" + line)
    return events
