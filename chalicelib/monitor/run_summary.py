"""The run summary the monitor writes at teardown (monitors/finished/APP_NAME_summary.json) and what reads it back.

plan.summary computes it; every reader (the status API and `cli.py status`, `cli.py report`, local mode's
results) finds it with `find`, which also looks where earlier versions wrote it (monitors/APP_NAME_summary.json),
and takes it through `parse`, which holds it to this declaration. Only the user and the monitor write under
monitors/, but a bucket is shared: a summary that is not one is reported as unreadable, never met later as a
KeyError or a TypeError.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from chalicelib.aws.s3 import read_object
from chalicelib.model import schema
from chalicelib.model.names import earlier_summary_key, summary_key
from chalicelib.model.schema import bounds
from chalicelib.monitor.series import SERIES_BOUNDS, SeriesPoint

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

# Far above what the fields' bounds allow (a series of series.LIMIT points is about 25 KB; a run exports two log
# groups).
MAX_SUMMARY_BYTES = 1_048_576
_AT_LEAST_0 = bounds(minimum=0)
_EPOCH_SECONDS = bounds(minimum=0, maximum=schema.LAST_EPOCH_SECOND)  # status shows them as dates


@dataclass(frozen=True)
class RunSummary:
    app_name: str = field(metadata=bounds(max_length=255))
    stop_reason: str = field(metadata=bounds(max_length=8_192))  # as MonitorState.stop_reason
    started_at: float = field(metadata=_EPOCH_SECONDS)
    ended_at: float = field(metadata=_EPOCH_SECONDS)
    jobs_submitted: int = field(metadata=_AT_LEAST_0)
    jobs_done: int = field(metadata=_AT_LEAST_0)
    jobs_failed: int = field(metadata=_AT_LEAST_0)
    jobs_left: int = field(metadata=_AT_LEAST_0)
    machine_hours: float = field(metadata=_AT_LEAST_0)
    cost_ceiling_usd: float = field(metadata=_AT_LEAST_0)
    # log group -> "done", "failed", ... (absent from summaries written before logs were exported)
    log_exports: dict[str, str] | None = field(default=None,
                                               metadata=bounds(max_items=1_000, item=bounds(max_length=512)))
    exported_logs: str | None = field(default=None, metadata=bounds(max_length=2_048))  # s3://bucket/prefix
    series: list[SeriesPoint] | None = field(default=None, metadata=SERIES_BOUNDS)  # absent before the series
    # False: jobs_failed may miss dead-lettered jobs (plan.EXACT_FAILED_WAIT_SECONDS); absent before it was written
    jobs_failed_exact: bool | None = None


def parse(text: str | bytes, document: str = "run summary") -> dict[str, Any]:
    """The summary's fields, in the order plan.summary writes them; one an older summary lacks stays absent, as
    its readers expect (the monitor never writes null), and a key this version does not know is dropped. Raises
    schema.SchemaError (a ValueError) naming `document` and the field."""
    summary = schema.read(RunSummary, text, document, MAX_SUMMARY_BYTES)
    values = ((item.name, getattr(summary, item.name)) for item in fields(RunSummary))
    return {name: value for name, value in values if value is not None}


@dataclass(frozen=True)
class Stored:
    """A run's summary as it was read: its place (s3://bucket/key, for messages) and its bytes."""

    url: str
    body: bytes

    def parse(self) -> dict[str, Any]:
        return parse(self.body, self.url)


def find(s3: S3Client, bucket: str, app_name: str) -> Stored | None:
    """The run's summary, or None when it has none (not finished, or never run): where this version writes it,
    else where earlier versions did (nothing moves those: they stay where their users were told they are).
    Raises aws.ObjectTooLarge (a ValueError, as `parse`'s errors are) for one over MAX_SUMMARY_BYTES."""
    for key in (summary_key(app_name), earlier_summary_key(app_name)):
        body = read_object(s3, bucket, key, max_bytes=MAX_SUMMARY_BYTES)
        if body is not None:
            return Stored(f"s3://{bucket}/{key}", body)
    return None
