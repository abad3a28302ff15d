"""The circuit breaker on moto with real workers: a run whose jobs all fail stops spending at the next check;
a run with one bad job in a hundred goes on."""

from __future__ import annotations

import json

from click.testing import CliRunner

from chalicelib.monitor import actions as act
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from tests.integration.world import reconcile_until_gone, the_run, what_is_left
from tests.worker_world import run_workers, script

SAMPL = "python: can't open file '/work/sampl.py': [Errno 2] No such file or directory"


def test_a_run_whose_jobs_all_fail_is_stopped_with_the_common_failure_named(started):
    run_workers(started, script(f"import sys; print({SAMPL!r}); sys.exit(2)"))

    result = reconcile(the_run(started))

    kinds = [type(action) for action in result.actions]
    assert kinds[:2] == [act.SaveState, act.CancelFleet] and act.DeleteQueue not in kinds
    reason = result.actions[0].as_dict()["stop_reason"]
    assert reason.startswith("circuit breaker: 12 job(s) failed every attempt and 0 succeeded; all 12 failed job(s) "
                             f"(36 attempts) ended with: {SAMPL}; jobs left are kept in the queue")
    status = CliRunner().invoke(cli, ["status", "--config", str(started.config_path)])
    assert "state         tearing_down (circuit breaker: 12 job(s)" in status.output
    reconcile_until_gone(started)
    assert what_is_left(started)["queues"] == ["TestAppQueue", "user_DeadMessages"]  # kept, though empty
    redriven = CliRunner().invoke(cli, ["redrive", "--config", str(started.config_path)])
    assert redriven.stdout == "sent 12 failed job(s) back to TestAppQueue (12 taken off user_DeadMessages)\n"
    # the run was torn down: nothing takes them until the next start-cluster, and the user is told
    assert redriven.stderr == ("note: no run of TestApp is started (it was torn down), so nothing takes "
                               "them off TestAppQueue yet: start one with 'python cli.py start-cluster FLEETFILE'\n")


def test_one_bad_job_in_a_hundred_does_not_stop_the_run(started, tmp_path):
    more = tmp_path / "more.json"
    more.write_text(json.dumps({"pipeline": "measure", "groups": [{"plate": f"Q{index:05d}"} for index in range(88)]}))
    appended = CliRunner().invoke(cli, ["submit", str(more), "--append", "--config", str(started.config_path)])
    assert appended.exit_code == 0, appended.output
    run_workers(started, script("import sys; sys.exit(2 if sys.argv[1] == 'P00000' else 0)"))

    result = reconcile(the_run(started))

    assert result.observation.failed == 1
    assert act.CancelFleet not in [type(action) for action in result.actions]
    assert not the_run(started).state.tearing_down
