"""Fleet files (DS's spot fleet format): parse and check them; start-cluster turns them into the run's launch
template and EC2 Fleet, merging in settings."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.model.errors import FleetFileError
from chalicelib.model.jsonfile import read_json_file

# DS sizes the second block device of each launch specification (the Docker
# data volume) with EBS_VOL_SIZE; the first is the root volume.
DATA_VOLUME_INDEX = 1
# What every machine's launch template sets: IMDSv2 only, and its answers travel one hop, so they reach the host
# (the ECS agent, the boot script) and never a bridge-networked container, one hop further.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"}
# AWS recommends price-capacity-optimized for Spot: the lowest-priced pools among those least likely to be
# interrupted ("Allocation strategies for Spot Instances", Amazon EC2 User Guide).
DEFAULT_ALLOCATION_STRATEGY = "price-capacity-optimized"
# A spot fleet file's spelling of each strategy -> EC2 Fleet's.
ALLOCATION_STRATEGIES = {"lowestPrice": "lowest-price", "diversified": "diversified",
                         "capacityOptimized": "capacity-optimized",
                         "capacityOptimizedPrioritized": "capacity-optimized-prioritized",
                         "priceCapacityOptimized": "price-capacity-optimized"}
# DS's example fleet file says lowestPrice, which AWS says "might lead to high interruption rates": a DS file
# saying it gets AWS's recommendation instead (with a note); EC2 Fleet's own spelling keeps lowest price.
DS_EXAMPLE_STRATEGY = "lowestPrice"


@dataclass(frozen=True)
class FleetFile:
    source: str
    config: dict[str, Any]  # the spot fleet request config as the user wrote it

    @property
    def allocation_strategy(self) -> str:
        given = self.config.get("AllocationStrategy")
        if given is None or given == DS_EXAMPLE_STRATEGY:
            return DEFAULT_ALLOCATION_STRATEGY
        strategy: str = ALLOCATION_STRATEGIES.get(given, given)
        return strategy

    @property
    def notes(self) -> list[str]:
        """What of the file start-cluster reads differently from DS, said once at start."""
        said = []
        if self.config.get("AllocationStrategy") == DS_EXAMPLE_STRATEGY:
            said.append(f"{self.source}: AllocationStrategy: 'lowestPrice' (DS's example) is run as "
                        f"'{DEFAULT_ALLOCATION_STRATEGY}', which AWS recommends for Spot (lowest price is interrupted "
                        "more often); write 'lowest-price' to keep it")
        return said

    @property
    def launch_specifications(self) -> list[dict[str, Any]]:
        specifications: list[dict[str, Any]] = self.config["LaunchSpecifications"]
        return specifications

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
    strategy = document.get("AllocationStrategy")
    if strategy is not None and strategy not in {*ALLOCATION_STRATEGIES, *ALLOCATION_STRATEGIES.values()}:
        raise FleetFileError(f"{source}: AllocationStrategy: expected one of "
                             f"{', '.join(sorted(ALLOCATION_STRATEGIES.values()))} (or the spot fleet spellings "
                             f"{', '.join(sorted(ALLOCATION_STRATEGIES))}), got {_show(strategy)}")
    if "LaunchTemplateConfigs" in document:
        raise FleetFileError(f"{source}: LaunchTemplateConfigs: not supported; give LaunchSpecifications "
                             "(start-cluster makes the run's launch template from them)")
    specs = document.get("LaunchSpecifications")
    if not isinstance(specs, list) or not specs:
        raise FleetFileError(f"{source}: LaunchSpecifications: expected a non-empty list of launch specifications")
    for index, spec in enumerate(specs):
        where = f"{source}: LaunchSpecifications[{index}]"
        if not isinstance(spec, dict):
            raise FleetFileError(f"{where}: expected an object")
        image = spec.get("ImageId")
        if image is not None and not (isinstance(image, str) and image.startswith("ami-")):
            raise FleetFileError(f"{where}: ImageId: expected an ECS-optimized AMI id like ami-0123456789abcdef0, "
                                 f"or no ImageId for the latest one, got {_show(image)}")
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
