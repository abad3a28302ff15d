"""`cli.py emulator`: this project's emulator as a long-running server, optionally with an account made ready
for one config (its bucket, a network and a fleet file), so every AWS command can be rehearsed against it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from chalicelib.model.settings import Settings
from localrun.account import localize_fleet, prepare_account
from localrun.ecs_agent import agent_joins
from localrun.embedded import DUMMY_KEY, embedded_aws, emulator
from localrun.prepare import DEFAULT_FLEET
from operations.start.fleet import FleetFile, load_fleet_file

FLEET_FILE = "fleet.emulator.json"
EXIT_STOPPED = 0  # Ctrl-C is how an emulator is meant to end


def serve_until_stopped(port: int, settings: Settings | None, fleet: FleetFile | None,
                        say: Callable[[str], None], stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    try:
        # machines join ECS as on AWS: `selftest` checks it, and the monitor's teardown meets the cluster AWS keeps
        with emulator(port) as url, agent_joins():
            if settings is not None:
                path = prepare(url, settings, fleet or load_fleet_file(DEFAULT_FLEET))
                made = ", ".join(settings.buckets)
                say(f"made bucket {made}, the roles (setup-account), a private subnet and a security "
                    f"group; the fleet file for them: {path}")
            say(f"emulator at {url}; in another shell:\n"
                f"  export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID={DUMMY_KEY} AWS_SECRET_ACCESS_KEY={DUMMY_KEY}"
                # chalice deploy (and aws, boto3) take the region from here, not from config.json
                f" AWS_DEFAULT_REGION={settings.AWS_REGION if settings is not None else 'us-east-1'}\n"
                "then any command (setup-account, selftest, setup, submit, start-cluster, status, plan, failed, "
                "teardown) or "
                f"'python cli.py local JOBS --endpoint {url}'. Ctrl-C stops it; everything it holds is then gone.")
            stop.wait()
    except KeyboardInterrupt:
        pass
    say("emulator stopped")
    return EXIT_STOPPED


def prepare(url: str, settings: Settings, fleet: FleetFile) -> Path:
    """What a user makes before a run: the bucket and a network by hand, the roles with setup-account (made here
    so the fleet file can name them); the run's own resources are left to `setup`."""
    with embedded_aws(settings.AWS_REGION, endpoint=url):
        account = prepare_account(settings, run_setup=False)
        path = Path(FLEET_FILE)
        localize_fleet(fleet, account, path)
        return path
