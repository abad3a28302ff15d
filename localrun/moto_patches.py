"""Where moto (5.2.5, pinned) differs from AWS in ways that matter to us: patched here, and only here.

Used by the tests (one session fixture in tests/conftest.py) and by local mode,
which hosts a moto server in its own process. `tests/unit/test_moto_patches.py`
fails loudly if a moto upgrade moves what these patches replace.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """Re-entrant: inside an open `patched()` (the test session's), another one (an emulator's) changes nothing,
    so no patch wraps itself."""
    if _active:
        yield
        return
    with contextlib.ExitStack() as stack:
        for patch in (_sqs_clock, _sqs_lazy_attributes, _sqs_dead_letter_source, _spot_fleet_cancel,
                      _spot_fleet_capacity, _s3_atomic_put, _rest_api_import_of_swagger, _spot_fleet_created_tags,
                      _backend_lookup_once, _spot_fleet_template_metadata_options,
                      _ecs_service_deployment_configuration,
                      _ec2_fleet_modify, _ec2_fleet_launch, _ec2_fleet_delete,
                      _fleet_history,
                      _spot_vcpu_quotas,
                      _spot_prices,
                      _ec2_instance_types_from_requirements,
                      _ec2_image_deprecation,
                      _ec2_fleet_instance_requirements,
                      _aws_limits):
            stack.enter_context(patch())
        _active.append(True)
        try:
            yield
        finally:
            _active.pop()


_active: list[bool] = []


def _aws_limits() -> contextlib.AbstractContextManager[None]:
    """AWS's per-call limits and page sizes, which moto does not apply: one patch per limit, in their own module."""
    from localrun.moto_limits import enforced

    return enforced()


@contextlib.contextmanager
def _sqs_clock() -> Iterator[None]:
    """moto's SQS is quadratic in queue depth, and that is all clock, not logic.

    Every message's visibility check and every send (which reads all queue
    attributes, counts included) calls moto's `unix_time`, which builds two
    datetimes per call; a receive also re-reads every queue attribute per
    message for the retention check. 2,000 messages then take 30 s to send and
    0.9 s per receive. Here the clock is `time.time()` (same values; freezegun
    is not supported, and nothing of ours uses it) and the retention check reads
    the one attribute it needs. Behaviour is unchanged.
    """
    from moto.core.utils import unix_time
    from moto.sqs import models

    original_time, original_millis = models.unix_time, models.unix_time_millis
    original_retention = models.SQSBackend.is_message_valid_based_on_retention_period

    def retention_ok(backend, queue_name, message):
        retention = int(backend.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    models.unix_time = lambda dt=None: time.time() if dt is None else original_time(dt)
    models.unix_time_millis = lambda dt=None: time.time() * 1000 if dt is None else original_millis(dt)
    models.SQSBackend.is_message_valid_based_on_retention_period = retention_ok
    try:
        yield
    finally:
        models.unix_time, models.unix_time_millis = original_time, original_millis
        models.SQSBackend.is_message_valid_based_on_retention_period = original_retention


@contextlib.contextmanager
def _backend_lookup_once() -> Iterator[None]:
    """moto's server finds the service of every request by host name, under one lock for all its request
    threads, and that lookup lists moto's package folder and stats each of its ~150 entries (`list_of_moto_modules`)
    before trying the URL patterns: a quarter of the emulator's CPU in a local run of 2,000 no-op jobs (measured
    with py-spy). The answer for a host never changes while the server runs, so it is looked up once per host
    name. Behaviour is unchanged.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict[Any, Any] = {}

    def get_backend_for_host(self, host):
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    try:
        yield
    finally:
        DomainDispatcherApplication.get_backend_for_host = original


@contextlib.contextmanager
def _sqs_lazy_attributes() -> Iterator[None]:
    """moto's SQS send is quadratic in queue depth: every SendMessage reads `queue.attributes` for one
    flag (ContentBasedDeduplication), and that property counts every message three times (visible,
    in flight, delayed). 10,000 jobs then take 33 s to send, 100,000 about an hour. Here `attributes`
    is a mapping that computes a value only when it is read, with the same names and values (booleans
    as "true"/"false", Policy and RedrivePolicy only when set). Behaviour is unchanged.
    """
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue

    original = Queue.attributes

    class LazyAttributes(Mapping):
        def __init__(self, queue: Queue):
            self._queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            names += [name for name, on in (("Policy", queue.policy), ("RedrivePolicy", queue.redrive_policy)) if on]
            self._names = names

        def __getitem__(self, name: str) -> Any:
            if name not in self._names:
                raise KeyError(name)
            if name == "Policy":
                return self._queue.policy
            if name == "RedrivePolicy":
                return json.dumps(self._queue.redrive_policy)
            value = getattr(self._queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __iter__(self):
            return iter(self._names)

        def __len__(self) -> int:
            return len(self._names)

    Queue.attributes = property(LazyAttributes)
    try:
        yield
    finally:
        Queue.attributes = original


DEAD_LETTER_SOURCE_ARN = "DeadLetterQueueSourceArn"


@contextlib.contextmanager
def _sqs_dead_letter_source() -> Iterator[None]:
    """moto moves a message to its queue's dead-letter queue as AWS does, but without the system attribute AWS
    stamps on it then: DeadLetterQueueSourceArn, the ARN of the queue SQS moved it from, which ReceiveMessage
    returns when MessageSystemAttributeNames (or the older AttributeNames) asks for it or for All
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html; a valid key of
    the Message's Attributes, API_Message.html). A sender cannot set it (SendMessage takes AWSTraceHeader as its
    only system attribute), so it is the proof of a dead-letter message's origin the project relies on: DS's
    default dead-letter queue is shared by every run, and any job can send to its own run's queue a body whose
    `dsr-app` names another run (chalicelib/monitor/deadletters.py).

    Here a message remembers the queue it was last put in; when it is put in another (moto's move, the only way
    a message object changes queue), it is stamped with the one it came from, before anyone can receive it there.
    ReceiveMessage then returns the stamp as AWS does. Behaviour is otherwise unchanged.
    """
    from moto.sqs.models import Queue
    from moto.sqs.responses import SQSResponse

    original_add, original_receive = Queue.add_message, SQSResponse.receive_message
    held_by, moved_from = "_dsr_queue_arn", "_dsr_dead_letter_source_arn"

    @functools.wraps(original_add)
    def add_message(self, message) -> None:
        previous = getattr(message, held_by, None)
        if previous is not None and previous != self.queue_arn:
            setattr(message, moved_from, previous)
        setattr(message, held_by, self.queue_arn)
        original_add(self, message)

    @functools.wraps(original_receive)
    def receive_message(self):
        answer = original_receive(self)
        asked = set(self._get_param("MessageSystemAttributeNames", [])) | set(self._get_param("AttributeNames", []))
        messages = answer.result.get("Messages", []) if isinstance(answer.result, dict) else []
        if messages and asked & {"All", DEAD_LETTER_SOURCE_ARN}:
            held = {message.id: message for message in self.sqs_backend.get_queue(self._get_queue_name())._messages}
            for received in messages:
                source = getattr(held.get(received["MessageId"]), moved_from, None)
                if source is not None:
                    received.setdefault("Attributes", {})[DEAD_LETTER_SOURCE_ARN] = source
        return answer

    Queue.add_message, SQSResponse.receive_message = add_message, receive_message
    try:
        yield
    finally:
        Queue.add_message, SQSResponse.receive_message = original_add, original_receive


@contextlib.contextmanager
def _spot_fleet_cancel() -> Iterator[None]:
    """Two gaps in moto's CancelSpotFleetRequests with TerminateInstances=True.

    - It raises "No instances specified" when the fleet's machines were terminated
      one by one (it calls TerminateInstances with an empty list); AWS cancels such
      a fleet without complaint.
    - It forgets the fleet at once, and a second cancel (two reconciles of one run
      at the same moment) then fails with a KeyError (HTTP 500). AWS answers a
      cancel of a cancelled or unknown fleet with success, listing the id under
      UnsuccessfulFleetRequests; here such ids are dropped from the call, under a
      lock so two threads cannot both pass the check and both delete.
    """
    from moto.ec2.models.spot_requests import SpotFleetRequest, SpotRequestBackend

    original = SpotFleetRequest.terminate_instances
    original_cancel = SpotRequestBackend.cancel_spot_fleet_requests
    lock = threading.Lock()

    def terminate_instances(self) -> None:
        if any(request.instance.state != "terminated" for request in self.spot_requests):
            original(self)

    def cancel_spot_fleet_requests(self, spot_fleet_request_ids, terminate_instances):
        with lock:
            known = [fleet_id for fleet_id in spot_fleet_request_ids if fleet_id in self.spot_fleet_requests]
            return original_cancel(self, known, terminate_instances)

    SpotFleetRequest.terminate_instances = terminate_instances
    SpotRequestBackend.cancel_spot_fleet_requests = cancel_spot_fleet_requests
    try:
        yield
    finally:
        SpotFleetRequest.terminate_instances = original
        SpotRequestBackend.cancel_spot_fleet_requests = original_cancel


@contextlib.contextmanager
def _spot_fleet_capacity() -> Iterator[None]:
    """moto counts a fleet's fulfilled capacity up at each launch and never down: a machine
    terminated (an interruption, the monitor releasing it) still counts, so raising the target
    again (ModifySpotFleetRequest) launches nothing. AWS counts the running machines, and a
    maintain-type fleet launches replacements while it is below its target. Here the fulfilled
    capacity is the weight of the fleet's machines that are not terminated, so a modify to a
    target above that launches the difference (local mode relies on it to replace interrupted
    machines, as AWS would)."""
    from moto.ec2.models.spot_requests import SpotFleetRequest

    def live_capacity(self) -> float:
        total = 0.0
        for request in self.spot_requests:
            instance = request.instance
            if instance.state in ("terminated", "shutting-down"):
                continue
            weights = [spec.weighted_capacity for spec in self.launch_specs
                       if spec.instance_type == instance.instance_type]
            total += float(weights[0]) if weights else 1.0
        return total

    def ignore_count(self, value) -> None:
        pass  # moto's own += and = 0.0 bookkeeping; the live count above replaces it

    had = "fulfilled_capacity" in SpotFleetRequest.__dict__
    original = SpotFleetRequest.__dict__.get("fulfilled_capacity")
    SpotFleetRequest.fulfilled_capacity = property(live_capacity, ignore_count)
    try:
        yield
    finally:
        if had:
            SpotFleetRequest.fulfilled_capacity = original
        else:
            del SpotFleetRequest.fulfilled_capacity


@contextlib.contextmanager
def _s3_atomic_put() -> Iterator[None]:
    """moto's conditional PutObject (If-None-Match: *, If-Match: ETag) is check-then-write, not atomic.

    `S3Response.put_object` looks the key up, raises PreconditionFailed if the condition fails, and only
    later stores the object, with no lock between: two threads (two start-clusters claiming one run, on
    the threaded moto server or in-process) can both pass the check and both "win". AWS decides each
    conditional write atomically (one 200, the other 412, or 409 ConditionalRequestConflict). Here every
    PutObject, conditional or not, runs its check and its write under one lock, so a conditional write
    is decided against what is really stored. Behaviour is otherwise unchanged (bodies are already read
    when the handler runs; moto holds the GIL throughout anyway).
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    @functools.wraps(original)
    def put_object(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    S3Response.put_object = put_object
    try:
        yield
    finally:
        S3Response.put_object = original


@contextlib.contextmanager
def _rest_api_import_of_swagger() -> Iterator[None]:
    """moto imports only OpenAPI 3 documents, and reads `info.description` unconditionally (KeyError: 500).

    Chalice deploys its REST API with ImportRestApi and a Swagger 2.0 document without a description, which
    AWS accepts; `chalice deploy` against moto fails at that last step. What moto reads of a document (paths,
    methods, responses, x-amazon-apigateway-integration) has the same shape in both versions, so a Swagger
    document is imported as the OpenAPI 3 one it would be, with an empty description as AWS stores it. AWS
    also turns a method's `security` naming a `securityDefinitions` entry of authtype awsSigv4 into the
    method's AWS_IAM authorization, which moto's import leaves out: added here, so the deployed API can be
    read back as AWS holds it.
    """
    from moto.apigateway.models import APIGatewayBackend

    original_import, original_put = APIGatewayBackend.import_rest_api, APIGatewayBackend.put_rest_api

    def as_openapi3(api_doc):
        if not isinstance(api_doc, dict):
            return api_doc
        info = api_doc.get("info") if isinstance(api_doc.get("info"), dict) else {}
        document = {**api_doc, "info": {"description": "", **info}}
        if document.pop("swagger", None) is not None:
            document["openapi"] = "3.0.1"
        return document

    def iam_methods(api_doc):
        definitions = api_doc.get("securityDefinitions", {}) if isinstance(api_doc, dict) else {}
        sigv4 = {name for name, spec in definitions.items()
                 if isinstance(spec, dict) and spec.get("x-amazon-apigateway-authtype") == "awsSigv4"}
        for path, methods in (api_doc.get("paths", {}) if isinstance(api_doc, dict) else {}).items():
            for verb, spec in methods.items():
                if any(name in sigv4 for requirement in spec.get("security", ()) for name in requirement):
                    yield path, verb.upper()

    @functools.wraps(original_import)
    def import_rest_api(self, api_doc, *args, **kwargs):
        api = original_import(self, as_openapi3(api_doc), *args, **kwargs)
        for path, verb in iam_methods(api_doc):
            api.get_resource_for_path(path).get_method(verb).authorization_type = "AWS_IAM"
        return api

    @functools.wraps(original_put)
    def put_rest_api(self, function_id, api_doc, *args, **kwargs):
        api = original_put(self, function_id, as_openapi3(api_doc), *args, **kwargs)
        for path, verb in iam_methods(api_doc):
            api.get_resource_for_path(path).get_method(verb).authorization_type = "AWS_IAM"
        return api

    APIGatewayBackend.import_rest_api, APIGatewayBackend.put_rest_api = import_rest_api, put_rest_api
    try:
        yield
    finally:
        APIGatewayBackend.import_rest_api, APIGatewayBackend.put_rest_api = original_import, original_put


@contextlib.contextmanager
def _spot_fleet_created_tags() -> Iterator[None]:
    """moto keeps tags put with CreateTags on a spot fleet request apart from the request: DescribeSpotFleetRequests
    shows only the tags given at RequestSpotFleet. AWS shows both. Adopting a Distributed-Something run tags its
    fleet with CreateTags (DS requested it untagged), and the monitor reads the tag back before it acts."""
    from moto.ec2.models.spot_requests import SpotFleetRequest

    original = SpotFleetRequest.tag_set

    def tag_set(self) -> list[dict[str, str]]:
        tags = {item["Key"]: item["Value"] for item in original.fget(self)}
        tags.update(self.ec2_backend.tags.get(self.id, {}))
        return [{"Key": key, "Value": value} for key, value in tags.items()]

    SpotFleetRequest.tag_set = property(tag_set)
    try:
        yield
    finally:
        SpotFleetRequest.tag_set = original


@contextlib.contextmanager
def _spot_fleet_template_metadata_options() -> Iterator[None]:
    """moto launches a spot fleet's machines from its launch templates' ImageId, type, user data and tags, but drops
    the template's MetadataOptions: every machine shows moto's default (HttpTokens optional). On AWS an instance
    launched from a launch template takes its MetadataOptions ("Configure instance metadata options for new
    instances", Amazon EC2 User Guide: "in a launch template"). Here each machine a fleet launches gets the
    MetadataOptions of the launch template config for its instance type (moto reads each config's latest version
    and its first override, and so does this)."""
    from moto.ec2.models.instances import MetadataOptions
    from moto.ec2.models.spot_requests import SpotFleetRequest

    original_init, original_create = SpotFleetRequest.__init__, SpotFleetRequest.create_spot_requests

    @functools.wraps(original_init)
    def __init__(self, ec2_backend, *args, **kwargs):
        configs = kwargs.get("launch_template_config", args[7] if len(args) > 7 else None)
        self._template_metadata_options = {}
        for config in configs or ():
            spec = config.get("LaunchTemplateSpecification", {})
            template = (ec2_backend.get_launch_template(spec["LaunchTemplateId"]) if "LaunchTemplateId" in spec
                        else ec2_backend.get_launch_template_by_name(spec["LaunchTemplateName"]))
            data = template.latest_version().data
            overrides = config.get("Overrides") or [{}]
            instance_type = overrides[0].get("InstanceType") or data.get("InstanceType")
            if data.get("MetadataOptions"):
                self._template_metadata_options.setdefault(instance_type, data["MetadataOptions"])
        original_init(self, ec2_backend, *args, **kwargs)

    @functools.wraps(original_create)
    def create_spot_requests(self, weight_to_add):
        before = len(self.spot_requests)
        original_create(self, weight_to_add)
        for request in self.spot_requests[before:]:
            options = self._template_metadata_options.get(request.instance.instance_type)
            if options:
                request.instance.metadata_options = MetadataOptions(options)

    SpotFleetRequest.__init__, SpotFleetRequest.create_spot_requests = __init__, create_spot_requests
    try:
        yield
    finally:
        SpotFleetRequest.__init__, SpotFleetRequest.create_spot_requests = original_init, original_create


@contextlib.contextmanager
def _ecs_service_deployment_configuration() -> Iterator[None]:
    """moto's CreateService drops `deploymentConfiguration` (UpdateService keeps it): DescribeServices then shows
    none. AWS stores what CreateService was given and shows it ("deploymentConfiguration", CreateService and
    DescribeServices in the Amazon ECS API Reference). setup sets the minimum healthy percent to 0 so that ECS's
    spot draining stops a reclaimed machine's tasks at once (the SIGTERM that releases their jobs) instead of
    waiting for replacements that have no room; here the service keeps it, as on AWS."""
    from moto.ecs.responses import EC2ContainerServiceResponse

    original = EC2ContainerServiceResponse.create_service

    @functools.wraps(original)
    def create_service(self):
        result = original(self)
        configuration = self._get_param("deploymentConfiguration")
        if configuration:
            service = self.ecs_backend._get_service(self._get_param("cluster", "default"),
                                                    self._get_param("serviceName"))
            service.deployment_configuration = configuration
        return result

    EC2ContainerServiceResponse.create_service = create_service
    try:
        yield
    finally:
        EC2ContainerServiceResponse.create_service = original


# --------------------------------------------------------------------------- EC2 Fleet (start-cluster's fleets)


def _ec2_fleet_live_capacity(fleet) -> float:
    """The weight of the fleet's machines that are not terminated: what AWS counts as fulfilled."""
    total = 0.0
    for request in fleet.spot_requests:
        if request.instance.state not in ("terminated", "shutting-down"):
            total += float(getattr(request.launch_spec, "weighted_capacity", 1) or 1)
    for item in fleet.on_demand_instances:
        if item["instance"].state not in ("terminated", "shutting-down"):
            total += 1.0
    return total


@contextlib.contextmanager
def _ec2_fleet_modify() -> Iterator[None]:
    """moto has no ModifyFleet ("not implemented"), and counts a fleet's fulfilled capacity up at each launch and
    never down. AWS's ModifyFleet sets the total target capacity and, for a fleet of type maintain, the fleet
    launches machines while it is below its target and, with ExcessCapacityTerminationPolicy "termination",
    terminates machines above it ("Modify an EC2 Fleet", Amazon EC2 User Guide; ModifyFleet, EC2 API Reference).
    Here the fulfilled capacity is the live machines' weight, and ModifyFleet does exactly that at once (the
    monitor sets the target with no-termination and ends the idle machines it chose itself; local mode's spot
    market sets the target to what it is to have a reclaimed machine replaced, which AWS does on its own)."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.responses.fleets import Fleets

    def modify_fleet(self) -> ActionResult:
        fleet = self.ec2_backend.get_fleet(self._get_param("FleetId"))
        self.error_on_dryrun()
        if fleet is None:
            raise InvalidFleetId(self._get_param("FleetId"))
        policy = self._get_param("ExcessCapacityTerminationPolicy")
        if policy:
            fleet.excess_capacity_termination_policy = policy
        target = self._get_param("TargetCapacitySpecification", {}).get("TotalTargetCapacity")
        if target is not None:
            fleet.target_capacity = int(target)
            fleet.target_capacity_specification = {**fleet.target_capacity_specification,
                                                   "TotalTargetCapacity": int(target)}
            live = _ec2_fleet_live_capacity(fleet)
            if live < fleet.target_capacity and fleet.state == "active":
                fleet.create_spot_requests(fleet.target_capacity - live)
            elif live > fleet.target_capacity and fleet.excess_capacity_termination_policy == "termination":
                fleet.terminate_instances()
        return ActionResult({"Return": True})

    def ignore_count(self, value) -> None:
        pass  # moto's own += bookkeeping; the live count replaces it

    original = Fleet.__dict__.get("fulfilled_capacity")
    Fleet.fulfilled_capacity = property(_ec2_fleet_live_capacity, ignore_count)
    Fleets.modify_fleet = modify_fleet
    try:
        yield
    finally:
        del Fleets.modify_fleet
        if original is None:
            del Fleet.fulfilled_capacity
        else:
            Fleet.fulfilled_capacity = original


def InvalidFleetId(fleet_id: str):
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError("InvalidFleetId.NotFound", f"The fleet ID '{fleet_id}' does not exist")


@contextlib.contextmanager
def _ec2_fleet_launch() -> Iterator[None]:
    """What moto's EC2 Fleet leaves out of a machine it launches:
    - the launch template's MetadataOptions (every machine shows moto's default, HttpTokens optional); on AWS an
      instance launched from a launch template takes them ("Configure instance metadata options for new
      instances", Amazon EC2 User Guide: "in a launch template");
    - the aws:ec2:fleet-id tag, which EC2 Fleet adds to every instance it launches (as the EC2 Spot workshops'
      "EC2 Fleet" chapter shows: "EC2 Fleet automatically adds a tag to the instances with a key of
      aws:ec2:fleet-id")."""
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.models.instances import MetadataOptions

    original_create = Fleet.create_spot_requests

    @functools.wraps(original_create)
    def create_spot_requests(self, weight_to_add):
        before = len(self.spot_requests)
        original_create(self, weight_to_add)
        for request, launch in launched(self, before):
            options = launch.get("MetadataOptions")
            if options:
                request.instance.metadata_options = MetadataOptions(options)
            self.ec2_backend.tags.setdefault(request.instance.id, {})["aws:ec2:fleet-id"] = self.id
        return self.spot_requests

    Fleet.create_spot_requests = create_spot_requests
    try:
        yield
    finally:
        Fleet.create_spot_requests = original_create


def launched(fleet: Any, before: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The spot requests moto's EC2 Fleet `fleet` made past its first `before`, each with what its launch template
    version says (ImageId, UserData, IamInstanceProfile, MetadataOptions, ...; empty without a template)."""
    for request in fleet.spot_requests[before:]:
        spec = request.launch_spec.launch_template_spec if request.launch_spec else None
        template = fleet.ec2_backend.get_launch_template(spec["LaunchTemplateId"]) if spec else None
        yield request, template.get_version(spec["Version"]).data if template and spec else {}


@contextlib.contextmanager
def _ec2_fleet_delete() -> Iterator[None]:
    """Two gaps in moto's DeleteFleets with TerminateInstances=True, as for spot fleets (_spot_fleet_cancel):
    it raises "No instances specified" when the fleet's machines were all terminated one by one, and a KeyError
    (HTTP 500) for a fleet it does not know. AWS deletes the first without complaint and lists the second under
    UnsuccessfulFleetDeletions with error code fleetIdDoesNotExist (DeleteFleets, EC2 API Reference). Under a
    lock, so two reconciles deleting one fleet at once see one deletion each, as on AWS."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.responses.fleets import Fleets

    original_terminate, original_delete = Fleet.terminate_instances, Fleets.delete_fleets
    lock = threading.Lock()

    def terminate_instances(self) -> None:
        if _ec2_fleet_live_capacity(self) > 0:
            original_terminate(self)

    def delete_fleets(self) -> ActionResult:
        asked = self._get_param("FleetIds", [])
        with lock:
            known = [fleet_id for fleet_id in asked if self.ec2_backend.get_fleet(fleet_id) is not None]
            previous = {fleet_id: self.ec2_backend.get_fleet(fleet_id).state for fleet_id in known}
            deleted = self.ec2_backend.delete_fleets(known, self._get_bool_param("TerminateInstances"))
        return ActionResult({
            "SuccessfulFleetDeletions": [{"CurrentFleetState": fleet.state, "PreviousFleetState": previous[fleet.id],
                                          "FleetId": fleet.id} for fleet in deleted],
            "UnsuccessfulFleetDeletions": [
                {"FleetId": fleet_id, "Error": {"Code": "fleetIdDoesNotExist",
                                                "Message": f"The fleet ID '{fleet_id}' does not exist"}}
                for fleet_id in asked if fleet_id not in known]})

    Fleet.terminate_instances, Fleets.delete_fleets = terminate_instances, delete_fleets
    try:
        yield
    finally:
        Fleet.terminate_instances, Fleets.delete_fleets = original_terminate, original_delete


# --------------------------------------------------------------------------- fleet history (issue 25)

# What AWS keeps of a fleet's events: "EC2 Fleet events are available for 48 hours" (DescribeFleetHistory, Amazon
# EC2 API Reference); MaxResults is 1-1000, 1000 by default, for both history calls.
FLEET_HISTORY_PAGE = 1000


def record_fleet_event(fleet_id: str, sub_type: str, description: str = "", *, event_type: str | None = None,
                       instance_id: str | None = None, when: Any = None, account_id: str | None = None,
                       region: str = "us-east-1") -> None:
    """Record an event in a fleet's history as AWS would: AWS writes these on its own (a launch that failed, a quota
    reached), so a test or local mode plays AWS's part here. The event type defaults to the one AWS gives an error of
    that kind of fleet: "service-error" for an EC2 Fleet ("fleet-..."), "error" for a spot fleet ("sfr-...")."""
    from datetime import datetime

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    record = {"EventType": event_type or ("error" if fleet_id.startswith("sfr-") else "service-error"),
              "Timestamp": when or datetime.now(UTC),
              "EventInformation": {"EventSubType": sub_type, "EventDescription": description}}
    if instance_id:
        record["EventInformation"]["InstanceId"] = instance_id
    with _fleet_history_lock:
        _fleet_history_of(backend).setdefault(fleet_id, []).append(record)


_fleet_history_lock = threading.Lock()


def _fleet_history_of(backend) -> dict[str, list[dict]]:
    # Held by the region's EC2 backend, so moto's reset (a new mock_aws, the server's reset) forgets it with the rest.
    if not hasattr(backend, "_dsr_fleet_history"):
        backend._dsr_fleet_history = {}
    return backend._dsr_fleet_history


@contextlib.contextmanager
def _fleet_history() -> Iterator[None]:
    """moto has neither DescribeFleetHistory nor DescribeSpotFleetRequestHistory (NotImplementedError: HTTP 500). AWS
    answers both with the fleet's events from StartTime on, oldest first, optionally of one EventType, at most
    MaxResults (1-1000, default 1000) a page with a NextToken for the rest, and LastEvaluatedTime (the Amazon EC2 API
    Reference, DescribeFleetHistory and DescribeSpotFleetRequestHistory; event types and sub-types in
    API_EventInformation.html and API_HistoryRecord.html). AWS writes the events itself; moto's fleets write none,
    so the events come from `record_fleet_event`, which tests and local mode call where AWS would record one. A
    fleet nobody recorded an event for has an empty history (as a new fleet on AWS; an id AWS never issued would be
    refused there, which nothing of ours relies on)."""
    from datetime import datetime

    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    had = {name: name in EC2Response.__dict__
           for name in ("describe_fleet_history", "describe_spot_fleet_request_history")}

    def aware(value):
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def history(self, id_key: str) -> ActionResult:
        fleet_id, start = self._get_param(id_key), aware(self._get_param("StartTime"))
        event_type, size = self._get_param("EventType"), self._get_int_param("MaxResults") or FLEET_HISTORY_PAGE
        offset = int(self._get_param("NextToken") or 0)
        with _fleet_history_lock:
            records = [record for record in _fleet_history_of(self.ec2_backend).get(fleet_id, ())
                       if aware(record["Timestamp"]) >= start
                       and (event_type is None or record["EventType"] == event_type)]
        records.sort(key=lambda record: aware(record["Timestamp"]))
        page = records[offset:offset + max(1, min(size, FLEET_HISTORY_PAGE))]
        result = {id_key: fleet_id, "StartTime": start, "HistoryRecords": page,
                  "LastEvaluatedTime": aware(page[-1]["Timestamp"]) if page else datetime.now(UTC)}
        if offset + len(page) < len(records):
            result["NextToken"] = str(offset + len(page))
        return ActionResult(result)

    EC2Response.describe_fleet_history = lambda self: history(self, "FleetId")
    EC2Response.describe_spot_fleet_request_history = lambda self: history(self, "SpotFleetRequestId")
    try:
        yield
    finally:
        for name, existed in had.items():
            if not existed:
                delattr(EC2Response, name)


# --------------------------------------------------------------------------- Spot vCPU quotas (issue 25)

# The Spot vCPU quotas of EC2 in Service Quotas with the default a new account gets: names and defaults from "Spot
# Instance quotas" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html: Standard 5, every
# other 0, each adjustable), codes from the Spot Instance quotas table of "Amazon EC2 service quotas" (each row
# links its quota, e.g. https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-34B43A08). Kept
# apart from chalicelib/monitor/spot_quota.py on purpose: this is AWS's side.
SPOT_VCPU_QUOTA_DEFAULTS = {
    "L-85EED4F7": ("All DL Spot Instance Requests", 0.0),
    "L-88CF9481": ("All F Spot Instance Requests", 0.0),
    "L-3819A6DF": ("All G and VT Spot Instance Requests", 0.0),
    "L-B5D1601B": ("All Inf Spot Instance Requests", 0.0),
    "L-7212CCBC": ("All P4, P3 and P2 Spot Instance Requests", 0.0),
    "L-C4BD4855": ("All P5 Spot Instance Requests", 0.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0),
    "L-6B0D517C": ("All Trn Spot Instance Requests", 0.0),
    "L-E3A00192": ("All X Spot Instance Requests", 0.0),
}


def set_service_quota(quota_code: str, value: float, *, service_code: str = "ec2", account_id: str | None = None,
                      region: str = "us-east-1") -> None:
    """An account's applied quota value, as AWS holds it once an increase is approved (AWS decides increases on its
    own time; a test plays that part here)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.servicequotas.models import servicequotas_backends

    backend = servicequotas_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    if not hasattr(backend, "_dsr_applied"):
        backend._dsr_applied = {}
    backend._dsr_applied[(service_code, quota_code)] = float(value)


@contextlib.contextmanager
def _spot_vcpu_quotas() -> Iterator[None]:
    """moto's Service Quotas knows only the "vpc" service: GetServiceQuota for any EC2 quota raises NoSuchResource.
    AWS has EC2's Spot vCPU quotas in every region, with the defaults above for a new account; GetServiceQuota gives
    the applied value, GetAWSDefaultServiceQuota the default (Service Quotas API Reference). Here "ec2" answers with
    the Spot vCPU quotas, at their default unless `set_service_quota` applied another value. Other services are
    unchanged."""
    from moto.servicequotas.models import ServiceQuotasBackend

    original_get = ServiceQuotasBackend.get_service_quota
    original_list = ServiceQuotasBackend.list_aws_default_service_quotas

    def quota(self, code: str, applied: bool) -> dict[str, Any]:
        name, default = SPOT_VCPU_QUOTA_DEFAULTS[code]
        value = getattr(self, "_dsr_applied", {}).get(("ec2", code), default) if applied else default
        return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:ec2/{code}",
                "QuotaCode": code, "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True,
                "GlobalQuota": False}

    @functools.wraps(original_get)
    def get_service_quota(self, service_code, quota_code):
        if service_code == "ec2" and quota_code in SPOT_VCPU_QUOTA_DEFAULTS:
            return quota(self, quota_code, applied=True)
        return original_get(self, service_code, quota_code)

    @functools.wraps(original_list)
    def list_aws_default_service_quotas(self, service_code):
        if service_code == "ec2":
            return [quota(self, code, applied=False) for code in SPOT_VCPU_QUOTA_DEFAULTS]
        return original_list(self, service_code)

    ServiceQuotasBackend.get_service_quota = get_service_quota
    ServiceQuotasBackend.list_aws_default_service_quotas = list_aws_default_service_quotas
    try:
        yield
    finally:
        ServiceQuotasBackend.get_service_quota = original_get
        ServiceQuotasBackend.list_aws_default_service_quotas = original_list


# --------------------------------------------------------------------------- Spot prices (issue 25)


def set_spot_price(instance_type: str, zone: str, price: float, *, account_id: str | None = None,
                   region: str = "us-east-1") -> None:
    """The Spot price of one pool from now on, as AWS would publish it (AWS moves prices on its own; a test plays
    that part here)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id or DEFAULT_ACCOUNT_ID][region]
    if not hasattr(backend, "_dsr_spot_prices"):
        backend._dsr_spot_prices = {}
    backend._dsr_spot_prices[(instance_type, zone)] = f"{price:.6f}"


@contextlib.contextmanager
def _spot_prices() -> Iterator[None]:
    """moto's DescribeSpotPriceHistory gives every type in every zone one price, $0.00001, dated 2006-01-02. AWS gives
    each pool (type and zone) its own price, changing over time, and with StartTime = EndTime = now the one in
    effect now (DescribeSpotPriceHistory, Amazon EC2 API Reference). Here a pool whose price `set_spot_price` set
    answers with that price, dated now; the others are as moto has them (which pools exist, the zone filter and the
    product description are moto's)."""
    from datetime import datetime

    from moto.ec2.responses import EC2Response

    original = EC2Response.describe_spot_price_history
    own = "describe_spot_price_history" in EC2Response.__dict__  # moto defines it on a mixin (SpotInstances)

    @functools.wraps(original)
    def describe_spot_price_history(self):
        answer = original(self)
        prices = getattr(self.ec2_backend, "_dsr_spot_prices", {})
        for row in answer.result.get("SpotPriceHistory", ()) if isinstance(answer.result, dict) else ():
            price = prices.get((row["InstanceType"], row["AvailabilityZone"]))
            if price is not None:
                row["SpotPrice"], row["Timestamp"] = price, datetime.now(UTC)
        return answer

    EC2Response.describe_spot_price_history = describe_spot_price_history
    try:
        yield
    finally:
        if own:
            EC2Response.describe_spot_price_history = original
        else:
            del EC2Response.describe_spot_price_history


@contextlib.contextmanager
def _ec2_instance_types_from_requirements() -> Iterator[None]:
    """moto has no GetInstanceTypesFromInstanceRequirements ("not been implemented"). AWS answers it with the
    instance types of the region that meet every given attribute, ignoring capacity (Amazon EC2 API Reference,
    GetInstanceTypesFromInstanceRequirements and InstanceRequirementsRequest:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetInstanceTypesFromInstanceRequirements.html).
    start-cluster uses it to show which types attribute-based selection may launch. Here it answers from moto's own
    instance-type data and region offerings, applying the attributes that data holds: architecture, virtualization,
    vCPUs, memory, memory per vCPU, CPU manufacturer, burstable and bare metal (both excluded unless asked, as on
    AWS), accelerators (count, type, manufacturer), generations, and allowed and excluded types (with * wildcards).
    The price-protection attributes are not applied (moto has no prices), nor are network, storage and hibernation
    ones."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    def get_instance_types_from_instance_requirements(self):
        names = sorted(_types_meeting(self.region, self._get_param("ArchitectureTypes", []),
                                      self._get_param("VirtualizationTypes", []),
                                      self._get_param("InstanceRequirements", {})))
        start = int(self._get_param("NextToken") or 0)
        size = int(self._get_param("MaxResults") or 1000)
        result: dict[str, Any] = {"InstanceTypes": [{"InstanceType": name} for name in names[start:start + size]]}
        if start + size < len(names):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    EC2Response.get_instance_types_from_instance_requirements = get_instance_types_from_instance_requirements
    try:
        yield
    finally:
        del EC2Response.get_instance_types_from_instance_requirements


def _types_meeting(region: str, architectures: list[str], virtualizations: list[str],
                   requirements: dict[str, Any]) -> list[str]:
    """The instance types offered in `region` that meet `requirements` (moto's data), smallest first."""
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS, INSTANCE_TYPES

    offered = {offer["InstanceType"] for offer in INSTANCE_TYPE_OFFERINGS["region"].get(region, [])}
    names = [name for name, info in INSTANCE_TYPES.items() if name in offered
             and set(architectures) & set(info.get("ProcessorInfo", {}).get("SupportedArchitectures", []))
             and set(virtualizations) & set(info.get("SupportedVirtualizationTypes", []))
             and _meets_instance_requirements(info, requirements)]
    return sorted(names, key=lambda name: (INSTANCE_TYPES[name]["VCpuInfo"]["DefaultVCpus"],
                                           INSTANCE_TYPES[name]["MemoryInfo"]["SizeInMiB"], name))


# AWS's names for a processor's maker in InstanceRequirements, from DescribeInstanceTypes' ProcessorInfo.Manufacturer.
_CPU_MANUFACTURERS = {"intel": "intel", "amd": "amd", "aws": "amazon-web-services", "apple": "apple"}


def _meets_instance_requirements(info: dict[str, Any], wanted: dict[str, Any]) -> bool:
    import fnmatch

    def within(value: float, bounds: dict[str, Any] | None) -> bool:
        bounds = bounds or {}
        low, high = bounds.get("Min"), bounds.get("Max")
        return (low is None or value >= float(low)) and (high is None or value <= float(high))

    def allowed(setting: str, has: bool) -> bool:  # "included" | "excluded" | "required"
        return {"included": True, "required": has}.get(setting, not has)

    name = info["InstanceType"]
    vcpus = info["VCpuInfo"]["DefaultVCpus"]
    memory = info["MemoryInfo"]["SizeInMiB"]
    if not within(vcpus, wanted.get("VCpuCount")) or not within(memory, wanted.get("MemoryMiB")):
        return False
    if "MemoryGiBPerVCpu" in wanted and not within(memory / 1024 / vcpus, wanted["MemoryGiBPerVCpu"]):
        return False
    maker = _CPU_MANUFACTURERS.get(str(info.get("ProcessorInfo", {}).get("Manufacturer", "")).lower())
    if wanted.get("CpuManufacturers") and maker not in wanted["CpuManufacturers"]:
        return False
    if not allowed(wanted.get("BurstablePerformance", "excluded"), bool(info.get("BurstablePerformanceSupported"))):
        return False
    if not allowed(wanted.get("BareMetal", "excluded"), bool(info.get("BareMetal"))):
        return False
    generation = "current" if info.get("CurrentGeneration") else "previous"
    if wanted.get("InstanceGenerations") and generation not in wanted["InstanceGenerations"]:
        return False
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in wanted.get("ExcludedInstanceTypes", [])):
        return False
    if wanted.get("AllowedInstanceTypes") and not any(
            fnmatch.fnmatchcase(name, pattern) for pattern in wanted["AllowedInstanceTypes"]):
        return False
    # A fractional GPU (g6f: a partition of one) is listed with Count 0, yet the machine has a GPU device: one here.
    accelerators = [
        (kind, str(device.get("Manufacturer", "")).lower(), max(int(device.get("Count", 0)), 1))
        for kind, devices in (("gpu", info.get("GpuInfo", {}).get("Gpus", [])),
                              ("fpga", info.get("FpgaInfo", {}).get("Fpgas", [])),
                              ("inference", info.get("InferenceAcceleratorInfo", {}).get("Accelerators", [])
                               + info.get("NeuronInfo", {}).get("NeuronDevices", [])))
        for device in devices]
    kinds, makers = wanted.get("AcceleratorTypes"), wanted.get("AcceleratorManufacturers")
    chosen = [count for kind, maker, count in accelerators
              if (not kinds or kind in kinds) and (not makers or maker in makers)]
    if (kinds or makers) and not chosen:
        return False
    return within(sum(chosen), wanted.get("AcceleratorCount"))


@contextlib.contextmanager
def _ec2_image_deprecation() -> Iterator[None]:
    """moto has no EnableImageDeprecation or DisableImageDeprecation ("not been implemented"), and DescribeImages
    shows no DeprecationTime. On AWS an AMI's owner sets the time it becomes deprecated (at a whole minute, never in
    the past), and DescribeImages returns it as the image's DeprecationTime ("Deprecate an Amazon EC2 AMI", Amazon
    EC2 User Guide: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-deprecate.html; API_EnableImageDeprecation
    and API_Image in the Amazon EC2 API Reference). start-cluster warns about a pinned AMI that is deprecated; here
    the two calls set and clear the image's DeprecationTime as AWS does."""
    import datetime

    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses import EC2Response

    def enable_image_deprecation(self):
        image = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
        at = self._get_param("DeprecateAt")
        if not isinstance(at, datetime.datetime):
            at = datetime.datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=datetime.UTC)
        at = (at + datetime.timedelta(seconds=30)).replace(second=0, microsecond=0)  # to the nearest minute
        if at < datetime.datetime.now(datetime.UTC):
            raise EC2ClientError("InvalidParameterValue", "DeprecateAt: you can't specify a date in the past")
        image.deprecation_time = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return ActionResult({"Return": True})

    def disable_image_deprecation(self):
        image = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
        image.deprecation_time = None
        return ActionResult({"Return": True})

    EC2Response.enable_image_deprecation = enable_image_deprecation
    EC2Response.disable_image_deprecation = disable_image_deprecation
    try:
        yield
    finally:
        del EC2Response.enable_image_deprecation, EC2Response.disable_image_deprecation


@contextlib.contextmanager
def _ec2_fleet_instance_requirements() -> Iterator[None]:
    """moto's CreateFleet reads each override's InstanceType and fails (KeyError: HTTP 500) on an override that gives
    InstanceRequirements instead. On AWS such an override lets the fleet launch any instance type that meets the
    attributes, for the architecture of the launch template's AMI ("Specify attributes for instance type selection
    for EC2 Fleet or Spot Fleet", Amazon EC2 User Guide:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-fleet-attribute-based-instance-type-selection.html;
    FleetLaunchTemplateOverridesRequest in the Amazon EC2 API Reference). Here each such override becomes one
    override per matching type (moto's data, as GetInstanceTypesFromInstanceRequirements answers above, smallest
    first), and the fleet keeps the overrides it was given, as DescribeFleets shows them on AWS. A requirement no
    type meets is refused with InvalidParameterValue (AWS would accept the fleet and launch nothing, with an error
    in its history)."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.fleets import FleetsBackend

    original = FleetsBackend.create_fleet

    def expanded(backend, config: dict[str, Any]) -> dict[str, Any]:
        overrides = config.get("Overrides") or []
        if not any("InstanceRequirements" in override for override in overrides):
            return config
        spec = config["LaunchTemplateSpecification"]
        template = (backend.get_launch_template(spec["LaunchTemplateId"]) if "LaunchTemplateId" in spec
                    else backend.get_launch_template_by_name(spec["LaunchTemplateName"]))
        version = {"$Latest": template.latest_version_number, "$Default": template.default_version_number}.get(
            spec.get("Version"), spec.get("Version") or template.default_version_number)
        image_id = template.get_version(version).data.get("ImageId")
        images = backend.describe_images(ami_ids=[image_id]) if image_id else []
        architecture = (images[0].architecture if images else None) or "x86_64"
        result = []
        for override in overrides:
            if "InstanceRequirements" not in override:
                result.append(override)
                continue
            rest = {key: value for key, value in override.items() if key != "InstanceRequirements"}
            names = _types_meeting(backend.region_name, [architecture], ["hvm"], override["InstanceRequirements"])
            if not names:
                raise EC2ClientError("InvalidParameterValue", "No instance type meets the InstanceRequirements")
            result.extend({**rest, "InstanceType": name} for name in names)
        return {**config, "Overrides": result}

    @functools.wraps(original)
    def create_fleet(self, *args, **kwargs):
        given = kwargs.get("launch_template_configs")
        if given:
            kwargs["launch_template_configs"] = [expanded(self, config) for config in given]
        fleet = original(self, *args, **kwargs)
        if given:
            fleet.launch_template_configs = given
        return fleet

    FleetsBackend.create_fleet = create_fleet
    try:
        yield
    finally:
        FleetsBackend.create_fleet = original
