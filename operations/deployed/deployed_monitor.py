"""`status`'s check that a deployed monitor watches the run's bucket: a monitor deployed for another bucket, or none
deployed, leaves the run's machines running after its last job, without a word. CLI only.

The deployed monitor is read back as Chalice leaves it: functions `ds-runner-monitor-STAGE-on_alarm` and
`...-every_period` (app.py's handlers that scale down and tear down), each with the stage's MONITOR_BUCKETS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.model.names import MONITOR_APP as APP_NAME
from chalicelib.monitor.service import BUCKETS_ENV

if TYPE_CHECKING:
    from chalicelib.model.settings import Settings

MONITOR_HANDLERS = ("on_alarm", "every_period")


def watched_by_deployment(settings: Settings) -> dict[str, set[str]]:
    """{deployment (`ds-runner-monitor-STAGE`): the buckets its monitor handlers watch} in the config's region."""
    deployments: dict[str, set[str]] = {}
    for function in aws.paged(aws.client("lambda", settings), "list_functions", "Functions"):
        name = function["FunctionName"]
        deployment, _, handler = name.rpartition("-")
        if handler in MONITOR_HANDLERS and deployment.startswith(APP_NAME + "-"):
            buckets = function.get("Environment", {}).get("Variables", {}).get(BUCKETS_ENV, "")
            deployments.setdefault(deployment, set()).update(
                bucket.strip() for bucket in buckets.split(",") if bucket.strip())
    return deployments


def problem(settings: Settings) -> str | None:
    """What the user must hear when no deployed monitor watches the run's bucket, or None. A caller who may not
    read Lambda (or cannot reach it) hears nothing: the check must never fail `status`."""
    try:
        deployments = watched_by_deployment(settings)
    except (ClientError, BotoCoreError):
        return None
    bucket = settings.AWS_BUCKET
    if not deployments:
        return (f"no monitor deployed in {settings.AWS_REGION} (app {APP_NAME}): the run will not be scaled down or "
                "torn down until `chalice deploy` (or while `python cli.py monitor` runs)")
    if any(bucket in buckets for buckets in deployments.values()):
        return None
    config = "CONFIG" if settings.source.startswith("$") else settings.source  # $DSR_CONFIG names no file
    watching = "; ".join(f"{deployment} watches {', '.join(sorted(buckets)) or 'no bucket'}"
                         for deployment, buckets in sorted(deployments.items()))
    return (f"the deployed monitor does not watch {bucket} ({watching}): the run will not be scaled down or torn "
            f"down; run `python cli.py monitor-config {config}` and `chalice deploy`")
