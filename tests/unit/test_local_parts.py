"""Local mode's pure parts: the endpoint guard, COMMAND on this machine, the progress line."""

from __future__ import annotations

import io
import os
import sys

import pytest

from chalicelib import aws
from chalicelib.model.errors import UserError
from chalicelib.monitor.counts import Counts
from localrun.embedded import NotLocal, embedded_aws, emulator, ensure_local, local_environment
from localrun.prepare import localize_command
from localrun.progress import Progress
from tests.conftest import make_settings


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://localhost:1", "http://[::1]:80"])
def test_a_loopback_endpoint_is_accepted(url):
    assert ensure_local(url) == url


@pytest.mark.parametrize("url", ["https://sqs.us-east-1.amazonaws.com", "http://10.0.0.5:5000", "http://0.0.0.0:5"])
def test_any_other_endpoint_is_refused(url):
    with pytest.raises(NotLocal, match="refusing to start"):
        ensure_local(url)


def test_the_local_environment_drops_every_aws_variable_of_the_user():
    env = local_environment("http://127.0.0.1:9", "eu-west-1", {
        "AWS_PROFILE": "lab", "AWS_ENDPOINT_URL_S3": "https://s3.amazonaws.com", "AWS_SESSION_TOKEN": "secret",
        "HOME": "/home/me"})
    assert env["HOME"] == "/home/me" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert not {"AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"} & set(env)
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == "local-mode"


def test_a_caller_named_by_dsr_local_key_id_signs_with_that_name_never_with_the_users_key(monkeypatch):
    # the chaos campaign (tests/chaos) tells its runs' requests apart by the key id they sign with
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERSREALKEY0000")
    monkeypatch.setenv("DSR_LOCAL_KEY_ID", "chaos-RunA")
    env = local_environment("http://127.0.0.1:9", "eu-west-1", dict(os.environ))
    assert env["AWS_ACCESS_KEY_ID"] == "chaos-RunA" and "AKIAUSERSREALKEY0000" not in env.values()
    with embedded_aws("eu-west-1", endpoint=None) as _:
        s3 = aws.client("s3", region="eu-west-1")
        assert s3._request_signer._credentials.access_key == "chaos-RunA"


def test_this_process_reaches_only_the_local_endpoint_and_its_environment_is_left_alone(monkeypatch, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = AKIAREALKEY\naws_secret_access_key = real\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.amazonaws.com")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://example.com")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "lab")
    before = dict(os.environ)

    with emulator() as running, embedded_aws("eu-west-1", endpoint=running) as endpoint:
        s3 = aws.client("s3", make_settings(AWS_PROFILE="lab", AWS_REGION="eu-west-1"))
        sqs = aws.client("sqs", region="us-west-2")
        assert dict(os.environ) == before
    outside = aws.client("s3", region="eu-west-1")

    assert s3.meta.endpoint_url == sqs.meta.endpoint_url == endpoint
    assert s3.meta.region_name == "eu-west-1" and sqs.meta.region_name == "us-west-2"
    assert s3._request_signer._credentials.access_key == "local-mode"
    assert outside.meta.endpoint_url == "https://s3.amazonaws.com"  # as before, once local mode is over


def test_python_becomes_this_python_and_a_file_beside_the_config_an_absolute_path(tmp_path):
    (tmp_path / "measure.py").write_text("")
    settings = _beside(tmp_path, ["python", "measure.py", "--out", "{output_dir}", "result.csv"])

    local, changes = localize_command(settings)

    assert (sys.executable, str(tmp_path / "measure.py"), "--out", "{output_dir}", "result.csv") == local.COMMAND
    assert len(changes) == 2 and local.AWS_PROFILE is None


def _beside(folder, command):
    settings = make_settings(COMMAND=command)
    return type(settings).from_mapping(settings.to_config(), source=str(folder / "config.json"))


@pytest.mark.parametrize("command, missing", [
    (["python", "measure.py", "{plate}"], "measure.py"),
    (["python", "-u", "scripts/run", "{plate}"], "scripts/run"),
    (["Rscript", "analysis.v2", "{plate}"], "analysis.v2"),
    (["bash", "scripts/run.sh", "{plate}"], "scripts/run.sh"),
    (["python3", "-X", "dev", "tools/measure.py"], "tools/measure.py"),
])
def test_a_script_that_is_not_beside_the_config_is_refused_before_anything_runs(tmp_path, command, missing):
    with pytest.raises(UserError) as refused:
        localize_command(_beside(tmp_path, command))

    assert str(refused.value) == (
        f"{tmp_path / 'config.json'}: COMMAND: script {missing!r} not found: looked for {tmp_path / missing} "
        "(local mode runs each job in a temporary folder; a relative path is taken from the config file's folder)")


@pytest.mark.parametrize("command", [
    ["python", "-X", "dev", "-W", "ignore", "-m", "cellprofiler", "-c", "-r", "--pipeline", "{input_dir}/p.cppipe",
     "out/x"],
    ["python", "-c", "print(1)", "0.5", "1e-3", "result.csv", "out/table.txt", "s3://bucket/a.py"],
    ["echo", "a/b", "notes.txt", "--file=missing.py", "{output_dir}/x.py", "-3"],
])
def test_options_numbers_templates_and_output_names_are_not_taken_for_missing_scripts(tmp_path, command):
    local, _ = localize_command(_beside(tmp_path, command))

    assert local.COMMAND[1:] == tuple(command[1:])


def test_a_program_not_on_this_machine_is_bad_input():
    with pytest.raises(UserError, match="program 'no-such-tool' not found on this machine"):
        localize_command(make_settings(COMMAND=["no-such-tool", "{plate}"]))


def test_on_a_terminal_progress_redraws_one_line_and_elsewhere_prints_a_line_per_change():
    now = [0.0]
    bar = Progress(io.StringIO(), total=10, clock=lambda: now[0], tty=True)
    now[0] = 5.0
    bar.update(Counts.live(10, waiting=4, in_flight=1, failed=0), machines=2, workers=4)
    text = bar.stream.getvalue()
    assert text.startswith("\r\x1b[K[") and "\n" not in text
    assert "5/10 done, 0 failed, 5 left (1 running) | 2 machine(s), 4 worker(s) | 0:05 ETA 0:05" in text

    plain = Progress(io.StringIO(), total=10, clock=lambda: now[0], tty=False)
    for _ in range(3):
        plain.update(Counts.live(10, waiting=4, in_flight=1, failed=0), machines=2, workers=4)
    plain.update(Counts.live(10, waiting=3, in_flight=1, failed=0), machines=2, workers=4)
    assert plain.stream.getvalue().count("\n") == 2 and "\r" not in plain.stream.getvalue()

