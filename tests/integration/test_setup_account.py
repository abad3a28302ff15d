"""`setup-account` on moto: least-privilege roles, the instance profile DS forgets, --destroy."""

import json

from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from operations.setup import iam
from tests.conftest import make_settings
from tests.integration.world import snapshot, write_config


def _policy(iam_client, role):
    return iam_client.get_role_policy(RoleName=role, PolicyName=iam.POLICY_NAME)["PolicyDocument"]


def test_setup_account_creates_the_instance_profile_with_its_role(aws, settings):
    report = iam.setup_account(settings)
    iam_client = clients.client("iam", settings)
    profile = iam_client.get_instance_profile(InstanceProfileName="dsr-ecs-instance-role")["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == ["dsr-ecs-instance-role"]
    assert report.instance_profile_arn == profile["Arn"]


def test_each_role_trusts_only_its_service(aws, settings):
    iam.setup_account(settings)
    iam_client = clients.client("iam", settings)
    trusted = {name: iam_client.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"]["Service"] for name in ("dsr-ecs-instance-role", "dsr-spot-fleet-role", "TestApp-task-role")}
    assert trusted == {"dsr-ecs-instance-role": "ec2.amazonaws.com", "dsr-spot-fleet-role": "spotfleet.amazonaws.com",
                       "TestApp-task-role": "ecs-tasks.amazonaws.com"}


def granted_resources(statements) -> dict[str, list[str]]:
    """Each allowed action -> every resource granted it, over all statements, sorted."""
    resources: dict[str, list[str]] = {}
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            resources[action] = sorted(resources.get(action, []) + listed)
    return resources


def test_the_task_role_reaches_only_the_runs_queue_bucket_and_log_group(aws, settings):
    iam.setup_account(settings)
    statements = _policy(clients.client("iam", settings), "TestApp-task-role")["Statement"]
    resources = granted_resources(statements)
    assert resources["sqs:ReceiveMessage"] == ["arn:aws:sqs:us-east-1:123456789012:TestAppQueue"]
    # the output root of OUTPUT_PREFIX "{APP_NAME}/{job_id}" and nothing else of the bucket
    assert resources["s3:GetObject"] == ["arn:aws:s3:::test-bucket/TestApp/*"]
    assert resources["s3:PutObject"] == ["arn:aws:s3:::test-bucket/TestApp/*",
                                         "arn:aws:s3:::test-bucket/runs/TestApp/*"]
    assert resources["s3:ListBucket"] == ["arn:aws:s3:::test-bucket"]
    [listing] = [statement for statement in statements if "s3:ListBucket" in statement["Action"]]
    # outputs (CHECK_IF_DONE) and the run's own failure records (a worker deletes a done job's record if listed)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["TestApp/*", "runs/TestApp/failures/*"]}}
    assert "arn:aws:logs:us-east-1:123456789012:log-group:TestApp:*" in resources["logs:PutLogEvents"]
    assert "s3:PutObjectAcl" not in resources  # no UPLOAD_FLAGS, no ACL
    assert not [action for action in resources if action.endswith(":*") or action == "*"]


def test_with_dcps_buckets_the_task_role_reads_the_source_writes_the_destination_and_keeps_run_files_home(aws):
    settings = make_settings(SOURCE_BUCKET="public-images", DESTINATION_BUCKET="lab-results",
                             INPUT_PREFIX="images/{plate}", UPLOAD_FLAGS="--acl bucket-owner-full-control")
    iam.setup_account(settings)
    statements = _policy(clients.client("iam", settings), "TestApp-task-role")["Statement"]
    resources = granted_resources(statements)

    assert resources["s3:GetObject"] == ["arn:aws:s3:::lab-results/TestApp/*", "arn:aws:s3:::public-images/images/*"]
    assert resources["s3:PutObject"] == ["arn:aws:s3:::lab-results/TestApp/*",
                                         "arn:aws:s3:::test-bucket/runs/TestApp/*"]
    assert resources["s3:PutObjectAcl"] == ["arn:aws:s3:::lab-results/TestApp/*"]  # the outputs' ACL only
    assert resources["s3:DeleteObject"] == ["arn:aws:s3:::test-bucket/runs/TestApp/*"]
    assert {statement["Resource"]: statement["Condition"]["StringLike"]["s3:prefix"]
            for statement in statements if "s3:ListBucket" in statement["Action"]} == {
        "arn:aws:s3:::lab-results": ["TestApp/*"], "arn:aws:s3:::public-images": ["images/*"],
        "arn:aws:s3:::test-bucket": ["runs/TestApp/failures/*"]}


def test_the_fleet_role_may_pass_only_the_instance_role(aws, settings):
    iam.setup_account(settings)
    statements = _policy(clients.client("iam", settings), "dsr-spot-fleet-role")["Statement"]
    [passing] = [statement for statement in statements if "iam:PassRole" in statement["Action"]]
    assert passing["Resource"] == "arn:aws:iam::123456789012:role/dsr-ecs-instance-role"


def test_rerunning_setup_account_leaves_iam_unchanged(aws, settings):
    iam.setup_account(settings)
    before = snapshot(settings)["roles"], snapshot(settings)["instance_profiles"]
    report = iam.setup_account(settings)
    assert (snapshot(settings)["roles"], snapshot(settings)["instance_profiles"]) == before
    assert all(change.startswith("unchanged") for change in report.changes)


def test_setup_account_repairs_a_profile_without_its_role(aws, settings):
    iam.setup_account(settings)
    iam_client = clients.client("iam", settings)
    iam_client.remove_role_from_instance_profile(InstanceProfileName="dsr-ecs-instance-role",
                                                 RoleName="dsr-ecs-instance-role")
    iam_client.put_role_policy(RoleName="TestApp-task-role", PolicyName=iam.POLICY_NAME,
                               PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                   {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    report = iam.setup_account(settings)
    assert "updated instance profile dsr-ecs-instance-role" in report.changes
    assert "updated role TestApp-task-role (permissions)" in report.changes
    profile = iam_client.get_instance_profile(InstanceProfileName="dsr-ecs-instance-role")["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == ["dsr-ecs-instance-role"]


def test_cli_prints_the_arns_for_the_fleet_file_and_destroy_removes_everything(aws, tmp_path, settings):
    config = write_config(tmp_path)
    result = CliRunner().invoke(cli, ["setup-account", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "IamFleetRole" not in result.stdout  # an EC2 Fleet has none: DS's, in the file, is not used
    assert ('"IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/dsr-ecs-instance-role"}'
            in result.stdout)
    destroyed = CliRunner().invoke(cli, ["setup-account", "--destroy", "--config", str(config)])
    assert destroyed.exit_code == 0, destroyed.output
    iam_client = clients.client("iam", settings)
    assert iam_client.list_instance_profiles()["InstanceProfiles"] == []
    assert not [role for role in iam_client.list_roles()["Roles"] if role["RoleName"].startswith(("dsr-", "TestApp"))]
    again = CliRunner().invoke(cli, ["setup-account", "--destroy", "--config", str(config)])
    assert (again.exit_code, again.stdout) == (0, "nothing to delete\n")


def test_destroy_is_refused_while_a_run_uses_the_roles_and_force_overrides(started):
    config = str(started.config_path)
    refused = CliRunner().invoke(cli, ["setup-account", "--destroy", "--config", config])
    iam_client = clients.client("iam")

    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: the roles are in use by 2 thing(s): fleet fleet-")
    assert refused.stderr.endswith(", run record s3://test-bucket/monitors/TestAppSpotFleetRequestId.json; tear "
                                   "those runs down first, or add --force\n")
    assert len(iam_client.list_instance_profiles()["InstanceProfiles"]) == 1  # nothing was removed
    forced = CliRunner().invoke(cli, ["setup-account", "--destroy", "--force", "--config", config])
    assert forced.exit_code == 0 and iam_client.list_instance_profiles()["InstanceProfiles"] == []
