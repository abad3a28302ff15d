"""The run's EC2 launch template: what every machine of the run's EC2 Fleet is launched with.

Each launch specification of the (DS-format) fleet file, with start-cluster's overwrites, becomes a version of the
run's launch template: its AMI, instance profile, block devices, network, key, tags, user data and the instance
metadata options every machine gets (IMDSv2 only, hop limit 1). The fleet request names those versions in
LaunchTemplateConfigs; what varies per machine (the instance type, or the attributes AWS picks types by, the
subnet, a weight, a bid) is an override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.aws import error_code
from chalicelib.model import names
from chalicelib.model.errors import StartConflict
from chalicelib.model.settings import Settings
from operations.start.fleet import METADATA_OPTIONS

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client

# Parts of a spot fleet launch specification that are EC2 Fleet overrides instead of template data (SpotPrice is
# start-cluster's, from MACHINE_PRICE, as DS overwrites it).
OVERRIDE_KEYS = ("InstanceType", "WeightedCapacity")
NOT_TEMPLATE_DATA = (*OVERRIDE_KEYS, "SpotPrice", "SubnetId", "SecurityGroups")
# Deprecated and without a launch template counterpart.
DROPPED_KEYS = ("AddressingType",)


@dataclass(frozen=True)
class LaunchChoice:
    """One launch specification of the fleet file: the template version's data, and its overrides."""

    data: dict[str, Any]
    overrides: tuple[dict[str, Any], ...]


def launch_choice(spec: dict[str, Any], machines: list[dict[str, Any]], max_price: str | None) -> LaunchChoice:
    """`spec`: one fleet file launch specification with start-cluster's overwrites; `machines`: what each override
    says of the machine ({"InstanceType": ...} or {"InstanceRequirements": ...}); `max_price`: the Spot bid per
    machine-hour, or None for none (AWS's advice). The data takes everything but the overrides, and the metadata
    options every machine gets."""
    data = {key: value for key, value in spec.items() if key not in NOT_TEMPLATE_DATA + DROPPED_KEYS}
    groups = [group for group in spec.get("SecurityGroups") or [] if isinstance(group, dict)]
    if any("GroupId" in group for group in groups):
        data["SecurityGroupIds"] = [group["GroupId"] for group in groups if "GroupId" in group]
    elif groups:
        data["SecurityGroups"] = [group["GroupName"] for group in groups if "GroupName" in group]
    data["MetadataOptions"] = {**(data.get("MetadataOptions") or {}), **METADATA_OPTIONS}
    # A spot fleet launch specification may name several subnets, comma-separated: one override each.
    subnets: list[str | None] = [subnet.strip() for subnet in str(spec.get("SubnetId") or "").split(",")
                                 if subnet.strip()]
    shared = {key: spec[key] for key in OVERRIDE_KEYS if key in spec and key != "InstanceType"}
    if max_price is not None:
        shared["MaxPrice"] = max_price
    overrides = tuple({**machine, **shared, **({"SubnetId": subnet} if subnet else {})}
                      for machine in machines for subnet in (subnets or [None]))
    return LaunchChoice(data, overrides)


def launch_template_configs(template_id: str, versions: list[str],
                            choices: list[LaunchChoice]) -> list[dict[str, Any]]:
    return [{"LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": version},
             "Overrides": list(choice.overrides)}
            for version, choice in zip(versions, choices, strict=True)]


def save_versions(ec2: EC2Client, settings: Settings, choices: list[LaunchChoice],
                  changes: list[str]) -> tuple[str, list[str]]:
    """A new version of the run's launch template per choice (the template made, tagged as the run's, if missing);
    returns the template's id and the version numbers. A template of that name that is not the run's is refused."""
    name = names.launch_template(settings)
    template_id = _own_template_id(ec2, settings, name)
    versions = []
    for choice in choices:
        if template_id is None:
            try:
                made = ec2.create_launch_template(
                    LaunchTemplateName=name, **_template_data(choice),
                    TagSpecifications=[{"ResourceType": "launch-template",
                                        "Tags": [{"Key": names.RUN_TAG, "Value": settings.APP_NAME}]}])
            except ClientError as error:
                if error_code(error) != "InvalidLaunchTemplateName.AlreadyExistsException":
                    raise
                template_id = _own_template_id(ec2, settings, name)  # made since we looked: must still be ours
                if template_id is None:
                    raise StartConflict(f"launch template '{name}' was made and deleted by someone else while "
                                        "start-cluster made it; run start-cluster again") from None
            else:
                template_id = made["LaunchTemplate"]["LaunchTemplateId"]
                versions.append(str(made["LaunchTemplate"]["LatestVersionNumber"]))
                changes.append(f"created launch template {name}")
                continue
        version = ec2.create_launch_template_version(LaunchTemplateId=template_id,
                                                     **_template_data(choice))["LaunchTemplateVersion"]
        versions.append(str(version["VersionNumber"]))
    if template_id is None:
        raise ValueError("save_versions: no launch choice (a fleet file has at least one launch specification)")
    changes.append(f"saved launch template {name} version{'s' if len(versions) > 1 else ''} {', '.join(versions)} "
                   "(instance metadata: IMDSv2 only, hop limit 1)")
    return template_id, versions


def _template_data(choice: LaunchChoice) -> dict[str, Any]:
    # The fleet file's JSON as the user wrote it (EC2 checks it): not the stubs' RequestLaunchTemplateDataTypeDef,
    # whose Literals (instance types and the like) are what EC2 knew when the stubs were made.
    return {"LaunchTemplateData": choice.data}


def _own_template_id(ec2: EC2Client, settings: Settings, name: str) -> str | None:
    try:
        [template] = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    except ClientError as error:
        if error_code(error).startswith("InvalidLaunchTemplateName.NotFound"):
            return None
        raise
    tags = {tag["Key"]: tag["Value"] for tag in template.get("Tags", ())}
    if tags.get(names.RUN_TAG) != settings.APP_NAME:
        raise StartConflict(f"launch template '{name}' exists and is not run '{settings.APP_NAME}''s (no "
                            f"{names.RUN_TAG}={settings.APP_NAME} tag); delete or rename it, or choose another "
                            "APP_NAME")
    return template["LaunchTemplateId"]
