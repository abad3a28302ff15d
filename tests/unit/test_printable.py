"""Job-controlled text reaches the terminal escaped (chalicelib/model/printable.py), in every place that shows it."""

from __future__ import annotations

import io

import pytest

from chalicelib.model.printable import printable
from chalicelib.monitor.status import status_table
from localrun import report
from localrun.progress import Progress
from localrun.results import Results
from tests.conftest import make_settings

# What a hostile job prints: a clipboard write (OSC 52), a window title (OSC 0), a clear screen (CSI 2J), the same
# CSI in its 8-bit C1 form, and a right-to-left override that would show "exe.txt" as "txt.exe".
HOSTILE = "\x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x07\x1b[2J\x9b2J\u202eexe.txt"
SHOWN = "\\x1b]52;c;cHduZWQ=\\x07\\x1b]0;owned\\x07\\x1b[2J\\x9b2J\\u202eexe.txt"
UNSAFE = [chr(code) for code in (*range(0x20), 0x7f, *range(0x80, 0xa0), *range(0x202a, 0x202f),
                                 *range(0x2066, 0x206a)) if code != 0x09]


def test_terminal_sequences_are_shown_as_their_escapes():
    assert printable(HOSTILE) == SHOWN


@pytest.mark.parametrize("character", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_every_control_and_bidi_character_is_escaped(character):
    shown = printable(f"a{character}b")
    assert shown.startswith("a\\") and shown.endswith("b") and shown.isprintable()


def test_tab_ordinary_unicode_and_backslashes_stay_as_they_are():
    text = "plate\tP01 — Zürich 東京 مرحبا C:\\data\\x1b"
    assert printable(text) == text


def test_a_line_break_in_a_value_cannot_forge_a_line():
    assert printable("ok\nerror: fake\rover") == "ok\\x0aerror: fake\\x0dover"


def test_status_shows_a_stop_reason_quoting_a_job_escaped():
    status = {"app_name": "App", "state": "refused", "reason": f"ended with: {HOSTILE}"}
    assert status_table(status).splitlines()[-1] == f"reason  ended with: {SHOWN}"


def test_local_modes_summary_shows_the_why_line_and_job_ids_escaped(tmp_path):
    results = Results(jobs=1, failed=["j\x1b[2J"], failure_cause=f"all 1 failed job(s) (2 attempts) ended with: "
                                                                  f"{HOSTILE}", run_summary={"stop_reason": HOSTILE})
    table = report.table(make_settings(), results, tmp_path, machines=1, wall_seconds=1, notices=0, replacements=0,
                         stopped_by=None, crashed=[])

    assert f"why: all 1 failed job(s) (2 attempts) ended with: {SHOWN}" in table.splitlines()
    assert "  j\\x1b[2J  (no log)" in table.splitlines()
    assert f"the monitor stopped it: {SHOWN}" in table
    assert "\x1b" not in table and "\u202e" not in table


def test_local_modes_message_lines_show_an_error_text_escaped():
    stream = io.StringIO()
    Progress(stream, total=1, tty=False).say(f"warning: monitor check failed, retrying: {HOSTILE}")
    assert stream.getvalue() == f"warning: monitor check failed, retrying: {SHOWN}\n"
