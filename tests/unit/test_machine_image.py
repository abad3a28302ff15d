"""The fleet's AMI: AWS's current ECS-optimized Amazon Linux 2023 AMI by default, and a warning for a stale pin."""

import datetime

import boto3
import pytest

from chalicelib.model.errors import PreflightError
from operations.start.machine_image import EcsImage, image_age_warning, latest_ecs_ami

REGION = "us-east-1"
AL2023 = "/aws/service/ecs/optimized-ami/amazon-linux-2023"


@pytest.fixture
def ec2(aws):
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def ssm(aws):
    return boto3.client("ssm", region_name=REGION)


@pytest.mark.parametrize("architecture,gpu,parameter,name_part", [
    ("x86_64", False, f"{AL2023}/recommended/image_id", "al2023-ami-ecs-hvm-"),
    ("arm64", False, f"{AL2023}/arm64/recommended/image_id", "al2023-ami-ecs-hvm-"),
    ("x86_64", True, f"{AL2023}/gpu/recommended/image_id", "al2023-ami-ecs-gpu-hvm-"),
])
def test_the_latest_ami_is_the_one_aws_recommends_for_the_architecture(ssm, ec2, architecture, gpu, parameter,
                                                                      name_part):
    image = latest_ecs_ami(ssm, architecture, gpu)
    assert image == EcsImage(image_id=ssm.get_parameter(Name=parameter)["Parameter"]["Value"], parameter=parameter)
    [described] = ec2.describe_images(ImageIds=[image.image_id])["Images"]
    assert described["Architecture"] == architecture
    assert described["Name"].startswith(name_part) and described["Name"].endswith(architecture + ("-ebs" * gpu))


def test_gpus_on_arm64_machines_are_refused_as_aws_publishes_no_such_ecs_ami(ssm):
    with pytest.raises(PreflightError) as refused:
        latest_ecs_ami(ssm, "arm64", True)
    assert refused.value.exit_code == 2
    assert str(refused.value).startswith("GPUS_PER_TASK: AWS publishes the ECS GPU-optimized AMI for x86_64 machines "
                                         "only, but the instance types are arm64")


def _pinned_image(ec2) -> tuple[str, datetime.datetime]:
    image_id = ec2.register_image(Name="my-ecs-ami-2024", RootDeviceName="/dev/xvda", Architecture="x86_64",
                                  VirtualizationType="hvm")["ImageId"]
    created = ec2.describe_images(ImageIds=[image_id])["Images"][0]["CreationDate"]
    return image_id, datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))


ADVICE = ("leave ImageId out of the fleet file and start-cluster uses the latest ECS-optimized Amazon Linux 2023 AMI "
          "from AWS's public SSM parameters")


def test_a_pinned_ami_older_than_90_days_is_a_warning_naming_its_age(ec2):
    image_id, created = _pinned_image(ec2)
    assert image_age_warning(ec2, image_id, created + datetime.timedelta(days=90, hours=23)) is None
    assert image_age_warning(ec2, image_id, created + datetime.timedelta(days=200)) == (
        f"fleet file ImageId {image_id} (my-ecs-ami-2024) is 200 days old: {ADVICE}")


def test_a_deprecated_pinned_ami_is_a_warning_naming_when_and_its_age(ec2):
    image_id, created = _pinned_image(ec2)
    deprecate_at = created + datetime.timedelta(days=2)
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=deprecate_at)
    assert image_age_warning(ec2, image_id, created + datetime.timedelta(days=1)) is None  # not yet
    assert image_age_warning(ec2, image_id, created + datetime.timedelta(days=3, hours=1)) == (
        f"fleet file ImageId {image_id} (my-ecs-ami-2024) is deprecated since {deprecate_at:%Y-%m-%d} and 3 days "
        f"old: {ADVICE}")


def test_a_current_ami_or_one_ec2_does_not_know_gives_no_warning(ec2, ssm):
    now = datetime.datetime.now(datetime.UTC)
    assert image_age_warning(ec2, latest_ecs_ami(ssm, "x86_64", False).image_id, now) is None
    assert image_age_warning(ec2, "ami-0123456789abcdef0", now) is None  # preflight reports an unknown AMI
