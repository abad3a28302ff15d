"""The emulated account: what a user would have made once (roles, a bucket, a network) before a run.

The real code paths make it (setup-account, setup); only what a user makes by
hand in the console is made here: the bucket, and a private subnet that reaches
AWS through a NAT gateway (what DS's docs ask for, so start-cluster's network
check is satisfied whatever ASSIGN_IP says).

A fleet file names ARNs, an AMI, a subnet and security groups of the user's real
account. `localize_fleet` writes a copy pointing at their emulated counterparts;
the user's file is never changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chalicelib import aws
from chalicelib.model.settings import Settings
from chalicelib.monitor.spot_quota import SPOT_QUOTAS
from localrun.moto_patches import set_service_quota
from operations.setup import iam, resources
from operations.start.fleet import FleetFile, parse_fleet_document

ECS_IMAGE_NAMES = "amzn2-ami-ecs-hvm-*"  # the ECS-optimized Amazon Linux 2 images


@dataclass(frozen=True)
class Account:
    fleet_role_arn: str
    instance_profile_arn: str
    image_id: str
    subnet_id: str
    security_group_id: str
    setup_changes: int  # resources setup created (for the output)


def prepare_account(settings: Settings, run_setup: bool = True) -> Account:
    """The buckets (AWS_BUCKET, SOURCE_BUCKET, DESTINATION_BUCKET), the roles (setup-account), the run's resources
    (setup, unless `run_setup` is false: the emulator leaves it to the user) and a network."""
    s3 = aws.client("s3", settings)
    for bucket in settings.buckets:
        s3.create_bucket(**_bucket_args(settings, bucket))
    roles = iam.setup_account(settings)
    raise_spot_quotas(settings.AWS_REGION)
    changes = len(resources.setup(settings).changes) if run_setup else 0
    ec2 = aws.client("ec2", settings)
    subnet, group = private_subnet(ec2)
    # Any image will do: nothing boots it. An ECS-optimized one, as on AWS; the name filter keeps moto's
    # listing short (all of Amazon's images take about 2 s to list).
    image = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": [ECS_IMAGE_NAMES]}])[
        "Images"][0]["ImageId"]
    return Account(roles.fleet_role_arn, roles.instance_profile_arn, image, subnet, group, changes)


# What a lab account running thousands of jobs has had approved for its Spot vCPU quotas: a new account's defaults
# (5 standard vCPUs, no GPU) would refuse most runs before they are rehearsed. Preflight's refusal is tested
# against the defaults (tests/unit/test_spot_quota.py).
LAB_SPOT_VCPUS = 1024


def raise_spot_quotas(region: str) -> None:
    """The emulated account's Spot vCPU quotas, as after an approved increase."""
    for quota in SPOT_QUOTAS:
        set_service_quota(quota.code, LAB_SPOT_VCPUS, region=region)


def _bucket_args(settings: Settings, bucket: str) -> dict:
    if settings.AWS_REGION == "us-east-1":  # S3 rejects a location constraint naming us-east-1
        return {"Bucket": bucket}
    return {"Bucket": bucket,
            "CreateBucketConfiguration": {"LocationConstraint": settings.AWS_REGION}}


def private_subnet(ec2, nat: bool = True) -> tuple[str, str]:
    """A subnet without public IPs whose route table sends 0.0.0.0/0 through a NAT gateway (or, with
    nat=False, has no way out), and a security group in its VPC: what start-cluster's checks expect."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    if nat:
        public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        gateway = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=gateway)
        ec2.associate_route_table(RouteTableId=table, SubnetId=private)
    group = ec2.create_security_group(GroupName="dsr-local-workers", Description="local mode workers",
                                      VpcId=vpc)["GroupId"]
    return private, group


REWRITTEN = ("IamInstanceProfile", "SubnetId", "security groups", "and any ImageId or IamFleetRole")


def localize_fleet(fleet: FleetFile, account: Account, path: Path) -> FleetFile:
    """A copy of `fleet` for the emulated account, written to `path` (shown to the user)."""
    config = fleet.copy_config()
    if "IamFleetRole" in config:
        config["IamFleetRole"] = account.fleet_role_arn
    for spec in config["LaunchSpecifications"]:
        if "ImageId" in spec:  # none: the emulator's latest ECS-optimized AMI, from its SSM parameter as on AWS
            spec["ImageId"] = account.image_id
        spec["IamInstanceProfile"] = {"Arn": account.instance_profile_arn}
        if "SubnetId" in spec or not spec.get("NetworkInterfaces"):
            spec["SubnetId"] = account.subnet_id
        if "SecurityGroups" in spec:
            spec["SecurityGroups"] = [{"GroupId": account.security_group_id}]
        for interface in spec.get("NetworkInterfaces", []):
            interface["SubnetId"] = account.subnet_id
            if "Groups" in interface:
                interface["Groups"] = [account.security_group_id]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return parse_fleet_document(config, str(path))
