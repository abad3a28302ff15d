"""The job program of the campaign's runs: `job.py MODE NAME OUT`, run by local mode's workers as COMMAND.

Modes: ok (writes OUT/result.txt), sleep:S (sleeps S seconds, then as ok), fail (exit 3 every attempt), flaky
(exit 3 on its first attempt only: attempts are counted in CHAOS_MARKS, a file per job), hang (sleeps past
JOB_TIMEOUT every attempt), attack:KIND:TARGET (a hostile job doing only what the task role allows a job, then as
ok):
- forge-failure:JOB  puts a failure record for its own run claiming JOB failed (runs/APP/failures/ is writable)
- foreign-message:APP sends its own queue a job message whose run attribute names run APP (a fail job, so that
  SQS moves it to the dead-letter queue every run shares, where APP must not take it for its own)
- outside-prefix:JOB writes a file into JOB's output prefix (the output root is writable, not one job's prefix)
Standard library and boto3 only: it runs with the worker's environment (the emulator's endpoint, the run's key id)
and the run's ENVIRONMENT, where the harness puts the CHAOS_* names it needs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FORGED_PREFIX = "forged-"  # the job id a foreign-message attack gives the job it sends


def main(mode: str, name: str, out: str) -> int:
    marks = Path(os.environ["CHAOS_MARKS"])
    attempts_file = marks / f"{name}.started"
    with attempts_file.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    attempt = len(attempts_file.read_text().split())
    print(f"job {name} mode {mode} attempt {attempt}", flush=True)
    if mode == "fail" or (mode == "flaky" and attempt == 1):
        print("failing on purpose", flush=True)
        return 3
    if mode == "hang":
        time.sleep(3600)
    if mode.startswith("sleep:"):
        time.sleep(float(mode[6:]))
    if mode.startswith("attack:"):
        attack(*mode.split(":")[1:3], name=name)
    Path(out, "result.txt").write_text(name + "\n")
    print("wrote result.txt", flush=True)
    return 0


def attack(kind: str, target: str, name: str) -> None:
    import boto3  # here: its import takes seconds on a loaded machine, which the other modes need not spend

    app, bucket = os.environ["CHAOS_APP"], os.environ["CHAOS_BUCKET"]
    if kind == "forge-failure":
        record = {"job_id": target, "attempts": 1, "reason": f"forged by {name}", "exit_code": 3,
                  "last_lines": ["forged"], "message_body": json.dumps({"group": {"job_id": target}}),
                  "time": time.time(), "instance_id": None}
        boto3.client("s3").put_object(Bucket=bucket, Key=f"runs/{app}/failures/{target}.json",
                                      Body=json.dumps(record).encode())
    elif kind == "foreign-message":
        sqs = boto3.client("sqs")
        forged = FORGED_PREFIX + name
        sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=os.environ["CHAOS_QUEUE"])["QueueUrl"],
                         MessageBody=json.dumps({"group": {"job_id": forged, "name": forged, "mode": "fail"}}),
                         MessageAttributes={"dsr-app": {"DataType": "String", "StringValue": target}})
    elif kind == "outside-prefix":
        root = os.environ["CHAOS_OUTPUT_ROOT"]
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{root}{target}/forged-{name}.txt",
                                      Body=b"written by another job\n")
    else:
        raise SystemExit(f"unknown attack {kind!r}")
    print(f"attack {kind} on {target} done", flush=True)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
