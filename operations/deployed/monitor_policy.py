"""`cli.py monitor-config`: the monitor's deployment made from the runs' configs.

The buckets the monitor watches (MONITOR_BUCKETS of a stage in .chalice/config.json), the buckets its two IAM
policies reach and the dead-letter queues the status API may look into are one list, read from the configs, so
a monitor cannot be deployed watching one bucket while the run uses another. The policies are built here from
one template; the committed .chalice files are this module's output for examples/config.json (a unit test
compares them). CLI only: the monitor never imports it.

The monitor reads and writes a run's records, state, leases and exported logs in AWS_BUCKET (chalicelib/monitor/
observe.py, apply.py). SOURCE_BUCKET is the workers' alone; of DESTINATION_BUCKET the monitor may list the output
roots (a dead-lettered job whose outputs are complete is done: chalicelib/monitor/output_rule.py), never read them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.model import names
from chalicelib.model.errors import ConfigError, UserError
from chalicelib.model.jobs import output_root
from chalicelib.model.jsonfile import read_json_file
from chalicelib.monitor.service import BUCKETS_ENV

if TYPE_CHECKING:
    from chalicelib.model.settings import Settings

APP_NAME = names.MONITOR_APP
TEMPLATE_STAGE = "dev"  # a stage not yet in .chalice/config.json is made in its shape
STAGE_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")  # a stage is part of each function's name (Lambda's characters)
API_FUNCTION = "api_handler"  # Chalice's name for the function behind the REST API
LOG_GROUPS = [f"arn:aws:logs:*:*:log-group:/aws/lambda/{APP_NAME}-*",
              f"arn:aws:logs:*:*:log-group:/aws/lambda/{APP_NAME}-*:*"]
RUN_TAGGED = {"Null": {f"aws:ResourceTag/{names.RUN_TAG}": "false"}}  # the resource carries a run's tag


@dataclass(frozen=True)
class Watched:
    """What one deployment of the monitor must reach: each sorted, each name once."""

    buckets: tuple[str, ...]
    dead_letter_queues: tuple[str, ...]
    # (DESTINATION_BUCKET, its runs' output roots) for each one that is no watched bucket: listed, never read, to
    # tell a dead-lettered job done (chalicelib/monitor/output_rule.py)
    outputs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, runs: Iterable[Settings]) -> Watched:
        """From the runs' Settings: each run's AWS_BUCKET and SQS_DEAD_LETTER_QUEUE, and where its outputs go."""
        runs = list(runs)
        buckets = tuple(sorted({run.AWS_BUCKET for run in runs}))
        roots: dict[str, set[str]] = {}
        for run in runs:
            if run.DESTINATION_BUCKET not in buckets:
                roots.setdefault(run.DESTINATION_BUCKET, set()).add(output_root(run))
        return cls(buckets, tuple(sorted({run.SQS_DEAD_LETTER_QUEUE for run in runs})),
                   tuple((bucket, tuple(sorted(found))) for bucket, found in sorted(roots.items())))


def _statement(sid: str, actions: list[str], resource: str | list[str],
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _objects(buckets: Iterable[str], *prefixes: str) -> list[str]:
    return [f"arn:aws:s3:::{bucket}/{prefix}*" for bucket in buckets for prefix in prefixes]


def _buckets(buckets: Iterable[str]) -> list[str]:
    return [f"arn:aws:s3:::{bucket}" for bucket in buckets]


_READ_FLEETS = ["ec2:DescribeFleets", "ec2:DescribeFleetInstances", "ec2:DescribeFleetHistory",
                "ec2:DescribeSpotFleetRequests", "ec2:DescribeSpotFleetInstances",
                "ec2:DescribeSpotFleetRequestHistory", "ec2:DescribeInstances", "ec2:DescribeLaunchTemplates"]
_READ_SERVICES = ["ecs:DescribeServices", "ecs:DescribeClusters", "ecs:ListContainerInstances",
                  "ecs:DescribeContainerInstances", "ecs:ListTaskDefinitions"]
_READ_QUEUES = ["sqs:GetQueueAttributes", "sqs:ListQueueTags"]
_READ_ALARMS = ["cloudwatch:DescribeAlarms", "cloudwatch:GetDashboard"]
_READ_LOGS = ["logs:ListTagsLogGroup", "logs:DescribeExportTasks"]


def _look_at_dead_letters(watched: Watched) -> dict[str, Any]:
    """Receiving a dead-letter message and making it visible again at once (SQS has no other way to read one): the
    status API's list of failed jobs, and the monitor's count of them for a run's summary (observe.py
    `_failed_at_teardown`; a DS image's worker writes no failure record)."""
    return _statement("LookAtTheDeadLetterQueuesForDSImageRunsFailedJobs",
                      ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"],
                      [f"arn:aws:sqs:*:*:{queue}" for queue in watched.dead_letter_queues])


def _list_outputs(watched: Watched) -> list[dict[str, Any]]:
    """Listing the runs' output roots in each DESTINATION_BUCKET that is no watched bucket (those are listed whole
    already): a dead-lettered job whose outputs are complete is done, not failed (failed.not_done). Keys and sizes
    only: no object there is read."""
    statements = []
    for number, (bucket, roots) in enumerate(watched.outputs, 1):
        statement = _statement(f"ListRunOutputsToTellDeadLetteredJobsDone{number}", ["s3:ListBucket"],
                               _buckets([bucket]))
        if all(roots):  # a root '' (OUTPUT_PREFIX starts with a job value): outputs anywhere in the bucket
            statement["Condition"] = {"StringLike": {"s3:prefix": [root + "*" for root in roots]}}
        statements.append(statement)
    return statements


def monitor_policy(watched: Watched) -> dict[str, Any]:
    """The alarm and schedule handlers' policy: read everything of a run, change only what carries a run's tag.
    tests/integration/test_iam_policy.py proves it holds every call the monitor makes and nothing more."""
    buckets = watched.buckets
    return {"Version": "2012-10-17", "Statement": [
        _statement("OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], LOG_GROUPS),
        _statement("ListWatchedBuckets", ["s3:ListBucket"], _buckets(buckets)),
        *_list_outputs(watched),
        _statement("RunRecordsStateAndSummaries", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                   _objects(buckets, "monitors/")),
        _statement("RemoveBusyLeasesAndFailureJournalAtTeardown", ["s3:DeleteObject"], _objects(buckets, "runs/")),
        _statement("LogExportsWriteWithTheCallersRights", ["s3:PutObject"], _objects(buckets, "exportedlogs/")),
        _statement("ReadQueues", _READ_QUEUES, "arn:aws:sqs:*:*:*"),
        _look_at_dead_letters(watched),
        _statement("DeleteOnlyRunQueues", ["sqs:DeleteQueue"], "arn:aws:sqs:*:*:*", RUN_TAGGED),
        _statement("ReadFleetsAndMachines", _READ_FLEETS, "*"),
        _statement("ScaleAndStopOnlyRunFleetsAndMachines",
                   ["ec2:ModifyFleet", "ec2:DeleteFleets", "ec2:ModifySpotFleetRequest", "ec2:CancelSpotFleetRequests",
                    "ec2:TerminateInstances"], "*", RUN_TAGGED),
        _statement("DeleteOnlyRunLaunchTemplates", ["ec2:DeleteLaunchTemplate"], "*", RUN_TAGGED),
        _statement("ReadServicesAndClusters", _READ_SERVICES, "*"),
        _statement("ChangeOnlyRunServicesAndClusters", ["ecs:UpdateService", "ecs:DeleteService", "ecs:DeleteCluster"],
                   "*", RUN_TAGGED),
        _statement("DeregisterTaskDefinitionsHasNoResourceLevelPermissions", ["ecs:DeregisterTaskDefinition"], "*"),
        _statement("ReadAlarmsAndDashboards", _READ_ALARMS, "*"),
        _statement("DeleteOnlyRunAlarms", ["cloudwatch:DeleteAlarms"],
                   ["arn:aws:cloudwatch:*:*:alarm:ApproximateNumberOfMessagesVisibleisZero_*",
                    "arn:aws:cloudwatch:*:*:alarm:ApproximateNumberOfMessagesNotVisibleisZero_*",
                    "arn:aws:cloudwatch:*:*:alarm:*_i-*"]),
        _statement("DeleteAlarmsCarryingARunTag", ["cloudwatch:DeleteAlarms"], "arn:aws:cloudwatch:*:*:alarm:*",
                   RUN_TAGGED),
        _statement("MakeMachinesIdleAlarmsTaggedWithTheirRun", ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"],
                   "arn:aws:cloudwatch:*:*:alarm:*_i-*"),
        _statement("FindAlarmsByRunTag", ["tag:GetResources"], "*"),
        _statement("DeleteRunDashboards", ["cloudwatch:DeleteDashboards"], "*"),
        _statement("ReadLogGroupTagsAndExports", _READ_LOGS, "*"),
        _statement("ExportOnlyRunLogGroups", ["logs:CreateExportTask"], "arn:aws:logs:*:*:log-group:*", RUN_TAGGED),
    ]}


def api_policy(watched: Watched) -> dict[str, Any]:
    """The status API's policy: reads only, but for looking at the dead-letter queues' messages (SQS has no way to
    read a message but receiving it; operations/triage.py makes each visible again at once)."""
    buckets = watched.buckets
    return {"Version": "2012-10-17", "Statement": [
        _statement("OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], LOG_GROUPS),
        _statement("ListRunRecordsAndLeases", ["s3:ListBucket"], _buckets(buckets)),
        *_list_outputs(watched),
        _statement("ReadRunRecordsSummariesAndLeases", ["s3:GetObject"], _objects(buckets, "monitors/", "runs/")),
        _statement("ReadRunQueues", _READ_QUEUES, "arn:aws:sqs:*:*:*"),
        _look_at_dead_letters(watched),
        _statement("ReadFleets", _READ_FLEETS, "*"),
        _statement("ReadServicesAndClusters", _READ_SERVICES, "*"),
        _statement("ReadAlarmsAndDashboards", _READ_ALARMS, "*"),
        _statement("FindAlarmsByRunTag", ["tag:GetResources"], "*"),
        _statement("ReadLogGroupTagsAndExports", _READ_LOGS, "*"),
    ]}


@dataclass(frozen=True)
class Deployment:
    """The three files of one stage, as text, and what each now holds, in the order they are written."""

    files: dict[Path, str]
    said: dict[Path, str]


def _file_name(value: object, where: str, default: str) -> str:
    """A policy file named by the stage: a plain file name beside config.json, as Chalice reads it."""
    if value is None:
        return default
    if not isinstance(value, str) or not value or Path(value).name != value:
        raise ConfigError(f"{where}: expected a file name in the .chalice folder, got {value!r}")
    return value


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """parent[key], an object, made empty if missing."""
    value = parent.setdefault(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key}: expected an object, got {type(value).__name__}")
    return value


def deployment(chalice_dir: str | Path, stage: str, watched: Watched) -> Deployment:
    """The stage's config.json (every other key and stage as it was) and the two policy files it names."""
    if not STAGE_PATTERN.match(stage):
        raise UserError(f"--stage: expected letters, digits, '-' or '_' (Chalice names the functions after it), "
                        f"got {stage!r}")
    chalice_dir = Path(chalice_dir)
    config_path = chalice_dir / "config.json"
    config = read_json_file(config_path, ConfigError)
    stages = config.get("stages") if isinstance(config, dict) else None
    if not isinstance(stages, dict):
        raise ConfigError(f"{config_path}: stages: expected an object of Chalice stages")
    made = stage not in stages
    if made:
        if not isinstance(stages.get(TEMPLATE_STAGE), dict):
            raise ConfigError(f"{config_path}: stages.{TEMPLATE_STAGE}: expected the stage a new stage {stage!r} "
                              "is made like")
        stages[stage] = copy.deepcopy(stages[TEMPLATE_STAGE])
    where = f"{config_path}: stages.{stage}"
    settings = _object(stages, stage, f"{config_path}: stages")
    api_settings = _object(_object(settings, "lambda_functions", where), API_FUNCTION, f"{where}.lambda_functions")
    if made:  # its own policy files (the defaults below): dev's stay dev's
        settings.pop("iam_policy_file", None)
        api_settings.pop("iam_policy_file", None)
    settings["autogen_policy"] = False
    monitor_file = _file_name(settings.get("iam_policy_file"), f"{where}.iam_policy_file", f"policy-{stage}.json")
    settings["iam_policy_file"] = monitor_file
    api_file = _file_name(api_settings.get("iam_policy_file"),
                          f"{where}.lambda_functions.{API_FUNCTION}.iam_policy_file", f"policy-api-{stage}.json")
    api_settings["iam_policy_file"] = api_file
    _object(settings, "environment_variables", where)[BUCKETS_ENV] = ",".join(watched.buckets)

    buckets, queues = ", ".join(watched.buckets), ", ".join(watched.dead_letter_queues)
    files = {config_path: _json(config), chalice_dir / monitor_file: _json(monitor_policy(watched)),
             chalice_dir / api_file: _json(api_policy(watched))}
    listed = "".join(f"; and list s3://{bucket}/{root or '*'}" for bucket, roots in watched.outputs for root in roots)
    said = {config_path: f"stage {stage} watches {buckets}",
            chalice_dir / monitor_file: f"the monitor may reach runs in {buckets} and the dead-letter queue(s) "
                                        f"{queues}{listed}",
            chalice_dir / api_file: f"the status API may read {buckets} and the dead-letter queue(s) {queues}{listed}"}
    return Deployment(files, said)


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def write(files: dict[Path, str]) -> None:
    """Every file is written whole beside its place before any is renamed over its place (atomic on POSIX): no file
    is ever left half-written, and a write that fails (a full disk, a folder in a file's place) changes none."""
    for target in files:
        if target.is_dir():  # the one place a rename would fail after the others were done
            raise UserError(f"{target}: expected a file, found a folder")
    staged: list[tuple[str, Path]] = []
    path: Path | None = None
    try:
        for path, text in files.items():
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((temporary, path))
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({error.strerror or error})") from None
    finally:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
