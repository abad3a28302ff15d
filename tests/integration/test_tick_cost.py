"""What a steady tick costs: a converged run's queue depth and fleet state, and nothing else, while the Lambda keeps
its last full look (steady.py); any change, an alarm, a state written by someone else or an old look is a full
observe, and no action is ever taken without one.

Every AWS call is counted at botocore's before-call event, on every client our code makes (`aws.sessions_from`), as
bench/bench_monitor.py counts them.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib import aws
from chalicelib.aws import Clients
from chalicelib.aws.ec2 import LIVE_FLEET_STATES, fleet_state
from chalicelib.monitor import actions as act
from chalicelib.monitor import service
from chalicelib.monitor.budget import CONCURRENT_RUNS
from chalicelib.monitor.reconcile import reconcile
from chalicelib.monitor.steady import FULL_OBSERVE_SECONDS, LastLooks
from operations.monitor_loop import request_teardown
from tests.conftest import REGION
from tests.hooked import hooked_sessions
from tests.integration.world import drain, reconcile_until_gone, the_run

# What the steady tick of one converged run reads: its record and state are listed (one listing for the bucket, their
# ETags unchanged), the region's fleets listed (one listing for every run of the region), then its queue's depth.
STEADY = Counter({"s3.ListObjectsV2": 1, "sqs.GetQueueAttributes": 1, "ec2.DescribeFleets": 1})


@contextmanager
def counted() -> Iterator[Counter[str]]:
    calls: Counter[str] = Counter()

    def count(model, **_: object) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    with hooked_sessions(("before-call", count)):
        yield calls


def tick(bucket: str, looks: LastLooks, full_look: bool = False) -> tuple[service.RunOutcome, Counter[str]]:
    """The schedule's tick as app.py makes it (an alarm's with `full_look`), its one run's outcome and its calls."""
    [outcome], calls = ticks(bucket, looks, full_look)
    return outcome, calls


def ticks(bucket: str, looks: LastLooks, full_look: bool = False) -> tuple[list[service.RunOutcome], Counter[str]]:
    """The same for every run of the bucket, as many at a time as the Lambda reconciles them."""
    with counted() as calls:
        runs, unreadable = service.scan_buckets([bucket])
        assert not unreadable
        outcomes = service.reconcile_runs(runs, looks=looks, full_look=full_look, concurrency=CONCURRENT_RUNS)
    assert [outcome.error for outcome in outcomes if outcome.error] == []
    return outcomes, calls


def converged(account) -> LastLooks:
    """The run after the ticks that bring it to rest: the first acts (state, idle alarms), the second plans nothing
    and is remembered."""
    looks = LastLooks()
    first, _ = tick(account.settings.AWS_BUCKET, looks)
    assert first.result is not None and first.result.actions
    second, _ = tick(account.settings.AWS_BUCKET, looks)
    assert second.result is not None and second.result.actions == []
    return looks


def fleet_is_live(account) -> bool:
    state = fleet_state(aws.client("ec2"), the_run(account).record.MONITOR_FLEET_ID)
    return state is not None and state.state in LIVE_FLEET_STATES


def test_a_steady_tick_of_a_converged_run_reads_its_queue_and_fleet_only(started):
    looks = converged(started)
    for _ in range(3):
        outcome, calls = tick(started.settings.AWS_BUCKET, looks)
        assert outcome.result is not None and outcome.result.actions == []
        assert calls == STEADY
    # what the tick reports (logs, metrics) is the run as it is
    assert (outcome.result.observation.visible, len(outcome.result.observation.instances)) == (12, 2)


def test_converged_runs_share_one_listing_of_the_regions_fleets_and_each_reads_its_queue(started, victim):
    """EC2 throttles each Describe action per account (100 calls, then 20 a second): a thousand runs cannot each
    ask for their fleet every minute. Their steady tick lists the region's fleets once."""
    looks = LastLooks()
    for _ in range(3):  # the first ticks act (state, idle alarms); then both runs are at rest
        outcomes, calls = ticks(started.settings.AWS_BUCKET, looks)
    assert sorted(outcome.run.app_name for outcome in outcomes) == ["TestApp", "Victim"]
    assert all(outcome.result is not None and outcome.result.actions == [] for outcome in outcomes)
    assert calls == Counter({"s3.ListObjectsV2": 1, "ec2.DescribeFleets": 1, "sqs.GetQueueAttributes": 2})


def test_a_run_whose_fleet_the_listing_shows_changed_is_looked_at_with_a_fresh_read(started):
    """The listing only ever says "nothing to do": a run whose fleet moved gets a full look that reads it again."""
    looks = converged(started)
    ec2 = aws.client("ec2")
    fleet_id = the_run(started).record.MONITOR_FLEET_ID
    ec2.modify_fleet(FleetId=fleet_id, TargetCapacitySpecification={"TotalTargetCapacity": 1})
    outcome, calls = tick(started.settings.AWS_BUCKET, looks)
    assert calls["ec2.DescribeFleets"] == 2 and calls["ecs.DescribeServices"] == 1
    assert outcome.result is not None and outcome.result.observation.fleet_target == 1


def test_without_the_lambdas_looks_every_check_observes_fully(started):
    """cli.py monitor, local mode, a cold container: no looks passed, the same full observe as ever."""
    converged(started)
    with counted() as calls:
        assert reconcile(the_run(started)).actions == []
    assert sum(calls.values()) > 10 and calls["cloudwatch.DescribeAlarms"] and calls["ecs.DescribeServices"]


def test_a_change_in_the_queue_makes_the_next_tick_a_full_one(started):
    looks = converged(started)
    drain(started, 3)  # three jobs done
    outcome, calls = tick(started.settings.AWS_BUCKET, looks)
    assert calls["ecs.DescribeServices"] == 1 and calls["cloudwatch.DescribeAlarms"] >= 1
    assert outcome.result is not None and outcome.result.observation.visible == 9
    # it saved the new numbers (a point of the series): the state changed, so the next is a full look again
    assert [type(action) for action in outcome.result.actions] == [act.SaveState]
    _, calls = tick(started.settings.AWS_BUCKET, looks)
    assert calls["ecs.DescribeServices"] == 1
    _, calls = tick(started.settings.AWS_BUCKET, looks)
    assert calls == STEADY


def test_a_remembered_look_never_leads_to_an_action_without_a_full_observe(started):
    """The queue's run tag is something the steady tick cannot see; the queue emptying is. The tick that follows
    is a full one, which finds the queue no longer the run's: refused, nothing cancelled."""
    looks = converged(started)
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=started.settings.SQS_QUEUE_NAME)["QueueUrl"]
    sqs.untag_queue(QueueUrl=url, TagKeys=["dsr:app"])
    drain(started)
    for _ in range(3):  # an empty queue on two ticks would tear a run down
        outcome, calls = tick(started.settings.AWS_BUCKET, looks)
        assert outcome.result is not None and outcome.result.actions == []
        assert "does not carry the tag dsr:app=TestApp" in outcome.result.observation.refused
        assert calls["sqs.ListQueueTags"] == 1
    assert fleet_is_live(started)
    assert not the_run(started).state.tearing_down


def test_a_fleet_whose_run_tag_went_is_looked_at_fully_and_refused(started):
    looks = converged(started)
    fleet_id = the_run(started).record.MONITOR_FLEET_ID
    aws.client("ec2").delete_tags(Resources=[fleet_id], Tags=[{"Key": "dsr:app"}])
    drain(started)
    outcome, _ = tick(started.settings.AWS_BUCKET, looks)
    assert outcome.result is not None and outcome.result.actions == []
    assert "does not carry the tag" in outcome.result.observation.refused
    tick(started.settings.AWS_BUCKET, looks)
    assert fleet_is_live(started)


def test_a_teardown_request_is_acted_on_at_the_next_tick(started):
    """The state another writer changed (its ETag is not the one the look saw) is a full look at once."""
    looks = converged(started)
    request_teardown(the_run(started), "user asked")
    outcome, _ = tick(started.settings.AWS_BUCKET, looks)
    assert outcome.result is not None
    assert act.CancelFleet in [type(action) for action in outcome.result.actions]
    assert not fleet_is_live(started)


def test_an_alarm_tick_always_observes_fully(started):
    looks = converged(started)
    outcome, calls = tick(started.settings.AWS_BUCKET, looks, full_look=True)
    assert outcome.result is not None and outcome.result.actions == []
    assert calls["ecs.DescribeServices"] == 1 and calls["cloudwatch.DescribeAlarms"] >= 1
    _, calls = tick(started.settings.AWS_BUCKET, looks)  # the alarm's look is remembered as any full one
    assert calls == STEADY


def test_a_converged_run_is_observed_fully_at_least_every_full_observe_seconds(started):
    looks = LastLooks()
    clients = Clients(region=REGION)
    start = time.time()
    assert reconcile(the_run(started), clients, now=start, looks=looks).actions
    assert reconcile(the_run(started), clients, now=start + 1, looks=looks).actions == []

    def calls_at(now: float) -> Counter[str]:
        run = the_run(started)
        with counted() as calls:
            assert reconcile(run, Clients(region=REGION), now=now, looks=looks).actions == []
        return calls

    steady = Counter({"sqs.GetQueueAttributes": 1, "ec2.DescribeFleets": 1})
    limit = looks.limit(the_run(started))
    assert FULL_OBSERVE_SECONDS / 2 <= limit <= FULL_OBSERVE_SECONDS
    assert calls_at(start + 60) == steady
    assert calls_at(start + limit) == steady  # the look was at start + 1
    assert calls_at(start + 1.001 + limit)["ecs.DescribeServices"] == 1
    assert calls_at(start + 2 + limit) == steady  # that full look is the new one
    assert calls_at(start + 1)["ecs.DescribeServices"] == 1  # a clock gone back: no look is trusted


def test_the_scan_reads_a_record_or_state_again_only_when_it_changed(started):
    bucket = started.settings.AWS_BUCKET
    converged(started)
    with counted() as calls:
        [run], _ = service.scan_buckets([bucket])
    assert calls == Counter({"s3.ListObjectsV2": 1})
    assert run.state_etag == aws.client("s3").head_object(Bucket=bucket, Key=run.state_key)["ETag"]
    request_teardown(run, "user asked")
    with counted() as calls:
        [run], _ = service.scan_buckets([bucket])
    assert calls == Counter({"s3.ListObjectsV2": 1, "s3.GetObject": 1})
    assert run.state.tearing_down
    assert run.state_etag == aws.client("s3").head_object(Bucket=bucket, Key=run.state_key)["ETag"]


def test_a_running_runs_full_look_finds_its_alarms_by_name_and_teardown_by_tag_too(started):
    """The tag lookup pages through every machine alarm (21 calls at 1,000 machines): only a teardown needs it, for
    the run's alarms no name of its record gives."""
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="TestApp-made-by-hand", MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                ComparisonOperator="LessThanThreshold", Tags=[{"Key": "dsr:app", "Value": "TestApp"}])
    for _ in range(2):
        with counted() as calls:
            reconcile(the_run(started))
        assert calls["resourcegroupstaggingapi.GetResources"] == 0 and calls["cloudwatch.DescribeAlarms"] >= 1
    drain(started)
    reconcile_until_gone(started)
    assert cloudwatch.describe_alarms(AlarmNamePrefix="TestApp")["MetricAlarms"] == []


def test_runs_started_together_spread_their_full_looks_over_the_ticks(started):
    """Each run trusts its last look for its own time between half of FULL_OBSERVE_SECONDS and all of it: a hundred
    runs started on one tick do not all look fully again on one later tick."""
    looks = LastLooks()
    run = the_run(started)
    limits = [looks.limit(dataclasses.replace(run, key=f"monitors/Run{index:03d}SpotFleetRequestId.json"))
              for index in range(100)]
    assert all(FULL_OBSERVE_SECONDS / 2 <= limit <= FULL_OBSERVE_SECONDS for limit in limits)
    ticks = Counter(int(limit // 60) for limit in limits)  # the schedule's minute each would look fully in
    assert len(ticks) >= 3 and max(ticks.values()) <= 50, ticks
