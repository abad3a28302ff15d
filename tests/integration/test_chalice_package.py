"""`chalice package` builds the deployment template offline, and the template says what we promise:
every status route needs IAM (SigV4) authorization, each function has its hand-written policy, the
alarm handler listens to topic Monitor and the schedule runs every minute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.imports import closure

REPO = Path(__file__).resolve().parents[2]
CHALICE = Path(sys.executable).with_name("chalice")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    """`chalice package` of the project as `chalice deploy` sees it; the output folder."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "app.py", project)
    shutil.copytree(REPO / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    # Offline: the template does not depend on the vendored packages, so none are downloaded here.
    (project / "requirements.txt").write_text("")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([str(CHALICE), "package", str(project / "out")], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return project / "out"


@pytest.fixture(scope="module")
def template(packaged) -> dict:
    return json.loads((packaged / "sam.json").read_text())


def test_the_lambda_zip_holds_the_handlers_import_closure_only(packaged):
    """The zip is app.py, the modules of ours it imports (tests/imports.py follows them from app.py) and
    Chalice's runtime: no CLI-only operation, local mode, moto patch, worker or test (the vendored requirements
    are added by `chalice deploy`; offline here)."""
    with zipfile.ZipFile(packaged / "deployment.zip") as archive:
        names = sorted(name for name in archive.namelist() if not name.endswith("/"))
    imported = sorted(str(path.relative_to(REPO)) for path in closure(REPO / "app.py"))
    runtime = [name for name in names if name.startswith("chalice/")]  # Chalice's own runtime, added by Chalice
    assert [name for name in names if name not in runtime] == imported
    assert not [name for name in names if any(word in name for word in ("local", "moto", "metadata", "test"))]
    print(f"\nLambda zip without its requirements: {(packaged / 'deployment.zip').stat().st_size:,} bytes, "
          f"{len(names)} files")


def functions(template: dict) -> dict:
    return {name: resource["Properties"] for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"}


def policy_of(template: dict, function: dict) -> dict:
    role = function["Role"]["Fn::GetAtt"][0]
    return template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]


def test_every_status_route_requires_iam_authorization(template):
    api = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    methods = [(path, verb, spec) for path, verbs in api["paths"].items() for verb, spec in verbs.items()]
    assert {(path, verb) for path, verb, _ in methods} == {("/runs", "get"), ("/runs/{app_name}", "get"),
                                                          ("/runs/{app_name}/failed", "get")}
    for path, verb, spec in methods:
        assert spec["security"] == [{"sigv4": []}], (path, verb)
    assert api["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_each_function_has_its_hand_written_policy_and_settings(template):
    found = functions(template)
    assert set(found) == {"OnAlarm", "EveryPeriod", "APIHandler"}
    monitor_policy = json.loads((REPO / ".chalice" / "policy-dev.json").read_text())
    api_policy = json.loads((REPO / ".chalice" / "policy-api-dev.json").read_text())
    assert policy_of(template, found["OnAlarm"]) == monitor_policy
    assert policy_of(template, found["EveryPeriod"]) == monitor_policy
    assert policy_of(template, found["APIHandler"]) == api_policy
    assert found["OnAlarm"]["Timeout"] == 300 and found["OnAlarm"]["MemorySize"] == 512
    assert found["OnAlarm"]["Environment"]["Variables"]["MONITOR_BUCKETS"]


def test_each_reconciling_function_runs_one_invocation_at_a_time(template):
    """A second line behind the monitor state's conditional writes: a duplicate alarm or a tick while the last one
    still runs waits (Lambda retries a throttled event invocation) instead of reconciling beside it. The alarm
    handler and the schedule are two functions, so one of each can still run at once: the conditional writes
    are what keeps their state writes apart (tests/integration/test_no_lost_update.py)."""
    found = functions(template)
    assert found["OnAlarm"]["ReservedConcurrentExecutions"] == 1
    assert found["EveryPeriod"]["ReservedConcurrentExecutions"] == 1
    assert "ReservedConcurrentExecutions" not in found["APIHandler"]  # status reads only: never throttled


def test_alarms_and_the_schedule_wake_the_monitor(template):
    found = functions(template)
    (sns,) = found["OnAlarm"]["Events"].values()
    assert sns["Type"] == "SNS" and sns["Properties"]["Topic"]["Fn::Sub"].endswith(":Monitor")
    (schedule,) = found["EveryPeriod"]["Events"].values()
    assert schedule["Properties"]["Schedule"] == "rate(1 minute)"


def test_cfn_lint_passes_on_the_template(template, tmp_path):
    path = tmp_path / "sam.json"
    path.write_text(json.dumps(template))
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 0, result.stdout + result.stderr
