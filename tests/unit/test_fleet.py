"""Fleet files: DS's format is checked before start-cluster touches AWS."""

import copy
import json
from pathlib import Path

import pytest

from chalicelib.model.errors import FleetFileError
from operations.start.fleet import load_fleet_file, parse_fleet_document

EXAMPLE = Path(__file__).parents[2] / "examples" / "fleet.json"


def example():
    return json.loads(EXAMPLE.read_text())


def test_the_example_fleet_file_loads():
    fleet = load_fleet_file(EXAMPLE)
    assert fleet.allocation_strategy == "price-capacity-optimized" and fleet.notes == []
    assert "ImageId" not in fleet.launch_specifications[0]  # the latest ECS-optimized AMI
    assert fleet.instance_profile_arns() == ["arn:aws:iam::123456789012:instance-profile/ecsInstanceRole"]
    copied = fleet.copy_config()
    copied["LaunchSpecifications"][0]["KeyName"] = "changed"
    assert fleet.launch_specifications[0]["KeyName"] == "your-key"


def test_a_ds_fleet_file_with_its_spot_fleet_role_and_a_pinned_ami_loads():
    """DS's files/exampleFleet_us-east-1.json keys: IamFleetRole (not used: an EC2 Fleet acts with its service-linked
    role), AllocationStrategy lowestPrice (run as price-capacity-optimized, with a note), a pinned ImageId."""
    document = {**example(), "IamFleetRole": "arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role",
                "AllocationStrategy": "lowestPrice", "TerminateInstancesWithExpiration": True}
    document["LaunchSpecifications"][0]["ImageId"] = "ami-0123456789abcdef0"
    fleet = parse_fleet_document(document)
    assert fleet.allocation_strategy == "price-capacity-optimized" and len(fleet.notes) == 1


def broken(change):
    document = copy.deepcopy(example())
    change(document)
    with pytest.raises(FleetFileError) as caught:
        parse_fleet_document(document, "fleet.json")
    return str(caught.value)


def test_rejections():
    assert broken(lambda d: d.update(AllocationStrategy="cheapest")) == (
        "fleet.json: AllocationStrategy: expected one of capacity-optimized, capacity-optimized-prioritized, "
        "diversified, lowest-price, price-capacity-optimized (or the spot fleet spellings capacityOptimized, "
        "capacityOptimizedPrioritized, diversified, lowestPrice, priceCapacityOptimized), got 'cheapest'")
    assert broken(lambda d: d.update(LaunchSpecifications=[])) == (
        "fleet.json: LaunchSpecifications: expected a non-empty list of launch specifications")
    assert broken(lambda d: d["LaunchSpecifications"][0].update(ImageId="ubuntu")) == (
        "fleet.json: LaunchSpecifications[0]: ImageId: expected an ECS-optimized AMI id like ami-0123456789abcdef0, "
        "or no ImageId for the latest one, got 'ubuntu'")
    assert broken(lambda d: d["LaunchSpecifications"][0]["BlockDeviceMappings"].pop()) == (
        "fleet.json: LaunchSpecifications[0]: BlockDeviceMappings: expected two block devices (root, then the data "
        "volume sized by EBS_VOL_SIZE)")
    assert broken(lambda d: d["LaunchSpecifications"][0]["BlockDeviceMappings"][1].pop("Ebs")) == (
        "fleet.json: LaunchSpecifications[0]: BlockDeviceMappings[1]: expected an object with an 'Ebs' object (the "
        "data volume sized by EBS_VOL_SIZE)")
    assert broken(lambda d: d["LaunchSpecifications"].append("x")) == (
        "fleet.json: LaunchSpecifications[1]: expected an object")
    assert broken(lambda d: d["LaunchSpecifications"][0].update(MetadataOptions={"HttpPutResponseHopLimit": True})) == (
        "fleet.json: LaunchSpecifications[0]: MetadataOptions: HttpPutResponseHopLimit: expected 1 (containers must "
        "not "
        "reach the instance metadata service), got True")
    assert broken(lambda d: d["LaunchSpecifications"][0].update(MetadataOptions={"HttpEndpoint": "disabled"})) == (
        "fleet.json: LaunchSpecifications[0]: MetadataOptions: HttpEndpoint: expected 'enabled' (containers must not "
        "reach the instance metadata service), got 'disabled'")
    assert broken(lambda d: d["LaunchSpecifications"][0].update(MetadataOptions="v2")) == (
        "fleet.json: LaunchSpecifications[0]: MetadataOptions: expected an object, got 'v2'")


def test_the_metadata_options_every_machine_gets_may_be_repeated():
    document = example()
    document["LaunchSpecifications"][0]["MetadataOptions"] = {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                                             "InstanceMetadataTags": "enabled"}
    assert parse_fleet_document(document).launch_specifications[0]["MetadataOptions"]["HttpTokens"] == "required"


def test_not_an_object(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text("[]")
    with pytest.raises(FleetFileError, match=r"fleet.json: expected a JSON object \(a spot fleet request config\), "
                                             r"got list$"):
        load_fleet_file(path)
