"""A job's peak memory and CPU time, as real workers measure them (wait4 on the real command), in its log's
outcome line, its failure record, `cli.py failed` and the run report; an OOM kill said in words.

The kernel's OOM killer needs a container with a memory limit: tests/container/test_worker_image.py has the real
one. Here the worker reads a cgroup folder of the test's own, whose counter the job raises before it SIGKILLs
itself, as the kernel would: the worker's part (counter before and after, the SIGKILL, the words) is the same.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from chalicelib import aws
from chalicelib.runfiles import failures
from cli import cli
from operations.report.sources import report_input, write_report
from tests.conftest import make_settings
from tests.worker_world import FAST, WorkerProcess, aws_clients, log_lines, make_world, send_jobs, worker_env
from worker.attempt_usage import MemoryCgroup
from worker.worker import Worker

MIB = 2**20
HOG_MIB = 160
# The OOM test's worker runs in this process, whose size (pytest, moto) a job must pass for an exact peak.
BIG_MIB = 600
# `python -c JOB PLATE CGROUP MIB`: every job but "small" holds MIB of filled bytes; P00000 then plays the OOM
# killer (the counter rises, then SIGKILL), P00001 is SIGKILLed with the counter unchanged (an operator's kill -9,
# say). No braces: COMMAND is a template.
JOB = f"""
import os, pathlib, signal, sys
plate, cgroup, mib = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
held = bytearray((mib if plate != "small" else 0) * {MIB})
for offset in range(0, len(held), 4096):
    held[offset] = 1  # every page really in memory
print("holding", mib, "MiB", flush=True)
if plate == "P00000":
    events = cgroup / "memory.events"
    kills = int(events.read_text().split("oom_kill ")[1].split()[0])
    events.write_text("oom 0\\noom_kill " + str(kills + 1) + "\\n")
if plate in ("P00000", "P00001"):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def big_mib() -> int:
    """BIG_MIB, or more when this (pytest) process is bigger: the in-process worker's command starts as a fork of it,
    and a peak at or under the forking process's size is only a bound ("at most"), never the job's own figure."""
    rss_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
    return max(BIG_MIB, rss_kib // 1024 + 128)


def run_jobs(account, cgroup=None, big: int = BIG_MIB) -> None:
    """The run's 12 jobs to their end by a real worker (each attempt a real `python -c` process)."""
    command = (sys.executable, "-c", JOB, "{plate}", str(cgroup or "none"), str(big))
    worker = Worker(dataclasses.replace(account.settings, COMMAND=command), options=FAST, **aws_clients())
    if cgroup is not None:
        worker.memory_cgroup = MemoryCgroup(cgroup, 2)
    worker.run_forever(exit_when_empty=True)
    worker.close()


def fake_cgroup(tmp_path, limit_mib: int):
    folder = tmp_path / "cgroup"
    folder.mkdir()
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n")
    (folder / "memory.max").write_text(f"{limit_mib * MIB}\n")
    (folder / "memory.peak").write_text(f"{limit_mib * MIB}\n")
    return folder


def outcome(logs, settings, job_id: str) -> str:
    [line] = [line for line in log_lines(logs, settings.LOG_GROUP_NAME, job_id)
              if line.startswith(("succeeded: ", "failed: "))][-1:]
    return line


def peak_of(line: str) -> float:
    return float(re.search(r"; peak memory (\d+) MiB, cpu \d+\.\d\d s", line).group(1))



def test_a_real_workers_jobs_log_their_peak_memory_and_the_report_suggests_memory(moto_server, tmp_path):
    # `python -m worker`, as a container runs it: what a small job's bound is (the worker's own size) is real
    settings = make_settings(COMMAND=[sys.executable, "-c", JOB, "{plate}", "none", str(HOG_MIB)])
    sqs, s3, logs = (aws.client(name) for name in ("sqs", "s3", "logs"))
    queue_url, _ = make_world(sqs, s3, settings)
    send_jobs(sqs, queue_url, settings, [{"plate": "small"}, *({"plate": f"P{n:05d}"} for n in range(2, 5))])
    worker = WorkerProcess(tmp_path, worker_env(moto_server, settings), "--exit-when-empty")
    try:
        assert worker.wait(120) == 0, worker.output
    finally:
        worker.close()

    lines = {job: outcome(logs, settings, job) for job in ("small", "P00002", "P00003", "P00004")}
    assert all(line.startswith("succeeded: exit code 0; ") for line in lines.values()), lines
    hogs = {job: peak_of(line) for job, line in lines.items() if job != "small"}
    # the job's own bytes, plus the interpreter: not the worker's, nor the machine's
    assert all(HOG_MIB <= peak < HOG_MIB + 60 for peak in hogs.values()), lines
    # a job within the worker's own size gets a bound, the worker's size (Python, boto3): never its own bytes
    bound = float(re.search(r"; peak memory at most (\d+) MiB, cpu \d+\.\d\d s", lines["small"]).group(1))
    assert 20 < bound < HOG_MIB, lines["small"]

    out = write_report(report_input(settings, aws.Clients(settings), "local run", None), tmp_path / "report.html")

    html = out.read_text()
    drawn = {job: float(mib) for job, mib in re.findall(r"<rect class='peak' data-job='([^']*)' data-mib='(\d+)'",
                                                        html)}
    assert drawn == {**hogs, "small": bound}
    expected = math.ceil(max(hogs.values()) * 1.25 / 256) * 256  # DOCKER_CORES 1
    assert re.search(rf"<p class='suggestion' data-memory='{expected}'>Suggested MEMORY: <b>{expected} MiB</b>",
                     html)
    # m5.large: 8192 MiB less the OS and agent's 492, 2 vCPUs of 1024 units, CPU_SHARES 1024: the CPU bounds it
    assert re.search(r"<tr class='fit' data-type='m5.large' data-tasks='2'><td>m5.large</td><td class='n'>8192 MiB"
                     r"</td><td class='n'>7700 MiB</td><td class='n'>2</td><td class='n'>2</td><td>CPU</td>", html)
    assert f"against MEMORY {settings.MEMORY} MiB per container" in html


def test_an_oom_kill_says_out_of_memory_with_peak_and_limit_and_a_plain_kill_9_keeps_its_words(started, tmp_path):
    settings = started.settings
    cgroup = fake_cgroup(tmp_path, limit_mib=192)
    big = big_mib()
    run_jobs(started, cgroup, big)
    logs = aws_clients()["logs"]

    oom, killed = outcome(logs, settings, "P00000"), outcome(logs, settings, "P00001")
    peak = peak_of(oom)
    assert oom.startswith(f"failed: out of memory: peak {peak:.0f} MiB, limit 192 MiB (MEMORY); exit code -9 "
                          "after "), oom
    assert f"; peak memory {peak:.0f} MiB, cpu " in oom and ", container peak 192 of 192 MiB" in oom
    assert killed.startswith("failed: exit code -9 after ") and "out of memory" not in killed, killed
    assert big <= peak < big + 100

    s3 = aws_clients()["s3"]
    records = {record.job_id: record for record in failures.list_records(s3, settings.AWS_BUCKET, settings.APP_NAME)}
    assert records["P00000"].out_of_memory and records["P00000"].memory_limit_mib == 192
    assert records["P00000"].reason.startswith(f"out of memory: peak {peak:.0f} MiB, limit 192 MiB (MEMORY); ")
    assert round(records["P00000"].peak_memory_mib) == peak and records["P00000"].exit_code == -9
    assert not records["P00001"].out_of_memory and records["P00001"].reason.startswith("exit code -9 after ")

    listed = CliRunner().invoke(cli, ["failed", "--config", str(started.config_path)])
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"^P00000  \d+ attempt\(s\), failed .*: out of memory: peak {peak:.0f} MiB, limit 192 MiB "
                     r"\(MEMORY\); exit code -9 after ", listed.output, re.M), listed.output
    assert re.search(r"^P00001  \d+ attempt\(s\), failed .*: exit code -9 after ", listed.output, re.M)
    as_json = {item["job_id"]: item for item in json.loads(
        CliRunner().invoke(cli, ["failed", "--json", "--config", str(started.config_path)]).output)}
    assert as_json["P00000"]["out_of_memory"] is True and as_json["P00000"]["memory_limit_mib"] == 192

    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<td>ran out of memory at the limit of 192 MiB (MEMORY)</td>" in html  # its failure group's cause
    assert "<div class='note out-of-memory'>1 job(s) ran out of memory: P00000</div>" in html
    assert "1 job(s) ran out of memory, so their real peak is higher than logged" in html
