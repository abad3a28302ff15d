"""Local mode, timed as a user runs it: `cli.py local` as a subprocess.

1. 2,000 no-op jobs (COMMAND ["true"]): jobs per second while they run,
   measured from the progress lines as they arrive (from the tick before the
   first job was counted done to the tick that counted the last), and the whole
   command's wall time (setup, submit, teardown, logs and outputs to --out
   included). Target: >= 60 jobs/s (issue 17; 20 before).
2. The README's demo (48 plates): wall time of the whole command. Target: < 60 s.

    python bench/bench_local.py                  # both
    python bench/bench_local.py --jobs 500       # a smaller no-op run

Exit status 0 when the targets are met.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
TARGET_JOBS_PER_SECOND = 60.0
TARGET_DEMO_SECONDS = 60.0
PROGRESS = re.compile(r"^(\d+)/(\d+) done, .*\| (\d+):(\d\d) ")


def run(args: list[str], cwd: Path) -> tuple[float, list[tuple[float, int]], str]:
    """Wall seconds, and (seconds since start, jobs done) for each output line as it arrived."""
    started = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, lines = [], []
    for line in process.stdout:
        lines.append(line)
        match = PROGRESS.match(line)
        if match:
            seen.append((time.monotonic() - started, int(match.group(1))))
    process.wait()
    if process.returncode != 0:
        sys.exit("".join(lines) + f"\ncli.py local exited with {process.returncode}")
    return time.monotonic() - started, seen, "".join(lines)


def no_op_run(jobs: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        config = json.loads((EXAMPLES / "config.json").read_text())
        config.update(APP_NAME="BenchNoop", COMMAND=["true"], OUTPUT_PREFIX="outputs/{job_id}", INPUT_PREFIX=None)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "jobs.json").write_text(json.dumps({"groups": [{"n": index} for index in range(jobs)]}))
        wall, seen, output = run([sys.executable, str(REPO / "cli.py"), "local", "jobs.json", "--config",
                                  "config.json", "--out", "out", "--workers", str(workers)], folder)
    first = next(moment for moment, done in seen if done > 0)
    last = next(moment for moment, done in seen if done == jobs)
    # the first progress line with jobs done comes up to a tick after they started: count from the line before
    before = max((moment for moment, done in seen if moment < first), default=first)
    rate = jobs / max(last - before, 1e-9)
    return {"jobs": jobs, "workers": workers, "wall_seconds": round(wall, 1), "run_seconds": round(last - before, 1),
            "jobs_per_second": round(rate, 1), "summary": output[output.rfind("\nBenchNoop"):].strip()}


def demo_run() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        wall, _, output = run([sys.executable, str(REPO / "cli.py"), "local", str(EXAMPLES / "jobs.json"),
                               "--config", str(EXAMPLES / "config.json"), "--inputs", str(EXAMPLES / "inputs"),
                               "--out", str(Path(folder) / "out")], Path(folder))
    return {"wall_seconds": round(wall, 1), "summary": output[output.rfind("\nDemoPlates"):].strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8,
                        help="worker processes (no-op jobs wait on the emulator, not the CPU)")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    noop = no_op_run(args.jobs, args.workers)
    print(f"{noop['jobs']} no-op jobs, {noop['workers']} workers: {noop['jobs_per_second']} jobs/s over "
          f"{noop['run_seconds']} s of running (target >= {TARGET_JOBS_PER_SECOND:g}); whole command "
          f"{noop['wall_seconds']} s")
    ok = noop["jobs_per_second"] >= TARGET_JOBS_PER_SECOND
    if not args.skip_demo:
        demo = demo_run()
        print(f"demo (48 plates): {demo['wall_seconds']} s for the whole command (target < {TARGET_DEMO_SECONDS:g} s)")
        print(demo["summary"])
        ok = ok and demo["wall_seconds"] < TARGET_DEMO_SECONDS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
