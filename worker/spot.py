"""Instance metadata, the IMDSv2 way, and the spot interruption watch.

IMDSv2: PUT /latest/api/token for a session token, then GETs carrying it. On a
spot instance, /latest/meta-data/spot/instance-action answers 404 until AWS
decides to reclaim the machine, then 200 with {"action": ..., "time": ...}
about two minutes ahead; AWS advises checking every 5 seconds.

The base URL is configurable (DSR_METADATA_URL) so tests and local mode serve
a fake endpoint; "" turns metadata off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Callable

log = logging.getLogger("worker.spot")

TOKEN_TTL_SECONDS = 21600
# Off EC2 the link-local address does not answer at all; a short timeout keeps
# the probe cheap, and on EC2 the service answers in milliseconds.
TIMEOUT_SECONDS = 1.0


class MetadataUnavailable(Exception):
    """The metadata endpoint did not answer (not on EC2, or blocked)."""


class Metadata:
    def __init__(self, base_url: str, timeout: float = TIMEOUT_SECONDS):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    def get(self, path: str) -> str | None:
        """The text at /latest/meta-data/<path>, or None when it does not exist (404)."""
        for attempt in range(2):
            request = urllib.request.Request(f"{self.base_url}/latest/meta-data/{path}",
                                             headers={"X-aws-ec2-metadata-token": self._session_token()})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read().decode("utf-8")
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return None
                if error.code == 401 and attempt == 0:  # token expired or revoked: get a new one once
                    self._token = None
                    continue
                raise MetadataUnavailable(f"{path}: HTTP {error.code}") from None
            except (OSError, urllib.error.URLError) as error:
                raise MetadataUnavailable(f"{self.base_url}: {error}") from None
        raise MetadataUnavailable(f"{path}: token refused")

    def instance_id(self) -> str | None:
        """This machine's instance id, or None when not on EC2 (or metadata is off)."""
        if not self.base_url:
            return None
        try:
            return self.get("instance-id")
        except MetadataUnavailable:
            return None

    def spot_notice(self) -> dict | None:
        """The pending interruption ({"action", "time"}) or None."""
        text = self.get("spot/instance-action")
        if text is None:
            return None
        try:
            notice = json.loads(text)
        except ValueError:
            notice = None
        return notice if isinstance(notice, dict) else {"action": "unknown", "raw": text[:200]}

    def _session_token(self) -> str:
        if self._token is None or time.monotonic() > self._token_expires:
            request = urllib.request.Request(f"{self.base_url}/latest/api/token", method="PUT",
                                             headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self._token = response.read().decode("utf-8")
            except (OSError, urllib.error.URLError) as error:
                raise MetadataUnavailable(f"{self.base_url}: token: {error}") from None
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS - 60
        return self._token


class SpotWatch(threading.Thread):
    """Calls `on_notice(notice)` once, the first time an interruption notice appears."""

    def __init__(self, metadata: Metadata, interval: float, on_notice: Callable[[dict], None]):
        super().__init__(name="spot-watch", daemon=True)
        self.metadata = metadata
        self.interval = interval
        self.on_notice = on_notice
        self._stopped = threading.Event()

    def run(self) -> None:
        reachable = True
        while not self._stopped.is_set():
            try:
                notice = self.metadata.spot_notice()
            except MetadataUnavailable as error:
                # Keep watching: on EC2 a blip must not turn spot handling off for good.
                if reachable:
                    log.warning("instance metadata not reachable (%s); spot interruption notices cannot be seen "
                                "until it answers", error)
                reachable = False
            else:
                if not reachable:
                    log.info("instance metadata reachable again; watching for spot interruption notices")
                reachable = True
                if notice is not None:
                    self.on_notice(notice)
                    return
            self._stopped.wait(self.interval)

    def stop(self) -> None:
        self._stopped.set()
