"""observe(run) -> Observation: read the run's world from AWS, change nothing.

Every list is paginated and every name is matched exactly (DS matches ECS
clusters by suffix and reads one page of alarms). A resource that is gone is
an observation ("does not exist"), not an error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.aws import Clients
from chalicelib.aws.cloudwatch import alarm_names, dashboard_exists
from chalicelib.aws.ec2 import FleetState, fleet_instance_ids, fleet_state, live_machines, tagged_launch_template_ids
from chalicelib.aws.ecs import cluster_machine_ids, ecs_cluster, ecs_service, task_definition_arns
from chalicelib.aws.logs import export_running_in_account, export_task_code, log_group_tags
from chalicelib.aws.s3 import object_exists
from chalicelib.aws.sqs import QueueDepth, queue_depth, queue_tags
from chalicelib.aws.tagging import tagged_alarm_names
from chalicelib.model.names import RUN_TAG, claim_key, instance_alarm_pattern, monitor_state_key, summary_key
from chalicelib.monitor import failed as failed_jobs
from chalicelib.monitor import ownership
from chalicelib.monitor.breaker import failed_job, failures_trip
from chalicelib.monitor.failure_tally import FailureTallies
from chalicelib.monitor.fleet_words import fleet_problems
from chalicelib.monitor.observation import (
    ExportStatus,
    FailedJob,
    Instance,
    MonitorState,
    Observation,
    Policy,
    jobs_done,
)
from chalicelib.monitor.runrecord import RunRecord
from chalicelib.runfiles import failures, leases

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client

# An export AWS refused to start is kept in the monitor's state as this prefix + the error code.
FAILED_EXPORT_PREFIX = "failed:"
_EXPORT_STATUS: dict[str, ExportStatus] = {
    "COMPLETED": "done", "FAILED": "failed", "CANCELLED": "failed", "PENDING": "running", "RUNNING": "running",
    "PENDING_CANCEL": "running"}


@dataclass(frozen=True)
class Run:
    """A run as the monitor knows it: the record start-cluster wrote, where it was found, and the monitor's state.

    `bucket` and `key` are where the record was read, never what it says of itself: a record copied into
    another bucket or key is refused (ownership.record_problem) instead of steering writes elsewhere.
    `state_etag` is the ETag of the state as read (None: there was none), the condition of the state's next
    write (state_store.py).
    """

    record: RunRecord
    state: MonitorState
    bucket: str
    key: str
    state_etag: str | None = None

    @property
    def app_name(self) -> str:
        return self.record.MONITOR_APP_NAME

    @property
    def identity(self) -> tuple[str, str, int]:
        """What the Lambda's memory of a run is kept by (steady.py, budget.py, failure_tally.py): where its record was
        found, and when it started (a run started again under its name is a new one)."""
        return self.bucket, self.key, self.record.MONITOR_START_TIME

    @property
    def state_key(self) -> str:
        return monitor_state_key(self.app_name)

    @property
    def jobs_submitted(self) -> int | None:
        """The jobs sent to the run: those queued when start-cluster counted them, and those `submit` sent since
        (None: an adopted run whose count is unknown)."""
        if self.record.JOBS_AT_START is None:
            return None
        return self.record.JOBS_AT_START + self.state.jobs_appended

    @property
    def summary_key(self) -> str:
        return summary_key(self.app_name)

    def policy(self) -> Policy:
        record = self.record
        return Policy(cluster_machines=record.CLUSTER_MACHINES, tasks_per_machine=record.TASKS_PER_MACHINE,
                      docker_cores=record.DOCKER_CORES, machine_price=record.MACHINE_PRICE, cheapest=record.CHEAPEST,
                      max_run_hours=record.MAX_RUN_HOURS, max_run_cost=record.MAX_RUN_COST,
                      clean_dashboard=record.CLEAN_DASHBOARD, stop_after_failed_jobs=record.STOP_AFTER_FAILED_JOBS,
                      stop_if_no_job_starts_minutes=record.STOP_IF_NO_JOB_STARTS_MINUTES)


@dataclass(frozen=True)
class Pulse:
    """observe's first two reads, the queue's depth and the fleet's state: what a steady tick reads of a converged
    run (steady.py). None when AWS no longer knows it."""

    queue: QueueDepth | None
    fleet: FleetState | None


def read_pulse(run: Run, clients: Clients, fleets: Mapping[str, FleetState] | None = None) -> Pulse | None:
    """The run's pulse, or None (nothing read) for a record observe refuses. `fleets`: the region's fleets as one
    listing found them this tick (ec2.all_fleet_states), else the run's own fleet is asked for."""
    if ownership.record_problem(run.record, run.bucket, run.key):
        return None
    fleet_id = run.record.MONITOR_FLEET_ID
    return Pulse(queue_depth(clients.sqs, run.record.QUEUE_URL),
                 fleets.get(fleet_id) if fleets is not None else fleet_state(clients.ec2, fleet_id))


def observe(run: Run, clients: Clients, now: float | None = None, pulse: Pulse | None = None,
            tallies: FailureTallies | None = None) -> Observation:
    """`pulse`: its first two reads when the caller has just made them (read_pulse), else they are made here.
    `tallies`: the Lambda's failure tallies (failure_tally.py), else the run's failure records are counted fully."""
    record = run.record
    now = time.time() if now is None else now
    problem = ownership.record_problem(record, run.bucket, run.key)
    if problem:
        # Nothing the record names is read or touched: it is not what start-cluster writes.
        return refused_observation(run, now, "run record refused: " + problem)
    if pulse is None:
        pulse = Pulse(queue_depth(clients.sqs, record.QUEUE_URL), fleet_state(clients.ec2, record.MONITOR_FLEET_ID))
    queue, fleet = pulse.queue, pulse.fleet
    tags = queue_tags(clients.sqs, record.QUEUE_URL) if queue else None
    if tags is None:
        # Deleted since its depth was read (another's teardown at this moment): gone, as the next tick would find it,
        # not a queue without the run's tag (chaos seed 246: `cli.py monitor` ended on that refusal).
        queue = None
    service = ecs_service(clients.ecs, record.MONITOR_ECS_CLUSTER, record.SERVICE_NAME)
    problems = [
        tags is not None and ownership.tag_problem("queue", record.MONITOR_QUEUE_NAME, tags, run.app_name),
        fleet and ownership.tag_problem("fleet", record.MONITOR_FLEET_ID, fleet.tags, run.app_name),
        service and ownership.tag_problem("ECS service", record.SERVICE_NAME, service.tags, run.app_name),
    ]
    refused = "; ".join(problem for problem in problems if problem)
    if refused:
        return refused_observation(run, now, refused)
    live_fleet = fleet if fleet is not None and fleet.live else None
    fleet_live = live_fleet is not None
    instances = _instances(clients, run, fleet_live, now)
    cluster = _cluster(clients, record.MONITOR_ECS_CLUSTER, service is not None, run.app_name)
    log_groups = (record.MONITOR_LOG_GROUP_NAME, record.PER_INSTANCE_LOG_GROUP)
    since = datetime.fromtimestamp(record.MONITOR_START_TIME / 1000, UTC)
    failed = _failed_count(clients.s3, run, queue, since, tallies)
    # an adopted DS run whose queue has no redrive policy has no dead-letter queue to count
    dead_letters = queue_depth(clients.sqs, record.DEAD_LETTER_QUEUE_URL) if record.DEAD_LETTER_QUEUE_URL else None
    failed_exact = True
    # In flight too: another reader's sweep (another run's teardown, `failed`) hides them for a few seconds. Only
    # once the run's machines are gone: the sweep can take TEARDOWN_SWEEP_SECONDS, and the tick that cancels the fleet
    # must not wait for it while the machines go on taking jobs (chaos seed 134: 42 more jobs ran after a user's
    # teardown); the summary waits for the machines anyway (plan.py), and jobs still running may yet be dead-lettered.
    if (run.state.tearing_down and not fleet_live and not instances and dead_letters
            and dead_letters.waiting + dead_letters.in_flight):
        failed, failed_exact = _failed_at_teardown(clients, run, since)
    exports, export_busy = _exports(clients.logs, run.state)
    return Observation(
        app_name=run.app_name, now=now, started_at=record.MONITOR_START_TIME / 1000, state=run.state,
        queue_url=record.QUEUE_URL, queue_exists=queue is not None,
        visible=queue.waiting if queue else 0, in_flight=queue.in_flight if queue else 0,
        dead_letter=_waiting(dead_letters),
        failed=failed, failed_exact=failed_exact, failed_jobs=_failed_jobs(clients.s3, run, queue, failed, since),
        jobs_at_start=run.jobs_submitted,
        fleet_id=record.MONITOR_FLEET_ID, fleet_active=fleet_live, fleet_target=live_fleet.target if live_fleet else 0,
        fleet_fulfilled=live_fleet.fulfilled if live_fleet else 0.0, instances=instances,
        fleet_problems=(_fleet_problems(clients, live_fleet, now, since) if live_fleet and not run.state.tearing_down
                        else ()),
        cluster=record.MONITOR_ECS_CLUSTER, cluster_exists=cluster.exists, cluster_owned=cluster.owned,
        cluster_in_use_by_others=cluster.in_use, service=record.SERVICE_NAME, service_exists=service is not None,
        service_desired=service.desired if service else 0,
        task_definition_arns=task_definition_arns(clients.ecs, record.TASK_FAMILY),
        launch_template_ids=tagged_launch_template_ids(clients.ec2, RUN_TAG, run.app_name),
        alarm_names=_alarms(clients, record, run.state.tearing_down), queue_alarm_names=tuple(record.ALARM_NAMES),
        instance_alarm_prefix=record.INSTANCE_ALARM_PREFIX, dashboard_name=record.DASHBOARD_NAME,
        dashboard_exists=bool(record.DASHBOARD_NAME
                              and dashboard_exists(clients.cloudwatch, record.DASHBOARD_NAME)),
        bucket=run.bucket, log_groups=log_groups, exported_logs_prefix=record.EXPORTED_LOGS_PREFIX,
        foreign_log_groups=_foreign_log_groups(clients.logs, log_groups, run) if run.state.tearing_down else (),
        export_status=exports, export_running_in_account=export_busy,
        summary_key=run.summary_key, summary_exists=object_exists(clients.s3, run.bucket, run.summary_key),
        record_keys=(run.key, run.state_key, claim_key(run.app_name)),
    )


# How far back a short fleet's history is read: its recent errors say why it is short now.
FLEET_HISTORY_SECONDS = 3600


def _fleet_problems(clients: Clients, fleet: FleetState, now: float, started: datetime) -> tuple[str, ...]:
    """Why the fleet has fewer machines than its target (or reports an error), from its recent history; nothing
    read while it has what it asks for. The run goes on with the machines it has."""
    if fleet.activity != "error" and fleet.fulfilled >= fleet.target:
        return ()
    since = max(started, datetime.fromtimestamp(now - FLEET_HISTORY_SECONDS, UTC))
    return tuple(fleet_problems(clients.ec2, fleet.fleet_id, since, machine_price=fleet.spot_price))


# Failure records read to name a failing run's common cause: enough to tell "all" from "most".
FAILED_JOBS_SAMPLE = 50


def _failed_jobs(s3: S3Client, run: Run, queue: QueueDepth | None, failed: int,
                 since: datetime) -> tuple[FailedJob, ...]:
    """The run's failed jobs, read only when the failure breaker trips now (its records are a GET each: not on
    every tick of a run that merely has some failures)."""
    if run.state.tearing_down or not _trips(run, queue, failed):
        return ()
    return tuple(failed_job(record)
                 for record in failures.list_records(s3, run.bucket, run.app_name, since, FAILED_JOBS_SAMPLE))


def _failed_count(s3: S3Client, run: Run, queue: QueueDepth | None, since: datetime,
                  tallies: FailureTallies | None) -> int:
    if tallies is None:
        return failures.count(s3, run.bucket, run.app_name, since=since)
    failed = tallies.count(s3, run, since, exact=run.state.tearing_down)
    if not run.state.tearing_down and _trips(run, queue, failed):
        return tallies.count(s3, run, since, exact=True)  # the breaker stops a run only on its records, counted
    return failed


# How long one teardown tick looks at the dead-letter queue: a shared queue may hold many runs' messages, and
# the tick has other work; what was not read is read on the next tick (the summary is written last).
TEARDOWN_SWEEP_SECONDS = 20
# And how long it lists the outputs of the dead-lettered jobs with no failure record (failed.not_done); jobs not
# listed by then count as failed, and the summary waits for a tick that lists them all, as for the sweep.
TEARDOWN_DONE_CHECK_SECONDS = 20


def _failed_at_teardown(clients: Clients, run: Run, since: datetime) -> tuple[int, bool]:
    """The run's failed jobs for its summary, while it tears down and its dead-letter queue holds messages: its failure
    records and the jobs SQS moved from its queue to the dead-letter queue that have none (failed.py's rule, as
    `cli.py failed` lists them). In DS image mode those messages are all there is: the image's worker writes no
    record, and the summary counted a run whose jobs all failed as done (chaos seed 2). Their ids, not their count:
    a job can have both. With whether the queue was read whole: other runs ending at once sweep the shared queue
    too, and a sweep that met their held messages until its time ran out may have seen none of this run's (chaos
    seeds 47, 50, 52: a DS run's summary said 0 failed of 5)."""
    record = run.record
    dead_lettered = failed_jobs.dead_letter_failures(clients.sqs, record.DEAD_LETTER_QUEUE_URL, run.app_name,
                                                     record.MONITOR_QUEUE_NAME, clients.s3, run.bucket,
                                                     seconds=TEARDOWN_SWEEP_SECONDS)
    recorded = frozenset() if record.DS_IMAGE_MODE else failures.job_ids(clients.s3, run.bucket, run.app_name, since)
    left = failed_jobs.unrecorded(clients.s3, record.OUTPUTS, dead_lettered, recorded,
                                  seconds=TEARDOWN_DONE_CHECK_SECONDS)
    return len(recorded | {job.job_id for job in left.records}), left.complete


def _trips(run: Run, queue: QueueDepth | None, failed: int) -> bool:
    """Whether `failed` failed jobs trip the run's failure breaker now (breaker.py)."""
    waiting, in_flight = (queue.waiting, queue.in_flight) if queue else (0, 0)
    done = jobs_done(run.jobs_submitted, waiting, in_flight, failed, run.state.jobs_done_seen)
    return failures_trip(failed, done, run.record.STOP_AFTER_FAILED_JOBS)


def _waiting(depth: QueueDepth | None) -> int:
    return depth.waiting if depth else 0


def refused_observation(run: Run, now: float, reason: str) -> Observation:
    """A run the monitor will not act on: only what the record says, and why it is refused."""
    record = run.record
    return Observation(app_name=run.app_name, now=now, started_at=record.MONITOR_START_TIME / 1000, state=run.state,
                       queue_url=record.QUEUE_URL, queue_exists=False, visible=0, in_flight=0, dead_letter=0,
                       jobs_at_start=run.jobs_submitted, fleet_id=record.MONITOR_FLEET_ID, fleet_active=False,
                       fleet_target=0, fleet_fulfilled=0.0, bucket=run.bucket, refused=reason)


def _instances(clients: Clients, run: Run, fleet_active: bool, now: float) -> tuple[Instance, ...]:
    if fleet_active:
        machines = live_machines(clients.ec2, fleet_instance_ids(clients.ec2, run.record.MONITOR_FLEET_ID))
    else:  # a cancelled fleet no longer lists its machines; its tag still finds any that survived
        machines = live_machines(clients.ec2, fleet_id=run.record.MONITOR_FLEET_ID)
    if not machines:
        return ()
    if run.record.DS_IMAGE_MODE:
        # the image's own worker holds no lease: whether a machine runs a job is unknown, so the monitor never stops
        # one (it would kill a job mid-way); the machines' idle alarms release them, as in DS
        return tuple(Instance(machine.instance_id, machine.launched_at, None) for machine in machines)
    busy = leases.busy_jobs_by_instance(clients.s3, run.bucket, run.app_name, datetime.fromtimestamp(now, UTC))
    return tuple(Instance(machine.instance_id, machine.launched_at, busy.get(machine.instance_id, 0))
                 for machine in machines)


@dataclass(frozen=True)
class _ClusterView:
    exists: bool = False
    owned: bool = False
    in_use: bool = False


def _cluster(clients: Clients, name: str, our_service_exists: bool, app_name: str) -> _ClusterView:
    cluster = ecs_cluster(clients.ecs, name)
    if cluster is None:
        return _ClusterView()
    other_services = cluster.active_services - (1 if our_service_exists else 0)
    in_use = other_services > 0 or bool(live_machines(clients.ec2, cluster_machine_ids(clients.ecs, name)))
    return _ClusterView(exists=True, in_use=in_use,
                        owned=ownership.tag_problem("ECS cluster", name, cluster.tags, app_name) is None)


def _alarms(clients: Clients, record: RunRecord, tearing_down: bool) -> tuple[str, ...]:
    """The run's alarms: its machine alarms and queue alarms by their exact names; while it is torn down, also every
    alarm carrying its tag (what the monitor and start-cluster make), so that none is left behind. A running run's
    plan needs only the machine alarms (which machine lacks one, which belong to gone machines), and the tag lookup
    pages through every one of them (GetResources, 50 a page on AWS): 21 calls a look at 1,000 machines. The first
    teardown tick plans from this shorter list, and the record stays until a later one (the log exports wait a
    tick at least) has deleted the tagged rest."""
    exact = instance_alarm_pattern(record.MONITOR_APP_NAME)
    # the prefix of run 'Run' also lists run 'Run_i-x''s alarms: keep exactly Run_<instance id>
    instance_alarms = {name for name in alarm_names(clients.cloudwatch, prefix=record.INSTANCE_ALARM_PREFIX + "i-")
                       if exact.fullmatch(name)}
    queue_alarms = alarm_names(clients.cloudwatch, names=tuple(record.ALARM_NAMES)) if record.ALARM_NAMES else ()
    tagged = (tagged_alarm_names(clients.resourcegroupstaggingapi, RUN_TAG, record.MONITOR_APP_NAME) if tearing_down
              else ())
    return tuple(sorted(instance_alarms.union(queue_alarms, tagged)))


def _foreign_log_groups(logs: CloudWatchLogsClient, groups: tuple[str, ...], run: Run) -> tuple[str, ...]:
    """Log groups that exist but are not the run's (another run made them): never exported by this run.
    A missing group is not foreign: its export fails on its own."""
    foreign = []
    for group in groups:
        tags = log_group_tags(logs, group)
        if tags is not None and ownership.tag_problem("log group", group, tags, run.app_name):
            foreign.append(group)
    return tuple(foreign)


def _exports(logs: CloudWatchLogsClient, state: MonitorState) -> tuple[dict[str, ExportStatus], bool]:
    """Our export tasks' status, and whether the account runs one now; only teardown exports, so no call before."""
    if not state.tearing_down:
        return {}, False
    status: dict[str, ExportStatus] = {}
    for group, task_id in state.export_tasks.items():
        if task_id.startswith(FAILED_EXPORT_PREFIX):
            status[group] = "failed"
            continue
        code = export_task_code(logs, task_id)
        status[group] = "missing" if code is None else _EXPORT_STATUS.get(code, "running")
    return status, export_running_in_account(logs)
