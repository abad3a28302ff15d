"""CHECK_IF_DONE: is a job's output already in S3?

DS's rule, as DS meant it: count the objects under the job's output prefix that
are at least MIN_FILE_SIZE_BYTES and whose key contains NECESSARY_STRING; the
job is done when the count reaches EXPECTED_NUMBER_FILES. Unlike DS, every page
of the listing is read (DS stops at 1,000 keys) and the string is compared with
the key (DS compares it with the size and crashes). Used by the worker before a
job runs and by `submit --skip-done` before a job is sent.
"""

from __future__ import annotations

from chalicelib.settings import Settings


def count_done_files(s3, settings: Settings, output_prefix: str) -> int:
    """Objects that count toward EXPECTED_NUMBER_FILES (stops counting once there are enough)."""
    count = 0
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.AWS_BUCKET, Prefix=output_prefix + "/")
    for page in pages:
        for item in page.get("Contents", ()):
            if counts_toward_done(item, settings):
                count += 1
                if count >= settings.EXPECTED_NUMBER_FILES:
                    return count
    return count


def counts_toward_done(item: dict, settings: Settings) -> bool:
    """One listed object (`Key`, `Size`) against DS's rule."""
    return item["Size"] >= settings.MIN_FILE_SIZE_BYTES and settings.NECESSARY_STRING in item["Key"]


def is_done(s3, settings: Settings, output_prefix: str) -> bool:
    return count_done_files(s3, settings, output_prefix) >= settings.EXPECTED_NUMBER_FILES
