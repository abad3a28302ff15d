"""observe(run) -> Observation: read the run's world from AWS, change nothing.

Every list is paginated and every name is matched exactly (DS matches ECS
clusters by suffix and reads one page of alarms). A resource that is gone is
an observation ("does not exist"), not an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from chalicelib import failures, leases
from chalicelib.awsapi import QueueDepth, fleet_state, queue_depth
from chalicelib.aws import DASHBOARD_MISSING, OBJECT_MISSING, QUEUE_MISSING, error_code
from chalicelib.monitor import ownership
from chalicelib.aws import Clients
from chalicelib.names import claim_key, instance_alarm_pattern, monitor_state_key, summary_key
from chalicelib.resources import ecs_tag_map
from chalicelib.monitor.observation import Instance, MonitorState, Observation, Policy
from chalicelib.runrecord import RunRecord

# An export AWS refused to start is kept in the monitor's state as this prefix + the error code.
FAILED_EXPORT_PREFIX = "failed:"
_EXPORT_STATUS = {"COMPLETED": "done", "FAILED": "failed", "CANCELLED": "failed", "PENDING": "running",
                  "RUNNING": "running", "PENDING_CANCEL": "running"}


@dataclass(frozen=True)
class Run:
    """A run as the monitor knows it: the record start-cluster wrote, where it was found, and the monitor's state.

    `bucket` and `key` are where the record was read, never what it says of itself: a record copied into
    another bucket or key is refused (ownership.record_problem) instead of steering writes elsewhere.
    """

    record: RunRecord
    state: MonitorState
    bucket: str
    key: str

    @property
    def app_name(self) -> str:
        return self.record.MONITOR_APP_NAME

    @property
    def state_key(self) -> str:
        return monitor_state_key(self.app_name)

    @property
    def summary_key(self) -> str:
        return summary_key(self.app_name)

    def policy(self) -> Policy:
        record = self.record
        return Policy(cluster_machines=record.CLUSTER_MACHINES, tasks_per_machine=record.TASKS_PER_MACHINE,
                      docker_cores=record.DOCKER_CORES, machine_price=record.MACHINE_PRICE, cheapest=record.CHEAPEST,
                      max_run_hours=record.MAX_RUN_HOURS, max_run_cost=record.MAX_RUN_COST,
                      clean_dashboard=record.CLEAN_DASHBOARD)


def observe(run: Run, clients: Clients, now: float | None = None) -> Observation:
    record = run.record
    now = time.time() if now is None else now
    problem = ownership.record_problem(record, run.bucket, run.key)
    if problem:
        # Nothing the record names is read or touched: it is not what start-cluster writes.
        return refused_observation(run, now, "run record refused: " + problem)
    queue = queue_depth(clients.sqs, record.QUEUE_URL)
    fleet = fleet_state(clients.ec2, record.MONITOR_FLEET_ID)
    service = _service(clients.ecs, record.MONITOR_ECS_CLUSTER, record.SERVICE_NAME)
    problems = [
        queue and ownership.tag_problem("queue", record.MONITOR_QUEUE_NAME, _queue_tags(clients.sqs, record.QUEUE_URL),
                                        run.app_name),
        fleet and ownership.tag_problem("spot fleet", record.MONITOR_FLEET_ID, fleet.tags, run.app_name),
        service["exists"] and ownership.tag_problem("ECS service", record.SERVICE_NAME, service["tags"], run.app_name),
    ]
    refused = "; ".join(problem for problem in problems if problem)
    if refused:
        return refused_observation(run, now, refused)
    fleet_live = bool(fleet and fleet.live)
    instances = _instances(clients, run, fleet_live, now)
    cluster = _cluster(clients, record.MONITOR_ECS_CLUSTER, service["exists"], run.app_name)
    log_groups = (record.MONITOR_LOG_GROUP_NAME, record.PER_INSTANCE_LOG_GROUP)
    exports, export_busy = _exports(clients.logs, run.state)
    return Observation(
        app_name=run.app_name, now=now, started_at=record.MONITOR_START_TIME / 1000, state=run.state,
        queue_url=record.QUEUE_URL, queue_exists=queue is not None,
        visible=queue.waiting if queue else 0, in_flight=queue.in_flight if queue else 0,
        dead_letter=_waiting(queue_depth(clients.sqs, record.DEAD_LETTER_QUEUE_URL)),
        failed=failures.count(clients.s3, run.bucket, run.app_name,
                              since=datetime.fromtimestamp(record.MONITOR_START_TIME / 1000, timezone.utc)),
        jobs_at_start=record.JOBS_AT_START,
        fleet_id=record.MONITOR_FLEET_ID, fleet_active=fleet_live, fleet_target=fleet.target if fleet_live else 0,
        fleet_fulfilled=fleet.fulfilled if fleet_live else 0.0, instances=instances,
        cluster=record.MONITOR_ECS_CLUSTER, cluster_exists=cluster["exists"], cluster_owned=cluster["owned"],
        cluster_in_use_by_others=cluster["in_use"], service=record.SERVICE_NAME, service_exists=service["exists"],
        service_desired=service["desired"], task_definition_arns=_task_definitions(clients.ecs, record.TASK_FAMILY),
        alarm_names=_alarms(clients.cloudwatch, record), queue_alarm_names=tuple(record.ALARM_NAMES),
        instance_alarm_prefix=record.INSTANCE_ALARM_PREFIX, dashboard_name=record.DASHBOARD_NAME,
        dashboard_exists=_dashboard_exists(clients.cloudwatch, record.DASHBOARD_NAME),
        bucket=run.bucket, log_groups=log_groups, exported_logs_prefix=record.EXPORTED_LOGS_PREFIX,
        foreign_log_groups=_foreign_log_groups(clients.logs, log_groups, run) if run.state.tearing_down else (),
        export_status=exports, export_running_in_account=export_busy,
        summary_key=run.summary_key, summary_exists=_object_exists(clients.s3, run.bucket, run.summary_key),
        record_keys=(run.key, run.state_key, claim_key(run.app_name)),
    )


def _waiting(depth: QueueDepth | None) -> int:
    return depth.waiting if depth else 0


def refused_observation(run: Run, now: float, reason: str) -> Observation:
    """A run the monitor will not act on: only what the record says, and why it is refused."""
    record = run.record
    return Observation(app_name=run.app_name, now=now, started_at=record.MONITOR_START_TIME / 1000, state=run.state,
                       queue_url=record.QUEUE_URL, queue_exists=False, visible=0, in_flight=0, dead_letter=0,
                       jobs_at_start=record.JOBS_AT_START, fleet_id=record.MONITOR_FLEET_ID, fleet_active=False,
                       fleet_target=0, fleet_fulfilled=0.0, bucket=run.bucket, refused=reason)


def _queue_tags(sqs, url: str) -> dict[str, str]:
    try:
        return sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    except ClientError as error:  # only "queue is gone" is an answer
        if error_code(error) in QUEUE_MISSING:
            return {}
        raise


def _instances(clients: Clients, run: Run, fleet_active: bool, now: float) -> tuple[Instance, ...]:
    ec2 = clients.ec2
    filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    if fleet_active:
        ids = [item["InstanceId"] for page in ec2.get_paginator("describe_spot_fleet_instances").paginate(
            SpotFleetRequestId=run.record.MONITOR_FLEET_ID) for item in page.get("ActiveInstances", ())]
        if not ids:
            return ()
        kwargs = {"InstanceIds": ids, "Filters": filters}
    else:
        # A cancelled fleet no longer lists its machines; its tag still finds any that survived.
        kwargs = {"Filters": filters + [{"Name": "tag:aws:ec2spot:fleet-request-id",
                                         "Values": [run.record.MONITOR_FLEET_ID]}]}
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
        for reservation in page["Reservations"]:
            found.extend(reservation["Instances"])
    if not found:
        return ()
    busy = leases.busy_jobs_by_instance(clients.s3, run.bucket, run.app_name, datetime.fromtimestamp(now, timezone.utc))
    return tuple(sorted((Instance(instance["InstanceId"], instance["LaunchTime"].timestamp(),
                                  busy.get(instance["InstanceId"], 0)) for instance in found),
                        key=lambda instance: instance.instance_id))


def _service(ecs, cluster: str, service: str) -> dict:
    try:
        services = ecs.describe_services(cluster=cluster, services=[service], include=["TAGS"])["services"]
    except ClientError as error:
        if error_code(error) == "ClusterNotFoundException":
            return {"exists": False, "desired": 0, "tags": {}}
        raise
    active = [item for item in services if item["serviceName"] == service and item.get("status") == "ACTIVE"]
    return {"exists": bool(active), "desired": active[0]["desiredCount"] if active else 0,
            "tags": ecs_tag_map(active[0]) if active else {}}


def _cluster(clients: Clients, cluster: str, our_service_exists: bool, app_name: str) -> dict:
    found = [item for item in clients.ecs.describe_clusters(clusters=[cluster], include=["TAGS"])["clusters"]
             if item["clusterName"] == cluster and item.get("status") == "ACTIVE"]
    if not found:
        return {"exists": False, "in_use": False, "owned": False}
    other_services = found[0].get("activeServicesCount", 0) - (1 if our_service_exists else 0)
    return {"exists": True, "in_use": other_services > 0 or _has_live_container_instances(clients, cluster),
            "owned": ownership.tag_problem("ECS cluster", cluster, ecs_tag_map(found[0]), app_name) is None}


def _has_live_container_instances(clients: Clients, cluster: str) -> bool:
    arns = []
    for page in clients.ecs.get_paginator("list_container_instances").paginate(cluster=cluster, status="ACTIVE"):
        arns.extend(page["containerInstanceArns"])
    if not arns:
        return False
    ids = []
    for start in range(0, len(arns), 100):
        described = clients.ecs.describe_container_instances(cluster=cluster, containerInstances=arns[start:start + 100])
        ids.extend(item["ec2InstanceId"] for item in described["containerInstances"] if item.get("ec2InstanceId"))
    if not ids:
        return False
    pages = clients.ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-id", "Values": ids},
                 {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return any(page["Reservations"] for page in pages)


def _task_definitions(ecs, family: str) -> tuple[str, ...]:
    arns = []
    for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE"):
        # familyPrefix is a prefix: "AppTask" also lists "AppTask2"; keep the exact family only
        arns.extend(arn for arn in page["taskDefinitionArns"] if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family)
    return tuple(arns)


def _alarms(cloudwatch, record: RunRecord) -> tuple[str, ...]:
    names = set()
    paginator = cloudwatch.get_paginator("describe_alarms")
    exact = instance_alarm_pattern(record.MONITOR_APP_NAME)
    for page in paginator.paginate(AlarmNamePrefix=record.INSTANCE_ALARM_PREFIX + "i-"):
        # the prefix of run 'Run' also lists run 'Run_i-x''s alarms: keep exactly Run_<instance id>
        names.update(alarm["AlarmName"] for alarm in page["MetricAlarms"] if exact.fullmatch(alarm["AlarmName"]))
    if record.ALARM_NAMES:
        for page in paginator.paginate(AlarmNames=list(record.ALARM_NAMES)):
            names.update(alarm["AlarmName"] for alarm in page["MetricAlarms"])
    return tuple(sorted(names))


def _foreign_log_groups(logs, groups: tuple[str, ...], run: Run) -> tuple[str, ...]:
    """Log groups that exist but are not the run's (another run made them): never exported by this run."""
    foreign = []
    for group in groups:
        try:
            tags = logs.list_tags_log_group(logGroupName=group).get("tags", {})
        except ClientError as error:  # a missing group is not foreign: its export fails on its own
            if error_code(error) == "ResourceNotFoundException":
                continue
            raise
        if ownership.tag_problem("log group", group, tags, run.app_name):
            foreign.append(group)
    return tuple(foreign)


def _dashboard_exists(cloudwatch, name: str | None) -> bool:
    if not name:
        return False
    try:
        cloudwatch.get_dashboard(DashboardName=name)
    except ClientError as error:
        if error_code(error) in DASHBOARD_MISSING:
            return False
        raise
    return True


def _exports(logs, state: MonitorState) -> tuple[dict, bool]:
    """Our export tasks' status, and whether the account runs one now; only teardown exports, so no call before."""
    if not state.tearing_down:
        return {}, False
    status = {}
    for group, task_id in state.export_tasks.items():
        if task_id.startswith(FAILED_EXPORT_PREFIX):
            status[group] = "failed"
            continue
        try:
            tasks = logs.describe_export_tasks(taskId=task_id)["exportTasks"]
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
            tasks = []
        status[group] = _EXPORT_STATUS.get(tasks[0]["status"]["code"], "running") if tasks else "missing"
    return status, any(_export_tasks_with_status(logs, code) for code in ("PENDING", "RUNNING"))


def _export_tasks_with_status(logs, code: str) -> list[dict]:
    pages = logs.get_paginator("describe_export_tasks").paginate(statusCode=code)
    # filtered again here: moto ignores statusCode and returns every task
    return [task for page in pages for task in page.get("exportTasks", ()) if task.get("status", {}).get("code") == code]


def _object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in OBJECT_MISSING:
            return False
        raise
    return True
