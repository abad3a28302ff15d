"""The run simulator's own accounting, on runs small enough to work out by hand. No timed assertions."""

from dataclasses import replace

import pytest

from bench.scenarios import SCENARIOS, Durations, Scenario
from bench.simulate import (
    DS_WORKERS,
    OUR_WORKERS,
    DSMonitor,
    OurMonitor,
    World,
    ideal_schedule,
    job_durations,
    lower_bound_s,
    main,
    simulate,
    simulate_all,
)


def tiny(**changes) -> Scenario:
    """Fixed 600-s jobs on machines with one worker each, booting in 60 s; the monitor ticks every minute; no
    spot interruption unless a test makes one."""
    fields = {"name": "tiny", "jobs": 4, "durations": Durations("fixed", 600), "machines": 2, "tasks_per_machine": 1,
              "docker_cores": 1, "boot_s": 60, "alarm_delay_s": 300, "monitor_period_s": 60, "visibility_s": 3600,
              "interruptions_per_machine_hour": 0.0}
    fields.update(changes)
    return Scenario(**fields)


def run(scenario: Scenario, monitor, workers=None, durations=None, before=None) -> tuple[World, object]:
    """The world and the monitor after a whole run; `durations` replaces the jobs' (the lower bound is then
    not theirs), `before(world)` runs once the fleet is launched."""
    world = World(scenario, workers or monitor.workers)
    if durations is not None:
        for job, duration in zip(world.jobs, durations, strict=True):  # one for each job
            job.duration = duration
    world.start(monitor)
    if before:
        before(world)
    return world, world.run_to_end(monitor)


# ---------------------------------------------------------------- the lower bound and the slot accounting


def test_the_lower_bound_is_the_jobs_run_time_over_the_slots_plus_one_boot_per_machine():
    scenario = tiny(machines=3, docker_cores=2, boot_s=60)
    assert lower_bound_s([100.0, 200.0, 300.0], scenario) == 600 / 2 + 3 * 60


def test_four_jobs_on_two_machines_are_accounted_exactly_one_long_poll_after_the_last_job():
    result = simulate(tiny(), OurMonitor)
    # Boot 0-60 s; each machine runs two jobs back to back, 60-660 and 660-1260. Each worker's busy lease lasts
    # until its next receive finds no job, at 1261: the tick at 1260 sees the queue empty once and both machines
    # still busy, and shrinks the fleet to 0; the one at 1320 sees it empty again and tears down, machines too.
    # The one at 1380, the first to look at the run tearing down, counts its failed jobs exactly, writes the summary
    # and removes the record.
    assert result.makespan_s == 1260
    assert result.busy_slot_s == 2 * 1200
    assert result.billed_s == 2 * 1320
    assert result.lower_bound_s == 4 * 600 + 2 * 60
    assert result.over_lower_bound == pytest.approx(2640 / 2520)
    assert result.efficiency == pytest.approx(2400 / 2640)
    assert result.teardown_delay_s == 120
    assert result.last_machine_gone_s == 60
    assert (result.jobs_done, result.jobs_lost, result.duplicates, result.dead_letter) == (4, 0, 0, 0)
    assert result.machines_launched == 2


def test_two_jobs_on_two_machines_of_two_slots_split_the_bill_by_slot():
    result = simulate(tiny(jobs=2, docker_cores=2), OurMonitor)
    # The tick at 60 s (before the boots) shrinks the target to the one machine two jobs need; both machines
    # boot at 60 s and the first one's two slots take both jobs. The tick at 120 s releases the second
    # machine; the first runs 60-660, its leases last to 661, and it goes on the tick at 720.
    assert result.billed_s == 120 + 720
    assert result.lower_bound_s == 2 * 600 / 2 + 2 * 60
    assert result.over_lower_bound == pytest.approx(840 / 720)
    assert result.usage.booting_s == 2 * 60
    assert result.usage.holding_s == 600
    assert result.idle_machine_s == 60 + 60  # the second machine, 60-120 s; the first, 660-720 s
    assert result.free_beside_slot_s == 0
    assert result.efficiency == pytest.approx(1200 / (840 * 2))


def test_a_machine_kept_by_one_job_counts_its_other_slot_free():
    result = simulate(tiny(jobs=1, machines=1, docker_cores=2), OurMonitor)
    # One machine, two slots: one runs the job 60-660 s, the other waits; the machine goes on the tick at 720,
    # the first after the job's worker's lease (to 661).
    assert result.billed_s == 720
    assert result.busy_slot_s == 600
    assert result.free_beside_slot_s == 600
    assert result.efficiency == pytest.approx(600 / (720 * 2))
    assert result.lower_bound_s == 600 / 2 + 60


def test_our_monitor_releases_an_idle_machine_on_its_next_tick():
    result = simulate(tiny(jobs=1, durations=Durations("fixed", 3600)), OurMonitor)
    # The tick at 60 s (before boot) shrinks the target to the one machine the job needs; at 120 s the
    # machine that got no job is terminated (no job, so no lease). The other runs the job 60-3660, its lease
    # lasts to 3661, and it goes at the tick at 3720.
    assert result.billed_s == 3720 + 120
    assert result.busy_slot_s == 3600
    assert result.idle_machine_s == 60 + 60
    assert result.makespan_s == 3660


# ---------------------------------------------------------------- DS as DS runs


def test_ds_pauses_30_s_after_each_job_and_sleeps_10_s_per_100_machines_before_it_cancels():
    scenario = tiny(jobs=2, machines=1)
    result = simulate(scenario, DSMonitor)
    # One slot: job 1 runs 60-660 s, pauses to 690 s (the message still in flight), then job 2 runs 690-1290 s
    # and pauses to 1320 s, when it is deleted. DS's check at 1320 s finds the queue empty, deletes the one
    # machine's alarm, sleeps 10 s and cancels the fleet at 1330 s.
    assert result.makespan_s == 1320
    assert result.busy_slot_s == 1200
    assert result.pause_slot_s == 60
    assert result.billed_s == 1330
    assert result.teardown_delay_s == 10
    crashed = simulate_all(scenario)[2]
    # Its Lambda crashing instead: the machine idle from 1320 s lives until its alarm, 15 + 5 min later.
    assert crashed.policy == "DS (Lambda crashing)"
    assert crashed.billed_s == 1320 + 1200
    assert crashed.teardown_delay_s is None
    assert crashed.last_machine_gone_s == 1200


@pytest.mark.parametrize("machines, sleep", [(100, 10), (101, 20)])
def test_ds_sleeps_10_s_per_batch_of_100_machine_alarms(machines, sleep):
    result = simulate(tiny(jobs=1, machines=machines, durations=Durations("fixed", 60)), DSMonitor)
    # The job runs 60-120 s and pauses to 150 s; DS's check at 180 s finds the queue empty with every machine
    # still up (their alarms fire at 1260 s), and sleeps once per 100 of them.
    assert result.makespan_s == 150
    assert result.teardown_delay_s == 30 + sleep


def test_a_ds_worker_exits_on_an_empty_poll_and_misses_a_redelivered_job():
    scenario = tiny(jobs=1, durations=Durations("fixed", 1000), visibility_s=600)
    # Received at 60 s by the first machine; the second machine's worker polls at 60 s, finds nothing for
    # 20 s and exits. When the timeout re-delivers the job at 660 s no worker is left to take it: no
    # duplicate, the job waits until the first execution deletes it (1060 s + the 30-s pause).
    world, ds = run(scenario, DSMonitor(scenario))
    assert (ds.duplicates, ds.jobs_done, ds.jobs_lost) == (0, 1, 0)
    assert ds.makespan_s == 1090
    assert world.machines == {} and world.launched == 2
    # A worker that polled on (as ours do) would have taken it: a duplicate without the heartbeat ...
    polling_on = replace(DS_WORKERS, exits_after_empty_poll_s=None)
    assert run(scenario, DSMonitor(scenario), workers=polling_on)[1].duplicates == 1
    # ... and none with it.
    assert run(scenario, DSMonitor(scenario), workers=OUR_WORKERS)[1].duplicates == 0


def test_the_crashing_lambda_leaves_every_machine_to_its_idle_alarm():
    result = simulate(tiny(jobs=1, durations=Durations("fixed", 3600)), DSMonitor, lambda_crashes=True)
    # As DS until the queue is empty: the second machine's worker exits at 80 s, its alarm ends it at 60 +
    # 1200 s; the job ends at 3660 s, is deleted after the pause at 3690 s; DS's Lambda crashes at the check
    # at 3720 s and the first machine lives until its alarm, 3690 + 1200 s.
    assert result.billed_s == 1260 + 3690 + 1200
    assert result.teardown_delay_s is None
    assert result.last_machine_gone_s == 1200
    normal = simulate(tiny(jobs=1, durations=Durations("fixed", 3600)), DSMonitor)
    assert normal.billed_s == 1260 + 3730  # cancelled at 3720 + 10 s
    assert normal.teardown_delay_s == 40


# ---------------------------------------------------------------- spot interruptions


def interrupted_run(monitor_class):
    """One 600-s job on one machine, which AWS takes back at 400 s (notice at 280 s)."""
    scenario = tiny(jobs=1, machines=1, visibility_s=600)
    monitor = monitor_class(scenario)
    return run(scenario, monitor, before=lambda world: world.interrupt(world.machines["i-0000000"], 400))[1]


def test_a_spot_interruption_requeues_the_job_at_the_notice_and_loses_nothing():
    result = interrupted_run(OurMonitor)
    # the worker releases the job at the notice (280 s); the fleet replaces the machine at 400 s, which
    # boots at 460 s and runs the job to 1060 s
    assert (result.jobs_done, result.jobs_lost, result.duplicates, result.interruptions) == (1, 0, 0, 1)
    assert result.makespan_s == 1060
    assert result.machines_launched == 2


def test_without_notice_handling_ds_waits_for_the_timeout_and_then_for_a_worker():
    result = interrupted_run(DSMonitor)
    # The job dies with its machine at 400 s and is visible again at 60 + 600 s. The replacement booted at
    # 460 s, found the queue empty and its worker exited at 480 s; so the job waits for that machine's idle
    # alarm (460 + 1200 s) and the next replacement, which boots at 1720 s and runs it to 2320 s (+30 s pause).
    assert (result.jobs_done, result.jobs_lost, result.duplicates, result.interruptions) == (1, 0, 0, 1)
    assert result.makespan_s == 2350
    assert result.machines_launched == 3


def test_every_scenario_has_spot_interruptions():
    assert all(scenario.interruptions_per_machine_hour >= 0.02 for scenario in SCENARIOS)


# ---------------------------------------------------------------- failures and whole scenarios


def test_failed_jobs_retry_after_a_minute_and_end_in_the_dead_letter_queue_after_job_retries():
    result = simulate(tiny(jobs=3, failure_rate=1.0, job_retries=2), OurMonitor)
    assert (result.jobs_done, result.dead_letter, result.jobs_lost) == (0, 3, 0)


@pytest.mark.parametrize("scenario", [s.quick() for s in SCENARIOS], ids=[s.name for s in SCENARIOS])
def test_every_scenario_loses_no_job_and_the_crashing_lambda_always_bills_more(scenario):
    ours, ds, crashed = simulate_all(scenario)
    assert ours.jobs_lost == 0 and ds.jobs_lost == 0
    assert ours.jobs_done + ours.dead_letter >= scenario.jobs
    assert ours.duplicates == 0  # our workers release their jobs at the spot notice
    assert ours.pause_slot_s == pytest.approx(0, abs=1e-6)
    assert ours.teardown_delay_s is not None and ds.teardown_delay_s is not None
    assert crashed.teardown_delay_s is None
    assert crashed.billed_s > ds.billed_s
    for result in (ours, ds, crashed):
        assert result.lower_bound_s == ours.lower_bound_s  # the scenario's, whatever the policy
        assert result.billed_s >= result.lower_bound_s
        assert result.usage.booting_s + result.usage.holding_s <= result.billed_s * (1 + 1e-9)


@pytest.mark.parametrize("name, seed", [("heavy-tail", 1), ("heavy-tail", 2), ("100k-30s", 1), ("spot-5%", 3)])
def test_the_crashing_lambda_derived_from_ds_run_equals_running_it_to_the_end(name, seed):
    scenario = replace(next(s for s in SCENARIOS if s.name == name).quick(), seed=seed,
                       interruptions_per_machine_hour=0.5)  # interruptions also during the machines' last minutes
    derived = simulate_all(scenario)[2]
    full = simulate(scenario, DSMonitor, lambda_crashes=True)
    for field in ("billed_s", "booting_s", "holding_s", "held_slot_s", "busy_slot_s"):
        assert getattr(derived.usage, field) == pytest.approx(getattr(full.usage, field), rel=1e-9), field
    assert (derived.makespan_s, derived.jobs_done, derived.interruptions, derived.machines_launched) == \
        (full.makespan_s, full.jobs_done, full.interruptions, full.machines_launched)
    assert derived.last_machine_gone_s == pytest.approx(full.last_machine_gone_s)


# ---------------------------------------------------------------- reference schedules


def test_the_ideal_schedules_by_hand():
    # Two machines of two slots, no boot. In queue order each machine gets a 100-s job at once and is kept
    # 100 s; longest first, both 100-s jobs share the first machine and the second does the six short ones
    # in three rounds: the lower bound, 260 / 2.
    durations = [10, 100, 10, 100, 10, 10, 10, 10]
    assert ideal_schedule(durations, machines=2, slots=2, boot_s=0) == (200, 100)
    assert ideal_schedule(sorted(durations, reverse=True), machines=2, slots=2, boot_s=0) == (130, 100)
    assert lower_bound_s(durations, tiny(machines=2, docker_cores=2, boot_s=0)) == 130


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ours_never_beats_the_ideal_online_schedule_on_the_heavy_tail(seed):
    scenario = replace(next(s for s in SCENARIOS if s.name == "heavy-tail"), seed=seed)
    online, _ = ideal_schedule(job_durations(scenario), scenario.machines, scenario.workers_per_machine,
                               scenario.boot_s)
    ours = simulate(scenario, OurMonitor)
    assert online <= ours.billed_s


def test_the_same_seed_gives_the_same_run():
    scenario = SCENARIOS[3].quick()
    assert simulate_all(scenario) == simulate_all(scenario)


def test_the_command_line_prints_a_markdown_table_per_scenario_and_a_summary(capsys):
    assert main(["--quick", "--scenario", "heavy-tail"]) == 0
    out = capsys.readouterr().out
    assert "| metric | ours | DS | DS (Lambda crashing) |" in out
    assert "| **billed / lower bound** |" in out
    assert "### Summary" in out and "heavy-tail" in out
    assert "### heavy-tail against its bounds" in out
