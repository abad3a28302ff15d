#!/usr/bin/env python3
"""Submit benchmark: our `submit` against DS's loop, on a stand-in SQS with 15 ms latency.

    python bench/bench_submit.py            # 100,000 jobs ours, 2,000 DS (scaled linearly)

The stand-in runs in its own process (bench/sqs_standin.py) so that it does not
share this process's GIL with the client being measured. Validating the job
file is timed separately: both clients send the same validated messages.
Targets (issue #4): ours >= 50x DS's rate, and 100,000 jobs in < 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = {"APP_NAME": "Bench", "DOCKERHUB_TAG": "bench/worker:1", "AWS_BUCKET": "bench-bucket", "AWS_PROFILE": None,
          "CLUSTER_MACHINES": 1, "MACHINE_TYPE": ["m5.large"], "MACHINE_PRICE": 0.1,
          "COMMAND": ["python", "/app/run.py", "--plate", "{plate}", "--well", "{well}"]}


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats") as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs sent by our submit")
    parser.add_argument("--ds-jobs", type=int, default=2_000, help="jobs sent by DS's loop (rate scaled linearly)")
    parser.add_argument("--latency-ms", type=float, default=15.0)
    args = parser.parse_args()

    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sqs_standin.py"), "--latency-ms",
                                str(args.latency_ms)], stdout=subprocess.PIPE, text=True)
    try:
        url = standin.stdout.readline().strip()
        # Dummy credentials, no profile files: this can only ever reach the stand-in.
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        from chalicelib import aws
        from chalicelib.jobs import parse_job_document
        from chalicelib.settings import Settings
        from chalicelib.submit import submit

        settings = Settings.from_mapping(CONFIG, source="bench")
        started = time.perf_counter()
        document = {"pipeline": "measure", "groups": [{"plate": f"P{index // 384:04d}", "well": f"W{index % 384:03d}"}
                                                      for index in range(args.jobs)]}
        jobs = parse_job_document(document, settings, "bench")
        validate_seconds = time.perf_counter() - started

        started = time.perf_counter()
        ours = submit(settings, jobs)
        ours_seconds = time.perf_counter() - started
        after_ours = _stats(url)

        sqs = aws.client("sqs", settings)
        queue_url = sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"]
        started = time.perf_counter()
        for job in jobs[: args.ds_jobs]:  # DS's submitJob: one SendMessage per job, one at a time
            sqs.send_message(QueueUrl=queue_url, MessageBody=job.body)
        ds_seconds = time.perf_counter() - started
        after_ds = _stats(url)
    finally:
        standin.terminate()
        standin.wait()

    ours_rate, ds_rate = ours.sent / ours_seconds, args.ds_jobs / ds_seconds
    received_ours = after_ours["messages"]
    received_ds = after_ds["messages"] - received_ours
    ratio = ours_rate / ds_rate
    print(f"stand-in SQS latency: {args.latency_ms:g} ms per request")
    print(f"validated {len(jobs):,} jobs in {validate_seconds:.1f} s (not included below)")
    print(f"ours: {ours.sent:,} jobs in {ours_seconds:.2f} s = {ours_rate:,.0f} jobs/s "
          f"({after_ours['requests'] - 1:,} SendMessageBatch requests; stand-in received {received_ours:,})")
    print(f"DS:   {args.ds_jobs:,} jobs in {ds_seconds:.2f} s = {ds_rate:,.0f} jobs/s "
          f"(stand-in received {received_ds:,}); 100,000 jobs would take {100_000 / ds_rate:,.0f} s")
    print(f"ratio: {ratio:.0f}x")
    met = ratio >= 50 and received_ours == len(jobs) and (len(jobs) < 100_000 or ours_seconds < 30)
    print(f"targets (>= 50x, 100,000 in < 30 s, every job received): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
