"""`setup-account`: the IAM roles a run needs, least privilege, idempotent.

Three roles (names in chalicelib.model.names):
- the ECS instance role *and its instance profile* (DS creates the role but not
  the profile, and the fleet then fails to launch): what the ECS agent on each
  machine needs to join the cluster and ship container logs. No S3: the agent's
  config is written by the fleet's UserData, not fetched from S3.
- the spot fleet role: launch, tag and terminate instances, and pass the
  instance role (and only that role) to EC2.
- the worker's task role, per APP_NAME (`task_policy`): a job is untrusted code
  with these rights, so they reach the run's job queue, its output root, its own
  run files and its log group, and nothing the monitor trusts. No alarm rights:
  an alarm's EC2 action runs as CloudWatch's own role, so making any alarm is
  terminating any instance (chalicelib/monitor/idle_alarm.py: the monitor makes them).
  The worker never sees AWS keys.
  tests/integration/test_worker_iam_policy.py records every call a worker makes
  and fails on a missing or an unused grant; tests/integration/test_task_role_enforced.py
  runs a worker and a hostile job with exactly this policy under moto's IAM engine.

Inline policies only: every permission is visible in this file, and
`--destroy` removes everything without touching AWS-managed policies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.aws.ec2 import LIVE_FLEET_STATES
from chalicelib.model import jobs, names
from chalicelib.model.errors import UserError
from chalicelib.model.settings import Settings
from chalicelib.model.uploadflags import needs_acl_grant
from chalicelib.monitor.runs import record_keys
from operations.setup import job_locations

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_iam import IAMClient

POLICY_NAME = "dsr-least-privilege"
_VERSION = "2012-10-17"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    service: str  # the AWS service allowed to assume the role
    policy: dict[str, Any]
    instance_profile: str | None = None

    @property
    def trust(self) -> dict[str, Any]:
        return {"Version": _VERSION, "Statement": [
            {"Effect": "Allow", "Principal": {"Service": self.service}, "Action": "sts:AssumeRole"}]}


@dataclass
class AccountReport:
    changes: list[str] = field(default_factory=list)
    instance_profile_arn: str = ""
    fleet_role_arn: str = ""
    task_role_arn: str = ""


def role_specs(settings: Settings, account: str, needs: Iterable[job_locations.Need] = ()) -> list[RoleSpec]:
    partition = "aws"
    instance_role = f"arn:{partition}:iam::{account}:role/{names.INSTANCE_ROLE}"
    instance = RoleSpec(names.INSTANCE_ROLE, "ec2.amazonaws.com", _policy(
        # The ECS agent's calls (as in AWS's AmazonEC2ContainerServiceforEC2Role, which
        # also cannot scope them: container instances do not exist before they register).
        _allow(["ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:RegisterContainerInstance",
                "ecs:DeregisterContainerInstance", "ecs:StartTelemetrySession", "ecs:Submit*",
                "ecs:UpdateContainerInstancesState", "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], "*"),
        # awslogs driver: container output goes only to the runs' _perInstance groups.
        _allow(["logs:CreateLogStream", "logs:PutLogEvents"],
               f"arn:{partition}:logs:*:{account}:log-group:*_perInstance:*"),
    ), instance_profile=names.INSTANCE_PROFILE)
    fleet = RoleSpec(names.FLEET_ROLE, "spotfleet.amazonaws.com", _policy(
        _allow(["ec2:RunInstances", "ec2:RequestSpotInstances", "ec2:CancelSpotInstanceRequests",
                "ec2:TerminateInstances", "ec2:CreateTags", "ec2:DescribeImages", "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus", "ec2:DescribeSubnets", "ec2:DescribeSpotInstanceRequests"], "*"),
        {**_allow(["iam:PassRole"], instance_role),
         "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}}},
    ))
    task = RoleSpec(names.task_role(settings), "ecs-tasks.amazonaws.com", task_policy(settings, account, needs))
    return [instance, fleet, task]


def task_policy(settings: Settings, account: str, needs: Iterable[job_locations.Need] = ()) -> dict[str, Any]:
    """The worker's rights. A job is untrusted code running with them, so they reach only this run's queue, its
    output root in DESTINATION_BUCKET, its input root in SOURCE_BUCKET (read only), its own run files in
    AWS_BUCKET (runs/APP_NAME/: busy leases, failure records) and its log group; never monitors/, exportedlogs/,
    ecsconfigs/, another run's files, nor any alarm (chalicelib/monitor/idle_alarm.py says why). In DS image mode, also
    the locations the submitted jobs name (`needs`, operations/setup/job_locations.py)."""
    region, partition = settings.AWS_REGION, "aws"
    queue = f"arn:{partition}:sqs:{region}:{account}:{settings.SQS_QUEUE_NAME}"
    own, source, destination = (f"arn:{partition}:s3:::{name}" for name in (
        settings.AWS_BUCKET, settings.SOURCE_BUCKET, settings.DESTINATION_BUCKET))
    job_logs = f"arn:{partition}:logs:{region}:{account}:log-group:{settings.LOG_GROUP_NAME}"
    output_root, input_root = jobs.output_root(settings), jobs.input_root(settings)
    run_files = f"{own}/{names.run_files_prefix(settings.APP_NAME)}*"
    outputs = f"{destination}/{output_root}*"
    # Listing: CHECK_IF_DONE under the output root, INPUT_PREFIX's inputs, and the run's failure records (a worker
    # lists them to delete a finished job's record only when there is one, worker/records.py). AWS checks the prefix.
    listed = {destination: [output_root]}
    if input_root is not None:
        listed.setdefault(source, []).append(input_root)
    listed.setdefault(own, []).append(names.failures_prefix(settings.APP_NAME))
    reads = sorted({outputs} | ({f"{source}/{input_root}*"} if input_root is not None else set()))
    writes = ["s3:PutObject"] + (["s3:PutObjectAcl"] if needs_acl_grant(settings.upload_args) else [])
    statements = [
        # SendMessage: a job released for a spot interruption is requeued as a fresh message, so the
        # interruption does not count as one of its JOB_RETRIES attempts (worker/worker.py `_release`)
        _allow(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes", "sqs:SendMessage"], queue),
        *(_listing(bucket, roots) for bucket, roots in sorted(listed.items())),
        _allow(["s3:GetObject"], reads),
        # UPLOAD_FLAGS' --acl makes each output's PutObject a PutObjectAcl too; run files never carry an ACL.
        _allow(writes, outputs),
        # Outputs are never deleted; the worker deletes only its own busy leases and stale failure records.
        _allow(["s3:PutObject", "s3:DeleteObject"], run_files),
        # CreateLogGroup: a worker makes its group if setup has not (local runs), tolerating "exists".
        _allow(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [job_logs, job_logs + ":*"]),
        *job_locations.statements(settings, needs, partition),
    ]
    if writes_reach_reserved(output_root):
        # OUTPUT_PREFIX starts with a job value, so outputs may go anywhere in DESTINATION_BUCKET: what the monitor
        # trusts is denied explicitly (a Deny wins over any Allow), in whichever bucket the outputs go, as that
        # bucket may be some run's AWS_BUCKET. Other runs' outputs and run files are then within reach of this
        # run's jobs: start-cluster warns, and README says to give OUTPUT_PREFIX a folder.
        statements.append({"Effect": "Deny", "Action": ["s3:PutObject", "s3:DeleteObject"],
                           "Resource": sorted({f"{bucket}/{prefix}*" for bucket in (own, destination)
                                               for prefix in names.RESERVED_PREFIXES
                                               if prefix != names.RUN_FILES_PREFIX})})
    return _policy(*statements)


def writes_reach_reserved(output_root: str) -> bool:
    """True when `bucket/<output_root>*` also covers a reserved prefix (only possible when the root is a start
    of one, such as ''; settings refuse roots inside a reserved prefix)."""
    return any(prefix.startswith(output_root) for prefix in names.RESERVED_PREFIXES)


def _listing(bucket: str, roots: list[str]) -> dict[str, Any]:
    statement = _allow(["s3:ListBucket"], bucket)
    if roots and all(roots):
        statement["Condition"] = {"StringLike": {"s3:prefix": sorted({root + "*" for root in roots})}}
    return statement


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": _VERSION, "Statement": list(statements)}


def _allow(actions: list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def setup_account(settings: Settings) -> AccountReport:
    iam = aws.client("iam", settings)
    account = aws.client("sts", settings).get_caller_identity()["Account"]
    report = AccountReport()
    # What the jobs submitted so far name (DS image mode): a setup-account run after submit keeps their grants.
    needs = (job_locations.load_record(aws.client("s3", settings), settings) if settings.ds_image_mode else None) or ()
    for spec in role_specs(settings, account, needs):
        arn = _ensure_role(iam, spec, report)
        if spec.instance_profile:
            report.instance_profile_arn = _ensure_instance_profile(iam, spec.name, spec.instance_profile, report)
        elif spec.service == "spotfleet.amazonaws.com":
            report.fleet_role_arn = arn
        else:
            report.task_role_arn = arn
    return report


def ensure_task_role(settings: Settings) -> str:
    """The run's task role alone, made or fixed as setup_account makes it; its ARN. For a run whose account roles
    must be left as they are (`cli.py selftest`'s throwaway run)."""
    account = aws.client("sts", settings).get_caller_identity()["Account"]
    task = next(spec for spec in role_specs(settings, account) if spec.name == names.task_role(settings))
    return _ensure_role(aws.client("iam", settings), task, AccountReport())


def runs_using_roles(settings: Settings) -> list[str]:
    """What still uses the account-wide roles, as far as this config can see: live EC2 Fleets of the region a
    run made (its tag; their machines have the instance role), live spot fleets launched with the fleet role (the
    previous version's runs), and run records in AWS_BUCKET (each a run not yet torn down)."""
    ec2 = aws.client("ec2", settings)
    fleet_role = f":role/{names.FLEET_ROLE}"
    users = [f"fleet {fleet['FleetId']}" for fleet in aws.paged(ec2, "describe_fleets", "Fleets")
             if fleet.get("FleetState") in LIVE_FLEET_STATES
             and any(tag["Key"] == names.RUN_TAG for tag in fleet.get("Tags", ()))]
    users += [f"spot fleet {config['SpotFleetRequestId']}"
              for config in aws.paged(ec2, "describe_spot_fleet_requests", "SpotFleetRequestConfigs")
              if config.get("SpotFleetRequestState") in LIVE_FLEET_STATES
              and config.get("SpotFleetRequestConfig", {}).get("IamFleetRole", "").endswith(fleet_role)]
    try:
        users.extend(f"run record s3://{settings.AWS_BUCKET}/{key}"
                     for key in record_keys(aws.client("s3", settings), settings.AWS_BUCKET))
    except ClientError as error:
        if aws.error_code(error) != "NoSuchBucket":
            raise
    return users


def destroy_account(settings: Settings, force: bool = False) -> list[str]:
    """Remove what setup_account made; what is already gone is skipped, not an error. Refused while a run uses
    the roles (its machines would lose their instance role mid-run), unless `force`."""
    if not force:
        users = runs_using_roles(settings)
        if users:
            raise UserError(f"the roles are in use by {len(users)} thing(s): {', '.join(users[:3])}"
                            f"{' and more' if len(users) > 3 else ''}; tear those runs down first, or add --force")
    iam = aws.client("iam", settings)
    removed = []
    for spec in role_specs(settings, "0"):
        if spec.instance_profile:
            # A role still in a profile cannot be deleted.
            _ignore_missing(iam, iam.remove_role_from_instance_profile,
                            InstanceProfileName=spec.instance_profile, RoleName=spec.name)
        if spec.instance_profile and _ignore_missing(iam, iam.delete_instance_profile,
                                                     InstanceProfileName=spec.instance_profile):
            removed.append(f"instance profile {spec.instance_profile}")
        _ignore_missing(iam, iam.delete_role_policy, RoleName=spec.name, PolicyName=POLICY_NAME)
        if _ignore_missing(iam, iam.delete_role, RoleName=spec.name):
            removed.append(f"role {spec.name}")
    return removed


def _ignore_missing(iam: IAMClient, call: Callable[..., object], **kwargs: str) -> bool:
    try:
        call(**kwargs)
        return True
    except iam.exceptions.NoSuchEntityException:
        return False


def policy_document(value: Any) -> Any:
    # boto3 decodes policy documents to dicts; older paths return URL-encoded JSON text.
    return json.loads(unquote(value)) if isinstance(value, str) else value


def _ensure_role(iam: IAMClient, spec: RoleSpec, report: AccountReport) -> str:
    try:
        role = iam.get_role(RoleName=spec.name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        try:
            role = iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(spec.trust),
                                   Description="Created by 'python cli.py setup-account'")["Role"]
        except iam.exceptions.EntityAlreadyExistsException:
            # another setup-account made it since we looked (runs starting together): checked as one found
            role = iam.get_role(RoleName=spec.name)["Role"]
        else:
            iam.put_role_policy(RoleName=spec.name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(spec.policy))
            report.changes.append(f"created role {spec.name}")
            return role["Arn"]
    changed = []
    if policy_document(role["AssumeRolePolicyDocument"]) != spec.trust:
        iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=json.dumps(spec.trust))
        changed.append("trust policy")
    try:
        current = policy_document(iam.get_role_policy(RoleName=spec.name, PolicyName=POLICY_NAME)["PolicyDocument"])
    except iam.exceptions.NoSuchEntityException:
        current = None
    if current != spec.policy:
        iam.put_role_policy(RoleName=spec.name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(spec.policy))
        changed.append("permissions")
    report.changes.append(f"updated role {spec.name} ({', '.join(changed)})" if changed
                          else f"unchanged role {spec.name}")
    return role["Arn"]


def _ensure_instance_profile(iam: IAMClient, role_name: str, profile_name: str,
                             report: AccountReport) -> str:
    try:
        profile = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
        action = "unchanged"
    except iam.exceptions.NoSuchEntityException:
        try:
            profile = iam.create_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
            action = "created"
        except iam.exceptions.EntityAlreadyExistsException:  # another setup-account made it since we looked
            profile = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
            action = "unchanged"
    if role_name not in [role["RoleName"] for role in profile.get("Roles", [])]:
        try:
            iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=role_name)
        except iam.exceptions.LimitExceededException:
            # a profile holds one role: another setup-account added it since we looked, if it is this one
            profile = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
            if role_name not in [role["RoleName"] for role in profile.get("Roles", [])]:
                raise
        action = action if action == "created" else "updated"
    report.changes.append(f"{action} instance profile {profile_name}")
    return profile["Arn"]
