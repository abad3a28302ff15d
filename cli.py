#!/usr/bin/env python3
"""Command line: parse input, call one chalicelib function, print the result.

User mistakes (chalicelib.errors.UserError) print one line `error: ...` on
stderr and exit 2; nothing else of them is shown.
"""

from __future__ import annotations

import copy
import functools
import sys

import click

from chalicelib.errors import NotYetImplemented, UserError
from chalicelib.fleet import load_fleet_file
from chalicelib.jobs import load_job_file
from chalicelib.settings import Settings


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


def config_option(command):
    @click.option("--config", "config_path", default="config.json", show_default=True,
                  type=click.Path(dir_okay=False), help="The run's configuration file.")
    @functools.wraps(command)
    def wrapper(*args, config_path: str, **kwargs):
        return command(*args, settings=Settings.load(config_path), **kwargs)

    return wrapper


def _later(command: str, issue: int) -> NotYetImplemented:
    return NotYetImplemented(f"'{command}' is not implemented yet (it arrives with issue #{issue}); nothing was done")


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
    raise _later("setup", 4)


@cli.command("setup-account")
@click.option("--destroy", is_flag=True, help="Remove the roles this command created.")
@config_option
def setup_account(settings: Settings, destroy: bool):
    """Create the IAM roles a run needs (once per AWS account) and print their ARNs.

    \b
    Example:
      python cli.py setup-account
    """
    raise _later("setup-account", 4)


@cli.command()
@click.argument("jobfile", type=click.Path(dir_okay=False))
@click.option("--skip-done", is_flag=True, help="Send only jobs whose outputs are not already in S3.")
@config_option
def submit(settings: Settings, jobfile: str, skip_done: bool):
    """Validate every job in JOBFILE, then send them to the job queue.
    One bad job submits nothing.

    \b
    Example:
      python cli.py submit jobs.json --config config.json
    """
    load_job_file(jobfile, settings)
    raise _later("submit", 4)


@cli.command("start-cluster")
@click.argument("fleetfile", type=click.Path(dir_okay=False))
@click.option("--cheapest", is_flag=True, help="Shrink the fleet to one machine after 15 minutes (DS's mode).")
@config_option
def start_cluster(settings: Settings, fleetfile: str, cheapest: bool):
    """Check the account, then request the spot fleet, alarms, dashboard and
    start the workers.

    \b
    Example:
      python cli.py start-cluster fleet.json --config config.json
    """
    load_fleet_file(fleetfile)
    raise _later("start-cluster", 4)


@cli.command()
@click.argument("monitorfile", required=False, type=click.Path(dir_okay=False))
@click.option("--cheapest", is_flag=True, help="Shrink the fleet to one machine after 15 minutes.")
@config_option
def monitor(settings: Settings, monitorfile: str | None, cheapest: bool):
    """Watch a run from this terminal until it is torn down (what the Lambda does).

    \b
    Example:
      python cli.py monitor files/MyAppSpotFleetRequestId.json
    """
    raise _later("monitor", 6)


@cli.command()
@config_option
def plan(settings: Settings):
    """Print what the monitor would do now, one line per action with its reason.
    Changes nothing.

    \b
    Example:
      python cli.py plan --config config.json
    """
    raise _later("plan", 6)


@cli.command()
@config_option
def status(settings: Settings):
    """Print the run's status: jobs waiting, running, done and failed, machines, ETA.

    \b
    Example:
      python cli.py status --config config.json
    """
    raise _later("status", 6)


@cli.command()
@config_option
def teardown(settings: Settings):
    """Tear the run down now: fleet, service, queue, alarms, dashboard.
    The dead-letter queue and the outputs are kept.

    \b
    Example:
      python cli.py teardown --config config.json
    """
    raise _later("teardown", 6)


@cli.command()
@click.argument("jobfile", type=click.Path(dir_okay=False))
@click.option("--fleet", "fleetfile", type=click.Path(dir_okay=False), help="Fleet file (default: the example).")
@click.option("--inputs", type=click.Path(file_okay=False), help="Folder uploaded to the bucket before the run.")
@click.option("--out", type=click.Path(file_okay=False), help="Where outputs and logs go (./local-run/APP_NAME/).")
@click.option("--workers", type=click.IntRange(min=1), help="Most worker processes at once (default: CPU count).")
@click.option("--interrupt-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Chance per machine per check of a fake spot interruption notice.")
@config_option
def local(settings: Settings, jobfile: str, fleetfile: str | None, inputs: str | None, out: str | None,
          workers: int | None, interrupt_rate: float):
    """Run the whole thing on this machine: an embedded AWS emulation, workers
    as local processes, outputs on disk.

    \b
    Example:
      python cli.py local examples/jobs.json --config examples/config.json
    """
    load_job_file(jobfile, settings)
    raise _later("local", 7)


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
