"""A fault-injecting HTTP proxy in front of the moto server: AWS as it behaves on a bad day.

Every request is forwarded to moto unless the proxy decides to fail it. A
failed request never reaches moto: AWS throttles a request before acting on
it, so a retry of a throttled call is safe, and this is exactly the guarantee
our code and botocore's standard retries rely on. (A 5xx *after* the service
acted is a different fault: SQS standard queues then deliver a resent message
twice, which is why the worker tolerates duplicates; it is not injected here.)

The error is the one the service's protocol would return, so botocore parses
and classifies it as it would AWS's:
- SQS (JSON protocol): 400 `{"__type": "com.amazonaws.sqs#ThrottlingException"}`
- ECS (JSON protocol): 400 `{"__type": "ThrottlingException"}`
- EC2 (EC2 query protocol): 503 `<Response><Errors><Error><Code>RequestLimitExceeded`
- anything else, and a share of the above: a plain 500 with an empty body.

The service is read from the request's SigV4 credential scope, which names it.
Randomness is seeded, so a failing run can be replayed.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# Headers that describe one hop, not the request (RFC 9110 section 7.6.1).
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    service: str
    target: str  # X-Amz-Target (JSON protocols), e.g. "AmazonSQS.SendMessageBatch"; "" otherwise


# Told of every request the proxy forwarded, once moto answered: (method, path, headers, body, status, response
# body). The headers are the request's as received (case-insensitive `get`). Called on the request's own thread:
# the proxy is threaded, so an observer must be thread-safe (tests/chaos/audit.py Recorder is).
Observer = Callable[[str, str, Message, bytes, int, bytes], None]

# A rule decides the fault for one request: "throttle", "500", "ecs:<ErrorCode>" (an ECS request only),
# "sqs:<ErrorCode>" (an SQS request only), or None (forward it).
Rule = Callable[[Request], "str | None"]


class FaultProxy:
    """`rate` of requests (seeded) fail, plus whatever `rule` says; `faults` counts them by service and kind;
    `observer`, if given, is told of every request forwarded and moto's answer (a failed request never reached
    moto, so it is not told of those)."""

    def __init__(self, upstream: str, rate: float = 0.1, seed: int = 9, rule: Rule | None = None,
                 share_500: float = 0.25, observer: Observer | None = None):
        self.upstream = urlsplit(upstream)
        self.rate = rate
        self.rule = rule
        self.observer = observer
        self.share_500 = share_500
        self.faults: Counter = Counter()
        self.forwarded = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def decide(self, request: Request) -> str | None:
        with self._lock:
            fault = self.rule(request) if self.rule else None
            if fault is None and self.rate and self._random.random() < self.rate:
                fault = "500" if self._random.random() < self.share_500 else "throttle"
            if fault == "throttle" and request.service not in _THROTTLES:
                fault = "500"  # counted as what was sent
            if fault:
                self.faults[(request.service, fault)] += 1
            else:
                self.forwarded += 1
            return fault

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

            def log_message(self, *args) -> None:  # one line per request otherwise
                pass

            def _any(self) -> None:
                body = self._body()
                scope = _SCOPE.search(self.headers.get("Authorization", ""))
                request = Request(self.command, self.path, scope.group(1) if scope else "",
                                  self.headers.get("X-Amz-Target", ""))
                fault = proxy.decide(request)
                if fault:
                    self._reply(*_error(request, fault))
                else:
                    status, headers, answer = proxy._forward(self.command, self.path, self.headers, body)
                    if proxy.observer:
                        proxy.observer(self.command, self.path, self.headers, body, status, answer)
                    self._reply(status, headers, answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler

    def _forward(self, method: str, path: str, headers, body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            sent = {name: value for name, value in headers.items() if name.lower() not in _HOP_HEADERS}
            sent["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


_THROTTLES = {
    "sqs": (400, [("Content-Type", "application/x-amz-json-1.0")],
            b'{"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}'),
    "ecs": (400, [("Content-Type", "application/x-amz-json-1.1")],
            b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'),
    "ec2": (503, [("Content-Type", "text/xml")],
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
            b"</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"),
}


def _error(request: Request, fault: str) -> tuple[int, list[tuple[str, str]], bytes]:
    if fault == "throttle":
        return _THROTTLES[request.service]
    if fault.startswith("ecs:"):  # an ECS error answer with that code (a JSON protocol), not retried by botocore
        return 400, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(
            {"__type": fault[4:], "message": "injected by the test"}).encode()
    if fault.startswith("sqs:"):  # an SQS error answer with that code (its JSON protocol), as _THROTTLES["sqs"]
        return 400, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(
            {"__type": f"com.amazonaws.sqs#{fault[4:]}", "message": "injected by the test"}).encode()
    return 500, [], b""


def fail_first(count: int, predicate: Callable[[Request], bool], fault: str = "500") -> Rule:
    """A rule failing the first `count` requests that match `predicate` (e.g. one object's upload)."""
    left = [count]

    def rule(request: Request) -> str | None:
        if left[0] > 0 and predicate(request):
            left[0] -= 1
            return fault
        return None

    return rule
