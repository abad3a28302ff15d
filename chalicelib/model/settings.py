"""config.json -> one frozen, validated `Settings`.

Every key of Distributed-Something's config keeps its name and meaning; the keys
this project adds are marked `ds=False`. `KEYS` is the single source of truth:
the loader, the error messages and the README's configuration table all come
from it (a unit test checks the README against it).

Attribute names are the config keys themselves (`settings.APP_NAME`) so that a
DS user reading the code, the config and the docs sees one vocabulary.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.model.errors import ConfigError
from chalicelib.model.jsonfile import read_json_file
from chalicelib.model.names import INSTANCE_ALARM_MARK, INSTANCE_ID_START, RESERVED_PREFIXES, app_name_collides
from chalicelib.model.templates import Template, TemplateError
from chalicelib.model.uploadflags import parse_upload_flags

# SQS queue names are at most 80 characters and DS's default queue name adds
# "Queue"; the other derived names (alarms, dashboard, log groups, ECS family
# and service) allow more, and all accept this alphabet.
APP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,75}$")
QUEUE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
LOG_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_\-/.#]{1,500}$")
ECS_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VISIBILITY_SECONDS = 43200  # SQS's 12-hour cap on a message's visibility timeout
MAX_RECEIVE_COUNT = 1000  # SQS's cap on a redrive policy's maxReceiveCount

# The one environment variable that carries the settings into a worker container.
CONFIG_ENV_VAR = "DSR_CONFIG"
# Placeholders every template may use, besides the job's own keys.
# Environment variable names the worker reserves for itself (ENVIRONMENT may not set them).
RESERVED_ENV_PREFIXES = ("AWS_", "DSR_")


def _is_comment(key: str) -> bool:
    return "_comment" in key


# --------------------------------------------------------------------------- parsers
# Each parser takes the raw JSON value and returns the typed value or raises
# ValueError with the "expected ..." part of the message.


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _optional_string(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _string(value)


def _plain_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _upload_flags(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string of flags such as '--acl bucket-owner-full-control'")
    parse_upload_flags(value)
    return value.strip()


def _int_at_least(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        # Python's JSON reader accepts NaN and Infinity: neither is an integer (int() would raise on them)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value)) or value != int(value)):
            raise ValueError(_range_text("an integer", low, high))
        number = int(value)
        if number < low or (high is not None and number > high):
            raise ValueError(_range_text("an integer", low, high))
        return number

    return parse


def _range_text(kind: str, low: int, high: int | None) -> str:
    if high is None:
        return f"expected {kind} >= {low}"
    return f"expected {kind} from {low} to {high}"


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError("expected a positive number")
    return float(value)


def _optional_positive_number(value: Any) -> float | None:
    if value is None:
        return None
    return _positive_number(value)


def _optional_int_at_least(low: int) -> Callable[[Any], int | None]:
    parse = _int_at_least(low)
    return lambda value: None if value is None else parse(value)


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows, in every partition (commercial, China, GovCloud, ...)."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("ec2", partition_name=partition))


def _region(value: Any) -> str:
    if not isinstance(value, str) or value not in known_regions():
        nearest = difflib.get_close_matches(str(value), sorted(known_regions()), n=2, cutoff=0.6)
        raise ValueError("expected a region AWS has, such as us-east-1"
                         + (f" (nearest: {', '.join(nearest)})" if nearest else ""))
    return value


def parse_bool(value: Any) -> bool:
    """JSON true/false, or the strings "True"/"False" in any case (DS writes them as strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError('expected true or false (or the string "True"/"False")')


def _machine_types(value: Any) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not all(isinstance(item, str) and re.fullmatch(r"[a-z0-9-]+\.[a-z0-9-]+", item) for item in value)
    ):
        raise ValueError('expected a list of instance types such as ["m5.xlarge"], or [] for every type that fits '
                         'the tasks')
    return tuple(value)


def _command(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValueError('expected a non-empty list of strings such as ["python", "/app/run.py", "{plate}"]')
    if not value[0].strip():
        raise ValueError("expected the program (first item) to be a non-empty string")
    for item in value:
        Template(item)  # raises TemplateError (a ValueError) on a malformed placeholder
    return tuple(value)


def _optional_command(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _command(value)


def _template(value: Any) -> str:
    text = _string(value)
    Template(text)
    return text


def _optional_template(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _template(value)


def _environment(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError('expected an object of environment variables such as {"THREADS": "4"}')
    items = []
    for name, item in value.items():
        if not ENV_NAME_PATTERN.match(name):
            raise ValueError(f"expected environment variable names like NAME_1, got {name!r}")
        if name.upper().startswith(RESERVED_ENV_PREFIXES):
            raise ValueError(
                f"expected no variable starting with {' or '.join(RESERVED_ENV_PREFIXES)} (reserved: AWS "
                f"credentials come from the task role, never from the config), got {name!r}"
            )
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError(f"expected a string or number for {name!r}, got {type(item).__name__}")
        items.append((name, str(item)))
    return tuple(sorted(items))


def _pattern(pattern: re.Pattern[str], description: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f"expected {description}")
        return value

    return parse


def _app_name(value: Any) -> str:
    name = _pattern(APP_NAME_PATTERN, "1 to 75 letters, digits, '-' or '_' (it names queues, alarms, the dashboard, "
                                      "log groups and ECS resources)")(value)
    if app_name_collides(name):
        raise ValueError(f"expected a name that neither starts with {INSTANCE_ID_START!r} nor holds "
                         f"{INSTANCE_ALARM_MARK!r} (each machine's alarm is APP_NAME_<instance id>: this name could "
                         "be, or start like, another run's alarm)")
    return name


# --------------------------------------------------------------------------- the key table


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[Any], Any]
    doc: str
    default: Any = None  # REQUIRED, a value, or _derived(...) computed from other settings
    default_doc: str = ""
    ds: bool = True
    dcp: bool = False  # a key of Distributed-CellProfiler, DS's most used descendant, with DCP's meaning

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def nullable(self) -> bool:
        """An explicit null is a value of its own here (no profile, no input prefix, no limit), not "the
        default": exactly the keys whose parser takes None."""
        try:
            self.parse(None)
        except (ValueError, TypeError):
            return False
        return True


REQUIRED = object()


@dataclass(frozen=True)
class Derived:
    """A default computed from the settings read so far (DS's derived defaults)."""

    compute: Callable[[dict[str, Any]], Any]
    text: str


_derived = Derived


KEYS: tuple[Key, ...] = (
    Key("APP_NAME", _app_name,
        "Ties the run's queue, cluster service, task definition, logs, alarms and dashboard together.", REQUIRED),
    Key("DOCKERHUB_TAG", _string, "The Docker image the workers run (e.g. `me/measure:1.2`).", REQUIRED),
    Key("AWS_REGION", _region,
        "AWS region of every resource.", "us-east-1", "`us-east-1`"),
    Key("AWS_PROFILE", _optional_string,
        "Profile from ~/.aws/config used by the CLI; `null` uses the default credential chain.", "default",
        "`default`"),
    Key("SSH_KEY_NAME", _optional_string,
        "EC2 key pair for the fleet's machines (a trailing `.pem` is dropped); `null` for none.", None, "`null`"),
    Key("AWS_BUCKET", _pattern(BUCKET_PATTERN, "an S3 bucket name (3 to 63 lowercase letters, digits, '.', '-')"),
        "Bucket for the run's own files (run record, leases, failure records, ECS agent config, exported logs) "
        "and, by default, inputs and outputs.", REQUIRED),
    Key("SOURCE_BUCKET", _pattern(BUCKET_PATTERN, "an S3 bucket name (3 to 63 lowercase letters, digits, '.', '-')"),
        "Bucket INPUT_PREFIX is read from (a public data set, say): the workers may only list and read it, under "
        "INPUT_PREFIX's fixed start.", _derived(lambda s: s["AWS_BUCKET"], "AWS_BUCKET"), "AWS_BUCKET", ds=False,
        dcp=True),
    Key("DESTINATION_BUCKET", _pattern(BUCKET_PATTERN, "an S3 bucket name (3 to 63 lowercase letters, digits, '.', "
                                       "'-')"),
        "Bucket the outputs go to, under OUTPUT_PREFIX; CHECK_IF_DONE and `submit --skip-done` look there.",
        _derived(lambda s: s["AWS_BUCKET"], "AWS_BUCKET"), "AWS_BUCKET", ds=False, dcp=True),
    Key("UPLOAD_FLAGS", _upload_flags, "Flags for every output upload, as DCP writes them "
        "(`--acl bucket-owner-full-control`): only `--acl`, `--storage-class` and `--sse` (`AES256` or `aws:kms`), "
        "each with a value.", "", '`""`', ds=False, dcp=True),
    Key("ECS_CLUSTER", _pattern(ECS_NAME_PATTERN, "1 to 255 letters, digits, '-' or '_'"),
        "ECS cluster the workers join.", "default", "`default`"),
    Key("CLUSTER_MACHINES", _int_at_least(1), "How many EC2 spot machines the fleet asks for.", REQUIRED),
    Key("TASKS_PER_MACHINE", _int_at_least(1), "Worker containers placed on each machine.", 1, "`1`"),
    Key("MACHINE_TYPE", _machine_types, "List of instance types the fleet may use; `[]`: every type that holds "
        "TASKS_PER_MACHINE tasks (CPU_SHARES, MEMORY, GPUS_PER_TASK) without being twice too big.", (), "`[]`"),
    Key("MACHINE_PRICE", _positive_number, "Highest price per machine-hour, in USD: the monitor counts machine-hours "
        "at this price against MAX_RUN_COST; EC2 gets it as the spot maximum price only with MACHINE_PRICE_IS_BID.",
        REQUIRED),
    Key("MACHINE_PRICE_IS_BID", parse_bool, "Also send MACHINE_PRICE to EC2 as the spot maximum price, as DS did. "
        "Off by default: AWS advises against a maximum price (machines are interrupted more often).", False,
        "`false`", ds=False),
    Key("GPUS_PER_TASK", _int_at_least(0), "GPUs each task needs; non-zero asks for GPU machines and the ECS "
        "GPU-optimized AMI.", 0, "`0`", ds=False),
    Key("EBS_VOL_SIZE", _int_at_least(22), "Size of each machine's data volume in GiB (minimum 22).", 30, "`30`"),
    Key("ASSIGN_IP", parse_bool,
        "Give machines a public IPv4 address; `false` overrides the fleet file, `true` respects it.", False,
        "`false`"),
    Key("DOCKER_CORES", _int_at_least(1), "Copies of the worker (jobs at once) in each container.", 1, "`1`"),
    Key("CPU_SHARES", _int_at_least(128), "CPU units per container (1024 = one vCPU).",
        _derived(lambda s: s["DOCKER_CORES"] * 1024, "DOCKER_CORES x 1024"), "DOCKER_CORES x 1024"),
    Key("MEMORY", _int_at_least(6), "Memory per container, in MiB (hard limit).", 1024, "`1024`"),
    Key("SECONDS_TO_START", _int_at_least(0), "Delay between starting each of a container's worker processes.",
        0, "`0`"),
    Key("SQS_QUEUE_NAME", _pattern(QUEUE_NAME_PATTERN, "1 to 80 letters, digits, '-' or '_'"),
        "Name of the job queue.", _derived(lambda s: s["APP_NAME"] + "Queue", "APP_NAME + Queue"),
        "APP_NAME + `Queue`"),
    Key("SQS_MESSAGE_VISIBILITY", _int_at_least(0, MAX_VISIBILITY_SECONDS),
        "Seconds a received job stays hidden; the worker's heartbeat extends it while the job runs.", 600, "`600`"),
    Key("SQS_DEAD_LETTER_QUEUE", _pattern(QUEUE_NAME_PATTERN, "1 to 80 letters, digits, '-' or '_'"),
        "Queue that receives jobs which failed JOB_RETRIES times.", "user_DeadMessages", "`user_DeadMessages`"),
    Key("LOG_GROUP_NAME", _pattern(LOG_GROUP_PATTERN, "1 to 500 of letters, digits and _-/.#"),
        "Log group with one stream per job; `_perInstance` is appended for container output.",
        _derived(lambda s: s["APP_NAME"], "APP_NAME"), "APP_NAME"),
    Key("AUTO_MONITOR", parse_bool, "Queue alarms wake the monitor Lambda, which scales down and tears down.",
        True, "`true`"),
    Key("CREATE_DASHBOARD", parse_bool, "Create a CloudWatch dashboard for the run.", True, "`true`"),
    Key("CLEAN_DASHBOARD", parse_bool, "Delete the dashboard at teardown.", True, "`true`"),
    Key("CHECK_IF_DONE_BOOL", parse_bool, "Skip a job whose outputs are already in S3.", False, "`false`"),
    Key("EXPECTED_NUMBER_FILES", _int_at_least(1), "Output files that make a job count as done.", 1, "`1`"),
    Key("MIN_FILE_SIZE_BYTES", _int_at_least(0), "Smallest output file, in bytes, that counts.", 1, "`1`"),
    Key("NECESSARY_STRING", _plain_string, "Text an output's key must contain to count (empty: any).", "",
        '`""`'),
    Key("COMMAND", _optional_command,
        "The program run for each job, as a list of argument templates: `{key}` for any job key, plus "
        "`{job_id}`, `{output_dir}`, `{input_dir}`. Never run through a shell. `null`: DS image mode, the image "
        "runs its own worker (DS's run-worker.sh) with DS's environment variables.", REQUIRED, ds=False),
    Key("JOB_MESSAGE_FORMAT", _pattern(re.compile(r"(DS|DCP)\Z"), "DS or DCP"),
        "DS image mode: each job's message as that upstream's run.py submits it, for its worker: `DS` (the job "
        "file's top-level keys plus `group`) or `DCP` (`Metadata`, `pipeline`, `output`, `input`, `data_file`, "
        "`output_structure`); a config.py naming DCP's keys is `DCP`.", "DS", '`"DS"`', ds=False),
    Key("PRIVILEGED", parse_bool, "DS image mode: run the container privileged, as DS always does (for s3fs "
        "mounts). Off by default: a privileged container can reach the host's devices.", False, "`false`",
        ds=False),
    Key("OUTPUT_PREFIX", _template, "S3 prefix (template) under DESTINATION_BUCKET for a job's outputs; "
        "CHECK_IF_DONE looks here.", "{APP_NAME}/{job_id}", "`{APP_NAME}/{job_id}`", ds=False),
    Key("INPUT_PREFIX", _optional_template, "S3 prefix (template) in SOURCE_BUCKET downloaded into "
        "`{input_dir}` before the command runs; `null` for none.", None, "`null`", ds=False),
    Key("REQUIRE_INPUTS", parse_bool, "Fail a job's attempt at once, before its command runs, when its "
        "INPUT_PREFIX holds no file (`no input files under s3://...`); retried like any failure. Needs INPUT_PREFIX.",
        False, "`false`", ds=False),
    Key("JOB_RETRIES", _int_at_least(1, MAX_RECEIVE_COUNT), "Receives before a job moves to the dead-letter queue.",
        3, "`3`", ds=False),
    Key("JOB_TIMEOUT", _optional_positive_number, "Seconds one attempt of a job may run: past it the command gets "
        "SIGTERM, then SIGKILL 10 s later, and the attempt fails with \"timed out after N s\" (as AWS Batch's "
        "attemptDurationSeconds); `null` for no limit.", None, "`null`", ds=False),
    Key("STOP_AFTER_FAILED_JOBS", _optional_int_at_least(1), "Circuit breaker: stop the fleet (the queue and its "
        "jobs are kept) once this many jobs have failed every attempt and they are at least 90% of the jobs finished; "
        "`null` to never stop for failures.", 5, "`5`", ds=False),
    Key("STOP_IF_NO_JOB_STARTS_MINUTES", _optional_positive_number, "Circuit breaker: stop the fleet when machines "
        "have run this many minutes and no job has started (an image that cannot be pulled, a task that does not "
        "fit); `null` to wait for ever.", 30, "`30`", ds=False),
    Key("MAX_RUN_HOURS", _optional_positive_number, "Safety stop: tear the fleet down after this many hours even "
        "if jobs remain (the queue and its jobs are kept); `null` for no limit.", None, "`null`", ds=False),
    Key("MAX_RUN_COST", _optional_positive_number, "Safety stop: tear the fleet down once machine-hours x "
        "MACHINE_PRICE reaches this many USD (the queue is kept); `null` for no limit.", None, "`null`", ds=False),
    Key("ENVIRONMENT", _environment, "Extra environment variables for the command (DS's VARIABLE section).",
        (), "`{}`", ds=False),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class Settings:
    """A validated config. Field names are config keys; `KEYS` documents each one."""

    APP_NAME: str
    DOCKERHUB_TAG: str
    AWS_REGION: str
    AWS_PROFILE: str | None
    SSH_KEY_NAME: str | None
    AWS_BUCKET: str
    SOURCE_BUCKET: str
    DESTINATION_BUCKET: str
    UPLOAD_FLAGS: str
    ECS_CLUSTER: str
    CLUSTER_MACHINES: int
    TASKS_PER_MACHINE: int
    MACHINE_TYPE: tuple[str, ...]
    MACHINE_PRICE: float
    MACHINE_PRICE_IS_BID: bool
    GPUS_PER_TASK: int
    EBS_VOL_SIZE: int
    ASSIGN_IP: bool
    DOCKER_CORES: int
    CPU_SHARES: int
    MEMORY: int
    SECONDS_TO_START: int
    SQS_QUEUE_NAME: str
    SQS_MESSAGE_VISIBILITY: int
    SQS_DEAD_LETTER_QUEUE: str
    LOG_GROUP_NAME: str
    AUTO_MONITOR: bool
    CREATE_DASHBOARD: bool
    CLEAN_DASHBOARD: bool
    CHECK_IF_DONE_BOOL: bool
    EXPECTED_NUMBER_FILES: int
    MIN_FILE_SIZE_BYTES: int
    NECESSARY_STRING: str
    COMMAND: tuple[str, ...] | None  # None: DS image mode
    JOB_MESSAGE_FORMAT: str  # DS image mode: "DS" or "DCP", whose run.py's message shape the image reads
    PRIVILEGED: bool
    OUTPUT_PREFIX: str
    INPUT_PREFIX: str | None
    REQUIRE_INPUTS: bool
    JOB_RETRIES: int
    JOB_TIMEOUT: float | None
    STOP_AFTER_FAILED_JOBS: int | None
    STOP_IF_NO_JOB_STARTS_MINUTES: float | None
    MAX_RUN_HOURS: float | None
    MAX_RUN_COST: float | None
    ENVIRONMENT: tuple[tuple[str, str], ...]
    source: str = "config.json"

    # ---- derived names (DESIGN.md "Fixed names")
    @property
    def task_family(self) -> str:
        return self.APP_NAME + "Task"

    @property
    def service_name(self) -> str:
        return self.APP_NAME + "Service"

    @property
    def per_instance_log_group(self) -> str:
        return self.LOG_GROUP_NAME + "_perInstance"

    @property
    def workers_per_machine(self) -> int:
        return self.TASKS_PER_MACHINE * self.DOCKER_CORES

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.ENVIRONMENT)

    @property
    def buckets(self) -> dict[str, str]:
        """The run's buckets, each once, with the first key naming it (AWS_BUCKET, SOURCE_BUCKET,
        DESTINATION_BUCKET: the source and destination default to AWS_BUCKET)."""
        named: dict[str, str] = {}
        for key in ("AWS_BUCKET", "SOURCE_BUCKET", "DESTINATION_BUCKET"):
            named.setdefault(getattr(self, key), key)
        return named

    @property
    def upload_args(self) -> dict[str, str]:
        """UPLOAD_FLAGS as boto3 upload arguments."""
        return parse_upload_flags(self.UPLOAD_FLAGS)

    @property
    def ds_image_mode(self) -> bool:
        """COMMAND null: the image carries its own worker (DS's), configured by DS's environment variables."""
        return self.COMMAND is None

    def ds_environment(self, queue_url: str) -> dict[str, str]:
        """The variables DS's run.py writes into the task definition, by DS's names and in DS's text forms, plus
        ENVIRONMENT. Never AWS keys: the task role gives the container its credentials."""
        return {
            "AWS_REGION": self.AWS_REGION, "APP_NAME": self.APP_NAME, "SQS_QUEUE_URL": queue_url,
            "AWS_BUCKET": self.AWS_BUCKET, "DOCKER_CORES": str(self.DOCKER_CORES),
            "LOG_GROUP_NAME": self.LOG_GROUP_NAME, "CHECK_IF_DONE_BOOL": str(self.CHECK_IF_DONE_BOOL),
            "EXPECTED_NUMBER_FILES": str(self.EXPECTED_NUMBER_FILES),
            "ECS_CLUSTER": self.ECS_CLUSTER, "SECONDS_TO_START": str(self.SECONDS_TO_START),
            "MIN_FILE_SIZE_BYTES": str(self.MIN_FILE_SIZE_BYTES), "NECESSARY_STRING": self.NECESSARY_STRING,
            # Distributed-CellProfiler's run.py adds these; DS's images ignore them.
            "SOURCE_BUCKET": self.SOURCE_BUCKET, "DESTINATION_BUCKET": self.DESTINATION_BUCKET,
            "UPLOAD_FLAGS": self.UPLOAD_FLAGS,
            **self.environment,
        }

    def to_config(self) -> dict[str, Any]:
        """The settings as a config.json object (round-trips through `from_mapping`)."""
        config = {}
        for key in KEYS:
            value = getattr(self, key.name)
            if key.name == "ENVIRONMENT":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            config[key.name] = value
        return config

    def to_environment(self) -> dict[str, str]:
        """What a worker container needs: the whole config as JSON plus ENVIRONMENT.

        AWS_PROFILE is dropped: on AWS the worker's credentials come from the task role.
        """
        config = self.to_config()
        config["AWS_PROFILE"] = None
        return {CONFIG_ENV_VAR: json.dumps(config, separators=(",", ":")), **self.environment}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings a worker was started with (see `to_environment`)."""
        environ = os.environ if environ is None else environ
        if CONFIG_ENV_VAR not in environ:
            raise ConfigError(f"environment: {CONFIG_ENV_VAR} is not set; the task definition made by "
                              "'python cli.py setup' sets it")
        try:
            raw = json.loads(environ[CONFIG_ENV_VAR])
        except ValueError:
            raise ConfigError(f"environment: {CONFIG_ENV_VAR}: expected a JSON object") from None
        return cls.from_mapping(raw, source=f"${CONFIG_ENV_VAR}")

    # ---- loading
    @classmethod
    def from_mapping(cls, raw: Any, source: str = "config.json") -> Settings:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object of settings, got {type(raw).__name__}")
        given = {name: value for name, value in raw.items() if not _is_comment(name)}
        for name in given:
            if name not in KEYS_BY_NAME:
                raise ConfigError(_unknown_key_message(name, source))
        values: dict[str, Any] = {}
        derived = []
        for key in KEYS:
            value = given.get(key.name)
            if value is not None or (key.name in given and key.nullable):
                values[key.name] = _parse_key(key, value, source)
            elif key.required:
                raise ConfigError(f"{source}: missing required key '{key.name}' ({key.doc.rstrip('.')})")
            elif isinstance(key.default, Derived):
                derived.append(key)
            else:
                values[key.name] = key.default
        for key in derived:
            values[key.name] = _parse_key(key, key.default.compute(values), source)
        _check_templates(values, source)
        return cls(**values, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Settings:
        """config.json, or DS's config.py (read, never run: chalicelib/model/dsconfig.py)."""
        return cls.load_with_warnings(path)[0]

    @classmethod
    def load_with_warnings(cls, path: str | Path) -> tuple[Settings, list[str]]:
        """The settings, and what the user should hear about them: a config.py's keys taken for upstream's later
        keys."""
        if str(path).endswith(".py"):
            from chalicelib.model.dsconfig import read_ds_config

            config = read_ds_config(path)
            return cls.from_mapping(config.settings, str(path)), config.warnings
        return cls.from_mapping(read_json_file(path, ConfigError), str(path)), []


def config_table_markdown() -> str:
    """The README's configuration table, made from `KEYS` (a test keeps README.md in step)."""
    rows = ["| Key | Default | Meaning | In DS |", "| --- | --- | --- | --- |"]
    for key in KEYS:
        default = "required" if key.required else key.default_doc
        rows.append(f"| `{key.name}` | {default} | {key.doc} | {'yes' if key.ds else 'DCP' if key.dcp else 'new'} |")
    return "\n".join(rows)


def _parse_key(key: Key, value: Any, source: str) -> Any:
    try:
        return key.parse(value)
    except ValueError as error:
        # ENVIRONMENT's values are never echoed: a user who put a secret there must not see it printed
        # (or logged) again; its parser names the variable instead.
        shown = type(value).__name__ if key.name == "ENVIRONMENT" else _show(value)
        text = str(error) if key.name == "ENVIRONMENT" and ", got " in str(error) else f"{error}, got {shown}"
        raise ConfigError(f"{source}: {key.name}: {text}") from None


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_key_message(name: str, source: str) -> str:
    close = difflib.get_close_matches(name, KEYS_BY_NAME, n=1, cutoff=0.6) or difflib.get_close_matches(
        name.upper(), KEYS_BY_NAME, n=1, cutoff=0.6
    )
    hint = f"; did you mean '{close[0]}'?" if close else "; see the configuration table in README.md"
    # repr: a key holding a newline or a quote still makes one readable line ('P1' stays 'P1')
    return f"unknown key {name!r} in {source}{hint}"


def _check_templates(values: Mapping[str, Any], source: str) -> None:
    """Settings-level placeholders must exist; job keys are checked per job by jobs.py."""
    for name in ("OUTPUT_PREFIX", "INPUT_PREFIX"):
        local = {"output_dir", "input_dir"} & set(Template(values[name]).fields) if values.get(name) else set()
        if local:
            raise ConfigError(f"{source}: {name}: expected an S3 prefix template; "
                              "{output_dir} and {input_dir} are local folders, usable only in COMMAND")
    if values["REQUIRE_INPUTS"] and not values["INPUT_PREFIX"]:
        raise ConfigError(f"{source}: REQUIRE_INPUTS: true needs INPUT_PREFIX (the prefix a job's inputs must be "
                          "under); set INPUT_PREFIX or leave REQUIRE_INPUTS false")
    fixed = Template(values["OUTPUT_PREFIX"]).fixed_prefix({key: values[key] for key in ("APP_NAME", "AWS_BUCKET")})
    reserved = [prefix for prefix in RESERVED_PREFIXES if fixed.startswith(prefix)]
    if reserved:
        raise ConfigError(f"{source}: OUTPUT_PREFIX: expected a prefix outside {', '.join(RESERVED_PREFIXES)} "
                          "(what the monitor trusts and the runs' own files), "
                          f"got {json.dumps(values['OUTPUT_PREFIX'])}")


__all__ = ["KEYS", "Key", "Settings", "TemplateError", "parse_bool"]


if __name__ == "__main__":
    print(config_table_markdown())
