"""The embedded AWS: a moto server on 127.0.0.1 in this process, and sessions and environments that can reach
nothing else.

This process's clients come from `LocalSession` (through chalicelib.aws.sessions_from): dummy keys, the
endpoint passed to every client, the user's config and credentials files and configured endpoints ignored.
Its os.environ is left alone. Children (workers, their commands) get `local_environment`: every AWS_*
variable of the user removed (a service-specific endpoint such as AWS_ENDPOINT_URL_S3 would win over
AWS_ENDPOINT_URL), the files hidden, AWS_ENDPOINT_URL set. The moto patches are applied in this process,
which is the one that serves the requests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import boto3
import botocore.session

from chalicelib.model.errors import UserError
from localrun import api_gateway
from localrun.moto_patches import patched

DUMMY_KEY = "local-mode"  # moto accepts any key; these are not credentials of any account
# A key id naming the caller instead of DUMMY_KEY, so that an emulator's request log tells several local runs apart
# (tests/chaos audits which run touched what); never a user's key: AWS_ACCESS_KEY_ID is not read.
KEY_ID_VARIABLE = "DSR_LOCAL_KEY_ID"


def key_id() -> str:
    return os.environ.get(KEY_ID_VARIABLE) or DUMMY_KEY
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
        "AWS_ACCESS_KEY_ID": key_id(),
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
    machine), make every client of this process reach it; yields the endpoint URL.

    On exit the server stops and clients are made as before.
    """
    if endpoint is not None:
        ensure_patched(ensure_local(endpoint))
        with _pointed_at(endpoint, region):
            yield endpoint
        return
    with emulator(port=0) as url, _pointed_at(url, region):
        yield url


# Every response of this project's emulator carries this header: `local --endpoint` tells it from a plain moto
# server, which lacks the patches (moto_patches.py) and would leave a run that never finishes tearing down.
EMULATOR_HEADER = "X-Dsr-Emulator"


@contextlib.contextmanager
def emulator(port: int = 0) -> Iterator[str]:
    """This project's emulator: a moto server on 127.0.0.1:`port` (0: a free one) serving with the project's
    patches applied in this process; yields its URL and stops it on exit."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class Server(ThreadedMotoServer):
        # moto's own entry point (moto 5.2.5, pinned) with its app wrapped to add EMULATOR_HEADER
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)

            def marked(environ, start_response):
                def start(status, headers, *rest):
                    return start_response(status, [*headers, (EMULATOR_HEADER, "1")], *rest)

                # a deployed API's stage first: moto serves none (localrun/api_gateway.py says why)
                return api_gateway.serve(environ, start) or app(environ, start)

            self._server = make_server(self._ip_address, self._port, marked, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    # werkzeug logs every request to stderr; the progress line is the run's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with patched():
        server = Server(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            host, bound = server.get_host_and_port()
            yield f"http://{host}:{bound}"
        finally:
            server.stop()
            api_gateway.forget_code()


def ensure_patched(url: str) -> None:
    """UserError unless `url` answers as this project's emulator (`python cli.py emulator`)."""
    marked = None
    for _ in range(5):  # a 5xx on the way (a proxy in between) is asked again, as botocore would
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/moto-api/", timeout=5) as response:
                marked = response.headers.get(EMULATOR_HEADER)
        except urllib.error.HTTPError as error:
            marked = error.headers.get(EMULATOR_HEADER)
            if not marked and error.code >= 500:
                continue
        except OSError as error:
            raise UserError(f"local mode: nothing answers at {url} ({error}); start the emulator with "
                            "'python cli.py emulator --port N'") from None
        break
    if not marked:
        raise UserError(f"local mode: {url} is a plain moto server, without this project's patches (a run on it "
                        "never finishes tearing down); start 'python cli.py emulator --port N' instead")


class LocalSession(boto3.session.Session):
    """A session whose every client reaches `endpoint` with dummy keys, whatever the environment and the
    user's AWS files say."""

    def __init__(self, endpoint: str, region: str):
        # no profile, whatever AWS_PROFILE says: session_vars maps the variable to no environment name
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        core.set_config_variable("config_file", os.devnull)
        core.set_config_variable("credentials_file", os.devnull)
        core.set_config_variable("ignore_configured_endpoint_urls", True)  # AWS_ENDPOINT_URL_S3 and the like
        super().__init__(aws_access_key_id=key_id(), aws_secret_access_key=DUMMY_KEY, region_name=region,
                         botocore_session=core)
        self.endpoint = ensure_local(endpoint)

    def client(self, *args, **kwargs):
        kwargs["endpoint_url"] = self.endpoint
        return super().client(*args, **kwargs)


@contextlib.contextmanager
def _pointed_at(endpoint: str, region: str) -> Iterator[str]:
    import chalicelib.aws

    with chalicelib.aws.sessions_from(lambda wanted, _profile: LocalSession(endpoint, wanted or region)):
        yield endpoint


def check_clients_are_local(settings, endpoint: str, services=("s3", "sqs", "ec2", "iam", "logs", "ecs", "cloudwatch",
                                                                "resourcegroupstaggingapi")) -> None:
    """Belt and braces: every client this process makes must resolve to the embedded endpoint."""
    from chalicelib import aws

    for service in services:
        url = aws.client(service, settings).meta.endpoint_url
        if url.rstrip("/") != endpoint.rstrip("/"):
            raise NotLocal(f"local mode: refusing to go on, the {service} client would reach {url}")
