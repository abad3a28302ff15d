"""The moto patches must keep applying: a moto upgrade that renames what they replace fails here, loudly.

Each patch exists because moto differs from AWS in a way our code or local mode
depends on (see localrun/moto_patches.py for why). If one of these
tests fails after an upgrade, re-check that difference before touching the patch.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

import moto
import pytest
from botocore.exceptions import ClientError
from moto.apigateway.models import APIGatewayBackend
from moto.core import utils as moto_utils
from moto.ec2.models.spot_requests import SpotFleetRequest
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.sqs import models as sqs_models
from moto.sqs.responses import SQSResponse

from localrun.moto_patches import patched

PINNED_MOTO = "5.2.5"


def test_moto_is_the_pinned_version():
    assert moto.__version__ == PINNED_MOTO, (
        f"moto {moto.__version__} is installed; the patches were written for {PINNED_MOTO}: re-check each one")


def test_the_attributes_the_patches_replace_still_exist_in_moto():
    assert hasattr(moto_utils, "unix_time") and hasattr(moto_utils, "unix_time_millis")
    # The SQS patch swaps module globals: it applies only while moto's SQS calls them by bare name.
    source = inspect.getsource(sqs_models)
    assert "unix_time_millis()" in source and "unix_time()" in source
    assert "fulfilled_capacity" in inspect.getsource(SpotFleetRequest)
    assert hasattr(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period")
    assert hasattr(SpotFleetRequest, "terminate_instances")
    assert hasattr(SpotFleetRequest, "create_spot_requests")
    assert isinstance(inspect.getattr_static(SpotFleetRequest, "tag_set"), property)
    # The ECS patch adds what moto's CreateService handler leaves out of the service it makes.
    created = inspect.getsource(inspect.unwrap(EC2ContainerServiceResponse.create_service))
    assert "deploymentConfiguration" not in created and "self.ecs_backend.create_service(" in created
    # The launch template patch reads the configs moto's fleet takes, before it launches the first machines.
    init = inspect.getsource(inspect.unwrap(SpotFleetRequest.__init__))
    assert "launch_template_config" in init and "latest_version().data" in init and "self.create_spot_requests(" in init
    # The S3 patch locks the handler that holds both the If-None-Match / If-Match check and the write.
    put_object = inspect.getsource(inspect.unwrap(S3Response.put_object))
    assert 'if_none_match == "*"' in put_object and "self.backend.put_object(" in put_object
    # The API Gateway patch translates what moto's import refuses (Swagger 2.0, no info.description).
    imported = inspect.getsource(inspect.unwrap(APIGatewayBackend.import_rest_api))
    assert 'api_doc["info"]["description"]' in imported and "self.put_rest_api(" in imported
    assert 'api_doc.get("swagger") is not None' in inspect.getsource(inspect.unwrap(APIGatewayBackend.put_rest_api))
    # The dead-letter patch stamps a message when it is put in a queue other than its last: moto's move is
    # that, of the same object; and it adds the attribute moto's ReceiveMessage leaves out.
    receive = inspect.getsource(sqs_models.SQSBackend.receive_message)
    assert "queue.dead_letter_queue.add_message(message)" in receive
    assert "DeadLetterQueueSourceArn" not in inspect.getsource(inspect.unwrap(SQSResponse.receive_message))
    # The server patch memoizes the host -> service lookup its request dispatcher makes under its lock.
    dispatch = inspect.getsource(DomainDispatcherApplication.get_application)
    assert "self.get_backend_for_host(host)" in dispatch and "with self.lock:" in dispatch


def test_the_memoized_service_lookup_answers_as_moto_does():
    hosts = [None, "moto_api", "sqs.us-east-1.amazonaws.com", "s3.amazonaws.com", "bucket.s3.amazonaws.com",
             "logs.eu-west-1.amazonaws.com", "ecs.us-east-1.amazonaws.com", "s3", "unknown.example.com"]
    fresh = DomainDispatcherApplication(create_backend_app)
    with patched():  # already open for the session: the patch is in place
        answers = [fresh.get_backend_for_host(host) for host in hosts]
        again = [fresh.get_backend_for_host(host) for host in hosts]
    with_moto = subprocess.run(
        [sys.executable, "-c", "from moto.moto_server.werkzeug_app import DomainDispatcherApplication as D, "
         f"create_backend_app as c; print([D(c).get_backend_for_host(h) for h in {hosts!r}])"],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert answers == again and repr(answers) == with_moto.splitlines()[-1]


def test_inside_patched_sqs_reads_the_fast_clock_and_a_nested_patched_changes_nothing():
    # The whole test session runs inside patched() (tests/conftest.py); an emulator started inside it opens
    # patched() again, which must not wrap the patches a second time.
    outer = sqs_models.unix_time
    assert outer is not moto_utils.unix_time
    with patched():
        assert sqs_models.unix_time is outer
        assert sqs_models.unix_time() == pytest.approx(time.time(), abs=1.0)
        assert sqs_models.unix_time_millis() == pytest.approx(time.time() * 1000, abs=1000)
        assert isinstance(SpotFleetRequest.__dict__["fulfilled_capacity"], property)
    assert sqs_models.unix_time is outer


def test_leaving_patched_restores_moto_as_it_was():
    code = ("from moto.sqs import models; from moto.core import utils; from localrun.moto_patches import patched\n"
            "original = models.unix_time\n"
            "with patched():\n    assert models.unix_time is not original\n"
            "assert models.unix_time is original and models.unix_time is utils.unix_time\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.usefixtures("aws")
def test_a_fleet_below_its_target_after_a_termination_launches_a_replacement_when_modified():
    """What local mode does when it plays AWS's part after a spot interruption (maintain-type fleet)."""
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    fleet_id = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": "arn:aws:iam::123456789012:role/fleet", "TargetCapacity": 2, "SpotPrice": "0.1",
        "AllocationStrategy": "lowestPrice",
        "LaunchSpecifications": [{"ImageId": ami, "InstanceType": "m5.large"}]})["SpotFleetRequestId"]

    def live():
        ids = [item["InstanceId"] for item in
               ec2.describe_spot_fleet_instances(SpotFleetRequestId=fleet_id)["ActiveInstances"]]
        reservations = ec2.describe_instances(InstanceIds=ids, Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        return sorted(instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"])

    first = live()
    assert len(first) == 2
    ec2.terminate_instances(InstanceIds=[first[0]])
    config = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet_id])["SpotFleetRequestConfigs"][0]
    assert config["SpotFleetRequestConfig"]["FulfilledCapacity"] == 1.0

    ec2.modify_spot_fleet_request(SpotFleetRequestId=fleet_id, TargetCapacity=2)

    now = live()
    assert len(now) == 2 and first[1] in now and first[0] not in now


@pytest.mark.usefixtures("aws")
def test_a_fleets_machines_take_their_launch_templates_metadata_options():
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData={
        "ImageId": ami, "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}})
    fleet_id = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": "arn:aws:iam::123456789012:role/fleet", "TargetCapacity": 2, "SpotPrice": "0.1",
        "AllocationStrategy": "lowestPrice", "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {
            "LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"},
            "Overrides": [{"InstanceType": "m5.large"}]}]})["SpotFleetRequestId"]
    ids = [item["InstanceId"]
           for item in ec2.describe_spot_fleet_instances(SpotFleetRequestId=fleet_id)["ActiveInstances"]]
    options = [instance["MetadataOptions"] for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"]
               for instance in reservation["Instances"]]
    assert len(options) == 2
    assert all((item["HttpTokens"], item["HttpPutResponseHopLimit"]) == ("required", 1) for item in options)


@pytest.mark.usefixtures("aws")
def test_two_conditional_puts_whose_checks_overlap_let_exactly_one_win(monkeypatch):
    """moto checks If-None-Match, then writes, with no lock between (the gap the S3 patch closes).

    The first writer is held inside its check (moto's lookup of the key in PutObject's handler) while a
    second writer starts.
    Unpatched, the second passes its check and writes, then the first writes too: both get 200. Patched,
    the second waits for the first to finish, then fails its check. The hold ends when the second writer
    finishes or after HOLD seconds; only the unpatched moto lets it finish during the hold.
    """
    import boto3

    hold = 1.0
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="claims")
    first_checking, second_finished = threading.Event(), threading.Event()
    original = S3Backend.get_object
    first = {}

    def get_object(self, bucket_name, key_name, *args, **kwargs):
        found = original(self, bucket_name, key_name, *args, **kwargs)
        in_put_check = sys._getframe(1).f_code is inspect.unwrap(S3Response.put_object).__code__
        if key_name == "claim" and in_put_check and threading.current_thread() is first.get("thread"):
            first_checking.set()
            second_finished.wait(hold)
        return found

    monkeypatch.setattr(S3Backend, "get_object", get_object)
    outcomes: dict[str, str] = {}

    def put(name: str) -> None:
        try:
            boto3.client("s3", region_name="us-east-1").put_object(Bucket="claims", Key="claim", Body=name.encode(),
                                                                    IfNoneMatch="*")
            outcomes[name] = "ok"
        except ClientError as error:
            outcomes[name] = error.response["Error"]["Code"]
        if name == "second":
            second_finished.set()

    first["thread"] = threading.Thread(target=put, args=("first",))
    first["thread"].start()
    assert first_checking.wait(10)
    second = threading.Thread(target=put, args=("second",))
    second.start()
    first["thread"].join(10)
    second.join(10)
    assert outcomes == {"first": "ok", "second": "PreconditionFailed"}
    assert s3.get_object(Bucket="claims", Key="claim")["Body"].read() == b"first"


@pytest.mark.usefixtures("aws")
def test_a_message_sqs_moved_to_a_dead_letter_queue_carries_its_source_queues_arn_and_no_other_does():
    """AWS stamps DeadLetterQueueSourceArn when it dead-letters a message; moto does not (the SQS patch)."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(QueueName="jobs", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})})["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="failed")
    sqs.send_message(QueueUrl=dead, MessageBody="sent straight")
    # a sender's claim to the stamp (AWS refuses it: SendMessage's only system attribute is AWSTraceHeader)
    sqs.send_message(QueueUrl=dead, MessageBody="forged", MessageSystemAttributes={"DeadLetterQueueSourceArn": {
        "DataType": "String", "StringValue": "arn:aws:sqs:us-east-1:123456789012:jobs"}})
    seen_at_source = []
    for _ in range(3):  # received twice, then moved by the third receive
        seen_at_source += sqs.receive_message(QueueUrl=source, VisibilityTimeout=0,
                                              MessageSystemAttributeNames=["All"]).get("Messages", [])

    def stamps(**asked) -> dict[str, str | None]:
        messages = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=0, **asked)
        return {m["Body"]: m.get("Attributes", {}).get("DeadLetterQueueSourceArn") for m in messages["Messages"]}

    source_arn = "arn:aws:sqs:us-east-1:123456789012:jobs"
    expected = {"failed": source_arn, "sent straight": None, "forged": None}
    assert stamps(MessageSystemAttributeNames=["DeadLetterQueueSourceArn"]) == expected
    assert stamps(MessageSystemAttributeNames=["All"]) == expected
    assert stamps(AttributeNames=["DeadLetterQueueSourceArn"]) == expected  # the older parameter's name
    assert set(stamps().values()) == {None}  # only when asked for, as any system attribute
    assert [m["Body"] for m in seen_at_source] == ["failed"] * 2
    assert all("DeadLetterQueueSourceArn" not in m["Attributes"] for m in seen_at_source)


def test_what_the_issue_25_patches_add_is_still_missing_from_moto_and_what_they_wrap_still_exists():
    """If moto grows fleet history, EC2 Spot quotas or real Spot prices, these patches must be re-checked."""
    from moto.ec2.responses import EC2Response
    from moto.ec2.responses.spot_instances import SpotInstances
    from moto.servicequotas.models import ServiceQuotasBackend

    from localrun import moto_patches

    code = ("from moto.ec2.responses import EC2Response as E\n"
            "print(hasattr(E, 'describe_fleet_history'), hasattr(E, 'describe_spot_fleet_request_history'))")
    unpatched = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert unpatched == ["False", "False"]
    assert hasattr(EC2Response, "describe_fleet_history")  # inside the session's patched()
    quotas = inspect.getsource(inspect.unwrap(ServiceQuotasBackend.get_service_quota))
    assert 'service_code == "vpc"' in quotas and "ec2" not in quotas
    prices = inspect.getsource(inspect.unwrap(SpotInstances.describe_spot_price_history))
    assert '"SpotPrice": "0.00001"' in prices
    assert callable(moto_patches.record_fleet_event) and callable(moto_patches.set_service_quota)


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("fleet_id, call, id_key, error_type", [
    ("fleet-11111111-2222-3333-4444-555555555555", "describe_fleet_history", "FleetId", "service-error"),
    ("sfr-11111111-2222-3333-4444-555555555555", "describe_spot_fleet_request_history", "SpotFleetRequestId", "error"),
])
def test_a_fleets_history_answers_as_aws_does_from_start_time_by_event_type_a_page_at_a_time(
        fleet_id, call, id_key, error_type):
    from datetime import datetime, timedelta

    import boto3

    from localrun.moto_patches import record_fleet_event

    ec2 = boto3.client("ec2", region_name="us-east-1")
    now = datetime.now(UTC)
    record_fleet_event(fleet_id, "spotInstanceCountLimitExceeded", "too old", when=now - timedelta(hours=2))
    for n in range(5):
        record_fleet_event(fleet_id, "spotFleetRequestConfigurationInvalid", f"error {n}",
                           when=now - timedelta(minutes=10 - n))
    record_fleet_event(fleet_id, "submitted", "", event_type="fleetRequestChange", when=now - timedelta(minutes=1))

    read, token = [], None
    for _ in range(10):
        page = getattr(ec2, call)(**{id_key: fleet_id, "StartTime": now - timedelta(hours=1), "EventType": error_type,
                                     "MaxResults": 2, **({"NextToken": token} if token else {})})
        assert page[id_key] == fleet_id and len(page["HistoryRecords"]) <= 2
        read += page["HistoryRecords"]
        token = page.get("NextToken")
        if not token:
            break
    assert [record["EventInformation"]["EventDescription"] for record in read] == [f"error {n}" for n in range(5)]
    assert {record["EventType"] for record in read} == {error_type}
    everything = getattr(ec2, call)(**{id_key: fleet_id, "StartTime": now - timedelta(hours=3)})["HistoryRecords"]
    assert len(everything) == 7 and "NextToken" not in getattr(ec2, call)(**{id_key: fleet_id, "StartTime": now})
    assert getattr(ec2, call)(**{id_key: fleet_id.replace("1", "9"), "StartTime": now})["HistoryRecords"] == []


@pytest.mark.usefixtures("aws")
def test_service_quotas_has_ec2s_spot_vcpu_quotas_at_a_new_accounts_defaults_until_an_increase_is_applied():
    import boto3

    from localrun.moto_patches import set_service_quota

    quotas = boto3.client("service-quotas", region_name="us-east-1")
    standard = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-34B43A08")["Quota"]
    assert (standard["QuotaName"], standard["Value"]) == (
        "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0)
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-3819A6DF")["Quota"]["Value"] == 0.0
    set_service_quota("L-34B43A08", 256)
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-34B43A08")["Quota"]["Value"] == 256.0
    defaults = {quota["QuotaCode"]: quota["Value"]
                for quota in quotas.list_aws_default_service_quotas(ServiceCode="ec2")["Quotas"]}
    assert defaults["L-34B43A08"] == 5.0 and len(defaults) == 9
    with pytest.raises(quotas.exceptions.NoSuchResourceException):
        quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")  # an on-demand quota: not added
    assert quotas.get_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")["Quota"]["QuotaCode"] == "L-F678F1CE"


@pytest.mark.usefixtures("aws")
def test_a_spot_pool_whose_price_was_set_answers_with_it_dated_now_and_the_others_as_moto_has_them():
    from datetime import datetime, timedelta

    import boto3

    from localrun.moto_patches import set_spot_price

    ec2 = boto3.client("ec2", region_name="us-east-1")
    set_spot_price("m5.large", "us-east-1a", 0.0421)
    rows = {(row["InstanceType"], row["AvailabilityZone"]): row for row in ec2.describe_spot_price_history(
        InstanceTypes=["m5.large"], Filters=[{"Name": "availability-zone", "Values": ["us-east-1a", "us-east-1b"]}],
    )["SpotPriceHistory"]}
    assert set(rows) == {("m5.large", "us-east-1a"), ("m5.large", "us-east-1b")}
    assert rows[("m5.large", "us-east-1a")]["SpotPrice"] == "0.042100"
    assert rows[("m5.large", "us-east-1a")]["Timestamp"] > datetime.now(UTC) - timedelta(minutes=1)
    assert rows[("m5.large", "us-east-1b")]["SpotPrice"] == "0.00001"


def test_moto_still_lacks_the_ec2_actions_the_patches_add():
    """The instance-requirements and image-deprecation patches add actions moto does not have; a moto that grows them
    should answer instead (drop the patch then)."""
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.responses import EC2Response

    added = ("get_instance_types_from_instance_requirements", "enable_image_deprecation", "disable_image_deprecation")
    for name in added:
        assert getattr(EC2Response, name).__module__ == "localrun.moto_patches", name
    # moto's CreateFleet reads each override's InstanceType (the fleet patch expands InstanceRequirements first)
    assert 'instance_type=spec["InstanceType"]' in inspect.getsource(Fleet.__init__)
    code = ("from moto.ec2.responses import EC2Response\n"
            f"assert not [name for name in {added!r} if hasattr(EC2Response, name)]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def _types_meeting(**requirements) -> list[str]:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    architectures = requirements.pop("architectures", ["x86_64"])
    pages = ec2.get_paginator("get_instance_types_from_instance_requirements").paginate(
        ArchitectureTypes=architectures, VirtualizationTypes=["hvm"], InstanceRequirements=requirements,
        PaginationConfig={"PageSize": 7})
    return [item["InstanceType"] for page in pages for item in page["InstanceTypes"]]


def _described(names: list[str]) -> dict[str, dict]:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    return {info["InstanceType"]: info for page in ec2.get_paginator("describe_instance_types").paginate(
        InstanceTypes=names) for info in page["InstanceTypes"]}


@pytest.mark.usefixtures("aws")
def test_instance_types_from_requirements_meet_every_bound_asked_in_pages():
    names = _types_meeting(VCpuCount={"Min": 4, "Max": 8}, MemoryMiB={"Min": 16000, "Max": 32768},
                           AcceleratorCount={"Max": 0}, ExcludedInstanceTypes=["r5*"])
    assert "m5.xlarge" in names and "m5.2xlarge" in names and len(names) > 10
    assert names == sorted(set(names))  # pages of 7 joined without loss or repeat
    assert not [name for name in names if name.startswith("r5")]
    for name, info in _described(names).items():
        assert 4 <= info["VCpuInfo"]["DefaultVCpus"] <= 8 and 16000 <= info["MemoryInfo"]["SizeInMiB"] <= 32768
        assert "x86_64" in info["ProcessorInfo"]["SupportedArchitectures"], name
        assert not info["BurstablePerformanceSupported"] and not info["BareMetal"], name  # AWS's defaults
        assert not info.get("GpuInfo"), name


@pytest.mark.usefixtures("aws")
def test_instance_types_from_requirements_by_architecture_gpu_and_burstable():
    arm = _types_meeting(architectures=["arm64"], VCpuCount={"Min": 2, "Max": 2}, MemoryMiB={"Min": 4096})
    assert "m6g.large" in arm and "m5.large" not in arm
    gpu = _types_meeting(VCpuCount={"Min": 1}, MemoryMiB={"Min": 1024}, AcceleratorTypes=["gpu"],
                         AcceleratorManufacturers=["nvidia"], AcceleratorCount={"Min": 1, "Max": 1})
    assert "g4dn.xlarge" in gpu and "g4dn.12xlarge" not in gpu  # four GPUs
    # one GPU, or a fraction of one (g6f lists Count 0)
    assert all([g["Count"] for g in info["GpuInfo"]["Gpus"]] in ([1], [0]) for info in _described(gpu).values())
    burstable = _types_meeting(VCpuCount={"Min": 2, "Max": 2}, MemoryMiB={"Min": 8192, "Max": 8192},
                               BurstablePerformance="required")
    assert "t3.large" in burstable and "m5.large" not in burstable


@pytest.mark.usefixtures("aws")
def test_an_ami_deprecated_by_its_owner_shows_its_deprecation_time():
    import datetime

    import boto3
    from botocore.exceptions import ClientError

    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[image])["Images"][0]
    at = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(days=3, seconds=50)
    assert ec2.enable_image_deprecation(ImageId=image, DeprecateAt=at)["Return"] is True
    rounded = (at + datetime.timedelta(seconds=30)).replace(second=0)
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["DeprecationTime"] == f"{rounded:%Y-%m-%dT%H:%M}:00.000Z"
    with pytest.raises(ClientError) as past:
        ec2.enable_image_deprecation(ImageId=image, DeprecateAt=at - datetime.timedelta(days=30))
    assert past.value.response["Error"]["Code"] == "InvalidParameterValue"
    ec2.disable_image_deprecation(ImageId=image)
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[image])["Images"][0]


@pytest.mark.usefixtures("aws")
def test_an_ec2_fleet_given_instance_requirements_launches_types_that_meet_them_for_its_amis_architecture():
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ssm = boto3.client("ssm", region_name="us-east-1")
    arm_ami = ssm.get_parameter(Name="/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id")
    template = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData={
        "ImageId": arm_ami["Parameter"]["Value"]})["LaunchTemplate"]["LaunchTemplateId"]
    requirements = {"VCpuCount": {"Min": 2, "Max": 4}, "MemoryMiB": {"Min": 4096, "Max": 16384}}
    configs = [{"LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "$Latest"},
                "Overrides": [{"InstanceRequirements": requirements}]}]
    fleet_id = ec2.create_fleet(Type="maintain", LaunchTemplateConfigs=configs, TargetCapacitySpecification={
        "TotalTargetCapacity": 3, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"})["FleetId"]
    ids = [item["InstanceId"] for item in ec2.describe_fleet_instances(FleetId=fleet_id)["ActiveInstances"]]
    types = [instance["InstanceType"] for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"]
             for instance in reservation["Instances"]]
    assert len(types) == 3
    for info in _described(sorted(set(types))).values():
        assert "arm64" in info["ProcessorInfo"]["SupportedArchitectures"]
        assert 2 <= info["VCpuInfo"]["DefaultVCpus"] <= 4 and 4096 <= info["MemoryInfo"]["SizeInMiB"] <= 16384
    [fleet] = ec2.describe_fleets(FleetIds=[fleet_id])["Fleets"]
    assert fleet["LaunchTemplateConfigs"][0]["Overrides"] == [{"InstanceRequirements": requirements}]  # as given


def test_the_emulator_server_answers_the_added_ec2_actions(moto_server):
    """Local mode talks to moto over HTTP: the added actions answer there too."""
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server)
    answer = ec2.get_instance_types_from_instance_requirements(
        ArchitectureTypes=["x86_64"], VirtualizationTypes=["hvm"],
        InstanceRequirements={"VCpuCount": {"Min": 2, "Max": 2}, "MemoryMiB": {"Min": 8192, "Max": 8192}})
    assert "m5.large" in [item["InstanceType"] for item in answer["InstanceTypes"]]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    assert ec2.disable_image_deprecation(ImageId=image)["Return"] is True


def test_the_emulator_server_refuses_an_over_limit_call_and_pages_as_aws_does(moto_server):
    """The per-call limits (localrun/moto_limits.py) hold over HTTP too, where local mode's calls go."""
    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_server)
    for index in range(60):
        cloudwatch.put_metric_alarm(AlarmName=f"a-{index:02}", MetricName="m", Namespace="n", Statistic="Average",
                                    Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold")
    assert [len(page["MetricAlarms"]) for page in cloudwatch.get_paginator("describe_alarms").paginate()] == [50, 10]
    with pytest.raises(ClientError) as refused:
        cloudwatch.delete_alarms(AlarmNames=[f"a-{index:03}" for index in range(101)])
    assert refused.value.response["Error"]["Code"] == "ValidationError"


def test_the_emulator_server_pages_describe_instances_at_max_results_and_refuses_over_1000_ids(moto_server):
    """DescribeInstances' page token is the emulator's own (localrun/moto_limits.py): it holds over HTTP too."""
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    launched = {ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
                for _ in range(7)}  # a reservation each, as a fleet's machines are

    pages = [[item["InstanceId"] for reservation in page["Reservations"] for item in reservation["Instances"]]
             for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5})]

    assert [len(page) for page in pages] == [5, 2] and {*pages[0], *pages[1]} == launched
    with pytest.raises(ClientError) as refused:
        ec2.describe_instances(InstanceIds=[f"i-{index:017x}" for index in range(1001)])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
