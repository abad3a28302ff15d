"""Whether a fleet file's instance profile is one the machines can join ECS with: it exists, holds a role, and the
role may do what the ECS agent does. A DS user's file names DS's profile (`ecsInstanceRole`, which AWS's console
makes with the AWS-managed AmazonEC2ContainerServiceforEC2Role policy); setup-account makes ours
(`dsr-ecs-instance-role`). Either works; a missing one is named with what to write instead."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from chalicelib import aws
from chalicelib.model import names
from chalicelib.model.errors import PreflightError

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_iam import IAMClient

ECS_MANAGED_POLICY = "AmazonEC2ContainerServiceforEC2Role"
# What the ECS agent calls to join the cluster, run tasks and report them, and what the awslogs driver calls for
# the containers' output (AWS's "Amazon ECS container instance IAM role" page lists them; our own instance role
# grants exactly these). ECR's calls are left out: DS and DCP images come from Docker Hub.
ECS_AGENT_ACTIONS = ("ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:RegisterContainerInstance",
                     "ecs:StartTelemetrySession", "ecs:SubmitContainerStateChange", "ecs:SubmitTaskStateChange",
                     "logs:CreateLogStream", "logs:PutLogEvents")


def check_instance_profile(iam: IAMClient, source: str, arn: str) -> None:
    """Raises PreflightError, one line, when machines launched with the profile `arn` could not join ECS."""
    profile = arn.rsplit("/", 1)[-1]
    where = f"{source}: IamInstanceProfile"
    try:
        roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"].get("Roles", [])
    except iam.exceptions.NoSuchEntityException:
        if profile == names.INSTANCE_PROFILE:
            raise PreflightError(f"{where}: instance profile '{profile}' does not exist; 'python cli.py "
                                 "setup-account' creates it and prints its ARN") from None
        raise PreflightError(f"{where}: instance profile '{profile}' does not exist in this account; change the "
                             f"Arn {arn} to {_our_profile(iam)}") from None
    if not roles:
        raise PreflightError(f"{where}: instance profile '{profile}' has no role; "
                             + ("'python cli.py setup-account' adds it" if profile == names.INSTANCE_PROFILE
                                else f"add one with the {ECS_MANAGED_POLICY} policy, or change the Arn {arn} to "
                                     f"{_our_profile(iam)}"))
    for role in roles:
        missing = missing_ecs_actions(iam, role["RoleName"])
        if missing:
            raise PreflightError(f"{where}: role '{role['RoleName']}' of instance profile '{profile}' may not call "
                                 f"{', '.join(missing)}, so its machines could not join ECS; attach the AWS-managed "
                                 f"{ECS_MANAGED_POLICY} policy to it, or change the Arn {arn} to "
                                 f"{_our_profile(iam)}")


def missing_ecs_actions(iam: IAMClient, role: str) -> list[str]:
    """The ECS agent's actions none of the role's policies allows (none, when AWS's managed policy is attached)."""
    documents: list[str | Mapping[str, Any]] = []
    for attached in aws.paged(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role):
        if attached["PolicyArn"].rsplit("/", 1)[-1] == ECS_MANAGED_POLICY:
            return []
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        documents.append(iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)[
            "PolicyVersion"]["Document"])
    documents += [iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                  for name in aws.paged(iam, "list_role_policies", "PolicyNames", RoleName=role)]
    allowed = [pattern.lower() for document in documents for pattern in _allowed_actions(_document(document))]
    return [action for action in ECS_AGENT_ACTIONS
            if not any(fnmatch.fnmatchcase(action.lower(), pattern) for pattern in allowed)]


def _allowed_actions(document: Mapping[str, Any]) -> Iterator[str]:
    # Resources and conditions are not weighed: the question is whether the agent's calls are granted at all.
    statements = document.get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        if statement.get("Effect") == "Allow":
            actions = statement.get("Action", [])
            yield from [actions] if isinstance(actions, str) else actions


def _document(value: str | Mapping[str, Any]) -> Mapping[str, Any]:
    # boto3 decodes policy documents to dicts; some paths return URL-encoded JSON text.
    document: Mapping[str, Any] = json.loads(unquote(value)) if isinstance(value, str) else value
    return document


def _our_profile(iam: IAMClient) -> str:
    try:
        arn = iam.get_instance_profile(InstanceProfileName=names.INSTANCE_PROFILE)["InstanceProfile"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return f"ours, '{names.INSTANCE_PROFILE}' ('python cli.py setup-account' creates it and prints its ARN)"
    return f"ours, {arn} (made by 'python cli.py setup-account')"
