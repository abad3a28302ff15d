"""`cli.py selftest`: a throwaway run in the user's account, each step checked as AWS answers it, then nothing left.

The steps, each one line (ok, FAIL with AWS's error and the fix in words, or skip):
1. roles: the roles the fleet file names (the machines' instance profile, a DS fleet file's spot fleet role) exist
   and trust the services that assume them;
2. setup: the throwaway run's task role, queues, log groups, ECS cluster, task definition and service;
3. capacity: start-cluster's checks, its EC2 Fleet of one Spot machine accepted, the machine running;
4. agent: that machine's ECS agent registered in the run's cluster (the AMI, user data, instance profile, network);
5. alarms: the run's two queue alarms, sending to the monitor's topic;
6. monitor: the deployed monitor (if one watches the bucket) reconciled the run and was refused no call (its logs);
7. teardown: the run torn down by that monitor, or by the self-test when none watches the bucket;
8. leftovers: nothing carrying the run's tag is left in any service (listings and the Tagging API), what a
   teardown keeps for a real run removed too.

A step that later steps need stops the sequence when it fails; whatever happened, and on Ctrl-C (a second one is
held until the cleanup ends), the run is torn down and its leftovers removed. The run starts no task (its service
is set to 0 at once, and one message that no worker takes keeps the monitor from ending it as drained before the
checks are done), and the monitor's MAX_RUN_HOURS and MAX_RUN_COST end it even if this process is killed.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.aws import ec2 as ec2_calls
from chalicelib.aws.cloudwatch import metric_alarms
from chalicelib.aws.ecs import cluster_machine_ids, set_service_count
from chalicelib.aws.s3 import object_exists
from chalicelib.aws.sqs import find_queue_url
from chalicelib.model import names
from chalicelib.model.errors import UserError
from chalicelib.model.settings import Settings
from chalicelib.monitor import status_doc
from chalicelib.monitor.runs import load_run
from operations import monitor_loop
from operations.deployed import deployed_monitor
from operations.selftest import leftovers
from operations.selftest.throwaway import (
    AGENT_MINUTES,
    MACHINE_MINUTES,
    MONITOR_MINUTES,
    WALL_MINUTES,
    most_cost,
    smallest_type,
    throwaway,
)
from operations.setup import iam as account_roles
from operations.setup import resources
from operations.start import cluster
from operations.start.fleet import FleetFile


@dataclass(frozen=True)
class Line:
    outcome: str  # "ok", "FAIL" or "skip"
    step: str
    said: str
    fix: str = ""

    def text(self) -> str:
        return f"{self.outcome:<4}  {self.step}: {self.said}" + (f"\n      fix: {self.fix}" if self.fix else "")


POLL_SECONDS = 10.0
TEARDOWN_PERIOD_SECONDS = 2.0  # as `cli.py teardown --period`: the teardown's steps wait on AWS between looks


@dataclass(frozen=True)
class Waits:
    """How long each step waits for what AWS does by itself, and how often it looks (tests shorten them)."""

    machine: float = MACHINE_MINUTES * 60
    agent: float = AGENT_MINUTES * 60
    monitor: float = MONITOR_MINUTES * 60
    poll: float = field(default_factory=lambda: POLL_SECONDS)


@dataclass
class Report:
    app_name: str
    lines: list[Line] = field(default_factory=list)
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return not self.interrupted and all(line.outcome != "FAIL" for line in self.lines)


class _Stop(Exception):
    """A step the next ones need has failed: its line, and the sequence goes to the cleanup."""

    def __init__(self, line: Line):
        super().__init__(line.said)
        self.line = line


def dry_run(settings: Settings, fleet: FleetFile, clients: aws.Clients | None = None) -> list[str]:
    """What the self-test would create and the most it can cost; it only reads (the roles' check)."""
    c = clients or aws.Clients(settings)
    run = smallest_type(throwaway(settings, token="xxxxxx"), c.ec2)
    types = ", ".join(run.MACHINE_TYPE) or "the smallest types that hold one task (MACHINE_TYPE [])"
    return [
        f"would create a throwaway run {run.APP_NAME.replace('xxxxxx', '<6 hex digits>')}, every resource tagged "
        f"{names.RUN_TAG} with its name: queues, log groups, an ECS cluster, task role, task definition and service "
        "(0 tasks: it runs no job), two queue alarms, and an EC2 Fleet of 1 Spot machine "
        f"({types}; from {fleet.source})",
        f"would wait at most {MACHINE_MINUTES} min for the machine, {AGENT_MINUTES} min for its ECS agent and "
        f"{MONITOR_MINUTES} min for the deployed monitor's look and teardown, then remove everything carrying the tag",
        f"most it can cost: ${most_cost(settings):.4f} (1 machine at MACHINE_PRICE ${settings.MACHINE_PRICE:g} an "
        f"hour, sent to EC2 as the Spot maximum price, for at most {WALL_MINUTES} min; the deployed monitor ends "
        "the run at that time or cost even if this command is killed)",
        _roles(settings, c, fleet).text(),
    ]


def selftest(settings: Settings, fleet: FleetFile, say: Callable[[Line], None], waits: Waits | None = None,
             token: str | None = None, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Run the steps (module docstring) on a throwaway run made from `settings`; each line goes to `say` as soon as
    it is known. The cleanup runs whatever happens, Ctrl-C included."""
    waits = waits or Waits()
    c = aws.Clients(settings)
    run = smallest_type(throwaway(settings, token), c.ec2)
    report = Report(run.APP_NAME)
    started = time.time()

    def emit(line: Line) -> None:
        report.lines.append(line)
        say(line)

    torn_down = False
    try:
        emit(_roles(run, c, fleet))
        if report.lines[-1].outcome == "FAIL":
            raise _Stop(Line("skip", "the rest", "not run: the account's roles must be right first"))
        emit(_setup(run, c))
        machine, record_alarms = _capacity(run, fleet, c, waits, sleep, emit)
        emit(_agent(run, c, machine, waits, sleep))
        emit(_alarms(run, c, record_alarms))
        watched = _monitor(run, c, started, waits, sleep, emit)
        emit(_teardown(run, c, watched, waits, sleep))
        torn_down = report.lines[-1].outcome == "ok"
    except _Stop as stop:
        emit(stop.line)
    except KeyboardInterrupt:
        report.interrupted = True
        emit(Line("skip", "interrupted", "Ctrl-C: the throwaway run is torn down and removed now"))
    finally:
        with _interrupts_held():
            if not torn_down:
                _teardown_by_self(run, c, waits, sleep)
            emit(_leftovers(run, c))
    return report


# --------------------------------------------------------------------------- the steps


def _roles(run: Settings, c: aws.Clients, fleet: FleetFile) -> Line:
    """The roles the fleet file names, each trusting the service that assumes it: the machines' instance profile
    (EC2) and, in a DS fleet file, the spot fleet role. The run's task role is the self-test's own (setup)."""
    wanted = [(arn.rsplit("/", 1)[-1], "instance profile", "ec2.amazonaws.com")
              for arn in fleet.instance_profile_arns()]
    if fleet.config.get("IamFleetRole"):
        wanted.append((str(fleet.config["IamFleetRole"]).rsplit("/", 1)[-1], "role", "spotfleet.amazonaws.com"))
    fix = f"python cli.py setup-account --config {run.source} makes them; it prints the ARNs for {fleet.source}"
    said = []
    try:
        for name, kind, service in wanted:
            roles = [name] if kind == "role" else _profile_roles(c, name)
            if roles is None:
                return Line("FAIL", "roles", f"{fleet.source} names instance profile {name}, which does not exist", fix)
            if not roles:
                return Line("FAIL", "roles", f"instance profile {name} has no role", fix)
            for role in roles:
                trusted = _trusted_services(c, role)
                if trusted is None:
                    return Line("FAIL", "roles", f"role {role} does not exist", fix)
                if service not in trusted:
                    return Line("FAIL", "roles", f"role {role} trusts {', '.join(sorted(trusted)) or 'no service'}, "
                                f"not {service}, which must assume it", f"{fix} (and sets the trust policy)")
                said.append(f"{role} (assumed by {service})")
    except (ClientError, BotoCoreError) as error:
        return _aws_failure("roles", error)
    return Line("ok", "roles", ", ".join(said) or f"{fleet.source} names no role")


def _profile_roles(c: aws.Clients, profile: str) -> list[str] | None:
    try:
        return [role["RoleName"] for role in c.iam.get_instance_profile(InstanceProfileName=profile)[
            "InstanceProfile"].get("Roles", [])]
    except c.iam.exceptions.NoSuchEntityException:
        return None


def _trusted_services(c: aws.Clients, role: str) -> set[str] | None:
    try:
        document = c.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    except c.iam.exceptions.NoSuchEntityException:
        return None
    services: set[str] = set()
    for statement in account_roles.policy_document(document).get("Statement", []):
        principal = statement.get("Principal") or {}
        if statement.get("Effect") == "Allow" and "sts:AssumeRole" in _listed(statement.get("Action")):
            services.update(_listed(principal.get("Service") if isinstance(principal, dict) else None))
    return services


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _setup(run: Settings, c: aws.Clients) -> Line:
    try:
        account_roles.ensure_task_role(run)
        resources.setup(run, c)
    except (ClientError, BotoCoreError) as error:
        raise _Stop(_aws_failure("setup", error)) from None
    return Line("ok", "setup", f"queues {run.SQS_QUEUE_NAME} and {run.SQS_DEAD_LETTER_QUEUE}, log groups, ECS "
                f"cluster {run.ECS_CLUSTER}, task role {names.task_role(run)}, task definition and service")


def _capacity(run: Settings, fleet: FleetFile, c: aws.Clients, waits: Waits, sleep: Callable[[float], None],
              emit: Callable[[Line], None]) -> tuple[str, tuple[str, ...]]:
    """start-cluster for the throwaway run; the machine that came up, and the alarms the run record names."""
    try:
        c.sqs.send_message(QueueUrl=find_queue_url(c.sqs, run.SQS_QUEUE_NAME) or "",
                           MessageBody='{"selftest": "held until the teardown; no worker runs it"}')
        with tempfile.TemporaryDirectory() as files:
            started = cluster.start_cluster(run, fleet, wait_seconds=0, files_dir=files, clients=c)
        set_service_count(c.ecs, run.ECS_CLUSTER, run.service_name, 0)  # before any machine can have booted
        status = cluster.wait_for_fleet(c.ec2, started.record.MONITOR_FLEET_ID, waits.machine, waits.poll,
                                        sleep=sleep, since=cluster.fleet_since(started.record))
    except UserError as error:  # start-cluster's checks: one line that says what to fix
        raise _Stop(Line("FAIL", "capacity", str(error))) from None
    except (ClientError, BotoCoreError) as error:
        # start-cluster also makes the queue alarms: a refusal of those is the alarms' line
        step = "alarms" if getattr(error, "operation_name", "") == "PutMetricAlarm" else "capacity"
        raise _Stop(_aws_failure(step, error)) from None
    record = started.record
    machines = ec2_calls.fleet_instance_ids(c.ec2, record.MONITOR_FLEET_ID)
    if not machines:
        why = "; ".join([*status.why, *((status.problem,) if status.problem else ())])
        raise _Stop(Line("FAIL", "capacity", f"EC2 Fleet {record.MONITOR_FLEET_ID} accepted, but no machine launched "
                         f"after {waits.machine / 60:g} min" + (f": {why}" if why else ""),
                         "the fleet's errors say which: a Spot vCPU quota, no capacity for MACHINE_TYPE in the "
                         "fleet file's subnets (add types or subnets), a subnet or security group of another VPC"))
    emit(Line("ok", "capacity", f"EC2 Fleet {record.MONITOR_FLEET_ID} accepted; machine {machines[0]} launched"))
    return machines[0], record.ALARM_NAMES


def _agent(run: Settings, c: aws.Clients, machine: str, waits: Waits, sleep: Callable[[float], None]) -> Line:
    if _until(lambda: machine in cluster_machine_ids(c.ecs, run.ECS_CLUSTER), waits.agent, waits.poll, sleep):
        return Line("ok", "agent", f"machine {machine} registered in ECS cluster {run.ECS_CLUSTER}")
    raise _Stop(Line(
        "FAIL", "agent", f"machine {machine} runs, but its ECS agent has not registered in cluster "
        f"{run.ECS_CLUSTER} after {waits.agent / 60:g} min",
        "the machine must boot an ECS-optimized AMI (leave ImageId out of the fleet file), its instance profile's "
        f"role must hold the ECS agent's rights (python cli.py setup-account makes {names.INSTANCE_PROFILE}), and its "
        f"subnet must reach ecs.{run.AWS_REGION}.amazonaws.com (a NAT gateway, a public IP and an internet gateway, "
        "or VPC endpoints for ecs, ecs-agent and ecs-telemetry)"))


def _alarms(run: Settings, c: aws.Clients, alarm_names: tuple[str, ...]) -> Line:
    try:
        found = {alarm["AlarmName"]: alarm for alarm in metric_alarms(c.cloudwatch, names=alarm_names)}
        topic = resources.find_topic_arn(c.sns, names.MONITOR_TOPIC) or names.MONITOR_TOPIC
    except (ClientError, BotoCoreError) as error:
        return _aws_failure("alarms", error)
    missing = [name for name in alarm_names if name not in found]
    silent = [name for name, alarm in found.items() if topic not in alarm.get("AlarmActions", ())]
    if missing or silent or not alarm_names:
        return Line("FAIL", "alarms", f"missing: {', '.join(missing) or '-'}; not sending to {topic}: "
                    f"{', '.join(silent) or '-'}", "see start-cluster's output for the alarm's error")
    return Line("ok", "alarms", f"{', '.join(sorted(found))} send to {topic}")


def _monitor(run: Settings, c: aws.Clients, started: float, waits: Waits, sleep: Callable[[float], None],
             emit: Callable[[Line], None]) -> bool:
    """The deployed monitor's look at the run and its refused calls; whether one watches the bucket."""
    problem = deployed_monitor.problem(run)
    if problem is not None:
        emit(Line("skip", "monitor", problem.split(":")[0] + ": the self-test tears its run down itself"))
        return False

    def looked() -> bool:
        status = status_doc.read(c.s3, run.AWS_BUCKET, run.APP_NAME)
        return status is not None and status.get("as_of", 0) >= int(started)

    if not _until(looked, waits.monitor, waits.poll, sleep):
        emit(Line("FAIL", "monitor", f"the deployed monitor watches {run.AWS_BUCKET} but did not look at the run "
                  f"within {waits.monitor / 60:g} min (no status document)",
                  "read its log group (/aws/lambda/ds-runner-monitor-STAGE-every_period) for its errors"))
        return True
    refused = _refused_calls(run, c, started)
    if refused:
        emit(Line("FAIL", "monitor", f"the deployed monitor looked at the run but was refused: {refused}",
                  f"python cli.py monitor-config {run.source}, then chalice deploy (its policy is made from the "
                  "configs it watches)"))
    else:
        emit(Line("ok", "monitor", f"the deployed monitor looked at the run at "
                  f"{datetime.fromtimestamp(time.time()).strftime('%H:%M:%S')} and was refused no call"))
    return True


REFUSED_PATTERN = '?AccessDenied ?AccessDeniedException ?UnauthorizedOperation ?"not authorized"'


def _refused_calls(run: Settings, c: aws.Clients, started: float) -> str:
    """The first refused call the deployed monitor's functions logged since the self-test began, or ''."""
    for deployment, buckets in sorted(deployed_monitor.watched_by_deployment(run).items()):
        if run.AWS_BUCKET not in buckets:
            continue
        for handler in deployed_monitor.MONITOR_HANDLERS:
            try:
                events = c.logs.filter_log_events(logGroupName=f"/aws/lambda/{deployment}-{handler}",
                                                  startTime=int(started * 1000), filterPattern=REFUSED_PATTERN,
                                                  limit=1).get("events", [])
            except ClientError as error:
                if aws.error_code(error) == "ResourceNotFoundException":
                    continue  # the function has not run yet
                raise
            if events:
                return f"{deployment}-{handler}: {events[0]['message'].strip()[:300]}"
    return ""


def _teardown(run: Settings, c: aws.Clients, watched: bool, waits: Waits, sleep: Callable[[float], None]) -> Line:
    key = names.record_key(run.APP_NAME)
    began = time.monotonic()
    if watched:
        current = load_run(c.s3, run.AWS_BUCKET, key)
        if current is not None:
            monitor_loop.request_teardown(current, "the self-test is over", c)
        if _until(lambda: not object_exists(c.s3, run.AWS_BUCKET, key), waits.monitor, waits.poll, sleep):
            return Line("ok", "teardown", f"torn down by the deployed monitor in {time.monotonic() - began:.0f} s")
        return Line("FAIL", "teardown", f"the deployed monitor did not tear the run down within "
                    f"{waits.monitor / 60:g} min; the self-test does it now",
                    "read the monitor's log group (/aws/lambda/ds-runner-monitor-STAGE-every_period)")
    if _teardown_by_self(run, c, waits, sleep):
        return Line("ok", "teardown", f"torn down by the self-test in {time.monotonic() - began:.0f} s")
    return Line("FAIL", "teardown", "the run's teardown did not end; what is left is removed below")


def _teardown_by_self(run: Settings, c: aws.Clients, waits: Waits, sleep: Callable[[float], None]) -> bool:
    """The teardown `cli.py teardown` makes, bounded in time; True when the run record is gone."""
    key = names.record_key(run.APP_NAME)
    ends = time.monotonic() + waits.monitor
    try:
        current = load_run(c.s3, run.AWS_BUCKET, key)
        if current is None:
            return True
        monitor_loop.request_teardown(current, "the self-test is over", c)
        monitor_loop.watch(lambda: load_run(c.s3, run.AWS_BUCKET, key) if time.monotonic() < ends else None,
                           min(waits.poll, TEARDOWN_PERIOD_SECONDS), lambda result: None, sleep=sleep, clients=c)
        return not object_exists(c.s3, run.AWS_BUCKET, key)
    except (ClientError, BotoCoreError, UserError):
        return False  # the leftovers step removes what is left, and names what it cannot


def _leftovers(run: Settings, c: aws.Clients) -> Line:
    try:
        found = leftovers.find(run, c)
        problems = leftovers.remove(found)
        still = leftovers.find(run, c)
    except (ClientError, BotoCoreError) as error:
        return _aws_failure("leftovers", error)
    if still or problems:
        return Line("FAIL", "leftovers", "left: " + "; ".join(problems or [item.describe() for item in still]),
                    f"remove them in the AWS console (each carries the tag {names.RUN_TAG}={run.APP_NAME})")
    kinds = ", ".join(sorted({item.kind for item in found}))
    removed = f"; removed what a teardown keeps of a real run ({kinds})" if found else ""
    return Line("ok", "leftovers", f"nothing carries {names.RUN_TAG}={run.APP_NAME} in any service{removed}")


# --------------------------------------------------------------------------- helpers


def _until(done: Callable[[], bool], seconds: float, poll: float, sleep: Callable[[float], None]) -> bool:
    ends = time.monotonic() + seconds
    while True:
        if done():
            return True
        if time.monotonic() >= ends:
            return False
        sleep(poll)


# What the user does about an AWS error code, in words: the codes a new account meets first.
_FIXES = {
    "AccessDenied": "the credentials in use may not make this call: allow it in your IAM user's or role's policy",
    "UnauthorizedOperation": "the credentials in use may not make this call: allow it in your IAM user's or role's "
                             "policy",
    "AccessDeniedException": "the credentials in use may not make this call: allow it in your IAM user's or role's "
                             "policy",
    "MaxSpotInstanceCountExceeded": "ask AWS for a higher Spot vCPU quota (Service Quotas, EC2, \"All Standard "
                                    "Spot Instance Requests\")",
    "InvalidSubnetID.NotFound": "the fleet file's SubnetId is not a subnet of this account and region",
    "InvalidGroup.NotFound": "the fleet file's security group is not in this account and region",
    "ExpiredToken": "your credentials have expired: sign in again (aws sso login, or new keys)",
    "InvalidClientTokenId": "your credentials are not valid in this account: check AWS_PROFILE and the keys",
}


def _aws_failure(step: str, error: Exception) -> Line:
    code = aws.error_code(error) if isinstance(error, ClientError) else ""
    operation = getattr(error, "operation_name", "")
    said = f"{operation}: {code}: {error}" if code else f"{type(error).__name__}: {error}"
    return Line("FAIL", step, said, _FIXES.get(code, "the AWS error above says what is wrong"))


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """A Ctrl-C during the cleanup is told to wait, not obeyed: the cleanup is what makes the self-test cost
    nothing, and half of it would leave a run without its teardown."""
    held: list[bool] = []

    def hold(signum: int, frame: object) -> None:
        held.append(True)
        print("\nremoving the throwaway run first; it takes a minute", flush=True)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
