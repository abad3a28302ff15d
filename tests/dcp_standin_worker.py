"""A stand-in for Distributed-CellProfiler's worker, for the tests of the task role's rights in DS image mode.

It makes the AWS calls DCP's worker makes for each job, in its order, from the variables DCP's run.py writes into
the task definition: DistributedScience/Distributed-CellProfiler at commit 17388b3, worker/run-worker.sh (step 2,
the s3fs mount of SOURCE_BUCKET when DOWNLOAD_FILES is 'False') and worker/cp-worker.py (`runCellProfiler`, `main`).
What s3fs and CellProfiler do through the mount is done here with the S3 calls s3fs makes for them: a listing per
folder read, a GetObject per file read. CellProfiler itself is replaced by writing one file per image read.

Each AWS error ends the worker with exit 3 and the error on stderr, where DCP's worker would log the job as failed
and return its message: the tests want the first refusal, not a queue retried until it dead-letters.
"""

import contextlib
import csv
import io
import json
import os
import posixpath
import sys
import time

import boto3
import botocore.exceptions

DATA_ROOT = "/home/ubuntu/bucket"
QUEUE_URL = os.environ["SQS_QUEUE_URL"]
AWS_BUCKET = os.environ["AWS_BUCKET"]
SOURCE_BUCKET = os.environ.get("SOURCE_BUCKET", AWS_BUCKET)
DESTINATION_BUCKET = os.environ.get("DESTINATION_BUCKET", AWS_BUCKET)
WORKSPACE_BUCKET = os.environ.get("WORKSPACE_BUCKET", SOURCE_BUCKET)
UPLOAD_FLAGS = os.environ.get("UPLOAD_FLAGS", "").split()
LOG_GROUP_NAME = os.environ["LOG_GROUP_NAME"]
CHECK_IF_DONE_BOOL = os.environ["CHECK_IF_DONE_BOOL"]
EXPECTED_NUMBER_FILES = int(os.environ["EXPECTED_NUMBER_FILES"])
DOWNLOAD_FILES = os.environ.get("DOWNLOAD_FILES", "False")
MOUNTED = DOWNLOAD_FILES == "False"  # run-worker.sh's test


def metadata_id(message: dict) -> tuple[str, str]:
    """(Metadata, metadataID) as cp-worker.py derives them for a string Metadata."""
    metadata = message["Metadata"]
    structure = message.get("output_structure", "")
    if structure:
        for pair in metadata.split(","):
            name, value = pair.split("=")
            structure = structure.replace(name, value)
        return metadata, structure
    return metadata, "-".join(pair.split("=")[1] for pair in metadata.split(","))


def list_folder(s3, prefix: str) -> list[str]:
    """s3fs reading a folder of the mount: one delimited listing."""
    page = s3.list_objects_v2(Bucket=SOURCE_BUCKET, Prefix=prefix, Delimiter="/")
    return [item["Key"] for item in page.get("Contents", ())] + [p["Prefix"] for p in page.get("CommonPrefixes", ())]


def run_job(s3, logs, message: dict) -> None:
    if MOUNTED:  # "List the directories in the bucket- this prevents a strange s3fs error"
        for entry in list_folder(s3, ""):
            if entry.endswith("/"):
                # os.system(f'ls {subDirName}'): its failure is not looked at
                with contextlib.suppress(botocore.exceptions.ClientError):
                    list_folder(s3, entry)
    metadata, job = metadata_id(message)
    remote_out = posixpath.join(message["output"], job)
    logs.create_log_stream(logGroupName=LOG_GROUP_NAME, logStreamName=job)  # watchtower, create_log_group=False
    if CHECK_IF_DONE_BOOL.upper() == "TRUE":
        done = s3.list_objects(Bucket=DESTINATION_BUCKET, Prefix=f"{remote_out}/").get("Contents", [])
        if len(done) >= EXPECTED_NUMBER_FILES:
            return
    data_file = s3.get_object(Bucket=WORKSPACE_BUCKET, Key=message["data_file"])["Body"].read().decode()
    s3.get_object(Bucket=WORKSPACE_BUCKET, Key=message["pipeline"])["Body"].read()
    # CellProfiler -i DATA_ROOT/input: its default input folder, opened through the mount
    if MOUNTED:
        list_folder(s3, message["input"].rstrip("/") + "/")
    # --data-file: the rows of this job's group, each image read from the mount (or downloaded, DOWNLOAD_FILES)
    wanted = dict(pair.split("=") for pair in metadata.split(","))
    rows = [row for row in csv.DictReader(io.StringIO(data_file))
            # CellProfiler matches the example's Metadata_Position=2 to the CSV's 002: as numbers
            if all(row.get(name, "").lstrip("0") == value.lstrip("0") for name, value in wanted.items())]
    outputs = {}
    for row in rows:
        for column in (name for name in row if name.startswith("FileName_")):
            key = posixpath.join(row["PathName_" + column[len("FileName_"):]], row[column])[len(DATA_ROOT) + 1:]
            outputs[row[column] + ".measured"] = s3.get_object(Bucket=SOURCE_BUCKET, Key=key)["Body"].read()
    # aws s3 mv localOut s3://DESTINATION_BUCKET/remoteOut --recursive UPLOAD_FLAGS
    extra = {"ACL": UPLOAD_FLAGS[UPLOAD_FLAGS.index("--acl") + 1]} if "--acl" in UPLOAD_FLAGS else {}
    for name, body in sorted(outputs.items()):
        s3.put_object(Bucket=DESTINATION_BUCKET, Key=f"{remote_out}/{name}", Body=body, **extra)
    logs.put_log_events(logGroupName=LOG_GROUP_NAME, logStreamName=job, logEvents=[
        {"timestamp": int(time.time() * 1000), "message": f"SUCCESS: {len(outputs)} images"}])


def main() -> int:
    session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
    sqs, s3, logs = session.client("sqs"), session.client("s3"), session.client("logs")
    while True:
        messages = sqs.receive_message(QueueUrl=QUEUE_URL, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            print("No messages in the queue", flush=True)
            return 0
        message = json.loads(messages[0]["Body"])
        # DCP's run.py sends each group's Metadata at the top of the message; this project's submit sends it
        # under "group" (DS's shape). Read either, so the test is about the rights.
        message.setdefault("Metadata", message.get("group", {}).get("Metadata"))
        try:
            run_job(s3, logs, message)
        except botocore.exceptions.ClientError as error:
            print(f"{error.operation_name}: {error.response['Error']['Code']}: {error}", file=sys.stderr, flush=True)
            return 3
        sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=messages[0]["ReceiptHandle"])
        print(f"done: {message['Metadata']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
