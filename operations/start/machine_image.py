"""Which AMI the fleet's machines boot: the latest ECS-optimized Amazon Linux 2023 AMI by default, and a warning when
a fleet file pins one that has gone stale.

DS's fleet file pins an ImageId, and a pinned ECS AMI goes stale (an old ECS agent and Docker, no security fixes;
DCP #161, DS #60). AWS publishes the current ECS-optimized AMI ids as public SSM parameters, one per variant, so
reading the parameter at start-cluster gives each run the newest one ("Retrieving Amazon ECS-optimized Linux AMI
metadata", Amazon ECS Developer Guide:
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

from chalicelib.model.errors import PreflightError

_AL2023 = "/aws/service/ecs/optimized-ami/amazon-linux-2023"
# (architecture, GPUs asked) -> the parameter naming the recommended AMI. AWS publishes the GPU variant (NVIDIA
# drivers and the container toolkit the ECS agent uses for GPU resource requirements) for x86_64 only.
ECS_AMI_PARAMETERS = {
    ("x86_64", False): f"{_AL2023}/recommended/image_id",
    ("arm64", False): f"{_AL2023}/arm64/recommended/image_id",
    ("x86_64", True): f"{_AL2023}/gpu/recommended/image_id",
}
# An ECS AMI older than this has missed several agent and security releases (AWS publishes new ones every few
# weeks): worth a warning, not a refusal, since the user may pin it on purpose.
STALE_AFTER_DAYS = 90
HOW_TO_GET_THE_CURRENT_ONE = ("leave ImageId out of the fleet file and start-cluster uses the latest ECS-optimized "
                              "Amazon Linux 2023 AMI from AWS's public SSM parameters")


@dataclass(frozen=True)
class EcsImage:
    image_id: str
    parameter: str  # the SSM parameter it was read from, so the user can see where the AMI came from

    def __str__(self) -> str:
        return f"{self.image_id}, the latest ECS-optimized AMI ({self.parameter})"


def latest_ecs_ami(ssm: SSMClient, architecture: str, gpu: bool) -> EcsImage:
    """The recommended ECS-optimized Amazon Linux 2023 AMI for `architecture` ("x86_64" or "arm64"), the GPU
    variant when `gpu`."""
    parameter = ECS_AMI_PARAMETERS.get((architecture, gpu))
    if parameter is None:
        raise PreflightError(f"GPUS_PER_TASK: AWS publishes the ECS GPU-optimized AMI for x86_64 machines only, but "
                             f"the instance types are {architecture}; choose x86_64 GPU types (g4dn, g5, g6, p...) "
                             "in MACHINE_TYPE or leave MACHINE_TYPE empty")
    try:
        value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            raise
        raise PreflightError(f"no ECS-optimized AMI is published in this region (SSM parameter {parameter} not "
                             "found); set ImageId in the fleet file") from None
    return EcsImage(image_id=value, parameter=parameter)


def image_age_warning(ec2: EC2Client,
image_id: str, now: datetime.datetime) -> str | None:
    """One line when the pinned AMI is deprecated or older than STALE_AFTER_DAYS, else None. An AMI that EC2 does
    not know is None here: start-cluster's preflight reports that one."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if error.response["Error"]["Code"].startswith("InvalidAMIID"):
            return None
        raise
    if not images:
        return None
    image = images[0]
    created = _timestamp(image.get("CreationDate"))
    deprecated = _timestamp(image.get("DeprecationTime"))
    age = (now - created).days if created else None
    is_deprecated = deprecated is not None and deprecated <= now
    if not is_deprecated and (age is None or age <= STALE_AFTER_DAYS):
        return None
    name = f" ({image['Name']})" if image.get("Name") else ""
    old = f"{age} days old" if age is not None else "of unknown age"
    state = f"deprecated since {deprecated:%Y-%m-%d} and {old}" if is_deprecated else old
    return f"fleet file ImageId {image_id}{name} is {state}: {HOW_TO_GET_THE_CURRENT_ONE}"


def _timestamp(text: str | None) -> datetime.datetime | None:
    """EC2 writes both dates as ISO 8601 text in UTC ("2024-02-21T06:12:40.000Z")."""
    if not text:
        return None
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
