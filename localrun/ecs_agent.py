"""The emulator's machines joining ECS as AWS's do: moto launches an EC2 Fleet's instances, but nothing on them runs
the ECS agent, so no container instance ever registers. `cli.py selftest` checks exactly that registration, so
its tests (and an emulator that wants it) open `agent_joins()`: each instance an EC2 Fleet launches registers in
the cluster its user data names, when what AWS needs for it holds:

- its AMI runs the agent: AWS's ECS-optimized AMIs (the public SSM parameters' images, named
  `al2023-ami-ecs-hvm-...`, `amzn2-ami-ecs-hvm-...`) start it at boot ("Amazon ECS-optimized Linux AMIs", Amazon
  ECS Developer Guide); a plain Amazon Linux AMI has none;
- its instance profile's role may call ecs:RegisterContainerInstance ("Amazon ECS container instance IAM role":
  the agent registers with the instance's credentials);
- the cluster its user data names (`ECS_CLUSTER=` in /etc/ecs/ecs.config; "default" without it) exists: the agent
  does not create it.

And what follows from registered machines, which moto leaves out:
- a machine that terminates leaves its cluster: "If you terminate a container instance in the RUNNING state, that
  container instance is automatically removed, or deregistered, from the cluster" (Amazon ECS Developer Guide,
  "Deregister an Amazon ECS container instance");
- a cluster that still has container instances cannot be deleted (DeleteCluster, ECS API Reference:
  ClusterContainsContainerInstancesException), where moto deletes it regardless.

The network (a route to ECS's endpoint) is not emulated: moto has no packets. Opt-in rather than in
`moto_patches.patched()`: the tests and local mode written before it run without container instances.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from localrun.moto_patches import launched

AGENT_ACTION = "ecs:RegisterContainerInstance"
ECS_MANAGED_POLICY = "AmazonEC2ContainerServiceforEC2Role"
_ECS_AMI_NAME = re.compile(r"-ami-ecs-")


@contextlib.contextmanager
def agent_joins() -> Iterator[None]:
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.models.instances import Instance
    from moto.ecs.models import EC2ContainerServiceBackend

    with (_wrapped(Fleet, "create_spot_requests", _registers_at_boot),
          _wrapped(Instance, "terminate", _leaves_at_termination),
          _wrapped(EC2ContainerServiceBackend, "delete_cluster", _cluster_kept_while_registered)):
        yield


@contextlib.contextmanager
def _wrapped(owner: type, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """owner.name replaced by wrap(the original) while open."""
    original = getattr(owner, name)
    setattr(owner, name, functools.wraps(original)(wrap(original)))
    try:
        yield
    finally:
        setattr(owner, name, original)


def _registers_at_boot(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_spot_requests(self, weight_to_add):
        before = len(self.spot_requests)
        original(self, weight_to_add)
        for request, launch in launched(self, before):
            _boot(self.ec2_backend, request.instance.id, launch)
        return self.spot_requests
    return create_spot_requests


def _leaves_at_termination(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.ecs.models import ecs_backends

    def terminate(self):
        state = original(self)
        ecs = ecs_backends[self.ec2_backend.account_id][self.ec2_backend.region_name]
        for instances in ecs.container_instances.values():
            for key in [key for key, item in instances.items() if item.ec2_instance_id == self.id]:
                del instances[key]
        return state
    return terminate


def _cluster_kept_while_registered(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.ecs.exceptions import ECSException

    def delete_cluster(self, cluster_str: str):
        if self.container_instances.get(cluster_str.split("/")[-1]):
            raise ECSException("ClusterContainsContainerInstancesException",
                               "The Cluster cannot be deleted while Container Instances are active or draining.")
        return original(self, cluster_str)
    return delete_cluster


def _boot(ec2_backend: Any, instance_id: str, launch: dict[str, Any]) -> None:
    """What the machine's boot does for ECS: its agent registers, or (any condition missing) nothing happens, as on
    AWS, where the instance simply never shows in the cluster."""
    from moto.ecs.models import ecs_backends

    if not _runs_the_agent(ec2_backend, launch.get("ImageId", "")):
        return
    if not _may_register(ec2_backend.account_id, launch.get("IamInstanceProfile") or {}):
        return
    cluster = _cluster_of(launch.get("UserData", ""))
    ecs = ecs_backends[ec2_backend.account_id][ec2_backend.region_name]
    if cluster in ecs.clusters:
        ecs.register_container_instance(cluster, instance_id)


def _runs_the_agent(ec2_backend: Any, image_id: str) -> bool:
    try:
        image = ec2_backend.describe_images(ami_ids=[image_id])[0]
    except Exception:  # noqa: BLE001 - an image moto does not know boots nothing of ECS's
        return False
    return bool(_ECS_AMI_NAME.search(image.name or ""))


def _cluster_of(user_data: str) -> str:
    try:
        script = base64.b64decode(str(user_data)).decode()
    except ValueError:
        return "default"
    found = re.search(r"^ECS_CLUSTER=(\S+)$", script, re.MULTILINE)
    return found.group(1) if found else "default"


def _may_register(account_id: str, profile_spec: dict[str, str]) -> bool:
    from moto.iam.models import iam_backends

    iam = iam_backends[account_id]["global"]
    name = profile_spec.get("Name") or (profile_spec.get("Arn") or "").rsplit("/", 1)[-1]
    profile = next((profile for profile in iam.instance_profiles.values() if profile.name == name), None)
    if profile is None:
        return False
    for role in profile.roles:
        documents = list(role.policies.values())
        for policy in role.managed_policies.values():
            if policy.name == ECS_MANAGED_POLICY:
                return True
            documents += [version.document for version in policy.versions
                          if version.version_id == policy.default_version_id]
        if any(_allows(document) for document in documents):
            return True
    return False


def _allows(document: str | dict[str, Any]) -> bool:
    parsed = json.loads(document) if isinstance(document, str) else document
    statements = parsed.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") == "Allow" and any(action in (AGENT_ACTION, "ecs:*", "*") for action in actions):
            return True
    return False
