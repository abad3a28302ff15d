"""The IAM engine's patches must keep applying: a moto upgrade that moves what they replace fails here, loudly.

tests/iam_engine.py replaces pieces of moto's IAM enforcement (see each patch's
docstring for how moto differs from AWS). `mock.patch.object` already refuses a
missing attribute, but a renamed parameter, a moved call or a new method of
moto's own would let a patch apply and silently stop meaning anything. If a test
here fails after an upgrade, re-read that moto code before touching the patch;
if a gap test fails, moto may have fixed the gap and the patch may be dropped.
"""

from __future__ import annotations

import inspect
import json

import moto
import pytest
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core import authorization
from moto.core import errors as moto_errors
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import BaseResponse
from moto.ec2.responses import EC2Response
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ec2.responses.spot_fleets import SpotFleets
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, IAMRequestBase, PermissionResult
from moto.logs.models import LogsBackend
from moto.logs.responses import LogsResponse
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.sqs.responses import SQSResponse

from tests.iam_engine import _resource_tags, _Unknown
from tests.unit.test_moto_patches import PINNED_MOTO


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def source(function) -> str:
    return inspect.getsource(function)


def test_moto_is_the_version_the_engine_was_written_for():
    assert moto.__version__ == PINNED_MOTO, f"moto {moto.__version__}: re-check every patch in tests/iam_engine.py"


def test_the_switch_and_the_request_path_are_where_the_engine_hooks_in():
    assert callable(authorization.enable_iam_authentication)
    assert parameters(ActionAuthenticatorMixin._authenticate_and_authorize_action) == [
        "self", "iam_request_cls", "resource"]
    assert parameters(ActionAuthenticatorMixin._authenticate_and_authorize_normal_action) == ["self", "resource"]
    call_action = source(BaseResponse.call_action)
    # The resource moto checks comes from the response class's optional _determine_resource, and an auth
    # failure is answered from the HTTPException's description and code.
    assert 'hasattr(self, "_determine_resource")' in call_action
    assert "self._authenticate_and_authorize_normal_action(resource)" in call_action
    assert "except HTTPException as http_error" in call_action
    assert "http_error.description" in call_action and "http_error.code" in call_action
    assert callable(BaseResponse.serialized)


def test_who_signed_a_request_is_looked_up_as_the_engine_expects():
    assert parameters(access_control.create_access_key) == ["account_id", "partition", "access_key_id", "headers"]
    assert 'CreateAccessKeyFailure(reason="InvalidId")' in source(access_control.IAMUserAccessKey.__init__)
    assert 'CreateAccessKeyFailure(reason="InvalidId")' in source(access_control.AssumedRoleAccessKey.__init__)


def test_the_action_and_policy_evaluation_the_engine_replaces():
    assert 'f"{self._service}:' in source(IAMRequestBase.__init__), "the action is still built from the signing name"
    assert parameters(IAMRequestBase.check_action_permitted) == ["self", "resource"]
    assert parameters(IAMPolicyStatement.is_action_permitted) == [
        "self", "action", "resource", "principal", "incoming_condition_values"]
    assert "self._statement" in source(IAMPolicyStatement.__init__)
    # Trust policies pass the caller as `principal` (the engine leaves those to moto)
    assert "target_principal" in source(IAMRequestBase._check_role_trust_relationship)


def test_the_response_classes_the_engine_names_resources_for():
    # LogsResponse and CloudWatchResponse have no resource lookup of their own: the engine adds one. If moto
    # adds its own, the engine's replaces it: compare the two first.
    assert "_determine_resource" not in vars(LogsResponse)
    assert "_determine_resource" not in vars(CloudWatchResponse)
    assert "_determine_resource" in vars(SQSResponse)
    assert CloudWatchResponse().automated_parameter_parsing, "the engine reads AlarmNames with _get_param"


def test_the_s3_batch_delete_path_the_engine_replaces():
    assert parameters(S3Response._authenticate_and_authorize_s3_action) == ["self", "bucket_name", "key_name"]
    assert parameters(S3Response._bucket_response_delete_keys) == ["self", "bucket_name", "authenticated"]
    post = source(S3Response._bucket_response_post)
    assert "self.is_delete_keys()" in post and 'self.data["Action"] = "DeleteObject"' in post
    delete_keys = source(S3Response._bucket_response_delete_keys)
    # moto's per-key loop, which the engine feeds its per-key denials through
    assert "bucket.get_permission(" in delete_keys
    assert '"s3:DeleteObject", f"arn:aws:s3:::{bucket_name}/{obj[\'Key\']}"' in delete_keys
    assert parameters(FakeBucket.get_permission) == ["self", "action", "resource"]


def test_moto_still_finds_an_exception_s_service_from_its_module():
    # The engine's AccessDenied is defined outside moto's package so moto serializes it with the
    # caller's service model.
    assert "exception.__module__" in source(moto_errors.get_exception_service_model)


def _moto_alone(statements, action, resource) -> PermissionResult:
    return IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": statements})).is_action_permitted(
        action, resource)


@pytest.mark.parametrize("statements, action, resource, moto_says, aws_says", [
    pytest.param([{"Effect": "Deny", "Action": "s3:PutObject", "NotResource": "arn:aws:s3:::b/out/*"}],
                 "s3:PutObject", "arn:aws:s3:::b/monitors/x", PermissionResult.PERMITTED, PermissionResult.DENIED,
                 id="a Deny with NotResource allows"),
    pytest.param([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
                   "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}],
                 "s3:PutObject", "arn:aws:s3:::b/k", PermissionResult.PERMITTED, PermissionResult.NEUTRAL,
                 id="conditions are ignored"),
    pytest.param([{"Effect": "Allow", "Action": "sqs:DeleteQueue", "Resource": "*",
                   "Condition": {"Null": {"aws:ResourceTag/dsr:app": "false"}}}],
                 "sqs:DeleteQueue", "arn:aws:sqs:us-east-1:123456789012:Untagged", PermissionResult.PERMITTED,
                 PermissionResult.NEUTRAL, id="resource tag conditions are ignored"),
    pytest.param([{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
                   "Condition": {"StringLike": {"s3:prefix": "TestApp/*"}}}],
                 "s3:ListBucket", "arn:aws:s3:::b", PermissionResult.PERMITTED, PermissionResult.NEUTRAL,
                 id="s3:prefix conditions are ignored (here: a listing of monitors/)"),
    pytest.param([{"Effect": "Allow", "Action": "s3:putobject", "Resource": "*"}],
                 "s3:PutObject", "arn:aws:s3:::b/k", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="actions are case-sensitive"),
    pytest.param([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/out/?"}],
                 "s3:PutObject", "arn:aws:s3:::b/out/a", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="? is a regex quantifier"),
    pytest.param([{"Effect": "Allow", "Action": "cloudwatch:PutMetricAlarm", "Resource": "*"}],
                 "monitoring:PutMetricAlarm", "*", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="CloudWatch actions are checked as monitoring:*"),
    pytest.param([{"Effect": "Allow", "Action": "sqs:ChangeMessageVisibility", "Resource": "*"}],
                 "sqs:ChangeMessageVisibilityBatch", "*", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="SQS batch operations are checked as actions of their own"),
])
def test_the_gaps_the_engine_patches_are_still_in_moto(statements, action, resource, moto_says, aws_says):
    """If one of these fails, moto now answers as AWS does: the matching patch may be dropped."""
    assert _moto_alone(statements, action, resource) == moto_says != aws_says


def test_the_gaps_in_moto_s_resource_lookup_are_still_there():
    assert "QueueDoesNotExist" in source(SQSResponse._determine_resource), "moto still falls back to '*'"
    assert '"QueueUrl"' in source(SQSResponse._get_queue_name), "moto still reads only QueueUrl"


def test_the_ec2_and_ecs_requests_the_engine_names_resources_for():
    # No resource lookup of moto's own anywhere in their class hierarchy: the engine adds one (compare first if
    # moto adds its own), and reads the parameters by their API member names.
    for response in (EC2Response, EC2ContainerServiceResponse):
        assert not any("_determine_resource" in vars(cls) for cls in response.__mro__), response
        assert response().automated_parameter_parsing, response
    assert '_get_param("SpotFleetRequestIds"' in source(SpotFleets.cancel_spot_fleet_requests)
    assert '_get_param("SpotFleetRequestId")' in source(SpotFleets.modify_spot_fleet_request)
    assert '_get_param("InstanceIds"' in source(InstanceResponse.terminate_instances)
    deletes = source(LaunchTemplates.delete_launch_template)
    assert '_get_param("LaunchTemplateId")' in deletes and '_get_param("LaunchTemplateName")' in deletes
    assert '_get_param("cluster"' in source(EC2ContainerServiceResponse.delete_cluster)
    assert '_get_param("service")' in source(EC2ContainerServiceResponse.delete_service)


def test_the_log_export_write_check_the_engine_adds():
    # moto writes the export's test object at the bucket's root, straight into the S3 backend (no IAM check)
    export = source(LogsBackend.create_export_task)
    assert 'key_name="aws-logs-write-test"' in export and "s3_backends[" in export
    assert '_get_param("destination")' in source(LogsResponse.create_export_task)
    assert '_get_param("destinationPrefix", "exportedlogs")' in source(LogsResponse.create_export_task)
    # the engine swaps the request's action for the write check; moto's denial names the action it holds
    assert "action=self._action" in source(access_control.IAMRequest._raise_access_denied)


def test_the_request_parts_conditions_are_read_from():
    # s3:prefix comes from the query string moto appends to the path it hands the IAM request
    assert 'path += "?" + parsed_url.query' in source(ActionAuthenticatorMixin._authenticate_and_authorize_action)
    init = source(IAMRequestBase.__init__)
    assert "self._path = path" in init and "self._method = method" in init and "self._action = (" in init


def test_resource_tags_are_read_from_moto_s_models(aws):
    """What `_resource_tags` reads, for every ARN shape the engine names, against moto's real models: if moto
    moves a model's tags, this fails (and under the engine the condition stays unevaluated, never guessed)."""
    import boto3

    tags, account, region = {"dsr:app": "App"}, "123456789012", "us-east-1"
    ec2, ecs, sqs, logs = (boto3.client(name, region_name=region) for name in ("ec2", "ecs", "sqs", "logs"))
    sqs.create_queue(QueueName="Tagged", tags=tags)
    sqs.create_queue(QueueName="Bare")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    spec = {"IamFleetRole": f"arn:aws:iam::{account}:role/fleet", "TargetCapacity": 1, "SpotPrice": "0.1",
            "AllocationStrategy": "lowestPrice", "LaunchSpecifications": [{"ImageId": ami, "InstanceType": "m5.large"}]}
    fleet = ec2.request_spot_fleet(SpotFleetRequestConfig={**spec, "TagSpecifications": [
        {"ResourceType": "spot-fleet-request", "Tags": [{"Key": "dsr:app", "Value": "App"}]}]})["SpotFleetRequestId"]
    ec2.create_tags(Resources=[fleet], Tags=[{"Key": "later", "Value": "1"}])  # CreateTags on the fleet
    bare_fleet = ec2.request_spot_fleet(SpotFleetRequestConfig=spec)["SpotFleetRequestId"]
    [instance] = [i["InstanceId"] for i in ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "dsr:app", "Value": "App"}]}])["Instances"]]
    [bare_instance] = [i["InstanceId"] for i in ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"]]
    template = ec2.create_launch_template(
        LaunchTemplateName="Tagged", LaunchTemplateData={"ImageId": ami}, TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "dsr:app", "Value": "App"}]}])["LaunchTemplate"][
        "LaunchTemplateId"]
    ec2.create_tags(Resources=[template], Tags=[{"Key": "later", "Value": "1"}])  # CreateTags on the template
    bare_template = ec2.create_launch_template(LaunchTemplateName="Bare", LaunchTemplateData={"ImageId": ami})[
        "LaunchTemplate"]["LaunchTemplateId"]
    ecs.create_cluster(clusterName="runs", tags=[{"key": "dsr:app", "value": "App"}])
    ecs.create_cluster(clusterName="bare")
    ecs.register_task_definition(family="T", containerDefinitions=[{"name": "w", "image": "i", "memory": 128}])
    ecs.create_service(cluster="runs", serviceName="S", taskDefinition="T", tags=[{"key": "dsr:app", "value": "App"}])
    ecs.create_service(cluster="bare", serviceName="S", taskDefinition="T")
    logs.create_log_group(logGroupName="Tagged", tags=tags)
    logs.create_log_group(logGroupName="Bare")
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    for name, alarm_tags in (("Tagged", [{"Key": "dsr:app", "Value": "App"}]), ("Bare", [])):
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2", Period=60,
                                    Statistic="Maximum", EvaluationPeriods=1, Threshold=1.0,
                                    ComparisonOperator="LessThanThreshold", Tags=alarm_tags)

    arn = {service: f"arn:aws:{service}:{region}:{account}:" for service in ("sqs", "ec2", "ecs", "logs", "cloudwatch")}
    assert _resource_tags(arn["sqs"] + "Tagged") == tags and _resource_tags(arn["sqs"] + "Bare") == {}
    assert _resource_tags(arn["ec2"] + f"spot-fleet-request/{fleet}") == {**tags, "later": "1"}
    assert _resource_tags(arn["ec2"] + f"spot-fleet-request/{bare_fleet}") == {}
    assert _resource_tags(arn["ec2"] + f"instance/{instance}") == tags
    assert _resource_tags(arn["ec2"] + f"instance/{bare_instance}") == {}
    assert _resource_tags(arn["ec2"] + f"launch-template/{template}") == {**tags, "later": "1"}
    assert _resource_tags(arn["ec2"] + f"launch-template/{bare_template}") == {}
    assert _resource_tags(arn["ecs"] + "cluster/runs") == tags and _resource_tags(arn["ecs"] + "cluster/bare") == {}
    assert _resource_tags(arn["ecs"] + "service/runs/S") == tags and _resource_tags(arn["ecs"] + "service/bare/S") == {}
    assert _resource_tags(arn["logs"] + "log-group:Tagged:log-stream:") == tags
    assert _resource_tags(arn["logs"] + "log-group:Bare:log-stream:") == {}
    assert _resource_tags(arn["cloudwatch"] + "alarm:Tagged") == tags
    assert _resource_tags(arn["cloudwatch"] + "alarm:Bare") == {}
    for missing in (arn["cloudwatch"] + "alarm:Gone",
                    arn["sqs"] + "Gone", arn["ec2"] + "spot-fleet-request/sfr-gone", arn["ec2"] + "instance/i-gone",
                    arn["ec2"] + "launch-template/lt-0123456789abcdef0",
                    arn["ecs"] + "cluster/gone", arn["ecs"] + "service/runs/Gone", arn["logs"] + "log-group:Gone",
                    arn["logs"] + "log-group:Tagged:log-stream:s1", "*"):
        with pytest.raises(_Unknown):
            _resource_tags(missing)
