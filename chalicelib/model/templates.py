"""`{name}` templates for COMMAND, OUTPUT_PREFIX and INPUT_PREFIX.

Only plain names are allowed: no attribute access, indexing, conversions or
format specs, so job data can never reach into Python objects the way
`str.format("{0.__class__}")` can. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from functools import cached_property

_IDENTIFIER_CHARS = set(string.ascii_letters + string.digits + "_")


class TemplateError(ValueError):
    """The template text itself is malformed."""


class MissingPlaceholder(KeyError):
    """A placeholder names a value the job does not have."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class Template:
    def __init__(self, text: str):
        self.text = text
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as error:
            raise TemplateError(f"expected a template with balanced braces in {text!r} ({error})") from None
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if not field or not set(field) <= _IDENTIFIER_CHARS or field[0].isdigit():
                    raise TemplateError(f"expected plain placeholder names like {{plate}}, not {{{field}}}")
                if spec or conversion:
                    raise TemplateError(f"expected placeholders without format spec or conversion in {text!r}")
            parts.append((literal, field))
        self._parts = tuple(parts)

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return tuple(field for _, field in self._parts if field is not None)

    def render(self, values: Mapping[str, object]) -> str:
        out = []
        for literal, field in self._parts:
            out.append(literal)
            if field is not None:
                try:
                    value = values[field]
                except KeyError:
                    raise MissingPlaceholder(field) from None
                out.append(value if isinstance(value, str) else value_text(value))
        return "".join(out)

    def fixed_prefix(self, known: Mapping[str, object]) -> str:
        """The text every rendering starts with: literals and `known` values up to the first other placeholder
        (`{APP_NAME}/{job_id}` with APP_NAME known gives 'APP/'; `{plate}/out` gives '')."""
        out = []
        for literal, field in self._parts:
            out.append(literal)
            if field is not None:
                if field not in known:
                    break
                value = known[field]
                out.append(value if isinstance(value, str) else value_text(value))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def value_text(value: object) -> str:
    """How a job value reads inside a rendered template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)
