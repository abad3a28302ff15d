"""The README's "Quick start" and "Rehearse on one machine" sections, run literally, as a new user would: the shell
commands are taken from the README's fenced blocks (a change there changes what runs) and run in order, in bash,
from a fresh `git clone` of this repository's HEAD, with the project's environment on PATH as
`. .venv/bin/activate` puts it (this interpreter's venv).

Only committed content is seen: README changes must be committed before this test can see them.

Where the test departs from the letter, and why:
- `make demo` would install `.venv` in the clone (minutes of pip): the command the README says it runs is run
  instead, and checked against the Makefile's recipe.
- `make test` and `make container-test` are not run: the first is the suite this test belongs to, the second needs
  root and Docker.
- The emulator is started on a free port (`--port 0`) instead of 5000, which another emulator may hold; the export
  line's URL is rewritten to the one the emulator prints. Nothing else of a command is changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
COMMAND_STARTS = ("python cli.py ", "make ", "export ", "chalice ")
CLONE_NOTE = "(this test runs the README of a fresh clone of HEAD: commit README.md first)"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# A `# comment` after a command: whitespace before the hash, as the README writes them
TRAILING_COMMENT = re.compile(r"\s+#.*$")
DEMO_SENTENCE = re.compile(r"`make demo` runs `([^`]+)`")
EMULATOR_URL = re.compile(r"^emulator at (http://127\.0\.0\.1:\d+);", re.M)
NUMBER = re.compile(r"\d+(\.\d+)?")
# What each command must print: the README's rehearsal, step by step (a command absent here needs exit code 0)
REHEARSAL_SAYS = {
    "python cli.py setup-account ": "DemoPlates-task-role",
    "python cli.py selftest ": "self-test passed: this account can run DemoPlates",
    "python cli.py setup ": "created queue DemoPlatesQueue",
    "python cli.py submit ": "submitted 48 jobs to DemoPlatesQueue",
    "python cli.py start-cluster ": "wrote s3://demo-bucket/monitors/",
    "python cli.py status ": "48 submitted",
    "python cli.py monitor-config ": "demo-bucket",
    "chalice deploy": "Rest API URL",
    "python cli.py teardown ": "torn down",
}
# The steps issue 27 asks the rehearsal to show, in this order
REHEARSAL_MUST_SAY = ["python cli.py setup ", "python cli.py start-cluster ", "python cli.py monitor-config ",
                      "chalice deploy", "python cli.py api /runs", "python cli.py teardown "]

pytestmark = pytest.mark.slow


def section(readme: str, title: str) -> str:
    """The text under a heading, up to the next heading of any level (a `# comment` line in a block is none)."""
    lines, inside, fenced = [], False, False
    for line in readme.splitlines():
        heading = not fenced and re.match(r"#+ (.*)$", line)
        fenced ^= line.startswith("```")
        if heading:
            if inside:
                break
            inside = heading.group(1) == title
        elif inside:
            lines.append(line)
    assert inside, f"README.md has no section '{title}' {CLONE_NOTE}"
    return "\n".join(lines) + "\n"


def command_blocks(text: str) -> list[list[str]]:
    """The fenced blocks made only of shell commands (not the blocks showing output), comments stripped."""
    blocks = []
    for body in FENCE.findall(text):
        lines = [TRAILING_COMMENT.sub("", line).strip() for line in body.splitlines() if line.strip()]
        if lines and all(line.startswith(COMMAND_STARTS) for line in lines):
            blocks.append(lines)
    return blocks


def output_blocks(text: str) -> list[str]:
    return [body for body in FENCE.findall(text) if not command_blocks(f"```\n{body}```")]


def venv_environment(home: Path) -> dict[str, str]:
    """A shell with the project's environment activated and no AWS settings but the README's: the test session's
    dummy credentials removed, profile files still pointed nowhere so nothing can reach a real account."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))}
    environment.update(AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"),
                       VIRTUAL_ENV=sys.prefix,
                       PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return environment


def bash(line: str, cwd: Path, environment: dict[str, str], exports: list[str] = (),
         timeout: float = 150) -> subprocess.CompletedProcess:
    script = "\n".join([*exports, line])
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def said(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode} {CLONE_NOTE}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture
def clone(tmp_path) -> Path:
    """A fresh clone of HEAD: what a new user gets, committed content only."""
    path = tmp_path / "ds-runner"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(path)], check=True, capture_output=True, timeout=120)
    return path


def summary_shape(text: str) -> list[str]:
    """The run's last progress line (after any progress bar) and its summary, numbers masked."""
    lines = [line.strip() for line in text.splitlines()]
    progress = [re.sub(r"^\[[#. ]*\]\s*", "", line) for line in lines if " done, " in line and " left (" in line]
    start = next(index for index, line in enumerate(lines) if line.endswith(": finished"))
    return [NUMBER.sub("N", line) for line in [progress[-1], *lines[start:]] if line]


def test_the_quick_start_runs_as_written(clone, tmp_path):
    readme = (clone / "README.md").read_text()
    quick_start = section(readme, "Quick start")
    [commands] = command_blocks(quick_start)
    assert "make demo" in commands, f"the quick start's block no longer says 'make demo' {CLONE_NOTE}"
    demo = DEMO_SENTENCE.search(quick_start)
    assert demo, f"the quick start no longer says what `make demo` runs {CLONE_NOTE}"
    demo_command = " ".join(demo.group(1).split())
    recipe = re.search(r"^demo:.*\n\t\$\(BIN\)/(.+)$", (clone / "Makefile").read_text(), re.M)
    assert recipe and recipe.group(1) == demo_command, "the README and the Makefile's demo target disagree"
    environment = venv_environment(tmp_path)

    result = bash(demo_command, clone, environment)

    assert result.returncode == 0, said(result)
    [shown] = [block for block in output_blocks(quick_start) if ": finished" in block]
    assert summary_shape(result.stdout) == summary_shape(shown), said(result)
    assert re.search(r"48/48 done, 0 failed, 0 left \(0 running\)", result.stdout), said(result)
    assert re.search(r"^  failed +0$", result.stdout, re.M) and re.search(r"^  done +48$", result.stdout, re.M)

    # Outside the venv, as a new user who skipped `make install`: the machine's Python without its packages
    venv_bin = str(Path(sys.executable).parent)
    outside = {**environment, "PATH": os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv_bin)}
    outside.pop("VIRTUAL_ENV")
    python = "python3.11 -S" if shutil.which("python3.11", path=outside["PATH"]) else f"{sys.executable} -S"
    bare = bash(re.sub(r"^python ", f"{python} ", demo_command), clone, outside)
    assert (bare.returncode, bare.stdout, len(bare.stderr.splitlines())) == (2, "", 1), said(bare)
    assert "'make install' once, then '. .venv/bin/activate'" in bare.stderr, said(bare)


def test_the_rehearsal_runs_as_written_and_the_status_api_answers_with_the_run(clone, tmp_path):
    rehearsal = section((clone / "README.md").read_text(), "Rehearse on one machine")
    [[start_emulator], second_shell] = command_blocks(rehearsal)
    assert re.search(r"^python cli\.py emulator .*--port 5000( |$)", start_emulator), start_emulator
    positions = [next((index for index, line in enumerate(second_shell) if line.startswith(step)), None)
                 for step in REHEARSAL_MUST_SAY]
    assert None not in positions and positions == sorted(positions), (
        f"the rehearsal must say, in this order: {REHEARSAL_MUST_SAY}; it says {second_shell} {CLONE_NOTE}")
    environment = venv_environment(tmp_path)
    log = tmp_path / "emulator.out"

    with log.open("w") as out:
        # exec: the PID is the emulator's own, so Ctrl-C (SIGINT) reaches it as in the user's first shell
        emulator = subprocess.Popen(["bash", "-c", "exec " + start_emulator.replace("--port 5000", "--port 0")],
                                    cwd=clone, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = wait_for_url(log, emulator)
        exports = []
        for line in second_shell:
            if line.startswith("export "):
                assert "http://127.0.0.1:5000" in line, line
                line = line.replace("http://127.0.0.1:5000", url)
                assert f"  {line}\n" in log.read_text(), "the README's export line is not the one the emulator prints"
                exports.append(line)
            result = bash(line, clone, environment, [] if line in exports else exports)
            assert result.returncode == 0, f"{line}\n{said(result)}"
            expected = next((text for start, text in REHEARSAL_SAYS.items() if line.startswith(start)), "")
            assert expected in result.stdout, f"{line}: expected {expected!r}\n{said(result)}"
            if line.startswith("python cli.py api /runs"):
                runs = json.loads(result.stdout)["runs"]
                assert [run["app_name"] for run in runs] == ["DemoPlates"], result.stdout
                # listed from its record: the emulator runs no schedule, so no tick has written its status document
                assert runs[0]["state"] == "starting", result.stdout
    finally:
        emulator.send_signal(signal.SIGINT)
        try:
            emulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
    assert "emulator stopped" in log.read_text()
    # Nothing the rehearsal wrote is a change git would commit: monitor-config wrote what is committed for the
    # example, and chalice deploy's record of the emulator's ARNs (.chalice/deployed/) is ignored
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert changed.stdout == "", changed.stdout


def wait_for_url(log: Path, emulator: subprocess.Popen, timeout: float = 90) -> str:
    def announced() -> re.Match[str] | None:
        found = EMULATOR_URL.search(log.read_text())
        assert found or emulator.poll() is None, f"the emulator exited with {emulator.returncode}:\n{log.read_text()}"
        return found

    return wait_for(announced, "the emulator to print its URL", timeout, interval=0.2, details=log.read_text).group(1)
