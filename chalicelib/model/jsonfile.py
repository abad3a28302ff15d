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

`StreamedObject` reads a file holding one object with one long list (a job file) a window at a time, with the same
refusals at the same places, and json.loads's line and column for what is not JSON.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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


class _StrictHooks:
    """json's hooks refusing what JSON does not allow (the module's docstring): a refused value stands in the
    document as `_Refused` (or an object as `_DuplicateKeys`) and `refused` is set, so a document without any
    (the usual case) is never walked."""

    def __init__(self) -> None:
        self.refused = False

    def constant(self, name: str) -> _Refused:
        self.refused = True
        return _Refused(f"expected a number JSON allows, got {name} (JSON has no NaN or Infinity)")

    def integer(self, digits: str) -> int | _Refused:
        if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
            self.refused = True
            return _Refused(f"expected an integer of at most {MAX_INTEGER_DIGITS} digits, got one of "
                            f"{len(digits.lstrip('-')):,} digits (write a longer number in quotes, as text)")
        return int(digits)

    def real(self, text: str) -> float | _Refused:
        value = float(text)
        if not math.isfinite(value):
            self.refused = True
            shown = text if len(text) <= 30 else text[:27] + "..."
            return _Refused(f"expected a number JSON readers can hold, got {shown} (beyond a 64-bit float: it "
                            "would be read as Infinity)")
        return value

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            seen: set[str] = set()
            key = next((key for key, _ in pairs if _seen_before(seen, key) and COMMENT not in key), None)
            if key is not None:
                self.refused = True
                return _DuplicateKeys(pairs, key)
        return document

    def decoder(self, long_integers: bool) -> json.JSONDecoder:
        return json.JSONDecoder(parse_constant=self.constant, parse_int=self.integer if long_integers else None,
                                parse_float=self.real, object_pairs_hook=self.pairs)


def loads_strict(text: str) -> Any:
    """json.loads, refusing what JSON does not allow (the module's docstring); raises NotStrictJSON naming the
    place of the first refused value, or json.JSONDecodeError / RecursionError as json.loads does."""
    hooks = _StrictHooks()
    document = json.loads(text, parse_constant=hooks.constant,
                          parse_int=hooks.integer if _LONG_DIGITS.search(text) else None,
                          parse_float=hooks.real, object_pairs_hook=hooks.pairs)
    if hooks.refused:
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
    with open_file(path, error) as handle:
        try:
            return handle.read(limit)
        except OSError as problem:  # a directory opens on some systems and fails only here
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


# --- One long list, a window at a time: a job file of a million groups is read twice (validated, then sent), and
# neither reading holds more of it than one element and the window around it.

WINDOW_CHARS = 1 << 20  # read at a time; more only while one value runs past the window's end
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class FileChanged(Exception):
    """The file is not the one an earlier reading saw (its identity, size or modification time differ)."""


def file_identity(handle: BinaryIO) -> tuple[int, ...]:
    """What changes when a file is replaced or written to: device, inode, size, modification time and status
    change time (ns; a write sets both, and no user call sets the latter back, as `touch -d` does the former)."""
    status = os.fstat(handle.fileno())
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def open_file(path: str | Path, error: type[Exception]) -> BinaryIO:
    """The file opened for reading, every way opening it can fail one clear `error`."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: expected a file, found a directory") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    return handle


class NotAnObject(ValueError):
    """The file holds JSON, but not an object: `found` is the type's name."""

    def __init__(self, found: str):
        super().__init__(f"expected a JSON object, got {found}")
        self.found = found


class _Window:
    """The file's text from `pos` on, decoded a window at a time; what was read before `pos` is dropped, counting
    only its lines and last line's length, for an error's line and column as json.loads would give them."""

    def __init__(self, handle: BinaryIO, digest: Any):
        self._handle = handle
        self._digest = digest  # of every byte read: two readings compare theirs
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self.eof = False
        self._line = 1  # of text[0]
        self._column = 0  # characters before text[0] on its line

    def more(self) -> bool:
        """Read on (the window grows with the value being read, so a long one is not decoded again per chunk);
        False at the end of the file."""
        added = ""
        while not added and not self.eof:
            data = self._handle.read(max(WINDOW_CHARS, len(self.text) - self.pos))
            self._digest.update(data)
            self.eof = not data
            added = self._decoder.decode(data, final=self.eof)
        if not added:
            return False
        dropped = self.text[:self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self._line += newlines
            self._column = len(dropped) - dropped.rfind("\n") - 1
        else:
            self._column += len(dropped)
        self.text = self.text[self.pos:] + added
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the file), not consumed."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]  # matches ''
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, characters: str, message: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            raise self.invalid(message, self.pos)
        self.pos += 1
        return found

    def value(self, decoder: json.JSONDecoder) -> tuple[Any, int, int]:
        """The next JSON value, and where its text starts and ends in `text`."""
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as problem:
                if self.more():
                    continue
                raise self.invalid(problem.msg, problem.pos) from None
            # A number may go on past the window: "1" of "1e+5" is a number whose "e+" was not followed by a digit
            if len(self.text) - end < 3 and self.more():
                continue
            start, self.pos = self.pos, end
            return value, start, end

    def invalid(self, message: str, pos: int) -> json.JSONDecodeError:
        """json.loads's error for the whole file: its line and column counted from the file's start."""
        newlines = self.text.count("\n", 0, pos)
        column = pos - self.text.rfind("\n", 0, pos) if newlines else self._column + pos + 1
        error = json.JSONDecodeError(message, self.text, pos)
        error.lineno, error.colno = self._line + newlines, column
        return error


def _joined(outer: str, place: str) -> str:
    return outer if not place else outer + place if place.startswith("[") else f"{outer}.{place}"


class StreamedObject:
    """A JSON file holding one object with one long list (a job file's "groups"), read a window at a time with
    loads_strict's refusals and places. `members()` yields, in file order, (key, None, value) for each member but
    the list, and (key, index, element) for each element of the list. `digest` is of the bytes read so far;
    `identity` of the file when it was opened (file_identity)."""

    def __init__(self, handle: BinaryIO, list_key: str):
        self._handle = handle
        self._list_key = list_key
        self.identity = file_identity(handle)
        self._digest = hashlib.blake2b(digest_size=16)
        self._window = _Window(handle, self._digest)
        self._hooks = _StrictHooks()
        self._decoders = (self._hooks.decoder(long_integers=False), self._hooks.decoder(long_integers=True))

    @property
    def digest(self) -> bytes:
        return self._digest.digest()

    def members(self) -> Iterator[tuple[str, int | None, Any]]:
        window = self._window
        if window.peek() != "{":
            found = type(self._value("", None)).__name__
            self._end()
            raise NotAnObject(found)
        window.pos += 1
        seen: set[str] = set()
        if window.peek() == "}":
            window.pos += 1
        else:
            while True:
                if window.peek() != '"':
                    raise window.invalid("Expecting property name enclosed in double quotes", window.pos)
                key, _, _ = window.value(self._decoders[0])
                if _seen_before(seen, key) and COMMENT not in key:
                    raise NotStrictJSON(key, "expected each key once in an object, got this key twice (only the "
                                        "last value would be kept)")
                window.expect(":", "Expecting ':' delimiter")
                if key == self._list_key and window.peek() == "[":
                    window.pos += 1
                    if window.peek() == "]":
                        window.pos += 1
                        yield key, None, []
                    else:
                        yield from self._elements(key)
                else:
                    yield key, None, self._value(key, None)
                if window.expect(",}", "Expecting ',' delimiter") == "}":
                    break
        self._end()

    def _elements(self, key: str) -> Iterator[tuple[str, int | None, Any]]:
        window = self._window
        for index in itertools.count():
            yield key, index, self._value(key, index)
            if window.expect(",]", "Expecting ',' delimiter") == "]":
                return

    def _value(self, key: str, index: int | None) -> Any:
        """The next value, `key`'s (or its list's element `index`)."""
        self._hooks.refused = False
        try:
            value, start, end = self._window.value(self._decoders[0])
        except json.JSONDecodeError:
            raise
        except ValueError:  # int() refuses more than 4300 digits; `pos` is still where the value starts
            start = end = -1
        if start < 0 or _LONG_DIGITS.search(self._window.text, start, end):  # only then: the hook is slower
            self._window.pos = start if start >= 0 else self._window.pos
            self._hooks.refused = False
            value, _, _ = self._window.value(self._decoders[1])
        if self._hooks.refused:
            inner, problem = _first_refused(value)
            raise NotStrictJSON(_joined(key if index is None else f"{key}[{index}]", inner), problem)
        return value

    def _end(self) -> None:
        window = self._window
        if window.peek():
            raise window.invalid("Extra data", window.pos)
