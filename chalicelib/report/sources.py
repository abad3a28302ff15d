"""Where a run report's facts come from, and the one call that writes the file.

- The attempts: the run's job log group, read with FilterLogEvents (data.read_log_events). Log groups are
  kept 60 days after teardown, so this serves finished runs too; reading the S3 export (exportedlogs/) when
  the group is gone is not done yet: that case is one line saying so.
- A running run: the same status the monitor's API gives (service.find_status: machine-hours, cost
  ceiling). The monitor keeps no series of its observations yet, so on AWS machines and jobs running over
  time are derived from the logs (figures.derived_series); local mode passes the driver's observations.
- A finished run: the summary the monitor wrote at teardown (monitors/APP_NAME_summary.json).
- A local run: the local driver's own observations, passed in.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from chalicelib import aws
from chalicelib.errors import UserError
from chalicelib.report.data import NoLogs, parse_streams, read_log_events
from chalicelib.report.figures import Point, ReportInput, figures
from chalicelib.report.render import render
from chalicelib.settings import Settings

SETTINGS_SHOWN = ("APP_NAME", "CLUSTER_MACHINES", "MACHINE_TYPE", "MACHINE_PRICE", "TASKS_PER_MACHINE",
                  "DOCKER_CORES", "SQS_MESSAGE_VISIBILITY", "JOB_RETRIES", "CHECK_IF_DONE_BOOL", "DOCKERHUB_TAG",
                  "LOG_GROUP_NAME", "AWS_REGION")


def shown_settings(settings: Settings) -> dict:
    return {key: getattr(settings, key) for key in SETTINGS_SHOWN}


def report_input(settings: Settings, clients: aws.Clients, state: str, summary: dict | None,
                 series: Sequence[Point] = (), series_source: str = "the monitor's observations") -> ReportInput:
    try:
        streams = read_log_events(clients.logs, settings.LOG_GROUP_NAME)
    except NoLogs:
        raise UserError(f"log group {settings.LOG_GROUP_NAME} does not exist in {settings.AWS_REGION}: the run "
                        "report reads the job logs from it (reading the S3 export under exportedlogs/ is not "
                        "supported yet)") from None
    return ReportInput(app_name=settings.APP_NAME, state=state, settings=shown_settings(settings),
                       slots_per_machine=settings.TASKS_PER_MACHINE * settings.DOCKER_CORES,
                       machine_price=settings.MACHINE_PRICE, attempts=parse_streams(streams), summary=summary,
                       series=tuple(series), series_source=series_source)


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
    summary = {"machine_hours": found["machine_hours"], "cost_ceiling_usd": found["cost_ceiling_usd"]}
    return report_input(settings, clients, f"{found['state'].replace('_', ' ')}: a live report", summary)


def write_report(data: ReportInput, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, figures(data), time.time()), encoding="utf-8")
    return out
