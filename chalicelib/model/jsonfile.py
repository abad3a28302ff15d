"""Reading the user's JSON files (config, jobs, fleet, a monitor file): every way it can fail is one clear error.

Python's JSON reader is more lenient than JSON (RFC 8259) in ways that hurt later, so they are refused here,
at the file, with the place in it:
- NaN, Infinity and -Infinity are not JSON: a job value holding one would be sent as a message body no other
  JSON reader takes. A number too large for a double (1e400) is read as Infinity, so it is refused too.
- A key given twice in one object: Python keeps the last value and drops the first without a word. A comment
  key (any holding `_comment`, which every reader drops) may repeat: DCP's own example job file gives
  "_comment2" twice (files/exampleJob.json, lines 3 and 9, since its first version, 29e038d).
- Integers of more than MAX_INTEGER_DIGITS digits: Python refuses to convert more than 4300 digits at all (a
  ValueError, CVE-2020-10735), and no value of a config, fleet or job file needs more than 64 bits
  (18,446,744,073,709,551,615 has 20 digits); longer numbers (a barcode, an id) belong in quotes, as text.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

COMMENT = "_comment"  # what marks a key every reader drops (chalicelib/model/settings.py, chalicelib/model/jobs.py)
MAX_INTEGER_DIGITS = 20  # every 64-bit integer, signed or not, and no more
# Only a text with this many digits in a row can hold a longer integer: the others are read with Python's own
# integer conversion, which is faster than a hook called for every number (a 100,000-job file has 100,000s).
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INTEGER_DIGITS + 1}}}")


class NotStrictJSON(ValueError):
    """Valid for Python's reader, not as JSON: `place` is where in the document (`groups[3].plate`)."""

    def __init__(self, place: str, problem: str):
        super().__init__(f"{place}: {problem}" if place else problem)
        self.place = place
        self.problem = problem


class _Refused:
    """Stands in the document for a value that is refused, until the place of the first one is looked up."""

    def __init__(self, problem: str):
        self.problem = problem


class _DuplicateKeys(dict[str, Any]):
    """An object that had a key twice (the value Python would have kept is in the dict)."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str):
        super().__init__(pairs)
        self.key = key


def _seen_before(seen: set[str], key: str) -> bool:
    if key in seen:
        return True
    seen.add(key)
    return False


def loads_strict(text: str) -> Any:
    """json.loads, refusing what JSON does not allow (the module's docstring); raises NotStrictJSON naming the
    place of the first refused value, or json.JSONDecodeError / RecursionError as json.loads does."""
    refused = []  # whether anything was refused: a document without (the usual case) is never walked

    def constant(name: str) -> _Refused:
        refused.append(True)
        return _Refused(f"expected a number JSON allows, got {name} (JSON has no NaN or Infinity)")

    def integer(digits: str) -> int | _Refused:
        if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
            refused.append(True)
            return _Refused(f"expected an integer of at most {MAX_INTEGER_DIGITS} digits, got one of "
                            f"{len(digits.lstrip('-')):,} digits (write a longer number in quotes, as text)")
        return int(digits)

    def real(text: str) -> float | _Refused:
        value = float(text)
        if not math.isfinite(value):
            refused.append(True)
            shown = text if len(text) <= 30 else text[:27] + "..."
            return _Refused(f"expected a number JSON readers can hold, got {shown} (beyond a 64-bit float: it "
                            "would be read as Infinity)")
        return value

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            seen: set[str] = set()
            key = next((key for key, _ in pairs if _seen_before(seen, key) and COMMENT not in key), None)
            if key is not None:
                refused.append(True)
                return _DuplicateKeys(pairs, key)
        return document

    document = json.loads(text, parse_constant=constant, parse_int=integer if _LONG_DIGITS.search(text) else None,
                          parse_float=real, object_pairs_hook=pairs_hook)
    if refused:
        place, problem = _first_refused(document)
        raise NotStrictJSON(place, problem)
    return document


def _first_refused(document: Any) -> tuple[str, str]:
    """The place and problem of the first refused value, in document order. Iterative: nesting depth is bounded
    only by what json.loads took."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        place, value = stack.pop()
        if isinstance(value, _Refused):
            return place, value.problem
        if isinstance(value, _DuplicateKeys):
            return (f"{place}.{value.key}" if place else value.key,
                    "expected each key once in an object, got this key twice (only the last value would be kept)")
        if isinstance(value, dict):
            stack.extend((f"{place}.{key}" if place else key, item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{place}[{index}]", item) for index, item in reversed(list(enumerate(value))))
    raise AssertionError("a refused value was flagged but not found")  # pragma: no cover


def read_file_bytes(path: str | Path, error: type[Exception], limit: int = -1) -> bytes:
    """A file's bytes (at most `limit`, all when -1), turning every way opening it can fail into one clear `error`."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: expected a file, found a directory") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None


def read_json_file(path: str | Path, error: type[Exception]) -> Any:
    """Read a JSON file, turning every way it can fail into one clear `error`."""
    text = read_file_bytes(path, error)
    try:
        return loads_strict(text.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise error(f"{path}: expected UTF-8 JSON text") from None
    except json.JSONDecodeError as problem:
        raise error(f"{path}: invalid JSON at line {problem.lineno} column {problem.colno}: {problem.msg}") from None
    except NotStrictJSON as problem:
        raise error(f"{path}: {problem}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
