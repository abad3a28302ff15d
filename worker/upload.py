"""Folders to and from S3 with boto3's transfer manager (concurrent, multipart for large files).

Outputs: every file under `{output_dir}` goes to
s3://DESTINATION_BUCKET/<OUTPUT_PREFIX>/<relative path>, carrying the user metadata
`dsr-job: <job id>` and UPLOAD_FLAGS' arguments (an ACL, a storage class, encryption); once all are in, the worker
writes `<OUTPUT_PREFIX>/_SUCCESS` (`mark_complete`), so outputs without it are an
upload that never finished (worker/done.py). A command's own top-level
`_SUCCESS` is not uploaded: the worker's marker takes its place, and only after
the last output. A symlink whose target lies outside the folder is refused (the
whole upload fails before anything is sent): a command, or data it processed,
must not be able to publish /etc/passwd or the task's credentials file by
linking to them.

Inputs: every object under INPUT_PREFIX in SOURCE_BUCKET goes to `{input_dir}`/<rest of the key>,
refusing keys that would land outside the folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig, create_transfer_manager

from chalicelib.aws.s3 import list_objects, put_object
from chalicelib.model.names import OUTPUT_METADATA_KEY, SUCCESS_MARKER, success_marker_key

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the worker image
    from mypy_boto3_s3 import S3Client
    from s3transfer.futures import TransferFuture


class TransferError(Exception):
    """An upload or download that must fail the job; the message says why."""


@dataclass(frozen=True)
class Transferred:
    files: int
    bytes: int


class Transfers:
    """One transfer manager per worker: its thread pool is reused by every job."""

    def __init__(self, s3: S3Client, source: str, destination: str, upload_args: dict[str, str] | None = None,
                 config: TransferConfig | None = None):
        self.s3 = s3
        self.source, self.destination = source, destination
        self.upload_args = dict(upload_args or {})
        self._manager = create_transfer_manager(s3, config or TransferConfig(max_concurrency=10))

    def upload_folder(self, folder: str | Path, prefix: str, job_id: str) -> Transferred:
        """The outputs, each marked as this project's (job_id); no completion marker yet."""
        files = [(key, path) for key, path in output_files(folder) if key != SUCCESS_MARKER]
        extra = {**self.upload_args, "Metadata": _metadata(job_id)}
        futures = [self._manager.upload(str(path), self.destination, f"{prefix}/{key}", extra_args=extra)
                   for key, path in files]
        _wait(futures, "upload")
        return Transferred(len(files), sum(path.stat().st_size for _, path in files))

    def mark_complete(self, prefix: str, job_id: str, sent: Transferred) -> None:
        """Hadoop's `_SUCCESS`, only after every output of `sent` is in S3: the job's outputs are complete."""
        body = json.dumps({"job_id": job_id, "files": sent.files, "bytes": sent.bytes, "time": round(time.time(), 3)})
        # upload_args: only the ExtraArgs chalicelib/model/uploadflags.py lets through (ACL, StorageClass,
        # ServerSideEncryption), each value checked there against S3's own list
        put_object(self.s3, self.destination, success_marker_key(prefix), body.encode("utf-8"),
                   content_type="application/json", metadata=_metadata(job_id), extra_args=self.upload_args)

    def download_prefix(self, prefix: str, folder: str | Path) -> Transferred:
        root = Path(folder)
        futures, total = [], 0
        for item in list_objects(self.s3, self.source, prefix + "/"):
            relative = item.key[len(prefix) + 1:]
            if not relative or relative.endswith("/"):
                continue  # "folder" marker objects made by the S3 console
            parts = PurePosixPath(relative).parts
            if any(part in ("..", ".") for part in parts) or relative.startswith("/"):
                raise TransferError(f"input s3://{self.source}/{item.key} would land outside {{input_dir}}")
            target = root.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            futures.append(self._manager.download(self.source, item.key, str(target)))
            total += item.size
        _wait(futures, "download")
        return Transferred(len(futures), total)

    def close(self) -> None:
        self._manager.shutdown()


def output_files(folder: str | Path) -> list[tuple[str, Path]]:
    """(relative key, path) of every file to upload; raises TransferError on a link leaving the folder."""
    root = Path(folder).resolve()
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise TransferError(f"output {path.relative_to(root)} is a symlink to {os.readlink(path)}, "
                                        "outside {output_dir}; refusing to upload it")
                if name in dirnames:
                    continue  # a link to a folder inside: its files are uploaded from the folder itself
            if name in filenames and path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _metadata(job_id: str) -> dict[str, str]:
    # Job ids are letters, digits, '.', '-' and '_' (chalicelib/model/jobs.py): always valid S3 metadata.
    return {OUTPUT_METADATA_KEY: job_id}


def _wait(futures: Sequence[TransferFuture], what: str) -> None:
    errors = []
    for future in futures:
        try:
            future.result()
        except Exception as error:  # noqa: BLE001 - collect every failure, report the first
            errors.append(error)
    if errors:
        raise TransferError(f"{what} failed for {len(errors)} of {len(futures)} files: {errors[0]}")
