"""The emulator's stand-in for a deployed REST API's stage: `{endpoint}/restapis/{id}/{stage}/_user_request_/{path}`
(where LocalStack serves it too), answered by the deployed Lambda as API Gateway's Lambda proxy integration does.

moto 5.2.5 (pinned) serves no stage in server mode, and would not invoke a Lambda proxy integration (its parsers
know only HTTP and AWS integrations; its Lambda invoke needs Docker). So the deployed zip, read back from the
emulator, runs here in a fresh interpreter with only the zip on its path, its own environment and the emulator as
its AWS, like tests/integration/test_chalice_deploy.py runs it.
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATH = re.compile(r"^/restapis/(?P<api_id>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
CREDENTIAL_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/execute-api/aws4_request")
INVOKE_TIMEOUT_SECONDS = 30  # API Gateway's integration timeout is 29 s
ACCOUNT = "123456789012"  # moto's default account, which every dummy key maps to
# API Gateway's answer to an unsigned request to an IAM-authorized method, and to a path it does not have
MISSING_TOKEN = (403, {"message": "Missing Authentication Token"})

RUNNER = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    module, name = sys.argv[2].rsplit(".", 1)
    handler = getattr(__import__(module), name)

    class Context:
        function_name = sys.argv[3]
        memory_limit_in_mb = 512
        invoked_function_arn = sys.argv[4]
        aws_request_id = sys.argv[5]

        def get_remaining_time_in_millis(self):
            return 30_000

    print(json.dumps(handler(json.loads(sys.stdin.read()), Context())))
''')

_unpacked: dict[str, Path] = {}
_lock = threading.Lock()


def serve(environ: dict, start_response: Callable) -> list[bytes] | None:
    """The answer to a stage request, or None when the request is not one (moto's own app answers it)."""
    found = PATH.match(environ.get("PATH_INFO", ""))
    if found is None:
        return None
    status, headers, body = answer(found["api_id"], found["stage"], found["path"] or "/", environ)
    start_response(f"{status} {'OK' if status < 400 else 'Error'}", [*headers.items()])
    return [body]


def answer(api_id: str, stage: str, path: str, environ: dict) -> tuple[int, dict[str, str], bytes]:
    from moto.apigateway.models import apigateway_backends
    from moto.awslambda.models import lambda_backends

    # the status API's routes are all IAM-authorized: without a signature there is no region to look in either.
    # moto checks no signature (it has no secret keys to check against); that a request is signed is what is held
    signed = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if signed is None:
        return _json(*MISSING_TOKEN)
    region = signed["region"]
    api = apigateway_backends[ACCOUNT][region].apis.get(api_id)
    if api is None or stage not in api.stages:
        return _json(*MISSING_TOKEN)
    method_name = environ.get("REQUEST_METHOD", "GET")
    for resource in api.resources.values():
        parameters = _match(resource.get_path(), path)
        if parameters is not None and method_name in resource.resource_methods:
            break
    else:
        return _json(*MISSING_TOKEN)
    integration = resource.resource_methods[method_name].method_integration
    # arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations
    function_arn = integration.uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
    function = lambda_backends[ACCOUNT][region].get_function(function_arn)
    event = _event(resource.get_path(), path, parameters, stage, method_name, environ, signed["key"])
    endpoint = f"{environ.get('wsgi.url_scheme', 'http')}://{environ['HTTP_HOST']}"
    result = _invoke(function, event, endpoint, region)
    if result is None:
        return _json(502, {"message": "Internal server error"})  # API Gateway's answer to a failed integration
    headers = {**(result.get("headers") or {}), **{key: values[-1] for key, values in
                                                    (result.get("multiValueHeaders") or {}).items() if values}}
    return int(result.get("statusCode", 200)), headers, str(result.get("body") or "").encode()


def _match(template: str, path: str) -> dict[str, str] | None:
    pattern = "^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "/?$"
    found = re.match(pattern, path)
    return None if found is None else found.groupdict()


def _event(resource: str, path: str, parameters: dict[str, str], stage: str, method: str, environ: dict,
           access_key: str) -> dict[str, Any]:
    """API Gateway's proxy event (payload format 1.0), with the fields Chalice reads."""
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
    query = dict(part.split("=", 1) if "=" in part else (part, "")
                 for part in environ.get("QUERY_STRING", "").split("&") if part)
    return {"resource": resource, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {key: [value] for key, value in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {key: [value] for key, value in query.items()} or None,
            "pathParameters": parameters or None, "stageVariables": None, "body": None, "isBase64Encoded": False,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": stage,
                               "path": f"/{stage}{path}", "requestId": str(uuid.uuid4()),
                               "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                                            "accessKey": access_key}}}


def _invoke(function, event: dict, endpoint: str, region: str) -> dict | None:
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local-mode",
           "AWS_SECRET_ACCESS_KEY": "local-mode", "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
           "AWS_LAMBDA_FUNCTION_NAME": function.function_name, **function.environment_vars}
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", RUNNER, str(_code_dir(function.code_bytes)), function.handler,
             function.function_name, function.function_arn, str(uuid.uuid4())],
            input=json.dumps(event), env=env, capture_output=True, text=True, timeout=INVOKE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        sys.stderr.write(result.stderr[-3000:])  # the function's traceback, as its log group would hold it
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def forget_code() -> None:
    """Remove the unpacked zips: the emulator stops, and everything it held is gone."""
    with _lock:
        for folder in _unpacked.values():
            shutil.rmtree(folder, ignore_errors=True)
        _unpacked.clear()


def _code_dir(code: bytes) -> Path:
    """The zip unpacked once per version of the code, for the emulator's lifetime."""
    digest = hashlib.sha256(code).hexdigest()
    with _lock:
        if digest not in _unpacked:
            folder = Path(tempfile.mkdtemp(prefix="dsr-lambda-"))
            with zipfile.ZipFile(io.BytesIO(code)) as opened:
                opened.extractall(folder)
            _unpacked[digest] = folder
        return _unpacked[digest]


def _json(status: int, document: dict) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(document).encode()
