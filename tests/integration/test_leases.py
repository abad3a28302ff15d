"""A running job holds a busy lease the monitor can read; the lease is gone when the job ends."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from chalicelib import aws, leases
from chalicelib import aws as clients
from tests.conftest import make_settings
from tests.worker_world import make_world, s3_keys, send_jobs
from worker.options import WorkerOptions
from worker.worker import Outcome, Worker

# The command itself asks the (shared) moto server what the monitor would see while it runs.
SEE_LEASES = """
import json, sys, boto3
from datetime import datetime, timezone
sys.path.insert(0, sys.argv[3])
from chalicelib import leases
s3 = boto3.client("s3", region_name="us-east-1")
busy = leases.busy_jobs_by_instance(s3, sys.argv[1], "TestApp", datetime.now(timezone.utc))
keys = [item["Key"] for item in s3.list_objects_v2(Bucket=sys.argv[1], Prefix=leases.prefix("TestApp")).get("Contents", [])]
open(sys.argv[2] + "/seen.json", "w").write(json.dumps({"busy": busy, "keys": keys}))
"""


def test_a_running_job_marks_its_machine_busy_and_the_mark_goes_with_the_job(moto_server, tmp_path):
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "see_leases.py"
    script.write_text(SEE_LEASES)
    settings = make_settings(COMMAND=[sys.executable, str(script), "{AWS_BUCKET}", "{output_dir}", repo])
    sqs, s3, logs = aws.client("sqs"), aws.client("s3"), aws.client("logs")
    make_world(sqs, s3, settings)
    job = send_jobs(sqs, sqs.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)["QueueUrl"], settings,
                    [{"plate": "P1"}])[0]
    worker = Worker(settings, sqs=sqs, s3=s3, logs=logs,
                    options=WorkerOptions(metadata_url="", wait_seconds=1, instance_id="i-0abc"))

    assert worker.run_once() is Outcome.SUCCEEDED

    seen = json.loads(s3.get_object(Bucket=settings.AWS_BUCKET, Key=f"{job.output_prefix}/seen.json")["Body"].read())
    assert seen["busy"] == {"i-0abc": 1}
    assert len(seen["keys"]) == 1 and seen["keys"][0].startswith("runs/TestApp/leases/i-0abc/")
    assert s3_keys(s3, settings.AWS_BUCKET, leases.prefix("TestApp")) == []


def test_stale_leases_stop_counting(aws):
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="lease-bucket")
    lease = leases.Lease(s3, "lease-bucket", "App", "i-1", "w1")
    lease.hold("job-1")
    now = datetime.now(timezone.utc)
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", now) == {"i-1": 1}
    later = datetime.fromtimestamp(now.timestamp() + leases.STALE_AFTER_SECONDS + 60, timezone.utc)
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", later) == {}
    lease.release()
    assert leases.busy_jobs_by_instance(s3, "lease-bucket", "App", now) == {}
