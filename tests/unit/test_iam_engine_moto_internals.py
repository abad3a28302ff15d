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
from moto.core import authorization, errors as moto_errors
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import BaseResponse
from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, IAMRequestBase, PermissionResult
from moto.logs.responses import LogsResponse
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.sqs.responses import SQSResponse

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
    pytest.param([{"Effect": "Allow", "Action": "s3:putobject", "Resource": "*"}],
                 "s3:PutObject", "arn:aws:s3:::b/k", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="actions are case-sensitive"),
    pytest.param([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/out/?"}],
                 "s3:PutObject", "arn:aws:s3:::b/out/a", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="? is a regex quantifier"),
    pytest.param([{"Effect": "Allow", "Action": "cloudwatch:PutMetricAlarm", "Resource": "*"}],
                 "monitoring:PutMetricAlarm", "*", PermissionResult.NEUTRAL, PermissionResult.PERMITTED,
                 id="CloudWatch actions are checked as monitoring:*"),
])
def test_the_gaps_the_engine_patches_are_still_in_moto(statements, action, resource, moto_says, aws_says):
    """If one of these fails, moto now answers as AWS does: the matching patch may be dropped."""
    assert _moto_alone(statements, action, resource) == moto_says != aws_says


def test_the_gaps_in_moto_s_resource_lookup_are_still_there():
    assert "QueueDoesNotExist" in source(SQSResponse._determine_resource), "moto still falls back to '*'"
    assert '"QueueUrl"' in source(SQSResponse._get_queue_name), "moto still reads only QueueUrl"
