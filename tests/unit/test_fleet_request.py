"""The pure parts of start-cluster: DS's overwrites, instance fit, the run record's JSON."""

import base64
import dataclasses
import datetime
import json

import botocore.session
import pytest
from botocore.validate import ParamValidator

from chalicelib.monitor.output_rule import OutputRule
from chalicelib.monitor.runrecord import RunRecord
from operations.start.cluster import fit_problem, fleet_request, launch_choices, usable_memory_mib
from operations.start.fleet import parse_fleet_document
from tests.conftest import make_settings

FLEET = {
    "_comment": "dropped",
    "IamFleetRole": "arn:aws:iam::123456789012:role/fleet",
    "LaunchSpecifications": [{
        "ImageId": "ami-0123456789abcdef0", "KeyName": "old",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
                                {"DeviceName": "/dev/xvdcz", "Ebs": {"VolumeSize": 22}}],
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": "subnet-1", "AssociatePublicIpAddress": True}],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "old"},
                                                                   {"Key": "team", "Value": "lab"}]}],
    }],
}
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


def _request(fleet, settings, versions, token):
    """CreateFleet's arguments for the run's launch template lt-1 at `versions`, as start-cluster builds them."""
    return fleet_request(fleet, settings, NOW, "lt-1", versions, launch_choices(fleet, settings), token)


def test_times_are_timezone_aware_utc_and_valid_for_a_year():
    config = _request(parse_fleet_document(FLEET), make_settings(), ["1"], "token")
    assert config["ValidFrom"] == datetime.datetime(2026, 1, 2, 1, 4, 5, tzinfo=datetime.UTC)
    assert config["ValidFrom"].tzinfo is datetime.UTC
    assert config["ValidUntil"] - config["ValidFrom"] == datetime.timedelta(days=365)


def test_overwrites_and_tags():
    settings = make_settings(MACHINE_TYPE=["m5.large", "c5.xlarge"], EBS_VOL_SIZE=40, CLUSTER_MACHINES=7,
                             MACHINE_PRICE=0.25)
    config = _request(parse_fleet_document(FLEET), settings, ["3"], "claim-token")
    assert "_comment" not in config and "IamFleetRole" not in config
    assert (config["Type"], config["TargetCapacitySpecification"], config["ClientToken"]) == (
        "maintain", {"TotalTargetCapacity": 7, "DefaultTargetCapacityType": "spot"}, "claim-token")
    assert config["SpotOptions"] == {"AllocationStrategy": "price-capacity-optimized",
                                     "InstanceInterruptionBehavior": "terminate"}
    assert config["ExcessCapacityTerminationPolicy"] == "no-termination"
    # MACHINE_PRICE is the cost ceiling the monitor enforces, not a bid: no maximum price anywhere
    assert "MaxPrice" not in json.dumps(config, default=str) and "SpotPrice" not in json.dumps(config, default=str)
    assert config["LaunchTemplateConfigs"] == [
        {"LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "3"},
         "Overrides": [{"InstanceType": instance_type} for instance_type in ("m5.large", "c5.xlarge")]}]
    [choice] = launch_choices(parse_fleet_document(FLEET), settings)
    data = choice.data
    assert "InstanceType" not in data
    assert data["BlockDeviceMappings"][1]["Ebs"]["VolumeSize"] == 40
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 8
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is False
    assert data["TagSpecifications"] == [{"ResourceType": "instance", "Tags": [
        {"Key": "team", "Value": "lab"}, {"Key": "Name", "Value": "TestAppWorker"},
        {"Key": "dsr:app", "Value": "TestApp"}]}]
    assert "ECS_CLUSTER=default" in base64.b64decode(data["UserData"]).decode()
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                       "HttpEndpoint": "enabled"}
    assert config["TagSpecifications"] == [{"ResourceType": "fleet", "Tags": [{"Key": "dsr:app", "Value": "TestApp"}]}]
    assert FLEET["LaunchSpecifications"][0]["KeyName"] == "old"  # the file itself is not changed


@pytest.mark.parametrize("written,run", [
    ("diversified", "diversified"), ("capacityOptimized", "capacity-optimized"),
    ("lowest-price", "lowest-price"), ("priceCapacityOptimized", "price-capacity-optimized")])
def test_the_users_allocation_strategy_is_kept_in_ec2_fleet_spelling(written, run):
    fleet = parse_fleet_document({**FLEET, "AllocationStrategy": written})
    config = _request(fleet, make_settings(), ["1"], "t")
    assert config["SpotOptions"]["AllocationStrategy"] == run
    assert fleet.notes == []


def test_ds_example_lowest_price_runs_as_price_capacity_optimized_and_says_so():
    fleet = parse_fleet_document({**FLEET, "AllocationStrategy": "lowestPrice"})
    assert _request(fleet, make_settings(), ["1"], "t")["SpotOptions"]["AllocationStrategy"] == \
        "price-capacity-optimized"
    assert fleet.notes == ["fleet.json: AllocationStrategy: 'lowestPrice' (DS's example) is run as "
                           "'price-capacity-optimized', which AWS recommends for Spot (lowest price is interrupted "
                           "more often); write 'lowest-price' to keep it"]


def test_a_launch_specification_becomes_launch_template_data_and_overrides_ec2_accepts():
    """What varies per launch specification in a spot fleet (type, subnet, weight) is an override; the rest is one
    launch template version, in the shapes of the EC2 API (checked by botocore's validator). A launch
    specification's SpotPrice is no bid (start-cluster's MACHINE_PRICE decides)."""
    spec = {"ImageId": "ami-0123456789abcdef0", "SubnetId": "subnet-a, subnet-b", "SpotPrice": "0.2",
            "WeightedCapacity": 2, "AddressingType": "public",
            "SecurityGroups": [{"GroupId": "sg-1"}, {"GroupId": "sg-2"}],
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
                                    {"DeviceName": "/dev/xvdcz", "Ebs": {"VolumeSize": 22}}]}
    settings = make_settings(MACHINE_TYPE=["m5.large", "c5.xlarge"])
    fleet = parse_fleet_document({**FLEET, "LaunchSpecifications": [spec]})
    [choice] = launch_choices(fleet, settings)
    assert choice.data["SecurityGroupIds"] == ["sg-1", "sg-2"]
    assert not {"SubnetId", "SecurityGroups", "SpotPrice", "WeightedCapacity", "AddressingType",
                "InstanceType"} & set(choice.data)
    assert [(item["InstanceType"], item["SubnetId"]) for item in choice.overrides] == [
        ("m5.large", "subnet-a"), ("m5.large", "subnet-b"), ("c5.xlarge", "subnet-a"), ("c5.xlarge", "subnet-b")]
    assert all(item["WeightedCapacity"] == 2 and "MaxPrice" not in item for item in choice.overrides)
    model = botocore.session.get_session().get_service_model("ec2")
    validator = ParamValidator()
    for operation, params in (
            ("CreateLaunchTemplate",
             {"LaunchTemplateName": "TestAppLaunchTemplate", "LaunchTemplateData": choice.data}),
            ("CreateFleet", _request(fleet, settings, ["1"], "t"))):
        report = validator.validate(params, model.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("memory,usable", [(8192, 7700), (16384, 15400), (2048, 1792), (1024, 768)])
def test_memory_headroom_is_six_percent_and_at_least_256_mib(memory, usable):
    assert usable_memory_mib(memory) == usable


def test_the_example_config_fits_an_m5_xlarge_exactly_on_cpu():
    settings = make_settings(DOCKER_CORES=4, MEMORY=15000)
    assert fit_problem("m5.xlarge", 16384, 4, settings) is None
    assert fit_problem("m5.large", 8192, 2, settings).startswith("MACHINE_TYPE: m5.large leaves 7700 MiB")


def _record(**overrides) -> RunRecord:
    values = {
        "MONITOR_FLEET_ID": "sfr-1", "MONITOR_APP_NAME": "A", "MONITOR_ECS_CLUSTER": "default",
        "MONITOR_QUEUE_NAME": "AQueue", "MONITOR_BUCKET_NAME": "b", "MONITOR_LOG_GROUP_NAME": "A",
        "MONITOR_START_TIME": 1700000000000, "CLEAN_DASHBOARD": True, "REGION": "us-east-1", "QUEUE_URL": "u",
        "DEAD_LETTER_QUEUE_NAME": "d", "DEAD_LETTER_QUEUE_URL": "du", "SERVICE_NAME": "AService",
        "TASK_FAMILY": "ATask", "TASK_DEFINITION_ARN": "arn", "PER_INSTANCE_LOG_GROUP": "A_perInstance",
        "EXPORTED_LOGS_PREFIX": "exportedlogs/A/", "TOPIC_ARN": "t", "ALARM_NAMES": ("x", "y"),
        "INSTANCE_ALARM_PREFIX": "A_", "DASHBOARD_NAME": None,
        "ECS_CONFIG_KEY": "k", "MONITOR_FILE_KEY": "m", "INSTANCE_NAME_TAG": "AWorker", "CLUSTER_MACHINES": 2,
        "TASKS_PER_MACHINE": 3, "DOCKER_CORES": 1, "MACHINE_TYPE": ("m5.large",), "MACHINE_PRICE": 0.1,
        "CHEAPEST": False, "AUTO_MONITOR": True, "JOBS_AT_START": None}
    return RunRecord(**{**values, **overrides})


def test_the_run_record_round_trips_through_json():
    record = _record()
    assert RunRecord.from_json(record.to_json()) == record
    assert record.desired_tasks == 6


def test_the_run_record_reads_ds_string_spellings():
    text = _record().to_json().replace('"MONITOR_START_TIME": 1700000000000', '"MONITOR_START_TIME": "1700000000000"')
    text = text.replace('"CLEAN_DASHBOARD": true', '"CLEAN_DASHBOARD": "False"')
    record = RunRecord.from_json(text)
    assert (record.MONITOR_START_TIME, record.CLEAN_DASHBOARD) == (1700000000000, False)


def test_a_run_record_missing_keys_names_them():
    with pytest.raises(ValueError) as caught:
        RunRecord.from_json(_record().to_json().replace('"QUEUE_URL"', '"QUEUE_URLX"'))
    assert str(caught.value) == "run record: QUEUE_URL: missing, expected a string of at most 2,048 characters"


def test_a_run_record_from_before_ds_image_mode_was_recorded_reads_as_this_projects_worker():
    document = json.loads(_record(DS_IMAGE_MODE=True).to_json())
    assert RunRecord.from_dict(document).DS_IMAGE_MODE is True
    del document["DS_IMAGE_MODE"]
    assert RunRecord.from_dict(document).DS_IMAGE_MODE is False
    with pytest.raises(ValueError, match="run record: DS_IMAGE_MODE: expected true or false"):
        RunRecord.from_dict({**document, "DS_IMAGE_MODE": "yes"})


def test_a_run_record_keeps_the_output_rule_and_one_from_before_it_reads_without():
    rule = OutputRule.of_settings(make_settings(OUTPUT_PREFIX="out/{plate}", NECESSARY_STRING=".csv"))
    document = json.loads(_record(OUTPUTS=rule).to_json())
    assert rule == RunRecord.from_dict(document).OUTPUTS
    del document["OUTPUTS"]
    assert RunRecord.from_dict(document).OUTPUTS is None  # every dead-lettered job stays failed (output_rule.py)
    with pytest.raises(ValueError) as caught:
        RunRecord.from_dict({**document, "OUTPUTS": {**dataclasses.asdict(rule), "EXPECTED_NUMBER_FILES": 0}})
    assert str(caught.value).startswith("run record: OUTPUTS.EXPECTED_NUMBER_FILES: expected")
