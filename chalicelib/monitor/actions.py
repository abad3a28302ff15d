"""What the monitor can do to a run: frozen data, built by `plan`, carried out by `apply`.

Each action names its target and says why (`reason`), so `cli.py plan` can
print it and the Lambda can log it. Nothing here talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.ec2 import is_spot_fleet
from chalicelib.monitor.series import SeriesPoint


@dataclass(frozen=True)
class Action:
    reason: str = field(kw_only=True)

    def what(self) -> str:
        """What the action does, in words (each action says it its own way)."""
        return type(self).__name__

    def describe(self) -> str:
        """One line for `cli.py plan`, `cli.py monitor` and the logs: what, then why."""
        return f"{self.what()} ({self.reason})" if self.reason else self.what()


def _listed(items: tuple[str, ...], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


# ---- while the run is running
@dataclass(frozen=True)
class SetFleetCapacity(Action):
    """Change the fleet's target; `noTermination`, so no machine is stopped by this."""

    fleet_id: str
    target: int

    def what(self) -> str:
        return f"set fleet {self.fleet_id}'s target to {self.target} machine(s)"


@dataclass(frozen=True)
class TerminateInstances(Action):
    """Stop machines that run no job (or every machine, at teardown)."""

    instance_ids: tuple[str, ...]

    def what(self) -> str:
        return f"stop {len(self.instance_ids)} machine(s): {_listed(self.instance_ids)}"


@dataclass(frozen=True)
class SetServiceCount(Action):
    cluster: str
    service: str
    count: int

    def what(self) -> str:
        return f"set service {self.service} to {self.count} task(s)"


@dataclass(frozen=True)
class CreateIdleAlarms(Action):
    """Each machine's idle alarm (chalicelib/monitor/idle_alarm.py), tagged as the run's: made by the monitor, never by
    a job, since whoever makes an alarm can have any instance of the account terminated."""

    instance_ids: tuple[str, ...]

    def what(self) -> str:
        return f"create the idle alarm of {len(self.instance_ids)} machine(s): {_listed(self.instance_ids)}"


@dataclass(frozen=True)
class DeleteAlarms(Action):
    names: tuple[str, ...]

    def what(self) -> str:
        return f"delete {len(self.names)} alarm(s): {_listed(self.names)}"


@dataclass(frozen=True)
class SaveState(Action):
    """Write the monitor's own bookkeeping (observation.MonitorState): the only action that is not about AWS
    resources. Each field is a MonitorState field; None leaves that field as it is."""

    empty_observations: int | None = None
    tearing_down: bool | None = None
    stop_reason: str | None = None
    known_instances: dict[str, float] | None = None
    retired_machine_seconds: float | None = None
    jobs_started: bool | None = None
    series: list[SeriesPoint] | None = None
    jobs_done_seen: int | None = None
    jobs_appended: int | None = None
    failed_inexact_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields this action changes, by name."""
        return {name: value for name, value in self.__dict__.items() if name != "reason" and value is not None}

    def what(self) -> str:
        return "mark the run for teardown" if self.tearing_down else "update the monitor's bookkeeping"


# ---- teardown, in the order plan emits them (stop spending first)
@dataclass(frozen=True)
class CancelFleet(Action):
    fleet_id: str

    def what(self) -> str:
        return f"{'cancel' if is_spot_fleet(self.fleet_id) else 'delete'} fleet {self.fleet_id} and stop its machines"


@dataclass(frozen=True)
class DeleteService(Action):
    cluster: str
    service: str

    def what(self) -> str:
        return f"delete service {self.service} (cluster {self.cluster})"


@dataclass(frozen=True)
class DeregisterTaskDefinitions(Action):
    arns: tuple[str, ...]

    def what(self) -> str:
        family_revisions = tuple(arn.rsplit("/", 1)[-1] for arn in self.arns)
        return f"deregister {len(self.arns)} task definition(s): {_listed(family_revisions)}"


@dataclass(frozen=True)
class DeleteLaunchTemplates(Action):
    """After the fleet is cancelled: a fleet still launching machines needs its template."""

    ids: tuple[str, ...]

    def what(self) -> str:
        return f"delete {len(self.ids)} launch template(s): {_listed(self.ids)}"

@dataclass(frozen=True)
class DeleteQueue(Action):
    queue_url: str

    def what(self) -> str:
        return f"delete queue {self.queue_url.rsplit('/', 1)[-1]}"


@dataclass(frozen=True)
class DeleteDashboard(Action):
    name: str

    def what(self) -> str:
        return f"delete dashboard {self.name}"


@dataclass(frozen=True)
class DeleteCluster(Action):
    cluster: str

    def what(self) -> str:
        return f"delete ECS cluster {self.cluster}"


@dataclass(frozen=True)
class ExportLogs(Action):
    """Start one CloudWatch Logs export task (AWS runs one per account at a time)."""

    log_group: str
    bucket: str
    prefix: str
    start_ms: int
    end_ms: int

    def what(self) -> str:
        return f"export log group {self.log_group} to s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class WriteSummary(Action):
    bucket: str
    key: str
    summary: tuple[tuple[str, Any], ...]

    def what(self) -> str:
        return f"write the run's summary to s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class RemoveRunRecord(Action):
    """Last: with the record gone the run is no longer watched."""

    bucket: str
    keys: tuple[str, ...]

    def what(self) -> str:
        return f"remove the run record s3://{self.bucket}/{self.keys[0]}"
