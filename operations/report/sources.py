"""Where a run report's facts come from, and the one call that writes the file.

- The attempts: the run's job log group, read with FilterLogEvents (data.read_log_events). Log groups are
  kept 60 days after teardown, so this serves finished runs too; once the group is gone, the S3 export the
  teardown made (exported.read_exported_events, where the summary says it went).
- Machines, jobs waiting and running over time: the series the monitor keeps (chalicelib/monitor/series.py),
  from its state object while the run is watched and from the summary once it is torn down. Only a run with
  neither (a summary written before the series existed) has one derived from the logs (figures.derived_series).
- A running run: the same status the monitor's API gives (service.find_status: machine-hours, cost ceiling).
- A finished run, and a local one at its end: the summary the monitor wrote at teardown
  (monitors/finished/APP_NAME_summary.json; monitors/APP_NAME_summary.json for runs of earlier versions).
- MACHINE_TYPE's memory and vCPUs, for the TASKS_PER_MACHINE the report suggests: DescribeInstanceTypes (the
  call start-cluster's preflight makes); a report without them only leaves that table out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.aws.s3 import read_object
from chalicelib.model.errors import UserError
from chalicelib.model.names import exported_group_prefix, monitor_state_key
from chalicelib.model.settings import Settings
from chalicelib.monitor.observation import MonitorState
from operations.report.data import NoLogs, parse_streams, read_log_events
from operations.report.exported import read_exported_events
from operations.report.figures import Point, ReportInput, figures
from operations.report.render import render
from operations.report.sizing import MachineSize
from operations.start.cluster import usable_memory_mib

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_ec2.literals import InstanceTypeType

_S3_URL = re.compile(r"s3://([^/]+)/(.*)")
SERIES_SOURCE = "the monitor's checks{period}: a point whenever one of these counts changed"
SETTINGS_SHOWN = ("APP_NAME", "CLUSTER_MACHINES", "MACHINE_TYPE", "MACHINE_PRICE", "TASKS_PER_MACHINE",
                  "DOCKER_CORES", "MEMORY", "CPU_SHARES", "SQS_MESSAGE_VISIBILITY", "JOB_RETRIES",
                  "CHECK_IF_DONE_BOOL", "DOCKERHUB_TAG", "LOG_GROUP_NAME", "AWS_REGION")


def shown_settings(settings: Settings) -> dict[str, Any]:
    return {key: getattr(settings, key) for key in SETTINGS_SHOWN}


def report_input(settings: Settings, clients: aws.Clients, state: str, summary: dict[str, Any] | None,
                 series_source: str = SERIES_SOURCE.format(period=""),
                 streams: Mapping[str, Sequence[tuple[float, str]]] | None = None, worker_hours: float | None = None,
                 machines_now: int = 0) -> ReportInput:
    """`summary`: the monitor's figures, its series among them (absent from summaries written before it).
    `streams`: the job logs when the caller has read them already (local mode); else they are read here.
    `worker_hours`: how long the workers that ran were up, where the caller knows it (local mode).
    `machines_now`: a live run's machines in its fleet."""
    # the series as its reader checked it (run_summary.parse, MonitorState.from_json: four numbers a point); the
    # counts are whole numbers as the monitor writes them
    series = tuple(Point(when, int(machines), int(waiting), int(running))
                   for when, machines, waiting, running in (summary or {}).get("series") or ())
    logs: Mapping[str, Sequence[tuple[float, str]]]
    try:
        logs = streams if streams is not None else read_log_events(clients.logs, settings.LOG_GROUP_NAME)
    except NoLogs:
        logs = exported_streams(settings, clients, summary)
    return ReportInput(app_name=settings.APP_NAME, state=state, settings=shown_settings(settings),
                       slots_per_machine=settings.TASKS_PER_MACHINE * settings.DOCKER_CORES,
                       machine_price=settings.MACHINE_PRICE, attempts=parse_streams(logs), summary=summary,
                       series=series, series_source=series_source, machines=machine_sizes(settings, clients),
                       config_source=settings.source, worker_hours=worker_hours, machines_now=machines_now)


def machine_sizes(settings: Settings, clients: aws.Clients) -> dict[str, MachineSize]:
    """Each MACHINE_TYPE's memory and vCPUs; {} when EC2 cannot say (no permission, an emulator without them):
    the report then suggests MEMORY but no TASKS_PER_MACHINE."""
    found: dict[str, MachineSize] = {}
    try:
        # EC2 judges a MACHINE_TYPE (preflight asks it); boto3-stubs' list of the names is a snapshot of EC2's
        names = cast("list[InstanceTypeType]", list(settings.MACHINE_TYPE))
        for item in aws.paged(clients.ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=names):
            memory = item["MemoryInfo"]["SizeInMiB"]
            found[item["InstanceType"]] = MachineSize(memory, usable_memory_mib(memory),
                                                      item["VCpuInfo"]["DefaultVCpus"])
    except (BotoCoreError, ClientError, KeyError):
        return {}
    return {name: found[name] for name in settings.MACHINE_TYPE if name in found}


def exported_streams(settings: Settings, clients: aws.Clients,
                     summary: dict[str, Any] | None) -> dict[str, list[tuple[float, str]]]:
    """The job logs from the teardown's S3 export, for a run whose log group is gone; UserError when there is
    none to read."""
    group = settings.LOG_GROUP_NAME
    gone = f"log group {group} does not exist in {settings.AWS_REGION}"
    exports = (summary or {}).get("log_exports") or {}
    where = _S3_URL.fullmatch(str((summary or {}).get("exported_logs", "")))
    if exports.get(group) != "done" or not where:
        said = f"its export is {exports[group]!r}" if group in exports else "the run's summary shows no export of it"
        raise UserError(f"{gone} and {said}: the run report has no job logs to read")
    bucket, prefix = where.group(1), exported_group_prefix(where.group(2), group)
    streams = read_exported_events(clients.s3, bucket, prefix)
    if not streams:
        raise UserError(f"{gone} and s3://{bucket}/{prefix}/ holds no exported log: the run report has no job "
                        "logs to read")
    return streams


def from_account(settings: Settings, clients: aws.Clients) -> ReportInput:
    """A run on AWS (or an emulator), live or finished; UserError for a run that never started."""
    from chalicelib.monitor import service  # the monitor's own status: what `cli.py status` shows

    found = service.find_status(settings.APP_NAME, [settings.AWS_BUCKET], clients)
    if found is None:
        raise UserError(f"no run named {settings.APP_NAME!r} in s3://{settings.AWS_BUCKET}/monitors/ (neither a "
                        "run record nor a summary): expected a run started with start-cluster")
    if found["state"] == "finished":
        return report_input(settings, clients, "finished", found["summary"])
    if found["state"] != "running" and found["state"] != "tearing_down":
        raise UserError(f"run {settings.APP_NAME!r} is {found['state']}: {found.get('reason')}")
    state = MonitorState.from_json(read_object(clients.s3, settings.AWS_BUCKET, monitor_state_key(settings.APP_NAME)))
    summary = {"machine_hours": found["machine_hours"], "cost_ceiling_usd": found["cost_ceiling_usd"],
               "jobs_submitted": found["jobs"]["submitted"],
               "series": state.series}  # as the summary will carry it at teardown
    return report_input(settings, clients, f"{found['state'].replace('_', ' ')}: a live report", summary,
                        machines_now=len(found.get("machines") or ()))


def write_report(data: ReportInput, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, figures(data), time.time()), encoding="utf-8")
    return out
