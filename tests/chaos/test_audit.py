"""The audit's recorder reads each protocol's request as AWS would: the caller's key id, the operation, the resources.

Requests are serialized by botocore's own serializers for the protocol (CloudWatch's Smithy RPC v2 CBOR, EC2's
query), so the recorder is held to what a client sends, not to a hand-written guess of it. The JSON protocols, S3 and
the receipt handles go through the real proxy in tests/chaos/test_invariants.py.
"""

from __future__ import annotations

import botocore.serialize
import botocore.session

from tests.chaos import audit
from tests.chaos.audit import Recorder

AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=chaos-RunA/20261206/us-east-1/{service}/aws4_request, "
                 "SignedHeaders=host, Signature=0")


def serialized(service: str, operation: str, params: dict) -> dict:
    model = botocore.session.get_session().get_service_model(service)
    protocol = "smithy-rpc-v2-cbor" if service == "cloudwatch" else model.protocol
    return botocore.serialize.create_serializer(protocol).serialize_to_request(params, model.operation_model(operation))


def observed(tmp_path, service: str, scope: str, operation: str, params: dict, status: int = 200) -> list[dict]:
    request = serialized(service, operation, params)
    body = request["body"] if isinstance(request["body"], bytes) else (
        "&".join(f"{key}={value}" for key, value in request["body"].items()).encode())
    headers = {**request["headers"], "Authorization": AUTHORIZATION.format(service=scope), "Host": "127.0.0.1:1"}
    recorder = Recorder(tmp_path / "audit.jsonl")
    recorder.observe("POST", request["url_path"], headers, body, status)
    return [{key: value for key, value in line.items() if key != "time"} for line in audit.read(recorder.path)]


def test_cloudwatchs_cbor_protocol_names_the_operation_and_the_alarms(tmp_path):
    assert observed(tmp_path, "cloudwatch", "monitoring", "DeleteAlarms", {"AlarmNames": ["RunA_i-0abc", "B"]}) == [
        {"caller": "chaos-RunA", "service": "monitoring", "operation": "DeleteAlarms", "status": 200,
         "destructive": True, "resources": {"alarm": ["RunA_i-0abc", "B"]}}]


def test_an_alarm_put_in_cbor_names_the_instance_its_action_would_act_on(tmp_path):
    [line] = observed(tmp_path, "cloudwatch", "monitoring", "PutMetricAlarm", {
        "AlarmName": "RunA_i-0abc", "MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "Average",
        "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "LessThanThreshold",
        "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}]})
    assert line["resources"] == {"alarm": ["RunA_i-0abc"], "instance": ["i-0abc"]} and line["existed"] is False


def test_ec2s_query_protocol_lists_become_resources(tmp_path):
    [line] = observed(tmp_path, "ec2", "ec2", "TerminateInstances", {"InstanceIds": ["i-01", "i-02"]})
    assert (line["operation"], line["resources"]) == ("TerminateInstances", {"instance": ["i-01", "i-02"]})


def test_a_refused_request_or_a_read_is_not_recorded(tmp_path):
    assert observed(tmp_path, "ec2", "ec2", "TerminateInstances", {"InstanceIds": ["i-01"]}, status=400) == []
    assert observed(tmp_path, "ec2", "ec2", "DescribeInstances", {}) == []


def test_a_request_the_recorder_cannot_read_is_an_error_line_not_an_exception(tmp_path):
    recorder = Recorder(tmp_path / "audit.jsonl")
    recorder.observe("POST", "/", {"X-Amz-Target": "AmazonSQS.DeleteQueue",
                                   "Authorization": AUTHORIZATION.format(service="sqs")}, b"{not json", 200)
    [line] = audit.read(recorder.path)
    assert line["error"].startswith("JSONDecodeError") and line["path"] == "/"


def test_s3_names_the_bucket_by_host_when_virtual_hosted(tmp_path):
    recorder = Recorder(tmp_path / "audit.jsonl")
    headers = {"Host": "chaos-bucket.s3.amazonaws.com", "Authorization": AUTHORIZATION.format(service="s3")}
    recorder.observe("DELETE", "/runs/RunA/leases/i-1/1", headers, b"", 204)
    [line] = audit.read(recorder.path)
    assert (line["operation"], line["resources"]) == ("DeleteObject", {"s3": ["chaos-bucket/runs/RunA/leases/i-1/1"]})
