"""Distributed-Something's config.py, read and never run.

A DS config.py is a list of assignments, and not only of literals: DS's own file says
`CPU_SHARES = DOCKER_CORES * 1024`, `SQS_QUEUE_NAME = APP_NAME + 'Queue'` and `SECONDS_TO_START = 3*60`. So
the file is parsed with `ast` and a small closed subset is evaluated: constants, lists and tuples, names
assigned earlier in the file, unary minus, and + - * / between them. Anything else (a call, an import, an
attribute, a comprehension, an f-string) is refused with its line number: a config file never runs code.

The variables under DS's last section (its heading reads "PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE"; DS's
documentation calls it YOUR CONFIGURATIONS) are the user's program's: they become ENVIRONMENT, as DS passes
them into the container's environment.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigError

# DS's heading of the user's own section, and the name its documentation gives it.
PROGRAM_SECTION = re.compile(r"^\s*#.*(PUT ANYTHING SPECIFIC TO YOUR PROGRAM|YOUR CONFIGURATIONS)", re.IGNORECASE)
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# Distributed-CellProfiler's keys that only its image reads (its run.py writes them into the task definition):
# here they reach the image the same way, as ENVIRONMENT. SOURCE_BUCKET, DESTINATION_BUCKET and UPLOAD_FLAGS
# are keys of this project too (settings.py).
DCP_IMAGE_KEYS = ("WORKSPACE_BUCKET", "DOWNLOAD_FILES", "USE_PLUGINS", "UPDATE_PLUGINS", "PLUGINS_COMMIT",
                  "INSTALL_REQUIREMENTS", "REQUIREMENTS")
_ALLOWED = "plain values (text, numbers, True/False/None, lists), names assigned above, and + - * /"


@dataclass
class DSConfig:
    settings: dict[str, Any] = field(default_factory=dict)  # DS's keys (and this project's), in file order
    program: dict[str, str] = field(default_factory=dict)  # the YOUR CONFIGURATIONS variables, as text
    notes: list[str] = field(default_factory=list)  # where this project reads a value otherwise than DS


def read_ds_config(path: str | Path) -> DSConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: expected a file, found a directory") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot be read ({error})") from None
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as error:
        raise ConfigError(f"{source}: line {error.lineno}: not valid Python ({error.msg})") from None
    program_from = _program_section_line(text)
    config = DSConfig()
    values: dict[str, Any] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise ConfigError(f"{source}: line {statement.lineno}: expected NAME = value; this file is read, "
                              f"never run, so only assignments of {_ALLOWED} are allowed")
        name = statement.targets[0].id
        value = _evaluate(statement.value, values, source)
        values[name] = value
        if (program_from is not None and statement.lineno > program_from) or name in DCP_IMAGE_KEYS:
            config.program[name] = _environment_text(value, name, statement.lineno, source)
        else:
            config.settings[name] = value
    _translate(config, source)
    if config.program:
        config.settings["ENVIRONMENT"] = {**config.settings.get("ENVIRONMENT", {}), **config.program}
    return config


def _program_section_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if PROGRAM_SECTION.match(line):
            return number
    return None


def _evaluate(node: ast.AST, values: dict[str, Any], source: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(item, values, source) for item in node.elts]
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise ConfigError(f"{source}: line {node.lineno}: {node.id} is used before it is assigned")
        return values[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _evaluate(node.operand, values, source)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, values, source), _evaluate(node.right, values, source)
        try:
            return _OPERATORS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError) as error:
            raise ConfigError(f"{source}: line {node.lineno}: cannot compute this value ({error})") from None
    raise ConfigError(f"{source}: line {getattr(node, 'lineno', '?')}: {type(node).__name__} is not allowed here; "
                      f"this file is read, never run: use {_ALLOWED}")


def _environment_text(value: Any, name: str, line: int, source: str) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # as DS's str() writes it into the task definition
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{source}: line {line}: {name}: a variable for your program must be text or a number "
                      "(it becomes an environment variable)")


def _translate(config: DSConfig, source: str) -> None:
    """Values DS's run.py accepts that this project reads otherwise; each change is noted."""
    settings = config.settings
    passed = [name for name in DCP_IMAGE_KEYS if name in config.program]
    if passed:
        config.notes.append(f"{', '.join(passed)}: Distributed-CellProfiler's image reads them; they reach it as "
                            "ENVIRONMENT. The workers' role reads only SOURCE_BUCKET (under INPUT_PREFIX) and "
                            "writes only DESTINATION_BUCKET (under OUTPUT_PREFIX)")
    dead_letter = settings.get("SQS_DEAD_LETTER_QUEUE")
    if isinstance(dead_letter, str) and dead_letter.startswith("arn:aws:sqs:"):
        settings["SQS_DEAD_LETTER_QUEUE"] = dead_letter.rsplit(":", 1)[1]
        config.notes.append(f"SQS_DEAD_LETTER_QUEUE: DS takes the queue's ARN; this project takes its name, "
                            f"{settings['SQS_DEAD_LETTER_QUEUE']!r} (in AWS_REGION of this account)")
    if "COMMAND" not in settings:
        settings["COMMAND"] = None
        config.notes.append("COMMAND: absent, so DS image mode: your image runs its own worker with DS's "
                            "environment variables; or set COMMAND = ['your', 'program', '{a job key}'] for this "
                            "project's worker")
    if "PRIVILEGED" not in settings:
        config.notes.append("PRIVILEGED: DS runs every container privileged; here only with PRIVILEGED = True "
                            "(needed for s3fs mounts)")
    if settings.get("AWS_PROFILE") == "default":
        config.notes.append("AWS_PROFILE: 'default' means the default credential chain when no profile of that "
                            "name is configured (CI, containers)")
