"""chalicelib.aws: one place makes clients; AWS_ENDPOINT_URL, region and retries are honoured."""

import pytest

from chalicelib import aws as clients
from chalicelib.model.errors import UserError
from tests.conftest import make_settings


def test_client_talks_to_the_endpoint_in_aws_endpoint_url(moto_server):
    sqs = clients.client("sqs", make_settings(AWS_REGION="eu-west-1"))
    sqs.create_queue(QueueName="seen-through-the-server")
    assert sqs.meta.endpoint_url == moto_server
    assert sqs.meta.region_name == "eu-west-1"
    assert any(url.endswith("/seen-through-the-server") for url in sqs.list_queues()["QueueUrls"])


def test_client_uses_standard_retries_and_a_pool_for_threads(aws):
    s3 = clients.client("s3")
    config = s3.meta.config
    assert config.retries["mode"] == "standard"
    assert config.max_pool_connections >= 10


def test_an_unknown_profile_is_a_clear_error(aws):
    with pytest.raises(UserError, match="AWS_PROFILE: profile 'nobody' not found"):
        clients.client("s3", make_settings(AWS_PROFILE="nobody"))


def test_the_default_profile_falls_back_to_the_default_chain(aws):
    assert clients.client("s3", make_settings(AWS_PROFILE="default")).meta.region_name == "us-east-1"


def test_cli_reports_missing_credentials_in_one_line(aws, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from cli import cli
    from tests.conftest import BASE_CONFIG

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(BASE_CONFIG))
    result = CliRunner().invoke(cli, ["setup", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.startswith("error: no usable AWS credentials (Unable to locate credentials)")
    assert result.output.count("\n") == 1
