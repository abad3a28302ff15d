"""The worker image and a stand-in DS image under real Docker, against this project's moto server on 127.0.0.1.

`make container-test` (tests/container/run.sh) builds both images and sets DSR_TEST_IMAGE (the worker) and
DSR_DS_STANDIN_IMAGE (tests/container/ds_standin); `make test` never collects this folder (--ignore), so the
ordinary suite needs no Docker. Run by hand without the images, these tests skip, except under CI=true, where a
missing image is a failure: CI must not pass by skipping them.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.worker_world import worker_env

IMAGE = os.environ.get("DSR_TEST_IMAGE", "")
DS_STANDIN_IMAGE = os.environ.get("DSR_DS_STANDIN_IMAGE", "")
DOCKER = os.environ.get("DSR_DOCKER", "docker")  # run.sh passes the 20.10 client that matches its dockerd
LABEL = "dsr-container-test"  # run.sh removes every container with this label when it stops
# What the container must not inherit from worker_env, which was written for a process on this machine:
# PATH and PYTHONPATH are the image's own (python on PATH, the worker in /opt/dsr).
HOST_ONLY = ("PATH", "PYTHONPATH")


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A conftest's hook sees every collected item, not only this folder's: touch only the container tests.
    mine = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    if (IMAGE and DS_STANDIN_IMAGE) or not mine:
        return
    reason = "DSR_TEST_IMAGE or DSR_DS_STANDIN_IMAGE is not set: run 'make container-test', which builds the images"
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"tests/container under CI=true: {reason}")
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """The docker client with an argument list (no shell: nothing here is parsed twice)."""
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def timed(what: str, started: float) -> float:
    elapsed = time.monotonic() - started
    print(f"{what}: {elapsed:.1f} s")  # shown with -s or -rP; run.sh prints them
    return elapsed


class Container:
    """One `docker run -d` of an image with exactly `env`; removed (with -f) when the test ends."""

    def __init__(self, image: str, env: dict[str, str], *docker_args: str):
        self.name = f"dsr-test-{uuid.uuid4().hex[:12]}"
        # --network host: the moto server listens on this machine's 127.0.0.1,
        # and dockerd runs without a bridge (run.sh), so nothing the container sends leaves loopback.
        command = ["run", "-d", "--name", self.name, "--label", LABEL, "--network", "host", *docker_args]
        for name, value in env.items():
            command += ["-e", f"{name}={value}"]
        docker(*command, image)

    def state(self, field: str) -> str:
        return docker("inspect", "-f", "{{.State." + field + "}}", self.name).stdout.strip()  # a Go template

    @property
    def running(self) -> bool:
        return self.state("Running") == "true"

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return f"--- docker logs {self.name}\n{result.stdout}{result.stderr}"

    def processes(self) -> list[tuple[int, str]]:
        """(uid, command line) of every process in the container, as the host's ps sees them (`docker top`)."""
        return [(uid, args) for _, uid, args in self._top()]

    def host_pids(self) -> list[tuple[int, str]]:
        """(pid on this host, command line) of every process in the container."""
        return [(pid, args) for pid, _, args in self._top()]

    def _top(self) -> list[tuple[int, int, str]]:
        # docker top needs the pid column to pick the container's processes out of the host's
        lines = docker("top", self.name, "-eo", "pid,uid,args").stdout.splitlines()[1:]
        return [(int(pid), int(uid), args)
                for pid, uid, args in (line.split(None, 2) for line in lines if line.strip())]

    def stop(self, seconds: int = 30) -> None:
        # ECS gives a task 30 s between SIGTERM and SIGKILL; docker's default of 10 s would hide a slow release.
        docker("stop", "-t", str(seconds), self.name, timeout=seconds + 30)

    def wait(self, timeout: float = 60) -> int:
        return int(docker("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def containers(moto_server):
    """Starts containers against the moto server; removes them after the test. `containers(settings, ...)`: the
    worker image with the environment its task definition would give it; `containers.run(image, env, ...)`: any
    image with exactly `env`."""
    started: list[Container] = []

    def run(image: str, env: dict[str, str], *docker_args: str) -> Container:
        container = Container(image, env, *docker_args)
        started.append(container)
        return container

    def start(settings, *docker_args: str, **knobs) -> Container:
        env = worker_env(moto_server, settings, **knobs)
        return run(IMAGE, {name: value for name, value in env.items() if name not in HOST_ONLY}, *docker_args)

    start.run = run
    start.all = started
    yield start
    for container in started:
        container.remove()
