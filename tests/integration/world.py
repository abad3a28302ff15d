"""A fake AWS account ready for a run, a snapshot of everything a run touches, and the helpers that drive a
run's life (drain it, reconcile it, read what is left). The fixtures built on them are in conftest.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path

from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.aws.ec2 import LIVE_FLEET_STATES, fleet_instance_ids, fleet_machine_tag, fleet_state
from chalicelib.model import names
from chalicelib.model.names import record_key
from chalicelib.monitor import runrecord, service
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.reconcile import reconcile
from chalicelib.monitor.runs import load_run
from localrun.account import private_subnet, raise_spot_quotas
from operations.setup import iam, resources
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


def untagged_fleet(fleet_path: Path) -> str:
    """A one-machine spot fleet requested straight from a fleet file, with no run's tag: what no run made."""
    fleet_file = json.loads(Path(fleet_path).read_text())
    config = {key: value for key, value in fleet_file.items() if "_comment" not in key}
    config.update(TargetCapacity=1, AllocationStrategy="lowestPrice", SpotPrice="0.1")
    for spec in config["LaunchSpecifications"]:
        spec["InstanceType"] = "m5.large"
    return clients.client("ec2", region=REGION).request_spot_fleet(SpotFleetRequestConfig=config)["SpotFleetRequestId"]


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
        raise_spot_quotas(REGION)
        resources.setup(self.settings)
        self.subnet = make_subnet(nat)
        self.fleet_path = write_fleet(folder, self.roles.fleet_role_arn, self.roles.instance_profile_arn,
                                      self.subnet)


def as_previous_version_run(account) -> str:
    """Make a just-started run one that the previous version started, and return its fleet's id: its EC2 Fleet
    gives way to the spot fleet request that version made (operations/start/cluster.py `fleet_request` at commit
    a4c80ab:
    RequestSpotFleet naming the run's launch template version with one override per instance type and subnet,
    TargetCapacity CLUSTER_MACHINES, SpotPrice MACHINE_PRICE, AllocationStrategy lowestPrice, the run's tag on
    the request, the fleet file's IamFleetRole), and the run record (same format then) names that fleet."""
    s = account.settings
    ec2, s3 = clients.client("ec2", s), clients.client("s3", s)
    record = runrecord.get(s3, s.AWS_BUCKET, names.record_key(s.APP_NAME))
    [fleet] = ec2.describe_fleets(FleetIds=[record.MONITOR_FLEET_ID])["Fleets"]
    ec2.delete_fleets(FleetIds=[record.MONITOR_FLEET_ID], TerminateInstances=True)
    configs = [{"LaunchTemplateSpecification": config["LaunchTemplateSpecification"], "Overrides": [override]}
               for config in fleet["LaunchTemplateConfigs"] for override in config["Overrides"]]
    spot_fleet = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": account.roles.fleet_role_arn, "TerminateInstancesWithExpiration": True,
        "TargetCapacity": s.CLUSTER_MACHINES, "SpotPrice": f"{s.MACHINE_PRICE:g}", "AllocationStrategy": "lowestPrice",
        "TagSpecifications": [{"ResourceType": "spot-fleet-request",
                               "Tags": [{"Key": names.RUN_TAG, "Value": s.APP_NAME}]}],
        "LaunchTemplateConfigs": configs})["SpotFleetRequestId"]
    runrecord.put(s3, dataclasses.replace(record, MONITOR_FLEET_ID=spot_fleet))
    return spot_fleet


def interrupt_one_machine(account) -> str:
    """End one of the run's machines as a spot interruption does, and return its id. The fleet is then short of
    its target (AWS's maintain fleet would launch a replacement in time; moto's launches none until modified)."""
    ec2 = clients.client("ec2")
    fleet_id = the_run(account).record.MONITOR_FLEET_ID
    machine = sorted(fleet_instance_ids(ec2, fleet_id))[0]
    ec2.terminate_instances(InstanceIds=[machine])
    return machine


def aws_session():
    return clients.session(REGION, None)


def datetime_text(value):
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
    world["fleets"] = (ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"]
                       + [{key: value for key, value in fleet.items() if key != "ActivityStatus"}
                          for fleet in ec2.describe_fleets()["Fleets"]])
    world["roles"] = {role["RoleName"]: (role, iam_client.list_role_policies(RoleName=role["RoleName"])["PolicyNames"])
                      for role in iam_client.list_roles()["Roles"]}
    world["instance_profiles"] = iam_client.list_instance_profiles()["InstanceProfiles"]
    return world


# ---- a run's life, as the monitor tests drive it (fixtures in conftest.py)

JOBS = 12


def the_run(account):
    return load_run(clients.client("s3"), account.settings.AWS_BUCKET, record_key(account.settings.APP_NAME))


def drain(account, count=None):
    """Take messages off the queue as workers that finished their jobs would."""
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=account.settings.SQS_QUEUE_NAME)["QueueUrl"]
    taken = 0
    while count is None or taken < count:
        wanted = 10 if count is None else min(10, count - taken)
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=wanted).get("Messages", [])
        if not messages:
            break
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            taken += 1
    return taken


def fail_every_job(account, limit=100):
    """As workers that fail every job would: each message received, never deleted, until SQS moves it to the
    dead-letter queue after JOB_RETRIES receives. No failure record is written (a DS image's worker writes none)."""
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=account.settings.SQS_QUEUE_NAME)["QueueUrl"]
    for _ in range(limit):
        if not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
            return
    raise AssertionError(f"{account.settings.SQS_QUEUE_NAME} still holds jobs after {limit} receives")


def reconcile_until_gone(account, limit=10):
    ticks = []
    for _ in range(limit):
        run = the_run(account)
        if run is None:
            return ticks
        ticks.append(reconcile(run))
    raise AssertionError(f"run not torn down after {limit} reconciles: {[t.actions for t in ticks]}")


def what_is_left(account) -> dict:
    s = account.settings
    sqs, ec2, ecs = clients.client("sqs"), clients.client("ec2"), clients.client("ecs")
    cloudwatch, s3 = clients.client("cloudwatch"), clients.client("s3")
    running = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]]
    return {
        "queues": sorted(url.rsplit("/", 1)[1] for url in sqs.list_queues().get("QueueUrls", [])),
        "fleets": live_fleets(ec2),
        "running_instances": running,
        "services": [svc["serviceName"] for svc in ecs.describe_services(
            cluster="runs", services=[s.service_name])["services"] if svc["status"] == "ACTIVE"]
        if ecs.describe_clusters(clusters=["runs"])["clusters"] else [],
        "clusters": [c["clusterName"] for c in ecs.describe_clusters(clusters=["runs"])["clusters"]
                     if c["status"] == "ACTIVE"],
        "task_definitions": ecs.list_task_definitions(familyPrefix=s.task_family,
                                                      status="ACTIVE")["taskDefinitionArns"],
        "launch_templates": run_launch_templates(ec2, s.APP_NAME),
        "alarms": [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]],
        "dashboards": [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]],
        "monitor_objects": sorted(item["Key"] for item in s3.list_objects_v2(
            Bucket=s.AWS_BUCKET, Prefix="monitors/").get("Contents", [])),
        "exported": sorted({item["Key"].split("/")[2] for item in s3.list_objects_v2(
            Bucket=s.AWS_BUCKET, Prefix="exportedlogs/").get("Contents", []) if item["Key"].count("/") >= 3}),
    }


def live_fleets(ec2) -> list[str]:
    """Ids of the fleets of either kind (EC2 Fleet, spot fleet request) that have or will have machines."""
    return ([f["FleetId"] for f in ec2.describe_fleets()["Fleets"] if f["FleetState"] in LIVE_FLEET_STATES]
            + [f["SpotFleetRequestId"] for f in ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"]
               if f["SpotFleetRequestState"] in LIVE_FLEET_STATES])


def run_launch_templates(ec2, app_name: str) -> list[str]:
    """Names of the launch templates carrying the run's tag."""
    return sorted(template["LaunchTemplateName"] for template in ec2.describe_launch_templates(
        Filters=[{"Name": f"tag:{names.RUN_TAG}", "Values": [app_name]}])["LaunchTemplates"])


# the record, the monitor's state and the start claim are gone
AFTER_TEARDOWN = ["monitors/finished/TestApp_summary.json"]

NOTHING_LEFT = {
    "queues": ["user_DeadMessages"], "fleets": [], "running_instances": [], "services": [], "clusters": [],
    "task_definitions": [], "launch_templates": [], "alarms": [], "dashboards": [],
    "monitor_objects": AFTER_TEARDOWN, "exported": ["TestApp", "TestApp_perInstance"],
}


# ---- a second run beside it, and forged records

BUCKET = "test-bucket"


def victim_world(victim) -> dict:
    """What must survive any forged record: read back from moto."""
    s = victim.settings
    ec2, sqs, ecs = clients.client("ec2"), clients.client("sqs"), clients.client("ecs")
    cloudwatch, logs, s3 = clients.client("cloudwatch"), clients.client("logs"), clients.client("s3")
    record = load_run(s3, BUCKET, record_key("Victim")).record
    fleet = fleet_state(ec2, record.MONITOR_FLEET_ID)
    return {
        "fleet": (fleet.state, fleet.target),
        "running": sorted(i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
            {"Name": f"tag:{fleet_machine_tag(record.MONITOR_FLEET_ID)}", "Values": [record.MONITOR_FLEET_ID]},
        ])["Reservations"]
            for i in r["Instances"]),
        "queue": sqs.get_queue_url(QueueName=s.SQS_QUEUE_NAME)["QueueUrl"],
        "service": [(svc["status"], svc["desiredCount"]) for svc in ecs.describe_services(
            cluster="victims", services=[s.service_name])["services"]],
        "cluster": [c["status"] for c in ecs.describe_clusters(clusters=["victims"])["clusters"]],
        "task_definitions": ecs.list_task_definitions(familyPrefix=s.task_family,
                                                      status="ACTIVE")["taskDefinitionArns"],
        "launch_templates": run_launch_templates(ec2, s.APP_NAME),
        "alarms": sorted(a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]
                         if "Victim" in a["AlarmName"]),
        "log_groups": sorted(g["logGroupName"]
                             for g in logs.describe_log_groups(logGroupNamePrefix="Victim")["logGroups"]),
        "exports": logs.describe_export_tasks()["exportTasks"],
        "exported": s3.list_objects_v2(Bucket=BUCKET, Prefix="exportedlogs/").get("KeyCount", 0),
    }


def forge(evil_name: str, victim_record, **changes) -> str:
    """A record for run `evil_name` that names the victim's fleet, queue, cluster and log group, as a job could
    write it if it could write monitors/ (the task role cannot: tests/integration/test_task_role_enforced.py)."""
    fields = json.loads(victim_record.to_json())
    fields.update({
        "MONITOR_APP_NAME": evil_name, "MONITOR_FILE_KEY": names.record_key(evil_name),
        "SERVICE_NAME": evil_name + "Service", "TASK_FAMILY": evil_name + "Task",
        "INSTANCE_ALARM_PREFIX": evil_name + "_", "ECS_CONFIG_KEY": f"ecsconfigs/{evil_name}_ecs.config",
        "INSTANCE_NAME_TAG": evil_name + "Worker", "DASHBOARD_NAME": evil_name, "ALARM_NAMES": [], **changes})
    key = names.record_key(evil_name)
    s3 = clients.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(fields).encode())
    # and the monitor's state says "tear it down now": the most destructive path at once
    s3.put_object(Bucket=BUCKET, Key=names.monitor_state_key(evil_name),
                  Body=json.dumps({"tearing_down": True, "stop_reason": "forged"}).encode())
    return key


def reconcile_everything(times: int = 4):
    for _ in range(times):
        runs, _ = service.scan_buckets([BUCKET])
        service.reconcile_runs(runs)


class ConcurrentReconciles:
    """Reconciles of one run in threads, each with its own clients (as two Lambda invocations have), all held at a
    barrier before their first apply, so each has planned from what it read before any of them writes; one that
    reads again after a refused state write goes on. `extra_parties` are the test's own at the barrier (a teardown
    request made from the same read)."""

    def __init__(self, run_of: Callable, count: int = 2, extra_parties: int = 0):
        self.barrier = barrier = threading.Barrier(count + extra_parties, timeout=30)
        held: set[int] = set()

        class HeldOnce(Applier):
            def apply(self, actions):
                if threading.get_ident() not in held:
                    held.add(threading.get_ident())
                    barrier.wait()
                return super().apply(actions)

        self.outcomes: list = [None] * count

        def one(index: int) -> None:
            try:
                self.outcomes[index] = reconcile(run_of(), Clients(region="us-east-1"), applier=HeldOnce)
            except BaseException as error:  # noqa: BLE001 - the test's point: report anything that escapes
                self.outcomes[index] = error

        self.threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
        for thread in self.threads:
            thread.start()

    def results(self) -> list:
        """Each reconcile's result, once all have ended; none may have raised."""
        for thread in self.threads:
            thread.join(60)
        escaped = [outcome for outcome in self.outcomes if isinstance(outcome, BaseException) or outcome is None]
        assert not escaped, f"escaped a concurrent reconcile: {escaped!r}"
        return self.outcomes


MOTO_AMI = "ami-12c6146b"  # one of moto's stock images


def spot_fleet_of(ec2, name: str, machines: int) -> str:
    """An EC2 Fleet (maintain) of `machines` spot machines from a launch template `name`: moto launches them at once,
    each its own reservation, as a big fleet's are on AWS. Its id."""
    template = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": MOTO_AMI, "InstanceType": "m5.large"})
    return ec2.create_fleet(
        Type="maintain", TargetCapacitySpecification={"TotalTargetCapacity": machines,
                                                      "DefaultTargetCapacityType": "spot"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"}}])["FleetId"]
