"""ECS, by intent: services, task definitions and clusters, read exactly by name; a service scaled; teardown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import error_code

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ClusterTypeDef, ContainerDefinitionOutputTypeDef, ServiceTypeDef


def _ecs_tag_map(resource: ServiceTypeDef | ClusterTypeDef) -> dict[str, str]:
    """ECS's tags of a described resource (`include=["TAGS"]`) as a dict."""
    return {item["key"]: item["value"] for item in resource.get("tags", ())}


@dataclass(frozen=True)
class Service:
    name: str
    arn: str
    desired: int
    task_definition: str
    tags: dict[str, str] = field(default_factory=dict)
    minimum_healthy_percent: int | None = None  # of its deployment configuration


def ecs_service(ecs: ECSClient, cluster: str, name: str) -> Service | None:
    """The ACTIVE service of that exact name, or None (also when the cluster does not exist)."""
    try:
        described = ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"]
    except ClientError as error:
        if error_code(error) == "ClusterNotFoundException":
            return None
        raise
    for item in described:
        if item["serviceName"] == name and item.get("status") == "ACTIVE":
            return Service(name=name, arn=item["serviceArn"], desired=item.get("desiredCount", 0),
                           task_definition=item.get("taskDefinition", ""), tags=_ecs_tag_map(item),
                           minimum_healthy_percent=item.get("deploymentConfiguration", {}).get("minimumHealthyPercent"))
    return None


@dataclass(frozen=True)
class Container:
    name: str
    environment: dict[str, str]
    log_driver: str
    log_options: dict[str, str]


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str
    revision: int
    containers: tuple[Container, ...]

    @property
    def name(self) -> str:
        return f"{self.family}:{self.revision}"


def task_definition(ecs: ECSClient, arn: str) -> TaskDefinition | None:
    """A task definition revision (ACTIVE or INACTIVE), or None when ECS has no such revision."""
    try:
        described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    except ClientError as error:
        if error_code(error) in ("ClientException", "InvalidParameterException"):  # ECS's "no such revision"
            return None
        raise
    return TaskDefinition(arn=described["taskDefinitionArn"], family=described["family"],
                          revision=int(described["revision"]),
                          containers=tuple(_container(item) for item in described.get("containerDefinitions", ())))


def _container(item: ContainerDefinitionOutputTypeDef) -> Container:
    logging = item.get("logConfiguration", {})
    return Container(name=item.get("name", ""),
                     environment={pair["name"]: pair.get("value", "") for pair in item.get("environment", ())},
                     log_driver=logging.get("logDriver", ""), log_options=dict(logging.get("options", {})))


@dataclass(frozen=True)
class Cluster:
    name: str
    active_services: int
    tags: dict[str, str] = field(default_factory=dict)


def ecs_cluster(ecs: ECSClient, name: str) -> Cluster | None:
    """The ACTIVE cluster of that exact name (DS matched by suffix, so "default" also found "my-default")."""
    for item in ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]:
        if item["clusterName"] == name and item.get("status") == "ACTIVE":
            return Cluster(name=name, active_services=item.get("activeServicesCount", 0), tags=_ecs_tag_map(item))
    return None


def cluster_machine_ids(ecs: ECSClient, cluster: str) -> tuple[str, ...]:
    """The EC2 ids of the cluster's ACTIVE container instances."""
    arns = [arn for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster, status="ACTIVE")
            for arn in page["containerInstanceArns"]]
    ids: list[str] = []
    for start in range(0, len(arns), 100):  # DescribeContainerInstances takes at most 100
        described = ecs.describe_container_instances(cluster=cluster, containerInstances=arns[start:start + 100])
        ids.extend(item["ec2InstanceId"] for item in described["containerInstances"] if item.get("ec2InstanceId"))
    return tuple(ids)


def task_definition_arns(ecs: ECSClient, family: str) -> tuple[str, ...]:
    """The ACTIVE revisions of exactly this family (familyPrefix "AppTask" also lists "AppTask2")."""
    pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
    return tuple(arn for page in pages for arn in page["taskDefinitionArns"]
                 if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family)


def set_service_count(ecs: ECSClient, cluster: str, service: str, count: int) -> None:
    ecs.update_service(cluster=cluster, service=service, desiredCount=count)


def delete_service(ecs: ECSClient, cluster: str, service: str) -> None:
    # force: deletes a service whose desired count is not yet 0, in one call
    ecs.delete_service(cluster=cluster, service=service, force=True)


def deregister_task_definitions(ecs: ECSClient, arns: Iterable[str]) -> None:
    for arn in arns:  # DeregisterTaskDefinition takes one revision a call
        ecs.deregister_task_definition(taskDefinition=arn)


def delete_cluster(ecs: ECSClient, cluster: str) -> None:
    ecs.delete_cluster(cluster=cluster)
