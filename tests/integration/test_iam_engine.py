"""The IAM engine (tests/iam_engine.py) answers as AWS does where our policies rely on it.

Each test runs on both moto worlds: `aws` (in-process) and `moto_server` (a
ThreadedMotoServer in this process), since the engine switches moto's
enforcement in-process and both must see it. Set-up and inspection use the
tests' dummy admin keys, which the engine never checks; the calls under test use
credentials holding exactly one role's or one policy's permissions.
"""

from __future__ import annotations

import functools
import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase

from chalicelib.model import jobs, names
from chalicelib.runfiles import leases
from operations.deployed import monitor_policy
from operations.setup import iam
from tests.iam_engine import (
    UnevaluatedPolicy,
    chalicelib_uses,
    iam_enforced,
    is_access_denied,
    policy_session,
    role_session,
)

ACCOUNT, REGION, BUCKET = "123456789012", "us-east-1", "engine-bucket"
LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
ALARMS = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
ALARM = {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "Maximum", "Period": 60,
         "EvaluationPeriods": 15, "Threshold": 1, "ComparisonOperator": "LessThanThreshold"}
MONITOR_POLICY = monitor_policy.monitor_policy(monitor_policy.Watched(("my-lab-bucket",), ("user_DeadMessages",)))


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
    events = admin("logs").get_log_events(logGroupName="A", logStreamName="job-1", startFromHead=True)["events"]
    assert events[0]["message"] == "hello"


def test_group_level_log_calls_are_checked_against_the_group_as_aws_spells_it(world):
    """AWS checks CreateLogGroup on log-group:NAME:log-stream: (hence AWS's "grant log-group:NAME:*")."""
    bare = make_role("bare", allow(["logs:CreateLogGroup"], LOGS + "A")).client("logs")
    starred = make_role("starred",
                        allow(["logs:CreateLogGroup", "logs:DescribeLogGroups"], LOGS + "A:*")).client("logs")

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


def test_a_write_carrying_an_acl_needs_put_object_acl_too(world):
    """AWS checks s3:PutObjectAcl as well for a PutObject or a multipart upload that sets an ACL (moto did not)."""
    admin("s3").create_bucket(Bucket=BUCKET)
    plain = make_role("plain", allow(["s3:PutObject"], f"arn:aws:s3:::{BUCKET}/out/*")).client("s3")
    with_acl = make_role("with-acl", allow(["s3:PutObject", "s3:PutObjectAcl"],
                                           f"arn:aws:s3:::{BUCKET}/out/*")).client("s3")
    owner = {"ACL": "bucket-owner-full-control"}

    with iam_enforced() as engine:
        plain.put_object(Bucket=BUCKET, Key="out/plain.txt", Body=b"1")
        denied(lambda: plain.put_object(Bucket=BUCKET, Key="out/acl.txt", Body=b"1", **owner))
        denied(lambda: plain.create_multipart_upload(Bucket=BUCKET, Key="out/big.raw", **owner))
        with_acl.put_object(Bucket=BUCKET, Key="out/acl.txt", Body=b"1", **owner)
        with_acl.create_multipart_upload(Bucket=BUCKET, Key="out/big.raw", **owner)

    assert [item["Key"] for item in admin("s3").list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        "out/acl.txt", "out/plain.txt"]
    assert [d.allowed for d in engine.checked("s3:PutObjectAcl")] == [False, False, True, True]


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


def test_an_sqs_batch_operation_is_authorized_as_its_single_action(world):
    """IAM has no sqs:ChangeMessageVisibilityBatch: AWS checks each batch operation as its single action."""
    url = admin("sqs").create_queue(QueueName="AppQueue")["QueueUrl"]
    other = admin("sqs").create_queue(QueueName="OtherQueue")["QueueUrl"]
    for queue in (url, other):
        admin("sqs").send_message(QueueUrl=queue, MessageBody="job")
    sqs = make_role("looker", allow(["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"],
                                    f"arn:aws:sqs:{REGION}:{ACCOUNT}:AppQueue")).client("sqs")
    hidden = admin("sqs").receive_message(QueueUrl=other, VisibilityTimeout=600)["Messages"][0]

    with iam_enforced():
        [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]
        released = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": "0", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}])
        denied(lambda: sqs.change_message_visibility_batch(QueueUrl=other, Entries=[
            {"Id": "0", "ReceiptHandle": hidden["ReceiptHandle"], "VisibilityTimeout": 0}]))

    assert [entry["Id"] for entry in released["Successful"]] == ["0"]
    counts = {queue: admin("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
              for queue in (url, other)}
    assert [(counts[queue]["ApproximateNumberOfMessages"], counts[queue]["ApproximateNumberOfMessagesNotVisible"])
            for queue in (url, other)] == [("1", "0"), ("0", "1")]


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

    with pytest.raises(UnevaluatedPolicy, match="aws:SourceIp"), iam_enforced():
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
    """The worker's role as operations/setup/iam.py writes it, exercised on the calls a worker makes."""
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
        # no alarm at all, not even its own machine's (the monitor makes those: chalicelib/monitor/idle_alarm.py)
        denied(lambda: cloudwatch.describe_alarms(AlarmNames=[f"{settings.APP_NAME}_i-0123abcd"]))
        denied(lambda: cloudwatch.put_metric_alarm(AlarmName=f"{settings.APP_NAME}_i-0123abcd", **ALARM))
        denied(lambda: cloudwatch.put_metric_alarm(AlarmName=f"{other}_i-0123abcd", **ALARM))
        s3.put_object(Bucket=settings.AWS_BUCKET, Key=lease, Body=b"P0")
        s3.delete_object(Bucket=settings.AWS_BUCKET, Key=lease)
        output = f"{jobs.output_root(settings)}plate1/result.txt"  # under the output root, APP_NAME/ here
        s3.put_object(Bucket=settings.AWS_BUCKET, Key=output, Body=b"1")
        denied(lambda: s3.delete_object(Bucket=settings.AWS_BUCKET, Key=output))
        denied(lambda: s3.put_object(Bucket=settings.AWS_BUCKET, Key="out/plate1/result.txt", Body=b"1"))
        # CHECK_IF_DONE lists under the output root only (s3:prefix condition)
        assert s3.list_objects_v2(Bucket=settings.AWS_BUCKET, Prefix=jobs.output_root(settings))["KeyCount"] == 1
        denied(lambda: s3.list_objects_v2(Bucket=settings.AWS_BUCKET, Prefix="monitors/"))
        from chalicelib import aws as clients  # our own code's clients carry the role too
        denied(lambda: clients.client("sqs").create_queue(QueueName="Elsewhere"))


def test_the_monitor_policy_cannot_touch_what_is_not_a_run_record(world):
    """The monitor's policy, as `monitor-config` writes it for a run in my-lab-bucket: run records yes, workers'
    outputs no."""
    admin("s3").create_bucket(Bucket="my-lab-bucket")
    admin("s3").put_object(Bucket="my-lab-bucket", Key="out/plate1/result.txt", Body=b"1")
    s3 = policy_session(json.dumps(MONITOR_POLICY), REGION).client("s3")

    with iam_enforced():
        s3.put_object(Bucket="my-lab-bucket", Key="monitors/App.json", Body=b"{}")
        assert s3.list_objects_v2(Bucket="my-lab-bucket", Prefix="monitors/")["KeyCount"] == 1
        denied(lambda: s3.get_object(Bucket="my-lab-bucket", Key="out/plate1/result.txt"))
        answer = s3.delete_objects(Bucket="my-lab-bucket", Delete={"Objects": [
            {"Key": "monitors/App.json"}, {"Key": "out/plate1/result.txt"}]})

    assert [item["Key"] for item in answer["Errors"]] == ["out/plate1/result.txt"]
    assert [item["Key"] for item in admin("s3").list_objects_v2(Bucket="my-lab-bucket")["Contents"]] == [
        "out/plate1/result.txt"]


# --- conditions the engine evaluates --------------------------------------------------------------

RUN_TAG = {"dsr:app": "App"}  # chalicelib.model.names.RUN_TAG, as setup and start-cluster tag a run's resources
TAGGED_ONLY = {"Null": {"aws:ResourceTag/dsr:app": "false"}}  # the monitor policy's condition


def conditioned(actions, condition, resources="*") -> dict:
    return {**allow(actions, resources), "Condition": condition}


def test_a_listing_is_allowed_only_under_the_prefixes_its_condition_names(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    s3 = make_role("lister", conditioned(["s3:ListBucket"], {"StringLike": {"s3:prefix": ["TestApp/*", "inputs/*"]}},
                                         f"arn:aws:s3:::{BUCKET}")).client("s3")
    exact = make_role("exact", conditioned(["s3:ListBucket"], {"StringEquals": {"s3:prefix": "TestApp/"}},
                                           f"arn:aws:s3:::{BUCKET}")).client("s3")
    fenced = make_role("fenced", allow(["s3:ListBucket"], f"arn:aws:s3:::{BUCKET}"),
                       {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
                        "Condition": {"StringNotLike": {"s3:prefix": "TestApp/*"}}}).client("s3")

    with iam_enforced() as engine:
        s3.list_objects_v2(Bucket=BUCKET, Prefix="TestApp/plate1/")
        s3.list_objects(Bucket=BUCKET, Prefix="inputs/")  # ListObjects (v1) too
        denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="monitors/"))
        denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="TestApp"))  # "TestApp/*" needs the slash
        denied(lambda: s3.list_objects_v2(Bucket=BUCKET))  # no prefix: matches no pattern
        exact.list_objects_v2(Bucket=BUCKET, Prefix="TestApp/")
        denied(lambda: exact.list_objects_v2(Bucket=BUCKET, Prefix="TestApp/x"))
        fenced.list_objects_v2(Bucket=BUCKET, Prefix="TestApp/x")
        denied(lambda: fenced.list_objects_v2(Bucket=BUCKET, Prefix="runs/"))  # the Deny holds
        denied(lambda: fenced.list_objects_v2(Bucket=BUCKET))  # StringNotLike holds for "" and for absent

    assert engine.unevaluated == []
    assert {d.resources for d in engine.checked("s3:ListBucket")} == {(f"arn:aws:s3:::{BUCKET}",)}


def test_a_prefix_condition_whose_answer_depends_on_an_absent_prefix_stays_unevaluated(world):
    """AWS does not document whether a listing without a prefix has s3:prefix "" or none: "*" matches
    "" and not an absent key, so the engine does not let that Allow count."""
    admin("s3").create_bucket(Bucket=BUCKET)
    s3 = make_role("anything", conditioned(["s3:ListBucket"], {"StringLike": {"s3:prefix": "*"}},
                                           f"arn:aws:s3:::{BUCKET}")).client("s3")

    with pytest.raises(UnevaluatedPolicy, match="differs for an empty and an absent value"), iam_enforced():
        s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")  # a prefix: known, allowed
        denied(lambda: s3.list_objects_v2(Bucket=BUCKET))


def test_a_queue_is_deleted_only_if_it_carries_the_tag_the_condition_asks_for(world):
    tagged = admin("sqs").create_queue(QueueName="AppQueue", tags=RUN_TAG)["QueueUrl"]
    untagged = admin("sqs").create_queue(QueueName="OtherQueue")["QueueUrl"]
    sqs = make_role("deleter", conditioned(["sqs:DeleteQueue"], TAGGED_ONLY, "arn:aws:sqs:*:*:*")).client("sqs")

    with iam_enforced() as engine:
        error = denied(lambda: sqs.delete_queue(QueueUrl=untagged))
        sqs.delete_queue(QueueUrl=tagged)

    assert error.response["Error"]["Code"] == "AccessDenied"
    assert [(d.resources, d.allowed) for d in engine.decisions] == [
        ((f"arn:aws:sqs:{REGION}:{ACCOUNT}:OtherQueue",), False), ((f"arn:aws:sqs:{REGION}:{ACCOUNT}:AppQueue",), True)]
    assert [url.rsplit("/", 1)[1] for url in admin("sqs").list_queues()["QueueUrls"]] == ["OtherQueue"]


@functools.cache
def an_ami() -> str:
    """One of moto's AMIs (the same in both worlds); listing them all takes a second, so once."""
    return admin("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def test_a_conditioned_deny_applies_exactly_where_its_condition_holds(world):
    """Null "true" (the tag is absent) in a Deny, StringNotEqualsIfExists, and a set operator the engine
    does not evaluate (a Deny that might apply: it applies, and the block says so)."""
    ours = admin("sqs").create_queue(QueueName="AppQueue", tags=RUN_TAG)["QueueUrl"]
    bare = admin("sqs").create_queue(QueueName="BareQueue")["QueueUrl"]
    victims = admin("sqs").create_queue(QueueName="VictimQueue", tags={"dsr:app": "Victim"})["QueueUrl"]
    sqs = make_role("fenced", allow(["sqs:DeleteQueue"], "*"),
                    {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*",
                     "Condition": {"Null": {"aws:ResourceTag/dsr:app": "true"}}},
                    {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*",
                     "Condition": {"StringNotEqualsIfExists": {"aws:ResourceTag/dsr:app": "App"}}}).client("sqs")
    sets = make_role("sets", allow(["sqs:DeleteQueue"], "*"),
                     {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*",
                      "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "dsr:app"}}}).client("sqs")

    with iam_enforced(allow_unevaluated=True) as engine:
        denied(lambda: sqs.delete_queue(QueueUrl=bare))  # no tag: the Null Deny holds
        denied(lambda: sqs.delete_queue(QueueUrl=victims))  # another run's tag: StringNotEqualsIfExists holds
        sqs.delete_queue(QueueUrl=ours)
        denied(lambda: sets.delete_queue(QueueUrl=victims))

    assert [d.allowed for d in engine.decisions] == [False, False, True, False]
    assert len(engine.unevaluated) == 1 and "set operators" in engine.unevaluated[0]
    assert sorted(url.rsplit("/", 1)[1] for url in admin("sqs").list_queues()["QueueUrls"]) == ["BareQueue",
                                                                                               "VictimQueue"]


def a_fleet(tags: dict | None = None, capacity: int = 1) -> str:
    ec2 = admin("ec2")
    config = {"IamFleetRole": f"arn:aws:iam::{ACCOUNT}:role/fleet", "TargetCapacity": capacity,
              "AllocationStrategy": "lowestPrice", "SpotPrice": "0.1",
              "LaunchSpecifications": [{"ImageId": an_ami(), "InstanceType": "m5.large"}]}
    if tags:
        config["TagSpecifications"] = [{"ResourceType": "spot-fleet-request",
                                        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}]
    return ec2.request_spot_fleet(SpotFleetRequestConfig=config)["SpotFleetRequestId"]


def instances(tags: dict | None = None, count: int = 1) -> list[str]:
    ec2 = admin("ec2")
    extra = {"TagSpecifications": [{"ResourceType": "instance", "Tags": [
        {"Key": key, "Value": value} for key, value in tags.items()]}]} if tags else {}
    return [instance["InstanceId"] for instance in ec2.run_instances(
        ImageId=an_ami(), MinCount=count, MaxCount=count,
        InstanceType="m5.large", **extra)["Instances"]]


def fleet_state(fleet: str) -> tuple:
    configs = admin("ec2").describe_spot_fleet_requests()["SpotFleetRequestConfigs"]
    return [(c["SpotFleetRequestState"], c["SpotFleetRequestConfig"]["TargetCapacity"])
            for c in configs if c["SpotFleetRequestId"] == fleet]


def instance_states(ids: list[str]) -> dict:
    return {i["InstanceId"]: i["State"]["Name"] for r in admin("ec2").describe_instances(InstanceIds=ids)[
        "Reservations"] for i in r["Instances"]}


def test_fleets_and_machines_are_scaled_and_stopped_only_if_they_carry_the_tag(world):
    ours, foreign = a_fleet(RUN_TAG, capacity=2), a_fleet(capacity=2)
    admin("ec2").create_tags(Resources=[foreign], Tags=[{"Key": "Name", "Value": "someone"}])  # not dsr:app
    tagged, untagged = instances(RUN_TAG, 2), instances(count=1)
    ec2 = make_role("stopper", conditioned(["ec2:ModifySpotFleetRequest", "ec2:CancelSpotFleetRequests",
                                            "ec2:TerminateInstances"], TAGGED_ONLY)).client("ec2")
    fleets = f"arn:aws:ec2:{REGION}:{ACCOUNT}:spot-fleet-request/"
    machines = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/"

    with iam_enforced() as engine:
        ec2.modify_spot_fleet_request(SpotFleetRequestId=ours, TargetCapacity=1,
                                      ExcessCapacityTerminationPolicy="noTermination")
        error = denied(lambda: ec2.modify_spot_fleet_request(SpotFleetRequestId=foreign, TargetCapacity=1))
        # One request, two fleets: refused as a whole because one of them is not the run's
        denied(lambda: ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[ours, foreign], TerminateInstances=False))
        denied(lambda: ec2.terminate_instances(InstanceIds=[tagged[0], untagged[0]]))
        ec2.terminate_instances(InstanceIds=[tagged[0]])
        ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[ours], TerminateInstances=False)

    assert error.response["Error"]["Code"] == "UnauthorizedOperation"  # as EC2 spells it
    assert [(d.action, d.resources, d.allowed) for d in engine.decisions] == [
        ("ec2:ModifySpotFleetRequest", (fleets + ours,), True),
        ("ec2:ModifySpotFleetRequest", (fleets + foreign,), False),
        ("ec2:CancelSpotFleetRequests", (fleets + ours, fleets + foreign), False),
        ("ec2:TerminateInstances", (machines + tagged[0], machines + untagged[0]), False),
        ("ec2:TerminateInstances", (machines + tagged[0],), True),
        ("ec2:CancelSpotFleetRequests", (fleets + ours,), True)]
    assert fleet_state(ours) == [("cancelled_running", 1)] and fleet_state(foreign) == [("active", 2)]
    assert instance_states(tagged + untagged) == {tagged[0]: "terminated", tagged[1]: "running",
                                                  untagged[0]: "running"}


def test_tag_values_are_compared_with_the_operator_and_the_service_s_own_key(world):
    ours, other_run = instances(RUN_TAG), instances({"dsr:app": "Victim"})
    ec2 = make_role("own-run", conditioned(["ec2:TerminateInstances"],
                                           {"StringEquals": {"ec2:ResourceTag/dsr:app": "App"}})).client("ec2")
    like = make_role("like", conditioned(["ec2:TerminateInstances"],
                                         {"StringLike": {"aws:ResourceTag/DSR:APP": "Vic*"}})).client("ec2")

    with iam_enforced():
        denied(lambda: ec2.terminate_instances(InstanceIds=other_run))
        ec2.terminate_instances(InstanceIds=ours)
        like.terminate_instances(InstanceIds=other_run)  # tag keys in the condition key are not case-sensitive

    assert instance_states(ours + other_run) == {ours[0]: "terminated", other_run[0]: "terminated"}


def ecs_world(cluster: str, tags: dict | None) -> None:
    ecs = admin("ecs")
    ecs_tags = [{"key": key, "value": value} for key, value in (tags or {}).items()]
    ecs.create_cluster(clusterName=cluster, **({"tags": ecs_tags} if tags else {}))
    ecs.register_task_definition(family=cluster + "Task", containerDefinitions=[
        {"name": "worker", "image": "example/worker:1", "memory": 128}])
    ecs.create_service(cluster=cluster, serviceName=cluster + "Service", taskDefinition=cluster + "Task",
                       desiredCount=1, **({"tags": ecs_tags} if tags else {}))


def test_services_and_clusters_are_changed_only_if_they_carry_the_tag(world):
    ecs_world("runs", RUN_TAG)
    ecs_world("others", None)
    ecs = make_role("ecs", conditioned(["ecs:UpdateService", "ecs:DeleteService", "ecs:DeleteCluster"],
                                       {"Null": {"ecs:ResourceTag/dsr:app": "false"}})).client("ecs")
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:"

    with iam_enforced() as engine:
        ecs.update_service(cluster="runs", service="runsService", desiredCount=0)
        error = denied(lambda: ecs.update_service(cluster="others", service="othersService", desiredCount=0))
        denied(lambda: ecs.delete_service(cluster=arn + "cluster/others", service="othersService", force=True))
        ecs.delete_service(cluster=arn + "cluster/runs", service="runsService", force=True)
        denied(lambda: ecs.delete_cluster(cluster="others"))
        ecs.delete_cluster(cluster="runs")

    assert error.response["Error"]["Code"] == "AccessDeniedException"
    assert [(d.action, d.resources, d.allowed) for d in engine.decisions] == [
        ("ecs:UpdateService", (arn + "service/runs/runsService",), True),
        ("ecs:UpdateService", (arn + "service/others/othersService",), False),
        ("ecs:DeleteService", (arn + "service/others/othersService",), False),
        ("ecs:DeleteService", (arn + "service/runs/runsService",), True),
        ("ecs:DeleteCluster", (arn + "cluster/others",), False),
        ("ecs:DeleteCluster", (arn + "cluster/runs",), True)]
    clusters = admin("ecs").describe_clusters(clusters=["runs", "others"])["clusters"]
    assert {c["clusterName"]: c["status"] for c in clusters} == {"runs": "INACTIVE", "others": "ACTIVE"}
    [service] = admin("ecs").describe_services(cluster="others", services=["othersService"])["services"]
    assert (service["status"], service["desiredCount"]) == ("ACTIVE", 1)


def test_a_log_group_is_exported_only_if_it_carries_the_tag(world):
    admin("s3").create_bucket(Bucket=BUCKET)
    admin("logs").create_log_group(logGroupName="App", tags=RUN_TAG)
    admin("logs").create_log_group(logGroupName="Other")
    logs = make_role("exporter", conditioned(["logs:CreateExportTask"], TAGGED_ONLY, LOGS + "*"),
                     allow(["s3:PutObject"], f"arn:aws:s3:::{BUCKET}/exportedlogs/*")).client("logs")
    export = {"fromTime": 0, "to": int(time.time() * 1000), "destination": BUCKET}

    with iam_enforced() as engine:
        denied(lambda: logs.create_export_task(logGroupName="Other", destinationPrefix="exportedlogs/Other", **export))
        logs.create_export_task(logGroupName="App", destinationPrefix="exportedlogs/App/", **export)

    assert [(d.action, d.resources, d.allowed) for d in engine.decisions] == [
        ("logs:CreateExportTask", (LOGS + "Other:log-stream:",), False),
        ("logs:CreateExportTask", (LOGS + "App:log-stream:",), True),
        ("s3:PutObject", (f"arn:aws:s3:::{BUCKET}/exportedlogs/App/aws-logs-write-test",), True)]
    assert [task["logGroupName"] for task in admin("logs").describe_export_tasks()["exportTasks"]] == ["App"]


def test_an_export_is_refused_to_a_caller_who_cannot_write_where_it_goes(world):
    """AWS: the caller of CreateExportTask must be allowed to write to the destination (it writes
    PREFIX/aws-logs-write-test as the caller first); moto wrote anyway."""
    admin("s3").create_bucket(Bucket=BUCKET)
    admin("logs").create_log_group(logGroupName="App", tags=RUN_TAG)
    logs = make_role("exporter", allow(["logs:CreateExportTask"], LOGS + "*"),
                     allow(["s3:PutObject"], f"arn:aws:s3:::{BUCKET}/monitors/*")).client("logs")

    with iam_enforced() as engine:
        error = denied(lambda: logs.create_export_task(logGroupName="App", fromTime=0, to=1, destination=BUCKET))

    assert error.response["Error"]["Code"] == "AccessDeniedException" and "s3:PutObject" in str(error)
    assert [(d.action, d.resources, d.allowed) for d in engine.decisions] == [
        ("logs:CreateExportTask", (LOGS + "App:log-stream:",), True),
        ("s3:PutObject", (f"arn:aws:s3:::{BUCKET}/exportedlogs/aws-logs-write-test",), False)]  # default prefix
    assert admin("logs").describe_export_tasks()["exportTasks"] == []
    assert admin("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_tag_condition_the_engine_cannot_read_stays_unevaluated(world):
    """Tags of a resource that does not exist, or on an action whose resource tags are not read: "maybe"."""
    url = admin("sqs").create_queue(QueueName="AppQueue", tags=RUN_TAG)["QueueUrl"]
    sqs = make_role("sender", conditioned(["sqs:SendMessage", "sqs:DeleteQueue"], TAGGED_ONLY)).client("sqs")

    with pytest.raises(UnevaluatedPolicy) as caught, iam_enforced():
        denied(lambda: sqs.send_message(QueueUrl=url, MessageBody="job"))
        denied(lambda: sqs.delete_queue(QueueUrl=url.replace("AppQueue", "GoneQueue")))

    assert "resource tags are not read for sqs:SendMessage" in str(caught.value)
    assert "no tags known for arn:aws:sqs:us-east-1:123456789012:GoneQueue" in str(caught.value)
