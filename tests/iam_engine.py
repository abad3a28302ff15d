"""moto's IAM enforcement, made faithful enough to prove our least-privilege policies.

moto (5.2.5, pinned) can check each request against the caller's IAM policies
(`moto.core.authorization.enable_iam_authentication`), but as a policy engine it
differs from AWS in ways that make a policy test pass or fail for the wrong
reason. `iam_enforced()` patches those differences for as long as it is open,
in-process: under `aws` (mock_aws) and under `moto_server` (ThreadedMotoServer
runs in this process, its request threads read the same moto modules).

    with iam_enforced() as engine:
        worker = role_session(names.task_role(settings)).client("logs")
        worker.put_log_events(...)        # checked against the task role's policies
        admin_s3.get_object(...)          # the test's own dummy keys: not checked
    engine.decisions                      # what was checked, against which ARNs

Who is checked: inside the block, a request signed by a principal that exists in
moto's IAM (a user's access key, an assumed role's session) is checked against
that principal's policies; a request signed with any other key (the dummy
"testing" keys of tests/conftest.py) is the test's own admin step and passes
unchecked, so a test can set up and inspect the world in the same block.
Outside the block moto is exactly as it was (no auth; moto's request counter
and settings restored).

What the engine guarantees: the patches lean one way. Where AWS's answer
cannot be known here (a Condition it cannot evaluate, a policy variable, a
resource moto cannot name), an Allow does not count and a Deny does, so a
request the engine allows is one AWS allows too, for the identity policies
evaluated here (no SCPs, permission boundaries, session policies or
resource-based policies). A denial is exact only when its resources were named
(see `Decision.resources`; "*" means moto could not name them) and every
Condition involved was evaluated; statements with a Condition the engine cannot
evaluate or a policy variable are listed in `Engine.unevaluated`, and leaving
the block raises if there are any, unless `allow_unevaluated=True`.

Conditions evaluated exactly (`_condition_met`): the String* operators (and
...IfExists) and Null, on `s3:prefix` of a listing (s3:ListBucket) and on
`aws:ResourceTag/KEY` (and `ec2:ResourceTag/KEY`, `ecs:ResourceTag/KEY` for
their service's actions) of the resources these actions are checked against,
whose tags are read from moto: sqs:DeleteQueue (queue), ec2:ModifySpotFleetRequest
and ec2:CancelSpotFleetRequests (spot-fleet-request), ec2:ModifyFleet and ec2:DeleteFleets (fleet),
ec2:TerminateInstances (instance), ec2:DeleteLaunchTemplate (launch-template), ecs:UpdateService and
ecs:DeleteService (service), ecs:DeleteCluster (cluster), logs:CreateExportTask (log-group),
cloudwatch:DeleteAlarms (alarm). Anything else is unevaluated.
CreateExportTask is also checked as s3:PutObject on its destination, which AWS
writes with the caller's permissions (`_export_writes`); a PutObject (or a
multipart upload's start) carrying an ACL is also checked as s3:PutObjectAcl on
the object (`_s3_put_with_acl`); a PutMetricAlarm carrying tags is also checked as
cloudwatch:TagResource on the alarm.

API: `iam_enforced()` (the block; yields an `Engine`: `.decisions`, `.denied()`,
`.checked(action)`, `.unevaluated`), `role_session(role_name, region)`,
`policy_session(policy_document, region, name)`, `chalicelib_uses(session)` (our
own code's clients carry those credentials), `is_access_denied(error)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Decision:
    principal: str  # the caller's ARN (user or assumed role)
    action: str  # as IAM names it ("cloudwatch:PutMetricAlarm", never moto's "monitoring:..."; a batch as its single)
    resources: tuple[str, ...]  # every resource the request was checked against; ("*",) = unnamed
    allowed: bool


@dataclass
class Engine:
    decisions: list[Decision] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _record(self, decision: Decision) -> None:
        with self._lock:
            self.decisions.append(decision)

    def _note(self, what: str) -> None:
        with self._lock:
            if what not in self.unevaluated:
                self.unevaluated.append(what)

    def denied(self) -> list[Decision]:
        return [decision for decision in self.decisions if not decision.allowed]

    def checked(self, action: str) -> list[Decision]:
        return [decision for decision in self.decisions if decision.action == action]


class UnevaluatedPolicy(AssertionError):
    """A policy the engine evaluated has parts it cannot evaluate (Condition, policy variables)."""


_active: Engine | None = None
_active_lock = threading.Lock()


@contextlib.contextmanager
def iam_enforced(*, allow_unevaluated: bool = False) -> Iterator[Engine]:
    """Check requests signed by moto IAM principals against their policies, AWS's way (see the module doc)."""
    global _active
    from moto.core.authorization import enable_iam_authentication

    engine = Engine()
    with _active_lock:
        if _active is not None:
            raise RuntimeError("iam_enforced() is already open")
        _active = engine
    try:
        with contextlib.ExitStack() as stack:
            for patch in (_only_moto_principals, _iam_action_names, _statement_semantics, _several_resources,
                          _logs_resources, _cloudwatch_resources, _sqs_resources, _ec2_resources, _ecs_resources,
                          _s3_delete_objects_per_key, _s3_put_with_acl, _access_denied_in_protocol):
                stack.enter_context(patch(engine))
            # The switch itself: moto's own, which flips module settings this process's moto (in-process or
            # ThreadedMotoServer) reads, and restores them and moto's request counter on exit.
            stack.enter_context(enable_iam_authentication())
            yield engine
    finally:
        with _active_lock:
            _active = None
    if engine.unevaluated and not allow_unevaluated:
        raise UnevaluatedPolicy(
            "the engine met policy parts it cannot evaluate, so it let no such Allow count and every such Deny "
            "apply; its answers may be stricter than AWS's: " + "; ".join(engine.unevaluated))


@contextlib.contextmanager
def _only_moto_principals(engine: Engine) -> Iterator[None]:
    """Which requests are checked. moto checks every request or none (a process-wide counter,
    INITIAL_NO_AUTH_ACTION_COUNT); AWS checks every request too, but a test's own setup and
    inspection steps are not the role under test. Here a request is checked only if it is signed by
    a principal moto's IAM knows (a user's key or an assumed role's session); the dummy keys of
    tests/conftest.py belong to no principal, and those requests pass as if auth were off.
    """
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
    from moto.utilities.utils import get_partition

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def signed_by_principal(response) -> bool:
        authorization = response.headers.get("Authorization") or ""
        if "Credential=" not in authorization:
            return False
        scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
        if len(scope) < 3:
            return False
        try:
            create_access_key(account_id=response.current_account, partition=get_partition(scope[2]),
                              access_key_id=scope[0], headers=response.headers)
        except CreateAccessKeyFailure as failure:
            return failure.reason != "InvalidId"  # a known key with a wrong token: moto refuses it
        return True

    def authorize(self, iam_request_cls, resource="*"):
        if not signed_by_principal(self):
            return None
        return original(self, iam_request_cls, resource)

    with mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize):
        yield


# IAM service prefixes that differ from the signing name moto takes the prefix from (the Resource Groups Tagging
# API signs as "tagging"; IAM's prefix is "tag").
_IAM_PREFIX = {"monitoring": "cloudwatch", "tagging": "tag"}
# SQS's batch operations have no IAM action of their own: each is authorized as its single action.
_IAM_BATCH_ACTION = {"sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
                     "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility"}


@contextlib.contextmanager
def _iam_action_names(engine: Engine) -> Iterator[None]:
    """CloudWatch actions are "cloudwatch:...". moto builds the action from the SigV4 credential
    scope's service, which for CloudWatch is the signing name "monitoring", so it checks
    "monitoring:PutMetricAlarm" and a policy granting "cloudwatch:PutMetricAlarm" (the only
    spelling IAM accepts) never matches. The signature still uses the signing name.
    moto also checks an SQS batch operation as itself ("sqs:ChangeMessageVisibilityBatch"), an
    action IAM does not have: AWS authorizes it as the single action (sqs:ChangeMessageVisibility).
    """
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        prefix, _, name = self._action.partition(":")
        if prefix in _IAM_PREFIX:
            self._action = f"{_IAM_PREFIX[prefix]}:{name}"
        self._action = _IAM_BATCH_ACTION.get(self._action, self._action)

    with mock.patch.object(IAMRequestBase, "__init__", init):
        yield


def _glob(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@contextlib.contextmanager
def _statement_semantics(engine: Engine) -> Iterator[None]:
    """One identity-policy statement, evaluated as IAM does. moto's evaluation differs:
    - NotResource: moto sees no Resource and returns PERMITTED whatever the Effect, so a
      Deny with NotResource *allows* everything; here it matches every resource but those listed.
    - Condition: for identity policies moto has no context values, so every condition
      passes (an unknown operator is skipped too): conditioned statements act unconditioned.
      Here the conditions `_condition_met` knows are evaluated as IAM does (see it); any
      other makes the statement "maybe": a conditioned Allow does not count and a
      conditioned Deny applies (noted in `Engine.unevaluated`): stricter than AWS, never looser.
    - Wildcards: moto turns "*" into ".*" and leaves the rest as regex, so "?" is a regex
      quantifier and "." matches any character; here "*" and "?" are IAM's and the rest is literal.
    - Action names are case-insensitive in IAM; moto matches them case-sensitively.
    - A resource moto could not name arrives as "*": here only an all-"*" Resource is sure to
      cover it (Allow), and a Deny naming anything applies (it might be that resource).
    Statements with a Principal (trust policies, bucket policies) keep moto's evaluation.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        statement = self._statement
        if principal is not None or "Principal" in statement or "NotPrincipal" in statement:
            return original(self, action, resource, principal, incoming_condition_values)
        if "NotAction" in statement:
            concerned = not any(_glob(p, action, True) for p in _listed(statement["NotAction"]))
        else:
            concerned = any(_glob(p, action, True) for p in _listed(statement.get("Action")))
        if not concerned:
            return PermissionResult.NEUTRAL
        deny = statement.get("Effect") == "Deny"
        negated = "NotResource" in statement
        patterns = _listed(statement["NotResource"] if negated else statement.get("Resource"))
        # Does the statement apply to this resource: "yes", "no", or "maybe" (cannot tell here)
        if resource == "*":  # moto could not name the resource
            applies = "yes" if not negated and any(set(pattern) <= {"*"} for pattern in patterns) else "maybe"
        else:
            matched = any(_glob(pattern, resource, False) for pattern in patterns if "${" not in pattern)
            variables = [pattern for pattern in patterns if "${" in pattern]
            applies = "yes" if matched != negated else "no"
            if variables and not matched:
                applies = "maybe"  # a pattern with a policy variable might have matched
                engine._note(f"policy variable in {variables} ({action} on {resource})")
        if applies == "no":
            return PermissionResult.NEUTRAL
        if "Condition" in statement:
            met, why = _condition_met(statement["Condition"], resource)
            if met is False:
                return PermissionResult.NEUTRAL
            if met is None:
                engine._note(f"Condition {json.dumps(statement['Condition'], sort_keys=True)} on {action} "
                             f"({resource}): {why}")
                applies = "maybe"
        if deny:
            return PermissionResult.DENIED  # applies, or might
        return PermissionResult.PERMITTED if applies == "yes" else PermissionResult.NEUTRAL

    with mock.patch.object(IAMPolicyStatement, "is_action_permitted", is_action_permitted):
        yield


# --- conditions -------------------------------------------------------------------------------------

# The request and the one resource being checked (set by `_several_resources`), for context values.
_checking: contextvars.ContextVar[tuple[Any, str] | None] = contextvars.ContextVar("checking", default=None)


class _Unknown(Exception):
    """A context value the engine cannot know here (the condition is then "maybe")."""


_ABSENT = object()  # the key is not in the request context
_EMPTY_OR_ABSENT = object()  # s3:prefix of a listing that sends no prefix (see `_s3_prefix`)

# String operators: (negated, matches(policy value, request value)). "...IfExists" is handled in `_key_met`.
_STRING_OPERATORS = {
    "stringequals": (False, lambda pattern, value: value == pattern),
    "stringnotequals": (True, lambda pattern, value: value == pattern),
    "stringequalsignorecase": (False, lambda pattern, value: value.casefold() == pattern.casefold()),
    "stringnotequalsignorecase": (True, lambda pattern, value: value.casefold() == pattern.casefold()),
    "stringlike": (False, lambda pattern, value: _glob(pattern, value, False)),
    "stringnotlike": (True, lambda pattern, value: _glob(pattern, value, False)),
}


def _condition_met(condition: dict, resource: str) -> tuple[bool | None, str]:
    """Whether a statement's Condition holds for the request being checked and `resource`, as IAM
    decides it: every operator and every key in it must hold (AND), any of a key's values may match
    (OR). Known here: the String* operators (with ...IfExists) and Null, on the single-valued keys
    `_context_value` can read. Returns (True | False, "") or (None, why) when the answer cannot be
    known here: other operators (Bool, Arn*, Numeric*, Date*, IpAddress, ...), ForAnyValue:/ForAllValues:,
    policy variables, other keys, a resource moto could not name or a resource that does not exist.
    """
    checking = _checking.get()
    if checking is None or checking[1] != resource or not isinstance(condition, dict):
        return None, "no request to read context values from"
    request = checking[0]
    unknown = []
    for operator, keys in condition.items():
        if not isinstance(keys, dict):
            return None, f"malformed {operator}"
        for key, policy_values in keys.items():
            try:
                if not _key_met(operator, key, _listed(policy_values) if not isinstance(policy_values, bool)
                                else [policy_values], request, resource):
                    return False, ""
            except _Unknown as why:
                unknown.append(f"{operator} {key}: {why}")
    return (None, "; ".join(unknown)) if unknown else (True, "")


def _key_met(operator: str, key: str, policy_values: list, request, resource: str) -> bool:
    name = operator.casefold()
    if ":" in name:
        raise _Unknown("set operators (ForAnyValue:/ForAllValues:) are not evaluated")
    policy_values = ["true" if value is True else "false" if value is False else value for value in policy_values]
    if any(not isinstance(value, str) or "${" in value for value in policy_values):
        raise _Unknown("policy variables or non-string values are not evaluated")
    value = _context_value(key, request, resource)
    if name == "null":
        # Null "true": the key is absent; "false": it is present. (Any of several values may match.)
        wanted = {value_.casefold() == "true" for value_ in policy_values}
        if value is _EMPTY_OR_ABSENT:
            return _same_either_way(lambda absent: absent in wanted)
        return (value is _ABSENT) in wanted
    if_exists = name.endswith("ifexists")
    base = name.removesuffix("ifexists")
    if base not in _STRING_OPERATORS:
        raise _Unknown(f"operator {operator} is not evaluated")
    negated, matches = _STRING_OPERATORS[base]

    def met(absent: bool, present_value: str = "") -> bool:
        # A key absent from the request: ...IfExists holds; a negated operator holds (nothing equals
        # it); a positive one does not. Present: a positive operator holds if any value matches, a
        # negated one if none does.
        if absent:
            return if_exists or negated
        return any(matches(pattern, present_value) for pattern in policy_values) != negated

    if value is _EMPTY_OR_ABSENT:
        return _same_either_way(lambda absent: met(absent))
    if value is _ABSENT:
        return met(True)
    return met(False, value)


def _same_either_way(decide) -> bool:
    """The answer for a key that is "" or absent (which one AWS uses is not documented): known
    only when both give the same answer."""
    if decide(True) != decide(False):
        raise _Unknown('the answer differs for an empty and an absent value')
    return decide(True)


# Actions whose resources' tags are read for aws:ResourceTag/KEY (and the service's own prefix):
# each is authorized on AWS against the resources `_resource_tags` can read (Service Authorization
# Reference: sqs queue, ec2 fleet, spot-fleet-request, instance and launch-template, ecs service and cluster, logs
# log-group).
# Other actions (creating calls, where the resource may not exist yet and aws:RequestTag applies,
# or actions never checked here) leave such keys unknown.
_RESOURCE_TAG_ACTIONS = {
    "sqs:deletequeue", "ec2:modifyspotfleetrequest", "ec2:cancelspotfleetrequests", "ec2:terminateinstances",
    "ec2:modifyfleet", "ec2:deletefleets",
    "ec2:deletelaunchtemplate", "ecs:updateservice", "ecs:deleteservice", "ecs:deletecluster", "logs:createexporttask",
    "cloudwatch:deletealarms"}


def _context_value(key: str, request, resource: str):
    """The request context's value of `key` (a string), `_ABSENT`, `_EMPTY_OR_ABSENT`; raises _Unknown."""
    action = request._action
    lowered = key.casefold()
    if lowered == "s3:prefix":
        return _s3_prefix(request, resource)
    scope, slash, tag_key = key.partition("/")
    if slash and scope.casefold() in ("aws:resourcetag", "ec2:resourcetag", "ecs:resourcetag"):
        service = action.partition(":")[0].casefold()
        if scope.casefold() != "aws:resourcetag" and scope.casefold() != f"{service}:resourcetag":
            raise _Unknown(f"{scope} on a {service} action")
        if action.casefold() not in _RESOURCE_TAG_ACTIONS:
            raise _Unknown(f"resource tags are not read for {action}")
        tags = _resource_tags(resource)
        # Tag keys in aws:ResourceTag/KEY are not case-sensitive (IAM's reference for the key): a
        # resource with two keys differing only in case cannot be decided here.
        found = {value for name, value in tags.items() if name.casefold() == tag_key.casefold()}
        if len(found) > 1:
            raise _Unknown(f"{resource} has several tags named {tag_key} in different cases")
        return found.pop() if found else _ABSENT
    raise _Unknown(f"context key {key} is not known to the engine")


def _s3_prefix(request, resource: str):
    """s3:prefix of ListObjects/ListObjectsV2 (s3:ListBucket on the bucket): the request's `prefix`
    query parameter. moto checks HeadBucket as "s3:HeadBucket", so every s3:ListBucket here is a
    GET listing. Without a prefix parameter AWS's documentation does not say whether the key is ""
    or absent: `_EMPTY_OR_ABSENT` is decided only where both give one answer (a "TestApp/*"
    pattern matches neither)."""
    from urllib.parse import parse_qs, urlparse

    if request._action.casefold() != "s3:listbucket" or request._method != "GET" or "/" in resource.split(":::")[-1]:
        raise _Unknown(f"s3:prefix is not read for {request._action}")
    query = parse_qs(urlparse(request._path).query, keep_blank_values=True)
    values = query.get("prefix")
    if not values:
        return _EMPTY_OR_ABSENT
    return values[0]


def _resource_tags(arn: str) -> dict[str, str]:
    """The tags of the resource `arn` names, read from moto's backends (what AWS's authorizer reads
    from the resource itself); raises _Unknown for "*", an ARN of another shape, or a resource that
    does not exist (whether AWS then denies or answers "not found" is not known here). Should moto's
    models move (tests/unit/test_iam_engine_moto_internals.py pins them), the failure is _Unknown too:
    the condition stays unevaluated and leaving `iam_enforced()` says why."""
    try:
        return _read_resource_tags(arn)
    except _Unknown:
        raise
    except Exception as error:
        raise _Unknown(f"reading the tags of {arn} failed ({type(error).__name__}: {error})") from error


def _read_resource_tags(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6:
        raise _Unknown(f"resource {arn} is not named")
    _, _, service, region, account, rest = parts
    found = None
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[account][region].queues.get(rest)
        found = dict(queue.tags) if queue is not None else None
    elif service == "ec2":
        from moto.ec2.models import ec2_backends

        backend, (kind, _, ident) = ec2_backends[account][region], rest.partition("/")
        if kind == "spot-fleet-request" and ident in backend.spot_fleet_requests:
            # moto keeps a fleet's TagSpecifications on the request (keyed by resource type) and CreateTags
            # in the backend's table, and shows only the former; on AWS both are the fleet's tags.
            fleet = backend.spot_fleet_requests[ident]
            found = {**backend.tags.get(ident, {}), **fleet.tags.get("spot-fleet-request", {})}
        elif kind == "fleet" and backend.get_fleet(ident) is not None:
            found = dict(backend.tags.get(ident, {}))  # EC2 Fleet keeps its tags in the backend's table
        elif kind == "instance" and backend.get_instance_by_id(ident) is not None:
            found = dict(backend.tags.get(ident, {}))
        elif kind == "launch-template" and ident in backend.launch_templates:
            # the backend's table, not the template's `tags` (moto copies those once, at creation)
            found = dict(backend.tags.get(ident, {}))
    elif service == "ecs":
        from moto.ecs.models import ecs_backends

        backend, (kind, _, ident) = ecs_backends[account][region], rest.partition("/")
        resource = None
        if kind == "cluster":
            resource = backend.clusters.get(ident)
        elif kind == "service" and ident.count("/") == 1:
            resource = backend.services.get(ident.replace("/", ":"))  # moto's key: "CLUSTER:SERVICE"
        found = {tag["key"]: tag["value"] for tag in resource.tags or ()} if resource is not None else None
    elif service == "cloudwatch" and rest.startswith("alarm:"):
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[account][region]
        if rest[len("alarm:"):] in backend.alarms:
            found = dict(backend.list_tags_for_resource(arn))
    elif service == "logs":
        from moto.logs.models import logs_backends

        match = re.fullmatch(r"log-group:([^:]+)(:log-stream:)?", rest)  # the group itself, not a stream
        backend = logs_backends[account][region]
        if match and match.group(1) in backend.groups:
            found = dict(backend.list_tags_for_resource(backend.groups[match.group(1)].arn))
    if found is None:
        raise _Unknown(f"no tags known for {arn} (not a resource the engine reads tags of, or it does not exist)")
    return found


@contextlib.contextmanager
def _several_resources(engine: Engine) -> Iterator[None]:
    """A request that touches several resources (DeleteAlarms with N names) is allowed only if
    every one is allowed, and denied if an explicit Deny matches any. moto checks one resource
    string per request; the resource patches below may hand it a list, checked here one by one.
    A request AWS also authorizes as another action (`_AlsoChecked`: CreateExportTask writes to
    S3 as its caller) is checked for that action after its own. Every check is recorded in
    `Engine.decisions`, one per action. While one resource is checked, the request and that
    resource are what `_condition_met` reads its context values from.
    """
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.check_action_permitted

    def check(self, resources: tuple[str, ...]) -> None:
        allowed = False
        try:
            for each in resources:
                token = _checking.set((self, each))  # what conditions are evaluated against
                try:
                    original(self, each)
                finally:
                    _checking.reset(token)
            allowed = True
        finally:
            engine._record(Decision(self._access_key.arn, self._action, resources, allowed))

    def check_action_permitted(self, resource):
        resources = tuple(resource) if isinstance(resource, (list, tuple)) else (resource,)
        own = tuple(each for each in resources if not isinstance(each, _AlsoChecked))
        check(self, own or ("*",))
        action = self._action
        try:
            for also in (each for each in resources if isinstance(each, _AlsoChecked)):
                self._action = also.action  # moto's denial names it, as AWS's would
                check(self, (also.resource,))
        finally:
            self._action = action

    with mock.patch.object(IAMRequestBase, "check_action_permitted", check_action_permitted):
        yield


@dataclass(frozen=True)
class _AlsoChecked:
    """A further authorization AWS makes for a request, as the same caller: `action` on `resource`."""

    action: str
    resource: str


def _safely(determine):
    """A resource lookup never breaks a request: anything unexpected leaves moto's "*"."""

    def wrapper(self):
        try:
            return determine(self) or "*"
        except Exception:  # noqa: BLE001 - an odd request is checked against "*", as moto would
            return "*"

    return wrapper


# CloudWatch Logs authorizes these against the log group, as ARN ...:log-group:NAME:log-stream:
# (an empty stream): AWS's own denials read "not authorized to perform: logs:CreateLogGroup on
# resource: arn:aws:logs:R:A:log-group:NAME:log-stream:", which is why its docs say to grant
# "log-group:NAME:*" for every action but the tagging ones (a bare "log-group:NAME" does not match).
_LOG_GROUP_ACTIONS = {
    "CreateLogGroup", "DeleteLogGroup", "DescribeLogStreams", "PutRetentionPolicy", "DeleteRetentionPolicy",
    "CreateExportTask", "ListTagsLogGroup", "TagLogGroup", "UntagLogGroup", "FilterLogEvents",
    "PutMetricFilter", "DeleteMetricFilter", "PutSubscriptionFilter", "DeleteSubscriptionFilter",
    "DescribeSubscriptionFilters", "AssociateKmsKey", "DisassociateKmsKey"}
# ... and these against the stream, ...:log-group:NAME:log-stream:STREAM (PutLogEvents and CreateLogStream:
# as AWS's denials name them; GetLogEvents: not confirmed, a "NAME:*" grant covers it either way)
_LOG_STREAM_ACTIONS = {"CreateLogStream", "DeleteLogStream", "PutLogEvents", "GetLogEvents"}
# The tagging APIs take the group's ARN itself (without ":*"), and IAM checks that ARN.
_TAGGING_ACTIONS = {"TagResource", "UntagResource", "ListTagsForResource"}


@contextlib.contextmanager
def _logs_resources(engine: Engine) -> Iterator[None]:
    """moto names no resource for CloudWatch Logs (it checks "*"), so an Allow on a log group or
    stream ARN never matches and a Deny on one never applies. Here the ARN AWS checks (above);
    DescribeLogGroups is checked against ...:log-group::log-stream: whatever the prefix (so only
    "log-group:*"-wide grants allow it, as on AWS). CreateExportTask: the group, and s3:PutObject on
    its destination (`_export_writes`). Other actions (DescribeExportTasks, ...)
    have no resource on AWS either: "*".
    """
    from moto.logs.responses import LogsResponse

    def determine(self):
        action = self._get_action()
        groups = f"arn:{self.partition}:logs:{self.region}:{self.current_account}:log-group:"
        if action == "DescribeLogGroups":
            return groups + ":log-stream:"
        if action in _TAGGING_ACTIONS:
            arn = self._get_param("resourceArn") or "*"
            return arn[:-2] if arn.endswith(":*") else arn
        if action == "StartQuery":
            names = [name for param in ("logGroupNames", "logGroupIdentifiers", "logGroupName")
                     for name in _listed(self._get_param(param))]
            return [_group_arn(groups, name) + ":log-stream:" for name in names] or "*"
        group = self._get_param("logGroupName") or self._get_param("logGroupIdentifier")
        if not group:
            return "*"
        if action in _LOG_STREAM_ACTIONS and self._get_param("logStreamName"):
            return f"{_group_arn(groups, group)}:log-stream:{self._get_param('logStreamName')}"
        if action == "CreateExportTask":
            return [f"{_group_arn(groups, group)}:log-stream:", *_export_writes(self)]
        if action in _LOG_GROUP_ACTIONS | _LOG_STREAM_ACTIONS:
            return f"{_group_arn(groups, group)}:log-stream:"
        return "*"

    with mock.patch.object(LogsResponse, "_determine_resource", _safely(determine), create=True):
        yield


def _export_writes(self) -> list[_AlsoChecked]:
    """CreateExportTask writes to S3 as its caller. AWS's API reference: "When you perform a
    CreateExportTask operation, you must use credentials that have permission to write to the S3
    bucket that you specify as the destination"; it first writes the object
    DESTINATION_PREFIX/aws-logs-write-test ("Permission Check Successful"), then the export's objects
    under DESTINATION_PREFIX/TASK_ID/. moto writes its test object at the bucket's root with no
    check at all, so a caller without s3:PutObject there exports anyway. Here the caller must be
    allowed s3:PutObject on the test object (prefix default "exportedlogs"; whether AWS joins a
    prefix ending in "/" with one slash or two is not documented: a grant on PREFIX* covers both).
    The objects of the export itself have ids not known before the call: not checked."""
    bucket = self._get_param("destination")
    if not bucket:
        return []
    prefix = (self._get_param("destinationPrefix") or "exportedlogs").rstrip("/")
    return [_AlsoChecked("s3:PutObject", f"arn:{self.partition}:s3:::{bucket}/{prefix}/aws-logs-write-test")]


def _group_arn(prefix: str, name_or_arn: str) -> str:
    """A log group's ARN from its name, or from logGroupIdentifier (name or ARN, maybe ending ":*")."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn[:-2] if name_or_arn.endswith(":*") else name_or_arn
    return prefix + name_or_arn


@contextlib.contextmanager
def _cloudwatch_resources(engine: Engine) -> Iterator[None]:
    """moto names no resource for CloudWatch (it checks "*"). Alarm calls are resource-scoped on
    AWS (arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME; the API docs: composite alarms need
    DescribeAlarms "scoped to *", i.e. narrower scopes exist); dashboards are
    arn:aws:cloudwatch::ACCOUNT:dashboard/NAME. A call naming several alarms is checked against
    each. DescribeAlarms without AlarmNames (a prefix, or all) stays "*": which alarms it touches
    is not known before it runs. Metric calls (PutMetricData, GetMetricData, ...) have no resource on AWS.
    """
    from moto.cloudwatch.responses import CloudWatchResponse

    def determine(self):
        action = self._get_action()
        alarm = f"arn:{self.partition}:cloudwatch:{self.region}:{self.current_account}:alarm:"
        dashboard = f"arn:{self.partition}:cloudwatch::{self.current_account}:dashboard/"
        if action in ("PutMetricAlarm", "PutCompositeAlarm", "SetAlarmState", "DescribeAlarmHistory"):
            name = self._get_param("AlarmName")
            if name and action != "SetAlarmState" and self._get_param("Tags"):
                # the API reference (PutMetricAlarm, Tags): "To use this field to set tags for an alarm when you
                # create it, you must be signed on with both the cloudwatch:PutMetricAlarm and
                # cloudwatch:TagResource permissions"
                return [alarm + name, _AlsoChecked("cloudwatch:TagResource", alarm + name)]
            return alarm + name if name else "*"
        if action in ("DeleteAlarms", "DescribeAlarms", "EnableAlarmActions", "DisableAlarmActions"):
            return [alarm + name for name in _listed(self._get_param("AlarmNames"))] or "*"
        if action in ("GetDashboard", "PutDashboard"):
            name = self._get_param("DashboardName")
            return dashboard + name if name else "*"
        if action == "DeleteDashboards":
            return [dashboard + name for name in _listed(self._get_param("DashboardNames"))] or "*"
        if action in _TAGGING_ACTIONS:
            return self._get_param("ResourceARN") or "*"
        return "*"

    with mock.patch.object(CloudWatchResponse, "_determine_resource", _safely(determine), create=True):
        yield


# EC2 and ECS: moto names no resource (it checks "*"). AWS scopes many of their actions to ARNs; the
# engine names them for the actions our monitor's policy narrows by tag (the resource types and ARN
# shapes of the Service Authorization Reference), so their aws:ResourceTag conditions can be evaluated
# per resource. Every other EC2 and ECS action stays "*" (only a "*" Resource allows it, as before).


@contextlib.contextmanager
def _ec2_resources(engine: Engine) -> Iterator[None]:
    """ModifySpotFleetRequest: arn:aws:ec2:REGION:ACCOUNT:spot-fleet-request/ID; CancelSpotFleetRequests:
    that ARN for each SpotFleetRequestId.N; ModifyFleet: arn:aws:ec2:REGION:ACCOUNT:fleet/ID; DeleteFleets: that ARN
    for each FleetId.N; TerminateInstances: arn:aws:ec2:REGION:ACCOUNT:instance/ID
    for each InstanceId.N; DeleteLaunchTemplate: arn:aws:ec2:REGION:ACCOUNT:launch-template/ID, by its
    LaunchTemplateId or the id its LaunchTemplateName has in moto ("*" when neither names one). A call naming
    several is allowed only if each is (`_several_resources`)."""
    from moto.ec2.responses import EC2Response

    def determine(self):
        action = self._get_action()
        prefix = f"arn:{self.partition}:ec2:{self.region}:{self.current_account}:"
        if action == "ModifySpotFleetRequest":
            fleet = self._get_param("SpotFleetRequestId")
            return prefix + "spot-fleet-request/" + fleet if fleet else "*"
        if action == "CancelSpotFleetRequests":
            return [prefix + "spot-fleet-request/" + fleet for fleet in _listed(self._get_param("SpotFleetRequestIds"))]
        if action == "ModifyFleet":
            fleet = self._get_param("FleetId")
            return prefix + "fleet/" + fleet if fleet else "*"
        if action == "DeleteFleets":
            return [prefix + "fleet/" + fleet for fleet in _listed(self._get_param("FleetIds"))]
        if action == "TerminateInstances":
            return [prefix + "instance/" + instance for instance in _listed(self._get_param("InstanceIds"))]
        if action == "DeleteLaunchTemplate":
            template = self._get_param("LaunchTemplateId") or self.ec2_backend.launch_template_name_to_ids.get(
                self._get_param("LaunchTemplateName"))
            return prefix + "launch-template/" + template if template else "*"
        return "*"

    with mock.patch.object(EC2Response, "_determine_resource", _safely(determine), create=True):
        yield


@contextlib.contextmanager
def _ecs_resources(engine: Engine) -> Iterator[None]:
    """UpdateService and DeleteService: the service, arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE
    (the long ARN format, the one service tags and tag-based authorization need; moto's own service
    ARN follows an account setting) from `cluster` (name or ARN, "default" when omitted) and
    `service` (name; an ARN is checked as given); DeleteCluster: arn:aws:ecs:REGION:ACCOUNT:cluster/NAME."""
    from moto.ecs.responses import EC2ContainerServiceResponse

    def determine(self):
        action = self._get_action()
        prefix = f"arn:{self.partition}:ecs:{self.region}:{self.current_account}:"
        cluster = self._get_param("cluster") or ("default" if action in ("UpdateService", "DeleteService") else None)
        if not cluster:
            return "*"
        cluster_name = cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster
        if action == "DeleteCluster":
            return cluster if cluster.startswith("arn:") else prefix + "cluster/" + cluster
        if action in ("UpdateService", "DeleteService"):
            service = self._get_param("service")
            if not service:
                return "*"
            return service if service.startswith("arn:") else f"{prefix}service/{cluster_name}/{service}"
        return "*"

    with mock.patch.object(EC2ContainerServiceResponse, "_determine_resource", _safely(determine), create=True):
        yield


@contextlib.contextmanager
def _sqs_resources(engine: Engine) -> Iterator[None]:
    """moto names the queue only from QueueUrl and only if the queue exists; otherwise "*". So
    GetQueueUrl and CreateQueue (which take QueueName) are checked against "*", and a grant of
    sqs:GetQueueUrl on the queue's ARN (what AWS checks) is denied. Here the ARN comes from
    QueueName or QueueUrl (its account from the URL's path), whether or not the queue exists, as
    on AWS, where a call on a missing queue is authorized first and then fails. ListQueues: "*".
    """
    from moto.sqs.responses import SQSResponse

    original = SQSResponse._determine_resource

    def determine(self):
        action = self._get_action()
        if action == "ListQueues":
            return "*"
        account = self.current_account
        name = self._get_param("QueueName") if action in ("GetQueueUrl", "CreateQueue") else None
        if name:
            account = self._get_param("QueueOwnerAWSAccountId") or account
        else:
            url = self._get_param("QueueUrl") or ""
            parts = url.rstrip("/").split("/")
            name = parts[-1] if url else None
            if len(parts) >= 2 and re.fullmatch(r"\d{12}", parts[-2]):
                account = parts[-2]
        if not name:
            return original(self)
        return f"arn:{self.partition}:sqs:{self.region}:{account}:{name}"

    with mock.patch.object(SQSResponse, "_determine_resource", _safely(determine)):
        yield


_denied_deletes: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("denied_deletes",
                                                                                  default=frozenset())


@contextlib.contextmanager
def _s3_delete_objects_per_key(engine: Engine) -> Iterator[None]:
    """DeleteObjects (batch) is authorized per key on AWS: s3:DeleteObject on bucket/KEY for each,
    and a key the caller may not delete comes back in Errors (AccessDenied) while the others are
    deleted. moto checks s3:DeleteObject once, against the *bucket* ARN: a grant on "bucket/runs/*"
    refuses every key and a grant on "*" deletes every key. Here the bucket-level check is skipped
    and each key is checked; moto's per-key loop (which consults the bucket policy) then reports
    the refused keys as AccessDenied errors.
    """
    import xmltodict
    from moto.s3.exceptions import BucketAccessDeniedError, S3AccessDeniedError
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response

    original_authorize = S3Response._authenticate_and_authorize_s3_action
    original_delete_keys = S3Response._bucket_response_delete_keys
    original_permission = FakeBucket.get_permission

    def authorize(self, bucket_name=None, key_name=None):
        if key_name is None and self.data.get("Action") == "DeleteObject" and self.is_delete_keys():
            return None  # DeleteObjects: no bucket-level check on AWS; the keys are checked below
        return original_authorize(self, bucket_name=bucket_name, key_name=key_name)

    def delete_keys(self, bucket_name, authenticated=True):
        objects = xmltodict.parse(self.body, strip_whitespace=False)["Delete"].get("Object", [])
        denied = set()
        for obj in objects if isinstance(objects, list) else [objects]:
            try:
                original_authorize(self, bucket_name=bucket_name, key_name=obj["Key"])
            except (BucketAccessDeniedError, S3AccessDeniedError):
                denied.add(f"arn:aws:s3:::{bucket_name}/{obj['Key']}")  # as moto's loop spells it
        token = _denied_deletes.set(frozenset(denied))
        try:
            return original_delete_keys(self, bucket_name, authenticated=True)
        finally:
            _denied_deletes.reset(token)

    def get_permission(self, action, resource):
        from moto.iam.access_control import PermissionResult

        if action == "s3:DeleteObject" and resource in _denied_deletes.get():
            return PermissionResult.DENIED
        return original_permission(self, action, resource)

    with mock.patch.object(S3Response, "_authenticate_and_authorize_s3_action", authorize), \
            mock.patch.object(S3Response, "_bucket_response_delete_keys", delete_keys), \
            mock.patch.object(FakeBucket, "get_permission", get_permission):
        yield


@contextlib.contextmanager
def _s3_put_with_acl(engine: Engine) -> Iterator[None]:
    """AWS: "To use PutObject with an ACL you need the s3:PutObjectAcl permission in addition to
    s3:PutObject" (the same for CreateMultipartUpload). moto checks s3:PutObject alone, so a policy
    missing the ACL grant would pass here and fail every upload on AWS. Here a write carrying a canned
    ACL (x-amz-acl) or a grant header (x-amz-grant-*) is also checked as s3:PutObjectAcl on its key.
    """
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.responses import S3Response

    original = S3Response._authenticate_and_authorize_s3_action

    def authorize(self, bucket_name=None, key_name=None):
        headers = {name.lower() for name in self.headers.keys()}  # noqa: SIM118 - werkzeug Headers iterate as pairs
        carries_acl = "x-amz-acl" in headers or any(name.startswith("x-amz-grant-") for name in headers)
        if key_name is None or self.method not in ("PUT", "POST") or not carries_acl:
            return original(self, bucket_name=bucket_name, key_name=key_name)
        resource = f"arn:aws:s3:::{bucket_name}/{key_name}"
        return self._authenticate_and_authorize_action(S3IAMRequest,
                                                       [resource, _AlsoChecked("s3:PutObjectAcl", resource)])

    with mock.patch.object(S3Response, "_authenticate_and_authorize_s3_action", authorize):
        yield


@contextlib.contextmanager
def _access_denied_in_protocol(engine: Engine) -> Iterator[None]:
    """moto answers an IAM denial with an XML body whatever the service's protocol, so for JSON
    (SQS, CloudWatch Logs, ECS) and CBOR (CloudWatch) services botocore cannot read the error
    code and reports "403" (the HTTP status) instead of AccessDenied / AccessDeniedException (Service
    Quotas, JSON too: AccessDeniedException, its API Reference's error for a denied caller).
    Here the denial is serialized by moto's own serializer for the service's protocol, with the
    code AWS sends, so code under test sees what it would see on AWS.
    """
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError
    from moto.core.responses import ActionResult
    from werkzeug.exceptions import HTTPException

    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    class Serialized(HTTPException):
        def __init__(self, status: int, body):
            super().__init__(description=body)
            self.code = status

    def authorize(self, resource="*"):
        try:
            return original(self, resource)
        except AccessDeniedError as error:
            code = _ACCESS_DENIED_CODE.get(getattr(self, "service_name", None))
            if code is None:
                raise
            _, headers, body = self.serialized(ActionResult(_denial(code, error.message)))
            self.response_headers.update({name: value for name, value in headers.items() if name != "status"})
            raise Serialized(error.code, body) from error

    # The service models do not list these codes (none models its auth errors), so moto's serializer warns
    # on each; the body and status it writes are right. (Filters are process-wide: server threads see it too.)
    with warnings.catch_warnings(), \
            mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", authorize):
        warnings.filterwarnings("ignore", category=UserWarning,
                                message=r"Exception\((AccessDenied|AccessDeniedException|UnauthorizedOperation)\) "
                                        r"with code ")
        yield


def _denial(code: str, message: str) -> Exception:
    # Defined outside moto's package: moto looks an exception's service up from its module name.
    from moto.core.exceptions import ServiceException

    class AccessDenied(ServiceException):
        pass

    AccessDenied.__module__ = __name__
    return AccessDenied(code, message)


# The error code each JSON/CBOR service sends for an IAM denial (query and XML services: moto's is right).
_ACCESS_DENIED_CODE = {"sqs": "AccessDenied", "logs": "AccessDeniedException", "ecs": "AccessDeniedException",
                       "cloudwatch": "AccessDenied", "ec2": "UnauthorizedOperation",
                       "service-quotas": "AccessDeniedException"}


# --- credentials holding exactly one role's or one policy's permissions -----------------------------

def _admin_client(service: str, region: str):
    # The test's own dummy keys (tests/conftest.py): no moto principal, so never checked.
    return boto3.client(service, region_name=region)


def role_session(role_name: str, region: str = DEFAULT_REGION) -> boto3.Session:
    """A session of `role_name` (sts:AssumeRole, made with the test's admin keys): its requests are
    checked against exactly the role's inline and attached policies, as an ECS task's are."""
    arn = _admin_client("iam", region).get_role(RoleName=role_name)["Role"]["Arn"]
    credentials = _admin_client("sts", region).assume_role(
        RoleArn=arn, RoleSessionName=f"iam-engine-{uuid.uuid4().hex[:8]}")["Credentials"]
    return boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                         aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"], region_name=region)


def policy_session(policy_document: dict | str, region: str = DEFAULT_REGION, name: str | None = None) -> boto3.Session:
    """A session of a new IAM user whose only permission is `policy_document` (inline)."""
    iam = _admin_client("iam", region)
    user = name or f"iam-engine-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    document = policy_document if isinstance(policy_document, str) else json.dumps(policy_document)
    iam.put_user_policy(UserName=user, PolicyName="under-test", PolicyDocument=document)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                         region_name=region)


@contextlib.contextmanager
def chalicelib_uses(session: boto3.Session) -> Iterator[None]:
    """Every client chalicelib.aws makes (any region) comes from `session` while open: runs our own
    code (worker, monitor) with a role's or a policy's credentials."""
    import chalicelib.aws as clients

    def new_session(region, profile):
        credentials = session.get_credentials().get_frozen_credentials()
        return boto3.Session(aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
                             aws_session_token=credentials.token, region_name=region or session.region_name)

    with clients.sessions_from(new_session):
        yield


def is_access_denied(error: Exception) -> bool:
    """True for an IAM denial as botocore reports it, whatever the service's error spelling."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation") or (
        code == "403" and response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403)
