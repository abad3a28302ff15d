"""The invariants a chaos seed must hold at its end (issue 30 item 2), checked against the emulator itself.

`check(world) -> [Violation]` reads the emulator at `world.endpoint` (not the fault proxy: the checks see no
faults), each run's config and local mode's `--out`, and the audit of destructive calls (tests/chaos/audit.py).
Each run's queue is counted first, and its messages read before the dead-letter queue is: a receive counts towards
maxReceiveCount, so a look at a queue can move a message to the dead-letter queue, never back.
Kinds of violation:

- job-lost: a job neither done (its outputs complete with the worker's `_SUCCESS` marker, worker/done.py's rule),
  nor listed by `cli.py failed` for its run (operations/triage.failed_jobs, what the command calls), nor, for a
  run torn down early, "not run" in its summary.json (or unknown to it: a job `submit --append` sent), nor, for
  such a run or one a redrive or an append reached, waiting in its queue (kept by the teardown for the next
  start-cluster: jobs sent after the teardown or after the monitor saw the queue drained). A run in DS image mode
  (COMMAND null: its image's own worker, tests/chaos/ds_worker.py) is done by DS's rule, EXPECTED_NUMBER_FILES
  outputs under the output root then the job id, with no marker; its failed jobs are its messages in the shared
  dead-letter queue (what `failed` lists for it); it has no summary.json, so its unfinished jobs, torn down early,
  must wait in its kept queue;
- job-twice: a job done and listed failed, or in two of the summary's lists;
- wrong-end: a fail/hang job done, or failed with a cause it cannot have; an ok/sleep/flaky/attack job failed for
  a reason of its own (see `_wrong_failure` for what a fault may explain);
- leftover: anything of a run left after its teardown (each service's listing, the tagging API, `monitors/`,
  `runs/APP/leases/` and the failure journal's entries from before the teardown), beside what ARCHITECTURE.md,
  README.md and docs/architecture/monitor.md say stays: the summary, failure records and redrive's sent-back
  notes, log groups (kept 60 days), `ecsconfigs/`, the exported logs, and a queue still holding jobs (a run
  stopped early, or jobs sent after the drain);
- cross-run: an audit line whose caller acted on another run's resource, on the bystander, or on something of no
  run of the seed; a run's delete of what the runs share; the bystander gone;
- summary-mismatch: a run's summary.json (local mode's exact counts) or its monitor summary (read with
  chalicelib/monitor/run_summary.parse) disagreeing with the outputs, the failure list or itself (its failed count
  is what `failed` lists, for a run not torn down early that no redrive reached);
- not-converged: a further reconcile of a run record still in the bucket plans something.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chalicelib.aws import Clients, client_config
from chalicelib.aws.ec2 import LIVE_FLEET_STATES
from chalicelib.aws.s3 import list_objects, read_object
from chalicelib.aws.sqs import find_queue_url, queue_depth
from chalicelib.model import names
from chalicelib.model.jobs import NotAJob, job_id_of_message, output_root
from chalicelib.model.settings import Settings
from chalicelib.monitor import deadletters, run_summary, runs
from chalicelib.monitor.plan import REASON_DRAINED
from chalicelib.monitor.reconcile import reconcile
from chalicelib.runfiles import failure_journal
from chalicelib.runfiles.failures import FailureRecord
from chalicelib.runfiles.outputs import Tally
from operations import triage
from tests.chaos import audit
from tests.chaos.owners import (
    BYSTANDER,
    BYSTANDER_ALARM,
    BYSTANDER_QUEUE,
    JUDGED,
    SHARED,
    Owners,
    caller_run,
    run_alarm,
)
from tests.chaos.world import ChaosRun, ChaosWorld

KINDS = ("job-lost", "job-twice", "wrong-end", "leftover", "cross-run", "summary-mismatch", "not-converged")
# A hostile job's own AWS call that failed on an injected fault ends it with one of these in its last lines
FAULT_LINES = ("botocore", "ClientError", "EndpointConnectionError", "ConnectionError", "Throttling",
               "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "ReadTimeout")
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Violation:
    kind: str
    run: str
    detail: str


def check(world: ChaosWorld) -> list[Violation]:
    clients = EmulatorClients(world.endpoint, world.region)
    settings = {run.app_name: Settings.load(run.config_path) for run in world.runs}
    lines = audit.read(world.audit_path)
    found: list[Violation] = []
    by_app = {run.app_name: run for run in world.runs}
    # what each run's queue holds, counted before anything receives from a queue: a receive counts towards the
    # queue's maxReceiveCount, and SQS moves a message past it to the dead-letter queue
    held = {app: queue_held(s, clients) for app, s in settings.items()}
    for run in world.runs:
        found += check_jobs(run, settings[run.app_name], clients, by_app, held[run.app_name])
    found += leftovers(world, settings, clients, held)
    found += cross_run(world, settings, lines, clients)
    found += not_converged(world, clients)
    return found


class EmulatorClients(Clients):
    """chalicelib's Clients, every client made for the emulator's endpoint with dummy keys of the checks' own."""

    def __init__(self, endpoint: str, region: str):
        super().__init__(region=region)
        self._endpoint = endpoint

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        made = boto3.client(service, endpoint_url=self._endpoint, region_name=self._region,
                            aws_access_key_id="chaos-checks", aws_secret_access_key="chaos-checks",
                            config=client_config())
        setattr(self, service, made)
        return made


# ---------------------------------------------------------------- each job's end


@dataclass(frozen=True)
class Evidence:
    # outputs complete with the worker's marker naming the job; in DS image mode, as DS's worker counts them
    done: frozenset[str]
    failed: dict[str, FailureRecord]  # as `cli.py failed` lists them
    summary: dict[str, Any] | None  # local mode's --out/summary.json (None in DS image mode: there is none)
    dead_lettered: frozenset[str] = frozenset()  # moved by SQS from the run's queue (said in a job-lost's detail)
    # waiting in the run's queue, kept by its teardown for the next start-cluster: the jobs of a run torn down
    # early, those a redrive or an append sent after its teardown or after the monitor saw its queue drained
    waiting: frozenset[str] = frozenset()


def evidence(run: ChaosRun, settings: Settings, clients: Clients) -> Evidence:
    """Read in this order: the kept queue first, then the dead-letter queue (`failed` and the provenance sweep):
    receiving from the run's queue may make SQS move a message to the dead-letter queue, never the other way."""
    waiting = queued_jobs(settings, clients) if run.torn_down_early or run.sent_late else frozenset()
    done = ds_done_jobs(run, settings, clients) if run.ds_image_mode else done_jobs(settings, clients)
    failed = {record.job_id: record for record in triage.failed_jobs(clients, settings).records}
    return Evidence(done, failed, None if run.ds_image_mode else _summary_file(run.out_dir),
                    dead_lettered(settings, clients), waiting)


def queue_held(settings: Settings, clients: Clients) -> int | None:
    """The messages in the run's queue (waiting, in flight, delayed), None when it has no queue."""
    url = _queue_url(clients.sqs, settings.SQS_QUEUE_NAME)
    return None if url is None else _queue_messages(clients.sqs, url)


def dead_lettered(settings: Settings, clients: Clients) -> frozenset[str]:
    """Job ids of the dead-letter messages SQS moved from the run's queue (chalicelib/monitor/deadletters.py's
    provenance), read as every reader does: one sweep, then each made visible again."""
    url = find_queue_url(clients.sqs, settings.SQS_DEAD_LETTER_QUEUE)
    if url is None:
        return frozenset()
    messages = _looked_at(clients, url)
    return _job_ids(deadletters.attribute(messages, deadletters.run_queue_arn(
        clients.sqs, url, settings.SQS_QUEUE_NAME), settings.APP_NAME).ours)


def queued_jobs(settings: Settings, clients: Clients, sleep=time.sleep) -> frozenset[str]:
    """Job ids of the messages in the run's own queue, read the same way. A message in flight is waited for (at
    most twice the run's visibility timeout): a worker killed with its job (DS's, whose tasks the teardown's
    DeleteService stops) returns it only once its visibility ends, and a sweep receives only visible messages."""
    url = find_queue_url(clients.sqs, settings.SQS_QUEUE_NAME)
    if url is None:
        return frozenset()
    until = time.monotonic() + 2 * settings.SQS_MESSAGE_VISIBILITY
    while time.monotonic() < until and (depth := queue_depth(clients.sqs, url)) is not None and depth.in_flight:
        sleep(0.5)
    return _job_ids(_looked_at(clients, url))


def _looked_at(clients: Clients, url: str) -> list[Any]:
    messages = deadletters.sweep(clients.sqs, url)
    deadletters.release(clients.sqs, url, messages)
    return messages


def _job_ids(messages: Iterable[Any]) -> frozenset[str]:
    ids = set()
    for message in messages:
        try:
            ids.add(job_id_of_message(message["Body"]))
        except NotAJob:
            continue
    return frozenset(ids)


def done_jobs(settings: Settings, clients: Clients) -> frozenset[str]:
    """Jobs whose outputs are complete by worker/done.py's rule, each known by the job id its `_SUCCESS` marker
    holds (worker/upload.py writes it), so no job file is needed to find a job's prefix. One listing of the run's
    output root, one read per marker."""
    s3 = clients.s3
    bucket = settings.DESTINATION_BUCKET
    listed = list(list_objects(s3, bucket, output_root(settings)))
    tallies = {item.key: Tally(item.key) for item in listed if item.key.endswith("/" + names.SUCCESS_MARKER)}
    for item in listed:
        for parent in PurePosixPath(item.key).parents:
            tally = tallies.get(names.success_marker_key(str(parent)))
            if tally is not None:
                tally.add(item, settings)
    done = set()
    for key, tally in tallies.items():
        if tally.marked and tally.counted >= settings.EXPECTED_NUMBER_FILES:
            body = read_object(s3, bucket, key, max_bytes=65_536)
            job_id = json.loads(body).get("job_id") if body else None
            if isinstance(job_id, str):
                done.add(job_id)
    return frozenset(done)


def ds_done_jobs(run: ChaosRun, settings: Settings, clients: Clients) -> frozenset[str]:
    """DS image mode: the jobs whose output folder, the output root then the job id (DS's generic image writes
    AWS_BUCKET/APP_NAME/<job id>/: operations/setup/job_locations.py), holds EXPECTED_NUMBER_FILES objects of
    MIN_FILE_SIZE_BYTES or more naming NECESSARY_STRING, DS's worker's own CHECK_IF_DONE_BOOL rule (it writes no
    `_SUCCESS` marker). One listing of the output root."""
    root = output_root(settings)
    counted: Counter = Counter()
    for item in list_objects(clients.s3, settings.DESTINATION_BUCKET, root):
        job_id, slash, _ = item.key[len(root):].partition("/")
        if slash and item.size >= settings.MIN_FILE_SIZE_BYTES and settings.NECESSARY_STRING in item.key:
            counted[job_id] += 1
    return frozenset(job_id for job_id in run.jobs if counted[job_id] >= settings.EXPECTED_NUMBER_FILES)


def check_jobs(run: ChaosRun, settings: Settings, clients: Clients, others: dict[str, ChaosRun],
               held: int | None = None) -> list[Violation]:
    seen = evidence(run, settings, clients)
    found = [Violation(kind, run.app_name, detail) for kind, detail in judge_jobs(run, seen)]
    for job_id in sorted(set(seen.failed) - set(run.jobs)):  # `failed` takes as the run's a job it never had
        owner = [app for app, other in others.items() if app != run.app_name and job_id in other.jobs]
        found.append(Violation("cross-run" if owner else "wrong-end", run.app_name,
                               f"`failed` lists job {job_id}, which was never submitted to it"
                               + (f" but to {', '.join(owner)}" if owner else "")))
    if not run.ds_image_mode:  # DS image mode has no local summary.json
        found += [Violation("summary-mismatch", run.app_name, detail) for detail in summary_mismatches(run, seen)]
    found += [Violation("summary-mismatch", run.app_name, detail)
              for detail in monitor_summary_mismatches(run, settings, clients, seen, held)]
    return found


def judge_jobs(run: ChaosRun, seen: Evidence) -> Iterable[tuple[str, str]]:
    not_run = set(seen.summary.get("not_run", [])) if seen.summary else set()
    known = _summary_jobs(seen.summary)
    forged = forged_records(run)
    for job_id, mode in sorted(run.jobs.items()):
        done, record = job_id in seen.done, seen.failed.get(job_id)
        if job_id in forged:
            continue  # another job of its run wrote its failure record: see forged_records
        if done and record is not None:  # whatever the record says, the job ended twice: one violation, not two
            yield "job-twice", f"job {job_id} ({mode}) is done and listed failed: {record.reason}"
        elif mode in ("fail", "hang") and done:
            yield "wrong-end", f"job {job_id} ({mode}) is done: its outputs are complete"
        elif record is not None and (why := _wrong_failure(mode, record)):
            yield "wrong-end", f"job {job_id} ({mode}) listed failed {why}: {record.reason}"
        if not done and record is None:
            if job_id in seen.waiting or (run.torn_down_early and not run.ds_image_mode
                                          and (job_id in not_run or job_id not in known)):
                continue  # a DS run's unfinished jobs must wait in the queue its teardown kept: it has no summary
            yield "job-lost", (f"job {job_id} ({mode}) is neither done nor listed failed"
                               + (f"; the summary says {_summary_place(seen.summary, job_id)}" if seen.summary else "")
                               + ("; SQS moved it from the run's queue to the dead-letter queue with no failure "
                                  "record (its last attempt's worker never wrote one)"
                                  if job_id in seen.dead_lettered else ""))


def forged_records(run: ChaosRun) -> frozenset[str]:
    """The jobs of the run whose failure record a hostile job of the same run may have written
    (`attack:forge-failure:<victim>`). A job may write its own run's files under runs/APP/ (the task role's grant),
    so it can make `failed` list another job of its run: within the run's own trust (DESIGN.md: a job can mislead
    only its own run), a limitation the README states, not a crossing of runs. Those victims' ends are not judged;
    every other job's are."""
    return frozenset(mode.split(":", 2)[2] for mode in run.jobs.values()
                     if mode.startswith("attack:forge-failure:") and mode.count(":") >= 2)


def _wrong_failure(mode: str, record: FailureRecord) -> str | None:
    """What a failure record cannot say of a job of `mode`, or None. A job that always succeeds may still fail when
    faults ate every attempt: its command then did not end by itself (exit code None: timed out under load, the
    upload failed) or a signal ended it (negative), or, for a hostile job, its own AWS calls failed on injected
    faults (exit 1, botocore's error in its last lines). Never with exit code 3 (fail's, and flaky's first attempt's
    only) unless its one attempt was flaky's first."""
    code = record.exit_code
    if mode == "fail":
        return None if code in (3, None) or (code is not None and code < 0) else f"with exit code {code}, not 3"
    if mode == "hang":
        return None if code is None or code < 0 else f"with exit code {code} (it never ends by itself)"
    if code is None or code < 0:
        return None
    if mode == "flaky" and code == 3 and record.attempts == 1:
        return None  # JOB_RETRIES 1, or its second attempt never came: its first attempt is its last
    if mode.startswith("attack:") and code == 1 and any(mark in line for line in record.last_lines
                                                         for mark in FAULT_LINES):
        return None
    return f"with exit code {code} after {record.attempts} attempt(s)"


def _summary_file(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except ValueError:
        return {"unreadable": str(path)}
    return document if isinstance(document, dict) else {"unreadable": str(path)}


_LISTS = ("done", "skipped_as_already_done", "failed", "not_run")


def _summary_lists(summary: dict[str, Any] | None) -> dict[str, list[str]]:
    return {name: list(summary.get(name) or []) for name in _LISTS} if summary else {}


def _summary_jobs(summary: dict[str, Any] | None) -> set[str]:
    return {job for jobs in _summary_lists(summary).values() for job in jobs}


def _summary_place(summary: dict[str, Any] | None, job_id: str) -> str:
    places = [name for name, jobs in _summary_lists(summary).items() if job_id in jobs]
    return " and ".join(places) if places else "nothing of it"


def summary_mismatches(run: ChaosRun, seen: Evidence) -> Iterable[str]:
    """local mode's summary.json against itself, the outputs and the failure list."""
    summary = seen.summary
    if summary is None:
        yield f"no {SUMMARY_FILE} in {run.out_dir}"
        return
    if "unreadable" in summary:
        yield f"{summary['unreadable']} is not a JSON object"
        return
    lists = _summary_lists(summary)
    placed = Counter(job for jobs in lists.values() for job in jobs)
    for job_id, times in sorted(placed.items()):
        if times > 1:
            yield f"job {job_id} is counted {times} times: {_summary_place(summary, job_id)}"
    counts = summary.get("counts") or {}
    for name, key in (("done", "done"), ("skipped_as_already_done", "skipped_as_already_done"),
                      ("failed", "failed"), ("not_run", "not_run")):
        if counts.get(key) != len(lists[name]):
            yield f"counts.{key} is {counts.get(key)} but it lists {len(lists[name])} job(s)"
    if counts.get("submitted") != sum(len(jobs) for jobs in lists.values()):
        yield f"counts.submitted is {counts.get('submitted')} but it lists {sum(placed.values())} job(s)"
    finished = set(lists["done"]) | set(lists["skipped_as_already_done"])
    for job_id in sorted(finished - seen.done):
        yield f"job {job_id} is done in the summary but its outputs are not complete"
    for job_id in sorted((seen.done & set(placed)) - finished - set(seen.failed)):
        yield f"job {job_id} has complete outputs but the summary says {_summary_place(summary, job_id)}"
    for job_id in sorted(set(lists["failed"]) - set(seen.failed) - seen.waiting):  # waiting: redriven since
        yield f"job {job_id} is failed in the summary but `failed` does not list it"
    for job_id in sorted((set(seen.failed) & set(placed)) - set(lists["failed"])):
        yield f"job {job_id} is listed by `failed` but the summary says {_summary_place(summary, job_id)}"


def monitor_summary_mismatches(run: ChaosRun, settings: Settings, clients: Clients, seen: Evidence | None = None,
                               held: int | None = None) -> Iterable[str]:
    """The summary the monitor wrote at teardown, read as every reader reads it (run_summary.parse). Its counts are
    live ones (chalicelib/monitor/counts.py: approximate while the run goes), so only what they promise is checked:
    they add up, a run the monitor stopped because its queue drained has none left, and, for a run no redrive
    reached (it takes failed jobs back after the count) and that was not torn down early (its last attempts may end
    after the count), it counts as failed exactly as many jobs as `cli.py failed` lists (chalicelib/monitor/counts.py:
    a job is failed when it has a failure record or its message is in the dead-letter queue). An append does not
    change what failed: its jobs run, or wait in the kept queue."""
    key = names.summary_key(run.app_name)
    body = read_object(clients.s3, settings.AWS_BUCKET, key, max_bytes=run_summary.MAX_SUMMARY_BYTES)
    if body is None:
        yield f"no monitor summary at s3://{settings.AWS_BUCKET}/{key}"
        return
    try:
        summary = run_summary.parse(body, f"s3://{settings.AWS_BUCKET}/{key}")
    except ValueError as error:
        yield str(error)
        return
    parts = summary["jobs_done"] + summary["jobs_failed"] + summary["jobs_left"]
    if parts != summary["jobs_submitted"]:
        yield (f"monitor summary: done {summary['jobs_done']} + failed {summary['jobs_failed']} + left "
               f"{summary['jobs_left']} != submitted {summary['jobs_submitted']}")
    if summary["stop_reason"] == REASON_DRAINED and summary["jobs_left"] > _kept(run, held):
        yield f"monitor summary: the queue drained, yet {summary['jobs_left']} job(s) left"
    if seen is not None and not run.torn_down_early and not run.redriven \
            and summary["jobs_failed"] != len(seen.failed):
        yield (f"monitor summary: {summary['jobs_failed']} job(s) failed, but `failed` lists {len(seen.failed)}"
               + _failed_detail(settings, clients, seen, summary["ended_at"]))


def _failed_detail(settings: Settings, clients: Clients, seen: Evidence, ended_at: float) -> str:
    """What tells the jobs `failed` lists apart, for the reader of a failed-count mismatch: those with no failure
    record (their message is in the dead-letter queue only) and records written after the summary."""
    prefix = names.failures_prefix(settings.APP_NAME)
    written = {item.key[len(prefix):-len(".json")]: item.last_modified.timestamp()
               for item in list_objects(clients.s3, settings.AWS_BUCKET, prefix) if item.key.endswith(".json")}
    parts = [f"listed: {', '.join(sorted(seen.failed))}"] if seen.failed else []
    unrecorded = sorted(set(seen.failed) - set(written))
    if unrecorded:
        parts.append(f"in the dead-letter queue with no failure record: {', '.join(unrecorded)}")
    late = sorted(job for job, at in written.items() if at > ended_at + 1)
    if late:
        parts.append(f"failure record written after the summary: {', '.join(late)}")
    return f" ({'; '.join(parts)})" if parts else ""


# ---------------------------------------------------------------- what is left


def leftovers(world: ChaosWorld, settings: dict[str, Settings], clients: Clients,
              held: dict[str, int | None] | None = None) -> list[Violation]:
    found: list[Violation] = []
    for app, s in settings.items():
        run = next(run for run in world.runs if run.app_name == app)
        count = held[app] if held is not None else queue_held(s, clients)
        found += [Violation("leftover", app, what) for what in run_leftovers(s, run, clients, count)]
    owners = Owners.of(settings, world.bucket, world.dead_letter_queue, clients.ec2, [])
    found += [Violation("leftover", owner, what) for owner, what in machine_leftovers(owners, clients)]
    return found


def _kept(run: ChaosRun, held: int | None) -> int:
    """Messages in the queue a drained run's teardown kept for jobs sent after the drain (0 for any other run)."""
    return (held or 0) if run.sent_late else 0


def run_leftovers(s: Settings, run: ChaosRun, clients: Clients, held: int | None) -> Iterable[str]:
    """`held`: the messages its queue held when the checks began (queue_held), None when it had none."""
    app = s.APP_NAME
    # a run stopped early keeps its jobs, and a drained one those sent after the drain (ARCHITECTURE.md)
    if held is not None and not ((run.torn_down_early or run.sent_late) and held):
        yield f"queue {s.SQS_QUEUE_NAME} ({held} message(s))"
    ecs = clients.ecs
    clusters = [c for c in ecs.describe_clusters(clusters=[s.ECS_CLUSTER])["clusters"] if c["status"] == "ACTIVE"]
    if clusters:
        services = ecs.describe_services(cluster=s.ECS_CLUSTER, services=[s.service_name])["services"]
        yield from (f"ECS service {svc['serviceName']}" for svc in services if svc["status"] == "ACTIVE")
        if s.ECS_CLUSTER != "default" and _cluster_tag(ecs, clusters[0]["clusterArn"]) == app:
            yield f"ECS cluster {s.ECS_CLUSTER}"
    for arn in ecs.list_task_definitions(familyPrefix=s.task_family, status="ACTIVE")["taskDefinitionArns"]:
        if arn.rsplit("/", 1)[-1].split(":", 1)[0] == s.task_family:
            yield f"task definition {arn.rsplit('/', 1)[-1]}"
    for template in clients.ec2.describe_launch_templates(
            Filters=[{"Name": f"tag:{names.RUN_TAG}", "Values": [app]}])["LaunchTemplates"]:
        yield f"launch template {template['LaunchTemplateName']}"
    cloudwatch = clients.cloudwatch
    alarms = [alarm["AlarmName"] for page in cloudwatch.get_paginator("describe_alarms").paginate()
              for alarm in page["MetricAlarms"]]
    yield from (f"alarm {alarm}" for alarm in alarms if run_alarm(app, alarm))
    if s.CLEAN_DASHBOARD:
        dashboards = [entry["DashboardName"] for entry in cloudwatch.list_dashboards()["DashboardEntries"]]
        yield from (f"dashboard {name}" for name in dashboards if name == names.dashboard(s))
    gone_keys = (names.record_key(app), names.monitor_state_key(app), names.status_key(app), names.claim_key(app))
    for item in list_objects(clients.s3, s.AWS_BUCKET, names.MONITORS_PREFIX):
        if item.key in gone_keys:
            yield f"s3://{s.AWS_BUCKET}/{item.key}"
    for item in list_objects(clients.s3, s.AWS_BUCKET, names.leases_prefix(app)):
        yield f"lease s3://{s.AWS_BUCKET}/{item.key}"
    yield from _journal_leftovers(s, clients)
    tagged = clients.resourcegroupstaggingapi.get_resources(TagFilters=[{"Key": names.RUN_TAG, "Values": [app]}])
    for mapping in tagged.get("ResourceTagMappingList", []):
        arn = mapping["ResourceARN"]
        if not arn.startswith(_LISTED_ABOVE):
            yield f"tagged {arn}"


def _journal_leftovers(s: Settings, clients: Clients) -> Iterable[str]:
    """The failure journal goes with the run record (chalicelib/runfiles/failure_journal.py); entries stamped after
    the teardown ended (a worker's late failure, a `redrive` after the run) are new ones, which the next run of the
    name removes with its own."""
    try:
        stored = run_summary.find(clients.s3, s.AWS_BUCKET, s.APP_NAME)
        ended_ms = int(stored.parse()["ended_at"] * 1000) if stored else None
    except ValueError:
        ended_ms = None
    for entry in failure_journal.entries_from(clients.s3, s.AWS_BUCKET, s.APP_NAME, 0):
        if ended_ms is None or entry.ms <= ended_ms:
            yield f"failure journal entry s3://{s.AWS_BUCKET}/{failure_journal.entry_key(s.APP_NAME, entry)}"


# ARNs the listings above (and machine_leftovers) judge with their state, or that stay by design (log groups)
_LISTED_ABOVE = ("arn:aws:sqs:", "arn:aws:ecs:", "arn:aws:ec2:", "arn:aws:cloudwatch:", "arn:aws:logs:",
                 "arn:aws:s3:::")


def machine_leftovers(owners: Owners, clients: Clients) -> Iterable[tuple[str, str]]:
    """Live fleets of either kind and live instances, whoever's: at the end every run is torn down."""
    ec2 = clients.ec2
    for fleet in ec2.describe_fleets()["Fleets"]:
        if fleet["FleetState"] in LIVE_FLEET_STATES:
            fleet_id = fleet["FleetId"]
            yield _owner_text(owners.fleets.get(fleet_id)), f"EC2 Fleet {fleet_id} {fleet['FleetState']}"
    for request in ec2.describe_spot_fleet_requests()["SpotFleetRequestConfigs"]:
        if request["SpotFleetRequestState"] in LIVE_FLEET_STATES:
            fleet_id = request["SpotFleetRequestId"]
            yield _owner_text(owners.fleets.get(fleet_id)), f"spot fleet {fleet_id} {request['SpotFleetRequestState']}"
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                owner = owners.instances.get(instance["InstanceId"])
                if owner:  # machines of no run (none in a seed) are not a run's leftover
                    yield owner, f"instance {instance['InstanceId']} {instance['State']['Name']}"


def _owner_text(owner: str | None) -> str:
    return owner or "(no run)"


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError:
        return None


def _queue_messages(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])
    return sum(int(value) for value in attributes["Attributes"].values())


def _cluster_tag(ecs: Any, arn: str) -> str | None:
    tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
    return next((tag["value"] for tag in tags if tag["key"] == names.RUN_TAG), None)


# ---------------------------------------------------------------- who touched what


def bystander(endpoint: str, region: str, log_dir: Path) -> None:
    """A queue and an alarm of no run, made before the seed's runs start: they must survive it. Noted in
    `log_dir`, so that `check` knows to look for them."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=region, aws_access_key_id="chaos-bystander",
                       aws_secret_access_key="chaos-bystander")
    cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region,
                              aws_access_key_id="chaos-bystander", aws_secret_access_key="chaos-bystander")
    sqs.create_queue(QueueName=BYSTANDER_QUEUE)
    cloudwatch.put_metric_alarm(AlarmName=BYSTANDER_ALARM, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                ComparisonOperator="LessThanThreshold")
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    (Path(log_dir) / BYSTANDER_NOTE).write_text(json.dumps({"queue": BYSTANDER_QUEUE, "alarm": BYSTANDER_ALARM}))


BYSTANDER_NOTE = "bystander.json"


def bystander_missing(world: ChaosWorld, clients: Clients) -> list[str]:
    if not (Path(world.log_dir) / BYSTANDER_NOTE).exists():
        return []
    missing = [] if _queue_url(clients.sqs, BYSTANDER_QUEUE) else [f"queue {BYSTANDER_QUEUE}"]
    if not clients.cloudwatch.describe_alarms(AlarmNames=[BYSTANDER_ALARM])["MetricAlarms"]:
        missing.append(f"alarm {BYSTANDER_ALARM}")
    return missing


def cross_run(world: ChaosWorld, settings: dict[str, Settings], lines: list[dict[str, Any]],
              clients: Clients) -> list[Violation]:
    owners = Owners.of(settings, world.bucket, world.dead_letter_queue, clients.ec2, lines)
    found = [Violation("cross-run", "", f"the bystander's {what} is gone")
             for what in bystander_missing(world, clients)]
    for line in lines:
        if "error" in line:
            found.append(Violation("cross-run", "", f"an audited request the recorder could not read: {line['error']} "
                                                    f"({line.get('method')} {line.get('path')})"))
            continue
        if line.get("destructive") is False:
            continue
        caller = line.get("caller", "")
        run = caller_run(caller, settings)
        for problem in line_problems(line, run, owners):
            found.append(Violation("cross-run", run or "", f"{caller or '(unsigned)'} {line['operation']}: {problem}"))
    return found


def line_problems(line: dict[str, Any], run: str | None, owners: Owners) -> Iterable[str]:
    """What one audited call did that its caller may not: `run` is the caller's run, None for the Lambda's ticks
    and any other caller, which act on every run but on nothing outside them."""
    operation = line["operation"]
    for kind, values in line.get("resources", {}).items():
        if kind not in JUDGED:
            continue
        for value in values:
            whose = owners.of_resource(kind, value)
            if kind == "queue" and whose == {SHARED} and "messages" in line:
                yield from _dead_letter_problems(line, run, owners)
                continue
            if BYSTANDER in whose:
                yield f"{kind} {value} is the bystander's"
            elif not whose:
                yield f"{kind} {value} belongs to no run of the seed"
            elif SHARED in whose:
                if operation.startswith("Delete") and kind != "s3":
                    yield f"{kind} {value} is shared by every run"
            elif run is not None and run not in whose:
                yield f"{kind} {value} is {', '.join(sorted(whose))}'s"


def _dead_letter_problems(line: dict[str, Any], run: str | None, owners: Owners) -> Iterable[str]:
    """A message of the shared dead-letter queue is the run's SQS moved it from (its DeadLetterQueueSourceArn,
    chalicelib/monitor/deadletters.py), never the one its `dsr-app` attribute names. Making messages visible again
    (visibility 0) is how every reader ends its sweep of the whole queue (deadletters.release), not an act on them."""
    for message in line.get("messages", []):
        if message.get("unknown_handle") or message.get("visibility") == 0:
            continue
        source = (message.get("source_arn") or "").rsplit(":", 1)[-1]
        whose = owners.of_resource("queue", source) if source else set()
        if not whose:
            yield f"dead-letter message {message.get('message_id')} came from no run's queue ({source or 'no stamp'})"
        elif run is not None and run not in whose:
            yield (f"dead-letter message {message.get('message_id')} is {', '.join(sorted(whose))}'s "
                   f"(its dsr-app says {message.get('named_run')})")


# ---------------------------------------------------------------- the monitor converged


def not_converged(world: ChaosWorld, clients: Clients) -> list[Violation]:
    """A dry-run reconcile (observe and plan, nothing applied) of every run record left in the bucket."""
    found: list[Violation] = []
    left, unreadable = runs.scan(clients.s3, [world.bucket])
    for skipped in unreadable:
        found.append(Violation("not-converged", "", f"s3://{skipped.bucket}/{skipped.key}: {skipped.reason}"))
    for run in left:
        actions = reconcile(run, clients, dry_run=True).actions
        if actions:
            found.append(Violation("not-converged", run.app_name, "a further reconcile plans "
                                   + ", ".join(type(action).__name__ for action in actions)))
    return found
