"""A job is untrusted code: with exactly the task role's rights, it runs, and every attack on the trust boundary fails.

`python -m worker` runs as a real process with the credentials of an assumed task role (what ECS gives a
container), against the moto server with IAM enforced by tests/iam_engine.py. One of its jobs is hostile:
with the same credentials (it inherits the worker's environment, as on ECS) it tries what a job could try
against the monitor and against another run in the same bucket, and writes what AWS answered into its own
outputs. The world is read back with the test's own (admin) keys.
"""

from __future__ import annotations

import json
import sys

import pytest

from chalicelib import aws as clients
from chalicelib.model import names
from operations.setup import iam, resources
from operations.submit import queue_url
from tests.conftest import make_settings
from tests.iam_engine import iam_enforced, role_session
from tests.worker_world import WorkerProcess, s3_keys, send_jobs, worker_env

# The end of each hostile job below: try every attack in `attacks`, write what AWS answered to answers.json.
ANSWER_EACH_ATTACK = r'''
answers = {}
for name, attack in attacks.items():
    try:
        attack()
        answers[name] = "allowed"
    except botocore.exceptions.ClientError as error:
        answers[name] = error.response["Error"]["Code"]
(out / "answers.json").write_text(json.dumps(answers, indent=1))
'''

# The hostile job: argv = output folder, bucket, the other run's queue url. Each attack's outcome by name.
HOSTILE = r'''
import json, pathlib, sys
import boto3, botocore.exceptions
out, bucket, other_queue = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
s3, sqs, logs, cloudwatch = (boto3.client(name) for name in ("s3", "sqs", "logs", "cloudwatch"))
def put(key):
    return lambda: s3.put_object(Bucket=bucket, Key=key, Body=b'{"MONITOR_APP_NAME": "Evil"}')
def alarm(name, instance="i-0fedcba9876543210", action="arn:aws:automate:us-east-1:ec2:terminate"):
    # always breached: CPU under 1000 % for one minute, then the action (run by CloudWatch's own role on AWS)
    return lambda: cloudwatch.put_metric_alarm(
        AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=1000.0, ComparisonOperator="LessThanThreshold", AlarmActions=[action],
        Dimensions=[{"Name": "InstanceId", "Value": instance}])
attacks = {
    "write a run record under monitors/": put("monitors/EvilSpotFleetRequestId.json"),
    "rewrite its own run record": put("monitors/TestAppSpotFleetRequestId.json"),
    "write another run's monitor state": put("monitors/Other_monitorstate.json"),
    "forge a finished run's summary": put("monitors/finished/Other_summary.json"),
    "forge another run's busy lease": put("runs/Other/leases/i-0123456789abcdef0/w1"),
    "forge another run's failure record": put("runs/Other/failures/P1.json"),
    "overwrite another run's output": put("Other/P1/result.txt"),
    "read another run's output": lambda: s3.get_object(Bucket=bucket, Key="Other/P1/result.txt"),
    "list the whole bucket": lambda: s3.list_objects_v2(Bucket=bucket),
    "list another run's outputs": lambda: s3.list_objects_v2(Bucket=bucket, Prefix="Other/"),
    "write exported logs": put("exportedlogs/Other/000000.gz"),
    "write an ECS agent config": put("ecsconfigs/Other_ecs.config"),
    "delete an output of its own run": lambda: s3.delete_object(Bucket=bucket, Key="TestApp/good/result.txt"),
    "send a job to another run's queue": lambda: sqs.send_message(QueueUrl=other_queue, MessageBody="{}"),
    "take a job from another run's queue": lambda: sqs.receive_message(QueueUrl=other_queue),
    "write into another run's job log": lambda: logs.create_log_stream(logGroupName="Other", logStreamName="x"),
    "make another run's machine alarm": lambda: cloudwatch.put_metric_alarm(
        AlarmName="Other_i-0123456789abcdef0", MetricName="CPUUtilization", Namespace="AWS/EC2",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="LessThanThreshold"),
    "terminate any instance through an alarm named as its own machine's": alarm("TestApp_i-0123456789abcdef0"),
    "rewrite run TestApp_i-x's machine alarm (names collide by prefix)": alarm("TestApp_i-x_i-0123456789abcdef0"),
    "make an alarm that invokes the monitor at will": alarm("TestApp_i-0aaaaaaaaaaaaaaaa", "i-0aaaaaaaaaaaaaaaa",
                                                              "arn:aws:sns:us-east-1:123456789012:Monitor"),
    "make an alarm of any other name": alarm("TestApp-left-behind"),
    "read its machine's alarm": lambda: cloudwatch.describe_alarms(AlarmNames=["TestApp_i-0123456789abcdef0"]),
    "list every alarm": lambda: cloudwatch.describe_alarms(),
    "delete another run's machine alarm": lambda: cloudwatch.delete_alarms(AlarmNames=["Other_i-0123456789abcdef0"]),
    "tag another run's alarm as its own": lambda: cloudwatch.tag_resource(
        ResourceARN="arn:aws:cloudwatch:us-east-1:123456789012:alarm:Other_i-0123456789abcdef0",
        Tags=[{"Key": "dsr:app", "Value": "TestApp"}]),
    "write under its own output root (allowed)": put("TestApp/written-by-a-job.txt"),
}
''' + ANSWER_EACH_ATTACK
DENIED = {"AccessDenied", "AccessDeniedException"}


@pytest.fixture
def two_runs(moto_server, tmp_path):
    """Run TestApp (the hostile job's) and run Other in one bucket, each with its own task role."""
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    mine = make_settings(COMMAND=[sys.executable, str(script), "{output_dir}", "test-bucket", "{other_queue}"],
                         OUTPUT_PREFIX="{APP_NAME}/{plate}", JOB_RETRIES=1, CHECK_IF_DONE_BOOL=True)
    other = make_settings(APP_NAME="Other", OUTPUT_PREFIX="{APP_NAME}/{plate}")
    clients.client("s3").create_bucket(Bucket="test-bucket")
    for settings in (mine, other):
        iam.setup_account(settings)
        resources.setup(settings)
    clients.client("s3").put_object(Bucket="test-bucket", Key="Other/P1/result.txt", Body=b"other's result")
    # machine alarms of run Other and of a run TestApp_i-x (configured before such APP_NAMEs were refused)
    for app in ("Other", "TestApp_i-x"):
        clients.client("cloudwatch").put_metric_alarm(
            AlarmName=f"{app}_i-0123456789abcdef0", MetricName="CPUUtilization", Namespace="AWS/EC2",
            Statistic="Maximum", Period=60, EvaluationPeriods=15, Threshold=1.0, ComparisonOperator="LessThanThreshold",
            Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
            Tags=[{"Key": "dsr:app", "Value": app}], AlarmActions=["arn:aws:automate:us-east-1:ec2:terminate"])
    return mine, other


def task_role_env(endpoint: str, settings) -> dict[str, str]:
    """A container's environment: the task role's temporary credentials, nothing else."""
    credentials = role_session(names.task_role(settings)).get_credentials().get_frozen_credentials()
    return {**worker_env(endpoint, settings), "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key, "AWS_SESSION_TOKEN": credentials.token}


def world_of_other(s3, sqs, logs, cloudwatch) -> dict:
    return {"objects": {key: s3.get_object(Bucket="test-bucket", Key=key)["Body"].read()
                        for key in s3_keys(s3, "test-bucket")
                        if not key.startswith(("TestApp/", "runs/TestApp/failure-journal/"))},
            "queue": sqs.get_queue_attributes(QueueUrl=queue_url(sqs, make_settings(APP_NAME="Other")),
                                              AttributeNames=["ApproximateNumberOfMessages"])["Attributes"],
            "streams": logs.describe_log_streams(logGroupName="Other")["logStreams"],
            "alarms": cloudwatch.describe_alarms()["MetricAlarms"],
            "alarm_tags": {alarm["AlarmName"]: cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
                           for alarm in cloudwatch.describe_alarms()["MetricAlarms"]}}


def test_a_hostile_job_with_the_task_roles_rights_is_denied_everything_beyond_its_run(two_runs, moto_server, tmp_path):
    mine, other = two_runs
    sqs, s3 = clients.client("sqs"), clients.client("s3")
    logs, cloudwatch = clients.client("logs"), clients.client("cloudwatch")
    other_queue = queue_url(sqs, other)
    send_jobs(sqs, queue_url(sqs, mine), mine, [{"plate": "good"}, {"plate": "hostile"}], other_queue=other_queue)
    before = world_of_other(s3, sqs, logs, cloudwatch)
    # "good" failed in an earlier submission: the worker lists its run's records to find this one and delete it
    s3.put_object(Bucket="test-bucket", Key="runs/TestApp/failures/good.json", Body=b"{}")

    with iam_enforced() as engine:
        worker = WorkerProcess(tmp_path, task_role_env(moto_server, mine), "--single", "--exit-when-empty")
        assert worker.wait(120) == 0, worker.output

    answers = json.loads(s3.get_object(Bucket="test-bucket", Key="TestApp/hostile/answers.json")["Body"].read())
    allowed = {name for name, answer in answers.items() if answer == "allowed"}
    assert allowed == {"write under its own output root (allowed)"}, answers
    assert {answer for name, answer in answers.items() if name not in allowed} <= DENIED, answers
    assert world_of_other(s3, sqs, logs, cloudwatch) == before
    assert s3_keys(s3, "test-bucket", "monitors/") == []
    # the worker's own flow needed nothing it was refused: both jobs ran, were uploaded and deleted
    assert {"TestApp/good/answers.json", "TestApp/good/_SUCCESS"} <= set(s3_keys(s3, "test-bucket", "TestApp/"))
    assert sqs.get_queue_attributes(QueueUrl=queue_url(sqs, mine), AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
    # no failure record, no lease left; the record's removal noted in the run's failure journal
    [cleared] = s3_keys(s3, "test-bucket", "runs/TestApp/")
    assert cleared.startswith("runs/TestApp/failure-journal/") and cleared.endswith("-c-good")
    assert "could not list the run's failure records" not in worker.output  # not deleted by the fallback
    assert engine.checked("s3:PutObject")


def test_without_a_fixed_output_folder_jobs_still_cannot_write_what_the_monitor_trusts(moto_server, tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    settings = make_settings(COMMAND=[sys.executable, str(script), "{output_dir}", "test-bucket", "none"],
                             OUTPUT_PREFIX="{plate}/out", JOB_RETRIES=1)
    clients.client("s3").create_bucket(Bucket="test-bucket")
    iam.setup_account(settings)
    resources.setup(settings)
    sqs = clients.client("sqs")
    send_jobs(sqs, queue_url(sqs, settings), settings, [{"plate": "hostile"}])
    with iam_enforced():
        worker = WorkerProcess(tmp_path, task_role_env(moto_server, settings), "--single", "--exit-when-empty")
        assert worker.wait(120) == 0, worker.output
    s3 = clients.client("s3")
    answers = json.loads(s3.get_object(Bucket="test-bucket", Key="hostile/out/answers.json")["Body"].read())
    for reserved in ("write a run record under monitors/", "rewrite its own run record",
                     "write another run's monitor state", "forge a finished run's summary", "write exported logs",
                     "write an ECS agent config", "delete an output of its own run"):
        assert answers[reserved] in DENIED, (reserved, answers)
    # what README and setup-account say this run can then reach: other runs' outputs and run files
    assert answers["overwrite another run's output"] == "allowed"
    assert s3_keys(s3, "test-bucket", "monitors/") == []


# DCP's layout: images read from a data set's bucket, results handed to the lab's bucket with an ACL. The job
# copies its inputs to its outputs; the "hostile" job instead tries each bucket's edges with the same rights.
BUCKET_JOB = r'''
import json, pathlib, shutil, sys
import boto3, botocore.exceptions
out, inputs, plate = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
if plate != "hostile":
    shutil.copytree(inputs, out, dirs_exist_ok=True)
    sys.exit(0)
s3 = boto3.client("s3")
def put(bucket, key):
    return lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x")
attacks = {
    "overwrite the source's images": put("public-images", "images/P1/in.csv"),
    "read the source outside INPUT_PREFIX": lambda: s3.get_object(Bucket="public-images", Key="private/notes.txt"),
    "list the whole source": lambda: s3.list_objects_v2(Bucket="public-images"),
    "write into the destination outside its output root": put("lab-results", "Other/P1/result.txt"),
    "read another run's results in the destination": lambda: s3.get_object(Bucket="lab-results",
                                                                             Key="Other/P1/result.txt"),
    "write outputs into AWS_BUCKET": put("test-bucket", "TestApp/P1/result.txt"),
    "write a run record": put("test-bucket", "monitors/EvilSpotFleetRequestId.json"),
    "read its own inputs (allowed)": lambda: s3.get_object(Bucket="public-images", Key="images/hostile/in.csv"),
    "write under its own output root (allowed)": put("lab-results", "TestApp/written-by-a-job.txt"),
}
''' + ANSWER_EACH_ATTACK


def test_with_dcps_buckets_jobs_read_the_source_write_the_destination_and_reach_nothing_else(moto_server, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(BUCKET_JOB)
    settings = make_settings(COMMAND=[sys.executable, str(script), "{output_dir}", "{input_dir}", "{plate}"],
                             SOURCE_BUCKET="public-images", DESTINATION_BUCKET="lab-results",
                             INPUT_PREFIX="images/{plate}", OUTPUT_PREFIX="{APP_NAME}/{plate}", JOB_RETRIES=1,
                             CHECK_IF_DONE_BOOL=True, UPLOAD_FLAGS="--acl bucket-owner-full-control "
                                                                   "--storage-class STANDARD_IA --sse AES256")
    s3, sqs = clients.client("s3"), clients.client("sqs")
    for bucket in ("test-bucket", "public-images", "lab-results"):
        s3.create_bucket(Bucket=bucket)
    for bucket, key in (("public-images", "images/P1/in.csv"), ("public-images", "images/hostile/in.csv"),
                        ("public-images", "private/notes.txt"), ("lab-results", "Other/P1/result.txt"),
                        ("lab-results", "TestApp/done/result.txt")):
        s3.put_object(Bucket=bucket, Key=key, Body=f"{bucket}/{key}".encode())
    iam.setup_account(settings)
    resources.setup(settings)
    send_jobs(sqs, queue_url(sqs, settings), settings, [{"plate": "P1"}, {"plate": "done"}, {"plate": "hostile"}])

    with iam_enforced() as engine:
        worker = WorkerProcess(tmp_path, task_role_env(moto_server, settings), "--single", "--exit-when-empty")
        assert worker.wait(120) == 0, worker.output

    answers = json.loads(s3.get_object(Bucket="lab-results", Key="TestApp/hostile/answers.json")["Body"].read())
    assert {name for name, answer in answers.items() if answer == "allowed"} == {
        "read its own inputs (allowed)", "write under its own output root (allowed)"}, answers
    assert {answer for answer in answers.values() if answer != "allowed"} <= DENIED, answers
    # P1's input went from the source to the destination, stored as UPLOAD_FLAGS ask; "done" was skipped
    assert s3_keys(s3, "lab-results", "TestApp/P1/") == ["TestApp/P1/_SUCCESS", "TestApp/P1/in.csv"]
    result = s3.get_object(Bucket="lab-results", Key="TestApp/P1/in.csv")
    assert result["Body"].read() == b"public-images/images/P1/in.csv"
    assert (result["StorageClass"], result["ServerSideEncryption"]) == ("STANDARD_IA", "AES256")
    assert s3_keys(s3, "lab-results", "TestApp/done/") == ["TestApp/done/result.txt"]
    assert s3_keys(s3, "public-images") == ["images/P1/in.csv", "images/hostile/in.csv", "private/notes.txt"]
    assert s3_keys(s3, "test-bucket", "TestApp/") == [] and s3_keys(s3, "test-bucket", "monitors/") == []
    assert s3.get_object(Bucket="lab-results", Key="Other/P1/result.txt")["Body"].read() == (
        b"lab-results/Other/P1/result.txt")
    assert all(decision.allowed for decision in engine.checked("s3:PutObjectAcl")
               if "/TestApp/P1/" in decision.resources[0])  # each output's ACL was checked, and granted
    assert [d for d in engine.checked("s3:PutObjectAcl") if "/TestApp/P1/" in d.resources[0]]
