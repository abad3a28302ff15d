"""The audit of a chaos seed: every destructive request that reached the emulator, as JSON lines.

The fault proxy (tests/faults.py) calls `Recorder.observe` for each request it forwarded to moto, with moto's
answer. A request that succeeded (2xx) and may destroy or change something of a run becomes one line:

    {"caller": "chaos-RunA", "service": "sqs", "operation": "DeleteQueue", "status": 200,
     "resources": {"queue": ["http://127.0.0.1:PORT/123456789012/RunAQueue"]}}

The caller is the access key id of the request's SigV4 credential: the harness gives each run's processes the key
`chaos-<APP_NAME>` and the Lambda's ticks `chaos-lambda`, so the invariants (tests/chaos/invariants.py) can tell
whose action it was. Resources are named as the request names them, under one kind per resource type (RESOURCE_KINDS);
the invariants map each to its run.

Two things a destructive request does not say, learnt from earlier answers the proxy forwarded:
- which message a receipt handle is (SQS DeleteMessage/ChangeMessageVisibility name none): ReceiveMessage answers
  give each handle's message id, its `DeadLetterQueueSourceArn` (SQS's stamp: whose dead letter it is,
  chalicelib/monitor/deadletters.py) and its `dsr-app` attribute; the line's "messages" carries them;
- which ids a run's launch templates and fleets have once they are gone: CreateLaunchTemplate, CreateFleet and
  RequestSpotFleet become lines too, marked "destructive": false, with the ids from the answer and the tags of
  the request, so a later delete by id maps to its run.

PutMetricAlarm is recorded whether or not the alarm existed: an alarm's EC2 action runs as CloudWatch's own role on
the instance its dimensions name, so making one for another run's machine is an attack on that run (the line
carries the dimension's instance id). The line says whether the recorder had seen the alarm put before.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree

from botocore.parsers import RpcV2CBORParser

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/([A-Za-z]+)")

# Operation names that destroy or change what exists (issue 30's audit), and the few others that do as much
DESTRUCTIVE_PREFIXES = ("Delete", "Terminate", "Cancel", "Modify", "Update", "Deregister", "Remove", "Purge", "Stop",
                        "Untag", "Set")
DESTRUCTIVE_OPERATIONS = {"PutMetricAlarm", "PutDashboard", "ChangeMessageVisibility",
                          "ChangeMessageVisibilityBatch", "DeleteObjects"}
# Calls that make what a later delete names only by id: recorded (not destructive) so the id maps to its run
CREATIONS = {"CreateLaunchTemplate", "CreateFleet", "RequestSpotFleet"}
# S3 writes that matter: what the monitor trusts and the runs' own files (outputs are a job's to write)
S3_WATCHED_PUT_PREFIXES = ("monitors/", "runs/")

# Request parameter (any protocol; query lists as NAME.N or NAME.member.N) -> resource kind
RESOURCE_KINDS = {
    "QueueUrl": "queue",
    "InstanceId": "instance", "InstanceIds": "instance",
    "FleetId": "fleet", "FleetIds": "fleet", "SpotFleetRequestId": "fleet",
    "AlarmName": "alarm", "AlarmNames": "alarm",
    "DashboardName": "dashboard", "DashboardNames": "dashboard",
    "cluster": "cluster", "service": "service", "taskDefinition": "task_definition", "task": "task",
    "LaunchTemplateId": "launch_template", "LaunchTemplateName": "launch_template",
    "logGroupName": "log_group", "logGroupIdentifier": "log_group", "taskId": "export_task",
    "ResourceId": "ec2_resource", "resourceArn": "arn", "ResourceARN": "arn", "ResourceArn": "arn",
    "ResourceARNList": "arn", "TopicArn": "topic", "RoleName": "role", "InstanceProfileName": "instance_profile",
}


class Recorder:
    """Writes the audit lines of one seed to `path` (appended; one writer per file)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handles: dict[str, dict[str, Any]] = {}  # receipt handle -> the message it received
        self._alarms_put: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def observe(self, method: str, path: str, headers: Message | Mapping[str, str], body: bytes, status: int,
                response: bytes = b"") -> None:
        """tests/faults.py's Observer. Never raises: a request it cannot read becomes an "error" line, which the
        invariants report (a destructive call nobody can attribute is not proved harmless)."""
        try:
            line = self._line(method, path, headers, body, status, response)
        except Exception as error:  # noqa: BLE001 - the proxy must answer whatever the audit makes of it
            line = {"error": f"{type(error).__name__}: {error}", "method": method, "path": path[:300],
                    "status": status, "trace": traceback.format_exc(limit=3)[-600:]}
        if line is not None:
            self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        text = json.dumps({"time": round(time.time(), 3), **line}, sort_keys=True) + "\n"
        with self._lock, self.path.open("a") as handle:
            handle.write(text)

    def _line(self, method: str, path: str, headers, body: bytes, status: int,
              response: bytes) -> dict[str, Any] | None:
        if not 200 <= status < 300:
            return None  # refused: nothing changed
        credential = _CREDENTIAL.search(headers.get("Authorization") or "")
        caller, service = (credential.group(1), credential.group(2)) if credential else ("", "")
        if service == "s3" or (not service and method in ("PUT", "DELETE")):
            return self._s3_line(caller, method, path, headers, body, status)
        operation, params = _operation(path, headers, body)
        if operation == "ReceiveMessage":
            self._remember_handles(params, response)
            return None
        if operation in CREATIONS:
            return {"caller": caller, "service": service, "operation": operation, "status": status,
                    "destructive": False, "resources": _created(operation, params, response)}
        if not destructive(operation):
            return None
        line = {"caller": caller, "service": service, "operation": operation, "status": status,
                "destructive": True, "resources": resources(params)}
        if operation in ("DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility",
                         "ChangeMessageVisibilityBatch"):
            line["messages"] = self._messages(params)
        if operation == "PutMetricAlarm":
            name = str(params.get("AlarmName", ""))
            with self._lock:
                line["existed"] = name in self._alarms_put
                self._alarms_put.add(name)
        if operation == "DeleteAlarms":
            with self._lock:
                self._alarms_put.difference_update(line["resources"].get("alarm", []))
        return line

    def _s3_line(self, caller: str, method: str, path: str, headers, body: bytes, status: int) -> dict[str, Any] | None:
        parts = urlsplit(path)
        bucket, key = _bucket_and_key(parts.path, headers.get("Host") or "")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if method == "POST" and "delete" in query:
            keys = [element.text or "" for element in ElementTree.fromstring(body).iter()
                    if element.tag.rsplit("}", 1)[-1] == "Key"]
            return {"caller": caller, "service": "s3", "operation": "DeleteObjects", "status": status,
                    "destructive": True, "resources": {"s3": [f"{bucket}/{k}" for k in keys]}}
        if method == "DELETE":
            operation = "DeleteObject" if key else "DeleteBucket"
            if not key and query:
                operation = "DeleteBucket" + "".join(name[:1].upper() + name[1:] for name in sorted(query))
            return {"caller": caller, "service": "s3", "operation": operation, "status": status,
                    "destructive": True, "resources": {"s3": [f"{bucket}/{key}"]}}
        if method == "PUT" and key.startswith(S3_WATCHED_PUT_PREFIXES) and not query:
            return {"caller": caller, "service": "s3", "operation": "PutObject", "status": status,
                    "destructive": True, "resources": {"s3": [f"{bucket}/{key}"]}}
        return None

    def _remember_handles(self, params: dict[str, Any], response: bytes) -> None:
        try:
            answer = json.loads(response or b"{}")
        except ValueError:
            return  # a query-protocol answer: this project's clients speak SQS's JSON protocol
        with self._lock:
            for message in answer.get("Messages", []) or []:
                attributes = message.get("Attributes", {}) or {}
                named = (message.get("MessageAttributes", {}) or {}).get("dsr-app", {}) or {}
                self._handles[message["ReceiptHandle"]] = {
                    "queue": params.get("QueueUrl", ""), "message_id": message.get("MessageId", ""),
                    "source_arn": attributes.get("DeadLetterQueueSourceArn"), "named_run": named.get("StringValue")}

    def _messages(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        handles = [params["ReceiptHandle"]] if "ReceiptHandle" in params else [
            entry.get("ReceiptHandle", "") for entry in params.get("Entries", [])]
        visibility = [params.get("VisibilityTimeout")] * len(handles) if "ReceiptHandle" in params else [
            entry.get("VisibilityTimeout") for entry in params.get("Entries", [])]
        with self._lock:
            known = [self._handles.get(handle) for handle in handles]
        return [{**(message or {"unknown_handle": True}), "visibility": seconds}
                for message, seconds in zip(known, visibility, strict=True)]


def destructive(operation: str) -> bool:
    return operation.startswith(DESTRUCTIVE_PREFIXES) or operation in DESTRUCTIVE_OPERATIONS


def read(path: Path | str) -> list[dict[str, Any]]:
    """The lines of an audit file (none if it was never written)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def resources(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """The resources a request's parameters name, by kind (RESOURCE_KINDS), in the order named."""
    found: dict[str, list[str]] = {}
    for name, value in _flatten(params):
        kind = RESOURCE_KINDS.get(name)
        if kind is not None and value not in found.setdefault(kind, []):
            found[kind].append(str(value))
    for instance in _alarm_instances(params):  # PutMetricAlarm: the instance its EC2 action would act on
        if instance not in found.setdefault("instance", []):
            found["instance"].append(instance)
    return {kind: values for kind, values in found.items() if values}


def _alarm_instances(params: Mapping[str, Any]) -> list[str]:
    dimensions = params.get("Dimensions") or []
    return [str(dimension.get("Value")) for dimension in dimensions
            if isinstance(dimension, dict) and dimension.get("Name") == "InstanceId"]


def _flatten(value: Any, name: str = "") -> Iterator[tuple[str, Any]]:
    """(parameter name, scalar) for every scalar of a request, a list's items under the list's name; the
    dimensions of an alarm are left to _alarm_instances (their names are not resource kinds)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "Dimensions":
                yield from _flatten(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item, name)
    elif value is not None and name:
        yield name, value


def _operation(path: str, headers, body: bytes) -> tuple[str, dict[str, Any]]:
    """The operation and its parameters, for the JSON, CBOR and query protocols (S3 apart)."""
    target = headers.get("X-Amz-Target") or ""
    if target:  # JSON protocols: SQS, ECS, CloudWatch Logs, CloudWatch (JSON), the tagging API
        return target.rsplit(".", 1)[-1], json.loads(body or b"{}")
    cbor = _CBOR_PATH.match(urlsplit(path).path)
    if cbor:  # CloudWatch's Smithy RPC v2 CBOR protocol
        parser = RpcV2CBORParser()
        params = parser.parse_data_item(parser.get_peekable_stream_from_bytes(body)) if body else {}
        return cbor.group(1), params
    query = parse_qsl(body.decode() if body else urlsplit(path).query, keep_blank_values=True)
    return dict(query).get("Action", ""), _unflatten_query(query)


def _unflatten_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query protocol parameters (EC2, SNS, IAM): `InstanceId.1`, `AlarmNames.member.1`, `Dimensions.member.1.Name`
    become lists and dicts as the JSON protocols send them."""
    root: dict[str, Any] = {}
    for flat, value in pairs:
        *path, last = [part for part in flat.split(".") if part != "member"]
        node = root
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return {key: _lists(value) for key, value in root.items()}


def _lists(value: Any) -> Any:
    """The numbered dicts _unflatten_query made, as lists in their numbers' order."""
    if isinstance(value, dict):
        if value and all(key.isdigit() for key in value):
            return [_lists(value[key]) for key in sorted(value, key=int)]
        return {key: _lists(item) for key, item in value.items()}
    return value


def _bucket_and_key(path: str, host: str) -> tuple[str, str]:
    """S3's bucket and key, path-style (what botocore sends to an IP endpoint) or virtual-hosted."""
    host_name = host.split(":", 1)[0]
    if host_name and not re.fullmatch(r"[\d.]+|localhost", host_name) and "." in host_name:
        return host_name.split(".", 1)[0], unquote(path.lstrip("/"))
    bucket, _, key = path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def _created(operation: str, params: dict[str, Any], response: bytes) -> dict[str, list[str]]:
    """What a creation made (ids from EC2's XML answer) and the run tag its request carries."""
    root = ElementTree.fromstring(response)
    texts: dict[str, list[str]] = {}
    for element in root.iter():
        texts.setdefault(element.tag.rsplit("}", 1)[-1], []).append(element.text or "")
    made: dict[str, list[str]] = {}
    if operation == "CreateLaunchTemplate":
        made["launch_template"] = texts.get("launchTemplateId", [])[:1] + texts.get("launchTemplateName", [])[:1]
    else:
        made["fleet"] = (texts.get("fleetId") or texts.get("spotFleetRequestId") or [])[:1]
    tags = [tag for spec in _specs(params) for tag in spec.get("Tag", []) or []]
    made["run_tag"] = [str(tag.get("Value")) for tag in tags if isinstance(tag, dict) and tag.get("Key") == "dsr:app"]
    return {kind: values for kind, values in made.items() if values}


def _specs(params: dict[str, Any]) -> list[dict[str, Any]]:
    specs = params.get("TagSpecification") or params.get("SpotFleetRequestConfig", {}).get("TagSpecification") or []
    return [spec for spec in (specs if isinstance(specs, list) else [specs]) if isinstance(spec, dict)]
