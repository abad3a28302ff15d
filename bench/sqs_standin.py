#!/usr/bin/env python3
"""A stand-in SQS endpoint for benchmarking clients: fixed latency, counts what it receives.

moto's SQS slows down as a queue grows, so it measures moto, not a client.
This speaks just enough of SQS's JSON protocol (boto3 >= 1.34 sends
`X-Amz-Target: AmazonSQS.<Operation>`) for GetQueueUrl, SendMessage,
SendMessageBatch and GetQueueAttributes (always an empty queue: submit checks
that the queue holds none of the run's jobs before sending), answers every
request after a fixed delay (15 ms, about what real SQS takes from inside a
region), and keeps no messages, only counts. `GET /stats` returns the counts
as JSON.

It shares the machine with the client being measured, and real SQS costs a
client's machine no CPU at all, so it is kept cheap: one asyncio thread (a
request waits on a timer, not in a thread of its own) and a minimal HTTP/1.1
keep-alive parser; about half the CPU per request of the threaded
http.server it replaces (bench/README.md prints its CPU beside each client's).

    python bench/sqs_standin.py --latency-ms 15     # prints its URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import uuid

ACCOUNT = "123456789012"


class Stats:
    def __init__(self):
        self.requests = 0
        self.messages = 0


def _sent(body: str) -> dict:
    # What SQS answers per message (botocore does not check the MD5; other SDKs do).
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}


def answer(stats: Stats, operation: str, body: dict, host: str) -> tuple[int, dict]:
    if operation == "GetQueueUrl":
        stats.requests += 1
        return 200, {"QueueUrl": f"http://{host}/{ACCOUNT}/{body['QueueName']}"}
    if operation == "GetQueueAttributes":
        stats.requests += 1  # it keeps no messages, so the queue always reads as empty
        return 200, {"Attributes": dict.fromkeys(body.get("AttributeNames", []), "0")}
    if operation == "SendMessage":
        stats.requests += 1
        stats.messages += 1
        return 200, _sent(body["MessageBody"])
    if operation == "SendMessageBatch":
        entries = body["Entries"]
        stats.requests += 1
        stats.messages += len(entries)
        return 200, {"Successful": [{"Id": entry["Id"], **_sent(entry["MessageBody"])} for entry in entries],
                     "Failed": []}
    return 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation",
                 "message": f"stand-in does not implement {operation}"}


def _response(status: int, payload: dict) -> bytes:
    data = json.dumps(payload).encode()
    # Head and body in one write: two would meet the client's delayed ACK (Nagle) and add ~40 ms.
    return (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}\r\n"
            f"Content-Type: application/x-amz-json-1.0\r\nContent-Length: {len(data)}\r\n"
            f"x-amzn-RequestId: {uuid.uuid4()}\r\n\r\n").encode() + data


async def _connection(stats: Stats, latency: float, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    """One client connection, kept alive as real SQS keeps it: its requests one after another."""
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(":") for line in head[1:] if line)}
            raw = await reader.readexactly(int(headers.get("content-length", 0)))
            if method == "GET":
                counts = {"requests": stats.requests, "messages": stats.messages}
                status, payload = (200, counts) if path == "/stats" else (404, {"__type": "NotFound"})
            else:
                await asyncio.sleep(latency)
                operation = headers.get("x-amz-target", "").rpartition(".")[2]
                status, payload = answer(stats, operation, json.loads(raw or b"{}"), headers.get("host", "127.0.0.1"))
            writer.write(_response(status, payload))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed the connection
    finally:
        writer.close()


async def serve(latency_ms: float, port: int = 0) -> None:
    stats = Stats()
    # asyncio sets TCP_NODELAY on every connection it accepts
    server = await asyncio.start_server(lambda reader, writer: _connection(stats, latency_ms / 1000, reader, writer),
                                        "127.0.0.1", port, backlog=256)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.latency_ms, args.port))


if __name__ == "__main__":
    main()
