"""Text a job controls, made safe to show on a terminal: `printable` is the one place the CLI's output goes through.

A job writes its output lines, its failure record (reason, last lines) and, through the breaker, the monitor's
stop reason. A terminal acts on what it is sent: ESC starts a sequence that can set the clipboard (OSC 52), the
window title (OSC 0) or clear the screen (CSI 2J); CR and BS overwrite what was shown; the C1 controls
U+0080-U+009F are the same sequences in their 8-bit form (U+009B is CSI); the Unicode bidi overrides and isolates
reorder what is displayed, so a line reads otherwise than it is (CVE-2021-42574, "Trojan Source").

Each of these is shown as its escape (`\\x1b`, `\\x9b`, `\\u202e`), so nothing reaches the terminal raw and the
user still sees that it was there. TAB stays: it only moves to the next tab stop, and programs' output (tables,
tracebacks of some tools) uses it. A newline is escaped too: what passes through here is one line, and a value
that brings its own line break could forge a line of ours. A backslash is left as it is (escaping it would
double every Windows path): `\\x1b` in the output may thus have been typed by the job, which is harmless.
"""

from __future__ import annotations

import re

# C0 controls but TAB, DEL, the C1 controls, and the bidi embeddings/overrides (U+202A-U+202E) and isolates
# (U+2066-U+2069).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The same set with TAB: characters that have no place in a name (an S3 prefix, a job id).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` as one line a terminal shows as it is: every control character (but TAB) and bidi control escaped."""
    return _UNSAFE.sub(_escape, text)
