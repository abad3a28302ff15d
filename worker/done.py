"""CHECK_IF_DONE: are a job's outputs complete in S3?

DS's counting rule (chalicelib/runfiles/outputs.py, which lists and counts) cannot tell complete outputs from a
worker killed half-way through its upload (879 files of 3,000 count as done when EXPECTED_NUMBER_FILES is 1). So a
worker marks every output it uploads with S3 user metadata and writes Hadoop's `_SUCCESS` marker after the last one
(worker/upload.py), and the rule becomes:

- `_SUCCESS` itself never counts toward EXPECTED_NUMBER_FILES;
- with the marker, the counting rule decides;
- without it, when the count is met, one counted object is read (HEAD): if this
  project wrote it, its job's upload never finished: not done. Otherwise the
  outputs were made by DS or by hand, which write no marker: done as DS counts.

Used by the worker before a job runs and by `submit --skip-done` before a job
is sent. Local mode's results call a job done by the marker alone (a job of the
run may write under another's prefix: localrun/results.py), and so do `failed` and the monitor for a dead-lettered
job (outputs.finished: they read no object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.aws.s3 import object_metadata
from chalicelib.model.names import OUTPUT_METADATA_KEY
from chalicelib.model.settings import Settings
from chalicelib.runfiles.outputs import Tally, tally_outputs

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client


def is_complete(s3: S3Client, settings: Settings, tally: Tally) -> bool:
    """The rule above, for a listing already tallied (the HEAD only when the count is met without a marker)."""
    if not tally.met(settings):
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
