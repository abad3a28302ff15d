#!/usr/bin/env python3
"""A stand-in SQS endpoint for benchmarking clients: fixed latency, counts what it receives.

moto's SQS slows down as a queue grows, so it measures moto, not a client.
This speaks just enough of SQS's JSON protocol (boto3 >= 1.34 sends
`X-Amz-Target: AmazonSQS.<Operation>`) for GetQueueUrl, SendMessage,
SendMessageBatch and GetQueueAttributes (always an empty queue: submit checks
that the queue holds none of the run's jobs before sending), answers every
request after a fixed delay (15 ms, about what real SQS takes from inside a
region), and keeps no messages, only counts.
`GET /stats` returns the counts as JSON.

Run it on its own (it prints its URL) or import `start()`:
    python bench/sqs_standin.py --latency-ms 15
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "123456789012"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.messages = 0

    def add(self, messages: int) -> None:
        with self.lock:
            self.requests += 1
            self.messages += messages


def _handler(stats: Stats, latency: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as with real SQS

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm meets the
            # client's delayed ACK and every response waits ~40 ms more than the latency set.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:  # quiet: one line per request would dominate the run
            pass

        def do_GET(self) -> None:
            if self.path == "/stats":
                with stats.lock:
                    self._reply(200, {"requests": stats.requests, "messages": stats.messages})
            else:
                self._reply(404, {"__type": "NotFound"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            time.sleep(latency)
            if operation == "GetQueueUrl":
                host = self.headers.get("Host", "127.0.0.1")
                stats.add(0)
                self._reply(200, {"QueueUrl": f"http://{host}/{ACCOUNT}/{body['QueueName']}"})
            elif operation == "GetQueueAttributes":
                stats.add(0)  # it keeps no messages, so the queue always reads as empty
                self._reply(200, {"Attributes": {name: "0" for name in body.get("AttributeNames", [])}})
            elif operation == "SendMessage":
                stats.add(1)
                self._reply(200, _sent(body["MessageBody"]))
            elif operation == "SendMessageBatch":
                entries = body["Entries"]
                stats.add(len(entries))
                self._reply(200, {"Successful": [{"Id": entry["Id"], **_sent(entry["MessageBody"])}
                                                 for entry in entries], "Failed": []})
            else:
                self._reply(400, {"__type": "com.amazonaws.sqs#UnsupportedOperation",
                                  "message": f"stand-in does not implement {operation}"})

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _sent(body: str) -> dict:
    # botocore checks MD5OfMessageBody against what it sent.
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def start(latency_ms: float = 15.0, port: int = 0) -> tuple[_Server, Stats]:
    stats = Stats()
    server = _Server(("127.0.0.1", port), _handler(stats, latency_ms / 1000))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server, _ = start(args.latency_ms, args.port)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
