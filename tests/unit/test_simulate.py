"""The run simulator's own accounting, on runs small enough to work out by hand. No timed assertions."""

import pytest

from bench.scenarios import SCENARIOS, Durations, Scenario
from bench.simulate import DSMonitor, OurMonitor, World, main, simulate


def tiny(**changes) -> Scenario:
    """Fixed 600-s jobs on machines with one worker each, booting in 60 s; the monitor ticks every minute."""
    fields = dict(name="tiny", jobs=4, durations=Durations("fixed", 600), machines=2, tasks_per_machine=1,
                  docker_cores=1, boot_s=60, alarm_delay_s=300, monitor_period_s=60, visibility_s=3600)
    fields.update(changes)
    return Scenario(**fields)


def test_four_jobs_on_two_machines_are_accounted_exactly():
    result = simulate(tiny(), OurMonitor)
    # Boot 0-60 s; each machine runs two jobs back to back, 60-660 and 660-1260. The tick at 1260 sees the
    # queue empty once, shrinks the fleet to 0 and terminates both idle machines; the one at 1320 sees it
    # empty again and tears down.
    assert result.makespan_s == 1260
    assert result.busy_s == 2 * 1200
    assert result.billed_s == 2 * 1260
    assert result.efficiency == pytest.approx(2400 / 2520)
    assert result.idle_after_last_start_s == 0  # from 660 on, both machines run a job until they go
    assert result.teardown_delay_s == 60
    assert (result.jobs_done, result.jobs_lost, result.duplicates, result.dead_letter) == (4, 0, 0, 0)
    assert result.machines_launched == 2


def test_our_monitor_releases_an_idle_machine_on_its_next_tick():
    result = simulate(tiny(jobs=1, durations=Durations("fixed", 3600)), OurMonitor)
    # The tick at 60 s (before boot) shrinks the target to the one machine the job needs; at 120 s the
    # machine that got no job is terminated. The other runs the job 60-3660 and goes at the tick at 3660.
    assert result.billed_s == 3660 + 120
    assert result.busy_s == 3600
    assert result.makespan_s == 3660


def test_ds_leaves_an_idle_machine_to_its_15_minute_alarm():
    result = simulate(tiny(jobs=1, durations=Durations("fixed", 3600)), DSMonitor)
    # DS's tenth check (540 s) sets the target to the 1 job in flight, without terminating anything; the
    # idle machine goes when its alarm fires, 15 min + 5 min of alarm delay after it booted (60 + 1200 s);
    # the fleet does not replace it (target 1). DS tears down on its first empty check, at 3660 s.
    assert result.billed_s == 3660 + 1260
    assert result.busy_s == 3600
    assert result.teardown_delay_s == 0
    assert result.machines_launched == 2


def test_a_job_longer_than_the_visibility_timeout_runs_twice_without_the_heartbeat_only():
    scenario = tiny(jobs=1, durations=Durations("fixed", 1000), visibility_s=600)
    without = World(scenario, heartbeat=False, handles_spot_notice=False).run(DSMonitor(scenario))
    with_heartbeat = World(scenario, heartbeat=True, handles_spot_notice=False).run(DSMonitor(scenario))
    # received at 60 s; at 660 s the timeout expires and the idle machine takes it again
    assert (without.duplicates, without.jobs_done, without.jobs_lost) == (1, 1, 0)
    assert (with_heartbeat.duplicates, with_heartbeat.jobs_done, with_heartbeat.jobs_lost) == (0, 1, 0)


def interrupted_run(monitor_class):
    """One 600-s job on one machine, which AWS takes back at 400 s (notice at 280 s)."""
    scenario = tiny(jobs=1, machines=1, visibility_s=600)
    monitor = monitor_class(scenario)
    world = World(scenario, heartbeat=monitor.heartbeat, handles_spot_notice=monitor.handles_spot_notice)
    world.start(monitor)
    world.interrupt(world.machines["i-0000000"], reclaimed_at=400)
    return world.run_to_end(monitor)


def test_a_spot_interruption_requeues_the_job_at_the_notice_and_loses_nothing():
    result = interrupted_run(OurMonitor)
    # the worker releases the job at the notice (280 s); the fleet replaces the machine at 400 s, which
    # boots at 460 s and runs the job to 1060 s
    assert (result.jobs_done, result.jobs_lost, result.duplicates, result.interruptions) == (1, 0, 0, 1)
    assert result.makespan_s == 1060
    assert result.machines_launched == 2


def test_without_notice_handling_ds_waits_for_the_visibility_timeout():
    result = interrupted_run(DSMonitor)
    # the job dies with its machine at 400 s and is visible again at 60 + 600 s; it runs 660-1260 s
    assert (result.jobs_done, result.jobs_lost, result.duplicates) == (1, 0, 0)
    assert result.makespan_s == 1260


def test_failed_jobs_retry_after_a_minute_and_end_in_the_dead_letter_queue_after_job_retries():
    result = simulate(tiny(jobs=3, failure_rate=1.0, job_retries=2), OurMonitor)
    assert (result.jobs_done, result.dead_letter, result.jobs_lost) == (0, 3, 0)


@pytest.mark.parametrize("scenario", [s.quick() for s in SCENARIOS], ids=[s.name for s in SCENARIOS])
def test_every_scenario_loses_no_job_and_ours_never_duplicates_without_interruptions(scenario):
    ours, ds = simulate(scenario, OurMonitor), simulate(scenario, DSMonitor)
    assert ours.jobs_lost == 0 and ds.jobs_lost == 0
    assert ours.jobs_done + ours.dead_letter >= scenario.jobs
    if scenario.interruptions_per_machine_hour == 0:
        assert ours.duplicates == 0
    assert ours.teardown_delay_s is not None and ds.teardown_delay_s is not None


def test_the_same_seed_gives_the_same_run():
    scenario = SCENARIOS[3].quick()
    assert simulate(scenario, OurMonitor) == simulate(scenario, OurMonitor)


def test_the_command_line_prints_a_markdown_table_per_scenario(capsys):
    assert main(["--quick", "--scenario", "heavy-tail"]) == 0
    out = capsys.readouterr().out
    assert "| metric | ours | DS | DS / ours |" in out
    assert "heavy-tail" in out
