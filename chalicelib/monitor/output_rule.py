"""When a dead-lettered job is done after all: its outputs' place and count rule, kept in the run record.

A worker killed after its upload and before its delete, on the job's last receive, leaves the job done and its
message dead-lettered with no failure record (chaos seed 61; DS's monitor counts it failed too). `cli.py failed`,
`redrive`, the status API and the run's summaries leave such a job out by one rule, so they agree: its outputs,
listed, meet the count (runfiles/outputs.finished), with this project's `_SUCCESS` marker unless a DS image's own
worker ran it. The monitor has no config.json, so start-cluster writes the settings the rule reads into the run
record (`OUTPUTS`); a record without them (an older one, a run `adopt`ed from DS) keeps every dead-lettered job
failed, as before. The monitor's policy may list the output prefixes, never read what is there
(operations/deployed/monitor_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import error_code
from chalicelib.model.jobs import NotAJob, output_prefix_of_message, settings_values
from chalicelib.model.schema import bounds
from chalicelib.runfiles.outputs import finished

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

    from chalicelib.model.settings import Settings

_TEXT = bounds(max_length=1024)  # S3's key limit, which a prefix and the string it must hold are within
# A listing refused or of a bucket gone: the job is counted as it was before the rule, failed, rather than every
# look at the run failing (a monitor whose policy `monitor-config` made before the rule may not list the bucket).
CANNOT_LIST = ("AccessDenied", "NoSuchBucket", "AllAccessDisabled")


@dataclass(frozen=True)
class OutputRule:
    """The settings of the same names, and the run-wide values OUTPUT_PREFIX may use (jobs.settings_values)."""

    DESTINATION_BUCKET: str = field(metadata=bounds(min_length=3, max_length=63))
    OUTPUT_PREFIX: str = field(metadata=_TEXT)  # the template
    EXPECTED_NUMBER_FILES: int = field(metadata=bounds(minimum=1))
    MIN_FILE_SIZE_BYTES: int = field(metadata=bounds(minimum=0))
    NECESSARY_STRING: str = field(metadata=_TEXT)
    RUN_VALUES: dict[str, str] = field(metadata=bounds(max_items=10, item=bounds(max_length=255)))
    MARKER: bool = True  # this project's worker runs the jobs (false in DS image mode: DS's count alone)

    @classmethod
    def of_settings(cls, settings: Settings) -> OutputRule:
        return cls(DESTINATION_BUCKET=settings.DESTINATION_BUCKET, OUTPUT_PREFIX=settings.OUTPUT_PREFIX,
                   EXPECTED_NUMBER_FILES=settings.EXPECTED_NUMBER_FILES,
                   MIN_FILE_SIZE_BYTES=settings.MIN_FILE_SIZE_BYTES, NECESSARY_STRING=settings.NECESSARY_STRING,
                   RUN_VALUES=settings_values(settings), MARKER=not settings.ds_image_mode)

    def done(self, s3: S3Client, message_body: str) -> bool:
        """Whether the job `message_body` carries has its outputs complete. A message whose output prefix cannot be
        made (not a DS-shaped job, a DCP message), or whose outputs this caller may not list, is not done: it stays
        failed."""
        try:
            prefix = output_prefix_of_message(message_body, self.OUTPUT_PREFIX, self.RUN_VALUES)
        except NotAJob:
            return False
        try:
            return finished(s3, self, prefix, self.MARKER)
        except ClientError as error:
            if error_code(error) in CANNOT_LIST:
                return False  # a monitor deployed before its policy listed output roots: failed, as it was then
            raise
