"""Reading a stored document into its frozen dataclass: the one validator of everything the project reads back.

The run record, the monitor's state, a failure record, a lease's key and the run summary are each declared once,
as a frozen dataclass; this module reads JSON (or a dict already parsed) into one, checking it against the
dataclass itself:
- field types come from the annotations: str, int, float, bool, `X | None`, `tuple[X, ...]`, `list[X]`,
  `dict[str, X]` and nested dataclasses;
- bounds come from `dataclasses.field(metadata=bounds(...))`: a string's length and pattern, a number's range, a
  collection's item count, the bounds of its items (`item=`), and `accept=` for the older spellings a field still
  reads (DS wrote MONITOR_START_TIME as a string of digits, booleans as "True");
- keys the dataclass does not know are ignored (an older reader reads a newer document) and a field with a default
  may be missing (a newer reader reads an older one);
- the raw bytes are bounded before they are parsed, and parsed by the strict JSON reader (jsonfile.loads_strict:
  no NaN, no key given twice): whatever a job can write is read bounded (DESIGN.md "Trust boundary").
A refusal is one SchemaError (a ValueError, as every reader's callers already catch), one line naming the
document, the field's path and what was expected: `run record: MACHINE_TYPE[2]: expected a string of at most 64
characters, got 70`.

Why not powertools' parser (pydantic models): pydantic is a compiled dependency that both the Lambda zip and the
worker image would have to carry, for five small documents; this needs only the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chalicelib.model.jsonfile import NotStrictJSON, loads_strict
from chalicelib.model.printable import printable

T = TypeVar("T")

class SchemaError(ValueError):
    """A document that is not what its dataclass declares: `document`, `path` (the field, "" for the whole) and
    what was `expected` there."""

    def __init__(self, document: str, path: str, expected: str):
        # a path holds the document's keys, and a job may write the document: shown, never obeyed by a terminal
        path = printable(path if len(path) <= 200 else path[:197] + "...")
        super().__init__(": ".join(part for part in (document, path, expected) if part))
        self.document, self.path, self.expected = document, path, expected


def bounds(*, min_length: int | None = None, max_length: int | None = None, pattern: str | None = None,
           minimum: float | None = None, maximum: float | None = None, min_items: int | None = None,
           max_items: int | None = None, item: Mapping[str, Any] | None = None,
           accept: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A field's metadata (`dataclasses.field(metadata=bounds(...))`). `pattern` must match a string whole;
    `item` holds the bounds of a collection's items (and values, for a dict); `accept` turns an older spelling
    into the declared type before the check (it returns anything else unchanged)."""
    given = {"min_length": min_length, "max_length": max_length, "minimum": minimum, "maximum": maximum,
             "min_items": min_items, "max_items": max_items, "item": item, "accept": accept,
             "pattern": re.compile(pattern) if pattern is not None else None}
    return {key: value for key, value in given.items() if value is not None}


# The last second datetime can show (9999-12-31T23:59:59Z): a later time would fail where it is printed.
LAST_EPOCH_SECOND = 253_402_300_799


def digits_as_int(value: Any) -> Any:
    """DS's spelling of a number: a string of digits ("1700000000000")."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 20:
        return int(value)
    return value


def words_as_bool(value: Any) -> Any:
    """DS's spelling of a boolean: "True" or "False" (any case)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def read(cls: type[T], data: str | bytes, document: str, max_bytes: int) -> T:
    """Parse `data` (at most `max_bytes` of UTF-8 JSON) into `cls`; raises SchemaError."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise SchemaError(document, "", f"expected at most {max_bytes:,} bytes, got {len(data):,}")
    try:
        raw = loads_strict(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SchemaError(document, "", "not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise SchemaError(document, "", f"invalid JSON at line {error.lineno} column {error.colno}") from None
    except NotStrictJSON as error:
        raise SchemaError(document, error.place, error.problem) from None
    except RecursionError:
        raise SchemaError(document, "", "JSON nested too deeply") from None
    return from_value(cls, raw, document)


def from_value(cls: type[T], raw: Any, document: str) -> T:
    """`raw` (parsed JSON) as `cls`; raises SchemaError."""
    return typing.cast(T, _dataclass(cls, raw, document, ""))


def _dataclass(cls: type[Any], raw: Any, document: str, path: str) -> Any:
    if not isinstance(raw, dict):
        raise SchemaError(document, path, f"expected a JSON object, got {_kind(raw)}")
    values = {}
    for item in dataclasses.fields(cls):
        where = f"{path}.{item.name}" if path else item.name
        if item.name not in raw:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                hint = _hints(cls)[item.name]
                raise SchemaError(document, where, f"missing, expected {_expected(hint, item.metadata)}")
            continue
        values[item.name] = _value(_hints(cls)[item.name], raw[item.name], document, where, item.metadata)
    return cls(**values)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The annotations as types (the documents' modules use `from __future__ import annotations`), once a class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _value(declared: Any, raw: Any, document: str, path: str, rules: Mapping[str, Any]) -> Any:
    accept = rules.get("accept")
    if accept is not None:
        raw = accept(raw)
    hint = _optional(declared)
    if hint is None:
        hint = declared
    elif raw is None:
        return None

    def refused(got: str) -> SchemaError:
        return SchemaError(document, path, f"expected {_expected(declared, rules)}, {got}")

    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(raw, dict):
            raise refused(f"got {_kind(raw)}")
        return _dataclass(typing.cast(type[Any], hint), raw, document, path)
    if origin in (tuple, list, dict):
        if not isinstance(raw, dict if origin is dict else list):
            raise refused(f"got {_kind(raw)}")
        if len(raw) > rules.get("max_items", len(raw)) or len(raw) < rules.get("min_items", 0):
            raise refused(f"got {len(raw):,} {'entries' if isinstance(raw, dict) else 'items'}")
        item = rules.get("item", {})
        if isinstance(raw, dict):
            return {key: _value(arguments[1], value, document, f"{path}.{key}", item) for key, value in raw.items()}
        items = [_value(arguments[0], value, document, f"{path}[{index}]", item) for index, value in enumerate(raw)]
        return tuple(items) if origin is tuple else items
    if hint is str:
        if not isinstance(raw, str):
            raise refused(f"got {_kind(raw)}")
        if len(raw) > rules.get("max_length", len(raw)) or len(raw) < rules.get("min_length", 0):
            raise refused(f"got {len(raw):,} characters")
        if "pattern" in rules and not rules["pattern"].fullmatch(raw):
            raise refused(f"got {_shown(raw)}")
        return raw
    if hint is bool:
        if not isinstance(raw, bool):
            raise refused(f"got {_kind(raw)}")
        return raw
    if hint in (int, float):
        if isinstance(raw, bool) or not (isinstance(raw, int) or (hint is float and isinstance(raw, float))):
            raise refused(f"got {_kind(raw)}")
        if raw < rules.get("minimum", raw) or raw > rules.get("maximum", raw):
            raise refused(f"got {_shown(raw)}")
        return raw
    raise TypeError(f"schema: {path}: no reader for the annotation {hint!r}")  # a declaration's mistake, not data


def _optional(hint: Any) -> Any:
    """X for `X | None`, else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        others = [argument for argument in typing.get_args(hint) if argument is not type(None)]
        if len(others) == 1 and len(typing.get_args(hint)) == 2:
            return others[0]
    return None


def _expected(hint: Any, rules: Mapping[str, Any]) -> str:
    """What a field must hold, in words: "a string of at most 64 characters", "an integer from 1 to 10"."""
    inner = _optional(hint)
    if inner is not None:
        return f"{_expected(inner, rules)} or null"
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return "a JSON object"
    if origin in (tuple, list, dict):
        what, items = ("an object", "entries") if origin is dict else ("a list", "items")
        least, most = rules.get("min_items"), rules.get("max_items")
        if least is not None and least == most:
            return f"{what} of {most:,} {items}"
        if least is not None and most is not None:
            return f"{what} of {least:,} to {most:,} {items}"
        if most is not None:
            return f"{what} of at most {most:,} {items}"
        if least is not None:
            return f"{what} of at least {least:,} {items}"
        return what
    if hint is str:
        what = "a string"
        if "min_length" in rules and "max_length" in rules:
            what += f" of {rules['min_length']:,} to {rules['max_length']:,} characters"
        elif "max_length" in rules:
            what += f" of at most {rules['max_length']:,} characters"
        elif "min_length" in rules:
            what += f" of at least {rules['min_length']:,} character{'s' if rules['min_length'] != 1 else ''}"
        if "pattern" in rules:
            what += f" matching {rules['pattern'].pattern}"
        return what
    if hint is bool:
        return "true or false"
    what = "an integer" if hint is int else "a number"
    if "minimum" in rules and "maximum" in rules:
        return f"{what} from {rules['minimum']:,} to {rules['maximum']:,}"
    if "minimum" in rules:
        return f"{what} of at least {rules['minimum']:,}"
    if "maximum" in rules:
        return f"{what} of at most {rules['maximum']:,}"
    return what


def _kind(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return _shown(raw)
    kinds: dict[type[Any], str] = {str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(raw), type(raw).__name__)


def _shown(raw: Any) -> str:
    """A value as JSON, short and escaped: a document may be a job's, and the message goes to logs and terminals."""
    text = json.dumps(raw)
    return text if len(text) <= 40 else text[:37] + "..."
