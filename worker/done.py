"""CHECK_IF_DONE: are a job's outputs complete in S3?

DS's counting rule, as DS meant it: count the objects under the job's output
prefix (in DESTINATION_BUCKET) that are at least MIN_FILE_SIZE_BYTES and whose key contains
NECESSARY_STRING; the job is done when the count reaches EXPECTED_NUMBER_FILES.
Unlike DS, every page of the listing is read (DS stops at 1,000 keys) and the
string is compared with the key (DS compares it with the size and crashes).

A count cannot tell complete outputs from a worker killed half-way through its
upload (879 files of 3,000 count as done when EXPECTED_NUMBER_FILES is 1). So a
worker marks every output it uploads with S3 user metadata and writes Hadoop's
`_SUCCESS` marker after the last one (worker/upload.py), and the rule becomes:

- `_SUCCESS` itself never counts toward EXPECTED_NUMBER_FILES;
- with the marker, the counting rule decides;
- without it, when the count is met, one counted object is read (HEAD): if this
  project wrote it, its job's upload never finished: not done. Otherwise the
  outputs were made by DS or by hand, which write no marker: done as DS counts.

Used by the worker before a job runs and by `submit --skip-done` before a job
is sent. Local mode's results call a job done by the marker alone (a job of the
run may write under another's prefix: localrun/results.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.aws.s3 import Listed, list_objects, object_metadata
from chalicelib.model.names import OUTPUT_METADATA_KEY, success_marker_key
from chalicelib.model.settings import Settings

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client


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

    def add(self, item: Listed, settings: Settings) -> None:
        if item.key == self.marker_key:
            self.marked = True
        elif counts_toward_done(item, settings):
            self.counted += 1
            if self.sample_key is None:
                self.sample_key = item.key


def counts_toward_done(item: Listed, settings: Settings) -> bool:
    """One listed object against DS's rule."""
    return item.size >= settings.MIN_FILE_SIZE_BYTES and settings.NECESSARY_STRING in item.key


def tally_outputs(s3: S3Client, settings: Settings, output_prefix: str) -> Tally:
    """Every page of the listing, unless both answers (count and marker) are in before the end."""
    tally = Tally.for_prefix(output_prefix)
    for item in list_objects(s3, settings.DESTINATION_BUCKET, output_prefix + "/"):
        tally.add(item, settings)
        if tally.marked and tally.counted >= settings.EXPECTED_NUMBER_FILES:
            break
    return tally


def is_complete(s3: S3Client, settings: Settings, tally: Tally) -> bool:
    """The rule above, for a listing already tallied (the HEAD only when the count is met without a marker)."""
    if tally.counted < settings.EXPECTED_NUMBER_FILES:
        return False
    if tally.marked:
        return True
    # EXPECTED_NUMBER_FILES is at least 1, so a count that meets it kept a sample key
    return tally.sample_key is not None and not _unfinished_upload(s3, settings.DESTINATION_BUCKET, tally.sample_key)


def is_done(s3: S3Client, settings: Settings, output_prefix: str) -> bool:
    return is_complete(s3, settings, tally_outputs(s3, settings, output_prefix))


def _unfinished_upload(s3: S3Client, bucket: str, key: str) -> bool:
    """True when `key` was uploaded by a worker (no marker came after it), or vanished since the listing (outputs
    changing under us are no finished set either)."""
    metadata = object_metadata(s3, bucket, key)
    return metadata is None or OUTPUT_METADATA_KEY in metadata
