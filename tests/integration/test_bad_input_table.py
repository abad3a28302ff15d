"""Hand-written bad inputs through `cli.py`, end to end: each gives its exact one-line error and exit 2.

Config, job and fleet files as users get them wrong, plus what goes wrong
before a file is even read (missing, a directory, not JSON, not UTF-8). The
account is ready (setup done, the fleet file otherwise valid), so the only
reason for each failure is the bad input; after each, moto holds no message
and no fleet: nothing was half-done. (tests/unit/test_settings.py, test_jobs.py
and test_fleet.py check the parsers themselves; this table checks what a user
sees at the command line.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from tests.conftest import BASE_CONFIG
from tests.integration.world import Account

GOOD_JOBS = {"groups": [{"plate": "P1"}, {"plate": "P2"}]}
DEEP = "[" * 100_000 + "]" * 100_000


DROP = object()  # config(KEY=DROP): the key left out


def config(**changes):
    return json.dumps({key: value for key, value in {**BASE_CONFIG, **changes}.items() if value is not DROP})

# (name, command, {file name: content (str, bytes, dict/list as JSON, or a directory)}, expected stderr)
# The command's files are config.json, jobs.json and fleet.json in the current folder, unless the case writes others.
CASES = [
    # --- config.json
    ("config missing", ["setup", "--config", "nope.json"], {}, "error: nope.json: file not found"),
    ("config is a directory", ["setup", "--config", "conf.d"], {"conf.d": "DIR"},
     "error: conf.d: expected a file, found a directory"),
    ("config invalid JSON", ["setup"], {"config.json": '{"APP_NAME": "A",}'},
     "error: config.json: invalid JSON at line 1 column 18: Expecting property name enclosed in double quotes"),
    ("config not UTF-8", ["setup"], {"config.json": b'{"APP_NAME": "\xff"}'},
     "error: config.json: expected UTF-8 JSON text"),
    ("config nested too deeply", ["setup"], {"config.json": DEEP}, "error: config.json: JSON nested too deeply"),
    ("config is a list", ["setup"], {"config.json": "[1, 2]"},
     "error: config.json: expected a JSON object of settings, got list"),
    ("config empty file", ["setup"], {"config.json": ""},
     "error: config.json: invalid JSON at line 1 column 1: Expecting value"),
    ("config without APP_NAME", ["setup"], {"config.json": config(APP_NAME=DROP)},
     "error: config.json: missing required key 'APP_NAME' (Ties the run's queue, cluster service, task definition, "
     "logs, alarms and dashboard together)"),
    ("config APP_NAME that could collide with another run's alarms", ["setup"],
     {"config.json": config(APP_NAME="Run_i-x")},
     "error: config.json: APP_NAME: expected a name that neither starts with 'i-' nor holds '_i-' (each machine's "
     "alarm is APP_NAME_<instance id>: this name could be, or start like, another run's alarm), got \"Run_i-x\""),
    ("config key misspelt", ["setup"], {"config.json": config(CLUSTER_MACHINE=3)},
     "error: unknown key 'CLUSTER_MACHINE' in config.json; did you mean 'CLUSTER_MACHINES'?"),
    ("config key lower case", ["setup"], {"config.json": config(app_name="x")},
     "error: unknown key 'app_name' in config.json; did you mean 'APP_NAME'?"),
    ("config count as text", ["setup"], {"config.json": config(CLUSTER_MACHINES="two")},
     'error: config.json: CLUSTER_MACHINES: expected an integer >= 1, got "two"'),
    ("config boolean as yes", ["setup"], {"config.json": config(CREATE_DASHBOARD="yes")},
     'error: config.json: CREATE_DASHBOARD: expected true or false (or the string "True"/"False"), got "yes"'),
    ("config machine type without a size", ["setup"], {"config.json": config(MACHINE_TYPE=["m5"])},
     'error: config.json: MACHINE_TYPE: expected a list of instance types such as ["m5.xlarge"], or [] for every type '
     'that fits the tasks, got ["m5"]'),
    ("config machine type as text", ["setup"], {"config.json": config(MACHINE_TYPE="m5.large")},
     'error: config.json: MACHINE_TYPE: expected a list of instance types such as ["m5.xlarge"], or [] for every type '
     'that fits the tasks, got "m5.large"'),
    ("config GPUs per task negative", ["setup"], {"config.json": config(GPUS_PER_TASK=-1)},
     "error: config.json: GPUS_PER_TASK: expected an integer >= 0, got -1"),
    ("config empty command", ["setup"], {"config.json": config(COMMAND=[])},
     'error: config.json: COMMAND: expected a non-empty list of strings such as ["python", "/app/run.py", "{plate}"], '
     'got []'),
    ("config command as a shell line", ["setup"], {"config.json": config(COMMAND="python run.py {plate}")},
     'error: config.json: COMMAND: expected a non-empty list of strings such as ["python", "/app/run.py", "{plate}"], '
     'got "python run.py {plate}"'),
    ("config placeholder with attribute", ["setup"], {"config.json": config(COMMAND=["run", "{plate.__class__}"])},
     'error: config.json: COMMAND: expected plain placeholder names like {plate}, not {plate.__class__}, got ["run", '
     '"{plate.__class__}"]'),
    ("config environment sets AWS key", ["setup"],
     {"config.json": config(ENVIRONMENT={"AWS_SECRET_ACCESS_KEY": "x"})},
     "error: config.json: ENVIRONMENT: expected no variable starting with AWS_ or DSR_ (reserved: AWS credentials come "
     "from the task role, never from the config), got 'AWS_SECRET_ACCESS_KEY'"),
    ("config output prefix uses output_dir", ["setup"], {"config.json": config(OUTPUT_PREFIX="{output_dir}")},
     "error: config.json: OUTPUT_PREFIX: expected an S3 prefix template; {output_dir} and {input_dir} are local "
     "folders, usable only in COMMAND"),
    ("config requires inputs but has no prefix", ["setup"], {"config.json": config(REQUIRE_INPUTS=True)},
     "error: config.json: REQUIRE_INPUTS: true needs INPUT_PREFIX (the prefix a job's inputs must be under); set "
     "INPUT_PREFIX or leave REQUIRE_INPUTS false"),
    ("config count Infinity", ["setup"],
     {"config.json": config(DOCKER_CORES=DROP)[:-1] + ', "DOCKER_CORES": Infinity}'},
     "error: config.json: DOCKER_CORES: expected a number JSON allows, got Infinity (JSON has no NaN or Infinity)"),
    ("config count NaN", ["setup"], {"config.json": config(JOB_RETRIES=DROP)[:-1] + ', "JOB_RETRIES": NaN}'},
     "error: config.json: JOB_RETRIES: expected a number JSON allows, got NaN (JSON has no NaN or Infinity)"),
    ("config key twice", ["setup"], {"config.json": config()[:-1] + ', "APP_NAME": "Other"}'},
     "error: config.json: APP_NAME: expected each key once in an object, got this key twice (only the last value "
     "would be kept)"),
    ("config price negative", ["setup"], {"config.json": config(MACHINE_PRICE=-1)},
     "error: config.json: MACHINE_PRICE: expected a positive number, got -1"),
    ("config region unknown", ["local", "jobs.json"], {"config.json": config(AWS_REGION="us-east-9")},
     'error: config.json: AWS_REGION: expected a region AWS has, such as us-east-1 (nearest: us-east-2, us-east-1), '
     'got "us-east-9"'),
    ("status of a bucket that does not exist", ["status"], {"config.json": config(AWS_BUCKET="no-such-bucket")},
     "error: the bucket does not exist (GetObject: The specified bucket does not exist); check AWS_BUCKET and "
     "AWS_REGION in the config, or create the bucket"),
    ("plan of a bucket that does not exist", ["plan"], {"config.json": config(AWS_BUCKET="no-such-bucket")},
     "error: the bucket does not exist (GetObject: The specified bucket does not exist); check AWS_BUCKET and "
     "AWS_REGION in the config, or create the bucket"),
    # --- jobs.json (submit)
    ("jobs missing", ["submit", "missing.json"], {}, "error: missing.json: file not found"),
    ("jobs is a directory", ["submit", "jobs"], {"jobs": "DIR"}, "error: jobs: expected a file, found a directory"),
    ("jobs invalid JSON", ["submit", "jobs.json"], {"jobs.json": '{"groups": [{"plate": "P1"},]}'},
     "error: jobs.json: invalid JSON at line 1 column 29: Expecting value"),
    ("jobs is a list", ["submit", "jobs.json"], {"jobs.json": [{"plate": "P1"}]},
     "error: jobs.json: expected a JSON object with a 'groups' list, got list"),
    ("jobs without groups", ["submit", "jobs.json"], {"jobs.json": {"plate": "P1"}},
     "error: jobs.json: missing key 'groups' (the list of jobs)"),
    ("jobs groups is an object", ["submit", "jobs.json"], {"jobs.json": {"groups": {"plate": "P1"}}},
     "error: jobs.json: groups: expected a list of objects, got dict"),
    ("jobs groups empty", ["submit", "jobs.json"], {"jobs.json": {"groups": []}},
     "error: jobs.json: groups: expected at least one job, got an empty list"),
    ("jobs a group is text", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P1"}, "P2"]}},
     "error: jobs.json: groups[1]: expected an object of job values, got str"),
    ("jobs reserved key group", ["submit", "jobs.json"], {"jobs.json": {"group": 1, "groups": [{"plate": "P1"}]}},
     "error: jobs.json: group: reserved top-level key (each message carries its group under it)"),
    ("jobs placeholder missing", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P1"}, {"well": "A1"}]}},
     "error: jobs.json: groups[1]: missing key 'plate' used as {plate} in COMMAND; add it to the group or to the top "
     "level"),
    ("jobs duplicate ids", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P1"}, {"plate": "P1"}]}},
     "error: jobs.json: groups[1]: job id 'P1' is also the id of groups[0]; job ids must be unique (set 'job_id' in "
     "the group)"),
    ("jobs value .. makes no id", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": ".."}]}},
     "error: jobs.json: groups[0]: cannot make a job id from this group's values; add a 'job_id'"),
    ("jobs prefix escapes with ..", ["submit", "jobs.json"],
     {"config.json": config(OUTPUT_PREFIX="out/{plate}"), "jobs.json": {"groups": [{"plate": "../x", "job_id": "x"}]}},
     "error: jobs.json: groups[0]: OUTPUT_PREFIX renders to 'out/../x'; expected a relative S3 prefix without empty, "
     "'.' or '..' parts"),
    ("jobs prefix absolute", ["submit", "jobs.json"],
     {"config.json": config(OUTPUT_PREFIX="{plate}"), "jobs.json": {"groups": [{"plate": "/etc"}]}},
     "error: jobs.json: groups[0]: OUTPUT_PREFIX renders to '/etc'; expected a relative S3 prefix without empty, '.' "
     "or '..' parts"),
    ("jobs message too large", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P" * 300_000}]}},
     "error: jobs.json: groups[0]: message is 300024 bytes, over the limit of 262056 (SQS's 262144 less 88 for the "
     "run's message attribute); keep large data in S3 and pass its key"),
    ("jobs bad job_id", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P1", "job_id": "a/b"}]}},
     'error: jobs.json: groups[0]: job_id: expected 1 to 200 letters, digits, \'.\', \'-\' or \'_\' (no \'..\'), got '
     '"a/b"'),
    ("jobs not UTF-8", ["submit", "jobs.json"], {"jobs.json": b'{"groups": [{"plate": "\xfe"}]}'},
     "error: jobs.json: expected UTF-8 JSON text"),
    # what Python's JSON reader takes and JSON does not: refused at the file, with the place in it
    ("jobs NaN value", ["submit", "jobs.json"], {"jobs.json": '{"groups": [{"plate": "P1"}, {"plate": NaN}]}'},
     "error: jobs.json: groups[1].plate: expected a number JSON allows, got NaN (JSON has no NaN or Infinity)"),
    ("jobs -Infinity shared value", ["submit", "jobs.json"],
     {"jobs.json": '{"scale": -Infinity, "groups": [{"plate": "P1"}]}'},
     "error: jobs.json: scale: expected a number JSON allows, got -Infinity (JSON has no NaN or Infinity)"),
    ("jobs number beyond a double", ["submit", "jobs.json"], {"jobs.json": '{"groups": [{"plate": 1e400}]}'},
     "error: jobs.json: groups[0].plate: expected a number JSON readers can hold, got 1e400 (beyond a 64-bit "
     "float: it would be read as Infinity)"),
    ("jobs 5000-digit integer", ["submit", "jobs.json"], {"jobs.json": '{"groups": [{"plate": %s}]}' % ("9" * 5000)},
     "error: jobs.json: groups[0].plate: expected an integer of at most 20 digits, got one of 5,000 digits (write a "
     "longer number in quotes, as text)"),
    ("jobs 21-digit integer", ["submit", "jobs.json"], {"jobs.json": '{"groups": [{"plate": -%s}]}' % ("1" * 21)},
     "error: jobs.json: groups[0].plate: expected an integer of at most 20 digits, got one of 21 digits (write a "
     "longer number in quotes, as text)"),
    ("jobs key twice", ["submit", "jobs.json"],
     {"jobs.json": '{"groups": [{"plate": "P1"}, {"plate": "P2", "plate": "P3"}]}'},
     "error: jobs.json: groups[1].plate: expected each key once in an object, got this key twice (only the last "
     "value would be kept)"),
    ("jobs ESC in a prefix value", ["submit", "jobs.json"],
     {"config.json": config(OUTPUT_PREFIX="out/{plate}"), "jobs.json": {"groups": [{"plate": "P1\x1b]0;owned\x07"}]}},
     'error: jobs.json: groups[0].plate: expected no control characters (it is part of OUTPUT_PREFIX, an S3 key), '
     'got "P1\\u001b]0;owned\\u0007"'),
    ("jobs NUL in a shared prefix value", ["submit", "jobs.json"],
     {"config.json": config(OUTPUT_PREFIX="{plate}/{job_id}"),
      "jobs.json": {"plate": "P\x00", "groups": [{"well": "A1"}]}},
     'error: jobs.json: groups[0]: plate (a top-level value): expected no control characters (it is part of '
     'OUTPUT_PREFIX, an S3 key), got "P\\u0000"'),
    ("jobs bidi override in a prefix value", ["submit", "jobs.json"],
     {"config.json": config(OUTPUT_PREFIX="out/{plate}"), "jobs.json": {"groups": [{"plate": "P1\u202egpj.exe"}]}},
     'error: jobs.json: groups[0].plate: expected no control characters (it is part of OUTPUT_PREFIX, an S3 key), '
     'got "P1\\u202egpj.exe"'),
    ("jobs NUL in a command value", ["submit", "jobs.json"], {"jobs.json": {"groups": [{"plate": "P1\x00"}]}},
     'error: jobs.json: groups[0].plate: expected no NUL character (it is an argument of COMMAND, which a '
     'program\'s arguments cannot hold), got "P1\\u0000"'),
    # --- fleet.json (start-cluster)
    ("fleet missing", ["start-cluster", "nofleet.json"], {}, "error: nofleet.json: file not found"),
    ("fleet is a list", ["start-cluster", "fleet.json"], {"fleet.json": []},
     "error: fleet.json: expected a JSON object (a spot fleet request config), got list"),
    ("fleet unknown allocation strategy", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SET:AllocationStrategy="cheapest"'},
     "error: fleet.json: AllocationStrategy: expected one of capacity-optimized, capacity-optimized-prioritized, "
     "diversified, lowest-price, price-capacity-optimized (or the spot fleet spellings capacityOptimized, "
     "capacityOptimizedPrioritized, diversified, lowestPrice, priceCapacityOptimized), got 'cheapest'"),
    ("fleet no launch specifications", ["start-cluster", "fleet.json"], {"fleet.json": "SET:LaunchSpecifications=[]"},
     "error: fleet.json: LaunchSpecifications: expected a non-empty list of launch specifications"),
    ("fleet launch spec is text", ["start-cluster", "fleet.json"], {"fleet.json": 'SET:LaunchSpecifications=["m5"]'},
     "error: fleet.json: LaunchSpecifications[0]: expected an object"),
    ("fleet bad image", ["start-cluster", "fleet.json"], {"fleet.json": 'SPEC:ImageId="ubuntu"'},
     "error: fleet.json: LaunchSpecifications[0]: ImageId: expected an ECS-optimized AMI id like "
     "ami-0123456789abcdef0, or no ImageId for the latest one, got 'ubuntu'"),
    ("fleet one block device", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SPEC:BlockDeviceMappings=[{"DeviceName": "/dev/xvda"}]'},
     "error: fleet.json: LaunchSpecifications[0]: BlockDeviceMappings: expected two block devices (root, then the data "
     "volume sized by EBS_VOL_SIZE)"),
    ("fleet data volume without Ebs", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SPEC:BlockDeviceMappings=[{"DeviceName": "/dev/xvda"}, {"DeviceName": "/dev/xvdcz"}]'},
     "error: fleet.json: LaunchSpecifications[0]: BlockDeviceMappings[1]: expected an object with an 'Ebs' object (the "
     "data volume sized by EBS_VOL_SIZE)"),
    ("fleet instance profile as text", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SPEC:IamInstanceProfile="dsr-ecs-instance-role"'},
     "error: fleet.json: LaunchSpecifications[0]: IamInstanceProfile: expected an object with the instance profile "
     "'Arn'"),
    ("fleet lets containers reach instance metadata", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SPEC:MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2}'},
     "error: fleet.json: LaunchSpecifications[0]: MetadataOptions: HttpPutResponseHopLimit: expected 1 (containers "
     "must "
     "not reach the instance metadata service), got 2"),
    ("fleet makes instance metadata tokens optional", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SPEC:MetadataOptions={"HttpTokens": "optional"}'},
     "error: fleet.json: LaunchSpecifications[0]: MetadataOptions: HttpTokens: expected 'required' (containers must "
     "not reach the instance metadata service), got 'optional'"),
    ("fleet brings its own launch template", ["start-cluster", "fleet.json"],
     {"fleet.json": 'SET:LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {"LaunchTemplateName": "open"}}]'},
     "error: fleet.json: LaunchTemplateConfigs: not supported; give LaunchSpecifications (start-cluster makes the "
     "run's launch template from them)"),
    ("fleet key twice", ["start-cluster", "fleet.json"],
     {"fleet.json": '{"IamFleetRole": "arn:aws:iam::1:role/a", "IamFleetRole": "arn:aws:iam::1:role/b"}'},
     "error: fleet.json: IamFleetRole: expected each key once in an object, got this key twice (only the last value "
     "would be kept)"),
    # --- the monitor file (DS's `monitor files/APP_NAMESpotFleetRequestId.json`)
    ("monitor file is a directory", ["monitor", "runs"], {"runs": "DIR"},
     "error: runs: expected a file, found a directory"),
    ("monitor file is not JSON", ["monitor", "run.json"], {"run.json": "MONITOR_APP_NAME=TestApp"},
     "error: run.json: invalid JSON at line 1 column 1: Expecting value"),
    ("monitor file neither ours nor DS's", ["monitor", "run.json"], {"run.json": '{"jobs": []}'},
     "error: run.json: neither a run record of this project nor a monitor file of Distributed-Something or "
     "Distributed-CellProfiler: unexpected key(s) 'jobs'; expected the keys MONITOR_FLEET_ID, MONITOR_APP_NAME, "
     "MONITOR_ECS_CLUSTER, MONITOR_QUEUE_NAME, MONITOR_BUCKET_NAME, MONITOR_LOG_GROUP_NAME, MONITOR_START_TIME, "
     "CLEAN_DASHBOARD"),
    ("DS monitor file with more after its object", ["monitor", "run.json"],
     {"run.json": '{"MONITOR_APP_NAME" : "TestApp"}\n"CLEAN_DASHBOARD" : "True"}\n{}'},
     "error: run.json: invalid JSON at line 2 column 1: text after the JSON object (the only line DS's run.py "
     'writes after it is "CLEAN_DASHBOARD" : "True"} or "False"})'),
]


def test_the_table_has_at_least_30_distinct_cases():
    names = [case[0] for case in CASES]
    assert len(names) == len(set(names)) >= 30


@pytest.fixture(scope="module")
def _ready(tmp_path_factory):
    """One account for the whole table (each case must leave it as it found it, which the test checks)."""
    from moto import mock_aws

    with mock_aws():
        folder = tmp_path_factory.mktemp("account")
        Account(folder)
        (folder / "jobs.json").write_text(json.dumps(GOOD_JOBS))
        yield folder


@pytest.fixture
def folder(_ready, tmp_path, monkeypatch):
    for name in ("config.json", "fleet.json", "jobs.json"):
        shutil.copy(_ready / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_case(folder: Path, files: dict) -> None:
    fleet = json.loads((folder / "fleet.json").read_text())
    for name, content in files.items():
        path = folder / name
        if content == "DIR":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str) and content.startswith(("DROP:", "SET:", "SPEC:")):
            kind, _, rest = content.partition(":")
            key, _, value = rest.partition("=")
            if kind == "DROP":
                fleet.pop(key)
            elif kind == "SET":
                fleet[key] = json.loads(value)
            else:
                fleet["LaunchSpecifications"][0][key] = json.loads(value)
            path.write_text(json.dumps(fleet))
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))


@pytest.mark.parametrize("name, command, files, expected", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gives_its_one_line_error_exit_2_and_changes_nothing(folder, name, command, files, expected):
    write_case(folder, files)
    args = command if "--config" in command else [*command, "--config", "config.json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == expected + "\n"
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="TestAppQueue")["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert clients.client("ec2").describe_spot_fleet_requests()["SpotFleetRequestConfigs"] == []
