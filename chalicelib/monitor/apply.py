"""apply(actions): the only monitor code that writes to AWS. One call per action where AWS allows.

Each handler tolerates what is already done (a deleted queue, a cancelled
fleet), so a reconcile that crashed half-way is finished by the next one, and
two reconciles of one run at once end in the same state. An action type
without a handler is a bug: `apply` raises on it. The monitor state is written
only over the one the run was read with (state_store.py): when another writer
changed it since, `apply` stops there with StateChanged, before acting on a
plan made from what is no longer so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws import (
    DASHBOARD_MISSING,
    OBJECT_MISSING,
    QUEUE_MISSING,
    Clients,
    cloudwatch,
    ec2,
    ecs,
    error_code,
    logs,
    s3,
    sqs,
)
from chalicelib.model.names import failure_journal_prefix, status_key
from chalicelib.monitor import state_store
from chalicelib.monitor.actions import (
    Action,
    CancelFleet,
    CreateIdleAlarms,
    DeleteAlarms,
    DeleteCluster,
    DeleteDashboard,
    DeleteLaunchTemplates,
    DeleteQueue,
    DeleteService,
    DeregisterTaskDefinitions,
    ExportLogs,
    RemoveRunRecord,
    SaveState,
    SetFleetCapacity,
    SetServiceCount,
    TerminateInstances,
    WriteSummary,
)
from chalicelib.monitor.idle_alarm import idle_alarm_request
from chalicelib.monitor.observation import MonitorState
from chalicelib.monitor.observe import FAILED_EXPORT_PREFIX, Run
from chalicelib.monitor.runs import removed_if_torn_down
from chalicelib.runfiles.leases import prefix as lease_prefix

_GONE = {
    *QUEUE_MISSING, *DASHBOARD_MISSING, *OBJECT_MISSING, "ServiceNotFoundException", "ServiceNotActiveException",
    "ClusterNotFoundException", "InvalidInstanceID.NotFound", "InvalidSpotFleetRequestId.NotFound",
    "InvalidFleetId.NotFound",
}
# ECS refuses to delete a cluster while anything is still draining: try again next tick.
_NOT_YET = {"ClusterContainsServicesException", "ClusterContainsContainerInstancesException",
            "ClusterContainsTasksException", "LimitExceededException"}


class UnknownAction(TypeError):
    pass


class NotYet(Exception):
    """An action the world moved under since the plan: not taken now; the next tick plans afresh."""


@dataclass(frozen=True)
class Applied:
    """What one `apply` did: the monitor state as last written, and the actions AWS answered "not yet"."""

    state: MonitorState
    skipped: tuple[tuple[Action, str], ...] = ()  # retried next tick


class Applier:
    """Carries out one run's actions. It keeps nothing between calls: the monitor state each `apply` starts
    from is the run's, and the state it wrote comes back in `Applied`."""

    def __init__(self, run: Run, clients: Clients):
        self.run = run
        self.clients = clients
        self._etag = run.state_etag  # of the state as last read or written: the condition of the next write
        # Handlers of actions that change the monitor state take it and return it as written.
        self._state_handlers: dict[type, Callable[[Any, MonitorState], MonitorState]] = {
            SaveState: self._save_state, ExportLogs: self._export_logs,
        }
        self._handlers: dict[type, Callable[[Any], None]] = {
            SetFleetCapacity: self._set_fleet_capacity, TerminateInstances: self._terminate,
            SetServiceCount: self._set_service_count, CreateIdleAlarms: self._create_idle_alarms,
            DeleteAlarms: self._delete_alarms,
            CancelFleet: self._cancel_fleet, DeleteService: self._delete_service,
            DeregisterTaskDefinitions: self._deregister, DeleteLaunchTemplates: self._delete_launch_templates,
            DeleteQueue: self._delete_queue,
            DeleteDashboard: self._delete_dashboard, DeleteCluster: self._delete_cluster,
            WriteSummary: self._write_summary, RemoveRunRecord: self._remove_record,
        }

    def apply(self, actions: list[Action]) -> Applied:
        state, self._etag = self.run.state, self.run.state_etag
        skipped: list[tuple[Action, str]] = []
        for action in actions:
            kind = type(action)
            if kind not in self._handlers and kind not in self._state_handlers:
                raise UnknownAction(f"no handler for action {kind.__name__}")
            try:
                if kind in self._state_handlers:
                    state = self._state_handlers[kind](action, state)
                else:
                    self._handlers[kind](action)
            except NotYet as why:
                skipped.append((action, str(why)))
            except ClientError as error:  # sorted below by what a retry would do
                code = error_code(error)
                if code in _GONE:
                    continue
                if code in _NOT_YET:
                    skipped.append((action, code))
                    continue
                raise
        return Applied(state, tuple(skipped))

    # ---- running
    def _set_fleet_capacity(self, action: SetFleetCapacity) -> None:
        ec2.set_fleet_target(self.clients.ec2, action.fleet_id, int(action.target))

    def _terminate(self, action: TerminateInstances) -> None:
        ec2.terminate(self.clients.ec2, action.instance_ids)

    def _set_service_count(self, action: SetServiceCount) -> None:
        ecs.set_service_count(self.clients.ecs, action.cluster, action.service, action.count)

    def _create_idle_alarms(self, action: CreateIdleAlarms) -> None:
        for instance_id in action.instance_ids:
            cloudwatch.put_alarm(self.clients.cloudwatch,
                                 idle_alarm_request(self.run.app_name, self.run.record.REGION, instance_id))

    def _delete_alarms(self, action: DeleteAlarms) -> None:
        cloudwatch.delete_alarms(self.clients.cloudwatch, action.names)

    def _save_state(self, action: SaveState, state: MonitorState) -> MonitorState:
        return self._put_state(state.updated(action.as_dict()))

    def _put_state(self, state: MonitorState) -> MonitorState:
        created = not self._etag
        self._etag = state_store.write(self.clients.s3, self.run.bucket, self.run.state_key, state, self._etag)
        # the run's first state, written after another writer's teardown removed the record since this reconcile
        # read it, would outlive the run (chaos seed 47); a later state's write is conditional on the one read, so
        # only this first one can come back
        if created and removed_if_torn_down(self.clients.s3, self.run, self.run.state_key):
            raise state_store.StateChanged(f"s3://{self.run.bucket}/{self.run.key} was removed (torn down) since it "
                                           "was read")
        return state

    # ---- teardown
    def _cancel_fleet(self, action: CancelFleet) -> None:
        ec2.delete_fleet(self.clients.ec2, action.fleet_id)

    def _delete_service(self, action: DeleteService) -> None:
        ecs.delete_service(self.clients.ecs, action.cluster, action.service)

    def _deregister(self, action: DeregisterTaskDefinitions) -> None:
        ecs.deregister_task_definitions(self.clients.ecs, action.arns)

    def _delete_launch_templates(self, action: DeleteLaunchTemplates) -> None:
        ec2.delete_launch_templates(self.clients.ec2, action.ids)

    def _delete_queue(self, action: DeleteQueue) -> None:
        # The plan saw the queue empty, but a teardown's actions before this one take seconds (chaos seed 59: the
        # Lambda's tick deleted a queue 6 s after its observe, with the jobs a `submit --append` had sent since):
        # read it again just before. SQS has no conditional delete; the window left is this one call's.
        depth = sqs.queue_depth(self.clients.sqs, action.queue_url)
        if depth is not None and depth.waiting + depth.in_flight:
            raise NotYet(f"the queue holds {depth.waiting + depth.in_flight} message(s) sent since the plan: kept")
        sqs.delete_queue(self.clients.sqs, action.queue_url)

    def _delete_dashboard(self, action: DeleteDashboard) -> None:
        cloudwatch.delete_dashboard(self.clients.cloudwatch, action.name)

    def _delete_cluster(self, action: DeleteCluster) -> None:
        ecs.delete_cluster(self.clients.ecs, action.cluster)

    def _export_logs(self, action: ExportLogs, state: MonitorState) -> MonitorState:
        try:
            task_id = logs.start_export(
                self.clients.logs, f"{self.run.app_name}-{action.log_group.strip('/').replace('/', '-')}"[:512],
                action.log_group, action.start_ms, action.end_ms, action.bucket, action.prefix)
        except ClientError as error:  # sorted: "not yet", or a failure that retrying will not fix
            code = error_code(error)
            if code == "LimitExceededException" or not code:
                raise  # another export is running (retried next tick), or not an AWS answer at all
            # A missing log group, or a bucket whose policy does not let CloudWatch Logs write: recorded
            # and reported in the summary, so the teardown still finishes instead of retrying for ever.
            task_id = FAILED_EXPORT_PREFIX + code
        # saved at once: a task started but not recorded would be started again next tick
        return self._put_state(state.updated({"export_tasks": {**state.export_tasks, action.log_group: task_id}}))

    def _write_summary(self, action: WriteSummary) -> None:
        body = (json.dumps(dict(action.summary), indent=2) + "\n").encode()
        s3.put_object(self.clients.s3, action.bucket, action.key, body, content_type="application/json")

    def _remove_record(self, action: RemoveRunRecord) -> None:
        keys = [*action.keys, status_key(self.run.app_name)]  # the status document (status_doc.py) with them
        # with the workers' busy leases and the failure journal (the failure records stay, for a later redrive)
        keys += [item.key for prefix in (lease_prefix(self.run.app_name), failure_journal_prefix(self.run.app_name))
                 for item in s3.list_objects(self.clients.s3, action.bucket, prefix)]
        # the record goes last: if anything before fails, the run is still watched
        ordered = [key for key in keys if key not in action.keys] + list(action.keys[::-1])
        s3.delete_objects(self.clients.s3, action.bucket, ordered)
