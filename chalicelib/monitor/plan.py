"""The monitor's policy: `plan(observation, policy) -> [Action]`. Pure: it reads, it never writes.

Every rule compares what is wanted with what is, and emits an action only when
they differ, so a converged run plans nothing. Run order:

1. Bookkeeping: machines that appeared or vanished, consecutive empty ticks.
2. Stop conditions: the queue seen empty on two consecutive ticks, the circuit breakers (breaker.py),
   MAX_RUN_HOURS, MAX_RUN_COST.
3. Running: size the fleet to the jobs left, release machines that run no job,
   make each machine's idle alarm, delete alarms of machines that are gone.
4. Teardown (once started it goes on whatever the queue does), stop spending
   first: fleet, service, task definitions, launch templates, queue, alarms, dashboard, cluster,
   log export, then (once the exports are over) the summary, and the run record last.
"""

from __future__ import annotations

import math
from typing import Any

from chalicelib.model.names import exported_group_prefix, idle_alarm, instance_alarm_pattern
from chalicelib.monitor import breaker as breaker_rules
from chalicelib.monitor import series as run_series
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
from chalicelib.monitor.idle_alarm import INSTANCE_ID
from chalicelib.monitor.observation import Observation, Policy

EMPTY_TICKS_BEFORE_TEARDOWN = 2  # SQS counts are approximate; one empty look is not proof
CHEAPEST_AFTER_SECONDS = 15 * 60  # DS's cheapest mode: one machine after the first 15 minutes
REASON_DRAINED = "queue empty and no job in flight on two consecutive checks"
# How long a torn-down run's summary waits for a tick that reads the shared dead-letter queue whole (observe.py
# `_failed_at_teardown`): other runs' ends hold its messages for seconds at a time, not for this long; past it
# the summary is written with the count it has, marked not exact
EXACT_FAILED_WAIT_SECONDS = 15 * 60


def plan(observation: Observation, policy: Policy) -> list[Action]:
    if observation.refused:
        return []  # not provably this run's: nothing is touched (ownership.py); status and the log say why
    actions: list[Action] = []
    state_changes = _bookkeeping(observation)
    stop_reason = observation.state.stop_reason if observation.state.tearing_down else _stop_reason(
        observation, policy, state_changes)
    if stop_reason:
        if not observation.state.tearing_down:
            state_changes.update(tearing_down=True, stop_reason=stop_reason)
        if state_changes:
            actions.append(SaveState(**state_changes, reason=stop_reason))
        actions.extend(_teardown(observation, policy, stop_reason,
                                 state_changes.get("series", observation.state.series)))
        return actions
    if state_changes:
        actions.append(SaveState(**state_changes, reason=_state_reason(state_changes)))
    actions.extend(_scale(observation, policy))
    actions.extend(_missing_idle_alarms(observation, actions))
    actions.extend(_stale_instance_alarms(observation))
    return actions


# ---------------------------------------------------------------- bookkeeping and stop conditions


def _bookkeeping(observation: Observation) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    state = observation.state
    live = {instance.instance_id: instance.launched_at for instance in observation.instances}
    if live != state.known_instances:
        gone_seconds = sum(max(0.0, observation.now - launched) for instance_id, launched in
                           state.known_instances.items() if instance_id not in live)
        changes["known_instances"] = live
        if gone_seconds:
            changes["retired_machine_seconds"] = state.retired_machine_seconds + gone_seconds
    series = run_series.with_point(state.series, observation.now, len(observation.instances), observation.visible,
                                   observation.in_flight)
    if series is not None:
        changes["series"] = series
    if state.tearing_down:
        if not observation.failed_exact and state.failed_inexact_since is None:
            changes["failed_inexact_since"] = observation.now  # the summary's wait for an exact count starts
        return _with_done_seen(changes, observation)  # the queue no longer decides anything
    if not state.jobs_started and (observation.in_flight or observation.failed or observation.jobs_done):
        changes["jobs_started"] = True
    empty = observation.visible == 0 and observation.in_flight == 0
    count = state.empty_observations + 1 if empty else 0
    if count != state.empty_observations:
        changes["empty_observations"] = count
    return _with_done_seen(changes, observation)


def _with_done_seen(changes: dict[str, Any], observation: Observation) -> dict[str, Any]:
    """The jobs done so far, the floor of the next checks' count (chalicelib/monitor/counts.py), saved with the other
    changes: the count rises only when the queue's counts fall, which adds a point to the series, so a steady
    run still saves nothing."""
    if changes and observation.jobs_done > observation.state.jobs_done_seen:
        return {**changes, "jobs_done_seen": observation.jobs_done}
    return changes


def _stop_reason(observation: Observation, policy: Policy, changes: dict[str, Any]) -> str | None:
    if not observation.queue_exists:
        return "the job queue no longer exists"
    if changes.get("empty_observations", observation.state.empty_observations) >= EMPTY_TICKS_BEFORE_TEARDOWN:
        return REASON_DRAINED
    jobs_started = changes.get("jobs_started", observation.state.jobs_started)
    breaker = (breaker_rules.failure_stop(observation, policy)
               or breaker_rules.idle_stop(observation, policy, jobs_started))
    if breaker:
        return breaker
    if policy.max_run_hours is not None and observation.elapsed >= policy.max_run_hours * 3600:
        return f"MAX_RUN_HOURS reached ({policy.max_run_hours:g} h); jobs left in the queue are kept"
    if policy.max_run_cost is not None:
        cost = observation.machine_seconds() / 3600 * policy.machine_price
        if cost >= policy.max_run_cost:
            return (f"MAX_RUN_COST reached (ceiling ${cost:.2f} >= ${policy.max_run_cost:g}); "
                    "jobs left in the queue are kept")
    return None


def _state_reason(changes: dict[str, Any]) -> str:
    parts = []
    if "empty_observations" in changes:
        parts.append(f"queue empty on {changes['empty_observations']} consecutive check(s)"
                     if changes["empty_observations"] else "jobs in the queue again")
    if "known_instances" in changes:
        parts.append(f"{len(changes['known_instances'])} machine(s) now in the fleet")
    if changes.get("jobs_started"):
        parts.append("the first job has started")
    if "series" in changes:
        _, machines, waiting, running = changes["series"][-1]
        parts.append(f"{machines} machine(s), {waiting} job(s) waiting, {running} running")
    return "; ".join(parts)


# ---------------------------------------------------------------- running


def desired_machines(observation: Observation, policy: Policy) -> int:
    """Machines the jobs left can use: never more than CLUSTER_MACHINES, one in cheapest mode after 15 min."""
    cap = policy.cluster_machines
    if policy.cheapest and observation.elapsed >= CHEAPEST_AFTER_SECONDS:
        cap = 1
    needed = math.ceil((observation.visible + observation.in_flight) / policy.workers_per_machine)
    return max(0, min(cap, needed))


def _scale(observation: Observation, policy: Policy) -> list[Action]:
    if not observation.fleet_active:
        return []
    actions: list[Action] = []
    desired = desired_machines(observation, policy)
    # Grow back (retries made jobs visible again) only while jobs wait; shrink whenever fewer are needed.
    if desired < observation.fleet_target or (observation.visible > 0 and desired > observation.fleet_target):
        actions.append(SetFleetCapacity(
            fleet_id=observation.fleet_id, target=desired,
            reason=f"{observation.visible} job(s) waiting and {observation.in_flight} running need {desired} "
                   f"machine(s) at {policy.workers_per_machine} job(s) each; fleet target is "
                   f"{observation.fleet_target}"))
    tasks = desired * policy.tasks_per_machine
    if observation.service_exists and observation.service_desired > tasks:
        actions.append(SetServiceCount(cluster=observation.cluster, service=observation.service, count=tasks,
                                       reason=f"{desired} machine(s) hold {tasks} task(s)"))
    elif observation.service_exists and observation.visible > 0 and observation.service_desired < tasks:
        # the service grows back with the fleet: a fleet grown again on machines that get no task runs no job
        # (chaos seed 203: the service shrunk while machines were lost, and a DS image run waited for ever)
        actions.append(SetServiceCount(cluster=observation.cluster, service=observation.service, count=tasks,
                                       reason=f"{observation.visible} job(s) waiting: {desired} machine(s) hold "
                                              f"{tasks} task(s)"))
    idle = _idle_machines(observation, desired)
    if idle:
        actions.append(TerminateInstances(
            instance_ids=idle,
            reason=f"no job waiting; {len(idle)} machine(s) run no job and the {desired} busy machine(s) suffice"))
    return actions


def _idle_machines(observation: Observation, desired: int) -> tuple[str, ...]:
    """Machines to release now: only when no job waits (an idle machine would take it), only machines
    known to hold no job, and never below what the running jobs need."""
    if observation.visible > 0:
        return ()
    excess = len(observation.instances) - desired
    idle = sorted((instance for instance in observation.instances if instance.busy_jobs == 0),
                  key=lambda instance: (instance.launched_at, instance.instance_id))
    return tuple(instance.instance_id for instance in idle[:max(0, excess)])


def _missing_idle_alarms(observation: Observation, planned: list[Action]) -> list[Action]:
    """Every machine of the run has its idle alarm, made here (a machine that appears later, a replacement,
    gets its own on the next tick); none for a machine this plan releases."""
    released = {instance_id for action in planned if isinstance(action, TerminateInstances)
                for instance_id in action.instance_ids}
    existing = set(observation.alarm_names)
    missing = tuple(instance_id for instance_id in observation.active_instance_ids
                    if instance_id not in released and INSTANCE_ID.fullmatch(instance_id)
                    and idle_alarm(observation.app_name, instance_id) not in existing)
    if not missing:
        return []
    return [CreateIdleAlarms(instance_ids=missing,
                             reason=f"{len(missing)} machine(s) of the run without an idle alarm")]


def _stale_instance_alarms(observation: Observation) -> list[Action]:
    exact = instance_alarm_pattern(observation.app_name)
    live = set(observation.active_instance_ids)
    matches = (exact.fullmatch(name) for name in observation.alarm_names)
    stale = tuple(sorted(match.group(0) for match in matches if match and match.group(1) not in live))
    if not stale:
        return []
    return [DeleteAlarms(names=stale, reason=f"{len(stale)} idle alarm(s) of machines that are gone")]


# ---------------------------------------------------------------- teardown


def _teardown(observation: Observation, policy: Policy, reason: str,
              series: list[run_series.SeriesPoint]) -> list[Action]:
    actions: list[Action] = []
    if observation.fleet_active:
        actions.append(CancelFleet(fleet_id=observation.fleet_id, reason=f"teardown ({reason}): stop paying first"))
    elif observation.instances:
        actions.append(TerminateInstances(instance_ids=observation.active_instance_ids,
                                          reason="teardown: machines outlived their cancelled fleet"))
    if observation.service_exists:
        actions.append(DeleteService(cluster=observation.cluster, service=observation.service,
                                     reason="teardown: no more workers"))
    if observation.task_definition_arns:
        actions.append(DeregisterTaskDefinitions(arns=observation.task_definition_arns,
                                                 reason="teardown: the run's task definitions"))
    if observation.launch_template_ids:
        actions.append(DeleteLaunchTemplates(ids=observation.launch_template_ids,
                                             reason="teardown: the run's launch templates (its fleet is cancelled)"))
    # the queue goes only when empty: a run stopped early (limits, a user's teardown) keeps its jobs, and one a
    # breaker stopped keeps its queue even empty, for the failed jobs a redrive sends back. A drained run's too:
    # jobs sent after the drain was seen (a redrive, a `submit --append`: chaos seed 48) wait there for the next
    # start-cluster instead of going with it
    if (observation.queue_exists and not reason.startswith(breaker_rules.PREFIX)
            and observation.visible + observation.in_flight == 0):
        actions.append(DeleteQueue(queue_url=observation.queue_url,
                                   reason="teardown: the job queue is empty (the dead-letter queue is kept, "
                                          f"{observation.failed} failed job(s) of this run)"))
    if observation.alarm_names:
        actions.append(DeleteAlarms(names=observation.alarm_names, reason="teardown: the run's alarms"))
    if observation.dashboard_exists and policy.clean_dashboard and observation.dashboard_name:
        actions.append(DeleteDashboard(name=observation.dashboard_name, reason="teardown: CLEAN_DASHBOARD"))
    if (observation.cluster_exists and observation.cluster_owned and observation.cluster != "default"
            and not observation.cluster_in_use_by_others and not observation.service_exists):
        actions.append(DeleteCluster(cluster=observation.cluster, reason="teardown: the cluster is unused"))
    if _log_exports(observation, actions):
        return actions  # the summary reports the exports' outcome: it waits for them
    if not observation.state.tearing_down:
        # the summary waits for a tick that looked at the run tearing down: only then are its failed jobs counted
        # exactly (every failure record, and the dead-letter messages of a DS image's worker, which writes no
        # record: observe.py `_failed_at_teardown`); counted before, a run whose jobs all failed read as done
        return actions
    if observation.fleet_active or observation.instances:
        # The run's end waits for its machines: jobs still running on machines being stopped may yet finish and empty
        # the queue, which is then deleted, or kept with the jobs left (chaos seeds 75, 76: a user's teardown kept the
        # queue for the jobs in flight, they finished, and the empty queue outlived the run); and the failed jobs are
        # counted exactly only once they are gone (observe.py `_failed_at_teardown`, chaos seed 134)
        return actions
    if not observation.summary_exists and not observation.failed_exact and not _waited_for_exact_count(observation):
        return actions  # the summary waits for a tick that reads the dead-letter queue whole (chaos seed 47)
    if not observation.summary_exists:
        actions.append(WriteSummary(bucket=observation.bucket, key=observation.summary_key,
                                    summary=tuple({**summary(observation, policy, reason),
                                                   "series": series}.items()),
                                    reason="teardown: what the run did"))
    actions.append(RemoveRunRecord(bucket=observation.bucket, keys=observation.record_keys,
                                   reason="teardown complete: the run is no longer watched"))
    return actions


def _waited_for_exact_count(observation: Observation) -> bool:
    since = observation.state.failed_inexact_since
    return since is not None and observation.now - since >= EXACT_FAILED_WAIT_SECONDS


def _log_exports(observation: Observation, actions: list[Action]) -> bool:
    """Start the next log export if the account has none running; True while any is unfinished."""
    waiting = False
    for group in observation.log_groups:
        status = observation.export_status.get(group, "missing")
        if status in ("done", "failed") or group in observation.foreign_log_groups:
            continue  # a failed export is reported in the summary, not retried forever
        waiting = True
        if status == "missing" and not observation.export_running_in_account:
            actions.append(ExportLogs(log_group=group, bucket=observation.bucket,
                                      prefix=exported_group_prefix(observation.exported_logs_prefix, group),
                                      start_ms=int(observation.started_at * 1000) - 3_600_000,
                                      end_ms=int(observation.now * 1000),
                                      reason="teardown: keep the logs in S3 (one export at a time per account)"))
            return True
        break  # one export at a time: the next starts on a later tick
    return waiting


def summary(observation: Observation, policy: Policy, reason: str) -> dict[str, Any]:
    machine_hours = observation.machine_seconds() / 3600
    counts = observation.counts  # chalicelib/monitor/counts.py: a message sent again is not a new job
    return {
        "app_name": observation.app_name,
        "stop_reason": reason,
        "started_at": observation.started_at,
        "ended_at": observation.now,
        "jobs_submitted": counts.submitted,
        "jobs_done": counts.done,
        "jobs_failed": counts.failed,
        "jobs_left": counts.not_run,
        "machine_hours": round(machine_hours, 4),
        "cost_ceiling_usd": round(machine_hours * policy.machine_price, 4),
        "log_exports": {group: "not exported: another run's log group" if group in observation.foreign_log_groups
                        else observation.export_status.get(group, "missing") for group in observation.log_groups},
        "exported_logs": f"s3://{observation.bucket}/{observation.exported_logs_prefix}",
        # False: the shared dead-letter queue was never read whole while the run ended; jobs_failed may be low
        "jobs_failed_exact": observation.failed_exact,
    }
