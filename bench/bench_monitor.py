#!/usr/bin/env python3
"""The monitor's cost per tick and the status API's per request, at a lab's scale, projected to AWS.

Runs are started as a user starts them (setup, then start-cluster, on the emulator: moto with this project's
patches, served from a child process so its work is not counted here), with their machines running and their
queues holding jobs. Then, for each case:

    steady tick    the Lambda's scheduled reconcile of every run (`service.reconcile_runs` with the warm
                   container's last looks, as app.py passes them) after two ticks that let the runs converge:
                   nothing changes, so this is what a tick costs at rest
    full tick      the same tick with no last looks: what `cli.py monitor`, a cold container, an alarm's tick
                   and each run's full look every FULL_OBSERVE_SECONDS (chalicelib/monitor/steady.py) cost
    GET /runs      the status API's listing of every run (`service.all_statuses`)
    failed jobs    a full look (an alarm's tick) at one run with that many failure records, with the warm
                   container's failure tally (chalicelib/monitor/failure_tally.py: the journal's news since its
                   last look) and without (every record listed, a page per 1,000)

Each is measured in this process: AWS calls (counted at botocore's `before-call` event, every client the
monitor makes), client CPU (this process's CPU time: serializing, signing and parsing, no network or server
time; the boto3 sessions are warm, as in a warm Lambda container, so each service's model is loaded before), and
wall time on the emulator. On AWS a call takes 20-50 ms, so the projection is
calls x latency / threads + client CPU: the tick reconciles budget.CONCURRENT_RUNS runs at a time and GET /runs
reads service.READERS documents at a time (fewer when there are fewer runs), and the CPU is one process's (the
threads share it).

Usage: python bench/bench_monitor.py [--runs 1,10,100] [--machines 10,100,1000] [--api-runs 100,1000]
                                    [--failures 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.monitor.steady import LastLooks

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LATENCIES_MS = (20, 50)  # an AWS API call, same region, as the issue measured them
REGION = "us-east-1"
BUCKET = "bench-monitor"
SCHEDULE_SECONDS = 60  # the Lambda's period: a tick longer than this overlaps the next


@dataclass(frozen=True)
class Measured:
    what: str
    runs: int
    machines: int
    calls: int
    cpu_seconds: float
    wall_seconds: float
    operations: Counter[str]
    threads: int  # the calls in flight at once

    def projected(self, latency_ms: int) -> float:
        return self.calls * latency_ms / 1000 / self.threads + self.cpu_seconds

    def line(self) -> str:
        per_run = self.calls / self.runs
        projections = "  ".join(f"{self.projected(ms):7.1f} s at {ms} ms" for ms in LATENCIES_MS)
        return (f"{self.what:<12} {self.runs:>5} runs x {self.machines:>5} machines: {self.calls:>6} calls "
                f"({per_run:5.1f}/run), client CPU {self.cpu_seconds * 1000 / self.runs:6.1f} ms/run, "
                f"emulator {self.wall_seconds:6.1f} s; on AWS {projections}")


# The sessions the monitor's clients come from, with the counting hook, kept for the whole benchmark as a warm
# Lambda container keeps its own (chalicelib/aws `_sessions`): a session loads each service's model once, which a
# cold start pays and a warm tick does not. The calls go to the innermost open `counted()`.
_SESSIONS: dict[tuple[str, str | None], object] = {}
_COUNTING: list[Counter[str]] = []


_COUNTING_LOCK = threading.Lock()  # the tick's threads call at once; a Counter's += is not atomic


def _count(model, **_: object) -> None:
    with _COUNTING_LOCK:
        if _COUNTING:
            _COUNTING[-1][f"{model.service_model.service_name}.{model.name}"] += 1


@contextmanager
def counted() -> Iterator[Counter[str]]:
    """Every AWS call the code makes while open, by service and operation: our Clients come from one seam
    (`aws.sessions_from`), so each session they make gets the counting hook."""
    import boto3

    from chalicelib import aws

    def session(region: str | None, profile: str | None) -> boto3.Session:
        key = (region or REGION, profile)
        if key not in _SESSIONS:
            made = boto3.Session(region_name=key[0])
            made.events.register("before-call", _count)
            _SESSIONS[key] = made
        return _SESSIONS[key]  # type: ignore[return-value]

    calls: Counter[str] = Counter()
    _COUNTING.append(calls)
    try:
        with aws.sessions_from(session):
            yield calls
    finally:
        _COUNTING.pop()


def measure(what: str, runs: int, machines: int, action: Callable[[], object], threads: int) -> Measured:
    gc.collect()  # a collection of the earlier cases' garbage would land in this one's CPU (100 ms and more)
    with counted() as calls:
        cpu, wall = time.process_time(), time.perf_counter()
        action()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Measured(what, runs, machines, sum(calls.values()), cpu, wall, calls, min(threads, runs))


def start_runs(count: int, machines: int, folder: Path, first: int, **more: object) -> list[str]:
    """`count` runs of `machines` machines each, set up and started as `cli.py setup` and `start-cluster` do,
    each with jobs waiting; their APP_NAMEs. `more`: settings beside the benchmark's own."""
    from chalicelib import aws
    from chalicelib.model.settings import Settings
    from localrun.account import localize_fleet, prepare_account
    from operations.setup import iam, resources
    from operations.start import cluster
    from operations.start.fleet import load_fleet_file

    names = []
    account = None
    for index in range(first, first + count):
        name = f"Bench{index:04d}"
        settings = Settings.from_mapping({
            "APP_NAME": name, "AWS_REGION": REGION, "AWS_BUCKET": BUCKET, "DOCKERHUB_TAG": "example/worker:1",
            "CLUSTER_MACHINES": machines, "TASKS_PER_MACHINE": 1, "DOCKER_CORES": 1, "MACHINE_TYPE": ["m5.large"],
            "MACHINE_PRICE": 0.1, "ECS_CLUSTER": "bench", "COMMAND": ["true"], **more})
        if account is None:
            account = prepare_account(settings, run_setup=False)
        iam.setup_account(settings)  # the run's own task role
        resources.setup(settings)
        fleet = localize_fleet(load_fleet_file(REPO / "examples" / "fleet.json"), account, folder / f"{name}.json")
        sqs = aws.client("sqs", settings)
        url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
        for batch in range(0, 50, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"plate": f"P{batch + i}"})} for i in range(10)])
        cluster.start_cluster(settings, fleet, wait_seconds=0, poll_seconds=0, files_dir=folder / "files")
        names.append(name)
    return names


def steady_tick(runs: int, looks: LastLooks | None, full_look: bool = False) -> Callable[[], object]:
    from chalicelib.monitor import service
    from chalicelib.monitor.budget import CONCURRENT_RUNS

    def tick() -> object:
        found, unreadable = service.scan_buckets([BUCKET])
        assert not unreadable and len(found) == runs, (len(found), unreadable)
        outcomes = service.reconcile_runs(found, looks=looks, full_look=full_look, concurrency=CONCURRENT_RUNS)
        errors = [outcome.error for outcome in outcomes if outcome.error]
        assert not errors, errors[:3]
        return outcomes
    return tick


def get_runs(runs: int) -> Callable[[], object]:
    from chalicelib.monitor import service

    def listing() -> object:
        answer = service.all_statuses([BUCKET])
        assert len(answer["runs"]) == runs, len(answer["runs"])
        return answer
    return listing


def copy_runs(started: list[str], total: int) -> None:
    """GET /runs's cases past the runs started: each started run's record and status document copied under new
    names until there are `total`, then the bucket's status index refreshed as the scheduled tick does after its
    runs. GET /runs reads only the listing, the index and those two objects of a run (never its AWS resources), so
    a copy costs it what a run costs; starting 1,000 runs on the emulator takes most of an hour."""
    from chalicelib import aws
    from chalicelib.model.names import record_key, status_key
    from chalicelib.monitor import status_index

    s3 = aws.client("s3", region=REGION)
    for index in range(len(started), total):
        source, name = started[index % len(started)], f"Copy{index:05d}"
        for key in (record_key, status_key):
            s3.copy_object(Bucket=BUCKET, Key=key(name), CopySource={"Bucket": BUCKET, "Key": key(source)})
    status_index.refresh(s3, BUCKET)


def write_failure_records(app_name: str, count: int) -> None:
    """`count` failure records of the run, as its workers wrote them over the run before this container's last
    full count (so no journal entry of theirs is in the window a look reads again), 16 writers at once."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import aws
    from chalicelib.model.names import failure_key
    from chalicelib.runfiles.failures import FailureRecord

    s3 = aws.client("s3", region=REGION)

    def put(number: int) -> None:
        record = FailureRecord(job_id=f"job{number:07d}", attempts=3, reason="exit code 1 after 2.0 s", exit_code=1,
                               last_lines=("Traceback ...",), message_body="{}", time=time.time(), instance_id=None)
        s3.put_object(Bucket=BUCKET, Key=failure_key(app_name, record.job_id), Body=record.to_json().encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def clear_runs() -> None:
    """Every run's record removed (its AWS resources stay, unwatched): the next case starts from no run."""
    from chalicelib import aws

    s3 = aws.client("s3", region=REGION)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        return
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="monitors/"):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


@contextmanager
def emulator_child() -> Iterator[str]:
    """`python bench/bench_monitor.py --serve`: the project's emulator in a process of its own, with the account's
    Spot quotas raised there (they are its state); its endpoint while it lives."""
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        endpoint = child.stdout.readline().strip() if child.stdout else ""
        if not endpoint.startswith("http"):
            raise SystemExit(f"the emulator did not start (exit {child.wait(10)})")
        yield endpoint
    finally:
        child.terminate()
        child.wait(30)


def serve() -> int:
    from chalicelib.monitor.spot_quota import SPOT_QUOTAS
    from localrun.embedded import emulator
    from localrun.moto_patches import set_service_quota

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # before the server's threads start
    with emulator() as url:
        for quota in SPOT_QUOTAS:  # room for the largest case's fleet (a lab's approved increase is smaller)
            set_service_quota(quota.code, 100_000, region=REGION)
        print(url, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


PROJECTED_RUNS = 1000


def print_projection(results: list[Measured], threads: int) -> None:
    """A tick of PROJECTED_RUNS runs from the largest measured tick's cost per run (a run's calls and CPU do not
    depend on how many others there are; the listings, one page per 1,000 records or fleets, are a handful): all
    converged, all looking fully (a cold container), and as the schedule spreads the full looks over 150-300 s (a
    fifth to a half of the runs on any one tick; chalicelib/monitor/steady.py)."""
    measured = [result.runs for result in results if result.what == "steady tick" and result.machines == 10]
    if not measured:
        return
    largest = max(measured)
    steady, full = (next(result for result in results if result.what == what and result.runs == largest
                         and result.machines == 10) for what in ("steady tick", "full tick"))
    print(f"\n{PROJECTED_RUNS:,} runs a tick, from the {largest}-run ticks' cost per run, {threads} runs at a time:")
    for label, share in (("all converged", 0.0), ("a fifth looking fully", 0.2), ("half looking fully", 0.5),
                         ("all looking fully (cold container)", 1.0)):
        calls = PROJECTED_RUNS * ((1 - share) * steady.calls / steady.runs + share * full.calls / full.runs)
        cpu = PROJECTED_RUNS * ((1 - share) * steady.cpu_seconds / steady.runs + share * full.cpu_seconds / full.runs)
        times = ", ".join(f"{calls * ms / 1000 / threads + cpu:.0f} s at {ms} ms" for ms in LATENCIES_MS)
        print(f"- {label}: {calls:,.0f} calls, {cpu:.1f} s client CPU; {times} a call")


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1,10,100",
                        help="run counts of the steady-tick cases (10 machines a run)")
    parser.add_argument("--machines", default="10,100,1000", help="machine counts of the one-run cases")
    parser.add_argument("--api-runs", default="100,1000", help="run counts of the GET /runs cases")
    parser.add_argument("--failures", default="10000", help="failure record counts of the failed-jobs cases")
    args = parser.parse_args()
    cases = ([(int(n), 10) for n in args.runs.split(",") if n] + [(1, int(m)) for m in args.machines.split(",") if m])
    api_cases = [int(n) for n in args.api_runs.split(",") if n]
    failure_cases = [int(n) for n in args.failures.split(",") if n]

    from chalicelib.monitor.budget import CONCURRENT_RUNS
    from chalicelib.monitor.service import READERS
    from chalicelib.monitor.steady import LastLooks

    results: list[Measured] = []
    with emulator_child() as endpoint, tempfile.TemporaryDirectory() as folder:
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench"})
        started = 0
        api_started = min(api_cases, default=0)  # the larger GET /runs cases copy these runs' documents
        for runs, machines in sorted(set(cases) | ({(api_started, 10)} if api_cases else set())):
            clear_runs()
            began = time.perf_counter()
            names = start_runs(runs, machines, Path(folder), started)
            started += runs
            print(f"# {runs} runs x {machines} machines started in {time.perf_counter() - began:.0f} s", flush=True)
            looks = LastLooks()  # the warm Lambda's (app.py LOOKS)
            with counted():  # the first ticks write the runs' bookkeeping (and warm the sessions): not steady ticks
                steady_tick(runs, looks)()
                steady_tick(runs, looks)()
            if (runs, machines) in cases:
                results.append(measure("steady tick", runs, machines, steady_tick(runs, looks), CONCURRENT_RUNS))
                print(results[-1].line(), flush=True)
                results.append(measure("full tick", runs, machines, steady_tick(runs, None), CONCURRENT_RUNS))
                print(results[-1].line(), flush=True)
            if machines == 10 and runs == api_started:
                for listed in sorted(api_cases):
                    copy_runs(names, listed)
                    results.append(measure("GET /runs", listed, machines, get_runs(listed), READERS))
                    print(results[-1].line(), flush=True)
        for failed in failure_cases:
            clear_runs()
            # a run that goes on with its failures (the breaker would stop it, and a run tearing down counts fully)
            [name] = start_runs(1, 10, Path(folder), started, STOP_AFTER_FAILED_JOBS=None)
            started += 1
            write_failure_records(name, failed)
            looks = LastLooks()
            with counted():  # the first full look counts every record; the tally keeps them
                steady_tick(1, looks, full_look=True)()
            results.append(measure(f"full look, {failed:,} failed jobs, tally", 1, 10,
                                   steady_tick(1, looks, full_look=True), CONCURRENT_RUNS))
            print(results[-1].line(), flush=True)
            results.append(measure(f"full look, {failed:,} failed jobs, counted", 1, 10, steady_tick(1, None),
                                   CONCURRENT_RUNS))
            print(results[-1].line(), flush=True)
    print()
    print("| case | runs | machines | AWS calls | per run | client CPU per run | on the emulator | "
          + " | ".join(f"on AWS at {ms} ms a call" for ms in LATENCIES_MS) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(LATENCIES_MS))
    for result in results:
        print(f"| {result.what} | {result.runs} | {result.machines} | {result.calls} | {result.calls / result.runs:.1f}"
              f" | {result.cpu_seconds * 1000 / result.runs:.1f} ms | {result.wall_seconds:.1f} s | "
              + " | ".join(f"{result.projected(ms):.1f} s" for ms in LATENCIES_MS) + " |")
    print_projection(results, CONCURRENT_RUNS)
    heaviest = max(results, key=lambda result: result.calls / result.runs)
    print(f"\nmost calls per run: {heaviest.what}, {heaviest.runs} runs x {heaviest.machines} machines: "
          + ", ".join(f"{op} {n}" for op, n in heaviest.operations.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
