"""What the monitor sees of a run at one moment, as plain values.

`observe.py` builds an `Observation` from the run record and live AWS; `plan`
reads nothing else. `Policy` is the part of the run's settings the monitor
acts on (recorded by start-cluster, since the Lambda has no config.json), and
`MonitorState` is the monitor's own bookkeeping between ticks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from chalicelib.model import schema
from chalicelib.model.schema import bounds
from chalicelib.monitor.counts import Counts
from chalicelib.monitor.series import SERIES_BOUNDS, SeriesPoint

ExportStatus = Literal["missing", "running", "done", "failed"]


@dataclass(frozen=True)
class Policy:
    """How the monitor treats a run (from the run record)."""

    cluster_machines: int
    tasks_per_machine: int
    docker_cores: int
    machine_price: float
    cheapest: bool = False
    max_run_hours: float | None = None
    max_run_cost: float | None = None
    clean_dashboard: bool = True
    stop_after_failed_jobs: int | None = None  # the circuit breakers (plan.py); None: off
    stop_if_no_job_starts_minutes: float | None = None

    @property
    def workers_per_machine(self) -> int:
        return self.tasks_per_machine * self.docker_cores


# The state's largest size: its bounds below allow about 3 MiB. Only the user and the monitor write under monitors/,
# and a bucket is shared, so an object there is still read bounded.
MAX_STATE_BYTES = 4 * 1_048_576
_AT_LEAST_0 = bounds(minimum=0)


@dataclass(frozen=True)
class MonitorState:
    """The monitor's bookkeeping, kept in S3 beside the run record (the record itself is never rewritten)."""

    # consecutive ticks that saw no job visible nor in flight
    empty_observations: int = field(default=0, metadata=_AT_LEAST_0)
    tearing_down: bool = False
    # a breaker's reason quotes a failure record's reason or last line (at most 2,000 characters: failures.py)
    stop_reason: str | None = field(default=None, metadata=bounds(max_length=8_192))
    # instance id -> launch time (epoch s) of the machines seen last tick, so that a machine that
    # disappears (spot interruption, termination) still counts toward machine-hours
    known_instances: dict[str, float] = field(default_factory=dict,
                                              metadata=bounds(max_items=50_000, item=_AT_LEAST_0))
    retired_machine_seconds: float = field(default=0.0, metadata=_AT_LEAST_0)
    # log group -> export task id (CloudWatch Logs' are 36 characters)
    export_tasks: dict[str, str] = field(default_factory=dict,
                                         metadata=bounds(max_items=1_000, item=bounds(max_length=512)))
    jobs_started: bool = False  # a job has been seen running, done or failed: the machines can run jobs
    # machines, waiting, running over time (series.py)
    series: list[SeriesPoint] = field(default_factory=list, metadata=SERIES_BOUNDS)
    # the most jobs seen done so far: a job done stays done (chalicelib/monitor/counts.py)
    jobs_done_seen: int = field(default=0, metadata=_AT_LEAST_0)
    # jobs `submit` sent to the run after start-cluster counted JOBS_AT_START (--append, a second job file)
    jobs_appended: int = field(default=0, metadata=_AT_LEAST_0)
    # when a teardown tick first could not count the failed jobs exactly (epoch s; Observation.failed_exact): the
    # summary waits for an exact count no longer than plan.EXACT_FAILED_WAIT_SECONDS after it
    failed_inexact_since: float | None = field(default=None, metadata=_AT_LEAST_0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | None, document: str = "monitor state") -> MonitorState:
        """No text: a run's first state. Raises schema.SchemaError (a ValueError) naming `document` and the field."""
        if not text:
            return cls()
        return schema.read(cls, text, document, MAX_STATE_BYTES)

    def updated(self, changes: dict[str, Any]) -> MonitorState:
        return replace(self, **changes)


def jobs_done(jobs_at_start: int | None, waiting: int, in_flight: int, failed: int, done_before: int = 0) -> int:
    """Jobs done, skipped included, as chalicelib/monitor/counts.py defines them live (the queue's counts are
    approximate)."""
    return Counts.live(jobs_at_start, waiting, in_flight, failed, done_before).done


@dataclass(frozen=True)
class FailedJob:
    """What a failure record says of one failed job, as the breaker and the reports name the common cause."""

    job_id: str
    attempts: int
    reason: str
    exit_code: int | None
    last_line: str  # the command's last output line ("" when it printed nothing)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    launched_at: float  # epoch seconds
    # Its workers in a busy period right now, from their leases: each runs a job, or is between two with no
    # empty poll yet (about a second: worker.BUSY_PERIOD_WAIT_SECONDS). None when unknown, and a machine whose
    # business is unknown is never stopped.
    busy_jobs: int | None


@dataclass(frozen=True)
class Observation:
    app_name: str
    now: float  # epoch seconds
    started_at: float  # epoch seconds
    state: MonitorState
    # queue
    queue_url: str
    queue_exists: bool
    visible: int  # visible + delayed: jobs waiting for a worker
    in_flight: int  # received and not yet deleted: jobs running (or failed and waiting to retry)
    dead_letter: int  # the dead-letter queue's messages: every run's that shares it (DS's default is shared)
    # the jobs sent to the run: start-cluster's count and `submit`'s since (Run.jobs_submitted)
    jobs_at_start: int | None
    # fleet and machines
    fleet_id: str
    fleet_active: bool  # the request exists and is not cancelled
    fleet_target: int
    fleet_fulfilled: float
    instances: tuple[Instance, ...] = ()
    # Why a live fleet has fewer machines than its target, in words with the fix (fleet_words), read only then
    fleet_problems: tuple[str, ...] = ()
    failed: int = 0  # this run's failed jobs: the workers' failure records (runs/APP_NAME/failures/)
    # False: while tearing down, the dead-letter queue could not be read whole (another reader held some of its
    # messages), so `failed` may miss some of the run's dead-lettered jobs
    failed_exact: bool = True
    # Read only when the failure breaker may trip: the run's failed jobs (oldest first, at most a sample)
    failed_jobs: tuple[FailedJob, ...] = ()
    # ECS
    cluster: str = "default"
    cluster_exists: bool = False
    cluster_owned: bool = False  # carries the run's tag (setup created it for this run); only then deleted
    cluster_in_use_by_others: bool = False
    service: str = ""
    service_exists: bool = False
    service_desired: int = 0
    task_definition_arns: tuple[str, ...] = ()
    # EC2: the run's launch templates (tagged with its RUN_TAG value), what its fleet launches machines from
    launch_template_ids: tuple[str, ...] = ()
    # CloudWatch
    alarm_names: tuple[str, ...] = ()  # existing alarms that belong to the run
    queue_alarm_names: tuple[str, ...] = ()  # the run's queue alarms (a subset of alarm_names when they exist)
    instance_alarm_prefix: str = ""
    dashboard_name: str | None = None
    dashboard_exists: bool = False
    # logs and records
    bucket: str = ""
    log_groups: tuple[str, ...] = ()
    exported_logs_prefix: str = ""
    foreign_log_groups: tuple[str, ...] = ()  # of log_groups: another run's (its tag), never exported by this run
    export_status: dict[str, ExportStatus] = field(default_factory=dict)  # per log group, our export task
    export_running_in_account: bool = False  # AWS allows one running export task per account
    summary_key: str = ""
    summary_exists: bool = False
    record_keys: tuple[str, ...] = ()  # the run record and the monitor state, removed last
    # Why the monitor will not act on this run (the record or a resource is not provably the run's); None: it acts
    refused: str | None = None

    @property
    def counts(self) -> Counts:
        return Counts.live(self.jobs_at_start, self.visible, self.in_flight, self.failed, self.state.jobs_done_seen)

    @property
    def jobs_submitted(self) -> int:
        return self.counts.submitted

    @property
    def jobs_done(self) -> int:
        return self.counts.done

    @property
    def elapsed(self) -> float:
        return max(0.0, self.now - self.started_at)

    @property
    def active_instance_ids(self) -> tuple[str, ...]:
        return tuple(instance.instance_id for instance in self.instances)

    def machine_seconds(self) -> float:
        """Machine time so far: retired machines plus the live ones up to now (a ceiling, billed by the second)."""
        live = sum(max(0.0, self.now - instance.launched_at) for instance in self.instances)
        gone = sum(max(0.0, self.now - launched) for instance_id, launched in self.state.known_instances.items()
                   if instance_id not in self.active_instance_ids)
        return self.state.retired_machine_seconds + gone + live
