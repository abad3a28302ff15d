"""Spot fleet files (DS format): parse and check them; start-cluster merges in settings."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.errors import FleetFileError
from chalicelib.jsonfile import read_json_file

# DS sizes the second block device of each launch specification (the Docker
# data volume) with EBS_VOL_SIZE; the first is the root volume.
DATA_VOLUME_INDEX = 1
# What every machine's launch template sets: IMDSv2 only, and its answers travel one hop, so they reach the host
# (the ECS agent, the boot script) and never a bridge-networked container, one hop further.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"}


@dataclass(frozen=True)
class FleetFile:
    source: str
    config: dict[str, Any]  # the spot fleet request config as the user wrote it

    @property
    def iam_fleet_role(self) -> str:
        return self.config["IamFleetRole"]

    @property
    def launch_specifications(self) -> list[dict[str, Any]]:
        return self.config["LaunchSpecifications"]

    def instance_profile_arns(self) -> list[str]:
        arns = []
        for spec in self.launch_specifications:
            arn = (spec.get("IamInstanceProfile") or {}).get("Arn")
            if arn and arn not in arns:
                arns.append(arn)
        return arns

    def copy_config(self) -> dict[str, Any]:
        return copy.deepcopy(self.config)


def load_fleet_file(path: str | Path) -> FleetFile:
    return parse_fleet_document(read_json_file(path, FleetFileError), str(path))


def parse_fleet_document(document: Any, source: str = "fleet.json") -> FleetFile:
    if not isinstance(document, dict):
        raise FleetFileError(f"{source}: expected a JSON object (a spot fleet request config), "
                             f"got {type(document).__name__}")
    role = document.get("IamFleetRole")
    if not isinstance(role, str) or not role.startswith("arn:"):
        raise FleetFileError(f"{source}: IamFleetRole: expected the ARN of the spot fleet role "
                             "(python cli.py setup-account prints it), got " + _show(role))
    if "LaunchTemplateConfigs" in document:
        raise FleetFileError(f"{source}: LaunchTemplateConfigs: not supported; give LaunchSpecifications (start-cluster "
                             "makes the run's launch template from them)")
    specs = document.get("LaunchSpecifications")
    if not isinstance(specs, list) or not specs:
        raise FleetFileError(f"{source}: LaunchSpecifications: expected a non-empty list of launch specifications")
    for index, spec in enumerate(specs):
        where = f"{source}: LaunchSpecifications[{index}]"
        if not isinstance(spec, dict):
            raise FleetFileError(f"{where}: expected an object")
        image = spec.get("ImageId")
        if not isinstance(image, str) or not image.startswith("ami-"):
            raise FleetFileError(f"{where}: ImageId: expected an ECS-optimized AMI id like ami-0123456789abcdef0, "
                                 f"got {_show(image)}")
        devices = spec.get("BlockDeviceMappings")
        if not isinstance(devices, list) or len(devices) <= DATA_VOLUME_INDEX:
            raise FleetFileError(f"{where}: BlockDeviceMappings: expected two block devices (root, then the data "
                                 "volume sized by EBS_VOL_SIZE)")
        data = devices[DATA_VOLUME_INDEX]
        if not isinstance(data, dict) or not isinstance(data.get("Ebs"), dict):
            raise FleetFileError(f"{where}: BlockDeviceMappings[{DATA_VOLUME_INDEX}]: expected an object with an "
                                 "'Ebs' object (the data volume sized by EBS_VOL_SIZE)")
        profile = spec.get("IamInstanceProfile")
        if profile is not None and not (isinstance(profile, dict) and isinstance(profile.get("Arn"), str)):
            raise FleetFileError(f"{where}: IamInstanceProfile: expected an object with the instance profile 'Arn'")
        _check_metadata_options(spec.get("MetadataOptions"), f"{where}: MetadataOptions")
    return FleetFile(source=source, config=document)


def _check_metadata_options(options: Any, where: str) -> None:
    """A fleet file may repeat the options every machine gets, never weaken them: a hop limit above 1 or
    optional tokens hand the instance role's credentials to every container."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise FleetFileError(f"{where}: expected an object, got {_show(options)}")
    for key, wanted in METADATA_OPTIONS.items():
        if key in options and (options[key] != wanted or type(options[key]) is not type(wanted)):
            raise FleetFileError(f"{where}: {key}: expected {wanted!r} (containers must not reach the instance "
                                 f"metadata service), got {_show(options[key])}")


def _show(value: Any) -> str:
    return "nothing" if value is None else repr(value)
