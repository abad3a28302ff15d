"""A stand-in for DS's generic worker, run by the campaign's ECS emulation as the DS image mode run's tasks.

Modelled on Distributed-Something's worker/generic-worker.py (DistributedScience/Distributed-Something, file
last changed at commit f9392d04f400c8c93012ade6c16145c3f9dc9f4f; read at d1d6e62edb0c83e5d0a047e8569d455ea2cebacd),
which DS users fill in with their program. Like it:

- its settings are the task definition's environment, by DS's names (SQS_QUEUE_URL, AWS_BUCKET, APP_NAME,
  CHECK_IF_DONE_BOOL compared as text with 'TRUE', EXPECTED_NUMBER_FILES, MIN_FILE_SIZE_BYTES, NECESSARY_STRING);
- its loop receives one message at a time (`JobQueue.readMessage`) and exits when a receive finds none ("No
  messages in the queue"): ECS starts the service's task again, as it does here (tests/chaos/ds_run.py);
- with CHECK_IF_DONE_BOOL it lists the job's output folder (`remoteOut`) first and, if at least
  EXPECTED_NUMBER_FILES objects there are MIN_FILE_SIZE_BYTES or larger (and name NECESSARY_STRING), deletes the
  message and runs nothing;
- on success it uploads the outputs (three tries, as its `aws s3 mv` loop) and deletes the message; on failure it
  does not delete: `returnMessage` sets the message's visibility, and SQS moves it to the dead-letter queue once
  its receives pass the queue's maxReceiveCount (the redrive policy setup made);
- it keeps no heartbeat (upstream extends no visibility while a job runs), writes no failure record nor `_SUCCESS`
  marker, and any uncaught error (an AWS call that failed through botocore's retries) ends the process, as
  upstream's would: its message comes back after its visibility.

Where it differs, for the campaign's seconds-long runs: the receive waits CHAOS_DS_WAIT_SECONDS (upstream 20 s),
`returnMessage` uses CHAOS_DS_RETURN_VISIBILITY (upstream 60 s), there is no 30 s sleep before the upload, no s3fs
mount, no CloudWatch log stream per job (watchtower), and NECESSARY_STRING is looked for in the object's key
(upstream compares it with the object's size, a TypeError). The job's output folder follows DS's generic image:
APP_NAME/<job id> in AWS_BUCKET (operations/setup/job_locations.py), the job id being the group's `job_id`, else
its values joined by '-' in key order (DS's commented-out metadataID rule).

Its "program" is the group's `mode`, as tests/chaos/job.py's: ok (the outputs), sleep:S (S seconds, then ok), flaky
(fails on the message's first receive, by its ApproximateReceiveCount, then ok), fail (fails every time), hang
(sleeps CHAOS_DS_HANG_SECONDS, past the visibility timeout, then fails: its receipt is stale by then).
Standard library and boto3 only, as a DS image's worker.
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3

QUEUE_URL = os.environ["SQS_QUEUE_URL"]
AWS_BUCKET = os.environ["AWS_BUCKET"]
APP_NAME = os.environ["APP_NAME"]
CHECK_IF_DONE_BOOL = os.environ.get("CHECK_IF_DONE_BOOL", "False")
EXPECTED_NUMBER_FILES = int(os.environ.get("EXPECTED_NUMBER_FILES", "1"))
MIN_FILE_SIZE_BYTES = int(os.environ.get("MIN_FILE_SIZE_BYTES", "1"))
NECESSARY_STRING = os.environ.get("NECESSARY_STRING", "")
WAIT_SECONDS = int(os.environ.get("CHAOS_DS_WAIT_SECONDS", "20"))
RETURN_VISIBILITY = int(os.environ.get("CHAOS_DS_RETURN_VISIBILITY", "60"))
HANG_SECONDS = float(os.environ.get("CHAOS_DS_HANG_SECONDS", "3600"))
MOVE_TRIES = 3
FAIL_EXIT = 3  # the program's exit code on failure, as tests/chaos/job.py's


def job_id(group: dict) -> str:
    if isinstance(group.get("job_id"), str):
        return group["job_id"]
    return "-".join(str(group[key]) for key in sorted(group))


def remote_out(group: dict) -> str:
    return f"{APP_NAME}/{job_id(group)}"


def already_done(s3, prefix: str) -> bool:
    """generic-worker.py's CHECK_IF_DONE_BOOL test on the job's output folder."""
    listed = s3.list_objects(Bucket=AWS_BUCKET, Prefix=prefix + "/").get("Contents", [])
    counted = [item for item in listed if item["Size"] >= MIN_FILE_SIZE_BYTES
               and (not NECESSARY_STRING or NECESSARY_STRING in item["Key"])]
    return len(counted) >= EXPECTED_NUMBER_FILES


def program(mode: str, receives: int) -> int:
    """The job's program: its exit code (0 when its outputs are to be moved to S3)."""
    if mode == "fail" or (mode == "flaky" and receives <= 1):
        print("failing on purpose", flush=True)
        return FAIL_EXIT
    if mode == "hang":
        time.sleep(HANG_SECONDS)
        print("hung past the visibility timeout; failing", flush=True)
        return FAIL_EXIT
    if mode.startswith("sleep:"):
        time.sleep(float(mode[6:]))
    return 0


def move_outputs(s3, prefix: str, name: str) -> bool:
    """EXPECTED_NUMBER_FILES outputs to s3://AWS_BUCKET/prefix/, tried MOVE_TRIES times as upstream's move."""
    for attempt in range(1, MOVE_TRIES + 1):
        print(f"Move attempt #{attempt}", flush=True)
        try:
            for number in range(EXPECTED_NUMBER_FILES):
                s3.put_object(Bucket=AWS_BUCKET, Key=f"{prefix}/out-{number}.txt",
                              Body=f"{name} output {number}\n".encode())
            return True
        except Exception as error:  # noqa: BLE001 - upstream's bare except: printed, tried again
            print(f"Move failed: {error}", flush=True)
    return False


def run_something(s3, message: dict) -> str:
    body = json.loads(message["Body"])
    group = body["group"]
    prefix = remote_out(group)
    if CHECK_IF_DONE_BOOL.upper() == "TRUE" and already_done(s3, prefix):
        print("File not run due to > expected number of files", flush=True)
        return "SUCCESS"
    receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    mode = str(group.get("mode", "ok"))
    print(f"Running {job_id(group)} ({mode}, receive {receives})", flush=True)
    if program(mode, receives) != 0:
        print(f"PROBLEM: Failed exit condition for {job_id(group)}", flush=True)
        return "PROBLEM"
    if move_outputs(s3, prefix, job_id(group)):
        print("SUCCESS", flush=True)
        return "SUCCESS"
    print(f"SYNC PROBLEM. Giving up on trying to sync {job_id(group)}", flush=True)
    return "PROBLEM"


def main() -> int:
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    while True:
        # upstream asks for no attribute; the flaky program needs its receive count
        response = sqs.receive_message(QueueUrl=QUEUE_URL, WaitTimeSeconds=WAIT_SECONDS,
                                       AttributeNames=["ApproximateReceiveCount"])
        messages = response.get("Messages", [])
        if not messages:
            print("No messages in the queue", flush=True)
            return 0
        message = messages[0]
        if run_something(s3, message) == "SUCCESS":
            print("Batch completed successfully.", flush=True)
            sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
        else:
            print("Returning message to the queue.", flush=True)
            sqs.change_message_visibility(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=RETURN_VISIBILITY)


if __name__ == "__main__":
    print("Worker started", flush=True)
    code = main()
    print("Worker finished", flush=True)
    sys.exit(code)
