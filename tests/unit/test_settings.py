"""Settings: every key, DS's derived defaults, string booleans, and every rejection with its exact message."""

import json

import pytest

from chalicelib.model.errors import ConfigError
from chalicelib.model.settings import KEYS, Settings, parse_bool
from tests.conftest import BASE_CONFIG


def load(**overrides):
    return Settings.from_mapping({**BASE_CONFIG, **overrides})


def rejection(**overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**overrides)
    return str(caught.value)


def test_ds_derived_defaults():
    settings = load(DOCKER_CORES=3)
    assert settings.SQS_QUEUE_NAME == "TestAppQueue"
    assert settings.LOG_GROUP_NAME == "TestApp"
    assert settings.CPU_SHARES == 3 * 1024
    assert settings.SQS_DEAD_LETTER_QUEUE == "user_DeadMessages"
    assert settings.ECS_CLUSTER == "default"
    assert settings.OUTPUT_PREFIX == "{APP_NAME}/{job_id}"
    assert settings.JOB_RETRIES == 3
    assert settings.INPUT_PREFIX is None
    assert settings.environment == {}


def test_derived_names():
    settings = load(LOG_GROUP_NAME="runs/A", TASKS_PER_MACHINE=2, DOCKER_CORES=4)
    assert settings.task_family == "TestAppTask"
    assert settings.service_name == "TestAppService"
    assert settings.per_instance_log_group == "runs/A_perInstance"
    assert settings.workers_per_machine == 8


def test_explicit_values_win_over_derived_defaults():
    settings = load(SQS_QUEUE_NAME="Jobs", LOG_GROUP_NAME="Logs", CPU_SHARES=512, DOCKER_CORES=2)
    assert (settings.SQS_QUEUE_NAME, settings.LOG_GROUP_NAME, settings.CPU_SHARES) == ("Jobs", "Logs", 512)


EVERY_KEY = {
    "APP_NAME": "Plates_2024-a",
    "DOCKERHUB_TAG": "org/image:2",
    "AWS_REGION": "eu-west-2",
    "AWS_PROFILE": "lab",
    "SSH_KEY_NAME": "mykey.pem",
    "AWS_BUCKET": "lab.bucket-1",
    "ECS_CLUSTER": "runs",
    "CLUSTER_MACHINES": 7,
    "TASKS_PER_MACHINE": 2,
    "MACHINE_TYPE": ["c5.2xlarge", "c5a.2xlarge"],
    "MACHINE_PRICE": 0.25,
    "EBS_VOL_SIZE": 40,
    "ASSIGN_IP": "TRUE",
    "DOCKER_CORES": 3,
    "CPU_SHARES": 2048,
    "MEMORY": 7000,
    "SECONDS_TO_START": 30,
    "SQS_QUEUE_NAME": "PlatesQ",
    "SQS_MESSAGE_VISIBILITY": 43200,
    "SQS_DEAD_LETTER_QUEUE": "Dead",
    "LOG_GROUP_NAME": "/plates/run#1",
    "AUTO_MONITOR": "false",
    "CREATE_DASHBOARD": False,
    "CLEAN_DASHBOARD": "False",
    "CHECK_IF_DONE_BOOL": "True",
    "EXPECTED_NUMBER_FILES": 5,
    "MIN_FILE_SIZE_BYTES": 0,
    "NECESSARY_STRING": ".csv",
    "COMMAND": ["python", "run.py", "{plate}", "{output_dir}"],
    "OUTPUT_PREFIX": "out/{plate}/{job_id}",
    "INPUT_PREFIX": "in/{plate}",
    "JOB_RETRIES": 10,
    "MAX_RUN_HOURS": 12,
    "MAX_RUN_COST": 250.5,
    "ENVIRONMENT": {"THREADS": 4, "MODE": "fast"},
}


def test_every_key_loads_with_its_type():
    settings = Settings.from_mapping(EVERY_KEY)
    assert settings.MACHINE_TYPE == ("c5.2xlarge", "c5a.2xlarge")
    assert settings.MACHINE_PRICE == 0.25 and isinstance(settings.MACHINE_PRICE, float)
    assert settings.ASSIGN_IP is True and settings.AUTO_MONITOR is False and settings.CHECK_IF_DONE_BOOL is True
    assert settings.CREATE_DASHBOARD is False and settings.CLEAN_DASHBOARD is False
    assert settings.environment == {"MODE": "fast", "THREADS": "4"}
    assert settings.COMMAND == ("python", "run.py", "{plate}", "{output_dir}")
    for key in EVERY_KEY:
        if key not in ("MACHINE_TYPE", "ASSIGN_IP", "AUTO_MONITOR", "CREATE_DASHBOARD", "CLEAN_DASHBOARD",
                       "CHECK_IF_DONE_BOOL", "ENVIRONMENT", "COMMAND"):
            assert getattr(settings, key) == EVERY_KEY[key], key


# Every key of DS's configuration reference (shared/seed, and DESIGN.md "Fixed names"), pinned here so the
# check never depends on a file outside the repository.
DS_KEYS = {
    "APP_NAME", "DOCKERHUB_TAG", "AWS_REGION", "AWS_PROFILE", "SSH_KEY_NAME", "AWS_BUCKET", "ECS_CLUSTER",
    "CLUSTER_MACHINES", "TASKS_PER_MACHINE", "MACHINE_TYPE", "MACHINE_PRICE", "EBS_VOL_SIZE", "ASSIGN_IP",
    "DOCKER_CORES", "CPU_SHARES", "MEMORY", "SECONDS_TO_START", "SQS_QUEUE_NAME", "SQS_MESSAGE_VISIBILITY",
    "SQS_DEAD_LETTER_QUEUE", "LOG_GROUP_NAME", "AUTO_MONITOR", "CREATE_DASHBOARD", "CLEAN_DASHBOARD",
    "CHECK_IF_DONE_BOOL", "EXPECTED_NUMBER_FILES", "MIN_FILE_SIZE_BYTES", "NECESSARY_STRING",
}


def test_the_key_table_covers_every_settings_field_and_every_ds_key():
    from dataclasses import fields

    names = [key.name for key in KEYS]
    assert names == [field.name for field in fields(Settings) if field.name != "source"]
    assert set(names) >= DS_KEYS
    assert {key.name for key in KEYS if key.ds} == DS_KEYS


def test_settings_round_trip_through_the_worker_environment():
    settings = Settings.from_mapping({**EVERY_KEY, "AWS_PROFILE": None})
    environment = settings.to_environment()
    assert environment["THREADS"] == "4"
    again = Settings.from_environment(environment)
    assert again.to_config() == settings.to_config()
    assert "AWS_SECRET" not in json.dumps(environment)


@pytest.mark.parametrize("text,expected", [("True", True), ("true", True), ("TRUE", True), (" tRuE ", True),
                                           ("False", False), ("false", False), (True, True), (False, False)])
def test_booleans_accept_json_and_ds_strings(text, expected):
    assert parse_bool(text) is expected


def test_comment_keys_are_ignored():
    assert load(_comment="anything", _comment_2=[1, 2]).APP_NAME == "TestApp"


def test_machine_type_empty_or_left_out_means_attribute_based_selection_and_a_ds_list_is_kept():
    assert load(MACHINE_TYPE=[]).MACHINE_TYPE == ()
    assert Settings.from_mapping({k: v for k, v in BASE_CONFIG.items() if k != "MACHINE_TYPE"}).MACHINE_TYPE == ()
    assert load(MACHINE_TYPE=["m5.large", "c5.xlarge"]).MACHINE_TYPE == ("m5.large", "c5.xlarge")


def test_gpus_and_the_price_as_bid_are_off_unless_asked():
    settings = load()
    assert (settings.GPUS_PER_TASK, settings.MACHINE_PRICE_IS_BID) == (0, False)
    settings = load(GPUS_PER_TASK=2, MACHINE_PRICE_IS_BID="True")
    assert (settings.GPUS_PER_TASK, settings.MACHINE_PRICE_IS_BID) == (2, True)


def test_null_means_default_for_optional_keys():
    assert load(SQS_QUEUE_NAME=None).SQS_QUEUE_NAME == "TestAppQueue"
    assert load(SSH_KEY_NAME=None).SSH_KEY_NAME is None


def test_the_example_config_loads():
    from pathlib import Path

    root = Path(__file__).parents[2]
    assert Settings.load(root / "config.json").APP_NAME == "MeasurePlates"


REJECTIONS = [
    ({"MACHINE_TYPES": ["m5.large"]}, "unknown key 'MACHINE_TYPES' in config.json; did you mean 'MACHINE_TYPE'?"),
    ({"app_name": "x"}, "unknown key 'app_name' in config.json; did you mean 'APP_NAME'?"),
    ({"ZZZ": 1}, "unknown key 'ZZZ' in config.json; see the configuration table in README.md"),
    ({"APP_NAME": "my app"}, "config.json: APP_NAME: expected 1 to 75 letters, digits, '-' or '_' (it names queues, "
                             "alarms, the dashboard, log groups and ECS resources), got \"my app\""),
    ({"APP_NAME": "a" * 76}, None),
    # run "Run_i-x"'s alarms would start with run "Run"'s machine alarm prefix; run "i-0abc"'s queue alarm
    # ApproximateNumberOfMessagesVisibleisZero_i-0abc would be run "ApproximateNumberOfMessagesVisibleisZero"'s
    # alarm of machine i-0abc
    ({"APP_NAME": "Run_i-x"}, "config.json: APP_NAME: expected a name that neither starts with 'i-' nor holds "
                              "'_i-' (each machine's alarm is APP_NAME_<instance id>: this name could be, or start "
                              "like, another run's alarm), got \"Run_i-x\""),
    ({"APP_NAME": "Run_i-0abc"}, None),
    ({"APP_NAME": "i-0abc"}, None),
    ({"APP_NAME": 5}, "config.json: APP_NAME: expected 1 to 75 letters, digits, '-' or '_' (it names queues, "
                      "alarms, the dashboard, log groups and ECS resources), got 5"),
    ({"DOCKERHUB_TAG": ""}, 'config.json: DOCKERHUB_TAG: expected a non-empty string, got ""'),
    ({"AWS_REGION": "mars"}, 'config.json: AWS_REGION: expected a region AWS has, such as us-east-1, got "mars"'),
    ({"AWS_REGION": "us-east-9"}, 'config.json: AWS_REGION: expected a region AWS has, such as us-east-1 (nearest: '
                                  'us-east-2, us-east-1), got "us-east-9"'),
    ({"AWS_BUCKET": "My_Bucket"}, "config.json: AWS_BUCKET: expected an S3 bucket name (3 to 63 lowercase "
                                  "letters, digits, '.', '-'), got \"My_Bucket\""),
    ({"CLUSTER_MACHINES": 0}, "config.json: CLUSTER_MACHINES: expected an integer >= 1, got 0"),
    ({"CLUSTER_MACHINES": 2.5}, "config.json: CLUSTER_MACHINES: expected an integer >= 1, got 2.5"),
    ({"CLUSTER_MACHINES": "3"}, 'config.json: CLUSTER_MACHINES: expected an integer >= 1, got "3"'),
    ({"CLUSTER_MACHINES": True}, "config.json: CLUSTER_MACHINES: expected an integer >= 1, got true"),
    ({"TASKS_PER_MACHINE": -1}, "config.json: TASKS_PER_MACHINE: expected an integer >= 1, got -1"),
    ({"MACHINE_TYPE": "m5.large"}, 'config.json: MACHINE_TYPE: expected a list of instance types such as '
                                   '["m5.xlarge"], or [] for every type that fits the tasks, got "m5.large"'),
    ({"MACHINE_TYPE": ["m5"]}, 'config.json: MACHINE_TYPE: expected a list of instance types such as ["m5.xlarge"], '
                               'or [] for every type that fits the tasks, got ["m5"]'),
    ({"GPUS_PER_TASK": -1}, "config.json: GPUS_PER_TASK: expected an integer >= 0, got -1"),
    ({"GPUS_PER_TASK": 0.5}, "config.json: GPUS_PER_TASK: expected an integer >= 0, got 0.5"),
    ({"MACHINE_PRICE_IS_BID": "yes"}, 'config.json: MACHINE_PRICE_IS_BID: expected true or false (or the string '
                                      '"True"/"False"), got "yes"'),
    ({"MACHINE_PRICE": 0}, "config.json: MACHINE_PRICE: expected a positive number, got 0"),
    ({"MACHINE_PRICE": "0.1"}, 'config.json: MACHINE_PRICE: expected a positive number, got "0.1"'),
    ({"EBS_VOL_SIZE": 21}, "config.json: EBS_VOL_SIZE: expected an integer >= 22, got 21"),
    ({"ASSIGN_IP": "yes"}, 'config.json: ASSIGN_IP: expected true or false (or the string "True"/"False"), '
                           'got "yes"'),
    ({"ASSIGN_IP": 1}, 'config.json: ASSIGN_IP: expected true or false (or the string "True"/"False"), got 1'),
    ({"DOCKER_CORES": 0}, "config.json: DOCKER_CORES: expected an integer >= 1, got 0"),
    ({"CPU_SHARES": 64}, "config.json: CPU_SHARES: expected an integer >= 128, got 64"),
    ({"MEMORY": 5}, "config.json: MEMORY: expected an integer >= 6, got 5"),
    ({"SECONDS_TO_START": -5}, "config.json: SECONDS_TO_START: expected an integer >= 0, got -5"),
    ({"SQS_QUEUE_NAME": "a.fifo"}, "config.json: SQS_QUEUE_NAME: expected 1 to 80 letters, digits, '-' or '_', "
                                   'got "a.fifo"'),
    ({"SQS_MESSAGE_VISIBILITY": 43201}, "config.json: SQS_MESSAGE_VISIBILITY: expected an integer from 0 to 43200, "
                                        "got 43201"),
    ({"SQS_DEAD_LETTER_QUEUE": ""}, "config.json: SQS_DEAD_LETTER_QUEUE: expected 1 to 80 letters, digits, '-' or "
                                    "'_', got \"\""),
    ({"LOG_GROUP_NAME": "a b"}, "config.json: LOG_GROUP_NAME: expected 1 to 500 of letters, digits and _-/.#, "
                                'got "a b"'),
    ({"EXPECTED_NUMBER_FILES": 0}, "config.json: EXPECTED_NUMBER_FILES: expected an integer >= 1, got 0"),
    ({"MIN_FILE_SIZE_BYTES": -1}, "config.json: MIN_FILE_SIZE_BYTES: expected an integer >= 0, got -1"),
    ({"NECESSARY_STRING": 3}, "config.json: NECESSARY_STRING: expected a string, got 3"),
    ({"COMMAND": "python run.py"}, 'config.json: COMMAND: expected a non-empty list of strings such as ["python", '
                                   '"/app/run.py", "{plate}"], got "python run.py"'),
    ({"COMMAND": []}, None),
    ({"COMMAND": ["", "x"]}, 'config.json: COMMAND: expected the program (first item) to be a non-empty string, '
                             'got ["", "x"]'),
    ({"COMMAND": ["run", "{plate.__class__}"]}, "config.json: COMMAND: expected plain placeholder names like "
                                                "{plate}, not {plate.__class__}, got "
                                                '["run", "{plate.__class__}"]'),
    ({"COMMAND": ["run", "{plate"]}, "config.json: COMMAND: expected a template with balanced braces in "
                                     "'{plate' (expected '}' before end of string), got [\"run\", \"{plate\"]"),
    ({"COMMAND": ["run", "{plate!r}"]}, None),
    ({"OUTPUT_PREFIX": "{output_dir}/x"}, "config.json: OUTPUT_PREFIX: expected an S3 prefix template; "
                                          "{output_dir} and {input_dir} are local folders, usable only in COMMAND"),
    ({"REQUIRE_INPUTS": True}, "config.json: REQUIRE_INPUTS: true needs INPUT_PREFIX (the prefix a job's inputs "
                               "must be under); set INPUT_PREFIX or leave REQUIRE_INPUTS false"),
    ({"REQUIRE_INPUTS": "maybe"}, None),
    ({"JOB_RETRIES": 0}, "config.json: JOB_RETRIES: expected an integer from 1 to 1000, got 0"),
    ({"JOB_RETRIES": 1001}, "config.json: JOB_RETRIES: expected an integer from 1 to 1000, got 1001"),
    ({"MAX_RUN_HOURS": 0}, "config.json: MAX_RUN_HOURS: expected a positive number, got 0"),
    ({"MAX_RUN_COST": "10"}, 'config.json: MAX_RUN_COST: expected a positive number, got "10"'),
    ({"ENVIRONMENT": ["A=1"]}, 'config.json: ENVIRONMENT: expected an object of environment variables such as '
                               '{"THREADS": "4"}, got list'),
    # the value is never echoed: it may be the very secret the rule keeps out
    ({"ENVIRONMENT": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}}, "config.json: ENVIRONMENT: expected no variable starting "
                                                           "with AWS_ or DSR_ (reserved: AWS credentials come from "
                                                           "the task role, never from the config), got "
                                                           "'AWS_SECRET_ACCESS_KEY'"),
    ({"ENVIRONMENT": {"1BAD": "x"}}, None),
    ({"ENVIRONMENT": {"A": {"nested": 1}}}, None),
]


@pytest.mark.parametrize("overrides,message", REJECTIONS, ids=[str(next(iter(o))) + str(i) for i, (o, _) in
                                                                  enumerate(REJECTIONS)])
def test_rejections_name_the_key_and_what_was_expected(overrides, message):
    text = rejection(**overrides)
    key = next(iter(overrides))
    assert "\n" not in text
    if message is None:
        assert key in text and "expected" in text
    else:
        assert text == message


@pytest.mark.parametrize("key", [key.name for key in KEYS if key.required])
def test_missing_required_key(key):
    config = {name: value for name, value in BASE_CONFIG.items() if name != key}
    with pytest.raises(ConfigError, match=f"^config.json: missing required key '{key}' "):
        Settings.from_mapping(config)


def test_not_an_object():
    with pytest.raises(ConfigError, match=r"^config.json: expected a JSON object of settings, got list$"):
        Settings.from_mapping([1])


@pytest.mark.parametrize("content,message", [
    (None, "{path}: file not found"),
    ("{", "{path}: invalid JSON at line 1 column 2: Expecting property name enclosed in double quotes"),
    (b"\xff\xfe", "{path}: expected UTF-8 JSON text"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as caught:
        Settings.load(path)
    assert str(caught.value) == message.format(path=path)


def test_readme_configuration_table_matches_the_key_table():
    from pathlib import Path

    from chalicelib.model.settings import config_table_markdown

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert config_table_markdown() in readme, "regenerate with: python -m chalicelib.model.settings"
