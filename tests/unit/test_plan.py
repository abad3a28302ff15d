"""plan(): world in, expected actions out. No AWS."""

import json
from dataclasses import replace

import pytest

from chalicelib.monitor import series as run_series
from chalicelib.monitor.actions import (
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
from chalicelib.monitor.breaker import common_failure
from chalicelib.monitor.observation import FailedJob, Instance, MonitorState, Observation, Policy
from chalicelib.monitor.plan import EXACT_FAILED_WAIT_SECONDS, REASON_DRAINED, desired_machines, plan

NOW = 1_800_000_000.0
POLICY = Policy(cluster_machines=4, tasks_per_machine=1, docker_cores=2, machine_price=0.5)
MACHINES = tuple(Instance(f"i-{n}", launched_at=NOW - 600, busy_jobs=2) for n in range(4))
QUEUE_ALARMS = ("ApproximateNumberOfMessagesVisibleisZero_App", "ApproximateNumberOfMessagesNotVisibleisZero_App")
MACHINE_ALARMS = tuple(f"App_i-{n}" for n in range(4))


def world(**changes) -> Observation:
    """A healthy run four machines into its work: jobs waiting, every worker busy."""
    base = Observation(
        app_name="App", now=NOW, started_at=NOW - 1200,
        state=MonitorState(jobs_started=True, known_instances={m.instance_id: m.launched_at for m in MACHINES}),
        queue_url="http://sqs/AppQueue", queue_exists=True, visible=50, in_flight=8, dead_letter=0,
        jobs_at_start=100, fleet_id="sfr-1", fleet_active=True, fleet_target=4, fleet_fulfilled=4.0,
        instances=MACHINES, cluster="runs", cluster_exists=True, cluster_owned=True, service="AppService",
        service_exists=True, service_desired=4, task_definition_arns=("arn:td:AppTask:1",),
        launch_template_ids=("lt-0app",), alarm_names=QUEUE_ALARMS + MACHINE_ALARMS,
        queue_alarm_names=QUEUE_ALARMS, instance_alarm_prefix="App_", dashboard_name="App", dashboard_exists=True,
        bucket="bucket", log_groups=("App", "App_perInstance"), exported_logs_prefix="exportedlogs/App/",
        summary_key="monitors/finished/App_summary.json",
        record_keys=("monitors/AppSpotFleetRequestId.json", "monitors/App_monitorstate.json"),
    )
    observed = replace(base, **changes)
    if not observed.state.series:  # the last check saw these numbers: only a test about the series sees it move
        last = [NOW - 60, len(observed.instances), observed.visible, observed.in_flight]
        observed = replace(observed, state=replace(observed.state, series=[last]))
    return observed


def kinds(actions):
    return [type(action) for action in actions]


def idle(*numbers, busy=None):
    return tuple(Instance(f"i-{n}", NOW - 600, 0 if n in numbers else (busy or 1)) for n in range(4))


def test_converged_run_plans_nothing():
    assert plan(world(), POLICY) == []


def test_jobs_visible_keeps_capacity_and_never_scales_past_cluster_machines():
    assert plan(world(visible=10_000), POLICY) == []
    assert desired_machines(world(visible=10_000), POLICY) == 4


def test_jobs_visible_again_after_a_scale_down_grows_the_fleet_back_up_to_the_cap():
    actions = plan(world(fleet_target=1, visible=30, in_flight=2), POLICY)
    assert actions == [SetFleetCapacity(fleet_id="sfr-1", target=4, reason=actions[0].reason)]


def test_the_service_grows_back_with_the_fleet_while_jobs_wait():
    """Seed 203: the service shrunk with the fleet while machines were lost; a fleet grown back on machines that get
    no task runs no job, and a DS image run waited for ever."""
    actions = plan(world(fleet_target=1, service_desired=1, visible=30, in_flight=0), POLICY)
    assert actions == [SetFleetCapacity(fleet_id="sfr-1", target=4, reason=actions[0].reason),
                       SetServiceCount(cluster="runs", service="AppService", count=4, reason=actions[1].reason)]
    assert "30 job(s) waiting" in actions[1].reason
    # with no job waiting, a smaller service is never grown
    assert SetServiceCount not in kinds(plan(world(service_desired=2, visible=0, in_flight=8), POLICY))


def test_nothing_visible_shrinks_to_what_in_flight_jobs_need_and_releases_idle_machines():
    observation = world(visible=0, in_flight=3, instances=idle(0, 3), state=MonitorState(jobs_started=True,
        known_instances={m.instance_id: m.launched_at for m in MACHINES}))
    actions = plan(observation, POLICY)
    # ceil(3 jobs / 2 per machine) = 2 machines; the two idle ones go, the busy ones stay
    assert kinds(actions) == [SetFleetCapacity, SetServiceCount, TerminateInstances]
    assert actions[0].target == 2
    assert actions[1].count == 2
    assert actions[2].instance_ids == ("i-0", "i-3")


def test_never_terminate_a_busy_machine():
    busy = tuple(Instance(f"i-{n}", NOW - 600, 1) for n in range(4))
    actions = plan(world(visible=0, in_flight=1, instances=busy), POLICY)
    assert TerminateInstances not in kinds(actions)
    assert actions[0] == SetFleetCapacity(fleet_id="sfr-1", target=1, reason=actions[0].reason)


def test_a_machine_whose_business_is_unknown_is_never_terminated():
    unknown = tuple(Instance(f"i-{n}", NOW - 600, None) for n in range(4))
    assert TerminateInstances not in kinds(plan(world(visible=0, in_flight=1, instances=unknown), POLICY))


def test_idle_machines_stay_while_jobs_wait():
    assert TerminateInstances not in kinds(plan(world(visible=5, in_flight=0, instances=idle(0, 1, 2, 3)), POLICY))


def test_alarms_of_machines_that_are_gone_are_deleted():
    three = MACHINES[:3]
    state = MonitorState(jobs_started=True, known_instances={m.instance_id: m.launched_at for m in three})
    actions = plan(world(instances=three, state=state, fleet_target=4), POLICY)
    assert actions == [DeleteAlarms(names=("App_i-3",), reason=actions[0].reason)]


def test_each_machine_without_its_idle_alarm_gets_one_and_a_run_whose_machines_have_theirs_plans_none():
    actions = plan(world(alarm_names=QUEUE_ALARMS + MACHINE_ALARMS[1:3]), POLICY)
    assert actions == [CreateIdleAlarms(instance_ids=("i-0", "i-3"), reason=actions[0].reason)]
    assert plan(world(), POLICY) == []


def test_a_machine_that_appears_later_a_replacement_gets_its_idle_alarm_on_the_next_check():
    replacement = Instance("i-0fe12", NOW - 30, 0)
    state = MonitorState(jobs_started=True, known_instances={m.instance_id: m.launched_at for m in MACHINES[:3]}
                         | {replacement.instance_id: replacement.launched_at})
    actions = plan(world(instances=(*MACHINES[:3], replacement), state=state, alarm_names=QUEUE_ALARMS
                         + MACHINE_ALARMS), POLICY)
    assert [action for action in actions if not isinstance(action, DeleteAlarms)] == [
        CreateIdleAlarms(instance_ids=("i-0fe12",), reason=actions[0].reason)]


def test_no_idle_alarm_for_a_machine_released_now_nor_during_teardown_nor_for_a_refused_run():
    observation = world(visible=0, in_flight=3, instances=idle(0, 3), alarm_names=QUEUE_ALARMS)
    actions = plan(observation, POLICY)
    assert kinds(actions) == [SetFleetCapacity, SetServiceCount, TerminateInstances, CreateIdleAlarms]
    assert (actions[2].instance_ids, actions[3].instance_ids) == (("i-0", "i-3"), ("i-1", "i-2"))
    tearing_down = MonitorState(tearing_down=True, stop_reason="asked", jobs_started=True,
                                known_instances={m.instance_id: m.launched_at for m in MACHINES})
    assert CreateIdleAlarms not in kinds(plan(world(state=tearing_down, alarm_names=()), POLICY))
    assert plan(world(alarm_names=(), refused="not this run's"), POLICY) == []


def test_an_idle_alarm_is_made_only_for_an_ec2_instance_id():
    # the alarm's name is APP_NAME_<instance id>: nothing else may ever take that shape
    odd = (Instance("i-0_i-1", NOW - 600, 2), Instance("I-0", NOW - 600, 2), Instance("i-0abc", NOW - 600, 2))
    state = MonitorState(jobs_started=True, known_instances={m.instance_id: m.launched_at for m in odd})
    actions = plan(world(instances=odd, state=state, alarm_names=QUEUE_ALARMS, fleet_target=3), POLICY)
    assert [action.instance_ids for action in actions if isinstance(action, CreateIdleAlarms)] == [("i-0abc",)]


def test_a_machine_that_vanished_keeps_counting_toward_machine_hours():
    state = MonitorState(jobs_started=True,
                         known_instances={**{m.instance_id: m.launched_at for m in MACHINES}, "i-9": NOW - 3600})
    actions = plan(world(state=state), POLICY)
    assert kinds(actions) == [SaveState]
    changes = actions[0].as_dict()
    assert changes["retired_machine_seconds"] == 3600
    assert "i-9" not in changes["known_instances"]


def test_first_empty_observation_only_counts():
    actions = plan(world(visible=0, in_flight=0, instances=idle(0, 1, 2, 3)), POLICY)
    assert actions[0] == SaveState(empty_observations=1, jobs_done_seen=100, reason=actions[0].reason)
    assert CancelFleet not in kinds(actions) and DeleteQueue not in kinds(actions)


def test_teardown_needs_two_empty_observations():
    once = MonitorState(jobs_started=True, empty_observations=1,
                        known_instances={m.instance_id: m.launched_at for m in MACHINES})
    actions = plan(world(visible=0, in_flight=0, state=once), POLICY)
    # the cluster goes on a later tick, once its service is gone (ECS refuses before)
    assert kinds(actions) == [SaveState, CancelFleet, DeleteService, DeregisterTaskDefinitions, DeleteLaunchTemplates,
                              DeleteQueue, DeleteAlarms, DeleteDashboard, ExportLogs]
    assert actions[0].as_dict() == {"empty_observations": 2, "tearing_down": True, "stop_reason": REASON_DRAINED,
                                    "jobs_done_seen": 100}
    assert actions[4].ids == ("lt-0app",)
    assert actions[6].names == QUEUE_ALARMS + MACHINE_ALARMS
    assert actions[8].log_group == "App" and actions[8].prefix == "exportedlogs/App/App"
    # once both exports are over, the summary (which reports them), then the record
    finished = tearing(state=replace(once, tearing_down=True, stop_reason=REASON_DRAINED, empty_observations=2,
                                     known_instances={}, retired_machine_seconds=4 * 600.0),
                       summary_exists=False, export_status={"App": "done", "App_perInstance": "failed"})
    actions = plan(finished, POLICY)
    assert kinds(actions) == [WriteSummary, RemoveRunRecord]
    summary = dict(actions[0].summary)
    assert summary["log_exports"] == {"App": "done", "App_perInstance": "failed"}
    assert summary["jobs_done"] == 100 and summary["jobs_failed"] == 0
    assert summary["machine_hours"] == pytest.approx(4 * 600 / 3600, abs=1e-4)
    assert summary["cost_ceiling_usd"] == pytest.approx(4 * 600 / 3600 * 0.5, abs=1e-4)


def test_jobs_coming_back_reset_the_empty_count():
    once = MonitorState(jobs_started=True, empty_observations=1,
                        known_instances={m.instance_id: m.launched_at for m in MACHINES})
    actions = plan(world(visible=1, in_flight=0, state=once), POLICY)
    assert actions[0].as_dict() == {"empty_observations": 0, "jobs_done_seen": 99}
    assert CancelFleet not in kinds(actions)


def tearing(**changes):
    state = MonitorState(tearing_down=True, stop_reason=REASON_DRAINED, empty_observations=2)
    base = {"visible": 0, "in_flight": 0, "state": state, "instances": (), "fleet_active": False,
            "service_exists": False, "task_definition_arns": (), "launch_template_ids": (), "queue_exists": False,
            "alarm_names": (), "dashboard_exists": False, "cluster_exists": False,
            "export_status": {"App": "done", "App_perInstance": "done"}, "summary_exists": True}
    return world(**{**base, **changes})


def test_teardown_finished_removes_the_record_only():
    actions = plan(tearing(), POLICY)
    assert actions == [RemoveRunRecord(bucket="bucket", keys=("monitors/AppSpotFleetRequestId.json",
                                                               "monitors/App_monitorstate.json"),
                                       reason=actions[0].reason)]


def test_chaos_seed_47_the_summary_waits_for_a_tick_that_counts_the_failed_jobs_exactly():
    """Seed 47: five runs ended at once, each sweeping the shared dead-letter queue; the DS run's sweep met the
    others' held messages until its time ran out, saw none of its own 5, and its summary said 0 failed. A count
    that may miss some holds the summary back (the run's resources still go), up to EXACT_FAILED_WAIT_SECONDS."""
    held = tearing(summary_exists=False, failed=0, failed_exact=False)
    actions = plan(held, POLICY)
    assert kinds(actions) == [SaveState]  # no summary, and the record stays: the next tick counts again
    assert actions[0].as_dict()["failed_inexact_since"] == NOW
    waiting = replace(held, state=replace(held.state, failed_inexact_since=NOW - EXACT_FAILED_WAIT_SECONDS + 60))
    assert plan(waiting, POLICY) == []
    exact = plan(replace(waiting, failed=5, failed_exact=True), POLICY)
    assert kinds(exact) == [WriteSummary, RemoveRunRecord]
    assert dict(exact[0].summary)["jobs_failed"] == 5 and dict(exact[0].summary)["jobs_failed_exact"] is True
    waited_out = replace(held, state=replace(held.state, failed_inexact_since=NOW - EXACT_FAILED_WAIT_SECONDS))
    given_up = plan(waited_out, POLICY)
    assert kinds(given_up) == [WriteSummary, RemoveRunRecord]
    assert dict(given_up[0].summary)["jobs_failed_exact"] is False


def test_chaos_seed_75_the_runs_end_waits_for_jobs_finishing_on_its_machines_then_deletes_the_emptied_queue():
    """Seed 75: a user's teardown while jobs ran; the queue was kept for the jobs in flight, the machines being
    stopped finished them, and the run's end had already come: the empty queue outlived the run."""
    finishing = tearing(summary_exists=False, queue_exists=True, visible=0, in_flight=2, instances=MACHINES[:1])
    actions = plan(finishing, POLICY)
    # the machine is stopped; no DeleteQueue (jobs in it), no summary, and the record stays
    assert kinds(actions) == [SaveState, TerminateInstances]
    emptied = tearing(summary_exists=False, queue_exists=True, visible=0, in_flight=0, instances=())
    assert kinds(plan(emptied, POLICY)) == [DeleteQueue, WriteSummary, RemoveRunRecord]
    # machines gone with jobs still in flight: nobody can finish them, they come back to the queue, which is kept
    orphaned = tearing(summary_exists=False, queue_exists=True, visible=0, in_flight=2, instances=())
    assert kinds(plan(orphaned, POLICY)) == [WriteSummary, RemoveRunRecord]


def test_launch_templates_go_only_at_teardown_after_the_fleet_and_until_none_is_left():
    assert not any(isinstance(action, DeleteLaunchTemplates) for action in plan(world(visible=0, in_flight=3), POLICY))
    # a later tick still sees them (a crash, or AWS refused): they go then, with the fleet long cancelled
    actions = plan(tearing(launch_template_ids=("lt-0app", "lt-0app2")), POLICY)
    assert actions[0] == DeleteLaunchTemplates(ids=("lt-0app", "lt-0app2"), reason=actions[0].reason)
    assert kinds(actions) == [DeleteLaunchTemplates, RemoveRunRecord]
    # the machines outlived their fleet: stopped first, then the templates
    actions = plan(tearing(instances=MACHINES[:1]), POLICY)
    assert kinds(actions)[:2] == [SaveState, TerminateInstances] and DeleteLaunchTemplates not in kinds(actions)
    actions = plan(tearing(instances=MACHINES[:1], launch_template_ids=("lt-0app",)), POLICY)
    assert kinds(actions).index(TerminateInstances) < kinds(actions).index(DeleteLaunchTemplates)


def test_teardown_goes_on_whatever_the_queue_does_and_keeps_jobs_sent_after_the_drain():
    """Chaos seed 48: a redrive's jobs reached the queue after the monitor saw it drained; the teardown goes on (a
    drain is final), and the queue stays with them for the next start-cluster instead of going with them."""
    actions = plan(tearing(visible=7, queue_exists=True, fleet_active=True), POLICY)
    assert kinds(actions) == [CancelFleet]  # the run's end waits for its machines (chaos seed 134)
    actions = plan(tearing(visible=7, queue_exists=True), POLICY)
    assert kinds(actions) == [RemoveRunRecord]
    actions = plan(tearing(in_flight=1, queue_exists=True), POLICY)
    assert kinds(actions) == [RemoveRunRecord]
    actions = plan(tearing(queue_exists=True, fleet_active=True), POLICY)
    assert kinds(actions) == [CancelFleet, DeleteQueue]


def test_teardown_waits_for_another_export_in_the_account():
    actions = plan(tearing(export_status={}, export_running_in_account=True), POLICY)
    assert actions == []


def test_teardown_exports_one_log_group_at_a_time():
    actions = plan(tearing(export_status={"App": "running"}), POLICY)
    assert actions == []
    actions = plan(tearing(export_status={"App": "done"}), POLICY)
    assert kinds(actions) == [ExportLogs] and actions[0].log_group == "App_perInstance"


def test_instances_left_after_a_cancelled_fleet_are_terminated():
    actions = plan(tearing(instances=MACHINES[:1]), POLICY)
    assert kinds(actions) == [SaveState, TerminateInstances]  # the record stays until a tick sees them gone
    assert actions[1].instance_ids == ("i-0",)
    assert kinds(plan(tearing(), POLICY)) == [RemoveRunRecord]


def test_default_cluster_and_shared_clusters_are_kept():
    assert DeleteCluster not in kinds(plan(tearing(cluster="default", cluster_exists=True), POLICY))
    assert DeleteCluster not in kinds(plan(tearing(cluster_exists=True, cluster_in_use_by_others=True), POLICY))
    assert DeleteCluster in kinds(plan(tearing(cluster_exists=True), POLICY))


def test_a_cluster_without_the_runs_tag_is_never_deleted():
    assert DeleteCluster not in kinds(plan(tearing(cluster_exists=True, cluster_owned=False), POLICY))


def test_a_refused_run_plans_nothing_whatever_its_world_says():
    reason = "spot fleet sfr-1 belongs to run 'Other' (tag dsr:app), not to 'App'"
    assert plan(world(refused=reason), POLICY) == []
    assert plan(tearing(refused=reason), POLICY) == []
    assert plan(world(refused=reason, visible=0, in_flight=0, state=MonitorState(empty_observations=5)), POLICY) == []


def test_another_runs_log_group_is_never_exported_and_the_summary_says_so():
    actions = plan(tearing(foreign_log_groups=("App",), export_status={"App_perInstance": "done"},
                           summary_exists=False), POLICY)
    assert not [action for action in actions if isinstance(action, ExportLogs)]
    [summary] = [action for action in actions if isinstance(action, WriteSummary)]
    assert dict(summary.summary)["log_exports"] == {"App": "not exported: another run's log group",
                                                    "App_perInstance": "done"}


def test_stale_alarm_rule_matches_only_this_runs_exact_alarm_names():
    # run "App" must not take run "App_i-x"'s machine alarms for its own (a prefix match would)
    others = ("App_i-x_i-0123abcd", "App_i-0abc_extra", "AppX_i-9")
    actions = plan(world(instances=MACHINES[:3], alarm_names=QUEUE_ALARMS + MACHINE_ALARMS + others), POLICY)
    deleted = [name for action in actions if isinstance(action, DeleteAlarms) for name in action.names]
    assert deleted == ["App_i-3"]


def test_dashboard_is_kept_without_clean_dashboard():
    kept = replace(POLICY, clean_dashboard=False)
    assert DeleteDashboard not in kinds(plan(tearing(dashboard_exists=True), kept))


def test_max_run_hours_tears_down_but_keeps_the_queue():
    limited = replace(POLICY, max_run_hours=0.25)  # 15 minutes; the run is 20 minutes old
    actions = plan(world(), limited)
    assert CancelFleet in kinds(actions) and DeleteQueue not in kinds(actions)
    assert "MAX_RUN_HOURS reached" in actions[0].as_dict()["stop_reason"]


def test_max_run_cost_tears_down_at_the_ceiling():
    # four machines for ten minutes at $0.50/h = $0.33
    assert plan(world(), replace(POLICY, max_run_cost=1.0)) == []
    actions = plan(world(), replace(POLICY, max_run_cost=0.3))
    assert "MAX_RUN_COST reached" in actions[0].as_dict()["stop_reason"]


def test_cheapest_mode_shrinks_to_one_machine_after_15_minutes_without_terminating():
    cheapest = replace(POLICY, cheapest=True)
    assert plan(world(started_at=NOW - 600), cheapest) == []
    actions = plan(world(), cheapest)  # 20 minutes in
    assert kinds(actions) == [SetFleetCapacity, SetServiceCount]
    assert actions[0].target == 1


def test_a_deleted_queue_means_teardown():
    actions = plan(world(queue_exists=False), POLICY)
    assert CancelFleet in kinds(actions)


def test_describe_is_one_line_with_the_reason():
    action = SetFleetCapacity(fleet_id="sfr-1", target=2, reason="fewer jobs")
    assert action.describe() == "set fleet sfr-1's target to 2 machine(s) (fewer jobs)"


# ---------------------------------------------------------------- circuit breakers
BREAKERS = replace(POLICY, stop_after_failed_jobs=5, stop_if_no_job_starts_minutes=30)


def failed_jobs(count, last_line="python: can't open file '/work/sampl.py': [Errno 2] No such file or directory",
                exit_code=2):
    return tuple(FailedJob(f"P{n}", 3, f"exit code {exit_code} after 0.1 s", exit_code, last_line)
                 for n in range(count))


def test_a_run_whose_first_jobs_all_fail_stops_spending_and_names_the_common_failure():
    actions = plan(world(failed=5, failed_jobs=failed_jobs(5), visible=50, in_flight=0, jobs_at_start=55), BREAKERS)

    assert kinds(actions)[:2] == [SaveState, CancelFleet]
    reason = actions[0].as_dict()["stop_reason"]
    assert reason.startswith("circuit breaker: 5 job(s) failed every attempt and 0 succeeded; all 5 failed job(s) "
                             "(15 attempts) ended with: python: can't open file '/work/sampl.py'")
    assert DeleteQueue not in kinds(actions)  # the jobs left are kept


@pytest.mark.parametrize("failed, done", [(1, 99), (5, 95), (4, 0)])
def test_a_few_bad_jobs_among_good_ones_or_fewer_than_the_threshold_do_not_trip_it(failed, done):
    observation = world(failed=failed, failed_jobs=failed_jobs(failed), visible=40, in_flight=0,
                        jobs_at_start=40 + failed + done)
    assert CancelFleet not in kinds(plan(observation, BREAKERS))


def test_the_failure_breaker_is_off_when_not_configured():
    observation = world(failed=50, failed_jobs=failed_jobs(50), visible=50, in_flight=0, jobs_at_start=100)
    assert CancelFleet not in kinds(plan(observation, POLICY))


def test_machines_that_start_no_job_for_the_configured_minutes_stop_the_run():
    waiting = world(state=MonitorState(known_instances={m.instance_id: m.launched_at for m in MACHINES}),
                    instances=idle(0, 1, 2, 3), visible=100, in_flight=0, jobs_at_start=100)
    quick = replace(BREAKERS, stop_if_no_job_starts_minutes=10)  # the machines came up 10 min ago

    actions = plan(waiting, quick)

    assert kinds(actions)[:2] == [SaveState, CancelFleet]
    assert actions[0].as_dict()["stop_reason"].startswith("circuit breaker: machines have run 10 min and no job "
                                                          "has started")
    assert CancelFleet not in kinds(plan(waiting, BREAKERS))  # 30 min: not yet
    started = replace(waiting, state=replace(waiting.state, jobs_started=True))
    assert CancelFleet not in kinds(plan(started, quick))


def test_a_job_seen_running_is_remembered_as_started():
    first = world(state=MonitorState(known_instances={m.instance_id: m.launched_at for m in MACHINES}))
    [save] = [action for action in plan(first, POLICY) if isinstance(action, SaveState)]
    assert save.as_dict() == {"jobs_started": True, "jobs_done_seen": 42}  # the floor of the next count


def test_the_common_failure_is_the_shared_last_line_else_the_exit_code_else_the_most_common_line():
    assert common_failure(failed_jobs(3, last_line="boom")) == "all 3 failed job(s) (9 attempts) ended with: boom"
    mixed_lines = failed_jobs(2, last_line="a") + failed_jobs(1, last_line="b")
    assert common_failure(mixed_lines) == "all 3 failed job(s) (9 attempts) exited with code 2"
    mixed = failed_jobs(2, last_line="a") + failed_jobs(1, last_line="b", exit_code=1)
    assert common_failure(mixed) == "2 of 3 failed jobs ended with: a"


def test_a_check_whose_counts_changed_adds_a_point_to_the_series_and_a_steady_one_none():
    steady = world().state  # its last point: 4 machines, 50 waiting, 8 running
    actions = plan(world(visible=40, in_flight=8, state=steady), POLICY)
    assert kinds(actions) == [SaveState]
    assert actions[0].series == [*steady.series, [round(NOW, 2), 4, 40, 8]]
    assert actions[0].reason == "4 machine(s), 40 job(s) waiting, 8 running"
    assert plan(world(visible=40, in_flight=8, state=replace(steady, series=actions[0].series)), POLICY) == []


def test_the_summary_carries_the_series_with_the_last_checks_point():
    earlier = [[NOW - 120, 4, 3, 8], [NOW - 60, 1, 0, 0]]
    actions = plan(tearing(summary_exists=False, state=replace(tearing().state, series=earlier)), POLICY)
    [summary] = [action for action in actions if isinstance(action, WriteSummary)]
    assert dict(summary.summary)["series"] == [*earlier, [round(NOW, 2), 0, 0, 0]]


def test_the_series_stays_bounded_keeping_its_first_and_newest_points():
    points: list = []
    for tick in range(3 * run_series.LIMIT):
        points = run_series.with_point(points, tick, tick % 7, tick, 0)
        assert len(points) <= run_series.LIMIT
    assert points[0] == [0, 0, 0, 0] and points[-1] == [tick, tick % 7, tick, 0]
    assert [point[0] for point in points] == sorted(point[0] for point in points)
    assert run_series.with_point(points, tick + 1, tick % 7, tick, 0) is None  # the same counts: no point


@pytest.mark.parametrize("series,message", [
    ({"a": 1}, "series: expected a list of at most 1,000 items, got an object"),
    ([[1, 2, 3]], "series[0]: expected a list of 4 items, got 3 items"),
    ([["t", 1, 2, 3]], "series[0][0]: expected a number, got a string"),
    ([1, 2, 3, 4], "series[0]: expected a list of 4 items, got 1"),
])
def test_a_monitor_state_with_a_malformed_series_is_refused(series, message):
    with pytest.raises(ValueError) as caught:
        MonitorState.from_json(json.dumps({"series": series}))
    assert str(caught.value) == f"monitor state: {message}"
