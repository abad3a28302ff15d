#!/usr/bin/env python3
"""Submit's memory: a job file of a million jobs, validated and sent, before and after submit streamed it.

    python bench/bench_submit_memory.py                  # 1,000,000 jobs, before then ours: about 5 minutes
    python bench/bench_submit_memory.py --jobs 100000 --only ours

The job file (bench_submit.py's shape: a shared pipeline, a plate and a well per group, about 60 bytes a group) is
written to a temporary folder; each client reads it, validates it and sends every job to bench/sqs_standin.py (at
15 ms, counting what it receives), as `cli.py submit` does (processes chosen by the file's size and the CPUs), in a
fresh interpreter:
- before: the code as of BASELINE (load_job_file: every Job in a list), exported with `git archive` into the
  temporary folder and imported with PYTHONPATH at it;
- ours: JobFile (validated in two readings of the file, read a third time as it is sent).
Each reports its time to validate, its time to send and the peak resident set (VmHWM) of its own process; the
benchmark adds up the resident sets of the client and the sending processes it started every SAMPLE_SECONDS (a
peak between two samples is missed: the figure is a lower bound, the client's own VmHWM exact); the stand-in
counts the messages it received.

Target (issue 29): ours peaks under 300 MB, its sending processes included, with every job received.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_submit import CONFIG, StandIn  # bench/ is not a package: its folder is on the path above

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "ec4ebeb3d4edaaf492229c86a8860206d64c37b8"  # the last commit before submit streamed its job file
JOBS = 1_000_000
LATENCY_MS = 15.0
TARGET_MB = 300
SAMPLE_SECONDS = 0.2  # how often the client's process and its children's resident sets are added up


def write_job_file(path: Path, jobs: int) -> None:
    with path.open("w") as handle:
        handle.write('{"pipeline": "measure", "groups": [\n')
        for index in range(jobs):
            handle.write(('' if index == 0 else ',\n')
                         + json.dumps({"plate": f"P{index // 384:05d}", "well": f"W{index % 384:03d}"}))
        handle.write("\n]}\n")


def client(path: str) -> dict:
    """Validate and send the job file with this interpreter's code (PYTHONPATH says whose); figures as JSON."""
    import chalicelib.model.jobs as jobs_module
    import operations.submit as submit_module
    from chalicelib.model.settings import Settings

    settings = Settings.from_mapping(CONFIG, source="bench")
    started = time.perf_counter()
    if hasattr(jobs_module, "JobFile"):
        jobs = jobs_module.JobFile(path, settings)
    else:
        jobs = jobs_module.load_job_file(path, settings)
    validated = time.perf_counter()
    sent = submit_module.submit(settings, jobs, processes=None).sent
    finished = time.perf_counter()
    return {"sent": sent, "validate": validated - started, "send": finished - validated, "own_mb": _own_peak_mb()}


def _own_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_client(standin: StandIn, code: Path, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "AWS_ENDPOINT_URL": standin.url, "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true"}
    before = standin.stats()["messages"]
    with subprocess.Popen([sys.executable, __file__, "--client", str(path)], env=env, cwd=code,
                          stdout=subprocess.PIPE, text=True) as process:
        tree_mb = 0.0
        while process.poll() is None:
            tree_mb = max(tree_mb, _tree_rss_mb(process.pid))
            time.sleep(SAMPLE_SECONDS)
        output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise SystemExit(f"the {code} client failed (exit status {process.returncode})")
    result = json.loads(output.splitlines()[-1])
    result.update(received=standin.stats()["messages"] - before, tree_mb=tree_mb)
    return result


def _tree_rss_mb(pid: int) -> float:
    """The resident set of `pid` and its children, now (/proc; a process gone meanwhile counts nothing)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(entry.name) == pid or int(fields.get("PPid", "0")) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def export(commit: str, where: Path) -> Path:
    """The packages submit imports as of `commit`, without a worktree (none is added to the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "chalicelib", "operations",
                              "worker"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--only", choices=["before", "ours"], help="run one client only")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args.client)))
        return 0

    print(f"load average at start: {' '.join(f'{load:.2f}' for load in os.getloadavg())} on {os.cpu_count()} CPUs")
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-submit-memory-") as folder:
        path = Path(folder) / "jobs.json"
        write_job_file(path, args.jobs)
        print(f"\n{args.jobs:,} jobs, {path.stat().st_size / 1e6:,.0f} MB of job file, stand-in at {LATENCY_MS:g} ms\n")
        print("| client | validate | send | total | peak RSS, its process | peak RSS, with its sending processes | "
              "received |\n|---|---|---|---|---|---|---|")
        clients = [("before", export(BASELINE, Path(folder) / "before")), ("ours", ROOT)]
        standin = StandIn(LATENCY_MS)
        try:
            for name, code in clients:
                if args.only and name != args.only:
                    continue
                result = run_client(standin, code, path)
                print(f"| {name} | {result['validate']:.1f} s | {result['send']:.1f} s | "
                      f"{result['validate'] + result['send']:.1f} s | {result['own_mb']:,.0f} MB | "
                      f"{result['tree_mb']:,.0f} MB | {result['received']:,} of {args.jobs:,} |", flush=True)
                if name == "ours":
                    met &= result["tree_mb"] < TARGET_MB and result["received"] == args.jobs
        finally:
            standin.stop()
    print(f"\nload average at end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"target (ours under {TARGET_MB} MB, every job received): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
