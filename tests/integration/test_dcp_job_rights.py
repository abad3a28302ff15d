"""DS image mode with Distributed-CellProfiler's buckets and job file: the task role reaches what the jobs name, and
start-cluster refuses, before any machine starts, a run whose jobs the role could not serve.

Fixtures are DCP's own files at commit 17388b3 (DistributedScience/Distributed-CellProfiler), unchanged:
tests/data/dcp/exampleJob.json is example_project/files/exampleJob.json and tests/data/dcp/load_data.csv is
example_project/demo_project_folder/workspace/load_data.csv. The buckets are DCP's config.py's three (config.py
lines 14-17: SOURCE_BUCKET, WORKSPACE_BUCKET, DESTINATION_BUCKET, with UPLOAD_FLAGS), separate here so that a grant
on the wrong bucket shows; WORKSPACE_BUCKET and DOWNLOAD_FILES reach the image as ENVIRONMENT, as chalicelib/
dsconfig.py passes DCP's image keys. The objects are where DCP's example puts them: the pipeline and load_data.csv
under demo_project_folder/workspace/, the images under demo_project_folder/images/ (what load_data.csv names).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model import names
from cli import cli
from operations.setup import iam, job_locations
from operations.submit import queue_url
from tests.iam_engine import iam_enforced, role_session
from tests.integration.world import Account
from tests.worker_world import s3_keys

DATA = Path(__file__).resolve().parents[1] / "data" / "dcp"
DCP_WORKER = Path(__file__).resolve().parents[1] / "dcp_standin_worker.py"
IMAGES = [f"01_POS{position}_{channel}.TIF" for position in ("002", "076", "218") for channel in "DFR"]
DCP_CONFIG = {"COMMAND": None, "SOURCE_BUCKET": "dcp-images", "DESTINATION_BUCKET": "dcp-results",
              "UPLOAD_FLAGS": "--acl bucket-owner-full-control", "CHECK_IF_DONE_BOOL": True,
              "ENVIRONMENT": {"WORKSPACE_BUCKET": "dcp-workspace", "DOWNLOAD_FILES": "False"}}


@pytest.fixture
def dcp_account(tmp_path, monkeypatch):
    """setup-account and setup done, DCP's example data in its three buckets, DCP's example job file."""
    monkeypatch.chdir(tmp_path)  # start-cluster writes files/ into the working directory, as DS does
    account = Account(tmp_path, **DCP_CONFIG)
    s3 = clients.client("s3")
    for bucket in ("dcp-images", "dcp-workspace", "dcp-results"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="dcp-workspace", Key="demo_project_folder/workspace/ExampleFly.cppipe", Body=b"pipeline")
    s3.put_object(Bucket="dcp-workspace", Key="demo_project_folder/workspace/load_data.csv",
                  Body=(DATA / "load_data.csv").read_bytes())
    for image in IMAGES:
        s3.put_object(Bucket="dcp-images", Key=f"demo_project_folder/images/{image}", Body=image.encode())
    s3.put_object(Bucket="dcp-images", Key="private/notes.txt", Body=b"not the run's")
    (tmp_path / "exampleJob.json").write_bytes((DATA / "exampleJob.json").read_bytes())
    return account


def submit(account, job_file: str = "exampleJob.json", *extra: str):
    result = CliRunner().invoke(cli, ["submit", job_file, "--config", str(account.config_path), *extra])
    assert result.exit_code == 0, result.output
    return result


def start_cluster(account):
    return CliRunner().invoke(cli, ["start-cluster", str(account.fleet_path), "--config", str(account.config_path),
                                    "--wait", "0"])


def fleets() -> list:
    return clients.client("ec2").describe_fleets()["Fleets"]


def test_a_dcp_worker_with_exactly_the_task_role_reads_its_inputs_pipeline_and_workspace_and_writes_its_outputs(
        moto_server, dcp_account):
    settings = dcp_account.settings
    submit(dcp_account)
    s3, sqs = clients.client("s3"), clients.client("sqs")
    # one job was done before: CHECK_IF_DONE finds its one output and skips it
    s3.put_object(Bucket="dcp-results", Key="demo_project_folder/output/218/01_POS218_D.TIF.measured", Body=b"old")
    credentials = role_session(names.task_role(settings)).get_credentials().get_frozen_credentials()
    env = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": moto_server, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **settings.ds_environment(queue_url(sqs, settings)),
           "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
           "AWS_SESSION_TOKEN": credentials.token}

    with iam_enforced() as engine:
        worker = subprocess.run([sys.executable, str(DCP_WORKER)], env=env, capture_output=True, text=True,
                                timeout=120)
    assert worker.returncode == 0, worker.stdout + worker.stderr

    assert s3_keys(s3, "dcp-results") == sorted(
        [f"demo_project_folder/output/{position}/01_POS{position:0>3}_{channel}.TIF.measured"
         for position in ("2", "76") for channel in "DFR"]
        + ["demo_project_folder/output/218/01_POS218_D.TIF.measured"])  # 218: done before, skipped
    assert s3.get_object(Bucket="dcp-results", Key="demo_project_folder/output/76/01_POS076_R.TIF.measured")[
        "Body"].read() == b"01_POS076_R.TIF"
    assert sqs.get_queue_attributes(QueueUrl=queue_url(sqs, settings), AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
    assert engine.checked("s3:PutObjectAcl") and all(d.allowed for d in engine.checked("s3:PutObjectAcl"))
    # the run's other locations stayed out of reach of the same role
    role = role_session(names.task_role(settings)).client("s3", endpoint_url=moto_server)
    with iam_enforced():
        for attempt in (lambda: role.get_object(Bucket="dcp-images", Key="private/notes.txt"),
                        lambda: role.put_object(Bucket="dcp-images", Key="demo_project_folder/images/x", Body=b"x"),
                        lambda: role.put_object(Bucket="dcp-results", Key="elsewhere/x", Body=b"x"),
                        lambda: role.get_object(Bucket="dcp-workspace", Key="demo_project_folder/other.cppipe"),
                        lambda: role.put_object(Bucket="test-bucket", Key=job_locations.record_key("TestApp"),
                                                Body=b"{}")):
            with pytest.raises(role.exceptions.ClientError) as denied:
                attempt()
            assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_the_grants_are_folders_and_keys_never_a_bucket_but_the_mounts_listing(aws, dcp_account):
    submit(dcp_account)
    policy = iam.task_policy(dcp_account.settings, "123456789012",
                             job_locations.load_record(clients.client("s3"), dcp_account.settings))
    # what the job file named; besides, as for every run, DESTINATION_BUCKET/APP_NAME/ (DS's generic worker's)
    granted = {(tuple(s["Action"]), json.dumps(s["Resource"]), json.dumps(s.get("Condition")))
               for s in policy["Statement"] if "dcp-" in json.dumps(s["Resource"]) and "TestApp" not in json.dumps(s)}
    assert granted == {
        (("s3:ListBucket",), '"arn:aws:s3:::dcp-images"', "null"),
        (("s3:ListBucket",), '"arn:aws:s3:::dcp-results"',
         '{"StringLike": {"s3:prefix": ["demo_project_folder/output/*"]}}'),
        (("s3:GetObject",), json.dumps(sorted([
            "arn:aws:s3:::dcp-images/demo_project_folder/images/*",
            "arn:aws:s3:::dcp-images/demo_project_folder/workspace/*",
            "arn:aws:s3:::dcp-workspace/demo_project_folder/workspace/ExampleFly.cppipe",
            "arn:aws:s3:::dcp-workspace/demo_project_folder/workspace/load_data.csv"])), "null"),
        (("s3:PutObject", "s3:PutObjectAcl"), '["arn:aws:s3:::dcp-results/demo_project_folder/output/*"]', "null"),
    }
    assert iam.role_specs(dcp_account.settings, "123456789012")[2].policy != policy  # setup-account reads the record
    iam.setup_account(dcp_account.settings)
    stored = clients.client("iam").get_role_policy(RoleName=names.task_role(dcp_account.settings),
                                                   PolicyName=iam.POLICY_NAME)["PolicyDocument"]
    assert stored == policy


def test_start_cluster_checks_the_dcp_example_and_starts(aws, dcp_account):
    submit(dcp_account)
    result = start_cluster(dcp_account)
    assert result.exit_code == 0, result.output
    assert len(fleets()) == 1
    # DCP's example DOWNLOAD_FILES 'False' would have DCP's worker mount the bucket with credentials it cannot get
    assert "warning: DOWNLOAD_FILES is 'False': DCP's worker would mount s3://dcp-images with s3fs using the " \
           "machine's own credentials" in result.stderr


@pytest.mark.parametrize("field,value,refusal", [
    ("output", "runs/Other/", "job 'Metadata_Position_76-runs_Other': s3://dcp-results/runs/Other/ (output) is "
                              "inside what only the monitor may touch (monitors/, exportedlogs/, ecsconfigs/, runs/), "
                              "so no job may list it"),
    ("data_file", "monitors/TestAppSpotFleetRequestId.json",
     "job 'Metadata_Position_76-monitors_TestAppSpotFleetRequestId.json': s3://dcp-workspace/monitors/"
     "TestAppSpotFleetRequestId.json (data_file) is inside what only the monitor may touch (monitors/, exportedlogs/, "
     "ecsconfigs/, runs/), so no job may read it"),
])
def test_a_job_naming_what_the_monitor_trusts_is_refused_before_any_machine_starts(aws, dcp_account, field, value,
                                                                                      refusal):
    document = json.loads((DATA / "exampleJob.json").read_text())
    document["groups"][1][field] = value
    (dcp_account.folder / "jobs.json").write_text(json.dumps(document))
    submit(dcp_account, "jobs.json")
    result = start_cluster(dcp_account)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {refusal}; fix the job file and submit again\n"
    assert fleets() == []


def test_a_role_that_does_not_grant_a_submitted_jobs_location_is_refused_before_any_machine_starts(aws, dcp_account):
    settings = dcp_account.settings
    submit(dcp_account)
    # the role as it was before the jobs were submitted (setup-account of a version that did not read the record)
    clients.client("iam").put_role_policy(RoleName=names.task_role(settings), PolicyName=iam.POLICY_NAME,
                                          PolicyDocument=json.dumps(iam.task_policy(settings, "123456789012")))
    result = start_cluster(dcp_account)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: job 'Metadata_Position_2': task role 'TestApp-task-role' may not read s3://dcp-images/"
        "demo_project_folder/images/ (an image folder data_file demo_project_folder/workspace/load_data.csv names; "
        f"s3:GetObject); run 'python cli.py setup-account --config {dcp_account.config_path}' to grant what the "
        "submitted jobs name\n")
    assert fleets() == []


def test_jobs_naming_more_locations_than_a_role_policy_holds_are_refused_at_submit_and_nothing_is_sent(aws,
                                                                                                         dcp_account):
    document = json.loads((DATA / "exampleJob.json").read_text())
    document["groups"] = [{"Metadata": f"Metadata_Position={n}", "data_file": f"plates/P{n:04d}/load_data.csv"}
                          for n in range(400)]
    (dcp_account.folder / "jobs.json").write_text(json.dumps(document))
    result = CliRunner().invoke(cli, ["submit", "jobs.json", "--config", str(dcp_account.config_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: the 405 S3 locations these jobs name make the task role's policy ")
    assert result.stderr.endswith(" characters, over IAM's 10240 for a role's inline policies; put the jobs' data "
                                  "files, pipelines and images under fewer folders; nothing was sent\n")
    sqs = clients.client("sqs")
    assert sqs.get_queue_attributes(QueueUrl=queue_url(sqs, dcp_account.settings), AttributeNames=["All"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert s3_keys(clients.client("s3"), "test-bucket", "monitors/") == []


def test_appended_jobs_add_their_locations_and_a_refused_submit_changes_no_grant(aws, dcp_account):
    settings = dcp_account.settings
    submit(dcp_account)
    document = json.loads((DATA / "exampleJob.json").read_text())
    document["output"] = "second_run/output"
    (dcp_account.folder / "more.json").write_text(json.dumps(document))

    def role_policy():
        return clients.client("iam").get_role_policy(RoleName=names.task_role(settings),
                                                     PolicyName=iam.POLICY_NAME)["PolicyDocument"]

    before = role_policy()
    refused = CliRunner().invoke(cli, ["submit", "more.json", "--config", str(dcp_account.config_path)])
    assert refused.exit_code == 2 and "add --append" in refused.stderr
    assert role_policy() == before
    submit(dcp_account, "more.json", "--append")
    writes = [s["Resource"] for s in role_policy()["Statement"] if "s3:PutObjectAcl" in s["Action"]]
    assert writes[-1] == ["arn:aws:s3:::dcp-results/demo_project_folder/output/*",
                          "arn:aws:s3:::dcp-results/second_run/output/*"]
    assert start_cluster(dcp_account).exit_code == 0
