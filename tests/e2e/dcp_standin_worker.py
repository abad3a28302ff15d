"""A stand-in for Distributed-CellProfiler's worker (worker/cp-worker.py at 17388b3), for the DCP user's first hour.

It knows nothing of this project. It reads what cp-worker.py reads, the way it reads it: the variables of lines
17-57 (SOURCE_BUCKET, DESTINATION_BUCKET, WORKSPACE_BUCKET defaulting as there), one message at a time (lines
72-79, a shorter wait), the message's top-level `Metadata`, `output_structure`, `output`, `data_file` and
`pipeline` (lines 125-163: the output folder is output_structure with each Metadata name replaced by its value),
the load-data file and the pipeline from WORKSPACE_BUCKET (lines 185-206). In place of CellProfiler it writes one
file, Image.csv, under s3://DESTINATION_BUCKET/<output>/<metadataID>/ (line 326's destination), then deletes the
message (line 379) and exits once the queue is empty (lines 384-386). Like cp-worker.py it catches nothing of its
own: a message without those keys stops it with a KeyError.
"""

import json
import os
import posixpath
import sys

import boto3

QUEUE_URL = os.environ["SQS_QUEUE_URL"]
AWS_BUCKET = os.environ["AWS_BUCKET"]
SOURCE_BUCKET = os.environ.get("SOURCE_BUCKET", AWS_BUCKET)
DESTINATION_BUCKET = os.environ.get("DESTINATION_BUCKET", AWS_BUCKET)
WORKSPACE_BUCKET = os.environ.get("WORKSPACE_BUCKET", SOURCE_BUCKET)
LOG_GROUP_NAME = os.environ["LOG_GROUP_NAME"]
WAIT_SECONDS = 1  # cp-worker.py waits 20 s for a message before it decides the queue is empty


def metadata_id(message: dict) -> str:
    if message["output_structure"] == "":
        return "-".join(item.split("=")[1] for item in message["Metadata"].split(","))
    found = message["output_structure"]
    for item in message["Metadata"].split(","):
        name, value = item.split("=")
        found = found.replace(name, value)
    return found


def run(message: dict, s3) -> None:
    folder = metadata_id(message)
    pipeline = s3.get_object(Bucket=WORKSPACE_BUCKET, Key=message["pipeline"])["Body"].read()
    load_data = s3.get_object(Bucket=WORKSPACE_BUCKET, Key=message["data_file"])["Body"].read()
    result = f"{message['Metadata']}: pipeline {len(pipeline)} bytes, load data {len(load_data)} bytes\n"
    s3.put_object(Bucket=DESTINATION_BUCKET, Key=posixpath.join(message["output"], folder, "Image.csv"),
                  Body=result.encode())


def main() -> int:
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    while True:
        answer = sqs.receive_message(QueueUrl=QUEUE_URL, WaitTimeSeconds=WAIT_SECONDS)
        if "Messages" not in answer:
            print("No messages in the queue")
            return 0
        message = answer["Messages"][0]
        run(json.loads(message["Body"]), s3)
        sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
        print("Batch completed successfully.")


if __name__ == "__main__":
    sys.exit(main())
