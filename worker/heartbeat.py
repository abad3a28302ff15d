"""Keep a running job's message invisible, so no second worker gets it.

DS users must guess a visibility timeout longer than their slowest job and
get duplicates when they guess short. Here the visibility stays short and a
thread extends it while the command runs. SQS caps a message's total
visibility at 12 hours from its receipt: the heartbeat never asks for more
than what is left, and warns as the cap nears, because past it another worker
will receive the job while this one still runs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.aws import error_code
from chalicelib.aws.sqs import set_visibility
from chalicelib.runfiles.joblines import LONG_JOB_WARNING, NOT_EXTENDED_WARNING

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the worker image
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("worker.heartbeat")

SQS_VISIBILITY_CAP_SECONDS = 43200
WARN_BEFORE_CAP_SECONDS = 3600
# Floor on the interval, so a tiny visibility timeout does not become a busy loop of API calls.
MIN_INTERVAL_SECONDS = 0.2


def default_interval(visibility: int) -> float:
    """A third of the visibility: two extensions can fail before the message reappears."""
    return max(MIN_INTERVAL_SECONDS, visibility / 3)


def next_visibility(visibility: int, elapsed: float, cap: int = SQS_VISIBILITY_CAP_SECONDS) -> int:
    """The timeout to ask for now: `visibility`, but never past the cap counted from receipt."""
    return max(0, min(visibility, int(cap - elapsed)))


class Heartbeat(threading.Thread):
    def __init__(self, sqs: SQSClient, queue_url: str, receipt_handle: str, visibility: int, interval: float,
                 say: Callable[[str], None], received_at: float | None = None,
                 clock: Callable[[], float] = time.monotonic, on_beat: Callable[[], None] | None = None):
        super().__init__(name="heartbeat", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.receipt_handle = receipt_handle
        self.visibility = visibility
        self.interval = interval
        self.say = say  # writes to the job's log, where the user looks
        self.on_beat = on_beat  # keeps the worker's busy lease fresh on the same rhythm
        self.clock = clock
        self.received_at = clock() if received_at is None else received_at
        self.extensions = 0
        self._stopped = threading.Event()
        self._warned = False

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            if self.on_beat is not None:
                self.on_beat()
            if not self.beat():
                return

    def beat(self) -> bool:
        """Extend once; False when there is nothing more to extend."""
        elapsed = self.clock() - self.received_at
        remaining = SQS_VISIBILITY_CAP_SECONDS - elapsed
        if remaining <= WARN_BEFORE_CAP_SECONDS and not self._warned:
            self._warned = True
            self.say(f"{LONG_JOB_WARNING}{elapsed / 3600:.1f} h; SQS keeps a message hidden at most 12 h "
                     f"from its receipt, so in {max(0, remaining) / 60:.0f} min another worker may start it too")
        timeout = next_visibility(self.visibility, elapsed)
        if timeout <= 0:
            return False
        try:
            set_visibility(self.sqs, self.queue_url, self.receipt_handle, timeout)
        except Exception as error:  # noqa: BLE001 - a failed extension must not stop the job
            code = error_code(error)
            self.say(f"{NOT_EXTENDED_WARNING}({code or error}); "
                     "another worker may start this job too")
            # A rejected extension (cap reached, receipt gone) will not succeed later either.
            return code not in ("InvalidParameterValue", "ReceiptHandleIsInvalid", "MessageNotInflight")
        self.extensions += 1
        return True

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
