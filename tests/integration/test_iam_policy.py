"""The monitor Lambda's IAM policies, as `cli.py monitor-config` writes them (operations/deployed/monitor_policy.py),
grant exactly what the monitor and status code call.

Every AWS operation made from chalicelib/monitor (observe, apply, status, run
discovery) during a whole run's life is recorded with botocore's own event
hook; the test fails if the policy lacks one, or grants an action nothing calls.
Each check runs on the policies written for one run's config and for two runs' configs with other buckets and
dead-letter queues.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from chalicelib import aws as clients
from chalicelib.aws import Clients
from chalicelib.model.settings import Settings
from chalicelib.monitor import service
from chalicelib.monitor.observe import observe
from chalicelib.monitor.reconcile import reconcile
from chalicelib.runfiles import leases
from operations import monitor_loop
from operations.deployed import monitor_policy
from tests.conftest import BASE_CONFIG
from tests.integration.world import drain, fail_every_job, interrupt_one_machine, reconcile_until_gone, the_run

REPO = Path(__file__).resolve().parents[2]
# the runs' configs the policies are written for: the tests' run, and beside it another lab's run
ONE_RUN = [BASE_CONFIG]
TWO_RUNS = [BASE_CONFIG, {**BASE_CONFIG, "APP_NAME": "OtherLab", "AWS_BUCKET": "other-lab-bucket",
                          "SQS_DEAD_LETTER_QUEUE": "OtherLabDeadMessages"}]
# IAM names that differ from the API operation's name
IAM_ACTION = {("s3", "ListObjectsV2"): "s3:ListBucket", ("s3", "HeadObject"): "s3:GetObject",
              ("s3", "DeleteObjects"): "s3:DeleteObject",
              ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility"}
# Granted for the Lambda runtime itself: its own log stream (powertools' metrics are EMF lines in it)
RUNTIME_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
SERVICE_PREFIX = {"monitoring": "cloudwatch", "tagging": "tag"}
# A call AWS also authorizes as another action. PutMetricAlarm's API reference (Tags): "To use this field to set
# tags for an alarm when you create it, you must be signed on with both the cloudwatch:PutMetricAlarm and
# cloudwatch:TagResource permissions" (the monitor's idle alarms always carry the run's tag).
ALSO_AUTHORIZED = {("cloudwatch", "PutMetricAlarm"): "cloudwatch:TagResource"}


def _monitor_frame(stack) -> bool:
    return any("chalicelib/monitor/" in frame.filename or "chalicelib/runfiles/leases.py" in frame.filename
               for frame in stack)


class Calls(set):
    """IAM actions called; `buckets`: the buckets of the S3 calls among them."""

    def __init__(self):
        super().__init__()
        self.buckets: set[str] = set()


@pytest.fixture
def calls(monkeypatch):
    """IAM actions called from the monitor's code, recorded on every session chalicelib.aws makes."""
    recorded = Calls()

    def record(model, **_):
        if _monitor_frame(traceback.extract_stack()):
            service_name = model.service_model.endpoint_prefix
            prefix = SERVICE_PREFIX.get(service_name, service_name)
            recorded.add(IAM_ACTION.get((prefix, model.name), f"{prefix}:{model.name}"))
            if (prefix, model.name) in ALSO_AUTHORIZED:
                recorded.add(ALSO_AUTHORIZED[prefix, model.name])

    def record_bucket(params, **_):
        if _monitor_frame(traceback.extract_stack()):
            recorded.buckets.add(params["Bucket"])

    def new_session(region, profile):
        session = clients.new_session(region, profile)
        session.events.register("before-call", record)
        session.events.register("before-parameter-build.s3", record_bucket)
        return session

    with clients.sessions_from(new_session):
        yield recorded


@pytest.fixture(params=[ONE_RUN, TWO_RUNS], ids=["one config", "two configs"])
def written(request, tmp_path) -> dict[str, dict]:
    """The .chalice files `monitor-config` writes for the runs' configs ("runs"): "config", "monitor", "api"."""
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    (chalice_dir / "config.json").write_text((REPO / ".chalice" / "config.json").read_text())
    paths = []
    for number, config in enumerate(request.param):
        paths.append(tmp_path / f"config{number}.json")
        paths[-1].write_text(json.dumps(config))
    watched = monitor_policy.Watched.of(Settings.load(path) for path in paths)
    monitor_policy.write(monitor_policy.deployment(chalice_dir, "dev", watched).files)
    return {"runs": request.param, **{name: json.loads((chalice_dir / file).read_text()) for name, file in (
        ("config", "config.json"), ("monitor", "policy-dev.json"), ("api", "policy-api-dev.json"))}}


def watched_buckets(written: dict) -> list[str]:
    return written["config"]["stages"]["dev"]["environment_variables"]["MONITOR_BUCKETS"].split(",")


def granted(policy: dict) -> set[str]:
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_policy_grants_exactly_what_a_whole_run_calls(started, victim, legacy_run, ds_image_run, calls, written):
    """A run of this version (an EC2 Fleet), one the previous version started (a spot fleet request) and one in DS
    image mode whose jobs all failed (its summary counts them from the dead-letter queue), each from its start to its
    teardown."""
    run = the_run(started)
    machines = observe(run, Clients(region="us-east-1")).active_instance_ids
    service.status_of(run)
    for short in (victim, legacy_run):  # each kind of fleet short of its target: its history says why
        interrupt_one_machine(short)
        service.status_of(the_run(short))
    # a machine that joined the cluster, as the ECS agent registers it
    clients.client("ecs").register_container_instance(
        cluster="runs", instanceIdentityDocument=json.dumps({"instanceId": machines[0]}))
    # scale down: one machine busy, the other idle and released
    sqs = clients.client("sqs")
    held = sqs.receive_message(QueueUrl=run.record.QUEUE_URL, MaxNumberOfMessages=1, VisibilityTimeout=600)
    lease = leases.Lease(clients.client("s3"), run.bucket, run.app_name, machines[0], "w")
    lease.hold("P0")
    drain(started)
    reconcile(the_run(started))
    sqs.delete_message(QueueUrl=run.record.QUEUE_URL, ReceiptHandle=held["Messages"][0]["ReceiptHandle"])
    lease.release()
    service.scan_buckets(["test-bucket"])
    reconcile_until_gone(started, limit=15)
    service.find_status("TestApp", ["test-bucket"])  # a finished run: its summary
    # the previous version's run: scaled down to nothing, then torn down
    drain(legacy_run)
    reconcile_until_gone(legacy_run, limit=15)
    fail_every_job(ds_image_run)
    reconcile_until_gone(ds_image_run, limit=15)
    summary = service.find_status("DsImage", ["test-bucket"])["summary"]
    assert (summary["jobs_failed"], summary["jobs_done"]) == (2, 0)

    needed, policy = calls - RUNTIME_ACTIONS, written["monitor"]
    assert calls.buckets == {"test-bucket"} <= set(watched_buckets(written))
    assert not needed - granted(policy), f"the policy lacks: {sorted(needed - granted(policy))}"
    assert not granted(policy) - RUNTIME_ACTIONS - needed, (
        f"granted but never called: {sorted(granted(policy) - needed)}")


# SQS has no way to read a queue's messages but receiving them: the API looks at the shared dead-letter queue for
# a DS-image run's failed jobs (operations/triage.py `dead_letter_failures`) and makes each visible again at once.
DEAD_LETTER_LOOK = {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"}


def test_the_status_api_policy_grants_exactly_what_status_calls(started, ds_image_run, legacy_run, calls, written):
    fail_every_job(ds_image_run)
    run = the_run(started)
    clients.client("ecs").register_container_instance(
        cluster="runs", instanceIdentityDocument=json.dumps({"instanceId": observe(
            run, Clients(region="us-east-1")).active_instance_ids[0]}))
    calls.clear()
    service.all_statuses(["test-bucket"])  # GET /runs
    service.find_status("TestApp", ["test-bucket"])  # GET /runs/TestApp, live
    for short in (ds_image_run, legacy_run):  # each kind of fleet short of its target: its history says why
        interrupt_one_machine(short)
        service.find_status(short.settings.APP_NAME, ["test-bucket"])
    service.find_failed("TestApp", ["test-bucket"])  # GET /runs/TestApp/failed
    # GET /runs/DsImage/failed: its messages in the dead-letter queue
    assert len(service.find_failed("DsImage", ["test-bucket"])["failed"]) == 2
    api_calls = set(calls)
    drain(started)
    monitor_loop.request_teardown(the_run(started), "asked for by the test")
    calls.clear()
    service.find_status("TestApp", ["test-bucket"])  # GET /runs/TestApp while it is torn down
    api_calls |= calls
    reconcile_until_gone(started, limit=15)  # the monitor's calls: not the API's
    calls.clear()
    service.find_status("TestApp", ["test-bucket"])  # finished: its summary
    service.find_status("Nobody", ["test-bucket"])  # unknown: 404
    needed, policy = (api_calls | calls) - RUNTIME_ACTIONS, written["api"]
    assert calls.buckets == {"test-bucket"} <= set(watched_buckets(written))
    assert not needed - granted(policy), f"the API policy lacks: {sorted(needed - granted(policy))}"
    assert not granted(policy) - RUNTIME_ACTIONS - needed, (
        f"granted but never called: {sorted(granted(policy) - needed)}")
    assert all(action.split(":")[1].startswith(("Describe", "Get", "List")) for action in needed - DEAD_LETTER_LOOK)


def test_the_status_api_may_receive_messages_of_the_dead_letter_queues_only(written):
    """Receiving hides a message and changing its visibility can hide it for 12 hours: the API may do both on
    the runs' dead-letter queues (SQS_DEAD_LETTER_QUEUE of each config), never on a run's job queue.
    tests/integration/test_monitor_role_enforced.py checks it under the IAM engine."""
    statements = written["api"]["Statement"]
    reach = {action: [statement["Resource"] for statement in statements if action in statement["Action"]]
             for action in DEAD_LETTER_LOOK}
    queues = sorted({settings.get("SQS_DEAD_LETTER_QUEUE", "user_DeadMessages") for settings in written["runs"]})
    assert reach == {action: [[f"arn:aws:sqs:*:*:{queue}" for queue in queues]] for action in DEAD_LETTER_LOOK}
    assert not any(action in ("*", "sqs:*") for statement in statements for action in statement["Action"])


def test_s3_access_is_only_to_the_watched_buckets_run_records(written):
    """S3 is the one service here whose resources IAM can scope: the watched buckets' monitors/ (records)
    runs/ (the workers' leases and failure records) and exportedlogs/ (CreateExportTask writes
    with its caller's rights) prefixes."""
    buckets = watched_buckets(written)
    assert buckets == sorted({settings["AWS_BUCKET"] for settings in written["runs"]})
    resources = set()
    for statement in written["monitor"]["Statement"] + written["api"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(action.startswith("s3:") for action in actions):
            resources.update([statement["Resource"]] if isinstance(statement["Resource"], str)
                             else statement["Resource"])
    assert resources == {f"arn:aws:s3:::{bucket}" for bucket in buckets} | {
        f"arn:aws:s3:::{bucket}/{prefix}*" for bucket in buckets for prefix in ("monitors/", "runs/", "exportedlogs/")}
