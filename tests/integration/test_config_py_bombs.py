"""DS's config.py built to exhaust memory, CPU or the stack: each is one line naming the place, exit 2.

Run as a user runs it, `cli.py convert-config` in a subprocess. The subprocess gets an address-space limit, so
a reader that tries to build the value fails fast instead of taking the machine's memory, and a timeout that
fails the test as a hang guard (not a timing assertion: the reader refuses before it computes anything large).
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from tests.e2e.local_world import CLI

MEMORY_LIMIT = 2 << 30  # bytes of address space: far above what reading a config takes
HANG_GUARD_SECONDS = 60

SQUARINGS = "X = 2\n" + "X = X * X\n" * 27  # 2 ** (2 ** 27): 42 s of CPU, a 16 MB integer
CASES = [
    ("text repeated a trillion times", "X = 'a' * 1000000000000\n",
     "line 1, column 5: this value would be 1,000,000,000,000 characters and list items long; expected at most "
     "100,000"),
    ("a list repeated twice over", "X = [1] * 100000000 * 100\n",
     "line 1, column 5: this value would be 200,000,000 characters and list items long; expected at most 100,000"),
    ("shared lists repeated", "X = [1] * 10000\nY = [X] * 10000\n",
     "line 2, column 5: this value would be 200,010,000 characters and list items long; expected at most 100,000"),
    ("27 squarings", SQUARINGS,
     "line 7, column 5: this integer would have 65 bits; expected at most 64 (every number AWS takes fits)"),
    ("a product beyond a double", "X = 1e308 * 10\n",
     "line 1, column 5: this number would be inf (beyond a 64-bit float); expected a finite number"),
    ("a 200,000-term sum", "X = " + "+".join(["1"] * 200_000) + "\n",
     "line 1, column 406: more than 200 operators and brackets in one statement; expected a config's short sums "
     "and products"),
    ("200,000 unary minuses", "X = " + "-" * 200_000 + "1\n",
     "line 1, column 205: more than 200 operators and brackets in one statement; expected a config's short sums "
     "and products"),
    ("100,000 subscripts", "X = [0]\nY = X" + "[0]" * 100_000 + "\n",
     "line 2, column 606: more than 200 operators and brackets in one statement; expected a config's short sums "
     "and products"),
    ("brackets 100 deep", "X = " + "(" * 100 + "1" + ")" * 100 + "\n",
     "line 1, column 25: brackets nested more than 20 deep; expected plain values and lists"),
    ("more operations than a config has", "".join(f"X{n} = 1 + 1 + 1 + 1 + 1\n" for n in range(300)),
     "line 251, column 8: more than 1,000 operations in the file; expected a config's few sums and products"),
    ("values too large together", "X = 'a' * 90000\n" + "".join(f"Y{n} = X + 'b'\n" for n in range(20)),
     "line 12, column 7: the file's values would be over 1,000,000 characters and list items in all; expected a "
     "config's few short values"),
    ("a file of megabytes", "X = 1\n" + "#" * (2 << 20) + "\n",
     "expected a config file of at most 1024 KiB, got a larger one"),
]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("name, text, expected", CASES, ids=[case[0] for case in CASES])
def test_a_config_py_bomb_is_one_line_exit_2(tmp_path, name, text, expected):
    (tmp_path / "config.py").write_text(text)
    result = subprocess.run([sys.executable, str(CLI), "convert-config", "--config", "config.py"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, preexec_fn=_limit_memory)

    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: config.py: {expected}\n")
