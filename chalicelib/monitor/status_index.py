"""One object per bucket holding every run's status document, so GET /runs answers a lab's thousand runs with a
listing of monitors/ and one read instead of a read per run (S3 answers a read in 20-50 ms, and the client's own
CPU is 2 ms a read: 1,000 runs cost 3-4 s read one by one, 32 at a time).

monitors/index/statuses.json maps each run to its status document as written and that document's ETag. A reader
uses an entry only when its own listing of monitors/ shows the run's document with that ETag: an object's ETag
changes whenever its bytes do (the MD5 of a plain PUT's bytes; a new value for each upload under SSE-KMS: S3 User
Guide, "Checking object integrity"), so the entry is then exactly the document a read would return, whoever wrote
the index and when. A run the index lacks, or whose document changed since (a run started since the last tick, a
document the alarm's function or `cli.py monitor` wrote), is read from its document as before. So the index needs
no lock and no single writer: a late, lost or stale index makes GET /runs slower, never wrong.

The scheduled tick refreshes it after its runs (app.py): the documents this container wrote are known with their
ETags (status_doc.publish returns them, service.py passes them on), the others are read once, and the index is
written only when an entry changed: a steady tick adds one listing and no write. Only the monitor writes under
monitors/ (the task role denies it), but reads are bounded all the same.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.aws.s3 import delete_object, list_objects, put_object, read_object
from chalicelib.model.names import MONITORS_PREFIX, RECORD_SUFFIX, STATUS_INDEX_KEY, status_key
from chalicelib.monitor import status_doc

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_s3 import S3Client

VERSION = 1
# A status document is at most status_doc.MAX_BYTES (4 MiB, a run of tens of thousands of machines); a lab's runs
# are some 1-2 KB each with ten machines. An index over this is not read: every run is then read from its document.
MAX_BYTES = 64 * 1024 * 1024
# Documents read at once when the index is refreshed after a cold start or by another writer: as service.READERS
READERS = 32

Entry = tuple[str, dict[str, Any]]  # (the document's ETag, the document)

_lock = threading.Lock()  # `remember` is called from the tick's reconcile threads
# bucket -> app name -> the run's document as this container last wrote or read it
_known: dict[str, dict[str, Entry]] = {}
# bucket -> what the index this container last wrote (or read at its first refresh) holds: app name -> ETag
_indexed: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Listing:
    """What one delimited listing of a bucket's monitors/ says: its runs (by their records, in key order) and the
    ETag of each run's status document, for the runs that have one."""

    runs: list[str]
    documents: dict[str, str]

    def fresh(self, index: dict[str, Entry]) -> dict[str, dict[str, Any]]:
        """The listed runs whose document the index holds as listed: app name -> the document."""
        return {app: index[app][1] for app in self.runs
                if app in index and app in self.documents and index[app][0] == self.documents[app]}


def listing(s3: S3Client, bucket: str) -> Listing:
    listed = {item.key: item.etag for item in list_objects(s3, bucket, MONITORS_PREFIX, delimiter="/")}
    runs = [status_doc.app_name_of(key) for key in sorted(listed) if key.endswith(RECORD_SUFFIX)]
    return Listing(runs, {app: listed[status_key(app)] for app in runs if listed.get(status_key(app))})


def remember(bucket: str, app_name: str, written: Entry) -> None:
    """A status document just written (status_doc.publish's answer): the next refresh need not read it."""
    with _lock:
        _known.setdefault(bucket, {})[app_name] = written


def read(s3: S3Client, bucket: str) -> dict[str, Entry]:
    """The bucket's index, app name -> (ETag, document); empty when there is none or it cannot be used (too large,
    not an index of this version): the readers then read every run's document."""
    try:
        body = read_object(s3, bucket, STATUS_INDEX_KEY, max_bytes=MAX_BYTES)
        index = json.loads(body) if body else None
    except (ValueError, RecursionError):  # too large, or not JSON
        return {}
    if not isinstance(index, dict) or index.get("version") != VERSION or not isinstance(index.get("runs"), dict):
        return {}
    return {app: (entry["etag"], entry["status"]) for app, entry in index["runs"].items()
            if isinstance(entry, dict) and isinstance(entry.get("etag"), str)
            and status_doc.is_status(entry.get("status"))}


def refresh(s3: S3Client, bucket: str) -> bool:
    """Bring the bucket's index up to its documents: one listing, a read of each document this container does not
    know as listed, and a write when an entry changed (a delete when no run is left). True when it wrote it."""
    listed = listing(s3, bucket)
    with _lock:
        known = _known.setdefault(bucket, {})
        first = bucket not in _indexed
    if first:  # a new container: the index as the last one left it saves reading every document again
        found = read(s3, bucket)
        _indexed[bucket] = {app: etag for app, (etag, _) in found.items()}
        with _lock:
            for app, indexed in found.items():
                known.setdefault(app, indexed)
    with _lock:
        unknown = [app for app, etag in listed.documents.items() if known.get(app, ("",))[0] != etag]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        for app, read_now in zip(unknown, pool.map(lambda app: _document(s3, bucket, app), unknown), strict=True):
            if read_now is not None:
                with _lock:
                    known[app] = read_now
    with _lock:
        for app in [app for app in known if app not in listed.documents]:
            del known[app]  # torn down, or its document deleted: nothing of it stays in this container
        entries = {app: known[app] for app in listed.fresh(known)}
    etags = {app: etag for app, (etag, _) in entries.items()}
    if etags == _indexed[bucket]:
        return False
    if not entries:  # the bucket's last run torn down: nothing of the monitor's stays but the runs' summaries
        delete_object(s3, bucket, STATUS_INDEX_KEY)
    else:
        index = {"version": VERSION, "runs": {app: {"etag": etag, "status": status}
                                              for app, (etag, status) in entries.items()}}
        put_object(s3, bucket, STATUS_INDEX_KEY, json.dumps(index).encode(), content_type="application/json")
    _indexed[bucket] = etags
    return True


def _document(s3: S3Client, bucket: str, app_name: str) -> Entry | None:
    """A run's status document and its ETag as read now, or None when it is gone or is not one (left out: a
    reader reads it and says why)."""
    try:
        return status_doc.read_with_etag(s3, bucket, app_name)
    except (ValueError, RecursionError):
        return None
