#!/usr/bin/env python3
"""Command line: parse input, call one chalicelib function, print the result.

User mistakes (chalicelib.model.errors.UserError) print one line `error: ...` on
stderr and exit 2; nothing else of them is shown.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sys
from pathlib import Path

# What the CLI imports, pinned in the requirements files `make` installs into .venv. Checked before any of them is
# imported: another Python (the machine's own, with an older moto, say) would otherwise fail with a traceback.
CLI_DISTRIBUTIONS = ("boto3", "botocore", "click", "moto", "aws-lambda-powertools")
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "worker/requirements.txt")


PROJECT_ROOT = Path(__file__).resolve().parent  # where the requirement files are


def environment_problem(root: Path = PROJECT_ROOT) -> str | None:
    """Why this Python cannot run the CLI (a pinned package missing or at another version), or None."""
    from importlib import metadata

    pins = {}
    for name in REQUIREMENT_FILES:
        path = root / name
        for line in path.read_text().splitlines() if path.exists() else ():
            requirement, _, version = line.split("#")[0].strip().partition("==")
            if version:
                pins[requirement.split("[")[0].strip().lower()] = version.strip()
    for distribution in CLI_DISTRIBUTIONS:
        wanted = pins.get(distribution)
        try:
            found = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found = None
        if wanted and found != wanted:
            how = f"has {distribution} {found}" if found else f"has no {distribution}"
            return (f"this Python ({sys.executable}) {how}, not the pinned {wanted}: run the commands in the "
                    "project's environment: 'make install' once, then '. .venv/bin/activate' (or call "
                    ".venv/bin/python cli.py ...)")
    return None


if __name__ == "__main__" and (_problem := environment_problem()):
    print(f"error: {_problem}", file=sys.stderr)
    sys.exit(2)

# After the check above, which needs none of them (ruff.toml lets these imports come late)
import botocore.exceptions
import click

from chalicelib import aws
from chalicelib.model.errors import RefusedRun, UserError
from chalicelib.model.jobs import JobFile
from chalicelib.model.names import record_key, summary_key
from chalicelib.model.printable import printable
from chalicelib.model.settings import Settings
from chalicelib.monitor import deadletters, run_summary, service
from chalicelib.monitor.reconcile import reconcile
from chalicelib.monitor.runs import load_run
from chalicelib.monitor.status import local_time, status_table
from operations import monitor_loop, triage
from operations.deployed import status_api
from operations.selftest import run as selftest_run
from operations.selftest.throwaway import most_cost
from operations.setup import iam, job_access, resources
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from operations.submit import submit as submit_jobs

REFUSED_CHECKS_TO_END = 3  # checks in a row a run is refused on before `monitor` or `teardown` gives up
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C (128 + SIGINT)

# AWS answers that mean the user's credentials or permissions need fixing, not our code.
_ACCOUNT_PROBLEMS = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "ExpiredToken",
                     "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure",
                     "UnrecognizedClientException"}


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {printable(str(error))}", err=True)
            ctx.exit(error.exit_code)
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as error:
            click.echo(f"error: no usable AWS credentials ({error}); set AWS_PROFILE in the config or configure "
                       "the AWS CLI", err=True)
            ctx.exit(2)
        except botocore.exceptions.ClientError as error:
            # AWS's message can quote a name it was given, and names can come from a file
            code, message = aws.error_code(error), printable(str(error.response.get("Error", {}).get("Message", "")))
            if code == "NoSuchBucket":
                click.echo(f"error: the bucket does not exist ({error.operation_name}: {message}); check AWS_BUCKET "
                           "and AWS_REGION in the config, or create the bucket", err=True)
                ctx.exit(2)
            if code in _ACCOUNT_PROBLEMS:
                click.echo(f"error: AWS refused {error.operation_name}: {message} "
                           "(check the credentials and the IAM permissions of the profile in use)", err=True)
                ctx.exit(2)
            # AWS said no for a reason of its own (a limit, a conflict, a service error after botocore's retries)
            click.echo(f"error: AWS refused {error.operation_name}: {code}: {message}", err=True)
            ctx.exit(1)
        except botocore.exceptions.EndpointConnectionError as error:
            click.echo(f"error: cannot reach AWS ({error}); check the network and AWS_REGION", err=True)
            ctx.exit(1)


def config_option(command):
    @click.option("--config", "config_path", default="config.json", show_default=True,
                  type=click.Path(), help="The run's configuration file.")
    @functools.wraps(command)
    def wrapper(*args, config_path: str, **kwargs):
        return command(*args, settings=_load_settings(config_path), **kwargs)

    return wrapper


def _load_settings(config_path: str) -> Settings:
    settings, warnings = Settings.load_with_warnings(config_path)
    _warn(warnings)
    return settings


def _warn(warnings) -> None:
    for warning in warnings:
        click.echo(f"warning: {printable(str(warning))}", err=True)


class _ProgressBar:
    """click's progress bar on a terminal; silent when output is piped or captured."""

    def __init__(self, stream):
        self._stream = stream
        self._bar = None

    def start(self, total: int) -> None:
        if total and self._stream.isatty():
            self._bar = click.progressbar(length=total, label="submitting", file=self._stream)
            self._bar.__enter__()

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Run thousands of jobs of a Docker image on EC2 spot machines, watched
    by a serverless monitor that scales down and tears down when done.

    \b
    Example, a whole run on this machine (no AWS account needed):
      python cli.py local examples/jobs.json --config examples/config.json
    """


@cli.command()
@config_option
def setup(settings: Settings):
    """Create the run's queues, ECS cluster, task definition, service, log groups
    and SNS topic. Safe to re-run: it fixes what differs and changes nothing else.

    \b
    Example:
      python cli.py setup --config config.json
    """
    report = resources.setup(settings)
    for change in report.changes:
        click.echo(str(change))
    _warn(report.warnings)


@cli.command("setup-account")
@click.option("--destroy", is_flag=True, help="Remove the roles this command created (refused while a run uses them).")
@click.option("--force", is_flag=True, help="With --destroy: remove the roles even while runs use them.")
@config_option
def setup_account(settings: Settings, destroy: bool, force: bool):
    """Create the IAM roles a run needs (once per AWS account) and print their ARNs.

    \b
    Example:
      python cli.py setup-account
    """
    if destroy:
        removed = iam.destroy_account(settings, force=force)
        click.echo("\n".join(f"deleted {name}" for name in removed) or "nothing to delete")
        return
    report = iam.setup_account(settings)
    for change in report.changes:
        click.echo(change)
    # A DS fleet file's IamFleetRole is not used (machines come from an EC2 Fleet, which acts with its
    # service-linked role), so only the instance profile is worth changing, and only if the file's does not exist.
    click.echo("\nPut this in your fleet file (unless it names DS's ecsInstanceRole and your account has it):")
    click.echo(f'  "IamInstanceProfile": {{"Arn": "{report.instance_profile_arn}"}}')
    click.echo(f"Task role (used by 'setup'): {report.task_role_arn}")


@cli.command()
@click.argument("jobfile", type=click.Path())
@click.option("--skip-done", is_flag=True, help="Send only jobs whose outputs are not already in S3.")
@click.option("--append", is_flag=True, help="Send even though the queue already holds jobs of this run.")
@config_option
def submit(settings: Settings, jobfile: str, skip_done: bool, append: bool):
    """Validate every job in JOBFILE, then send them to the job queue.
    One bad job submits nothing.

    \b
    Example:
      python cli.py submit jobs.json --config config.json
    """
    jobs = JobFile(jobfile, settings)  # validated whole here; read again, a job at a time, as it is sent
    bar = _ProgressBar(sys.stderr)
    sent = [0]

    def on_sent(count: int) -> None:
        sent[0] += count
        bar.update(count)

    try:
        # processes=None: a large file is sent from one process per CPU (operations.submit.processes_for)
        result = submit_jobs(settings, jobs, skip_done=skip_done, on_total=bar.start, on_sent=on_sent,
                             append=append, processes=None,
                             before_send=lambda todo, queued: job_access.record_submitted(settings, todo, queued))
    finally:
        bar.finish()
        # a started run counts what was sent, even when the sending stopped part way
        _note_sent_to_started_run(settings, sent[0])
    if skip_done:
        click.echo(f"{result.already_done} of {result.considered} already done")
    click.echo(f"submitted {result.sent} jobs to {result.queue}")


def _note_sent_to_started_run(settings: Settings, count: int) -> None:
    """Jobs sent after start-cluster counted the queue are the run's too: its monitor counts them (the state's
    jobs_appended). Before start-cluster there is no run: its count will include them."""
    if not count:
        return
    clients = aws.Clients(settings)
    try:
        run = load_run(clients.s3, settings.AWS_BUCKET, record_key(settings.APP_NAME))
        if run is not None:
            monitor_loop.note_appended(run, count, clients)
    except botocore.exceptions.ClientError as error:
        if aws.error_code(error) != "NoSuchBucket":  # no bucket, no run
            _warn_not_counted(count, error)
    except (UserError, botocore.exceptions.BotoCoreError) as error:
        _warn_not_counted(count, error)


def _warn_not_counted(count: int, error: Exception) -> None:
    """The jobs are in the queue and will run: only the run's counts miss them, which is no reason to fail."""
    click.echo(f"warning: {count} job(s) sent, but the started run's monitor state could not count them "
               f"({error})", err=True)


@cli.command("start-cluster")
@click.argument("fleetfile", type=click.Path())
@click.option("--cheapest", is_flag=True, help="Shrink the fleet to one machine after 15 minutes (DS's mode).")
@click.option("--wait", "wait_seconds", type=click.IntRange(min=0), default=300, show_default=True,
              help="Seconds to wait for the first machine (0: do not wait).")
@click.option("--dry-run", is_flag=True, help="Check, and show the instance types with their Spot prices and the "
                                              "cost ceiling, creating nothing.")
@config_option
def start_cluster(settings: Settings, fleetfile: str, cheapest: bool, wait_seconds: int, dry_run: bool):
    """Check the account, then create the run's EC2 Fleet of Spot machines,
    alarms, dashboard and start the workers.

    \b
    Example:
      python cli.py start-cluster fleet.json --config config.json
      python cli.py start-cluster fleet.json --dry-run
    """
    if dry_run:
        checked, lines = cluster.dry_run(settings, load_fleet_file(fleetfile))
        click.echo("dry run: checked, nothing created")
        for line in lines:
            click.echo(line)
        _warn(checked.warnings)
        return
    result = cluster.start_cluster(settings, load_fleet_file(fleetfile), cheapest=cheapest,
                                   wait_seconds=wait_seconds)
    record = result.record
    if result.resumed:
        click.echo(f"run {record.MONITOR_APP_NAME} already started with fleet {record.MONITOR_FLEET_ID}")
    for change in result.changes:
        click.echo(change)
    if result.resumed and not result.changes:
        click.echo("nothing to change")
    click.echo(f"run record: {result.local_record} and s3://{record.MONITOR_BUCKET_NAME}/{record.MONITOR_FILE_KEY}")
    if result.fleet is not None:
        click.echo(f"fleet {record.MONITOR_FLEET_ID}: {result.fleet.instances} of {record.CLUSTER_MACHINES} "
                   f"machines running")
    _warn(result.warnings)


@cli.command()
@click.argument("monitorfile", required=False, type=click.Path())
@click.argument("ds_cheapest", required=False, metavar="[True|False]",
                type=click.Choice(["True", "False", "true", "false"]))
@click.option("--cheapest", is_flag=True, help="Shrink the fleet to one machine after 15 minutes.")
@click.option("--period", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds between checks.")
@click.option("--config", "config_path", default="config.json", show_default=True, type=click.Path(),
              help="The run's configuration file (not read when MONITORFILE is given).")
@click.option("--yes", is_flag=True, help="Adopt a Distributed-Something run without asking (for scripts).")
def monitor(monitorfile: str | None, ds_cheapest: str | None, cheapest: bool, period: float, config_path: str,
            yes: bool):
    """Watch a run from this terminal until it is torn down (what the Lambda does):
    scale down as the queue drains, tear down when it is empty. DS's spelling
    `monitor FILE True` is --cheapest. Given DS's own monitor file, the DS run is
    adopted once its resources are proved its own and you agree (or pass --yes).

    \b
    Example:
      python cli.py monitor files/MyAppSpotFleetRequestId.json
    """
    cheapest = cheapest or (ds_cheapest or "").lower() == "true"
    if monitorfile:
        record = _record_or_adopted(monitorfile, yes)
        app_name, bucket, key = record.MONITOR_APP_NAME, record.MONITOR_BUCKET_NAME, record.MONITOR_FILE_KEY
        clients = aws.Clients(region=record.REGION)  # no config: the profile comes from AWS_PROFILE, as for boto3
    else:
        settings = _load_settings(config_path)
        app_name, bucket, key = settings.APP_NAME, settings.AWS_BUCKET, record_key(settings.APP_NAME)
        clients = aws.Clients(settings)
    monitor_loop.load_or_fail(clients, bucket, key)
    try:
        click.echo(f"watching s3://{bucket}/{key} every {period:g} s (Ctrl-C stops watching; the run goes on)")
        monitor_loop.watch(lambda: load_run(clients.s3, bucket, key), period, _TickPrinter(), cheapest=cheapest,
                   on_error=lambda error: click.echo(f"warning: check failed, retrying: {printable(str(error))}",
                                                     err=True),
                   clients=clients)
    except KeyboardInterrupt:
        click.echo(f"\nstopped watching; run {app_name} goes on (the Lambda, if deployed, still watches it)",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"run torn down; summary at s3://{bucket}/{summary_key(app_name)}")


def _record_or_adopted(path: str, yes: bool):
    """This project's monitor file, or DS's: then the DS run is adopted (operations/adopt/adopt.py) once the user has
    seen what that tags and what the monitor will do, and agreed."""
    from operations.adopt import adopt, dsmonitorfile

    try:
        return monitor_loop.record_from_file(path)
    except UserError:
        ds = dsmonitorfile.read(path)
        if ds is None:
            raise
    region = aws.default_region()  # DS's file names no region: its run.py's boto3 clients use this one
    clients = aws.Clients(region=region)
    adoption = adopt.prepare(clients, ds, region, path)
    for line in adopt.describe(adoption):
        click.echo(line)
    if not yes:
        if not _stdin_is_terminal():
            raise UserError(f"{path}: not adopted: no terminal to ask on: pass --yes to adopt it; nothing was changed")
        if not click.confirm(f"Adopt run {adoption.record.MONITOR_APP_NAME} and let the monitor act on it as listed?"):
            click.echo("not adopted; nothing was changed", err=True)
            sys.exit(1)
    record, done = adoption.record, adopt.carry_out(clients, adoption)
    click.echo(f"adopted Distributed-Something run {record.MONITOR_APP_NAME} (fleet {record.MONITOR_FLEET_ID}, "
               f"queue {record.MONITOR_QUEUE_NAME}, cluster {record.MONITOR_ECS_CLUSTER}):")
    for line in done:
        click.echo(f"  {printable(line)}")
    return record


def _stdin_is_terminal() -> bool:
    """Whether someone is there to answer a question (a pipe, cron or CI is not: they pass --yes)."""
    return sys.stdin.isatty()


class _TickPrinter:
    """What each check of `monitor` and `teardown` did. A refused check is checked again: one can be a race with
    another's teardown (chaos seed 246); only a refusal that lasts REFUSED_CHECKS_TO_END checks ends the watch."""

    def __init__(self) -> None:
        self.refused_in_a_row = 0

    def __call__(self, result) -> None:
        observation = result.observation
        if observation.refused:
            self.refused_in_a_row += 1
            if self.refused_in_a_row >= REFUSED_CHECKS_TO_END:
                raise RefusedRun(f"the monitor refuses run {observation.app_name!r}, nothing was touched: "
                                 f"{observation.refused}")
            click.echo(f"warning: the monitor refused this check, checking again: {printable(observation.refused)}",
                       err=True)
            return
        self.refused_in_a_row = 0
        click.echo(f"{observation.visible} waiting, {observation.in_flight} running, {observation.failed} failed, "
                   f"{len(observation.instances)} machine(s), fleet target {observation.fleet_target}")
        for action in result.actions:
            click.echo("  " + printable(action.describe()))
        for action, code in result.skipped:
            click.echo(f"  not yet ({code}): {printable(action.what())}; retried next check")


def _run_of(settings: Settings, clients: aws.Clients):
    return monitor_loop.load_or_fail(clients, settings.AWS_BUCKET, record_key(settings.APP_NAME))


@cli.command()
@config_option
def plan(settings: Settings):
    """Print what the monitor would do now, one line per action with its reason.
    Changes nothing.

    \b
    Example:
      python cli.py plan --config config.json
    """
    clients = aws.Clients(settings)
    result = reconcile(_run_of(settings, clients), clients, dry_run=True)
    if result.observation.refused:
        click.echo(f"refused: {printable(result.observation.refused)}")
        return
    for action in result.actions:
        click.echo(printable(action.describe()))
    if not result.actions:
        click.echo("nothing to do: the run is as it should be")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status API's JSON instead of a table.")
@click.option("--live", is_flag=True, help="Look at the run's AWS resources now instead of reading the status the "
                                           "monitor wrote at its last tick.")
@config_option
def status(settings: Settings, as_json: bool, live: bool):
    """Print the run's status: jobs waiting, running, done and failed, machines, ETA.

    As the monitor saw it at its last tick (its "as of" time), or with --live as it is now. A run the monitor has
    not looked at yet (or watched by `monitor` or local mode, which write no status) is looked at live.

    \b
    Example:
      python cli.py status --config config.json
    """
    found = service.find_status(settings.APP_NAME, [settings.AWS_BUCKET], aws.Clients(settings), live=live)
    if found is None:
        raise UserError(f"no run named {settings.APP_NAME!r} in s3://{settings.AWS_BUCKET}/monitors/")
    click.echo(json.dumps(found, indent=2) if as_json else status_table(found))
    if found.get("state") != "finished":  # a finished run needs no monitor
        _warn_unwatched(settings)


def _warn_unwatched(settings: Settings) -> None:
    from operations.deployed import deployed_monitor

    problem = deployed_monitor.problem(settings)
    if problem:
        _warn([problem])


@cli.command()
@click.argument("path", default="/runs")
@config_option
def api(settings: Settings, path: str):
    """GET PATH from the deployed status API (after `chalice deploy`), signed with the config's credentials.

    \b
    Example:
      python cli.py api /runs --config config.json
      python cli.py api /runs/MyApp/failed --config config.json
    """
    click.echo(json.dumps(status_api.get(settings, path), indent=2))


@cli.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@config_option
def report(settings: Settings, out_path: str):
    """Write the run report: one HTML file (no network needed to open it) with
    a timeline of every job attempt per machine, machines and jobs over time,
    job durations, failures grouped by cause, cost and settings. For a running
    run (live) or a finished one (its summary); job logs from LOG_GROUP_NAME.

    \b
    Example:
      python cli.py report --config config.json --out report.html
    """
    from operations.report.sources import from_account, write_report

    written = write_report(from_account(settings, aws.Clients(settings)), Path(out_path))
    click.echo(f"run report: {written} ({written.stat().st_size:,} bytes)")


@cli.command()
@click.argument("fleetfile", type=click.Path())
@click.option("--dry-run", is_flag=True, help="Print what it would create and the most it can cost; change nothing.")
@config_option
def selftest(settings: Settings, fleetfile: str, dry_run: bool):
    """Prove the account before the first real run: a throwaway run of one
    Spot machine (its own name, a cost ceiling of a few cents), each step
    checked as AWS answers it, then everything it made removed.

    \b
    Example:
      python cli.py selftest fleet.json --config config.json --dry-run
      python cli.py selftest fleet.json --config config.json
    """
    fleet = load_fleet_file(fleetfile)
    if dry_run:
        click.echo("dry run: nothing created")
        for line in selftest_run.dry_run(settings, fleet):
            click.echo(printable(line))
        return
    click.echo(f"self-test in {settings.AWS_REGION}, at most ${most_cost(settings):.4f}; Ctrl-C stops it and still "
               "removes what it made")
    report = selftest_run.selftest(settings, fleet, say=_say_line)
    if report.interrupted:
        sys.exit(130)
    if not report.passed:
        click.echo("self-test failed: fix what the FAIL line(s) say, then run it again", err=True)
        sys.exit(1)
    click.echo(f"self-test passed: this account can run {settings.APP_NAME}")


def _say_line(line: selftest_run.Line) -> None:
    # AWS's error messages are shown, never obeyed by the terminal; the line's own break stays a break
    for part in line.text().split("\n"):
        click.echo(printable(part))


@cli.command()
@click.option("--period", type=click.FloatRange(min=0), default=5, show_default=True,
              help="Seconds between checks while log exports finish.")
@config_option
def teardown(settings: Settings, period: float):
    """Tear the run down now: fleet first, then service, task definitions,
    alarms, dashboard, logs export. The dead-letter queue and the outputs are
    kept, and so is the job queue if jobs are left in it.

    \b
    Example:
      python cli.py teardown --config config.json
    """
    clients = aws.Clients(settings)
    bucket, summary = settings.AWS_BUCKET, summary_key(settings.APP_NAME)
    run = load_run(clients.s3, bucket, record_key(settings.APP_NAME))
    if run is None:
        found = run_summary.find(clients.s3, bucket, settings.APP_NAME)
        if found is None:
            raise UserError(f"no run named {settings.APP_NAME!r} in s3://{bucket}/monitors/: it was never started")
        click.echo(f"run {settings.APP_NAME} is already torn down; summary at {found.url}")
        return
    monitor_loop.request_teardown(run, "teardown requested from the command line", clients)
    monitor_loop.watch(lambda: load_run(clients.s3, bucket, record_key(settings.APP_NAME)), period, _TickPrinter(),
               clients=clients)
    click.echo(f"torn down; summary at s3://{bucket}/{summary}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per failed job) instead of a table.")
@click.option("--local-run", "local_out", type=click.Path(file_okay=False),
              help="Read the failed jobs a local run left in this folder (its --out) instead of AWS.")
@config_option
def failed(settings: Settings, as_json: bool, local_out: str | None):
    """List the run's failed jobs: id, attempts, why the last attempt failed,
    and the last lines of its output.

    \b
    Example:
      python cli.py failed --config config.json
      python cli.py failed --local-run local-run/MyApp --config config.json
    """
    if local_out:
        from localrun import triage as local_triage

        records = local_triage.failure_records(Path(local_out))
        footer = local_triage.failed_footer(Path(local_out))
    else:
        with _or_the_local_run(settings, "failed"):
            failed_jobs = triage.failed_jobs(aws.Clients(settings), settings)
        records = failed_jobs.records
        _say_ignored(settings, failed_jobs.ignored_dead_letters)
        if not failed_jobs.complete:
            click.echo(f"warning: the dead-letter queue {settings.SQS_DEAD_LETTER_QUEUE} counted messages this look "
                       f"could not read within {deadletters.OTHERS_WAIT_SECONDS} s (another reader holding them: a "
                       "redrive, or one that stopped half-way; or counts not yet settled): the list may miss jobs; "
                       "run `failed` again in a minute", err=True)
        footer = "the whole log of one: python cli.py logs JOB_ID; send them again: python cli.py redrive"
    if as_json:
        click.echo(json.dumps([record.public() for record in records], indent=2))
        return
    if not records:
        click.echo(f"no failed job in run {settings.APP_NAME}")
        return
    for record in records:
        # every text of a failure record is the job's (it writes the record): shown, never obeyed
        click.echo(f"{printable(record.job_id)}  {record.attempts} attempt(s), failed {local_time(record.time)}: "
                   f"{printable(record.reason)}")
        for line in record.last_lines[-triage.LOG_LINES_SHOWN:]:
            click.echo(f"    | {printable(line)}")
    click.echo(f"{len(records)} failed job(s); {footer}")


@contextlib.contextmanager
def _or_the_local_run(settings: Settings, command: str):
    """With no AWS credentials, a triage command names its local form when a local run of the app is here:
    the user who ran `local` may well have meant that run."""
    from localrun import triage as local_triage

    try:
        yield
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as error:
        hint = local_triage.hint(settings.APP_NAME, command)
        if hint is None:
            raise
        raise UserError(f"no usable AWS credentials ({error}); {hint}") from None


def _say_ignored(settings: Settings, count: int) -> None:
    """On stderr, so `failed --json` stays one JSON document."""
    if count:
        click.echo(deadletters.ignored_note(count, settings.APP_NAME, settings.SQS_QUEUE_NAME), err=True)


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines while the job runs (Ctrl-C stops).")
@click.option("--local-run", "local_out", type=click.Path(file_okay=False),
              help="Read the log a local run wrote to this folder (its --out) instead of CloudWatch.")
@config_option
def logs(settings: Settings, job_id: str, follow: bool, local_out: str | None):
    """Print one job's log: every attempt's command line, output and outcome.

    \b
    Example:
      python cli.py logs P00042 --config config.json
    """
    if local_out:
        from localrun import triage as local_triage

        path = local_triage.log_path(Path(local_out), job_id)
        # lines end at "\n" only: a CR or a form feed inside a line is the job's, shown escaped
        with path.open(encoding="utf-8", errors="replace", newline="\n") as lines:
            for line in lines:
                click.echo(printable(line.removesuffix("\n")))
        return
    try:
        with _or_the_local_run(settings, "logs"):
            for line in triage.log_lines(aws.Clients(settings), settings, job_id, follow=follow):
                click.echo(printable(line))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


@cli.command()
@click.argument("job_ids", nargs=-1)
@config_option
def redrive(settings: Settings, job_ids: tuple[str, ...]):
    """Send the run's failed jobs (all, or the JOB_IDS given) back to its job
    queue, each once and with a fresh attempt count; their copies leave the
    dead-letter queue, other runs' messages there stay. Fix the cause first.

    \b
    Example:
      python cli.py redrive --config config.json
    """
    with _or_the_local_run(settings, "redrive"):
        result = triage.redrive(aws.Clients(settings), settings, job_ids)
    _say_ignored(settings, result.ignored_dead_letters)
    for job_id in result.unknown:
        click.echo(f"warning: {printable(job_id)} is not a failed job of run {settings.APP_NAME}; not sent", err=True)
    click.echo(f"sent {len(result.sent)} failed job(s) back to {settings.SQS_QUEUE_NAME}"
               f" ({result.removed_from_dead_letter} taken off {settings.SQS_DEAD_LETTER_QUEUE})")
    if result.sent and not result.started:
        click.echo(f"note: no run of {settings.APP_NAME} is started (it was torn down), so nothing takes them off "
                   f"{settings.SQS_QUEUE_NAME} yet: start one with 'python cli.py start-cluster FLEETFILE'", err=True)
    if result.unknown and not result.sent:
        sys.exit(2)


@cli.command()
@click.argument("jobfile", type=click.Path(dir_okay=False))
@click.option("--fleet", "fleetfile", type=click.Path(dir_okay=False), help="Fleet file (default: the example).")
@click.option("--inputs", type=click.Path(file_okay=False), help="Folder uploaded to the bucket before the run.")
@click.option("--out", type=click.Path(file_okay=False), help="Where outputs and logs go (./local-run/APP_NAME/).")
@click.option("--workers", type=click.IntRange(min=1), help="Most worker processes at once (default: CPU count).")
@click.option("--interrupt-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Chance per machine per check of a fake spot interruption notice.")
@click.option("--seed", type=int, help="Seed for --interrupt-rate's notices, so a run's interruptions repeat.")
@click.option("--endpoint", metavar="URL",
              help="Use an empty AWS emulator already running on this machine (a moto server) instead of "
                   "starting one; only loopback addresses are accepted.")
@click.option("--report", "with_report", is_flag=True, help="Also write the run report, OUT/report.html.")
@click.option("--only-failed", is_flag=True,
              help="Run only the jobs the runs in --out have not done (failed, not run, new); the done ones keep "
                   "their outputs and logs there. Local mode's redrive.")
@config_option
def local(settings: Settings, jobfile: str, fleetfile: str | None, inputs: str | None, out: str | None,
          workers: int | None, interrupt_rate: float, seed: int | None, endpoint: str | None, with_report: bool,
          only_failed: bool):
    """Run the whole thing on this machine: an embedded AWS emulation (moto,
    nothing reaches real AWS), workers as local processes running COMMAND here,
    the monitor's reconcile every second; outputs and every job's log in --out.
    Exit 0: every job done; 1: some failed (dead-letter queue) or did not run;
    2: bad input (nothing started); 130: stopped with Ctrl-C (torn down, what
    finished is written).

    \b
    Example:
      python cli.py local examples/jobs.json --config examples/config.json --inputs examples/inputs
      python cli.py local examples/jobs.json --config examples/config.json --inputs examples/inputs --only-failed
    """
    from localrun.driver import run_local
    from localrun.prepare import prepare

    local_run = prepare(settings, jobfile, fleetfile, inputs, out, workers, interrupt_rate, endpoint, seed,
                        only_failed)
    if not local_run.jobs:
        click.echo(f"nothing to run: the runs in {local_run.out} did all {len(local_run.kept)} jobs of {jobfile}")
        return
    sys.exit(run_local(local_run, report_path=local_run.out / "report.html" if with_report else None))


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Also make, for this config, what a user makes before a run: its bucket, the roles, a private "
                   "subnet and a security group, and a fleet file naming them (fleet.emulator.json).")
@click.option("--fleet", "fleetfile", type=click.Path(dir_okay=False),
              help="With --config: the fleet file to adapt (default: the example).")
def emulator(port: int, config_path: str | None, fleetfile: str | None):
    """Run this project's AWS emulator (moto, with the project's patches) on
    this machine until Ctrl-C, to rehearse every command without an account.
    Point the CLI at it with AWS_ENDPOINT_URL and dummy keys (see the README).

    \b
    Example:
      python cli.py emulator --port 5000 --config examples/config.json
    """
    from localrun.emulated import serve_until_stopped

    settings = _load_settings(config_path) if config_path else None
    fleet = load_fleet_file(fleetfile) if fleetfile else None
    sys.exit(serve_until_stopped(port, settings, fleet, click.echo))


@cli.command("monitor-config")
@click.argument("configs", nargs=-1, metavar="CONFIG...", type=click.Path(dir_okay=False))
@click.option("--config", "config_options", multiple=True, type=click.Path(dir_okay=False),
              help="A run's configuration file, as every command takes it (the same as naming it as an argument).")
@click.option("--stage", default="dev", show_default=True, help="The Chalice stage to write.")
@click.option("--chalice-dir", default=".chalice", show_default=True, type=click.Path(file_okay=False),
              help="The Chalice project's .chalice folder.")
def monitor_config(configs: tuple[str, ...], config_options: tuple[str, ...], stage: str, chalice_dir: str):
    """Make the monitor watch the runs of CONFIG...: write the stage's MONITOR_BUCKETS
    and its two IAM policies (the monitor's, the status API's) in .chalice/.
    Then run `chalice deploy` there.

    \b
    Example:
      python cli.py monitor-config config.json && chalice deploy
    """
    from operations.deployed import monitor_policy

    configs += config_options
    if not configs:
        raise UserError("monitor-config: name the config of each run the monitor watches (CONFIG [CONFIG ...])")
    watched = monitor_policy.Watched.of(_load_settings(path) for path in configs)
    deployment = monitor_policy.deployment(chalice_dir, stage, watched)
    monitor_policy.write(deployment.files)
    for path, said in deployment.said.items():
        click.echo(f"{path}: {said}")


@cli.command("convert-config")
@click.option("--config", "config_py", default="config.py", show_default=True, type=click.Path(dir_okay=False),
              help="DS's config.py.")
def convert_config(config_py: str):
    """Print the config.json equivalent of DS's config.py (read, never run);
    each place where this project reads a value otherwise than DS goes to
    stderr with the reason. Every other command takes --config config.py too.

    \b
    Example:
      python cli.py convert-config --config config.py > config.json
    """
    from chalicelib.model.dsconfig import read_ds_config

    converted = read_ds_config(config_py)
    Settings.from_mapping(converted.settings, config_py)
    click.echo(json.dumps(converted.settings, indent=2))
    for note in converted.notes:
        click.echo(f"note: {note}", err=True)
    _warn(converted.warnings)


def _alias(command: click.Command, name: str) -> click.Command:
    """DS's spellings (submitJob, startCluster), hidden from the command list."""
    alias = copy.copy(command)
    alias.name = name
    alias.hidden = True
    return alias


cli.add_command(_alias(submit, "submitJob"))
cli.add_command(_alias(start_cluster, "startCluster"))


if __name__ == "__main__":
    sys.exit(cli())
