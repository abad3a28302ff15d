"""One fleet per run, even when two `start-cluster`s of one run start at once (the run's claim, an S3
conditional write of monitors/APP_NAME_claim.json; see operations/start/cluster.py `claim_run`).

The race is forced, not hoped for: both threads pass preflight and find no fleet, then wait at a barrier
placed right before the claim's conditional PutObject (botocore's own event hook, our code unchanged), so
both claim at the same moment. The winner's fleet request is held until the loser has answered, so the
loser always meets a claim with no fleet yet (the case that must refuse, rather than resume). Runs both on
moto in-process and on the threaded moto server (real HTTP, one thread per request).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.model.errors import StartConflict
from chalicelib.model.names import claim_key, record_key
from chalicelib.monitor.runs import load_run
from cli import cli
from localrun.retried import retried
from operations import monitor_loop
from operations.setup import resources
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.integration.world import Account, aws_session, write_jobs
from tests.integration.world import live_fleets as world_live_fleets

CLAIM = claim_key("TestApp")


@pytest.fixture(params=["aws", "moto_server"])
def account(request, tmp_path, monkeypatch):
    request.getfixturevalue(request.param)
    monkeypatch.chdir(tmp_path)  # start-cluster writes files/ into the working directory
    made = Account(tmp_path)
    result = CliRunner().invoke(cli, ["submit", str(write_jobs(tmp_path, 25)), "--config", str(made.config_path)])
    assert result.exit_code == 0, result.output
    return made


def start(account, **kwargs):
    return cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0,
                                 poll_seconds=0, **kwargs)


def live_fleets() -> list[str]:
    return world_live_fleets(clients.client("ec2"))


def stored_claim() -> dict | None:
    try:
        answer = clients.client("s3").get_object(Bucket="test-bucket", Key=CLAIM)
    except clients.client("s3").exceptions.NoSuchKey:
        return None
    return {**json.loads(answer["Body"].read()), "etag": answer["ETag"]}


def write_claim(**fields) -> None:
    clients.client("s3").put_object(Bucket="test-bucket", Key=CLAIM, Body=json.dumps(fields).encode())


def since(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def held_message(pid, host, at) -> str:
    return (f"run 'TestApp' is being started by another start-cluster (pid {pid} on {host}, since {since(at)}); "
            "let it finish, then see 'python cli.py status --config config.json' (a claim left by a "
            "start-cluster that died is taken over after 10 minutes)")


def start_twice_at_once(account) -> list:
    """Two start_cluster calls in two threads, claiming at the same moment; returns each one's result or error."""
    barrier = threading.Barrier(2, timeout=30)
    one_answered = threading.Event()
    at_barrier: set[int] = set()

    def before_claim(params, **_):
        if params.get("Key") == CLAIM and params.get("IfNoneMatch") == "*" and threading.get_ident() not in at_barrier:
            at_barrier.add(threading.get_ident())
            barrier.wait()

    def before_fleet_request(**_):
        one_answered.wait(30)  # the winner requests its fleet only once the loser has answered

    session = aws_session()
    session.events.register("provide-client-params.s3.PutObject", before_claim)
    session.events.register("provide-client-params.ec2.CreateFleet", before_fleet_request)
    outcomes: list = [None, None]

    def one(index: int) -> None:
        try:
            outcomes[index] = start(account)
        except BaseException as error:  # noqa: BLE001 - the test's point: report what each one got
            outcomes[index] = error
        finally:
            one_answered.set()

    threads = [threading.Thread(target=one, args=(index,)) for index in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    finally:
        session.events.unregister("provide-client-params.s3.PutObject", before_claim)
        session.events.unregister("provide-client-params.ec2.CreateFleet", before_fleet_request)
    assert len(at_barrier) == 2, "both start-clusters must have reached the claim"
    return outcomes


def test_two_start_clusters_at_once_make_one_fleet_and_one_refuses_then_teardown_leaves_none(account):
    outcomes = start_twice_at_once(account)
    [started] = [item for item in outcomes if isinstance(item, cluster.StartResult)]
    [refused] = [item for item in outcomes if not isinstance(item, cluster.StartResult)]
    assert isinstance(refused, StartConflict), refused
    fleets = clients.client("ec2").describe_fleets()["Fleets"]
    assert [item["FleetId"] for item in fleets] == [started.record.MONITOR_FLEET_ID]
    record = json.loads(clients.client("s3").get_object(Bucket="test-bucket", Key=record_key("TestApp"))["Body"]
                        .read())
    assert record["MONITOR_FLEET_ID"] == started.record.MONITOR_FLEET_ID
    claim = stored_claim()
    assert (claim["fleet"], claim["host"], claim["pid"]) == (started.record.MONITOR_FLEET_ID, socket.gethostname(),
                                                             os.getpid())
    assert str(refused) == held_message(os.getpid(), socket.gethostname(), claim["at"])
    assert not started.resumed and f"claimed the run: s3://test-bucket/{CLAIM}" in started.changes

    result = CliRunner().invoke(cli, ["teardown", "--period", "0", "--config", "config.json"])
    assert result.exit_code == 0, result.output
    assert live_fleets() == []
    assert stored_claim() is None  # teardown removes the claim with the record

    # a claim left behind is spent (its fleet is over): the next run takes it over
    resources.setup(account.settings)  # teardown removed the service
    again = start(account)
    assert not again.resumed
    assert live_fleets() == [again.record.MONITOR_FLEET_ID] != [started.record.MONITOR_FLEET_ID]
    assert stored_claim()["fleet"] == again.record.MONITOR_FLEET_ID


def test_a_claim_older_than_the_limit_is_taken_over(account):
    at = time.time() - cluster.CLAIM_STALE_SECONDS - 60
    write_claim(token="abc", host="build-host-7", pid=4242, at=at)
    result = start(account)
    assert not result.resumed
    assert live_fleets() == [result.record.MONITOR_FLEET_ID]
    assert (f"took over the run's claim from pid 4242 on build-host-7 (made 11 minutes ago, longer than 10 "
            f"minutes): s3://test-bucket/{CLAIM}") in result.changes
    claim = stored_claim()
    assert claim["token"] != "abc" and claim["fleet"] == result.record.MONITOR_FLEET_ID


def test_a_fresh_claim_of_a_process_gone_from_this_host_is_taken_over(account):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    write_claim(token="abc", host=socket.gethostname(), pid=ended.pid, at=time.time())
    result = start(account)
    assert live_fleets() == [result.record.MONITOR_FLEET_ID]
    assert (f"took over the run's claim from pid {ended.pid} on {socket.gethostname()} (that process has ended): "
            f"s3://test-bucket/{CLAIM}") in result.changes
    assert stored_claim()["pid"] == os.getpid()


def test_a_fresh_claim_of_a_live_process_refuses_and_changes_nothing(account):
    at = time.time() - 30
    write_claim(token="abc", host="build-host-7", pid=4242, at=at)
    before = stored_claim()
    with pytest.raises(StartConflict) as refused:
        start(account)
    assert str(refused.value) == held_message(4242, "build-host-7", at)
    assert live_fleets() == [] and stored_claim() == before


def test_the_cli_prints_the_refusal_as_one_line_and_exits_2(account):
    at = time.time()
    write_claim(token="abc", host="build-host-7", pid=4242, at=at)
    result = CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: " + held_message(4242, "build-host-7", at) + "\n"
    assert result.stdout == "" and "Traceback" not in result.output
    assert live_fleets() == []


def test_a_run_the_monitor_is_tearing_down_is_not_started_again(account):
    first = start(account)
    run = load_run(clients.client("s3"), "test-bucket", record_key("TestApp"))
    # the monitor's first teardown steps: its state says so, then the fleet is cancelled
    monitor_loop.request_teardown(run, "teardown requested from the command line")
    clients.client("ec2").delete_fleets(FleetIds=[first.record.MONITOR_FLEET_ID], TerminateInstances=True)
    result = CliRunner().invoke(cli, ["start-cluster", "fleet.json", "--config", "config.json", "--wait", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: run 'TestApp' is still being torn down by the monitor (teardown requested from the command line); "
        "start it again once 'python cli.py status --config config.json' says it is finished\n")
    assert live_fleets() == []


def test_a_start_cluster_whose_claim_was_taken_over_deletes_its_fleet(account):
    """It stalled past the limit between its claim and its fleet request; another took the claim over."""
    def taken_over(**_):
        write_claim(token="other", host="build-host-7", pid=4242, at=time.time())

    session = aws_session()
    session.events.register("provide-client-params.ec2.CreateFleet", taken_over)
    try:
        with pytest.raises(StartConflict, match=r"^run 'TestApp': another start-cluster took over this one's claim "
                                                 r"\(s3://test-bucket/monitors/TestApp_claim\.json\) while it was "
                                                 r"requesting its fleet, so the fleet fleet-\S+ it had just requested "
                                                 r"is "
                                                 r"deleted; see 'python cli\.py status --config config\.json'$"):
            start(account)
    finally:
        session.events.unregister("provide-client-params.ec2.CreateFleet", taken_over)
    assert live_fleets() == []
    assert stored_claim()["token"] == "other"


def test_a_crash_between_the_fleet_request_and_the_claim_update_resumes_the_tagged_fleet(account, monkeypatch):
    def crash(*_args, **_kwargs):
        raise RuntimeError("start-cluster died")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(cluster, "_record_fleet_in_claim", crash)
        start(account)
    [fleet_id] = live_fleets()
    assert "fleet" not in stored_claim()
    result = start(account)
    assert result.resumed and fleet_id == result.record.MONITOR_FLEET_ID
    assert live_fleets() == [fleet_id]


def test_a_claim_naming_a_live_fleet_resumes_that_fleet(account, monkeypatch):
    """The second start-cluster came after the first's fleet request but EC2 did not list it yet (eventually
    consistent): the claim names the fleet, so the run is resumed rather than started twice."""
    first = start(account)
    clients.client("s3").delete_object(Bucket="test-bucket", Key=record_key("TestApp"))
    monkeypatch.setattr(cluster, "_live_fleet_id", lambda *_: None)
    second = start(account)
    assert second.resumed and second.record.MONITOR_FLEET_ID == first.record.MONITOR_FLEET_ID
    assert live_fleets() == [first.record.MONITOR_FLEET_ID]
    assert not any(re.match(r"(claimed|took over|requested)", change) for change in second.changes)


def test_chaos_seed_187_local_mode_makes_a_failed_start_cluster_again_and_takes_its_own_claim_over(account):
    """Seed 187: S3 answered 500 past botocore's attempts during local mode's start-cluster; it ended with the run set
    up and its jobs sent and nothing to tear them down. Local mode makes start-cluster again (localrun/retried.py)
    with one claim token for all its attempts: the claim an attempt left without a fleet is its own. Without the
    token the next attempt meets a claim of a live process, this one, and refuses."""
    failures = []

    def outage(**_):
        if len(failures) < 1:
            failures.append("CreateFleet")
            raise ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an internal error."},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, "CreateFleet")

    session = aws_session()
    session.events.register("provide-client-params.ec2.CreateFleet", outage)
    said, paused = [], []
    try:
        with pytest.raises(StartConflict, match="being started by another start-cluster"):
            retried(lambda: start(account), "start-cluster", said.append, 2, 5.0, paused.append)
        failures.clear()
        clients.client("s3").delete_object(Bucket="test-bucket", Key=CLAIM)
        result = retried(lambda: start(account, claim_token="local-run-7"), "start-cluster", said.append, 2, 5.0,
                         paused.append)
    finally:
        session.events.unregister("provide-client-params.ec2.CreateFleet", outage)
    assert paused == [5.0, 5.0] and said[-1].startswith("warning: start-cluster failed (An error occurred "
                                                        "(InternalError)")
    assert not result.resumed and live_fleets() == [result.record.MONITOR_FLEET_ID]
    assert (f"took over the run's claim from pid {os.getpid()} on {socket.gethostname()} (an earlier attempt of this "
            f"start-cluster, which failed): s3://test-bucket/{CLAIM}") in result.changes
    assert stored_claim()["fleet"] == result.record.MONITOR_FLEET_ID
