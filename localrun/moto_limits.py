"""AWS's per-call limits, which moto (5.2.5, pinned) does not enforce: a call AWS refuses is refused here too.

Without them no test can see a call site that works on a small fleet and breaks at scale (TerminateInstances with
1,500 ids fails on AWS every tick, forever; moto takes it). Each limit is one patch on the moto handler of that
call, with the AWS API Reference page that states it; the refusal is the error code and HTTP status AWS answers
with. And the listings moto answers in one page whatever their size come in AWS's pages here, so every paginator
of ours is exercised.

Part of `localrun.moto_patches.patched()`: the tests and the emulator get these with the other patches.
`tests/integration/test_emulator_limits.py` proves each one.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

# The limits, as the API references state them.
EC2_TERMINATE_IDS = 1000
EC2_FILTER_VALUES = 200
EC2_FLEET_INSTANCES_PAGE = 1000
EC2_DESCRIBE_INSTANCE_IDS = 1000
EC2_INSTANCES_PAGE_MIN = 5
EC2_INSTANCES_PAGE_MAX = 1000
CLOUDWATCH_ALARM_NAMES = 100
CLOUDWATCH_ALARMS_PAGE = 50
CLOUDWATCH_ALARMS_PAGE_MAX = 100
ECS_CONTAINER_INSTANCES = 100
ECS_SERVICES = 10
ECS_TASKS = 100
ECS_LIST_PAGE = 100
SQS_BATCH_ENTRIES = 10
SQS_BATCH_BYTES = 262_144
S3_DELETE_KEYS = 1000
LOGS_PUT_EVENTS = 10_000
LOGS_PUT_BYTES = 1_048_576
LOGS_EVENT_OVERHEAD = 26
TAGGING_ARNS = 100


@contextlib.contextmanager
def enforced() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for patch in (_ec2_terminate_instances, _ec2_describe_instances_filters, _ec2_describe_instances_pages,
                      _ec2_fleet_instances_pages,
                      _cloudwatch_alarm_names, _cloudwatch_alarm_pages,
                      _ecs_describe_sizes, _ecs_container_instance_pages,
                      _sqs_batch_entries, _sqs_send_batch_bytes,
                      _s3_delete_objects, _logs_put_log_events, _tagging_resource_arns):
            stack.enter_context(patch())
        yield


@contextlib.contextmanager
def _replaced(cls: type, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """`cls.name` (a moto request handler) replaced by `wrap(current handler)` while open; leaving restores it."""
    own = cls.__dict__.get(name)
    current = getattr(cls, name)
    setattr(cls, name, functools.wraps(current)(wrap(current)))
    try:
        yield
    finally:
        if own is None:
            delattr(cls, name)
        else:
            setattr(cls, name, own)


def _checked(cls: type, name: str, check: Callable[[Any], None]) -> contextlib.AbstractContextManager[None]:
    """`cls.name` (a moto request handler) runs `check(handler)` first; `check` raises AWS's error to refuse."""
    def wrap(current: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            check(self)
            return current(self, *args, **kwargs)
        return handler

    return _replaced(cls, name, wrap)


def _paged(cls: type, name: str, keys: tuple[str, ...], size: Callable[[Any], int], token: str = "NextToken",
           next_token: str | None = None) -> contextlib.AbstractContextManager[None]:
    """`cls.name` answers with at most `size(handler)` items of its lists `keys` (taken in that order, as one list)
    and, when more remain, a token that a later call passes back as `token` to get the rest."""
    answer_token = next_token or token

    def wrap(current: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            answer = current(self, *args, **kwargs)
            result = answer.result
            items = [(key, item) for key in keys for item in result.get(key) or ()]
            start = int(self._get_param(token) or 0)
            end = start + size(self)
            for key in keys:
                if key in result:
                    result[key] = [item for found, item in items[start:end] if found == key]
            result.pop(answer_token, None)
            if end < len(items):
                result[answer_token] = str(end)
            return answer
        return handler

    return _replaced(cls, name, wrap)


def _page_size(self: Any, param: str, default: int, largest: int, smallest: int, error: Callable[[str], Exception],
               ) -> int:
    asked = self._get_param(param)
    if asked is None:
        return default
    if not smallest <= int(asked) <= largest:
        raise error(f"{param} must be between {smallest} and {largest}; got {asked}")
    return int(asked)


def _too_many(what: str, given: int, limit: int) -> str:
    return f"1 validation error detected: Value at '{what}' failed to satisfy constraint: Member must have length " \
           f"less than or equal to {limit} (given {given})"


# --------------------------------------------------------------------------- EC2


def _ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _ec2_terminate_instances() -> contextlib.AbstractContextManager[None]:
    """TerminateInstances takes "up to 1000 instance IDs" (InstanceIds, TerminateInstances, Amazon EC2 API Reference:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_TerminateInstances.html); a longer list is refused
    whole, nothing terminated (HTTP 400 InvalidParameterValue, the code EC2 gives a value out of its range: "Error
    codes for the Amazon EC2 API", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)."""
    from moto.ec2.responses import EC2Response

    def check(self) -> None:
        ids = self._get_param("InstanceIds", [])
        if len(ids) > EC2_TERMINATE_IDS:
            raise _ec2_error("InvalidParameterValue", f"The request takes up to {EC2_TERMINATE_IDS} instance IDs; "
                                                      f"{len(ids)} given")

    return _checked(EC2Response, "terminate_instances", check)


def _ec2_describe_instances_filters() -> contextlib.AbstractContextManager[None]:
    """EC2 refuses "too many filters or too many filter values" with FilterLimitExceeded (HTTP 400; "Error codes for
    the Amazon EC2 API", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html). AWS documents
    no number: 200 values in one filter is what users report hitting (apache/druid pull request 1954, "EC2
    autoscaler: avoid hitting aws filter limits"), so a filter naming every machine of a big fleet is refused. moto
    itself already refuses InstanceIds together with MaxResults (InvalidParameterCombination), as AWS does
    (DescribeInstances, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html)."""
    from moto.ec2.responses import EC2Response

    def check(self) -> None:
        for item in self._get_param("Filters", []) or ():
            values = item.get("Values") or item.get("Value") or []
            if len(values) > EC2_FILTER_VALUES:
                raise _ec2_error("FilterLimitExceeded", f"The filter '{item.get('Name')}' has {len(values)} values; "
                                                        f"the limit is {EC2_FILTER_VALUES}")

    return _checked(EC2Response, "describe_instances", check)


def _ec2_describe_instances_pages() -> contextlib.AbstractContextManager[None]:
    """moto answers DescribeInstances 100 reservations a page when no MaxResults is given, whatever was asked, and a
    fleet's machines are a reservation each: 1,000 machines took 10 calls. AWS pages only at MaxResults (5-1000) and
    cannot take MaxResults with InstanceIds (DescribeInstances, Amazon EC2 API Reference:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html), so a call by ids is answered
    whole; and a call without MaxResults is "unpaginated", answered whole at the risk of throttling and time-outs
    ("Pagination in the Amazon EC2 API", EC2 developer guide:
    https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-pagination.html). The same guide says to specify "no more
    than 1,000 IDs in a single call" but documents no error for more: refused here with HTTP 400
    InvalidParameterValue, the code EC2 gives a value out of its range ("Error codes for the Amazon EC2 API",
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html), as TerminateInstances' 1,000 ids
    are. The token is an offset into the answer, as in the other paged listings here."""
    from moto.ec2.responses import EC2Response

    def invalid(message: str) -> Exception:
        return _ec2_error("InvalidParameterValue", message)

    def wrap(current: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            ids = self._get_param("InstanceIds", []) or []
            if len(ids) > EC2_DESCRIBE_INSTANCE_IDS:
                raise invalid(f"The request takes up to {EC2_DESCRIBE_INSTANCE_IDS} instance IDs; {len(ids)} given")
            size = None if ids or self._get_param("MaxResults") is None else _page_size(
                self, "MaxResults", EC2_INSTANCES_PAGE_MAX, EC2_INSTANCES_PAGE_MAX, EC2_INSTANCES_PAGE_MIN, invalid)
            token = self._get_param("NextToken")
            if token is not None and not str(token).isdigit():
                raise invalid(f"The token '{token}' is not valid")
            start = int(token or 0)
            asked = self._get_param
            # moto's handler reads MaxResults and NextToken through _get_param: it is made to answer whole, and
            # the page is cut from that (its InstanceIds-with-MaxResults refusal reads the request itself, and stays)
            whole = {"MaxResults": sys.maxsize, "NextToken": None}
            self._get_param = lambda name, *rest: whole[name] if name in whole else asked(name, *rest)
            try:
                answer = current(self, *args, **kwargs)
            finally:
                del self._get_param
            answer.result.pop("NextToken", None)
            found = answer.result.get("Reservations") or []
            end = len(found) if size is None else start + size
            answer.result["Reservations"] = found[start:end]
            if end < len(found):
                answer.result["NextToken"] = str(end)
            return answer
        return handler

    return _replaced(EC2Response, "describe_instances", wrap)


@contextlib.contextmanager
def _ec2_fleet_instances_pages() -> Iterator[None]:
    """moto's DescribeFleetInstances and DescribeSpotFleetInstances answer with every machine in one page. AWS
    answers with at most MaxResults (1-1000) and a NextToken for the rest (DescribeFleetInstances,
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeFleetInstances.html, and
    DescribeSpotFleetInstances, .../API_DescribeSpotFleetInstances.html); a fleet of 1,500 needs two calls there,
    and here."""
    from moto.ec2.responses import EC2Response

    def size(self) -> int:
        return _page_size(self, "MaxResults", EC2_FLEET_INSTANCES_PAGE, EC2_FLEET_INSTANCES_PAGE, 1,
                          lambda message: _ec2_error("InvalidParameterValue", message))

    with _paged(EC2Response, "describe_fleet_instances", ("ActiveInstances",), size), \
            _paged(EC2Response, "describe_spot_fleet_instances", ("ActiveInstances",), size):
        yield


# --------------------------------------------------------------------------- CloudWatch


@contextlib.contextmanager
def _cloudwatch_alarm_names() -> Iterator[None]:
    """DeleteAlarms deletes "up to 100 alarms in one operation", and DescribeAlarms takes at most 100 AlarmNames
    (AlarmNames: "Maximum number of 100 items", DeleteAlarms and DescribeAlarms, Amazon CloudWatch API Reference:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DeleteAlarms.html,
    .../API_DescribeAlarms.html). A longer list fails the API's input constraints: HTTP 400 ValidationError ("Common
    Errors", .../CommonErrors.html)."""
    from moto.cloudwatch.exceptions import ValidationError
    from moto.cloudwatch.responses import CloudWatchResponse

    def check(self) -> None:
        names = self._get_param("AlarmNames", []) or []
        if len(names) > CLOUDWATCH_ALARM_NAMES:
            raise ValidationError(_too_many("alarmNames", len(names), CLOUDWATCH_ALARM_NAMES))

    with _checked(CloudWatchResponse, "delete_alarms", check), _checked(CloudWatchResponse, "describe_alarms", check):
        yield


def _cloudwatch_alarm_pages() -> contextlib.AbstractContextManager[None]:
    """moto's DescribeAlarms answers with every alarm in one page. AWS gives at most MaxRecords (1-100, 50 when not
    given) and a NextToken for the rest (DescribeAlarms, Amazon CloudWatch API Reference:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html): a run with 1,500
    machine alarms takes 30 calls there, and here."""
    from moto.cloudwatch.exceptions import ValidationError
    from moto.cloudwatch.responses import CloudWatchResponse

    def size(self) -> int:
        return _page_size(self, "MaxRecords", CLOUDWATCH_ALARMS_PAGE, CLOUDWATCH_ALARMS_PAGE_MAX, 1, ValidationError)

    return _paged(CloudWatchResponse, "describe_alarms", ("MetricAlarms", "CompositeAlarms"), size)


# --------------------------------------------------------------------------- ECS


@contextlib.contextmanager
def _ecs_describe_sizes() -> Iterator[None]:
    """ECS describes "up to 100" container instances (DescribeContainerInstances), "up to 10" services
    (DescribeServices) and "up to 100" tasks (DescribeTasks) a call (Amazon ECS API Reference:
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeContainerInstances.html,
    .../API_DescribeServices.html, .../API_DescribeTasks.html), and refuses a longer list with HTTP 400
    InvalidParameterException ("The specified parameter isn't valid", in each page's Errors)."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse

    def at_most(param: str, limit: int) -> Callable[[Any], None]:
        def check(self) -> None:
            given = self._get_param(param, []) or []
            if len(given) > limit:
                raise InvalidParameterException(f"{param} can have at most {limit} items; {len(given)} given")
        return check

    with contextlib.ExitStack() as stack:
        for name, param, limit in (("describe_container_instances", "containerInstances", ECS_CONTAINER_INSTANCES),
                                   ("describe_services", "services", ECS_SERVICES),
                                   ("describe_tasks", "tasks", ECS_TASKS)):
            stack.enter_context(_checked(EC2ContainerServiceResponse, name, at_most(param, limit)))
        yield


def _ecs_container_instance_pages() -> contextlib.AbstractContextManager[None]:
    """moto's ListContainerInstances answers with every container instance in one page. AWS gives at most
    maxResults (1-100, 100 when not given) and a nextToken for the rest (ListContainerInstances, Amazon ECS API
    Reference: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListContainerInstances.html)."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse

    def size(self) -> int:
        return _page_size(self, "maxResults", ECS_LIST_PAGE, ECS_LIST_PAGE, 1, InvalidParameterException)

    return _paged(EC2ContainerServiceResponse, "list_container_instances", ("containerInstanceArns",), size,
                  token="nextToken")


# --------------------------------------------------------------------------- SQS


@contextlib.contextmanager
def _sqs_batch_entries() -> Iterator[None]:
    """Every SQS batch call takes at most 10 entries and refuses more with HTTP 400
    AWS.SimpleQueueService.TooManyEntriesInBatchRequest (DeleteMessageBatch and ChangeMessageVisibilityBatch, Amazon
    SQS API Reference: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessageBatch.html,
    .../API_ChangeMessageVisibilityBatch.html). moto checks SendMessageBatch only."""
    from moto.sqs.exceptions import TooManyEntriesInBatchRequest
    from moto.sqs.responses import SQSResponse

    def check(self) -> None:
        entries = self._get_param("Entries", []) or []
        if len(entries) > SQS_BATCH_ENTRIES:
            raise TooManyEntriesInBatchRequest(len(entries))

    with _checked(SQSResponse, "delete_message_batch", check), \
            _checked(SQSResponse, "change_message_visibility_batch", check):
        yield


def _sqs_send_batch_bytes() -> contextlib.AbstractContextManager[None]:
    """SendMessageBatch refuses a batch whose messages total more than 256 KiB with HTTP 400
    AWS.SimpleQueueService.BatchRequestTooLong, a message's size being its body and its attributes' names, types and
    values (SendMessageBatch and SendMessage's MessageAttributes, Amazon SQS API Reference:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html). moto counts
    the bodies only; here the attributes count too."""
    from moto.sqs.exceptions import BatchRequestTooLong
    from moto.sqs.responses import SQSResponse

    def attribute_bytes(attributes: dict[str, Any]) -> int:
        total = 0
        for name, value in (attributes or {}).items():
            data = value.get("StringValue") or value.get("BinaryValue") or ""
            total += len(name.encode()) + len(str(value.get("DataType", "")).encode()) + len(
                data if isinstance(data, bytes) else str(data).encode())
        return total

    def check(self) -> None:
        total = sum(len(str(entry.get("MessageBody", "")).encode()) + attribute_bytes(entry.get("MessageAttributes"))
                    for entry in self._get_param("Entries", []) or ())
        if total > SQS_BATCH_BYTES:
            raise BatchRequestTooLong(total)

    return _checked(SQSResponse, "send_message_batch", check)


# --------------------------------------------------------------------------- S3


def _s3_delete_objects() -> contextlib.AbstractContextManager[None]:
    """DeleteObjects deletes "up to 1,000 objects" a request (DeleteObjects, Amazon S3 API Reference:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html); S3 refuses a longer list as a body
    that does not validate against its schema, HTTP 400 MalformedXML ("Error responses",
    https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html)."""
    from xml.etree import ElementTree

    from moto.s3.exceptions import MalformedXML
    from moto.s3.responses import S3Response

    def check(self) -> None:
        try:
            delete = ElementTree.fromstring(self.body or b"<Delete/>")
        except ElementTree.ParseError:
            return  # moto answers a body it cannot read itself
        if sum(1 for item in delete if item.tag.rsplit("}", 1)[-1] == "Object") > S3_DELETE_KEYS:
            raise MalformedXML()

    return _checked(S3Response, "_bucket_response_delete_keys", check)


# --------------------------------------------------------------------------- CloudWatch Logs


def _logs_put_log_events() -> contextlib.AbstractContextManager[None]:
    """PutLogEvents takes at most 10,000 events and 1,048,576 bytes, counted as each message's UTF-8 bytes plus 26
    (PutLogEvents, Amazon CloudWatch Logs API Reference:
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html); a larger batch is
    refused with HTTP 400 InvalidParameterException. The worker's job logs go through watchtower, which must batch
    within these."""
    from moto.logs.exceptions import InvalidParameterException
    from moto.logs.responses import LogsResponse

    def check(self) -> None:
        events = self._get_param("logEvents", []) or []
        if len(events) > LOGS_PUT_EVENTS:
            raise InvalidParameterException(_too_many("logEvents", len(events), LOGS_PUT_EVENTS))
        size = sum(len(str(event.get("message", "")).encode()) + LOGS_EVENT_OVERHEAD for event in events)
        if size > LOGS_PUT_BYTES:
            raise InvalidParameterException(f"Upload too large: {size} bytes exceeds limit of {LOGS_PUT_BYTES}")

    return _checked(LogsResponse, "put_log_events", check)


# --------------------------------------------------------------------------- Resource Groups Tagging API


def _tagging_resource_arns() -> contextlib.AbstractContextManager[None]:
    """GetResources takes at most 100 ARNs in ResourceARNList (GetResources, Resource Groups Tagging API Reference:
    https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html: "Array Members:
    Minimum number of 1 item. Maximum number of 100 items"), refused with HTTP 400 InvalidParameterException."""
    from moto.resourcegroupstaggingapi.exceptions import ResourceGroupsTaggingAPIError
    from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse

    def check(self) -> None:
        arns = self._get_param("ResourceARNList", []) or []
        if len(arns) > TAGGING_ARNS:
            raise ResourceGroupsTaggingAPIError("InvalidParameterException",
                                                _too_many("resourceARNList", len(arns), TAGGING_ARNS))

    return _checked(ResourceGroupsTaggingAPIResponse, "get_resources", check)

