#!/usr/bin/env python3
"""Worker overhead per job, beyond the command's own run time.

A no-op command (`true`) run by 1,000 jobs through real `python -m worker`
processes against a ThreadedMotoServer in this process. The queue is fed in
small batches so its depth stays low: moto's SQS slows down linearly with
queue depth (issue 7), and that is moto's cost, not the worker's.

    overhead per job per process = wall time x processes / jobs - the command's own time

Usage: python bench/bench_worker.py [--jobs 1000] [--processes 1 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    noop = shutil.which("true") or "/bin/true"
    command_ms = command_time_ms(noop)
    print(f"no-op command {noop}: {command_ms:.1f} ms on its own; {args.jobs} jobs per run; moto at {endpoint}")
    failed = False
    try:
        for processes in args.processes:
            wall = run(endpoint, noop, args.jobs, processes)
            per_job = wall * processes / args.jobs * 1000
            overhead = per_job - command_ms
            failed |= overhead >= TARGET_MS
            print(f"{processes} process(es): {args.jobs} jobs in {wall:.1f} s ({args.jobs / wall:.1f} jobs/s); "
                  f"{per_job:.1f} ms per job per process; overhead {overhead:.1f} ms per job per process "
                  f"({'under' if overhead < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target)")
    finally:
        server.stop()
    return 1 if failed else 0


def command_time_ms(program: str, runs: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run([program], check=True)
    return (time.perf_counter() - started) / runs * 1000


def run(endpoint: str, program: str, jobs: int, processes: int) -> float:
    from chalicelib import aws
    from chalicelib.jobs import parse_job_document
    from chalicelib.settings import Settings

    app = f"Bench{processes}p{int(time.time())}"
    settings = Settings.from_mapping({
        "APP_NAME": app, "DOCKERHUB_TAG": "bench/worker:1", "AWS_BUCKET": "bench-bucket", "AWS_PROFILE": None,
        "CLUSTER_MACHINES": 1, "MACHINE_TYPE": ["m5.large"], "MACHINE_PRICE": 0.1, "COMMAND": [program, "{n}"],
        "SQS_MESSAGE_VISIBILITY": 60, "SQS_DEAD_LETTER_QUEUE": app + "Dead"})
    sqs, s3 = aws.client("sqs"), aws.client("s3")
    s3.create_bucket(Bucket=settings.AWS_BUCKET)
    queue_url = sqs.create_queue(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
    bodies = [job.body for job in parse_job_document({"groups": [{"n": i} for i in range(jobs)]}, settings)]
    env = {**os.environ, **settings.to_environment(), "PYTHONPATH": str(REPO), "DSR_METADATA_URL": "",
           "DSR_WAIT_SECONDS": "1", "DSR_RESOURCES_SECONDS": "3600"}
    work = tempfile.mkdtemp(prefix="bench-worker-")
    with open(Path(work, "worker.log"), "wb") as output:
        worker = subprocess.Popen([sys.executable, "-m", "worker", "--processes", str(processes)], cwd=REPO, env=env,
                                  stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_started(Path(work, "worker.log"), processes)
            started = time.perf_counter()
            feeder = threading.Thread(target=feed, args=(sqs, queue_url, bodies, 10 * processes), daemon=True)
            feeder.start()
            feeder.join()
            while depth(sqs, queue_url) > 0:
                time.sleep(0.02)
            wall = time.perf_counter() - started
        finally:
            worker.terminate()
            worker.wait(60)
    shutil.rmtree(work, ignore_errors=True)
    return wall


def wait_until_started(log: Path, processes: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("worker started on queue") < processes:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not start within {timeout} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def feed(sqs, queue_url: str, bodies: list[str], keep: int) -> None:
    """Keep about `keep` messages waiting until every body is sent."""
    sent = 0
    while sent < len(bodies):
        room = keep - depth(sqs, queue_url)
        while room > 0 and sent < len(bodies):
            batch = bodies[sent:sent + min(10, room)]
            sqs.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(index), "MessageBody": body} for index, body in enumerate(batch)])
            sent += len(batch)
            room -= len(batch)
        time.sleep(0.01)


def depth(sqs, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


if __name__ == "__main__":
    sys.exit(main())
