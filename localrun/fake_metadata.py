"""A fake EC2 instance metadata endpoint (IMDSv2) for tests and local mode.

It answers what the worker asks: a session token (PUT /latest/api/token),
the instance id, and the spot interruption notice, which is 404 until
`interrupt()` is called. GETs without a valid token get 401, as on EC2, so the
worker's IMDSv2 handshake is exercised for real.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A worker stopped mid-request (the monitor released its machine) closes its end: not an error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeMetadataServer:
    def __init__(self, instance_id: str = "i-0123456789abcdef0", host: str = "127.0.0.1", port: int = 0):
        self.instance_id = instance_id
        self._token = secrets.token_hex(16)
        self._notice: dict | None = None
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                server.requests.append("PUT " + self.path)
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._reply(200, server._token)
                else:
                    self._reply(400, "bad token request")

            def do_GET(self):
                server.requests.append("GET " + self.path)
                if self.headers.get("X-aws-ec2-metadata-token") != server._token:
                    self._reply(401, "")
                elif self.path == "/latest/meta-data/instance-id":
                    self._reply(200, server.instance_id)
                elif self.path == "/latest/meta-data/spot/instance-action" and server._notice is not None:
                    self._reply(200, json.dumps(server._notice))
                else:
                    self._reply(404, "")

            def _reply(self, status: int, body: str):
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test and local-mode output clean
                pass

        self._server = _QuietServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-metadata", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeMetadataServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def interrupt(self, action: str = "terminate", seconds_ahead: int = 120) -> None:
        """From now on, answer the spot interruption notice, as AWS does two minutes ahead."""
        when = datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead)
        self._notice = {"action": action, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def __enter__(self) -> "FakeMetadataServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
