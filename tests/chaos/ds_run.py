"""The seed's run in DS image mode, played as a DS user plays it, and the ECS that runs its image's worker.

Local mode refuses a config whose COMMAND is null (its workers are this project's), so this run goes the way a DS
user's does, each command a process of the seed signing as the run (`chaos-<APP_NAME>`) through the fault proxy:
`cli.py setup-account`, `setup`, `submit jobs.json`, `start-cluster fleet.json --wait 0`, then `monitor --period 1`,
the terminal's monitor loop, which scales the run down and tears it down once its queue drains. Each command
starts when the one before exited 0; one that exits otherwise ends the run there (a "run-crashed" violation). The
run is over when its monitor exits.

What the user made once by hand before (tests/integration/world.py `Account`): a private subnet with a way out and
a security group, made by the harness in the emulator itself (`prepare_account`), and a fleet file naming them,
the account's instance profile and fleet role (setup-account makes those) and an ECS-optimized image.

moto runs no container, so `EcsEmulation` is ECS (and EC2's part in it): every STEP_SECONDS it reads, from the
emulator itself (AWS acting, not a caller: nothing of it goes through the proxy or the audit), the run's service's
desiredCount and the run's running instances (tagged with names.RUN_TAG), and keeps min(desiredCount,
machines x TASKS_PER_MACHINE) tasks alive, each a tests/chaos/ds_worker.py process (DS's generic worker) with the
task definition's container environment, the proxy as its AWS endpoint, the run's key id and the seed's marker.
A task whose machine is gone, or beyond what the service wants, is SIGKILLed, as a reclaimed machine or ECS's
scale-in stops it; a task that exited (DS's worker exits when the queue is empty) is started again, as the service
scheduler does, no sooner than RESTART_SECONDS later on that machine. A spot reclaim aimed at the run terminates one
of its machines (its tasks killed) and has the fleet, of type maintain, launch a replacement (localrun/spot.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chalicelib.aws.ec2 import fleet_state, live_tagged_fleet_id, set_fleet_target, terminate
from chalicelib.aws.ecs import ecs_service, task_definition
from chalicelib.model import names
from chalicelib.model.settings import Settings
from localrun.account import ECS_IMAGE_NAMES, private_subnet
from localrun.embedded import DUMMY_KEY
from tests.chaos.scenario import RunPlan

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "cli.py"
WORKER = Path(__file__).resolve().parent / "ds_worker.py"
STEP_SECONDS = 0.5
RESTART_SECONDS = 1.0  # a task that exited is started again on its machine no sooner than this
MONITOR_PERIOD = "1"
# DS's worker's own waits, shrunk as local mode shrinks this project's (localrun/machines.py LOCAL_KNOBS); they reach
# it as the user's variables (ENVIRONMENT), as MY_THREADS in DS's example config does
WAIT_SECONDS = 1  # a receive's long poll (upstream 20 s)
RETURN_VISIBILITY = 2  # returnMessage's visibility (upstream 60 s)
AGENT_KEY = "chaos-ecs"  # the emulation's key id on the emulator (no audit sees it)


@dataclass(frozen=True)
class Account:
    """What a DS user has before a run, besides the roles setup-account makes."""

    account_id: str
    subnet_id: str
    security_group_id: str
    image_id: str

    @property
    def instance_profile_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:instance-profile/{names.INSTANCE_PROFILE}"

    @property
    def fleet_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{names.FLEET_ROLE}"


def emulator_client(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=AGENT_KEY,
                        aws_secret_access_key=DUMMY_KEY)


def prepare_account(endpoint: str, region: str) -> Account:
    """The network a DS user's fleet file names, made in the emulator itself (as a user makes it in the console)."""
    ec2 = emulator_client("ec2", endpoint, region)
    subnet, group = private_subnet(ec2)
    image = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": [ECS_IMAGE_NAMES]}])[
        "Images"][0]["ImageId"]
    account = emulator_client("sts", endpoint, region).get_caller_identity()["Account"]
    return Account(account, subnet, group, image)


def config_document(run: RunPlan, bucket: str, dead_letter_queue: str, region: str) -> dict[str, Any]:
    """A DS user's config.json: COMMAND null (DS image mode), CHECK_IF_DONE_BOOL on so that done is countable."""
    return {
        "APP_NAME": run.app_name, "DOCKERHUB_TAG": "example/chaos-ds:1", "AWS_PROFILE": None, "AWS_REGION": region,
        "AWS_BUCKET": bucket, "CLUSTER_MACHINES": run.machines, "TASKS_PER_MACHINE": run.tasks_per_machine,
        "MACHINE_TYPE": ["m5.large"], "MACHINE_PRICE": 0.05, "DOCKER_CORES": 1, "SECONDS_TO_START": 0,
        "SQS_QUEUE_NAME": f"{run.app_name}Queue", "SQS_MESSAGE_VISIBILITY": run.visibility,
        "SQS_DEAD_LETTER_QUEUE": dead_letter_queue, "JOB_RETRIES": run.retries, "AUTO_MONITOR": True,
        "CHECK_IF_DONE_BOOL": True, "EXPECTED_NUMBER_FILES": run.expected_files, "MIN_FILE_SIZE_BYTES": 1,
        "COMMAND": None,
        "ENVIRONMENT": {"CHAOS_DS_WAIT_SECONDS": str(WAIT_SECONDS),
                        "CHAOS_DS_RETURN_VISIBILITY": str(RETURN_VISIBILITY),
                        "CHAOS_DS_HANG_SECONDS": str(hang_seconds(run))}}


def hang_seconds(run: RunPlan) -> int:
    """A hang job's time: past its visibility timeout, and beyond (it is received again meanwhile)."""
    return 2 * run.visibility + 4


def fleet_document(account: Account) -> dict[str, Any]:
    """A DS fleet file (DS's exampleFleet shape, as tests/integration/world.py writes one) for the account."""
    return {
        "_comment": "the chaos campaign's DS run",
        "IamFleetRole": account.fleet_role_arn,
        "TerminateInstancesWithExpiration": True,
        "LaunchSpecifications": [{
            "ImageId": account.image_id,
            "KeyName": "placeholder-key",
            "IamInstanceProfile": {"Arn": account.instance_profile_arn},
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3",
                                                    "VolumeSize": 30}},
                {"DeviceName": "/dev/xvdcz", "Ebs": {"DeleteOnTermination": True, "VolumeType": "gp3",
                                                     "VolumeSize": 22}}],
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": account.subnet_id, "DeleteOnTermination": True,
                                   "AssociatePublicIpAddress": False, "Groups": [account.security_group_id]}],
        }],
    }


@dataclass
class Task:
    instance_id: str
    live: Any  # the harness's _Live


@dataclass
class DsRun:
    """One DS image mode run of a seed. `start(name, argv, env, on_exit, cwd)` starts a logged process of the seed
    (the harness's Seed.start); `environment(key_id)` is a process's environment with the proxy as AWS."""

    run: RunPlan
    folder: Path
    endpoint: str  # the emulator itself: the ECS emulation reads it
    region: str
    start: Callable[..., Any]
    environment: Callable[[str], dict[str, str]]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (violation kind, detail)
    started: bool = False  # its monitor is running: the user acts on the run from now on
    over: bool = False
    monitor: Any = None
    tasks: list[Task] = field(default_factory=list)
    tasks_started: int = 0
    _resting: dict[str, float] = field(default_factory=dict)  # machine -> no task started on it before
    _next_step: float = 0.0
    _environments: dict[str, dict[str, str]] = field(default_factory=dict)  # task definition ARN -> its variables
    _clients: dict[str, Any] = field(default_factory=dict)  # the emulator's own, by service

    @property
    def app(self) -> str:
        return self.run.app_name

    @property
    def config_path(self) -> Path:
        return self.folder / "config.json"

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = emulator_client(service, self.endpoint, self.region)
        return self._clients[service]

    @functools.cached_property
    def settings(self) -> Settings:
        return Settings.load(self.config_path)

    @property
    def key_id(self) -> str:
        return f"chaos-{self.app}"

    def write_files(self, bucket: str, dead_letter_queue: str, account: Account) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config_document(self.run, bucket, dead_letter_queue, self.region),
                                               indent=2))
        (self.folder / "fleet.json").write_text(json.dumps(fleet_document(account), indent=2))

    # ------------------------------------------------------------------ the user's commands
    def commands(self) -> list[list[str]]:
        return [["setup-account"], ["setup"], ["submit", str(self.folder / "jobs.json")],
                ["start-cluster", str(self.folder / "fleet.json"), "--wait", "0"],
                ["monitor", "--period", MONITOR_PERIOD]]

    def begin(self) -> None:
        self._next(0)

    def _next(self, index: int) -> None:
        args = self.commands()[index]
        last = index == len(self.commands()) - 1

        def ended(code: int) -> None:
            if code != 0:
                self.problems.append(("run-crashed", f"`cli.py {args[0]}` of the DS image mode run exited {code}; "
                                                     f"see {live.log.name}"))
                self.over = True
            elif last:
                self.over = True
            else:
                self._next(index + 1)

        live = self.start(f"{self.app}.{args[0]}", [sys.executable, str(CLI), *args, "--config",
                                                     str(self.config_path)],
                          self.environment(self.key_id), on_exit=ended, cwd=self.folder)
        if last:
            self.monitor = live
            self.started = True

    def cli(self, name: str, args: list[str], on_exit=None) -> Any:
        """A command of the schedule aimed at the run (teardown, redrive, submit --append)."""
        return self.start(f"{self.app}.{name}", [sys.executable, str(CLI), *args, "--config", str(self.config_path)],
                          self.environment(self.key_id), on_exit=on_exit, cwd=self.folder)

    # ------------------------------------------------------------------ ECS
    def step(self, force: bool = False) -> None:
        """ECS's look at the run's service and machines, every STEP_SECONDS."""
        now = time.monotonic()
        if not force and now < self._next_step:
            return
        self._next_step = now + STEP_SECONDS
        ecs = self._client("ecs")
        settings = self.settings
        service = ecs_service(ecs, settings.ECS_CLUSTER, settings.service_name)
        machines = self.machines()
        for task in list(self.tasks):  # ended by themselves: DS's worker exits when the queue is empty
            if task.live.process.poll() is not None:
                self.tasks.remove(task)
                self._resting[task.instance_id] = now + RESTART_SECONDS
        for task in [task for task in self.tasks if task.instance_id not in machines]:
            self._kill(task)  # its machine is gone (terminated, the fleet cancelled)
        wanted = 0 if service is None else min(service.desired, len(machines) * self.run.tasks_per_machine)
        while len(self.tasks) > wanted:
            self._kill(self.tasks[-1])  # the service scaled in
        if service is None or len(self.tasks) >= wanted:
            return
        variables = self._task_variables(ecs, service.task_definition)
        if variables is None:
            return
        for machine in machines:
            if len(self.tasks) >= wanted:
                break
            placed = sum(task.instance_id == machine for task in self.tasks)
            if placed < self.run.tasks_per_machine and self._resting.get(machine, 0.0) <= now:
                self._start_task(machine, variables)
                self._resting[machine] = now + STEP_SECONDS  # one task a machine a step, as the scheduler paces

    def machines(self) -> list[str]:
        """The run's running instances (by its tag), sorted."""
        pages = self._client("ec2").get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{names.RUN_TAG}", "Values": [self.app]},
            {"Name": "instance-state-name", "Values": ["running"]}])
        return sorted(instance["InstanceId"] for page in pages for reservation in page["Reservations"]
                      for instance in reservation["Instances"])

    def _task_variables(self, ecs: Any, arn: str) -> dict[str, str] | None:
        if arn not in self._environments:
            described = task_definition(ecs, arn)
            if described is None or not described.containers:
                return None
            self._environments[arn] = dict(described.containers[0].environment)
        return self._environments[arn]

    def _start_task(self, machine: str, variables: dict[str, str]) -> None:
        env = {**self.environment(self.key_id), **variables, "CHAOS_RUN": self.app, "CHAOS_INSTANCE": machine}
        self.tasks_started += 1
        live = self.start(f"{self.app}.task", [sys.executable, str(WORKER)], env, cwd=self.folder)
        self.tasks.append(Task(machine, live))

    def _kill(self, task: Task) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(task.live.process.pid, signal.SIGKILL)
        self.tasks.remove(task)

    def stop_tasks(self) -> None:
        """The run is over, or the seed: whatever task is left is stopped."""
        for task in list(self.tasks):
            self._kill(task)

    # ------------------------------------------------------------------ faults aimed at the run
    def reclaim(self, draw: random.Random) -> str | None:
        """A spot reclaim: one of the run's machines terminated, its tasks with it, and a replacement asked of the
        fleet (of type maintain) as AWS would launch it; the machine's id, or None when it had none."""
        machines = self.machines()
        if not machines:
            return None
        machine = draw.choice(machines)
        for task in [task for task in self.tasks if task.instance_id == machine]:
            self._kill(task)
        ec2 = self._client("ec2")
        terminate(ec2, [machine])
        fleet_id = live_tagged_fleet_id(ec2, names.RUN_TAG, self.app)
        fleet = fleet_state(ec2, fleet_id) if fleet_id else None
        if fleet_id and fleet is not None and fleet.live and fleet.target > fleet.fulfilled:
            set_fleet_target(ec2, fleet_id, fleet.target)
        return machine

    def worker_pids(self) -> list[int]:
        return sorted(task.live.process.pid for task in self.tasks if task.live.process.poll() is None)
