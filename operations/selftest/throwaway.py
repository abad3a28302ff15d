"""The self-test's throwaway run: the user's config with its own name, one machine, its own queues, log groups and
ECS cluster, and limits that cap what it can cost whatever happens to this process.

Everything it makes carries its own APP_NAME in the `dsr:app` tag (setup and start-cluster tag what they make), so
the inventory at the end finds it by that tag and by the names derived from that APP_NAME, and nothing of the
user's runs shares a name with it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.model.settings import Settings
from operations.start.cluster import fit_problem

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client

# The self-test's own limit on its run, and the monitor's (MAX_RUN_HOURS): a process killed half-way leaves a run
# the deployed monitor tears down by then, and EC2 charges at most MACHINE_PRICE an hour (MACHINE_PRICE_IS_BID).
WALL_MINUTES = 20
# How long it waits for each thing AWS does by itself: a Spot machine running, its ECS agent registered (boot and
# agent start take 2-4 minutes on AWS), the deployed monitor's first tick (it runs every minute) and its teardown.
MACHINE_MINUTES = 6
AGENT_MINUTES = 6
MONITOR_MINUTES = 4
SUFFIX = "-selftest-"
_PREFIX_CHARS = 75 - len(SUFFIX) - 6  # APP_NAME takes 75 characters; the token 6


def throwaway(settings: Settings, token: str | None = None) -> Settings:
    """The user's settings as a one-machine run of its own; `token` (6 hex digits) names it, random by default."""
    name = f"{settings.APP_NAME[:_PREFIX_CHARS]}{SUFFIX}{token or secrets.token_hex(3)}"
    config = settings.to_config()
    config.update({
        "APP_NAME": name, "CLUSTER_MACHINES": 1, "TASKS_PER_MACHINE": 1, "ECS_CLUSTER": name,
        "SQS_QUEUE_NAME": f"{name}Queue", "SQS_DEAD_LETTER_QUEUE": f"{name}DeadMessages", "LOG_GROUP_NAME": name,
        "AUTO_MONITOR": True, "CREATE_DASHBOARD": False, "CLEAN_DASHBOARD": False,
        # the monitor stops it by time and by cost even if this process dies; it starts no job, so no breaker
        "MAX_RUN_HOURS": WALL_MINUTES / 60, "MAX_RUN_COST": most_cost(settings),
        "STOP_IF_NO_JOB_STARTS_MINUTES": None, "STOP_AFTER_FAILED_JOBS": None,
        # EC2 then charges no more than MACHINE_PRICE an hour for the machine
        "MACHINE_PRICE_IS_BID": True,
    })
    return Settings.from_mapping(config, source=settings.source)


def most_cost(settings: Settings) -> float:
    """The most the throwaway run can cost in USD: its one machine at MACHINE_PRICE for WALL_MINUTES (SQS, logs and
    alarms of a few minutes cost fractions of a cent)."""
    return round(settings.MACHINE_PRICE * WALL_MINUTES / 60, 4)


def smallest_type(run: Settings, ec2: EC2Client) -> Settings:
    """The throwaway run with MACHINE_TYPE narrowed to its smallest type (fewest vCPUs, then least memory) that holds
    one task: the cheapest proof of the types the real run asks for. Unchanged when MACHINE_TYPE is [] (start-cluster
    then takes the types that hold a task without being twice too big), names one type, or none fits (start-cluster's
    check says why), and when the types cannot be described (start-cluster's check says that too)."""
    if len(run.MACHINE_TYPE) <= 1:
        return run
    try:
        described = list(aws.paged(ec2, "describe_instance_types", "InstanceTypes",
                                   InstanceTypes=list(run.MACHINE_TYPE)))
    except (ClientError, BotoCoreError):
        return run
    fitting = sorted((item["VCpuInfo"]["DefaultVCpus"], item["MemoryInfo"]["SizeInMiB"], item["InstanceType"])
                     for item in described
                     if not fit_problem(item["InstanceType"], item["MemoryInfo"]["SizeInMiB"],
                                        item["VCpuInfo"]["DefaultVCpus"], run))
    if not fitting:
        return run
    return Settings.from_mapping({**run.to_config(), "MACHINE_TYPE": [fitting[0][2]]}, source=run.source)
