"""The fake AWS world every test shares.

moto stands in for AWS: `aws` runs it in-process (`mock_aws`), `moto_server`
runs a real HTTP endpoint on 127.0.0.1 for tests where several processes (the
CLI, workers) must see the same world. Where moto differs from AWS, the patch
lives here, with a comment saying why.
"""

from __future__ import annotations

import os
import urllib.request

import pytest

from chalicelib.model.settings import Settings

REGION = "us-east-1"

BASE_CONFIG = {
    "APP_NAME": "TestApp",
    "DOCKERHUB_TAG": "example/worker:1",
    "AWS_BUCKET": "test-bucket",
    "AWS_PROFILE": None,
    "CLUSTER_MACHINES": 2,
    "MACHINE_TYPE": ["m5.large"],
    "MACHINE_PRICE": 0.1,
    "COMMAND": ["python", "-c", "print('hi')", "{plate}"],
}


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch, tmp_path_factory):
    """Dummy credentials and no profile files, so nothing can ever reach a real account."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("awsconfig") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    import chalicelib.aws

    chalicelib.aws.forget_sessions()
    yield
    chalicelib.aws.forget_sessions()


@pytest.fixture(autouse=True, scope="session")
def _moto_as_aws():
    """moto's differences from AWS that matter to us, patched in one place (see the module for each why)."""
    from localrun.moto_patches import patched

    with patched():
        yield


def make_settings(**overrides) -> Settings:
    return Settings.from_mapping({**BASE_CONFIG, **overrides})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def aws():
    """moto in-process: every boto3 client made inside talks to it."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def _moto_server_process():
    """This project's emulator (`python cli.py emulator`): moto's server, with the patches, in this process."""
    from localrun.embedded import emulator

    with emulator(port=0) as url:
        yield url


@pytest.fixture
def moto_server(_moto_server_process, monkeypatch):
    """A real moto endpoint on 127.0.0.1, emptied for each test; AWS_ENDPOINT_URL points at it."""
    url = _moto_server_process
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url
