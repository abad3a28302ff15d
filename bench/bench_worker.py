#!/usr/bin/env python3
"""Worker overhead per job: AWS requests and milliseconds, today's code and a baseline side by side.

No-op jobs (`true`) run by real `python -m worker --exit-when-empty` processes against moto in a child
process of its own (not this one, so the benchmark's own work never shares moto's interpreter). All jobs are
queued before the workers start, as `submit` then `start-cluster` do. moto serves with this project's patches
(localrun/moto_patches.py, what local mode and the emulator serve): plain moto's SQS slows down with queue
depth (a receive and delete take about 4x longer with 1,000 messages queued than with 10), the patched one does
not, so the figures are the worker's and not the depth's.

The child counts every request at the server (a WSGI middleware in front of moto; the benchmark's own requests
carry a user agent mark and are not counted) and stamps the first ReceiveMessage and the last DeleteMessage on
its clock, with the counts at the last DeleteMessage and at the one that ends the warm-up (the first tenth of
the jobs). Per run:

    requests per job in steady state = requests from the warm-up's last DeleteMessage to the last one / jobs in
        between (each such job: receive ... delete; a log put sent after the warm-up's last delete stands in for
        the last job's, sent after the last)
    requests per job, whole run      = every request the workers made, start to exit / jobs
        (adds each process's start and end: queue URL, log group, the busy lease, the failure-record listing,
        the last empty polls, the queue check)
    ms per job                       = (last DeleteMessage - first ReceiveMessage) / jobs
    CPU ms per job                   = CPU time of the workers (their commands included) and of moto's process,
        start to exit / jobs: what the work costs, whatever else the machine runs (wall time shares the CPUs)

With --baseline-ref the same runs are made with the worker of that git revision, checked out into a temporary
worktree (`git worktree add --detach`, removed at the end), alternating baseline and current run by run against
the same server (reset between runs). Each round runs both, back to back, so its ratio (baseline ms per job /
current ms per job) compares two runs made under the same load; the speed-up is the median of the rounds'
ratios (the ratio of the medians is printed too; on a shared machine a busy spell can land on one version's
runs and not the other's). Exit status 0 when the current worker makes at most 4 requests per job in steady
state and, with a baseline, is at least 1.5x faster per job.

Usage: python bench/bench_worker.py [--jobs 300] [--processes 1] [--rounds 5] [--baseline-ref b72593a]
       python bench/bench_worker.py --baseline-ref ''     # the current worker alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The worker before issue 17's worker part (a busy lease per job, a _SUCCESS marker and a failure-record
# delete for every job): what "today's code" meant when this benchmark was written.
DEFAULT_BASELINE = "b72593a"
TARGET_REQUESTS = 4.0
TARGET_SPEEDUP = 1.5
BENCH_AGENT = "dsr-bench"  # in the user agent of the benchmark's own requests, which the server does not count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (python -m worker --processes)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each version, alternated")
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE,
                        help="git revision to compare with ('' for none); default %(default)s")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the moto child process
    args = parser.parse_args()
    if args.serve:
        return serve()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    for name in [name for name in os.environ if name.startswith("AWS_") and name not in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE")]:
        del os.environ[name]  # a profile, a session token or another endpoint must not leak into the runs
    noop = shutil.which("true") or "/bin/true"
    print(f"{args.jobs} no-op jobs ({noop}) per run, {args.processes} worker process(es), {args.rounds} round(s); "
          f"load average {_load()}", flush=True)
    with moto_child() as (endpoint, moto_pid), worker_trees(args.baseline_ref) as trees:
        print(f"moto (patched) in its own process at {endpoint}; "
              + ", ".join(f"{name}: {tree}" for name, tree in trees.items()), flush=True)
        results: dict[str, list[Run]] = {name: [] for name in trees}
        for round_number in range(args.rounds):
            # alternate which version goes first, so a machine growing busier or quieter favours neither
            order = list(trees) if round_number % 2 == 0 else list(trees)[::-1]
            for name in order:
                run = run_once(endpoint, moto_pid, trees[name], noop, args.jobs, args.processes)
                results[name].append(run)
                print(f"  {name:8} round {round_number + 1}: {run.line()}", flush=True)
    return report(results, args.processes)


# ---------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Run:
    jobs: int
    seconds: float  # first ReceiveMessage to last DeleteMessage, on the server's clock
    requests: Counter  # by "service:Operation", every request of the workers, start to exit
    steady: Counter  # those from the warm-up's last DeleteMessage to the last DeleteMessage
    steady_jobs: int  # the jobs deleted in that span
    worker_cpu: float  # seconds, the workers' processes and their commands, start to exit
    moto_cpu: float  # seconds, moto's process over the same span

    @property
    def ms_per_job(self) -> float:
        return self.seconds / self.jobs * 1000

    @property
    def requests_per_job(self) -> float:
        return sum(self.requests.values()) / self.jobs

    @property
    def steady_per_job(self) -> float:
        return sum(self.steady.values()) / max(1, self.steady_jobs)

    @property
    def cpu_ms_per_job(self) -> float:
        return (self.worker_cpu + self.moto_cpu) / self.jobs * 1000

    def line(self) -> str:
        return (f"{self.jobs} jobs in {self.seconds:.2f} s: {self.ms_per_job:.1f} ms per job, CPU "
                f"{self.cpu_ms_per_job:.1f} ms per job (workers {self.worker_cpu / self.jobs * 1000:.1f}, moto "
                f"{self.moto_cpu / self.jobs * 1000:.1f}); requests per job {self.steady_per_job:.2f} in steady "
                f"state, {self.requests_per_job:.2f} for the whole run")


def run_once(endpoint: str, moto_pid: int, tree: Path, program: str, jobs: int, processes: int) -> Run:
    import boto3
    from botocore.config import Config

    from chalicelib.model.jobs import parse_job_document
    from chalicelib.model.names import run_attributes
    from chalicelib.model.settings import Settings

    _post(endpoint + "/moto-api/reset")  # a fresh world each run: nothing one run left slows the next
    warm_up = max(1, jobs // 10)  # every process has started and made its busy period's first calls by then
    _post(endpoint + f"/_bench/reset?warm_up={warm_up}")
    app = f"Bench{time.time_ns()}"
    settings = Settings.from_mapping({
        "APP_NAME": app, "DOCKERHUB_TAG": "bench/worker:1", "AWS_BUCKET": "bench-bucket", "AWS_PROFILE": None,
        "CLUSTER_MACHINES": 1, "MACHINE_TYPE": ["m5.large"], "MACHINE_PRICE": 0.1, "COMMAND": [program, "{n}"],
        "SQS_MESSAGE_VISIBILITY": 60, "SQS_DEAD_LETTER_QUEUE": app + "Dead", "SECONDS_TO_START": 0})
    config = Config(user_agent_extra=BENCH_AGENT)
    sqs = boto3.client("sqs", endpoint_url=endpoint, config=config)
    s3 = boto3.client("s3", endpoint_url=endpoint, config=config)
    s3.create_bucket(Bucket=settings.AWS_BUCKET)
    queue_url = sqs.create_queue(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    bodies = [job.body for job in parse_job_document({"groups": [{"n": i} for i in range(jobs)]}, settings)]
    for start in range(0, jobs, 10):  # every job queued before any worker starts
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(index), "MessageBody": body, "MessageAttributes": run_attributes(app)}
            for index, body in enumerate(bodies[start:start + 10])])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(tree), "AWS_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **settings.to_environment(),
           "DSR_WAIT_SECONDS": "1", "DSR_RESOURCES_SECONDS": "3600"}
    children, moto_before = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu_seconds(moto_pid)
    with tempfile.TemporaryFile() as output:
        worker = subprocess.run([sys.executable, "-m", "worker", "--processes", str(processes), "--exit-when-empty"],
                                cwd=tree, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=600)
        if worker.returncode != 0:
            output.seek(0)
            raise SystemExit(f"the worker in {tree} exited {worker.returncode}:\n{output.read().decode()[-3000:]}")
    moto_cpu, after = _cpu_seconds(moto_pid) - moto_before, resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    seen = json.loads(urllib.request.urlopen(endpoint + "/_bench/counts").read())
    requests = Counter(seen["counts"])
    if requests["sqs:DeleteMessage"] != jobs:
        raise SystemExit(f"the worker in {tree} deleted {requests['sqs:DeleteMessage']} of {jobs} messages")
    steady = Counter(seen["at_last_delete"])
    steady.subtract(seen["at_warm_up"])
    return Run(jobs, seen["last_delete"] - seen["first_receive"], requests, +steady, jobs - warm_up, worker_cpu,
               moto_cpu)


def report(results: dict[str, list[Run]], processes: int) -> int:
    print()
    for name, runs in results.items():
        median = _median_run(runs)
        per_job = ", ".join(f"{operation} {count / median.steady_jobs:.2f}" for operation, count in sorted(
            median.steady.items(), key=lambda item: (-item[1], item[0])))
        ms = statistics.median(run.ms_per_job for run in runs)
        per_process = f" ({ms * processes:.1f} per job per process)" if processes > 1 else ""
        print(f"{name:8} median {ms:.1f} ms per job{per_process}, CPU "
              f"{statistics.median(run.cpu_ms_per_job for run in runs):.1f} ms per job; requests per job "
              f"{statistics.median(run.steady_per_job for run in runs):.2f} in steady state ({per_job}), "
              f"{statistics.median(run.requests_per_job for run in runs):.2f} for the whole run")
    requests = statistics.median(run.steady_per_job for run in results["current"])
    met = requests <= TARGET_REQUESTS
    verdict = [f"requests per job in steady state {requests:.2f} ({'<=' if met else 'OVER'} {TARGET_REQUESTS:g})"]
    if "baseline" in results:
        baseline, current = results["baseline"], results["current"]
        rounds = [old.ms_per_job / new.ms_per_job for old, new in zip(baseline, current, strict=True)]
        speedup = statistics.median(rounds)
        of_medians = (statistics.median(run.ms_per_job for run in baseline)
                      / statistics.median(run.ms_per_job for run in current))
        fewer = statistics.median(run.steady_per_job for run in baseline) / requests
        cpu = (statistics.median(run.cpu_ms_per_job for run in baseline)
               / statistics.median(run.cpu_ms_per_job for run in current))
        met &= speedup >= TARGET_SPEEDUP
        print("baseline / current ms per job, round by round: " + ", ".join(f"{ratio:.2f}" for ratio in rounds)
              + f"; ratio of the medians {of_medians:.2f}")
        verdict.append(f"time per job {speedup:.2f}x better than the baseline (median of the rounds; "
                       f"{'>=' if speedup >= TARGET_SPEEDUP else 'UNDER'} {TARGET_SPEEDUP:g}x), CPU per job "
                       f"{cpu:.2f}x less, {fewer:.2f}x fewer requests")
    print("; ".join(verdict) + f"; load average {_load()}")
    return 0 if met else 1


def _median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.ms_per_job)[len(runs) // 2]


# ---------------------------------------------------------------------------- the worker trees


@contextmanager
def worker_trees(baseline_ref: str) -> Iterator[dict[str, Path]]:
    """{"baseline": a temporary worktree at the ref (if any), "current": this checkout}; the worktree is removed
    whatever happens."""
    if not baseline_ref:
        yield {"current": REPO}
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-worker-baseline-"))
    tree = folder / "tree"
    added = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree),
                            baseline_ref], capture_output=True, text=True)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit(f"cannot check out --baseline-ref {baseline_ref!r}: {added.stderr.strip()}")
    try:
        described = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True,
                                   text=True).stdout.strip()
        print(f"baseline: {described}", flush=True)
        yield {"baseline": tree, "current": REPO}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- moto in a child process


@contextmanager
def moto_child() -> Iterator[tuple[str, int]]:
    """`python bench/bench_worker.py --serve` on a free port of 127.0.0.1; its endpoint and pid while it lives."""
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = child.stdout.readline()  # the port, once it listens
        if not line.strip().isdigit():
            raise SystemExit(f"the moto child did not start (exit {child.wait(10)})")
        yield f"http://127.0.0.1:{line.strip()}", child.pid
    finally:
        child.terminate()
        child.wait(30)


def serve() -> int:
    """The child: moto's WSGI app behind a counter, in localrun's patches, until terminated."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from localrun.moto_patches import patched

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    counting = Counting(DomainDispatcherApplication(create_backend_app))
    with patched():
        server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
    return 0


class Counting:
    """WSGI middleware: counts each request by service and operation (from its signature's credential scope
    and X-Amz-Target, or S3's method), stamps the first ReceiveMessage and the last DeleteMessage; GET
    /_bench/counts reads it, POST /_bench/reset empties it."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.reset()

    def reset(self, warm_up: int = 1) -> None:
        self.counts: Counter = Counter()
        self.first_receive = self.last_delete = None
        self.warm_up = warm_up
        self.at_warm_up: Counter = Counter()
        self.at_last_delete: Counter = Counter()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/"):
            with self.lock:
                if path == "/_bench/reset":
                    self.reset(int(parse_qs(environ.get("QUERY_STRING", "")).get("warm_up", ["1"])[0]))
                body = json.dumps({"counts": self.counts, "first_receive": self.first_receive,
                                   "last_delete": self.last_delete, "at_warm_up": self.at_warm_up,
                                   "at_last_delete": self.at_last_delete}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if BENCH_AGENT not in environ.get("HTTP_USER_AGENT", "") and not path.startswith("/moto-api/"):
            operation = _operation(environ)
            now = time.time()
            with self.lock:
                self.counts[operation] += 1
                if operation == "sqs:ReceiveMessage" and self.first_receive is None:
                    self.first_receive = now
                elif operation == "sqs:DeleteMessage":
                    self.last_delete = now
                    self.at_last_delete = Counter(self.counts)
                    if self.counts[operation] == self.warm_up:
                        self.at_warm_up = Counter(self.counts)
        return self.app(environ, start_response)


def _operation(environ) -> str:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scope = authorization.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    service = scope[3] if len(scope) > 3 else "?"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    if service == "s3":
        method, query = environ.get("REQUEST_METHOD", ""), environ.get("QUERY_STRING", "")
        if method == "GET" and "list-type" in query:
            return "s3:ListObjectsV2"
        return "s3:" + {"PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject", "GET": "GetObject",
                        "POST": "DeleteObjects" if "delete" in query else "Post"}.get(method, method)
    return f"{service}:{environ.get('REQUEST_METHOD', '?')}"


def _cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU time (Linux's /proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST")).read()


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
