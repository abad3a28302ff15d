"""The emulator refuses what AWS refuses: a call over one of AWS's per-call limits fails with AWS's error code and
HTTP status, one at the limit succeeds, and a listing AWS pages comes in AWS's pages (localrun/moto_limits.py)."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from localrun import moto_limits as limits
from tests.integration.world import MOTO_AMI, spot_fleet_of

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
FLEET_SIZE = 1500

pytestmark = pytest.mark.slow  # a fleet of 1,500 machines, shared by the module


def client(service: str):
    return boto3.client(service, **CREDENTIALS)


def refused(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def fleet():
    """One moto world for the module, with an EC2 Fleet of 1,500 machines: launching them takes moto ~12 s, so the
    tests share it (each test leaves it as it found it, or uses what no other test reads)."""
    from moto import mock_aws

    with mock_aws():
        ec2 = client("ec2")
        fleet_id = spot_fleet_of(ec2, "limits", FLEET_SIZE)
        yield fleet_id


def fleet_machines(fleet_id: str) -> list[str]:
    ec2, found, kwargs = client("ec2"), [], {"FleetId": fleet_id}
    while True:
        page = ec2.describe_fleet_instances(**kwargs)
        found += [item["InstanceId"] for item in page["ActiveInstances"]]
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


# --------------------------------------------------------------------------- EC2


def test_describe_fleet_instances_comes_in_pages_of_1000(fleet):
    ec2 = client("ec2")
    first = ec2.describe_fleet_instances(FleetId=fleet)
    second = ec2.describe_fleet_instances(FleetId=fleet, NextToken=first["NextToken"])

    assert [len(first["ActiveInstances"]), len(second["ActiveInstances"])] == [1000, FLEET_SIZE - 1000]
    assert "NextToken" not in second
    assert len(set(fleet_machines(fleet))) == FLEET_SIZE
    assert len(ec2.describe_fleet_instances(FleetId=fleet, MaxResults=7)["ActiveInstances"]) == 7
    assert refused(ec2.describe_fleet_instances, FleetId=fleet, MaxResults=1001) == ("InvalidParameterValue", 400)


def test_terminate_instances_takes_at_most_1000_ids(fleet):
    ec2 = client("ec2")
    launched = [instance["InstanceId"] for instance in ec2.run_instances(
        ImageId=MOTO_AMI, InstanceType="m5.large", MinCount=1000, MaxCount=1000)["Instances"]]
    one_more = fleet_machines(fleet)[:1]

    assert refused(ec2.terminate_instances, InstanceIds=launched + one_more) == ("InvalidParameterValue", 400)
    assert states(launched + one_more) == {"running"}  # refused whole: nothing was terminated

    assert len(ec2.terminate_instances(InstanceIds=launched)["TerminatingInstances"]) == 1000
    assert states(launched) <= {"shutting-down", "terminated"}


def states(instance_ids: list[str]) -> set[str]:
    ec2 = client("ec2")
    answers = [ec2.describe_instances(InstanceIds=instance_ids[start:start + 1000])
               for start in range(0, len(instance_ids), 1000)]  # DescribeInstances takes at most 1,000 ids too
    return {instance["State"]["Name"] for answer in answers for reservation in answer["Reservations"]
            for instance in reservation["Instances"]}


def test_describe_instances_filter_takes_at_most_200_values(fleet):
    ec2 = client("ec2")
    machines = fleet_machines(fleet)

    assert refused(ec2.describe_instances,
                   Filters=[{"Name": "instance-id", "Values": machines[:201]}]) == ("FilterLimitExceeded", 400)
    found = [instance for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-id", "Values": machines[:200]}])
        for reservation in page["Reservations"] for instance in reservation["Instances"]]
    assert len(found) == 200


def test_describe_instances_refuses_instance_ids_with_max_results(fleet):
    ec2 = client("ec2")
    machines = fleet_machines(fleet)

    assert refused(ec2.describe_instances, InstanceIds=machines[:5],
                   MaxResults=5) == ("InvalidParameterCombination", 400)
    assert ec2.describe_instances(InstanceIds=machines[:5])["Reservations"]


def test_describe_instances_takes_at_most_1000_ids_and_answers_them_whole(fleet):
    ec2 = client("ec2")
    machines = fleet_machines(fleet)

    assert refused(ec2.describe_instances, InstanceIds=machines[:1001]) == ("InvalidParameterValue", 400)
    answer = ec2.describe_instances(InstanceIds=machines[:1000])  # a reservation each: moto paged them at 100
    assert len(instances_of(answer)) == 1000 and "NextToken" not in answer


def test_describe_instances_without_ids_pages_at_max_results_and_unpaginated_answers_whole(fleet):
    ec2 = client("ec2")
    by_fleet = [{"Name": "tag:aws:ec2:fleet-id", "Values": [fleet]}]

    first = ec2.describe_instances(Filters=by_fleet, MaxResults=1000)
    second = ec2.describe_instances(Filters=by_fleet, MaxResults=1000, NextToken=first["NextToken"])
    assert [len(instances_of(first)), len(instances_of(second))] == [1000, FLEET_SIZE - 1000]
    assert "NextToken" not in second
    assert {*instances_of(first), *instances_of(second)} == set(fleet_machines(fleet))

    whole = ec2.describe_instances(Filters=by_fleet)
    assert len(instances_of(whole)) == FLEET_SIZE and "NextToken" not in whole
    assert len(instances_of(ec2.describe_instances(Filters=by_fleet, MaxResults=5))) == 5
    for size in (4, 1001):
        assert refused(ec2.describe_instances, Filters=by_fleet, MaxResults=size) == ("InvalidParameterValue", 400)


def instances_of(answer) -> list[str]:
    return [instance["InstanceId"] for reservation in answer["Reservations"] for instance in reservation["Instances"]]


def test_describe_spot_fleet_instances_comes_in_pages(fleet):
    ec2 = client("ec2")
    template = ec2.describe_launch_templates(LaunchTemplateNames=["limits"])["LaunchTemplates"][0]
    spot_fleet = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": f"arn:aws:iam::{ACCOUNT}:role/fleet", "TargetCapacity": 25, "AllocationStrategy": "lowestPrice",
        "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {
            "LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"}}]})["SpotFleetRequestId"]

    pages = [page["ActiveInstances"] for page in ec2.get_paginator("describe_spot_fleet_instances").paginate(
        SpotFleetRequestId=spot_fleet, PaginationConfig={"PageSize": 10})]

    assert [len(page) for page in pages] == [10, 10, 5]
    assert len({item["InstanceId"] for page in pages for item in page}) == 25
    assert len(ec2.describe_spot_fleet_instances(SpotFleetRequestId=spot_fleet)["ActiveInstances"]) == 25
    ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[spot_fleet], TerminateInstances=True)


# --------------------------------------------------------------------------- CloudWatch


def test_delete_and_describe_alarms_take_at_most_100_names(fleet):
    cloudwatch = client("cloudwatch")
    names = [f"names-{index:03}" for index in range(101)]
    for name in names:
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="m", Namespace="limits", Statistic="Average",
                                    Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold")

    assert refused(cloudwatch.describe_alarms, AlarmNames=names) == ("ValidationError", 400)
    assert refused(cloudwatch.delete_alarms, AlarmNames=names) == ("ValidationError", 400)
    assert len([alarm for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=names[:100])
                for alarm in page["MetricAlarms"]]) == 100

    cloudwatch.delete_alarms(AlarmNames=names[:100])
    cloudwatch.delete_alarms(AlarmNames=names[100:])
    assert cloudwatch.describe_alarms(AlarmNamePrefix="names-")["MetricAlarms"] == []


def test_describe_alarms_comes_in_pages_of_50(fleet):
    cloudwatch = client("cloudwatch")
    for index in range(FLEET_SIZE):
        cloudwatch.put_metric_alarm(AlarmName=f"paged-{index:04}", MetricName="m", Namespace="limits",
                                    Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold")

    pages = [page["MetricAlarms"] for page in cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix="paged-")]

    assert [len(page) for page in pages] == [50] * (FLEET_SIZE // 50)
    assert len({alarm["AlarmName"] for page in pages for alarm in page}) == FLEET_SIZE
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix="paged-", MaxRecords=100)["MetricAlarms"]) == 100
    assert refused(cloudwatch.describe_alarms, AlarmNamePrefix="paged-", MaxRecords=101) == ("ValidationError", 400)


# --------------------------------------------------------------------------- ECS


@pytest.fixture(scope="module")
def cluster(fleet):
    """An ECS cluster with 150 container instances on the fleet's machines (moto registers ~30 a second)."""
    ecs = client("ecs")
    ecs.create_cluster(clusterName="limits")
    for instance_id in fleet_machines(fleet)[:150]:
        document = json.dumps({"instanceId": instance_id, "region": REGION, "availabilityZone": f"{REGION}a",
                               "instanceType": "m5.large", "accountId": ACCOUNT})
        ecs.register_container_instance(cluster="limits", instanceIdentityDocument=document)
    return "limits"


def test_list_container_instances_comes_in_pages_of_100(cluster):
    ecs = client("ecs")

    pages = [page["containerInstanceArns"] for page in ecs.get_paginator("list_container_instances").paginate(
        cluster=cluster)]

    assert [len(page) for page in pages] == [100, 50]
    assert len(set(pages[0] + pages[1])) == 150
    assert refused(ecs.list_container_instances, cluster=cluster, maxResults=101) == (
        "InvalidParameterException", 400)


def test_describe_container_instances_takes_at_most_100(cluster):
    ecs = client("ecs")
    arns = [arn for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster)
            for arn in page["containerInstanceArns"]]

    assert refused(ecs.describe_container_instances, cluster=cluster,
                   containerInstances=arns[:101]) == ("InvalidParameterException", 400)
    assert len(ecs.describe_container_instances(cluster=cluster,
                                                containerInstances=arns[:100])["containerInstances"]) == 100


def test_describe_services_takes_at_most_10_and_tasks_100(cluster):
    ecs = client("ecs")
    ecs.register_task_definition(family="limits", containerDefinitions=[
        {"name": "job", "image": "example/worker:1", "memory": 128}])
    services = [f"service-{index}" for index in range(11)]
    for name in services:
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition="limits", desiredCount=0)

    assert refused(ecs.describe_services, cluster=cluster, services=services) == ("InvalidParameterException", 400)
    assert len(ecs.describe_services(cluster=cluster, services=services[:10])["services"]) == 10
    tasks = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{index:032x}" for index in range(101)]
    assert refused(ecs.describe_tasks, cluster=cluster, tasks=tasks) == ("InvalidParameterException", 400)
    assert ecs.describe_tasks(cluster=cluster, tasks=tasks[:100])["tasks"] == []


# --------------------------------------------------------------------------- SQS


def test_sqs_batches_take_at_most_10_entries(fleet):
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="limits-batches")["QueueUrl"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(index), "MessageBody": f"job {index}"}
                                                         for index in range(10)])
    assert len(sent["Successful"]) == 10
    received = []
    while len(received) < 10:
        received += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)["Messages"]
    handles = [message["ReceiptHandle"] for message in received]
    eleven = [*handles, handles[0] + "x"]
    too_many = ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400)

    assert refused(sqs.send_message_batch, QueueUrl=url, Entries=[
        {"Id": str(index), "MessageBody": "x"} for index in range(11)]) == too_many
    assert refused(sqs.change_message_visibility_batch, QueueUrl=url, Entries=[
        {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
        for index, handle in enumerate(eleven)]) == too_many
    assert refused(sqs.delete_message_batch, QueueUrl=url, Entries=[
        {"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(eleven)]) == too_many

    moved = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 600} for index, handle in enumerate(handles)])
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(handles)])
    assert len(moved["Successful"]) == len(deleted["Successful"]) == 10
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_send_message_batch_counts_attributes_in_its_256_kib(fleet):
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="limits-bytes")["QueueUrl"]
    attribute = {"dsr-app": {"DataType": "String", "StringValue": "App"}}
    attribute_bytes = len("dsr-app") + len("String") + len("App")
    body = (limits.SQS_BATCH_BYTES - 10 * attribute_bytes) // 10

    def entries(body_bytes: int):
        return [{"Id": str(index), "MessageBody": "x" * body_bytes, "MessageAttributes": attribute}
                for index in range(10)]

    # bodies alone within 256 KiB (moto's own check passes), attributes over it: AWS refuses
    assert refused(sqs.send_message_batch, QueueUrl=url, Entries=entries(body + 1)) == (
        "AWS.SimpleQueueService.BatchRequestTooLong", 400)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert len(sqs.send_message_batch(QueueUrl=url, Entries=entries(body))["Successful"]) == 10


# --------------------------------------------------------------------------- S3, CloudWatch Logs, tagging


def test_delete_objects_takes_at_most_1000_keys(fleet):
    s3 = client("s3")
    s3.create_bucket(Bucket="limits-bucket")
    keys = [f"run/{index:04}" for index in range(1001)]
    for key in keys:
        s3.put_object(Bucket="limits-bucket", Key=key, Body=b"")

    assert refused(s3.delete_objects, Bucket="limits-bucket",
                   Delete={"Objects": [{"Key": key} for key in keys]}) == ("MalformedXML", 400)
    assert s3.list_objects_v2(Bucket="limits-bucket")["KeyCount"] == 1000  # the first page: nothing was deleted

    answer = s3.delete_objects(Bucket="limits-bucket", Delete={"Objects": [{"Key": key} for key in keys[:1000]]})
    assert len(answer["Deleted"]) == 1000 and not answer.get("Errors")
    assert [item["Key"] for item in s3.list_objects_v2(Bucket="limits-bucket")["Contents"]] == keys[1000:]


def test_put_log_events_takes_at_most_10000_events_and_1_mib(fleet):
    logs = client("logs")
    logs.create_log_group(logGroupName="limits")
    logs.create_log_stream(logGroupName="limits", logStreamName="job")
    now = int(time.time() * 1000)

    def events(count: int, size: int = 1):
        return [{"timestamp": now, "message": "x" * size} for _ in range(count)]

    assert refused(logs.put_log_events, logGroupName="limits", logStreamName="job",
                   logEvents=events(10_001)) == ("InvalidParameterException", 400)
    per_event = limits.LOGS_PUT_BYTES // 4 - limits.LOGS_EVENT_OVERHEAD
    assert refused(logs.put_log_events, logGroupName="limits", logStreamName="job",
                   logEvents=events(4, per_event + 1)) == ("InvalidParameterException", 400)
    assert logs.get_log_events(logGroupName="limits", logStreamName="job")["events"] == []

    logs.put_log_events(logGroupName="limits", logStreamName="job", logEvents=events(10_000))
    logs.put_log_events(logGroupName="limits", logStreamName="job", logEvents=events(4, per_event))


def test_get_resources_takes_at_most_100_arns(fleet):
    tagging = client("resourcegroupstaggingapi")
    arns = [f"arn:aws:sqs:{REGION}:{ACCOUNT}:limits-{index}" for index in range(101)]

    assert refused(tagging.get_resources, ResourceARNList=arns) == ("InvalidParameterException", 400)
    assert tagging.get_resources(ResourceARNList=arns[:100])["ResourceTagMappingList"] == []


# --------------------------------------------------------------------------- the patches themselves

HANDLERS = [("moto.ec2.responses", "EC2Response", name) for name in (
    "terminate_instances", "describe_instances", "describe_fleet_instances", "describe_spot_fleet_instances")] + [
    ("moto.cloudwatch.responses", "CloudWatchResponse", "delete_alarms"),
    ("moto.cloudwatch.responses", "CloudWatchResponse", "describe_alarms"),
    ("moto.sqs.responses", "SQSResponse", "send_message_batch"),
    ("moto.sqs.responses", "SQSResponse", "delete_message_batch"),
    ("moto.sqs.responses", "SQSResponse", "change_message_visibility_batch"),
    ("moto.s3.responses", "S3Response", "_bucket_response_delete_keys"),
    ("moto.logs.responses", "LogsResponse", "put_log_events"),
    ("moto.resourcegroupstaggingapi.responses", "ResourceGroupsTaggingAPIResponse", "get_resources")] + [
    ("moto.ecs.responses", "EC2ContainerServiceResponse", name) for name in (
        "describe_container_instances", "describe_services", "describe_tasks", "list_container_instances")]


def test_each_limit_wraps_a_handler_moto_has_and_leaving_restores_it():
    import importlib

    classes = [getattr(importlib.import_module(module), name) for module, name, _ in HANDLERS]
    before = [cls.__dict__.get(handler) for cls, (_, _, handler) in zip(classes, HANDLERS, strict=True)]
    assert all(callable(getattr(cls, handler)) for cls, (_, _, handler) in zip(classes, HANDLERS, strict=True))

    with limits.enforced():
        inside = [cls.__dict__.get(handler) for cls, (_, _, handler) in zip(classes, HANDLERS, strict=True)]

    assert all(now is not then for now, then in zip(inside, before, strict=True))
    assert [cls.__dict__.get(handler) for cls, (_, _, handler) in zip(classes, HANDLERS, strict=True)] == before
