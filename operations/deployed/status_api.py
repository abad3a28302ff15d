"""`cli.py api PATH`: the deployed status API (app.py's routes, IAM-authorized) called with the config's credentials,
so a user needs no awscurl. CLI only: the monitor never calls its own API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from chalicelib import aws
from chalicelib.model import names
from chalicelib.model.errors import UserError

if TYPE_CHECKING:
    from chalicelib.model.settings import Settings

API_NAME = names.MONITOR_APP  # Chalice names the REST API after the app
SERVICE = "execute-api"
TIMEOUT_SECONDS = 60  # API Gateway's own limit is 29 s; a cold Lambda start comes on top of the answer


def find_api(settings: Settings) -> tuple[str, str]:
    """(id, stage) of the deployed status API, or UserError saying how to deploy it."""
    gateway = aws.client("apigateway", settings)
    for api in aws.paged(gateway, "get_rest_apis", "items"):
        if api["name"] == API_NAME:
            stages = gateway.get_stages(restApiId=api["id"])["item"]
            if stages:
                return api["id"], stages[0]["stageName"]
    raise UserError(f"no status API {API_NAME!r} deployed in {settings.AWS_REGION}: run 'chalice deploy' first")


def url_for(api_id: str, stage: str, path: str, region: str, endpoint: str | None) -> str:
    if endpoint:
        # the emulator (localrun/embedded.py) serves a stage where LocalStack does, not under execute-api's host
        return f"{endpoint.rstrip('/')}/restapis/{api_id}/{stage}/_user_request_{path}"
    return f"https://{api_id}.{SERVICE}.{region}.amazonaws.com/{stage}{path}"


def get(settings: Settings, path: str) -> Any:
    """The API's JSON answer to GET `path`, signed with SigV4 as the routes' AWS_IAM authorization requires."""
    if not path.startswith("/"):
        path = "/" + path
    api_id, stage = find_api(settings)
    url = url_for(api_id, stage, path, settings.AWS_REGION, os.environ.get("AWS_ENDPOINT_URL"))
    session = aws.session(settings.AWS_REGION, settings.AWS_PROFILE)
    credentials = session.get_credentials()
    if credentials is None:
        raise UserError("no usable AWS credentials to sign the request; set AWS_PROFILE in the config or configure "
                        "the AWS CLI")
    request = AWSRequest(method="GET", url=url, headers={"Accept": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), SERVICE, settings.AWS_REGION).add_auth(request)
    prepared = request.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(prepared.url, headers=dict(prepared.headers)),
                                    timeout=TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise UserError(f"GET {path}: HTTP {error.code}: {_message(error.read()) or error.reason}") from None
    except OSError as error:
        raise UserError(f"GET {path}: cannot reach {url} ({error})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise UserError(f"GET {path}: the answer is not JSON: {body[:200]!r}") from None


def _message(body: bytes) -> str:
    """The message of an error answer: Chalice's and API Gateway's JSON say it under "Message" or "message"."""
    try:
        document = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(document, dict):
        return str(document.get("Message") or document.get("message") or document)
    return str(document)
