"""The embedded AWS: a moto server on 127.0.0.1 in this process, and an environment that can reach nothing else.

Every AWS client of this process (chalicelib.aws honours AWS_ENDPOINT_URL) and
of every child (workers, their commands) talks to it. Before pointing there,
every AWS_* variable is removed (a service-specific endpoint such as
AWS_ENDPOINT_URL_S3 would win over AWS_ENDPOINT_URL) and the config and
credentials files are hidden, so no profile can bring real keys or another
endpoint. The moto patches are applied in this process, which is the one that
serves the requests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import urllib.parse
from typing import Iterator

from chalicelib.errors import UserError
from localrun.moto_patches import patched

DUMMY_KEY = "local-mode"  # moto accepts any key; these are not credentials of any account
LOCAL_HOSTS = ("localhost",)


class NotLocal(UserError):
    """The endpoint local mode would use is not on this machine."""


def ensure_local(url: str) -> str:
    """`url` if it points at this machine (loopback), else NotLocal: local mode never reaches real AWS."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOCAL_HOSTS
    if not loopback:
        raise NotLocal(f"local mode: refusing to start, the AWS endpoint {url!r} is not on this machine")
    return url


def local_environment(endpoint: str, region: str, environ: dict[str, str]) -> dict[str, str]:
    """`environ` without any AWS_* variable, plus what points every client at `endpoint`."""
    cleaned = {name: value for name, value in environ.items() if not name.startswith("AWS_")}
    cleaned.update({
        "AWS_ENDPOINT_URL": ensure_local(endpoint),
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",  # botocore must not look for instance credentials either
    })
    return cleaned


@contextlib.contextmanager
def embedded_aws(region: str, endpoint: str | None = None) -> Iterator[str]:
    """Start moto on a free loopback port (or use `endpoint`, an emulator already running on this
    machine), point this process at it; yields the endpoint URL.

    On exit the server stops and the environment is restored.
    """
    if endpoint is not None:
        with _pointed_at(ensure_local(endpoint), region):
            yield endpoint
        return
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request to stderr; the progress line is the run's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with patched():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            with _pointed_at(f"http://{host}:{port}", region) as url:
                yield url
        finally:
            server.stop()


@contextlib.contextmanager
def _pointed_at(endpoint: str, region: str) -> Iterator[str]:
    import chalicelib.aws

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(local_environment(endpoint, region, saved))
    chalicelib.aws.forget_sessions()  # sessions made before would keep the old environment
    try:
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
        chalicelib.aws.forget_sessions()


def check_clients_are_local(settings, endpoint: str, services=("s3", "sqs", "ec2", "iam", "logs", "ecs")) -> None:
    """Belt and braces: every client this process makes must resolve to the embedded endpoint."""
    from chalicelib import aws

    for service in services:
        url = aws.client(service, settings).meta.endpoint_url
        if url.rstrip("/") != endpoint.rstrip("/"):
            raise NotLocal(f"local mode: refusing to go on, the {service} client would reach {url}")
