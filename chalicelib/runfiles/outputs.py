"""A job's outputs as the worker leaves them, counted: what the worker (CHECK_IF_DONE), `submit --skip-done`, local
mode, `cli.py failed` and the monitor all read to tell a done job.

DS's counting rule, as DS meant it: count the objects under the job's output prefix (in DESTINATION_BUCKET) that are
at least MIN_FILE_SIZE_BYTES and whose key contains NECESSARY_STRING; the count is met at EXPECTED_NUMBER_FILES.
Unlike DS, every page of the listing is read (DS stops at 1,000 keys) and the string is compared with the key (DS
compares it with the size and crashes). This project's worker writes Hadoop's `_SUCCESS` marker after its last
output (worker/upload.py); the marker never counts itself. What a count with or without the marker means is the
reader's rule: worker/done.py's for the worker, `finished` below for the readers that cannot read an object's
metadata (the monitor may list the outputs, never read them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chalicelib.aws.s3 import Listed, list_objects
from chalicelib.model.names import success_marker_key

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client


class CountRule(Protocol):
    """The four settings DS's counting rule reads: a run's Settings, or what its run record keeps of them."""

    @property
    def DESTINATION_BUCKET(self) -> str: ...  # the settings' own names, upper case

    @property
    def EXPECTED_NUMBER_FILES(self) -> int: ...

    @property
    def MIN_FILE_SIZE_BYTES(self) -> int: ...

    @property
    def NECESSARY_STRING(self) -> str: ...


@dataclass
class Tally:
    """What one job's listed objects say: how many count, whether the marker is there, one counted key."""

    marker_key: str
    counted: int = 0
    marked: bool = False
    sample_key: str | None = None

    @classmethod
    def for_prefix(cls, output_prefix: str) -> Tally:
        return cls(success_marker_key(output_prefix))

    def add(self, item: Listed, rule: CountRule) -> None:
        if item.key == self.marker_key:
            self.marked = True
        elif counts_toward_done(item, rule):
            self.counted += 1
            if self.sample_key is None:
                self.sample_key = item.key

    def met(self, rule: CountRule) -> bool:
        return self.counted >= rule.EXPECTED_NUMBER_FILES


def counts_toward_done(item: Listed, rule: CountRule) -> bool:
    """One listed object against DS's rule."""
    return item.size >= rule.MIN_FILE_SIZE_BYTES and rule.NECESSARY_STRING in item.key


def tally_outputs(s3: S3Client, rule: CountRule, output_prefix: str, marker: bool = True) -> Tally:
    """Every page of the listing, unless the answers wanted (the count met, and with `marker` the marker seen) are in
    before the end."""
    tally = Tally.for_prefix(output_prefix)
    for item in list_objects(s3, rule.DESTINATION_BUCKET, output_prefix + "/"):
        tally.add(item, rule)
        if tally.met(rule) and (tally.marked or not marker):
            break
    return tally


def finished(s3: S3Client, rule: CountRule, output_prefix: str, marker: bool) -> bool:
    """A job's outputs complete, from their listing alone: the count met and, with `marker` (this project's worker
    ran the job), its `_SUCCESS` marker there; without (a DS image's own worker ran it, which writes none), the count
    alone, DS's rule. One listing, no object read."""
    tally = tally_outputs(s3, rule, output_prefix, marker)
    return tally.met(rule) and (tally.marked or not marker)
