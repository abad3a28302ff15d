"""What the monitor can do to a run: frozen data, built by `plan`, carried out by `apply`.

Each action names its target and says why (`reason`), so `cli.py plan` can
print it and the Lambda can log it. Nothing here talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Action:
    reason: str = field(kw_only=True)

    def describe(self) -> str:
        """One line for `cli.py plan` and the logs."""
        details = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items() if name != "reason")
        return f"{type(self).__name__}({details}): {self.reason}"


# ---- while the run is running
@dataclass(frozen=True)
class SetFleetCapacity(Action):
    """Change the fleet's target; `noTermination`, so no machine is stopped by this."""

    fleet_id: str
    target: int


@dataclass(frozen=True)
class TerminateInstances(Action):
    """Stop machines that run no job (or every machine, at teardown)."""

    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class SetServiceCount(Action):
    cluster: str
    service: str
    count: int


@dataclass(frozen=True)
class DeleteAlarms(Action):
    names: tuple[str, ...]


@dataclass(frozen=True)
class SaveState(Action):
    """Write the monitor's own bookkeeping (observation.MonitorState): the only action that is not about AWS
    resources. Each field is a MonitorState field; None leaves that field as it is."""

    empty_observations: int | None = None
    tearing_down: bool | None = None
    stop_reason: str | None = None
    known_instances: dict[str, float] | None = None
    retired_machine_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields this action changes, by name."""
        return {name: value for name, value in self.__dict__.items() if name != "reason" and value is not None}

    def describe(self) -> str:
        details = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"SaveState({details}): {self.reason}"


# ---- teardown, in the order plan emits them (stop spending first)
@dataclass(frozen=True)
class CancelFleet(Action):
    fleet_id: str


@dataclass(frozen=True)
class DeleteService(Action):
    cluster: str
    service: str


@dataclass(frozen=True)
class DeregisterTaskDefinitions(Action):
    arns: tuple[str, ...]


@dataclass(frozen=True)
class DeleteQueue(Action):
    queue_url: str


@dataclass(frozen=True)
class DeleteDashboard(Action):
    name: str


@dataclass(frozen=True)
class DeleteCluster(Action):
    cluster: str


@dataclass(frozen=True)
class ExportLogs(Action):
    """Start one CloudWatch Logs export task (AWS runs one per account at a time)."""

    log_group: str
    bucket: str
    prefix: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class WriteSummary(Action):
    bucket: str
    key: str
    summary: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class RemoveRunRecord(Action):
    """Last: with the record gone the run is no longer watched."""

    bucket: str
    keys: tuple[str, ...]
