"""A stand-in for a DS image's own worker (Distributed-Something's generic worker), for the tests of DS image mode.

It knows nothing of this project: it reads exactly the variables DS's run.py writes into the task definition, by
DS's names and in DS's text forms, plus MY_THREADS, the variable DS's example config.py declares under "PUT
ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE" (its program's setting, which reaches it as an environment
variable). Like DS's generic worker it takes one job at a time from SQS_QUEUE_URL, runs it, puts its output in
AWS_BUCKET, deletes the message, and exits 0 once the queue has nothing left.

Its "program" writes s3://AWS_BUCKET/APP_NAME/<job id>/result.txt holding MY_THREADS and logs one line to the
job's stream in LOG_GROUP_NAME (the job id is the group's values joined by '-', DS's rule).

One file, two uses: tests/integration/test_ds_config.py runs it as a script against the in-process moto server,
and tests/container/ds_standin/Dockerfile makes it the entrypoint of a stand-in DS image (boto3 is its only
dependency).
"""

import json
import os
import sys
import time

import boto3

# DS's variables, every one required: a missing name is a KeyError and a number in the wrong form a ValueError,
# so a task definition that does not carry them as DS's run.py does stops the worker before any job.
REGION = os.environ["AWS_REGION"]
APP_NAME = os.environ["APP_NAME"]
QUEUE_URL = os.environ["SQS_QUEUE_URL"]
BUCKET = os.environ["AWS_BUCKET"]
DOCKER_CORES = int(os.environ["DOCKER_CORES"])
LOG_GROUP_NAME = os.environ["LOG_GROUP_NAME"]
CHECK_IF_DONE = os.environ["CHECK_IF_DONE_BOOL"].upper() == "TRUE"  # DS compares the text: 'True', 'False'
EXPECTED_NUMBER_FILES = int(os.environ["EXPECTED_NUMBER_FILES"])
ECS_CLUSTER = os.environ["ECS_CLUSTER"]
SECONDS_TO_START = int(os.environ["SECONDS_TO_START"])
MIN_FILE_SIZE_BYTES = int(os.environ["MIN_FILE_SIZE_BYTES"])
NECESSARY_STRING = os.environ["NECESSARY_STRING"]
MY_THREADS = os.environ["MY_THREADS"]  # the user's variable, read by the user's program

# DS waits 20 s for a message before it decides the queue is empty; 1 s keeps the tests short.
WAIT_SECONDS = 1


def job_id(group: dict) -> str:
    return "-".join(str(group[key]) for key in sorted(group))


def run_job(s3, logs, message: dict) -> None:
    job = job_id(json.loads(message["Body"])["group"])
    s3.put_object(Bucket=BUCKET, Key=f"{APP_NAME}/{job}/result.txt", Body=MY_THREADS.encode())
    logs.create_log_stream(logGroupName=LOG_GROUP_NAME, logStreamName=job)
    logs.put_log_events(logGroupName=LOG_GROUP_NAME, logStreamName=job, logEvents=[
        {"timestamp": int(time.time() * 1000), "message": f"ran {job} with MY_THREADS={MY_THREADS}"}])
    print(f"done: {job}", flush=True)


def main() -> int:
    # The example config leaves CHECK_IF_DONE_BOOL 'False'; a test that turns it on needs DS's done check written
    # here (what EXPECTED_NUMBER_FILES, MIN_FILE_SIZE_BYTES and NECESSARY_STRING are for).
    if CHECK_IF_DONE:
        print("CHECK_IF_DONE_BOOL is True: the stand-in does not implement DS's done check", file=sys.stderr)
        return 2
    # DS's run-worker.sh starts DOCKER_CORES of these loops SECONDS_TO_START apart (180 s in the example); the
    # stand-in is one loop, as DS's generic-worker.py is.
    print(f"{APP_NAME} on {ECS_CLUSTER} in {REGION}: queue {QUEUE_URL}, bucket {BUCKET}, log group {LOG_GROUP_NAME}"
          f" ({DOCKER_CORES} cores, {SECONDS_TO_START} s apart)", flush=True)
    session = boto3.session.Session(region_name=REGION)  # AWS_REGION, as run-worker.sh configures the AWS CLI
    sqs, s3, logs = session.client("sqs"), session.client("s3"), session.client("logs")
    while True:
        messages = sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=1,
                                       WaitTimeSeconds=WAIT_SECONDS).get("Messages", [])
        if not messages:
            print("no messages in the queue", flush=True)
            return 0
        run_job(s3, logs, messages[0])
        sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=messages[0]["ReceiptHandle"])


if __name__ == "__main__":
    sys.exit(main())
