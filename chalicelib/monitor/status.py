"""A run's status as the API and `cli.py status` show it, computed from one Observation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.model.printable import printable
from chalicelib.monitor.observation import Observation, Policy
from chalicelib.monitor.plan import summary


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def run_status(observation: Observation, policy: Policy) -> dict[str, Any]:
    if observation.refused:
        return refused_status(observation)
    figures = summary(observation, policy, observation.state.stop_reason or "")
    elapsed = observation.elapsed
    # the same counts as the summary's and the progress line's (chalicelib/monitor/counts.py)
    counts = observation.counts
    done = counts.done
    throughput = done / (elapsed / 3600) if elapsed > 0 else 0.0  # jobs per hour
    left = counts.not_run
    eta_seconds = left / throughput * 3600 if throughput > 0 and left else None
    return {
        "app_name": observation.app_name,
        "state": "tearing_down" if observation.state.tearing_down else "running",
        "stop_reason": observation.state.stop_reason,
        "jobs": {"submitted": counts.submitted, "waiting": counts.waiting, "running": counts.running, "done": done,
                 "failed": counts.failed},
        "fleet": {"id": observation.fleet_id, "active": observation.fleet_active, "target": observation.fleet_target,
                  "fulfilled": observation.fleet_fulfilled, "problems": list(observation.fleet_problems)},
        "machines": [{"instance_id": instance.instance_id, "busy_jobs": instance.busy_jobs,
                      "launched_at": _iso(instance.launched_at)} for instance in observation.instances],
        "started_at": _iso(observation.started_at),
        "elapsed_seconds": round(elapsed),
        "throughput_jobs_per_hour": round(throughput, 1),
        "eta_seconds": round(eta_seconds) if eta_seconds is not None else None,
        "machine_hours": figures["machine_hours"],
        "cost_ceiling_usd": figures["cost_ceiling_usd"],
        "dead_letter_jobs": observation.dead_letter,  # the whole dead-letter queue, shared by runs by default
        "resources": {"queue_url": observation.queue_url, "cluster": observation.cluster,
                      "service": observation.service, "dashboard": observation.dashboard_name,
                      "log_groups": list(observation.log_groups), "alarms": list(observation.alarm_names)},
    }


def refused_status(observation: Observation) -> dict[str, Any]:
    """A run the monitor will not touch: what its record names, and why it is refused."""
    return {"app_name": observation.app_name, "state": "refused", "reason": observation.refused,
            "fleet": {"id": observation.fleet_id}, "started_at": _iso(observation.started_at),
            "resources": {"queue_url": observation.queue_url, "bucket": observation.bucket}}


def finished_status(app_name: str, run_summary: dict[str, Any]) -> dict[str, Any]:
    """A run that has been torn down: its summary is all that is left."""
    return {"app_name": app_name, "state": "finished", "summary": run_summary}


def local_time(epoch: float) -> str:
    """A time as people read it: this machine's time zone, to the second."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(sep=" ", timespec="seconds")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _readable(key: str, value: object) -> str:
    if key in ("started_at", "ended_at") and isinstance(value, (int, float)):
        return local_time(value)
    if isinstance(value, dict):
        return ", ".join(f"{name}: {item}" for name, item in value.items()) or "-"
    return str(value)


def status_table(status: dict[str, Any]) -> str:
    """`cli.py status`: the same figures, readable."""
    if status["state"] in ("refused", "unreadable", "unavailable", "starting"):
        rows = [("run", status["app_name"]), ("state", status["state"]), ("reason", status["reason"])]
    elif status["state"] == "finished":
        summary = status["summary"]
        rows = [("run", status["app_name"]), ("state", "finished")] + [
            (key.replace("_", " "), _readable(key, value) + (
                " at least (the shared dead-letter queue was busy as the run ended: `failed` lists them all)"
                if key == "jobs_failed" and summary.get("jobs_failed_exact") is False else ""))
            for key, value in summary.items()
            if key not in ("app_name", "series", "jobs_failed_exact")]  # the series is the run report's
    else:
        jobs = status["jobs"]
        eta = status["eta_seconds"]
        rows = [
            ("run", status["app_name"]),
            ("state", status["state"] + (f" ({status['stop_reason']})" if status["stop_reason"] else "")),
            ("jobs", f"{jobs['submitted']} submitted, {jobs['waiting']} waiting, {jobs['running']} running, "
                     f"{jobs['done']} done, {jobs['failed']} failed"),
            ("fleet", f"target {status['fleet']['target']}, fulfilled {status['fleet']['fulfilled']:g}, "
                      f"{len(status['machines'])} machine(s)"
                      + ("; the run goes on with these" if status["fleet"].get("problems") else "")),
            *(("why", problem) for problem in status["fleet"].get("problems", ())),
            ("started", local_time(datetime.fromisoformat(status["started_at"]).timestamp())),
            ("elapsed", duration(status["elapsed_seconds"])),
            ("throughput", f"{status['throughput_jobs_per_hour']:g} jobs/hour"),
            ("eta", duration(eta) if eta is not None else "-"),
            ("cost ceiling", f"${status['cost_ceiling_usd']:.2f} ({status['machine_hours']:.2f} machine-hours)"),
        ]
    if "as_of" in status:  # the monitor's status document (status_doc.py): its figures are as of then
        rows.append(("as of", local_time(status["as_of"])))
    width = max(len(name) for name, _ in rows)
    # a stop reason can quote a job's output (the breaker's): each value is shown, never obeyed by the terminal
    return "\n".join(f"{name.ljust(width)}  {printable(str(value))}" for name, value in rows)
