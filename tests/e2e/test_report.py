"""The run report from a real local run (`cli.py local --report`): ok, failing, skipped-as-done and spot-
interrupted jobs; its numbers checked against the run's own summary (--out/summary.json); then a headless
Chromium opens it and a screenshot shows the timeline."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.e2e.local_world import Run, local_args, processes_marked, run_local


def bars(html: str) -> dict[str, list[str]]:
    """Job ids of the drawn bars, by outcome (each bar: class 'bar o-OUTCOME', data-job)."""
    found: dict[str, list[str]] = {}
    for outcome, job in re.findall(r"<rect class='bar o-([a-z]+)' data-job='([^']*)'", html):
        found.setdefault(outcome, []).append(job)
    return found


def tile(html: str, name: str) -> str:
    return re.search(rf"data-figure='{re.escape(name)}'><b>([^<]*)</b>", html).group(1)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """Run 1 does j00-j03 (CHECK_IF_DONE on); run 2, into the same --out, finds them done (skipped), runs six
    sleeping jobs on 3 machines under spot notices, and two jobs that always fail."""
    folder = tmp_path_factory.mktemp("report")
    run = Run(folder, CLUSTER_MACHINES=3, JOB_RETRIES=2, CHECK_IF_DONE_BOOL=True)
    first, mark = run_local(local_args(run.jobs(*["ok"] * 4), run.config, "--out", str(run.out)), cwd=folder)
    assert first.returncode == 0, first.stdout + first.stderr
    # 4 s: each machine is checked for a notice about 4 times while busy, so one lands (0.7 ** 12 that none does)
    modes = ["ok"] * 4 + ["sleep:4"] * 6 + ["fail", "fail"]
    result, mark = run_local(local_args(run.jobs(*modes), run.config, "--out", str(run.out), "--report",
                                        "--workers", "6", "--interrupt-rate", "0.3", "--seed", "3"), cwd=folder)
    assert processes_marked(mark) == []
    return run, result


@pytest.mark.slow
def test_the_report_counts_what_the_runs_summary_says(report_run):
    run, result = report_run
    assert result.returncode == 1, result.stdout + result.stderr  # two jobs failed
    path = run.out / "report.html"
    assert "run report: " in result.stdout and path.exists()
    html = path.read_text()
    summary = json.loads((run.out / "summary.json").read_text())
    drawn = bars(html)
    assert sorted(set(drawn["skipped"])) == summary["skipped_as_already_done"] == ["j00", "j01", "j02", "j03"]
    assert sorted(set(drawn["succeeded"])) == summary["done"]
    assert len(drawn["succeeded"]) == len(summary["done"])  # each done job succeeded once
    assert sorted(set(drawn["failed"])) == sorted(summary["failed"]) == ["j10", "j11"]
    logged = [line for log in sorted((run.out / "logs").glob("*.log")) for line in log.read_text().splitlines()]
    # every failed attempt is a bar: JOB_RETRIES (2) each, more if a notice released one (its attempts start over)
    assert len(drawn["failed"]) == sum(line.startswith("failed: ") for line in logged) >= 2 * 2
    # every released attempt in the job logs is a bar (spot notices release jobs; a notice may find a machine idle)
    assert len(drawn.get("released", [])) == sum(line.startswith("released: ") for line in logged) > 0
    assert tile(html, "done") == str(len(summary["done"]))
    assert tile(html, "skipped as done") == "4" and tile(html, "failed") == "2"
    # failures grouped by their common cause: the job's last output line, both jobs named
    group = re.search(r"<tr class='failure-group'><td>([^<]*)</td><td class='n'>(\d+)</td><td class='n'>(\d+)</td>"
                      r"<td class='ids'>([^<]*)</td>", html)
    failed_attempts = str(sum(line.startswith("failed: ") for line in logged))
    assert group.groups() == ("ended with: failing on purpose", failed_attempts, "2", "j10, j11")
    # cost from the monitor's own summary
    monitor = summary["monitor_summary"]
    assert f"{monitor['machine_hours']:.4f}" in re.search(r"data-cost='machine-hours'>.*?</tr>", html).group(0)
    assert f"${monitor['cost_ceiling_usd']:.4f}" in re.search(r"data-cost='cost ceiling'>.*?</tr>", html).group(0)
    # machines, jobs waiting and running over time: the monitor's own series, carried in its summary
    series = monitor["series"]
    assert series and max(waiting for _, _, waiting, _ in series) <= 12 and series[-1][1] == 0
    assert "Source: the monitor&#x27;s checks every 1 s: a point whenever" in html
    assert all(f"class='line-{name}'" in html for name in ("machines", "running", "waiting"))
    # one time axis for both drawings
    drawings = [re.search(rf"<svg class='{name}'.*?</svg>", html, re.S).group(0) for name in ("timeline", "series")]
    axes = [re.findall(r"text-anchor='middle'>([^<]+)</text>", drawing) for drawing in drawings]
    assert axes[0] == axes[1] and len(axes[0]) == 6
    # every row of the timeline names a machine of the run and a worker: none unknown
    assert "unknown" not in re.search(r"<svg class='timeline'.*?</svg>", html, re.S).group(0)
    # self-contained: nothing to fetch
    assert not re.search(r"(src|href)=['\"]?https?:", html) and "<script" not in html


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def png_pixels(path: Path) -> tuple[int, int, set]:
    """(width, height, a sample of distinct pixel colours) of an 8-bit RGB/RGBA PNG: enough to tell a
    drawing from a blank page, with no imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = {}, 8
    idat = b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IDAT":
            idat += body
        else:
            chunks.setdefault(kind, body)
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours = set()
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):  # PNG's row filters
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else upper_left)) & 255
        previous = line
        if row % 7 == 0:
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, channels * 5))
    return width, height, colours


@pytest.mark.slow
def test_a_headless_chromium_shows_the_timeline(report_run, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("CI") == "true" and shutil.which("apt-get"):
            pytest.fail("CI=true: chromium must be installed (.ci/run installs Debian's chromium with apt-get)")
        pytest.skip("no chromium on PATH (nor CHROMIUM): apt-get install chromium to run this test")
    run, _ = report_run
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1400,900", (run.out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 5000
    width, height, colours = png_pixels(shot)
    assert (width, height) == (1400, 900)
    # the timeline's bars in their outcome colours: succeeded (green), skipped (blue-grey), failed (red)
    for name, rgb in {"succeeded": "2e8b57", "skipped": "8da0cb", "failed": "d62728"}.items():
        assert bytes.fromhex(rgb) in colours, f"no {name} bar on the screenshot"


@pytest.mark.slow
def test_a_local_runs_report_says_a_timeout_and_prices_idle_time_by_the_workers_that_ran(tmp_path):
    """2 machines of 2 workers configured, --workers 1: one worker ran. The idle share was computed as if 4 had
    (machine-hours x 2 per machine), and the job that hung past JOB_TIMEOUT was said to have 'ended with' its
    last line."""
    run = Run(tmp_path, CLUSTER_MACHINES=2, DOCKER_CORES=2, JOB_RETRIES=1, JOB_TIMEOUT=2)
    result, mark = run_local(local_args(run.jobs("ok", "ok", "sleep:30"), run.config, "--out", str(run.out),
                                        "--report", "--workers", "1"), cwd=tmp_path)
    assert processes_marked(mark) == []
    assert result.returncode == 1, result.stdout + result.stderr  # the hung job failed
    html = (run.out / "report.html").read_text()

    group = re.search(r"<tr class='failure-group'><td>([^<]*)</td>.*?<td class='ids'>([^<]*)</td>", html).groups()
    assert group == ("timed out after 2 s", "j02")
    assert "failed every attempt: all 1 failed job(s) (1 attempts) timed out after 2 s." in html

    def cost(name: str) -> tuple[str, str]:
        return re.search(rf"data-cost='{name}'><th>[^<]*</th><td class='n'>([^<]*)</td><td>([^<]*)</td>",
                         html).groups()

    busy = float(cost("busy worker-hours")[0])
    machine_hours = float(cost("machine-hours")[0])
    idle, how = cost("idle share")
    worker_hours = float(re.fullmatch(r"1 - busy / ([\d.]+) worker-hours \(each worker that ran, from its start to "
                                      r"its end\)", how).group(1))
    assert busy < worker_hours <= machine_hours  # one worker, up no longer than the 2 machines together
    # as 1 - busy / worker-hours, both shown to 4 decimals (so within their rounding) and the share to a percent
    low, high = 1 - (busy + 5e-5) / (worker_hours - 5e-5), 1 - (busy - 5e-5) / (worker_hours + 5e-5)
    assert low - 0.005 <= int(idle.rstrip("%")) / 100 <= high + 0.005, (idle, busy, worker_hours)
    assert re.search(r"data-figure='machines'><b>2</b>", html)  # both machines the fleet launched
