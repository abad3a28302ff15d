"""`chalice deploy` end to end against this project's emulator (the moto server of the tests), as a user runs
it after `setup`; then the deployed zip, taken back from the emulator, imported on its own in a fresh
interpreter and its three handlers invoked against the emulator; then `chalice delete`.

moto's gaps on the way (ImportRestApi of Chalice's Swagger 2.0 document, the methods' IAM authorization) are
patched in localrun/moto_patches.py, which the emulator applies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from chalicelib import aws as clients
from operations.start import cluster
from operations.start.fleet import load_fleet_file
from tests.conftest import BASE_CONFIG
from tests.integration.world import NOTHING_LEFT, Account, drain, the_run, what_is_left

REPO = Path(__file__).resolve().parents[2]
CHALICE = Path(sys.executable).with_name("chalice")
PERIOD_MINUTES = 5
FUNCTIONS = {"ds-runner-monitor-dev-on_alarm": "policy-dev.json",
             "ds-runner-monitor-dev-every_period": "policy-dev.json",
             "ds-runner-monitor-dev": "policy-api-dev.json"}

pytestmark = pytest.mark.slow


def copy_project(project: Path) -> Path:
    """The project as `chalice deploy` sees it, as committed."""
    project.mkdir()
    shutil.copy(REPO / "app.py", project)
    shutil.copy(REPO / "requirements.txt", project)
    shutil.copytree(REPO / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments", "deployed"))
    return project


def watch(project: Path, *configs: Path) -> None:
    """`cli.py monitor-config CONFIG...` in the project, as a user runs it before `chalice deploy`."""
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "monitor-config", *map(str, configs)],
                            cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def project(tmp_path) -> Path:
    """The project as `chalice deploy` sees it, watching the tests' run (tests/integration/world.py's Account)."""
    project = copy_project(tmp_path / "project")
    config = tmp_path / "watched.json"
    config.write_text(json.dumps(BASE_CONFIG))
    watch(project, config)
    return project


def chalice(project: Path, *args: str) -> str:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "MONITOR_PERIOD_MINUTES": str(PERIOD_MINUTES)}
    result = subprocess.run([str(CHALICE), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def deployed() -> dict:
    """What the emulator holds of the deployment, read back as a user would with the AWS APIs."""
    aws_lambda, iam, events = clients.client("lambda"), clients.client("iam"), clients.client("events")
    functions = {item["FunctionName"]: item for item in aws_lambda.list_functions()["Functions"]}
    policies = {}
    for name, function in functions.items():
        role = function["Role"].rsplit("/", 1)[1]
        policies[name] = {policy: iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
                          for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]}
    api_gateway = clients.client("apigateway")
    apis = api_gateway.get_rest_apis()["items"]
    methods = {}
    for api in apis:
        for resource in api_gateway.get_resources(restApiId=api["id"])["items"]:
            for verb in resource.get("resourceMethods", {}):
                methods[(resource["path"], verb)] = api_gateway.get_method(
                    restApiId=api["id"], resourceId=resource["id"], httpMethod=verb)["authorizationType"]
    return {
        "functions": {name: (item["Handler"], item["Runtime"], item["FunctionArn"])
                      for name, item in functions.items()},
        "reserved_concurrency": {name: aws_lambda.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions") for name in functions},
        "policies": policies,
        "rules": [(rule["Name"], rule.get("ScheduleExpression")) for rule in events.list_rules()["Rules"]],
        "subscriptions": [(item["Protocol"], item["Endpoint"].rsplit(":", 1)[1], item["TopicArn"].rsplit(":", 1)[1])
                          for item in clients.client("sns").list_subscriptions()["Subscriptions"]],
        "apis": [(api["name"], api["id"]) for api in apis],
        "methods": methods,
    }


def test_chalice_deploy_after_setup_makes_what_the_policy_files_say_and_delete_leaves_nothing(moto_server, project,
                                                                                              tmp_path):
    Account(tmp_path)  # setup: the Monitor topic the alarm handler subscribes to must exist first, as on AWS

    chalice(project, "deploy")
    first = deployed()
    chalice(project, "deploy")
    second = deployed()

    assert sorted(first["functions"]) == sorted(FUNCTIONS)
    assert {name: handler for name, (handler, runtime, _) in first["functions"].items()} == {
        "ds-runner-monitor-dev-on_alarm": "app.on_alarm", "ds-runner-monitor-dev-every_period": "app.every_period",
        "ds-runner-monitor-dev": "app.app"}
    assert {runtime for _, runtime, _ in first["functions"].values()} == {"python3.11"}
    assert first["reserved_concurrency"] == {"ds-runner-monitor-dev-on_alarm": 1,
                                             "ds-runner-monitor-dev-every_period": 1, "ds-runner-monitor-dev": None}
    for name, policy_file in FUNCTIONS.items():
        [document] = first["policies"][name].values()
        document = json.loads(document) if isinstance(document, str) else document
        assert document == json.loads((project / ".chalice" / policy_file).read_text()), name
    assert first["rules"] == [("ds-runner-monitor-dev-every_period-event", f"rate({PERIOD_MINUTES} minutes)")]
    assert first["subscriptions"] == [("lambda", "ds-runner-monitor-dev-on_alarm", "Monitor")]
    assert first["methods"] == {("/runs", "GET"): "AWS_IAM", ("/runs/{app_name}", "GET"): "AWS_IAM",
                                ("/runs/{app_name}/failed", "GET"): "AWS_IAM"}
    assert second == first  # a second deploy changes nothing that is right

    chalice(project, "delete")
    gone = deployed()
    assert (gone["functions"], gone["rules"], gone["subscriptions"], gone["apis"]) == ({}, [], [], [])
    roles = [role["RoleName"] for role in clients.client("iam").list_roles()["Roles"]]
    assert not [role for role in roles if role.startswith("ds-runner-monitor")]


# Run in a fresh interpreter with only the unpacked zip and the standard library on sys.path (-I -S): the
# three handlers, each invoked as Lambda invokes it, with a recorded event.
INVOKE = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import app

    class Context:
        function_name = "ds-runner-monitor-dev"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ds-runner-monitor-dev"
        aws_request_id = "0-0-0"

        def get_remaining_time_in_millis(self):
            return 300_000

    events = json.loads(sys.argv[2])
    found = {"paths": [name for name in sys.modules if name.split(".")[0] in ("moto", "localrun", "tests", "worker")]}
    found["api"] = app.app(events["api"], Context())
    app.on_alarm(events["sns"], Context())
    for _ in range(4):
        app.every_period(events["schedule"], Context())
    found["module"] = app.__file__
    print(json.dumps(found))
''')


def api_event(path: str) -> dict:
    return {"resource": path, "path": path, "httpMethod": "GET", "headers": {"Host": "example"},
            "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
            "requestContext": {"resourcePath": path, "httpMethod": "GET", "stage": "api", "path": f"/api{path}",
                               "identity": {"sourceIp": "127.0.0.1"}, "requestId": "r"}}


def test_the_deployed_zip_runs_on_its_own_and_its_handlers_tear_a_run_down(moto_server, project, tmp_path):
    account = Account(tmp_path, ECS_CLUSTER="runs")
    chalice(project, "deploy")
    from moto.backends import get_backend

    code = get_backend("lambda")["123456789012"]["us-east-1"].get_function("ds-runner-monitor-dev-every_period")
    unpacked = tmp_path / "unpacked"
    archive = tmp_path / "function.zip"
    archive.write_bytes(code.code_bytes)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(unpacked)
    assert not [path for path in ("localrun", "worker", "tests", "moto", "cli.py") if (unpacked / path).exists()]
    environment = json.loads(json.dumps(clients.client("lambda").get_function_configuration(
        FunctionName="ds-runner-monitor-dev-every_period")["Environment"]["Variables"]))
    cluster.start_cluster(account.settings, load_fleet_file(account.fleet_path), wait_seconds=0, poll_seconds=0,
                          files_dir=tmp_path / "files")
    logs = clients.client("logs")
    for group, stream in (("TestApp", "P00000"), ("TestApp_perInstance", "TestApp/TestApp/task1")):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)  # as a worker and ECS would
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "started: job"}])
    drain(account)
    events = {"api": api_event("/runs"),
              "sns": json.loads((REPO / "tests" / "events" / "sns_alarm_queue_empty.json").read_text()),
              "schedule": {"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events",
                           "account": "123456789012", "time": "2026-11-29T00:00:00Z", "region": "us-east-1",
                           "resources": [], "detail": {}}}
    env = {"PATH": os.environ["PATH"], "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", **environment}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", INVOKE, str(unpacked), json.dumps(events)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["module"] == str(unpacked / "app.py") and found["paths"] == []
    assert found["api"]["statusCode"] == 200
    assert [run["app_name"] for run in json.loads(found["api"]["body"])["runs"]] == ["TestApp"]
    assert the_run(account) is None and what_is_left(account) == NOTHING_LEFT
    print(f"\ndeployed Lambda zip: {len(code.code_bytes):,} bytes")
