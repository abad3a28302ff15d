"""DS's and DCP's monitor file read as each version of their run.py writes it, and nothing else taken: a file
that is not one is one line naming the file and what was expected; a run record of ours is left to its reader."""

from __future__ import annotations

import pytest

from chalicelib.model.errors import UserError
from operations.adopt.dsmonitorfile import MAX_BYTES, DSMonitorFile, read
from tests.integration.ds_world import MONITOR_FILE_WRITERS

DS = {"MONITOR_FLEET_ID": "sfr-9f3c2a10-1111-4e2e-9a0b-0123456789ab", "MONITOR_APP_NAME": "DistributedCP",
      "MONITOR_ECS_CLUSTER": "default", "MONITOR_QUEUE_NAME": "DistributedCPQueue",
      "MONITOR_BUCKET_NAME": "your-bucket-name", "MONITOR_LOG_GROUP_NAME": "DistributedCP",
      "MONITOR_START_TIME": "1765000000000", "CLEAN_DASHBOARD": "True"}
READ = DSMonitorFile(MONITOR_FLEET_ID=DS["MONITOR_FLEET_ID"], MONITOR_APP_NAME="DistributedCP",
                     MONITOR_ECS_CLUSTER="default", MONITOR_QUEUE_NAME="DistributedCPQueue",
                     MONITOR_BUCKET_NAME="your-bucket-name", MONITOR_LOG_GROUP_NAME="DistributedCP",
                     MONITOR_START_TIME=1765000000000, CLEAN_DASHBOARD=True)


def written(tmp_path, text: str | bytes):
    path = tmp_path / "DistributedCPSpotFleetRequestId.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refusal(path) -> str:
    with pytest.raises(UserError) as raised:
        read(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize("writer, clean", [("DS d1d6e62", True), ("DCP 17388b3", True), ("DS f150def", False)])
def test_each_upstream_version_is_read_as_it_writes_the_file(tmp_path, writer, clean):
    assert read(written(tmp_path, MONITOR_FILE_WRITERS[writer](DS))) == DSMonitorFile(
        **{**READ.__dict__, "CLEAN_DASHBOARD": clean})


def test_ds_files_line_after_the_object_is_its_last_member(tmp_path):
    text = MONITOR_FILE_WRITERS["DS d1d6e62"]({**DS, "CLEAN_DASHBOARD": "False"})
    assert text.endswith('"}\n"CLEAN_DASHBOARD" : "False"}\n')
    assert read(written(tmp_path, text)).CLEAN_DASHBOARD is False
    assert read(written(tmp_path, text.replace("\n", "\r\n"))).CLEAN_DASHBOARD is False  # written on Windows


def test_a_run_record_of_ours_is_left_to_its_reader(tmp_path):
    assert read(written(tmp_path, '{"MONITOR_APP_NAME": "A", "QUEUE_URL": "https://q", "VERSION": 1}')) is None


DS_TODAY = MONITOR_FILE_WRITERS["DS d1d6e62"](DS)
DCP_TODAY = MONITOR_FILE_WRITERS["DCP 17388b3"](DS)
AFTER = ('invalid JSON at line 8 column 1: text after the JSON object (the only line DS\'s run.py writes after it '
         'is "CLEAN_DASHBOARD" : "True"} or "False"})')


@pytest.mark.parametrize("text, problem", [
    # DCP's f99af21 (three weeks of 2023) wrote no comma before its last line
    (DCP_TODAY.replace('",\n"CLEAN_DASHBOARD"', '"\n"CLEAN_DASHBOARD"'),
     "invalid JSON at line 8 column 1: Expecting ',' delimiter"),
    (DS_TODAY + '{"MONITOR_QUEUE_NAME" : "prod-orders"}\n', AFTER),
    (DS_TODAY.replace('"CLEAN_DASHBOARD" : "True"}', '"MONITOR_QUEUE_NAME" : "prod-orders"}'), AFTER),
    (DS_TODAY.replace('"CLEAN_DASHBOARD" : "True"}', '"CLEAN_DASHBOARD" : "True", "X" : "1"}'), AFTER),
    (DCP_TODAY.replace("}\n", '}\n"CLEAN_DASHBOARD" : "False"}\n'), AFTER.replace("line 8", "line 9")),  # twice
    (DS_TODAY.replace('"CLEAN_DASHBOARD" : "True"}', '"CLEAN_DASHBOARD" : NaN}'), AFTER),
    (DCP_TODAY.replace('"MONITOR_ECS_CLUSTER"', '"MONITOR_QUEUE_NAME" : "prod-orders",\n"MONITOR_ECS_CLUSTER"'),
     "MONITOR_QUEUE_NAME: expected each key once in an object, got this key twice (only the last value would be "
     "kept)"),
    (DCP_TODAY.replace('"1765000000000"', "1e400"),
     "MONITOR_START_TIME: expected a number JSON readers can hold, got 1e400 (beyond a 64-bit float: it would be "
     "read as Infinity)"),
    (DCP_TODAY.replace('"1765000000000"', "1765000000000"),
     "MONITOR_START_TIME: expected a string (run.py writes each value in quotes), got 1765000000000"),
    (DCP_TODAY.replace('"1765000000000"', '"yesterday"'),
     "MONITOR_START_TIME: expected milliseconds since 1970, got 'yesterday'"),
    (DCP_TODAY.replace('"DistributedCPQueue"', '"https://sqs.us-east-1.amazonaws.com/1/prod-orders"'),
     "MONITOR_QUEUE_NAME: expected a queue name (SQS_QUEUE_NAME: 1 to 80 letters, digits, - or _), got "
     "'https://sqs.us-east-1.amazonaws.com/1/pr'"),
    (DCP_TODAY.replace(DS["MONITOR_FLEET_ID"], "fleet-9f3c2a10-1111-4e2e-9a0b-0123456789ab"),
     "MONITOR_FLEET_ID: expected a spot fleet request id (sfr-...), got 'fleet-9f3c2a10-1111-4e2e-9a0b-0123456789'"),
    (DCP_TODAY.replace('"CLEAN_DASHBOARD" : "True"', '"CLEAN_DASHBOARD" : "yes"'),
     "CLEAN_DASHBOARD: expected 'True' or 'False', got 'yes'"),
    (DCP_TODAY.replace('"MONITOR_ECS_CLUSTER" : "default",\n', ""),
     "not a complete Distributed-Something monitor file: missing key(s) MONITOR_ECS_CLUSTER"),
    ('{"MONITOR_FLEET_ID": "sfr-1", "SQS_QUEUE_URL": "https://q"}',
     "neither a run record of this project nor a monitor file of Distributed-Something or Distributed-CellProfiler: "
     "unexpected key(s) 'SQS_QUEUE_URL'; expected the keys MONITOR_FLEET_ID, MONITOR_APP_NAME, MONITOR_ECS_CLUSTER, "
     "MONITOR_QUEUE_NAME, MONITOR_BUCKET_NAME, MONITOR_LOG_GROUP_NAME, MONITOR_START_TIME, CLEAN_DASHBOARD"),
    ("null", "neither a run record of this project nor a monitor file of Distributed-Something or "
             "Distributed-CellProfiler: expected a JSON object"),
    ("[" * 30_000 + "]" * 30_000, "JSON nested too deeply"),
    (b"\xff\xfe{}", "expected UTF-8 JSON text"),
    (DCP_TODAY + " " * MAX_BYTES, "neither a run record of this project nor a monitor file of Distributed-Something "
                                  "or Distributed-CellProfiler: expected at most 64 KiB, the file is larger"),
])
def test_anything_else_is_one_line_naming_the_file(tmp_path, text, problem):
    assert refusal(written(tmp_path, text)) == problem


def test_a_missing_file_is_one_line(tmp_path):
    assert refusal(tmp_path / "none.json") == "file not found"
