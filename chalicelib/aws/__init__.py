"""The AWS layer: every AWS call of the Lambda and the worker goes through this package (tests/unit/
test_aws_layer.py finds any that does not). Here: the clients, AWS's "not found" answers sorted once, and `paged`;
beside it one module per service (s3, sqs, ec2, ecs, cloudwatch, logs, tagging, servicequotas), each a function
per intent that takes the typed client (so tests inject the session through `sessions_from`), pages through every
listing, and batches writes to AWS's per-call limits (chalice's TypedAWSClient is the model). Nothing in the layer
sleeps: backing off is botocore's standard retry mode's.

Region and profile come from settings (or the environment in the Lambda, where
there is no config.json); botocore itself honours AWS_ENDPOINT_URL, which is how
tests and local mode point the same code at moto. Standard retry mode backs
off on throttling and 5xx errors; the connection pool is sized for the thread
pools that submit and the transfer manager use.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import boto3
import botocore.exceptions
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import standard

from chalicelib.model.errors import UserError

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from botocore.client import BaseClient
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

# AWS's "it is not there" answers, one list per kind of thing, used wherever that kind is read.
QUEUE_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
OBJECT_MISSING = ("NoSuchKey", "404", "NotFound")  # GetObject says NoSuchKey; HeadObject has no body: 404
DASHBOARD_MISSING = ("ResourceNotFound", "ResourceNotFoundException")

MAX_POOL_CONNECTIONS = 50
RETRY_ATTEMPTS = 8

SessionFactory = Callable[[str | None, str | None], boto3.session.Session]

_sessions: dict[tuple[str | None, str | None], boto3.session.Session] = {}
_lock = threading.Lock()
_making = threading.Lock()  # held while a client is made from a session (client())


# In the monitor Lambda a tick shares its time among the runs (monitor/budget.py), so one call must not take minutes
# as botocore's defaults allow (60 s to connect and to read, here 8 attempts): fewer attempts, shorter timeouts.
# A call then takes at most LAMBDA_CALL_SECONDS, which budget.MARGIN_SECONDS covers. Lambda sets the variable.
LAMBDA_ATTEMPTS, LAMBDA_CONNECT_SECONDS, LAMBDA_READ_SECONDS = 3, 3, 10
LAMBDA_BACKOFF_SECONDS = 2 ** (LAMBDA_ATTEMPTS - 1)  # standard mode's waits between attempts, jittered: at most 1 + 2
LAMBDA_CALL_SECONDS = LAMBDA_ATTEMPTS * (LAMBDA_CONNECT_SECONDS + LAMBDA_READ_SECONDS) + LAMBDA_BACKOFF_SECONDS


def client_config(**overrides: Any) -> Config:
    base = Config(retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
                  max_pool_connections=MAX_POOL_CONNECTIONS)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        base = base.merge(Config(retries={"mode": "standard", "max_attempts": LAMBDA_ATTEMPTS},
                                 connect_timeout=LAMBDA_CONNECT_SECONDS, read_timeout=LAMBDA_READ_SECONDS))
    return base.merge(Config(**overrides)) if overrides else base


def session(region: str | None = None, profile: str | None = None) -> boto3.session.Session:
    """One boto3 session per (region, profile); sessions are not thread-safe to build, clients are to use."""
    key = (region, profile)
    with _lock:
        if key not in _sessions:
            _sessions[key] = _factory[0](region, profile)
        return _sessions[key]


def forget_sessions() -> None:
    """Make the next client build a fresh session: after the environment changed (tests, local mode)."""
    with _lock:
        _sessions.clear()


def new_session(region: str | None, profile: str | None) -> boto3.session.Session:
    """The session for a region and profile as the configuration says (the default factory)."""
    if profile and _use_profile(profile):
        try:
            return boto3.session.Session(region_name=region, profile_name=profile)
        except botocore.exceptions.ProfileNotFound:
            raise UserError(f"AWS_PROFILE: profile {profile!r} not found in your AWS config files "
                            "(set AWS_PROFILE to null to use the default credential chain)") from None
    return boto3.session.Session(region_name=region)


_factory: list[SessionFactory] = [new_session]


@contextlib.contextmanager
def sessions_from(factory: SessionFactory) -> Iterator[None]:
    """While open, every session (so every client) is `factory(region, profile)`'s: how the tests run our own
    code with exactly a role's credentials, or record the calls it makes. Sessions made before are forgotten
    on entry and on exit."""
    forget_sessions()
    with _lock:
        previous, _factory[0] = _factory[0], factory
    try:
        yield
    finally:
        with _lock:
            _factory[0] = previous
        forget_sessions()


def default_sessions() -> bool:
    """True unless a `sessions_from` factory is in use: then a client made in another process (from the settings
    and the environment alone) would not be the same as one made here."""
    with _lock:
        return _factory[0] is new_session


def _use_profile(profile: str) -> bool:
    # "default" is what DS's example config says; when no such profile is
    # configured (CI, containers, local mode) it means the default chain.
    if profile != "default":
        return True
    return profile in boto3.session.Session().available_profiles


class WhereFrom(Protocol):
    """What a client is made from: a Settings, or anything naming a region and a profile as it does."""

    @property
    def AWS_REGION(self) -> str: ...

    @property
    def AWS_PROFILE(self) -> str | None: ...


# One overload per service our code asks for by name, as boto3-stubs' Session.client has, so that each caller gets
# that service's typed client; any other name gets botocore's untyped BaseClient.
@overload
def client(service: Literal["apigateway"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> APIGatewayClient: ...
@overload
def client(service: Literal["cloudwatch"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> CloudWatchClient: ...
@overload
def client(service: Literal["ec2"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> EC2Client: ...
@overload
def client(service: Literal["ecs"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> ECSClient: ...
@overload
def client(service: Literal["iam"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> IAMClient: ...
@overload
def client(service: Literal["lambda"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> LambdaClient: ...
@overload
def client(service: Literal["logs"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> CloudWatchLogsClient: ...
@overload
def client(service: Literal["resourcegroupstaggingapi"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> ResourceGroupsTaggingAPIClient: ...
@overload
def client(service: Literal["s3"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> S3Client: ...
@overload
def client(service: Literal["sqs"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> SQSClient: ...
@overload
def client(service: Literal["sts"], settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> STSClient: ...
@overload
def client(service: str, settings: WhereFrom | None = None, region: str | None = None,
           **config: Any) -> BaseClient: ...
def client(service: str, settings: WhereFrom | None = None, region: str | None = None, **config: Any) -> BaseClient:
    """A client for `service`, from a Settings (CLI) or a region (Lambda, worker)."""
    if settings is not None:
        region, profile = settings.AWS_REGION, settings.AWS_PROFILE
    else:
        profile = None
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # boto3-stubs' Session.client takes only literal service names; the overloads above type ours.
    with _making:  # a session is not thread-safe, and the monitor's threads make clients of the same one
        made: BaseClient = session(region, profile).client(service, config=client_config(**config))  # type: ignore[call-overload]
    return made


class Clients:
    """Clients made on first use, then reused: `clients.sqs`, `clients.ec2`, ... From a Settings (region and
    profile: the CLI) or a region alone (the Lambda and the monitor's loop, which have no config.json).
    The services called through it are declared, typed by boto3-stubs; any other name is an `object` to mypy."""

    cloudwatch: CloudWatchClient
    ec2: EC2Client
    ecs: ECSClient
    iam: IAMClient
    logs: CloudWatchLogsClient
    resourcegroupstaggingapi: ResourceGroupsTaggingAPIClient
    s3: S3Client
    sns: SNSClient
    sqs: SQSClient
    ssm: SSMClient
    sts: STSClient

    def __init__(self, settings: Any = None, region: str | None = None):
        self._settings = settings
        self._region = region
        # the monitor reconciles runs on several threads with one Clients: a client is safe to share, but making
        # one is not (boto3 sessions are not thread-safe), and two threads would each make their own
        self._making = threading.Lock()

    def __getattr__(self, service: str) -> object:
        if service.startswith("_"):
            raise AttributeError(service)
        with self._making:
            made = self.__dict__.get(service)  # another thread made it while this one waited
            if made is None:
                made = client(service, self._settings, region=self._region)
                setattr(self, service, made)  # later lookups find the attribute and skip __getattr__
        return made


def default_region() -> str:
    """The region boto3 takes when none is given (AWS_REGION, AWS_DEFAULT_REGION, then the profile's; DS's run.py
    makes its clients so), else us-east-1 as client() does."""
    return (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or boto3.session.Session().region_name or "us-east-1")


def region_of_queue_url(url: str) -> str:
    """The region an SQS queue URL names (https://sqs.REGION.amazonaws.com/...), else this process's default."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def paged(client: BaseClient, operation: str, result_key: str, **request: Any) -> Iterator[Any]:
    """Each item under `result_key` of every page of `operation`'s answer, by botocore's paginator: the lister of
    the reads that have no function of their own in the service modules (the CLI's one-off reads). A generator:
    a caller that has its answer stops, and no further page is asked for."""
    for page in client.get_paginator(operation).paginate(**request):
        yield from page.get(result_key, ())


def error_code(error: Exception) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "")
    return ""


def transient(error: Exception) -> bool:
    """Whether AWS's answer is one botocore's standard retry mode retries (a 5xx, a throttle, a dropped connection):
    after its attempts are spent, a caller whose reads are safe to repeat may try them all again later."""
    if isinstance(error, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    context = standard.RetryContext(attempt_number=1, parsed_response=error.response)
    return status >= 500 or standard.ThrottledRetryableChecker().is_retryable(context)
