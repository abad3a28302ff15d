"""Reading the user's JSON files (config, jobs, fleet, a monitor file): every way it can fail is one clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_file(path: str | Path, error: type[Exception]) -> Any:
    """Read a JSON file, turning every way it can fail into one clear `error`."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: expected a file, found a directory") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    try:
        return json.loads(text.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise error(f"{path}: expected UTF-8 JSON text") from None
    except json.JSONDecodeError as problem:
        raise error(f"{path}: invalid JSON at line {problem.lineno} column {problem.colno}: {problem.msg}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
