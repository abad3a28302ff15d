"""DS image mode: the S3 locations a run's jobs name, what the task role must grant for them, and the record of them.

A DS or Distributed-CellProfiler (DCP) image runs its own worker, so this project's OUTPUT_PREFIX and INPUT_PREFIX
say nothing of where its jobs read and write: the job messages do. What DCP's worker does with each message field
was read from DistributedScience/Distributed-CellProfiler at commit 17388b3 (worker/cp-worker.py `runCellProfiler`,
worker/run-worker.sh step 2):
- `data_file` and `pipeline`: object keys downloaded from WORKSPACE_BUCKET (SOURCE_BUCKET when unset).
- `input`: CellProfiler's input folder under the s3fs mount of SOURCE_BUCKET. run-worker.sh mounts the bucket when
  DOWNLOAD_FILES is 'False', and before each job the worker lists the mount's root and each top-level folder.
- the images: where the data file says (a load_data CSV's PathName_* columns, a file list's lines), as paths under
  the mount point /home/ubuntu/bucket (DATA_ROOT); CellProfiler reads them through the mount, or, with
  DOWNLOAD_FILES, the worker downloads those keys of SOURCE_BUCKET. DCP's example job file names `input`
  demo_project_folder/workspace/ while its load_data.csv names demo_project_folder/images: `input` alone is not
  where the images are, so submit reads each data file once (operations/setup/job_access.py).
- `output`: the worker moves its results to DESTINATION_BUCKET under `output`/<metadata id>/ (`aws s3 mv` with
  UPLOAD_FLAGS, so an `--acl` flag makes it PutObjectAcl too); with CHECK_IF_DONE_BOOL it first lists that folder.
A DS generic image names no such field; its outputs go under AWS_BUCKET/APP_NAME/, which the role already grants.

Grants are by object key (data_file, pipeline) or folder (input, output), never a whole bucket, except listing the
mount's root: s3fs cannot mount a bucket it may not list. No location overlapping a prefix the monitor trusts
(names.RESERVED_PREFIXES) is ever granted: a job naming one is refused by start-cluster.

Submit writes the record (RECORD_KEY in AWS_BUCKET, under monitors/, where no job may write); setup-account and
submit derive the task role's grants from it; start-cluster checks each location against the role's policy.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.model import names
from chalicelib.model.settings import Settings
from chalicelib.model.uploadflags import needs_acl_grant

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

RECORD_VERSION = 1
READ, WRITE, LIST = "s3:GetObject", "s3:PutObject", "s3:ListBucket"
_VERBS = {READ: "read", WRITE: "write", LIST: "list"}
DATA_ROOT = "/home/ubuntu/bucket/"  # where DCP's run-worker.sh mounts SOURCE_BUCKET (cp-worker.py DATA_ROOT)


@dataclass(frozen=True, order=True)
class Need:
    """One S3 right a job needs: `key` is an object key, or a folder when `folder` (for LIST, the listed prefix)."""

    action: str
    bucket: str
    key: str
    folder: bool
    field: str  # the message field (or setting) that names it
    job: str = ""  # the first job naming it, for the refusal

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def verb(self) -> str:
        return _VERBS[self.action]

    @property
    def same(self) -> tuple[str, str, str, bool]:
        """What the role must grant, whichever job named it."""
        return self.action, self.bucket, self.key, self.folder

    def resource(self, partition: str = "aws") -> str:
        if self.action == LIST:
            return f"arn:{partition}:s3:::{self.bucket}"
        return f"arn:{partition}:s3:::{self.bucket}/{self.key}" + ("*" if self.folder else "")


def record_key(app_name: str) -> str:
    return f"{names.MONITORS_PREFIX}{app_name}_joblocations.json"


def _folder(value: str) -> str:
    return value if value == "" or value.endswith("/") else value + "/"


def job_needs(settings: Settings, job_id: str, values: Mapping[str, Any],
              image_folders: Callable[[str], Iterable[str]] = lambda data_file: ()) -> list[Need]:
    """The rights DCP's worker uses for one message (the module's docstring says where each comes from);
    `image_folders(data_file)`: the folders of SOURCE_BUCKET the data file names."""
    if not settings.ds_image_mode:
        return []
    environment = settings.environment
    workspace = environment.get("WORKSPACE_BUCKET", settings.SOURCE_BUCKET)
    needs = []
    for field in ("data_file", "pipeline"):
        if isinstance(values.get(field), str):
            needs.append(Need(READ, workspace, values[field], False, field, job_id))
    if isinstance(values.get("data_file"), str):
        named = f"an image folder data_file {values['data_file']} names"
        needs += [Need(READ, settings.SOURCE_BUCKET, folder, True, named, job_id)
                  for folder in image_folders(values["data_file"])]
    if isinstance(values.get("input"), str):
        if environment.get("DOWNLOAD_FILES") == "False":  # run-worker.sh's own test for mounting
            needs.append(Need(LIST, settings.SOURCE_BUCKET, "", True, "input (the s3fs mount's root)", job_id))
        needs.append(Need(READ, settings.SOURCE_BUCKET, _folder(values["input"]), True, "input", job_id))
    if isinstance(values.get("output"), str):
        output = _folder(values["output"])
        needs.append(Need(WRITE, settings.DESTINATION_BUCKET, output, True, "output", job_id))
        if settings.CHECK_IF_DONE_BOOL:
            needs.append(Need(LIST, settings.DESTINATION_BUCKET, output, True, "output", job_id))
    return needs


def needs_of_jobs(settings: Settings, jobs: Iterable[Any],
                  image_folders: Callable[[str], Iterable[str]] = lambda data_file: ()) -> list[Need]:
    """Each distinct need of the jobs once, with the first job naming it."""
    first: dict[tuple[str, str, str, bool], Need] = {}
    for job in jobs:
        for need in job_needs(settings, job.job_id, job.values, image_folders):
            first.setdefault(need.same, need)
    return sorted(first.values())


def image_folders_of(data_file: str, text: str) -> list[str]:
    """The SOURCE_BUCKET folders a data file names under DATA_ROOT: a CSV's PathName_* values, a file list's
    lines' folders (what cp-worker.py reads from each; paths elsewhere are not in the bucket)."""
    if data_file.endswith(".csv"):
        rows = csv.DictReader(io.StringIO(text))
        columns = [name for name in rows.fieldnames or () if name.startswith("PathName_")]
        paths = {row[name] + "/" for row in rows for name in columns if row.get(name)}
    elif data_file.endswith(".txt"):
        paths = {posixpath.dirname(line.strip()) + "/" for line in text.splitlines() if line.strip()}
    else:
        return []
    return sorted(_folder(path[len(DATA_ROOT):]) for path in paths if path.startswith(DATA_ROOT))


def reserved(need: Need) -> bool:
    """A location overlapping what the monitor trusts, in any bucket (any bucket may be some run's AWS_BUCKET).
    The root listing shows names only, and s3fs needs it."""
    if need.action == LIST and need.key == "":
        return False
    return any(need.key.startswith(prefix) or (need.folder and prefix.startswith(need.key))
               for prefix in names.RESERVED_PREFIXES)


def grantable(needs: Iterable[Need]) -> list[Need]:
    return [need for need in needs if not reserved(need)]


def statements(settings: Settings, needs: Iterable[Need], partition: str = "aws") -> list[dict[str, Any]]:
    """The task role's statements for the needs it may be granted: reads and writes by resource, listings by
    bucket with the listed prefixes as the condition (none when the root is listed)."""
    reads: set[str] = set()
    writes: set[str] = set()
    listed: dict[str, set[str]] = {}
    for need in grantable(needs):
        if need.action == LIST:
            listed.setdefault(need.bucket, set()).add(need.key)
        else:
            (reads if need.action == READ else writes).add(need.resource(partition))
    result: list[dict[str, Any]] = []
    for bucket, prefixes in sorted(listed.items()):
        statement: dict[str, Any] = {"Effect": "Allow", "Action": [LIST], "Resource": f"arn:{partition}:s3:::{bucket}"}
        if "" not in prefixes:
            statement["Condition"] = {"StringLike": {"s3:prefix": sorted(prefix + "*" for prefix in prefixes)}}
        result.append(statement)
    if reads:
        result.append({"Effect": "Allow", "Action": [READ], "Resource": _fewest(reads)})
    if writes:
        actions = [WRITE] + (["s3:PutObjectAcl"] if needs_acl_grant(settings.upload_args) else [])
        result.append({"Effect": "Allow", "Action": actions, "Resource": _fewest(writes)})
    return result


def _fewest(resources: set[str]) -> list[str]:
    """Drop a resource another one's folder already covers."""
    folders = [resource[:-1] for resource in resources if resource.endswith("*")]
    return sorted(resource for resource in resources
                  if not any(resource != folder + "*" and resource.startswith(folder) for folder in folders))


def record_document(needs: Iterable[Need]) -> str:
    return json.dumps({"version": RECORD_VERSION, "needs": [asdict(need) for need in needs]}, indent=1)


def parse_record(text: bytes | str) -> list[Need]:
    document = json.loads(text)
    return [Need(**item) for item in document["needs"]]


def merged(old: Iterable[Need], new: Iterable[Need]) -> list[Need]:
    first: dict[tuple[str, str, str, bool], Need] = {}
    for need in (*old, *new):
        first.setdefault(need.same, need)
    return sorted(first.values())


def load_record(s3: S3Client, settings: Settings) -> list[Need] | None:
    """The record submit wrote for this run, or None when no jobs were submitted with this project's submit."""
    try:
        body = s3.get_object(Bucket=settings.AWS_BUCKET, Key=record_key(settings.APP_NAME))["Body"].read()
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return None
    return parse_record(body)
