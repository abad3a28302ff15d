"""A user whose credentials come only from a named profile (AWS_PROFILE in config.json, no key variables):
every command that talks to AWS must make its clients from that profile."""

from __future__ import annotations

import pytest
from botocore.exceptions import NoCredentialsError
from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from tests.integration.world import Account, write_jobs


@pytest.fixture
def profile_only(aws, tmp_path, monkeypatch):
    """An account made ready, then only the profile 'lab' holds credentials (mock_aws sets key variables:
    they are removed, so a client made without the profile has none)."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    account = Account(tmp_path, AWS_PROFILE="lab")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    clients.forget_sessions()
    return account


def run(account, *args: str):
    result = CliRunner().invoke(cli, [*args, "--config", str(account.config_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_every_command_uses_the_configs_profile(profile_only, tmp_path):
    with pytest.raises(NoCredentialsError):  # the control: without the profile there are no credentials
        clients.client("s3", region="us-east-1").list_buckets()

    run(profile_only, "setup")
    assert "submitted 3 jobs" in run(profile_only, "submit", str(write_jobs(tmp_path, 3)))
    run(profile_only, "start-cluster", str(profile_only.fleet_path), "--wait", "0")
    assert "3 submitted, 3 waiting" in run(profile_only, "status")
    assert "machine(s) now in the fleet" in run(profile_only, "plan")
    assert "torn down; summary at s3://test-bucket/monitors/finished/TestApp_summary.json" in run(
        profile_only, "teardown", "--period", "0")
