"""The campaign in CI: a few fixed seeds, each a whole scenario (several local runs on one emulator under faults)
checked against the invariants. `python -m tests.chaos --seed N` replays one with its logs kept."""

from __future__ import annotations

import pytest

from tests.chaos.campaign import CHECK_SECONDS, seed_in_process, table
from tests.chaos.harness import limit_seconds
from tests.chaos.scenario import FAULT_KINDS, Scenario, scenario

# Between them every kind of fault (tests/chaos/scenario.py FAULT_KINDS), on under 100 jobs each: a seed takes
# about a minute and a half of two busy cores, and `make test` runs them on xdist workers side by side.
CI_SEEDS = (203, 2808)


def kinds_of(plan: Scenario) -> set[str]:
    spot = {"spot"} if any(run.interrupt_rate for run in plan.runs) else set()
    attack = {"attack"} if any(mode.startswith("attack:") for run in plan.runs for _, mode in run.jobs) else set()
    return {event.kind for event in plan.events} | spot | attack


# pytest.ini's 300 s is for a test; a seed's own limits (its runs', then its checks') are what bound this one
@pytest.mark.timeout(limit_seconds(scenario(max(CI_SEEDS, key=lambda seed: scenario(seed).jobs))) + CHECK_SECONDS + 60)
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_seed_of_the_campaign_breaks_no_invariant(seed, tmp_path):
    result = seed_in_process(seed, tmp_path)
    assert result["violations"] == [], table([result], result["seconds"])
    # played: what the scenario holds; at least what comes with the runs' start (an event due after every run has
    # ended is not played, and how far a run gets by then depends on the machine's load)
    played = {kind for kind, count in result["faults"].items() if count and kind in FAULT_KINDS}
    assert kinds_of(scenario(seed)) & {"spot", "attack"} <= played <= kinds_of(scenario(seed))


def test_the_ci_seeds_inject_every_kind_of_fault_between_them():
    assert set().union(*(kinds_of(scenario(seed)) for seed in CI_SEEDS)) == set(FAULT_KINDS)


def test_a_scenario_is_a_pure_function_of_its_seed():
    assert scenario(203) == scenario(203)
    assert scenario(203).describe() == scenario(203).describe()
    assert scenario(203) != scenario(204)
    for seed in range(1, 60):
        plan = scenario(seed)
        assert 2 <= len(plan.runs) <= 5 and all(20 <= len(run.jobs) <= 200 for run in plan.runs)
        assert len({run.app_name for run in plan.runs}) == len(plan.runs)
        assert [event.at for event in plan.events] == sorted(event.at for event in plan.events)


def test_a_failing_seed_names_its_replay_command_and_its_kept_logs():
    result = {"seed": 17, "jobs": 40, "seconds": 12.0, "log_dir": "/tmp/dsr-chaos/seed-17",
              "faults": {"throttle": 2, "requests failed": 30},
              "violations": [{"kind": "job-lost", "run": "Chaos17R0", "detail": "j003: neither done nor failed"}]}
    text = table([result, {**result, "seed": 18, "violations": []}], 20.0)
    assert "python -m tests.chaos --seed 17" in text and "/tmp/dsr-chaos/seed-17" in text
    assert "--seed 18" not in text
    assert "job-lost 1" in text and "throttle 4" in text and "2 (1 with violations)" in text
