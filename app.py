"""The monitor Lambda and the status API, deployed with `chalice deploy`.

Handlers only translate events into calls to chalicelib.monitor.service.
Events are hints: an alarm or a tick says "reconcile now", and reconcile reads
the real state itself, so a duplicate, late or unknown alarm is harmless.
"""

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from chalice.app import BaseLambdaEvent, Chalice, CloudWatchEvent, IAMAuthorizer, NotFoundError, Rate, Request, SNSEvent

from chalicelib.model import names
from chalicelib.monitor import service
from chalicelib.monitor.alarm_event import AlarmNotification
from chalicelib.monitor.budget import CONCURRENT_RUNS, Backoff, TimeLeft, Turns
from chalicelib.monitor.observe import Run
from chalicelib.monitor.steady import LastLooks

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# configure_logs=False: powertools' Logger owns the output; with Chalice's handler too every line prints twice
app = Chalice(app_name=names.MONITOR_APP, configure_logs=False)
# .chalice/config.json sets both variables; the defaults serve `chalice local` and the tests
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", names.MONITOR_APP)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DSRunner")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
authorizer = IAMAuthorizer()
PERIOD_MINUTES = int(os.environ.get("MONITOR_PERIOD_MINUTES", "1"))
TURNS = Turns()  # kept while the container is warm: the runs a tick did not reach go first the next
LOOKS = LastLooks()  # kept while the container is warm: a converged run's tick reads its queue and fleet only
BACKOFF = Backoff()  # kept while the container is warm: a run whose reconcile keeps failing is tried less often


@app.middleware("all")
def context_and_metrics(event: Request | BaseLambdaEvent,
                        get_response: Callable[[Request | BaseLambdaEvent], object]) -> object:
    # powertools' inject_lambda_context does not compose with Chalice's decorators; this works for every
    # handler kind: HTTP requests and Lambda events both carry the context as `lambda_context`
    context = getattr(event, "lambda_context", None)
    if context is not None:
        logger.append_keys(function_request_id=getattr(context, "aws_request_id", None))
    try:
        return get_response(event)
    finally:
        if metrics.metric_set:  # routes add none: nothing to publish, and no warning about it
            metrics.flush_metrics()


@app.on_sns_message(topic="Monitor")
def on_alarm(event: SNSEvent) -> None:
    notification = AlarmNotification.from_sns_message(event.message)
    if notification is None:
        logger.info("ignored: not an alarm notification", extra={"subject": event.subject})
        return
    runs = _watched_runs(trigger=notification.alarm_name)
    _tick(service.runs_for_alarm(notification, runs), event, notification.alarm_name, full_look=True)


@app.schedule(Rate(PERIOD_MINUTES, unit=Rate.MINUTES))
def every_period(event: CloudWatchEvent) -> None:
    _tick(_watched_runs(trigger="schedule"), event, "schedule")
    # only the schedule sees every run each tick; GET /runs reads the indexes (a missing one only makes it slower)
    for item in service.refresh_indexes(service.watched_buckets()):
        logger.warning("status index " + item.reason, extra={"bucket": item.bucket, "key": item.key})


def _time_left(event: BaseLambdaEvent) -> TimeLeft | None:
    """Seconds until Lambda stops this invocation, or None without a context (nothing then stops it)."""
    # a Lambda event's context (an HTTP request's is `lambda_context`): Lambda's context object, which chalice
    # annotates as a dict
    context = cast("LambdaContext | None", event.context)
    return None if context is None else lambda: context.get_remaining_time_in_millis() / 1000


@app.route("/runs", authorizer=authorizer)
def list_runs() -> dict[str, Any]:
    return service.all_statuses(service.watched_buckets())


@app.route("/runs/{app_name}", authorizer=authorizer)
def get_run(app_name: str) -> dict[str, Any]:
    return _found(app_name, service.find_status(app_name, service.watched_buckets(), live=False))


@app.route("/runs/{app_name}/failed", authorizer=authorizer)
def get_failed(app_name: str) -> dict[str, Any]:
    return _found(app_name, service.find_failed(app_name, service.watched_buckets()))


def _found(app_name: str, document: dict[str, Any] | None) -> dict[str, Any]:
    if document is None:
        raise NotFoundError(f"no run named {app_name!r} in {', '.join(service.watched_buckets()) or 'no bucket'}")
    return document


def _watched_runs(trigger: str) -> list[Run]:
    """The runs the monitor acts on by itself: AUTO_MONITOR false means the user watches by hand."""
    runs, unreadable = service.scan_buckets(service.watched_buckets())
    for item in unreadable:
        logger.warning("skipped: " + item.reason, extra={"bucket": item.bucket, "key": item.key, "trigger": trigger})
    return [run for run in runs if run.record.AUTO_MONITOR]


def _tick(runs: list[Run], event: BaseLambdaEvent, trigger: str, full_look: bool = False) -> None:
    """Reconcile `runs`, each run's log lines and metrics written as soon as it is done (a tick cut by the Lambda's
    timeout has told what it did up to there), then the tick's own figures."""
    started = time.monotonic()
    outcomes = service.reconcile_runs(runs, _time_left(event), TURNS, LOOKS, full_look=full_look, backoff=BACKOFF,
                                      report=lambda outcome: _report_run(outcome, trigger),
                                      concurrency=CONCURRENT_RUNS)
    not_reached = [outcome.run.app_name for outcome in outcomes if outcome.not_reached]
    if not_reached:
        logger.warning("not reconciled for lack of time; first in turn next tick",
                       extra={"runs": not_reached, "trigger": trigger})
    backed_off = [outcome.run.app_name for outcome in outcomes if outcome.backed_off]
    if backed_off:
        logger.info("not reconciled this tick: their last reconciles failed (tried again later, less often)",
                    extra={"runs": backed_off, "trigger": trigger})
    done = [outcome for outcome in outcomes if not (outcome.not_reached or outcome.backed_off)]
    metrics.add_metric(name="RunsReconciled", unit=MetricUnit.Count, value=len(done))
    metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count,
                       value=sum(1 for outcome in done if outcome.error is not None))
    metrics.add_metric(name="TickSeconds", unit=MetricUnit.Seconds, value=round(time.monotonic() - started, 3))


def _report_run(outcome: service.RunOutcome, trigger: str) -> None:
    """One run's outcome: its log lines, and its figures as one EMF document with its own `run` dimension."""
    run = outcome.run.app_name
    result = outcome.result
    if result is None:  # its reconcile raised outcome.error
        logger.exception("reconcile failed; the next tick retries", extra={"run": run, "trigger": trigger},
                         exc_info=outcome.error)
        # per run, 0 on every good tick (below): an alarm on it tells a run stuck in errors from no data
        failed_metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        failed_metrics.add_dimension(name="run", value=run)
        failed_metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=1)
        failed_metrics.flush_metrics()
        return
    observation = result.observation
    if observation.refused:
        logger.warning("refused: " + observation.refused, extra={"run": run, "trigger": trigger})
        return
    for action in result.actions:
        logger.info(action.describe(), extra={"run": run, "trigger": trigger, "action": type(action).__name__})
    for action, code in result.skipped:
        logger.info("not yet, retried next tick", extra={"run": run, "action": type(action).__name__,
                                                          "code": code})
    run_metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    run_metrics.add_dimension(name="run", value=run)
    run_metrics.add_metric(name="JobsWaiting", unit=MetricUnit.Count, value=observation.visible)
    run_metrics.add_metric(name="JobsRunning", unit=MetricUnit.Count, value=observation.in_flight)
    run_metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=observation.failed)
    run_metrics.add_metric(name="FleetTarget", unit=MetricUnit.Count, value=observation.fleet_target)
    run_metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=0)
    run_metrics.flush_metrics()
