"""No write of the monitor's state is lost (issue 24, item 6).

Several writers share one run's state: the alarm Lambda's reconcile, the schedule's, `cli.py teardown` (and local
mode's stop). Each decides from the state it read; a write over a state that changed since would undo the other's,
and the worst such loss is a user's teardown request overwritten by a tick that read the state before it. Each case
here starts every writer from one read of the run, then lets them write in the worst order.
"""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.aws.s3 import read_object
from chalicelib.monitor.actions import SaveState
from chalicelib.monitor.apply import Applier
from chalicelib.monitor.reconcile import STATE_ATTEMPTS, reconcile
from chalicelib.monitor.state_store import StateContended
from cli import cli
from operations import monitor_loop
from tests.integration.world import (
    AFTER_TEARDOWN,
    JOBS,
    NOTHING_LEFT,
    ConcurrentReconciles,
    drain,
    reconcile_until_gone,
    the_run,
    what_is_left,
    write_jobs,
)

REASON = "teardown requested from the command line"  # what `cli.py teardown` asks with
# A user's teardown keeps the jobs left in their queue; everything else of the run goes.
TORN_DOWN_WITH_JOBS_LEFT = {**NOTHING_LEFT, "queues": ["TestAppQueue", "user_DeadMessages"]}


def summary(account) -> dict:
    return json.loads(read_object(clients.client("s3"), account.settings.AWS_BUCKET,
                                  "monitors/finished/TestApp_summary.json"))


def two_reconciles_and_a_teardown_request_from_one_read(account, request_first: bool) -> None:
    """Two reconciles (the alarm's and the schedule's) and `cli.py teardown`'s request, all from one read of the
    run. With `request_first`, both reconciles plan before the request is written and write only after it: the
    order that lost the request."""
    run = the_run(account)  # the one read every writer starts from
    reconciles = ConcurrentReconciles(lambda: run, extra_parties=1)
    if request_first:
        monitor_loop.request_teardown(run, REASON, Clients(region="us-east-1"))
        reconciles.barrier.wait()
    else:
        reconciles.barrier.wait()
        reconciles.results()
        monitor_loop.request_teardown(run, REASON, Clients(region="us-east-1"))
    reconciles.results()


@pytest.mark.parametrize("state_before", ["absent", "written"])
@pytest.mark.parametrize("request_first", [True, False], ids=["request-written-first", "request-written-last"])
def test_a_teardown_request_survives_two_reconciles_that_read_before_it(started, state_before, request_first):
    if state_before == "written":
        reconcile(the_run(started))  # the run's bookkeeping exists: the writes replace it (If-Match)
    drain(started, count=2)  # two jobs done: each reconcile has bookkeeping to write (the first job has started)

    two_reconciles_and_a_teardown_request_from_one_read(started, request_first)

    state = the_run(started).state
    assert (state.tearing_down, state.stop_reason) == (True, REASON)
    if not request_first:  # the reconciles' bookkeeping is not undone by a request from the read before it
        assert state.jobs_started and state.known_instances
    reconcile_until_gone(started)
    assert what_is_left(started) == TORN_DOWN_WITH_JOBS_LEFT
    assert (summary(started)["stop_reason"], summary(started)["jobs_left"]) == (REASON, JOBS - 2)


def test_a_state_written_after_the_read_is_observed_again_and_acted_on_in_the_same_reconcile(started):
    run = the_run(started)
    rounds = []

    class RequestLandsInBetween(Applier):
        """The user's teardown request is written after this reconcile read the state, before it writes."""

        def apply(self, actions):
            rounds.append([type(action).__name__ for action in actions])
            if len(rounds) == 1:
                monitor_loop.request_teardown(run, REASON)
            return super().apply(actions)

    result = reconcile(run, applier=RequestLandsInBetween)

    # planned from the read: bookkeeping (and the machines' idle alarms), never applied: its SaveState was refused
    assert rounds[0] == ["SaveState", "CreateIdleAlarms"]
    assert rounds[1][:2] == ["SaveState", "CancelFleet"]  # planned again from what S3 holds now
    assert result.observation.state.tearing_down and result.actions[1].fleet_id == run.record.MONITOR_FLEET_ID
    assert what_is_left(started)["fleets"] == []
    state = the_run(started).state
    assert (state.tearing_down, state.stop_reason) == (True, REASON)
    assert sorted(state.known_instances) == sorted(observed.instance_id for observed in result.observation.instances)


def test_a_state_that_keeps_changing_gives_up_this_check_with_one_clear_error_and_loses_nothing(started):
    overtaken = []

    class AlwaysOvertaken(Applier):
        """Another writer changes the state between each round's read and its write."""

        def apply(self, actions):
            other = the_run(started)
            Applier(other, Clients(region="us-east-1")).apply([SaveState(
                empty_observations=other.state.empty_observations + 1, reason="another reconcile")])
            overtaken.append(1)
            return super().apply(actions)

    with pytest.raises(StateContended) as raised:
        reconcile(the_run(started), applier=AlwaysOvertaken)

    assert len(overtaken) == STATE_ATTEMPTS
    assert str(raised.value) == (
        f"run TestApp: its monitor state (s3://test-bucket/monitors/TestApp_monitorstate.json) changed under this "
        f"reconcile {STATE_ATTEMPTS} times in a row (other reconciles or a teardown request at the same moment); "
        "nothing was lost, the next check tries again")
    state = the_run(started).state
    assert state.empty_observations == STATE_ATTEMPTS and state.known_instances == {}  # theirs kept, ours not written


def test_a_reconcile_overtaken_by_a_whole_teardown_leaves_no_state_behind(started):
    reconcile(the_run(started))  # the run's first check wrote its bookkeeping
    drain(started)

    class TornDownInBetween(Applier):
        def apply(self, actions):
            reconcile_until_gone(started)  # another reconcile finishes the run meanwhile
            return super().apply(actions)

    result = reconcile(the_run(started), applier=TornDownInBetween)

    assert what_is_left(started) == NOTHING_LEFT
    assert what_is_left(started)["monitor_objects"] == AFTER_TEARDOWN  # no monitor state written back to life
    assert result.actions == []


def test_the_emulator_decides_conditional_writes_of_the_state_as_s3_does(aws):
    """What the state store relies on: 412 over a changed object or an existing one with If-None-Match, 404 with
    If-Match on one that is gone (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html)."""
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="states")
    first = s3.put_object(Bucket="states", Key="state", Body=b"1", IfNoneMatch="*")["ETag"]
    second = s3.put_object(Bucket="states", Key="state", Body=b"2", IfMatch=first)["ETag"]

    def refused(**condition) -> str:
        try:
            s3.put_object(Bucket="states", Key="state", Body=b"lost", **condition)
        except s3.exceptions.ClientError as error:
            return error.response["Error"]["Code"]
        return "written"

    assert (refused(IfMatch=first), refused(IfNoneMatch="*")) == ("PreconditionFailed", "PreconditionFailed")
    assert s3.get_object(Bucket="states", Key="state")["Body"].read() == b"2"
    s3.delete_object(Bucket="states", Key="state")
    assert refused(IfMatch=second) == "NoSuchKey"


def test_cli_teardown_rides_out_a_monitor_writing_the_state_at_the_same_moment(started):
    """The deployed monitor checks the run while `cli.py teardown` works: each of the teardown's first reconciles
    finds the state changed under it, round after round, until it gives up that check; the next one finishes."""
    state_key = "monitors/TestApp_monitorstate.json"
    bystander = boto3.client("s3", region_name="us-east-1")  # the Lambda's own client: not hooked below
    writes = []

    def monitor_writes_first(params, **_):
        if params.get("Key") != state_key:
            return
        writes.append(params.get("IfMatch") or params.get("IfNoneMatch"))
        if 2 <= len(writes) <= 1 + STATE_ATTEMPTS:  # the request goes through; the first reconcile never does
            state = json.loads(bystander.get_object(Bucket="test-bucket", Key=state_key)["Body"].read())
            state["retired_machine_seconds"] += 1
            bystander.put_object(Bucket="test-bucket", Key=state_key, Body=json.dumps(state).encode())

    session = clients.session("us-east-1", None)
    session.events.register("provide-client-params.s3.PutObject", monitor_writes_first)
    try:
        result = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", str(started.config_path)])
    finally:
        session.events.unregister("provide-client-params.s3.PutObject", monitor_writes_first)

    assert result.exit_code == 0, result.output
    assert len(writes) > 1 + STATE_ATTEMPTS
    assert what_is_left(started) == TORN_DOWN_WITH_JOBS_LEFT
    assert summary(started)["stop_reason"] == REASON


def test_a_first_state_written_after_another_writers_teardown_does_not_outlive_the_run(started):
    """A tick reads a run that has no monitor state yet; `cli.py teardown` (or another tick) then tears it down whole;
    the tick's first SaveState, conditional on there being no state, still succeeds: it must not leave a state behind
    the run (chaos seed 47: `monitors/APP_monitorstate.json` left after the run's teardown)."""
    run = the_run(started)
    assert run.state_etag is None  # never saved: the first reconcile's SaveState creates it
    s3 = clients.client("s3")
    s3.delete_object(Bucket="test-bucket", Key=run.key)  # the other writer's teardown, finished meanwhile

    result = reconcile(run)

    assert result.actions == []  # nothing left to act on
    assert not [key for key in what_is_left(started)["monitor_objects"] if key.endswith("_monitorstate.json")]


def test_jobs_submitted_to_a_started_run_are_in_its_summary(started, tmp_path):
    """`submit --append` after start-cluster: the run's summary counts those jobs submitted and done (start-cluster
    counted only the queue it found; once the appended jobs ran, nothing else showed they were ever sent)."""
    extra = write_jobs(tmp_path, 3, name="more.json")
    result = CliRunner().invoke(cli, ["submit", str(extra), "--append", "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    assert the_run(started).state.jobs_appended == 3

    drain(started)
    reconcile_until_gone(started)

    done = summary(started)
    assert (done["jobs_submitted"], done["jobs_done"], done["jobs_failed"], done["jobs_left"]) == (JOBS + 3, JOBS + 3,
                                                                                                   0, 0)


def test_jobs_counted_by_submit_survive_two_reconciles_that_read_before_it(started):
    """`submit` counts its jobs while the alarm's and the schedule's reconciles, from the same read, write their
    bookkeeping: each write is conditional on the state it read, so none undoes another."""
    drain(started, count=2)  # each reconcile has bookkeeping to write
    run = the_run(started)
    reconciles = ConcurrentReconciles(lambda: run, extra_parties=1)
    monitor_loop.note_appended(run, 4, Clients(region="us-east-1"))
    reconciles.barrier.wait()
    reconciles.results()
    monitor_loop.note_appended(run, 1, Clients(region="us-east-1"))  # from the old read again: read anew, added

    state = the_run(started).state
    assert state.jobs_appended == 5
    assert state.jobs_started and state.known_instances  # the reconciles' bookkeeping is kept too
