"""DS image mode: submit grants the task role what its jobs name; start-cluster proves the role reaches it.

Where the grants are computed: from the job file, at submit. The queue cannot be read at start-cluster without
receiving the messages (hiding them from the workers, counting a receive against JOB_RETRIES), and the role must
be right before any machine starts; setup-account runs before the jobs exist. So submit records every location
the jobs name (operations/setup/job_locations.py, in AWS_BUCKET under monitors/, where no job can rewrite it), and puts
the task role's policy for them; setup-account, run later, derives the same from the record.

start-cluster reads the record and the role's policy document as IAM holds it, and evaluates, by IAM's rules for
what the policy uses (an explicit Deny wins; wildcards in actions and resources; StringLike on s3:prefix), each
location for the S3 action the worker needs there. Anything it cannot evaluate counts against an Allow and for a
Deny: a refusal it cannot prove wrong is better than machines whose every job ends in AccessDenied.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.model import names
from chalicelib.model.errors import PreflightError, UserError
from chalicelib.model.settings import Settings
from operations.setup import iam, job_locations
from operations.setup.job_locations import LIST, Need

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_s3 import S3Client

# IAM's quota on a role's inline policies, whitespace not counted (IAM and STS quotas, "Role policy size").
MAX_ROLE_POLICY_CHARACTERS = 10_240
# What submit reads into memory of one data file (a plate's load_data.csv is a few MiB).
MAX_DATA_FILE_BYTES = 512 * 1024 * 1024


def record_submitted(settings: Settings, jobs: Iterable[Any], queued: bool) -> None:
    """Just before submit sends: record what the jobs name and grant it. When the queue already holds jobs of the
    run (--append), theirs are kept: they still need their locations."""
    if not settings.ds_image_mode:
        return
    s3 = aws.client("s3", settings)
    needs = job_locations.needs_of_jobs(settings, jobs, functools.cache(lambda key: _image_folders(s3, settings, key)))
    if queued:
        needs = job_locations.merged(job_locations.load_record(s3, settings) or (), needs)
    account = aws.client("sts", settings).get_caller_identity()["Account"]
    policy = json.dumps(iam.task_policy(settings, account, needs), separators=(",", ":"))
    if len(policy) > MAX_ROLE_POLICY_CHARACTERS:
        raise UserError(f"the {len(needs)} S3 locations these jobs name make the task role's policy {len(policy)} "
                        f"characters, over IAM's {MAX_ROLE_POLICY_CHARACTERS} for a role's inline policies; put the "
                        "jobs' data files, pipelines and images under fewer folders; nothing was sent")
    s3.put_object(Bucket=settings.AWS_BUCKET, Key=job_locations.record_key(settings.APP_NAME),
                  Body=job_locations.record_document(needs).encode(), ContentType="application/json")
    client = aws.client("iam", settings)
    # NoSuchEntity: setup-account has not made the role yet; when it does, it grants what the record holds
    with contextlib.suppress(client.exceptions.NoSuchEntityException):
        client.put_role_policy(RoleName=names.task_role(settings), PolicyName=iam.POLICY_NAME, PolicyDocument=policy)


def _image_folders(s3: S3Client, settings: Settings, data_file: str) -> list[str]:
    """The image folders a data file in WORKSPACE_BUCKET names; none when it cannot be read (the job then fails
    at its download, whatever the role grants: no right is needed for what does not exist)."""
    workspace = settings.environment.get("WORKSPACE_BUCKET", settings.SOURCE_BUCKET)
    if not data_file.endswith((".csv", ".txt")):
        return []
    try:
        response = s3.get_object(Bucket=workspace, Key=data_file)
    except ClientError as error:
        if aws.error_code(error) in ("NoSuchKey", "NoSuchBucket", "404"):
            return []
        if aws.error_code(error) in ("AccessDenied", "403"):
            raise UserError(f"data_file s3://{workspace}/{data_file} cannot be read with your credentials, so the "
                            "image folders it names cannot be granted to the workers; nothing was sent") from None
        raise
    size = response["ContentLength"]
    if size > MAX_DATA_FILE_BYTES:
        response["Body"].close()
        raise UserError(f"data_file s3://{workspace}/{data_file} is {size} bytes, over the {MAX_DATA_FILE_BYTES} "
                        "this project reads to find the image folders the jobs' role must read")
    return job_locations.image_folders_of(data_file, response["Body"].read().decode("utf-8", "replace"))


def check(c: aws.Clients, settings: Settings) -> list[str]:
    """Preflight: raises PreflightError naming the first job and location the task role does not reach; returns
    the warnings."""
    if not settings.ds_image_mode:
        return []
    needs = job_locations.load_record(c.s3, settings)
    if needs is None:
        return [f"no jobs of run {settings.APP_NAME} were sent with 'python cli.py submit', so start-cluster cannot "
                "check that the task role reaches the S3 locations they name; submit them with it"]
    role = names.task_role(settings)
    try:
        policy = _document(c.iam.get_role_policy(RoleName=role, PolicyName=iam.POLICY_NAME)["PolicyDocument"])
    except c.iam.exceptions.NoSuchEntityException:
        raise PreflightError(f"task role '{role}' has no policy '{iam.POLICY_NAME}'; run 'python cli.py "
                             f"setup-account --config {settings.source}'") from None
    for need in needs:
        if job_locations.reserved(need):
            raise PreflightError(f"job {need.job!r}: {need.location} ({need.field}) is inside what only the monitor "
                                 f"may touch ({', '.join(names.RESERVED_PREFIXES)}), so no job may {need.verb} it; "
                                 "fix the job file and submit again")
        if not allows(policy, need):
            raise PreflightError(f"job {need.job!r}: task role '{role}' may not {need.verb} {need.location} "
                                 f"({need.field}; {need.action}); run 'python cli.py setup-account --config "
                                 f"{settings.source}' to grant what the submitted jobs name")
    return []


def _document(value: Any) -> dict[str, Any]:
    # boto3 decodes policy documents to dicts; some paths return URL-encoded JSON text.
    document: dict[str, Any] = json.loads(unquote(value)) if isinstance(value, str) else value
    return document


def allows(policy: dict[str, Any], need: Need) -> bool:
    """IAM's decision for one identity policy: allowed when some Allow matches and no Deny does."""
    matched = {"Allow": False, "Deny": False}
    for statement in _listed(policy.get("Statement")):
        effect = statement.get("Effect")
        if effect not in matched:
            continue
        matches = _matches(statement, need, every=effect == "Allow")
        # unknown: against an Allow, for a Deny
        matched[effect] = matched[effect] or (matches is True or (matches is None and effect == "Deny"))
    return matched["Allow"] and not matched["Deny"]


def _matches(statement: dict[str, Any], need: Need, every: bool) -> bool | None:
    """Whether the statement applies to every request of the need (for a folder: to every key under it), or with
    `every` false to any; None when the statement uses what this evaluator does not know."""
    if {"NotAction", "NotResource", "NotPrincipal"} & statement.keys():
        return None
    if not any(_glob(pattern, need.action, ignore_case=True) for pattern in _listed(statement.get("Action"))):
        return False
    listing = need.action == LIST
    resource = need.resource() if listing else need.resource().rstrip("*")
    folder = need.folder and not listing
    if not any(_fits(pattern, resource, folder, every) for pattern in _listed(statement.get("Resource"))):
        return False
    condition = statement.get("Condition")
    if not condition:
        return True
    if set(condition) != {"StringLike"} or set(condition["StringLike"]) != {"s3:prefix"}:
        return None
    if not listing:
        return False  # s3:prefix is absent from the request: StringLike is not met
    return any(_fits(pattern, need.key, need.folder, every)
               for pattern in _listed(condition["StringLike"]["s3:prefix"]))


def _fits(pattern: str, value: str, folder: bool, every: bool) -> bool:
    """The pattern matches the value; for a folder, every value starting with it (a pattern ending in * whose head
    matches some start of the folder), or with `every` false possibly some (the pattern's text before its first
    wildcard and the folder are one the start of the other: more than IAM would say, never less)."""
    if not folder:
        return _glob(pattern, value, ignore_case=False)
    if not every:
        fixed = re.split(r"[*?]", pattern, maxsplit=1)[0]
        return value.startswith(fixed) or fixed.startswith(value)
    head = pattern.rstrip("*")
    return head != pattern and any(_glob(head, value[:end], ignore_case=False) for end in range(len(value) + 1))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _glob(pattern: str, value: str, ignore_case: bool) -> bool:
    # IAM's wildcards: * any run of characters, ? one character; nothing else is special.
    expression = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(expression, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None
