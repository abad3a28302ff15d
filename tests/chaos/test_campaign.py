"""The campaign in CI: a few fixed seeds, each a whole scenario (several local runs on one emulator under faults)
checked against the invariants. `python -m tests.chaos --seed N` replays one with its logs kept."""

from __future__ import annotations

import pytest

from tests.chaos import scenario as scenario_module
from tests.chaos.campaign import CHECK_SECONDS, seed_in_process, table
from tests.chaos.harness import limit_seconds
from tests.chaos.scenario import FAULT_KINDS, Event, RunPlan, Scenario, scenario

# Between them every kind of fault (tests/chaos/scenario.py FAULT_KINDS), on under 100 jobs each: a seed takes
# about a minute and a half of two busy cores, and `make test` runs them on xdist workers side by side.
CI_SEEDS = (203, 2808)


def kinds_of(plan: Scenario) -> set[str]:
    return {event.kind for event in plan.events} | kinds_at_start(plan)


def kinds_at_start(plan: Scenario) -> set[str]:
    """What comes with the runs' start, played whatever the machine's load: local mode's spot notices, the attacks."""
    spot = {"spot"} if any(run.interrupt_rate for run in plan.runs) else set()
    attack = {"attack"} if any(mode.startswith("attack:") for run in plan.runs for _, mode in run.jobs) else set()
    return spot | attack


# pytest.ini's 300 s is for a test; a seed's own limits (its runs', then its checks') are what bound this one
@pytest.mark.timeout(limit_seconds(scenario(max(CI_SEEDS, key=lambda seed: scenario(seed).jobs))) + CHECK_SECONDS + 60)
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_seed_of_the_campaign_breaks_no_invariant(seed, tmp_path):
    result = seed_in_process(seed, tmp_path)
    assert result["violations"] == [], table([result], result["seconds"])
    # played: what the scenario holds; at least what comes with the runs' start (an event due after every run has
    # ended is not played, and how far a run gets by then depends on the machine's load)
    played = {kind for kind, count in result["faults"].items() if count and kind in FAULT_KINDS}
    assert kinds_at_start(scenario(seed)) <= played <= kinds_of(scenario(seed))


def test_the_ci_seeds_inject_every_kind_of_fault_between_them():
    assert set().union(*(kinds_of(scenario(seed)) for seed in CI_SEEDS)) == set(FAULT_KINDS)


def test_a_scenario_is_a_pure_function_of_its_seed():
    assert scenario(203) == scenario(203)
    assert scenario(203).describe() == scenario(203).describe()
    assert scenario(203) != scenario(204)
    for seed in range(1, 60):
        plan = scenario(seed)
        assert 2 <= len(plan.local_runs) <= 5 and all(20 <= len(run.jobs) <= 200 for run in plan.local_runs)
        [ds] = plan.ds_runs
        assert ds.app_name == f"Chaos{seed}DS" and 10 <= len(ds.jobs) <= 60 and ds.interrupt_rate == 0
        assert not any(mode.startswith("attack:") for _, mode in ds.jobs)
        assert len({run.app_name for run in plan.runs}) == len(plan.runs)
        assert [event.at for event in plan.events] == sorted(event.at for event in plan.events)
        # only the DS run's own draw aims events at it, and only the kinds a DS user or AWS plays on it
        assert {event.kind for event in plan.events if event.run == ds.app_name} <= {
            "kill-worker", "spot", "teardown", "redrive", "append"}


# Seed 203's scenario before the DS image mode run existed: its local runs and schedule must stay as they were.
SEED_203_WITHOUT_DS = """\
  run Chaos203R0 at 0.0 s: 30 jobs (2 attack, 1 fail, 4 flaky, 14 ok, 9 sleep), 3 machines, --workers 2, \
visibility 4 s, JOB_RETRIES 3, spot notices 0; attacks j027=attack:outside-prefix:j013 j029=attack:outside-prefix:j008
  run Chaos203R1 at 1.2 s: 36 jobs (1 attack, 2 fail, 2 flaky, 24 ok, 7 sleep), 1 machines, --workers 2, \
visibility 5 s, JOB_RETRIES 3, spot notices 0.005; attacks j007=attack:foreign-message:Chaos203R0
schedule:
     4.2 s  submit --append Chaos203R0: 5 jobs (ok, sleep:0.21, sleep:0.60, sleep:0.79)
    10.0 s  tick
    11.2 s  tick
    15.2 s  kill-worker Chaos203R0
    18.0 s  latency monitoring +0.14 s per request for 8.3 s
    21.8 s  submit --append Chaos203R1: 8 jobs (fail, ok, sleep:0.19, sleep:0.46, sleep:0.58, sleep:1.15)
    35.2 s  Lambda tick, SIGKILLed after 2.17 s
    36.0 s  two Lambda ticks at once (a scheduled one and an alarm's)
    36.7 s  kill-worker Chaos203R1
    39.3 s  kill-worker Chaos203R0
"""


def without_ds(plan: Scenario) -> str:
    """The scenario's description less its header and every line of its DS image mode run."""
    ds = {run.app_name for run in plan.ds_runs}
    return "".join(line + "\n" for line in plan.describe().splitlines()[1:]
                   if not any(app in line for app in ds))


def test_the_ds_image_mode_run_leaves_the_local_runs_and_their_schedule_as_they_were(monkeypatch):
    assert without_ds(scenario(203)) == SEED_203_WITHOUT_DS
    # the DS run's draws come from a Random of their own: another DS run changes nothing else of any seed
    before = {seed: (scenario(seed).local_runs, without_ds(scenario(seed))) for seed in range(1, 40)}
    other = RunPlan("OtherDS", (("j000", "ok"),), 0.0, 1, 1, 5, 2, 0.0, ds_image=True)
    monkeypatch.setattr(scenario_module, "ds_image_run",
                        lambda seed: (other, [Event(7.0, "teardown", run="OtherDS")]))
    assert {seed: (scenario(seed).local_runs, without_ds(scenario(seed))) for seed in range(1, 40)} == before


def test_a_failing_seed_names_its_replay_command_and_its_kept_logs():
    result = {"seed": 17, "jobs": 40, "seconds": 12.0, "log_dir": "/tmp/dsr-chaos/seed-17",
              "faults": {"throttle": 2, "requests failed": 30},
              "violations": [{"kind": "job-lost", "run": "Chaos17R0", "detail": "j003: neither done nor failed"}]}
    text = table([result, {**result, "seed": 18, "violations": []}], 20.0)
    assert "python -m tests.chaos --seed 17" in text and "/tmp/dsr-chaos/seed-17" in text
    assert "--seed 18" not in text
    assert "job-lost 1" in text and "throttle 4" in text and "2 (1 with violations)" in text
