"""The IAM engine (tests/iam_engine.py) answers as AWS does where our policies rely on it.

Each test runs on both moto worlds: `aws` (in-process) and `moto_server` (a
ThreadedMotoServer in this process), since the engine switches moto's
enforcement in-process and both must see it. Set-up and inspection use the
tests' dummy admin keys, which the engine never checks; the calls under test use
credentials holding exactly one role's or one policy's permissions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase

from chalicelib import iam, leases, names
from tests.iam_engine import UnevaluatedPolicy, chalicelib_uses, iam_enforced, is_access_denied, policy_session, \
    role_session

ACCOUNT, REGION, BUCKET = "123456789012", "us-east-1", "engine-bucket"
LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
ALARMS = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
ALARM = dict(MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Maximum", Period=60, EvaluationPeriods=15,
             Threshold=1, ComparisonOperator="LessThanThreshold")
MONITOR_POLICY = Path(__file__).resolve().parents[2] / ".chalice" / "policy-dev.json"


@pytest.fixture(params=["aws", "moto_server"])
def world(request):
    request.getfixturevalue(request.param)
    return request.param


def admin(service):
    return boto3.client(service, region_name=REGION)


def make_role(name: str, *statements: dict) -> boto3.Session:
    admin("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    admin("iam").put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": list(statements)}))
    return role_session(name, REGION)


def allow(actions, resources) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def denied(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    assert is_access_denied(caught.value), caught.value
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return caught.value


def test_a_role_writes_the_log_group_it_is_granted_and_no_other(world):
    for group in ("A", "B"):
        admin("logs").create_log_group(logGroupName=group)
    logs = make_role("writer", allow(["logs:CreateLogStream", "logs:PutLogEvents"], LOGS + "A:*")).client("logs")
    event = [{"timestamp": int(time.time() * 1000), "message": "hello"}]

    with iam_enforced() as engine:
        logs.create_log_stream(logGroupName="A", logStreamName="job-1")
        logs.put_log_events(logGroupName="A", logStreamName="job-1", logEvents=event)
        error = denied(lambda: logs.create_log_stream(logGroupName="B", logStreamName="job-1"))
        admin("logs").create_log_stream(logGroupName="B", logStreamName="job-1")  # the test's own step: not checked
        denied(lambda: logs.put_log_events(logGroupName="B", logStreamName="job-1", logEvents=event))

    assert error.response["Error"]["Code"] == "AccessDeniedException"  # as CloudWatch Logs spells it
    assert [(d.action, d.resources, d.allowed) for d in engine.decisions] == [
        ("logs:CreateLogStream", (LOGS + "A:log-stream:job-1",), True),
        ("logs:PutLogEvents", (LOGS + "A:log-stream:job-1",), True),
        ("logs:CreateLogStream", (LOGS + "B:log-stream:job-1",), False),
        ("logs:PutLogEvents", (LOGS + "B:log-stream:job-1",), False)]
    assert admin("logs").get_log_events(logGroupName="A", logStreamName="job-1", startFromHead=True)["events"][0]["message"] == "hello"


def test_group_level_log_calls_are_checked_against_the_group_as_aws_spells_it(world):
    """AWS checks CreateLogGroup on log-group:NAME:log-stream: (hence AWS's "grant log-group:NAME:*")."""
    bare = make_role("bare", allow(["logs:CreateLogGroup"], LOGS + "A")).client("logs")
    starred = make_role("starred", allow(["logs:CreateLogGroup", "logs:DescribeLogGroups"], LOGS + "A:*")).client("logs")

    with iam_enforced() as engine:
        denied(lambda: bare.create_log_group(logGroupName="A"))
        starred.create_log_group(logGroupName="A")
        denied(lambda: starred.describe_log_groups(logGroupNamePrefix="A"))  # not scoped by prefix on AWS

    assert [d.resources for d in engine.decisions] == [(LOGS + "A:log-stream:",)] * 2 + [(LOGS + ":log-stream:",)]


def test_an_alarm_grant_on_a_name_pattern_allows_those_names_only(world):
    cloudwatch = make_role("alarms", allow(["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
                                            "cloudwatch:DescribeAlarms"], ALARMS + "App_i-*")).client("cloudwatch")

    with iam_enforced() as engine:
        cloudwatch.put_metric_alarm(AlarmName="App_i-0123abcd", **ALARM)
        assert cloudwatch.describe_alarms(AlarmNames=["App_i-0123abcd"])["MetricAlarms"]
        error = denied(lambda: cloudwatch.put_metric_alarm(AlarmName="Other_i-0123abcd", **ALARM))
        admin("cloudwatch").put_metric_alarm(AlarmName="Other_i-0123abcd", **ALARM)
        # One request, two alarms: refused as a whole because one of them is not granted
        denied(lambda: cloudwatch.delete_alarms(AlarmNames=["App_i-0123abcd", "Other_i-0123abcd"]))

    assert error.response["Error"]["Code"] == "AccessDenied"
    assert engine.decisions[0].action == "cloudwatch:PutMetricAlarm"  # not moto's "monitoring:..."
    assert engine.decisions[-1].resources == (ALARMS + "App_i-0123abcd", ALARMS + "Other_i-0123abcd")
    left = admin("cloudwatch").describe_alarms()["MetricAlarms"]
    assert sorted(alarm["AlarmName"] for alarm in left) == ["App_i-0123abcd", "Other_i-0123abcd"]


def test_object_grants_follow_the_key_and_an_explicit_deny_beats_an_allow(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    outputs = make_role("outputs", allow(["s3:PutObject"], f"arn:aws:s3:::{BUCKET}/out/*")).client("s3")
    fenced = make_role("fenced", allow(["s3:PutObject"], f"arn:aws:s3:::{BUCKET}/*"),
                       {"Effect": "Deny", "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{BUCKET}/monitors/*"}).client("s3")

    with iam_enforced():
        outputs.put_object(Bucket=BUCKET, Key="out/plate1/result.txt", Body=b"1")
        denied(lambda: outputs.put_object(Bucket=BUCKET, Key="monitors/x", Body=b"1"))
        fenced.put_object(Bucket=BUCKET, Key="anything/else", Body=b"1")
        denied(lambda: fenced.put_object(Bucket=BUCKET, Key="monitors/x", Body=b"1"))

    keys = [item["Key"] for item in admin("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["anything/else", "out/plate1/result.txt"]


def test_a_batch_delete_refuses_each_key_the_caller_may_not_delete(world):
    """AWS checks s3:DeleteObject per key and reports each refused key (moto checked the bucket ARN once)."""
    admin("s3").create_bucket(Bucket=BUCKET)
    for key in ("runs/App/leases/i-1/w", "out/plate1/result.txt"):
        admin("s3").put_object(Bucket=BUCKET, Key=key, Body=b"1")
    s3 = make_role("leases", allow(["s3:DeleteObject"], f"arn:aws:s3:::{BUCKET}/runs/App/leases/*")).client("s3")

    with iam_enforced() as engine:
        answer = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [
            {"Key": "runs/App/leases/i-1/w"}, {"Key": "out/plate1/result.txt"}]})

    assert [item["Key"] for item in answer.get("Deleted", [])] == ["runs/App/leases/i-1/w"]
    assert [(item["Key"], item["Code"]) for item in answer["Errors"]] == [("out/plate1/result.txt", "AccessDenied")]
    assert [item["Key"] for item in admin("s3").list_objects_v2(Bucket=BUCKET)["Contents"]] == ["out/plate1/result.txt"]
    assert [(d.resources, d.allowed) for d in engine.checked("s3:DeleteObject")] == [
        ((f"arn:aws:s3:::{BUCKET}/runs/App/leases/i-1/w",), True),
        ((f"arn:aws:s3:::{BUCKET}/out/plate1/result.txt",), False)]


def test_a_queue_grant_covers_that_queue_by_name_and_url_and_no_other(world):
    url = admin("sqs").create_queue(QueueName="AppQueue")["QueueUrl"]
    other = admin("sqs").create_queue(QueueName="OtherQueue")["QueueUrl"]
    sqs = make_role("queue", allow(["sqs:GetQueueUrl", "sqs:SendMessage"],
                                   f"arn:aws:sqs:{REGION}:{ACCOUNT}:AppQueue")).client("sqs")

    with iam_enforced():
        assert sqs.get_queue_url(QueueName="AppQueue")["QueueUrl"] == url  # moto alone checks "*" here
        sqs.send_message(QueueUrl=url, MessageBody="job")
        error = denied(lambda: sqs.send_message(QueueUrl=other, MessageBody="job"))
        denied(lambda: sqs.get_queue_url(QueueName="OtherQueue"))

    assert error.response["Error"]["Code"] == "AccessDenied"
    assert admin("sqs").get_queue_attributes(QueueUrl=other, AttributeNames=["All"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_statements_are_read_as_iam_reads_them(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    s3 = make_role("semantics",
                   # Actions are case-insensitive; "?" is one character
                   allow(["S3:putobject"], [f"arn:aws:s3:::{BUCKET}/out/?", f"arn:aws:s3:::{BUCKET}/x.txt"]),
                   # NotResource: denies every key but out/* (moto read a Deny with NotResource as an Allow)
                   {"Effect": "Deny", "Action": "s3:PutObject", "NotResource": f"arn:aws:s3:::{BUCKET}/out/*"}
                   ).client("s3")

    with iam_enforced():
        s3.put_object(Bucket=BUCKET, Key="out/a", Body=b"1")
        denied(lambda: s3.put_object(Bucket=BUCKET, Key="out/ab", Body=b"1"))  # "?" is one character
        denied(lambda: s3.put_object(Bucket=BUCKET, Key="x.txt", Body=b"1"))  # allowed, but outside NotResource
        denied(lambda: s3.put_object(Bucket=BUCKET, Key="xatxt", Body=b"1"))  # "." is a dot


def test_a_condition_the_engine_cannot_evaluate_fails_closed_and_loudly(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    s3 = make_role("conditioned", {**allow(["s3:PutObject"], "*"),
                                   "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}).client("s3")

    with pytest.raises(UnevaluatedPolicy, match="aws:SourceIp"):
        with iam_enforced():
            denied(lambda: s3.put_object(Bucket=BUCKET, Key="out/a", Body=b"1"))  # moto alone: allowed


def test_leaving_the_engine_leaves_moto_as_it_was(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    s3 = make_role("nothing", allow(["s3:GetObject"], f"arn:aws:s3:::{BUCKET}/*")).client("s3")
    before = (moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count,
              IAMPolicyStatement.is_action_permitted, IAMRequestBase.check_action_permitted,
              ActionAuthenticatorMixin._authenticate_and_authorize_action)

    with iam_enforced():
        denied(lambda: s3.put_object(Bucket=BUCKET, Key="out/a", Body=b"1"))

    assert (moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count,
            IAMPolicyStatement.is_action_permitted, IAMRequestBase.check_action_permitted,
            ActionAuthenticatorMixin._authenticate_and_authorize_action) == before
    s3.put_object(Bucket=BUCKET, Key="out/a", Body=b"1")  # no rules any more, whoever signs
    admin("s3").put_object(Bucket=BUCKET, Key="out/b", Body=b"1")
    assert admin("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 2


def test_the_task_role_setup_account_makes_reaches_its_own_run_only(world, settings):
    """The worker's role as chalicelib/iam.py writes it, exercised on the calls a worker makes."""
    other = f"{settings.APP_NAME}Other"
    admin("s3").create_bucket(Bucket=settings.AWS_BUCKET)
    admin("sqs").create_queue(QueueName=settings.SQS_QUEUE_NAME)
    for group in (settings.LOG_GROUP_NAME, other):
        admin("logs").create_log_group(logGroupName=group)
    iam.setup_account(settings)
    task = role_session(names.task_role(settings), REGION)
    sqs, s3, logs, cloudwatch = (task.client(name) for name in ("sqs", "s3", "logs", "cloudwatch"))
    lease = f"{leases.prefix(settings.APP_NAME)}i-0123abcd/w1"

    with iam_enforced(), chalicelib_uses(task):
        url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="{}")
        logs.create_log_stream(logGroupName=settings.LOG_GROUP_NAME, logStreamName="job")
        denied(lambda: logs.create_log_stream(logGroupName=other, logStreamName="job"))
        cloudwatch.describe_alarms(AlarmNames=[f"{settings.APP_NAME}_i-0123abcd"])
        cloudwatch.put_metric_alarm(AlarmName=f"{settings.APP_NAME}_i-0123abcd", **ALARM)
        denied(lambda: cloudwatch.put_metric_alarm(AlarmName=f"{other}_i-0123abcd", **ALARM))
        s3.put_object(Bucket=settings.AWS_BUCKET, Key=lease, Body=b"P0")
        s3.delete_object(Bucket=settings.AWS_BUCKET, Key=lease)
        s3.put_object(Bucket=settings.AWS_BUCKET, Key="out/plate1/result.txt", Body=b"1")
        denied(lambda: s3.delete_object(Bucket=settings.AWS_BUCKET, Key="out/plate1/result.txt"))
        from chalicelib import aws as clients  # our own code's clients carry the role too
        denied(lambda: clients.client("sqs").create_queue(QueueName="Elsewhere"))


def test_the_monitor_policy_cannot_touch_what_is_not_a_run_record(world):
    """The monitor's policy file, with its bucket: run records yes, workers' outputs no."""
    admin("s3").create_bucket(Bucket="my-lab-bucket")
    admin("s3").put_object(Bucket="my-lab-bucket", Key="out/plate1/result.txt", Body=b"1")
    s3 = policy_session(MONITOR_POLICY.read_text(), REGION).client("s3")

    with iam_enforced():
        s3.put_object(Bucket="my-lab-bucket", Key="monitors/App.json", Body=b"{}")
        assert s3.list_objects_v2(Bucket="my-lab-bucket", Prefix="monitors/")["KeyCount"] == 1
        denied(lambda: s3.get_object(Bucket="my-lab-bucket", Key="out/plate1/result.txt"))
        answer = s3.delete_objects(Bucket="my-lab-bucket", Delete={"Objects": [
            {"Key": "monitors/App.json"}, {"Key": "out/plate1/result.txt"}]})

    assert [item["Key"] for item in answer["Errors"]] == ["out/plate1/result.txt"]
    assert [item["Key"] for item in admin("s3").list_objects_v2(Bucket="my-lab-bucket")["Contents"]] == [
        "out/plate1/result.txt"]
