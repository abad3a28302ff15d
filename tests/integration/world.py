"""A fake AWS account ready for a run, and a snapshot of everything a run touches.

Imported by the integration tests (fixtures are imported into each module
rather than put in a shared conftest.py, so parallel work on other issues does
not collide here).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from chalicelib import aws as clients, iam, resources
from localrun.account import private_subnet
from tests.conftest import BASE_CONFIG, REGION, make_settings


def write_config(folder: Path, **overrides) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({**BASE_CONFIG, **overrides}))
    return path


def write_jobs(folder: Path, count: int, name: str = "jobs.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"_comment": "test jobs", "pipeline": "measure",
                                "groups": [{"plate": f"P{index:05d}"} for index in range(count)]}))
    return path


def make_bucket(settings) -> None:
    clients.client("s3", settings).create_bucket(Bucket=settings.AWS_BUCKET)


def make_subnet(nat: bool = True) -> str:
    """A subnet whose route table sends 0.0.0.0/0 through a NAT gateway (or has no way out)."""
    return private_subnet(clients.client("ec2", region=REGION), nat)[0]


@functools.cache
def amazon_image() -> str:
    """An Amazon image id. moto's images come from its own data, the same in every fresh world, and listing
    them takes about 2 s: looked up once per test process."""
    return clients.client("ec2", region=REGION).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def write_fleet(folder: Path, fleet_role_arn: str, profile_arn: str, subnet: str, **extra) -> Path:
    ami = amazon_image()
    document = {
        "_comment": "test fleet",
        "IamFleetRole": fleet_role_arn,
        "TerminateInstancesWithExpiration": True,
        "LaunchSpecifications": [{
            "ImageId": ami,
            "KeyName": "placeholder-key",
            "IamInstanceProfile": {"Arn": profile_arn},
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3",
                                                    "VolumeSize": 30}},
                {"DeviceName": "/dev/xvdcz", "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3",
                                                     "VolumeSize": 22}}],
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "DeleteOnTermination": True,
                                   "AssociatePublicIpAddress": True, "Groups": []}],
        }],
        **extra,
    }
    path = folder / "fleet.json"
    path.write_text(json.dumps(document))
    return path


class Account:
    """What setup-account, setup and a bucket leave behind, plus the files a user writes."""

    def __init__(self, folder: Path, nat: bool = True, **config):
        self.folder = folder
        self.config_path = write_config(folder, **config)
        self.settings = make_settings(**config)
        make_bucket(self.settings)
        self.roles = iam.setup_account(self.settings)
        resources.setup(self.settings)
        self.subnet = make_subnet(nat)
        self.fleet_path = write_fleet(folder, self.roles.fleet_role_arn, self.roles.instance_profile_arn,
                                      self.subnet)


@pytest.fixture
def fleet_requests(aws, monkeypatch):
    """The RequestSpotFleet configs as sent on the wire.

    moto gap: describe_spot_fleet_requests drops NetworkInterfaces,
    BlockDeviceMappings, ValidFrom/ValidUntil and KeyName from what it stores,
    so the overwrites cannot be read back from moto. botocore's own event hook
    records the parameters after our code built them and before moto gets them;
    our code is not replaced.
    """
    sent: list[dict] = []

    def record(params, **_):
        sent.append(json.loads(json.dumps(params["SpotFleetRequestConfig"], default=_datetime_text)))

    session = aws_session()
    session.events.register("provide-client-params.ec2.RequestSpotFleet", record)
    yield sent
    session.events.unregister("provide-client-params.ec2.RequestSpotFleet", record)


def aws_session():
    return clients.session(REGION, None)


def _datetime_text(value):
    return {"datetime": value.isoformat(), "tzinfo": str(value.tzinfo)}


def snapshot(settings) -> dict:
    """Everything setup, setup-account and start-cluster write, read back through boto3."""
    sqs, ecs, logs, sns = (clients.client(name, settings) for name in ("sqs", "ecs", "logs", "sns"))
    cloudwatch, s3, ec2, iam_client = (clients.client(name, settings) for name in ("cloudwatch", "s3", "ec2", "iam"))
    world: dict = {"queues": {}}
    for url in sqs.list_queues().get("QueueUrls", []):
        world["queues"][url] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    world["task_definitions"] = ecs.list_task_definitions()["taskDefinitionArns"]
    world["clusters"] = ecs.list_clusters()["clusterArns"]
    world["services"] = [
        {key: service[key] for key in ("serviceName", "taskDefinition", "desiredCount", "status")}
        for cluster in world["clusters"]
        for service in ecs.describe_services(cluster=cluster, services=ecs.list_services(cluster=cluster)
                                             ["serviceArns"] or ["none"]).get("services", [])]
    world["log_groups"] = logs.describe_log_groups()["logGroups"]
    world["topics"] = sns.list_topics()["Topics"]
    world["alarms"] = cloudwatch.describe_alarms()["MetricAlarms"]
    world["dashboards"] = {
        entry["DashboardName"]: cloudwatch.get_dashboard(DashboardName=entry["DashboardName"])["DashboardBody"]
        for entry in cloudwatch.list_dashboards()["DashboardEntries"]}
    world["objects"] = {bucket["Name"]: [(item["Key"], item["ETag"], item["LastModified"]) for item in
                                         s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])]
                        for bucket in s3.list_buckets()["Buckets"]}
    world["fleets"] = ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"]
    world["roles"] = {role["RoleName"]: (role, iam_client.list_role_policies(RoleName=role["RoleName"])["PolicyNames"])
                      for role in iam_client.list_roles()["Roles"]}
    world["instance_profiles"] = iam_client.list_instance_profiles()["InstanceProfiles"]
    return world
