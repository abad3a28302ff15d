"""What the user watches during a local run: a live one-line bar on a terminal, plain lines otherwise.

The numbers are the monitor's own counts (chalicelib/monitor/counts.py, from queue
counts and failure records; the fleet's machines), so the bar shows what the
monitor decides on. Done never decreases and can lag the truth by a little;
the last line, drawn when the run is over, is the summary's exact counts.
"""

from __future__ import annotations

import time
from typing import IO

from chalicelib.model.printable import printable
from chalicelib.monitor.counts import Counts

BAR_WIDTH = 24


def clock_text(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, stream: IO[str], total: int, clock=time.monotonic, tty: bool | None = None):
        self.stream = stream
        self.total = total
        self.clock = clock
        self.started = clock()
        self.tty = stream.isatty() if tty is None else tty
        self._last_plain: tuple | None = None
        self._bar_shown = False

    def update(self, counts: Counts, machines: int, workers: int, tearing_down: bool = False,
               over: bool = False) -> None:
        """`over`: the run is over and `counts` are the summary's, the line's last state."""
        # done and skipped are both finished jobs: the live counts cannot tell them apart
        done, failed, left, running = counts.finished, counts.failed, counts.not_run, counts.running
        elapsed = self.clock() - self.started
        eta = "--"
        if over:
            eta = "over"
        elif tearing_down:
            eta = "tearing down"
        elif done and left:
            eta = "ETA " + clock_text(left * elapsed / done)
        elif not left:
            eta = "draining"
        counts = (f"{done}/{self.total} done, {failed} failed, {left} left ({running} running) | "
                  f"{machines} machine(s), {workers} worker(s) | {clock_text(elapsed)} {eta}")
        if self.tty:
            filled = BAR_WIDTH * (done + failed) // self.total if self.total else BAR_WIDTH
            self.stream.write(f"\r\x1b[K[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {counts}")
            self.stream.flush()
            self._bar_shown = True
            return
        key = (done, failed, left, running, machines, workers, tearing_down)
        if key != self._last_plain:  # a line per change, not per tick: logs stay short
            self._last_plain = key
            self.stream.write(counts + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A message line that does not break the bar (and that nothing in it can redraw: see printable)."""
        if self.tty and self._bar_shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(printable(text) + "\n")
        self.stream.flush()
        self._bar_shown = False

    def finish(self) -> None:
        if self.tty and self._bar_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_shown = False
