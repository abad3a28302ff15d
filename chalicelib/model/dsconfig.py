"""Distributed-Something's config.py, read and never run.

A DS config.py is a list of assignments, and not only of literals: DS's own file says
`CPU_SHARES = DOCKER_CORES * 1024`, `SQS_QUEUE_NAME = APP_NAME + 'Queue'` and `SECONDS_TO_START = 3*60`. So
the file is parsed with `ast` and a small closed subset is evaluated: constants, lists and tuples, names
assigned earlier in the file, unary minus, and + - * / between them. Anything else (a call, an import, an
attribute, a comprehension, an f-string) is refused with its line number: a config file never runs code.

Reading is bounded too, so a hostile or mistaken file is refused in well under a second instead of exhausting
memory, CPU or the stack (`'a' * 10**12`, 27 squarings of 2, a 200,000-term sum): the file's size; how deep
brackets nest and how many operators one value has, counted on the tokens before Python's own parser, which
recurses once per level and gives up with RecursionError or MemoryError; how many operations the whole file
performs; and each value's size, checked before a repetition or a product is computed.

The variables under DS's last section (its heading reads "PUT ANYTHING SPECIFIC TO YOUR PROGRAM DOWN HERE"; DS's
documentation calls it YOUR CONFIGURATIONS) are the user's program's: they become ENVIRONMENT, as DS passes
them into the container's environment.

Every other name is a key. This project's keys become settings. Keys that an upstream run.py passes into the task
definition (chalicelib/model/upstream_keys.py, DCP's ALWAYS_CONTINUE or WORKSPACE_BUCKET) become ENVIRONMENT too, under
run.py's conditions. A key in neither is, in this order: a typo of a known key (refused with "did you mean", as a
misspelt key would otherwise do nothing), a key upstream added after the tables were read (an UPPER_CASE name with
a plain value: passed to the image as run.py passes its keys, with a warning naming it), or refused.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import operator
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.model import upstream_keys
from chalicelib.model.errors import ConfigError

# DS's heading of the user's own section, and the name its documentation gives it.
PROGRAM_SECTION = re.compile(r"^\s*#.*(PUT ANYTHING SPECIFIC TO YOUR PROGRAM|YOUR CONFIGURATIONS)", re.IGNORECASE)
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# How alike an unknown key and a known one must be (difflib's ratio) for the unknown one to be a typo: one letter
# missing, added or changed in a key of ten letters or more. Upstream's own keys differ from each other by more
# (INSTALL_REQUIREMENTS and REQUIREMENTS: 0.75), so a key upstream adds later is not mistaken for a typo.
TYPO_RATIO = 0.85
_UPPER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_RESERVED_PREFIXES = ("AWS_", "DSR_")  # settings.RESERVED_ENV_PREFIXES: the task role's and this project's
_ALLOWED = "plain values (text, numbers, True/False/None, lists), names assigned above, and + - * /"
# The bounds. DS's own config.py is 4 KiB with a dozen operations, none deeper than one bracket; a container's
# environment (where YOUR CONFIGURATIONS go) is a few KiB; every number AWS takes fits 64 bits.
MAX_FILE_BYTES = 1 << 20
MAX_NESTING = 20  # brackets within brackets
MAX_OPERATORS = 200  # operators, brackets and dots in one statement: each is a level of Python's syntax tree
MAX_OPERATIONS = 1_000  # operations evaluated in the whole file
MAX_VALUE_SIZE = 100_000  # one value's characters and list items, nested lists counted whole
MAX_TOTAL_SIZE = 1_000_000  # the same, over every value the file assigns
MAX_INTEGER_BITS = 64
# Tokens that do not make the syntax tree deeper; every other operator, opening bracket and dot does.
_FLAT_TOKENS = frozenset({",", ";", "=", ":", ")", "]", "}"})
_KEYWORD_OPERATORS = frozenset({"not", "and", "or", "if", "else", "in", "is", "lambda", "await", "for"})


@dataclass
class DSConfig:
    settings: dict[str, Any] = field(default_factory=dict)  # DS's keys (and this project's), in file order
    program: dict[str, str] = field(default_factory=dict)  # the YOUR CONFIGURATIONS variables, as text
    notes: list[str] = field(default_factory=list)  # where this project reads a value otherwise than DS
    warnings: list[str] = field(default_factory=list)  # keys taken for upstream keys newer than upstream_keys.py


def read_ds_config(path: str | Path) -> DSConfig:
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{source}: expected a config file of at most {MAX_FILE_BYTES // 1024} KiB, got a "
                              "larger one")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: expected a file, found a directory") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot be read ({error})") from None
    _refuse_deep_statements(text, source)
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as error:
        raise ConfigError(f"{source}: line {error.lineno}: not valid Python ({error.msg})") from None
    except (RecursionError, MemoryError):  # the checks above should leave nothing that deep: a last guard
        raise ConfigError(f"{source}: nested too deeply for Python's parser; expected at most {MAX_NESTING} "
                          f"brackets deep and {MAX_OPERATORS} operators in one value") from None
    program_from = _program_section_line(text)
    config = DSConfig()
    evaluator = _Evaluator(source)
    ours = _our_keys()
    image_keys = upstream_keys.config_keys() - ours
    renamed = upstream_keys.renamed_keys()
    image: dict[str, tuple[Any, int]] = {}  # upstream's keys for its image, with their lines
    assigned = []  # every value first, bounded, so a bomb is refused as one whatever its name
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise ConfigError(f"{source}: line {statement.lineno}: expected NAME = value; this file is read, "
                              f"never run, so only assignments of {_ALLOWED} are allowed")
        name = statement.targets[0].id
        assigned.append((name, evaluator.assign(name, statement.value), statement.lineno))
    for name, value, line in assigned:
        if program_from is not None and line > program_from:
            config.program[name] = _environment_text(value, name, line, source)
        elif name in ours:
            config.settings[name] = value
        elif name in image_keys or name in renamed:
            image[name] = (value, line)
        else:
            _refuse_unless_later_key(name, value, line, source, ours | image_keys | set(renamed))
            config.program[name] = _environment_text(value, name, line, source)
            config.warnings.append(_later_key_warning(name, line, source))
    _pass_image_keys(config, image, renamed, source)
    if "JOB_MESSAGE_FORMAT" not in config.settings and set(image) & upstream_keys.only_of(upstream_keys.DCP):
        config.settings["JOB_MESSAGE_FORMAT"] = "DCP"  # DCP's image reads DCP's messages (jobs.py)
    _translate(config, source)
    if config.program:
        config.settings["ENVIRONMENT"] = {**config.settings.get("ENVIRONMENT", {}), **config.program}
    return config


def _our_keys() -> set[str]:
    from chalicelib.model.settings import KEYS_BY_NAME  # settings.py reads config.py through this module

    return set(KEYS_BY_NAME)


def _refuse_unless_later_key(name: str, value: Any, line: int, source: str, known: set[str]) -> None:
    """A key neither this project's nor in upstream_keys.py's tables passes only if it can be a key upstream added
    later: not a typo of a known key, named as upstream names its keys, with a value an environment variable holds."""
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
    where = f"unknown key {name!r} in {source}, line {line}"
    if name in upstream_keys.computed_variables():  # passed on, it would replace the value run.py computes
        raise ConfigError(f"{where}; {name} is not a key: it is computed, by {_readers(name)} and by this project")
    if close and difflib.SequenceMatcher(None, name.upper(), close[0]).ratio() >= TYPO_RATIO:
        raise ConfigError(f"{where}; did you mean {close[0]!r}?")
    hint = f"did you mean {close[0]!r}? If not, " if close else ""
    if not _UPPER_NAME.match(name) or name.startswith(_RESERVED_PREFIXES):
        raise ConfigError(f"{where}; {hint}expected a key of this project or of DS's or DCP's run.py (UPPER_CASE, "
                          f"not starting with {' or '.join(_RESERVED_PREFIXES)}): see the configuration table in "
                          "README.md")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}; {hint}expected text or a number, as a key upstream passes to its image becomes "
                          f"an environment variable, got {type(value).__name__}")


def _later_key_warning(name: str, line: int, source: str) -> str:
    tables = " or ".join(upstream.label for upstream in upstream_keys.UPSTREAMS)
    return (f"{source}: line {line}: {name} is neither a key of this project nor one {tables} passes to its image; "
            f"taken for a key upstream added later, it reaches the image as the environment variable {name}")


def _pass_image_keys(config: DSConfig, image: dict[str, tuple[Any, int]], renamed: dict[str, str],
                     source: str) -> None:
    """Upstream's keys for its image become ENVIRONMENT under the names and conditions of its run.py."""
    for old, new in renamed.items():
        if old in image:
            value, line = image.pop(old)
            if value:  # run.py: `if REQUIREMENTS_FILE: REQUIREMENTS = REQUIREMENTS_FILE`
                image[new] = (value, line)
                config.notes.append(f"{old}: {_readers(new)} reads it as {new}")
    values = {**config.settings, **{name: value for name, (value, _) in image.items()}}
    passed, held = [], []
    for name, (value, line) in image.items():
        if upstream_keys.is_passed(_passed_variable(name), values):
            config.program[name] = _environment_text(value, name, line, source)
            passed.append(name)
        else:
            held.append(name)
    if passed:
        config.notes.append(f"{', '.join(passed)}: {_readers(passed[0])} passes them to the image; here they reach it "
                            "as ENVIRONMENT. In DS image mode the workers' role gets the locations your submitted "
                            "jobs name ('input', 'output', 'pipeline', 'data_file', the data file's image folders)")
    conditions: dict[tuple[str, str], list[str]] = {}
    for name in held:
        variable = _passed_variable(name)
        condition = (f"when {variable.only_if_true} is 'True'" if variable.only_if_true
                     else f"unless {variable.unless_false} is 'False'")
        conditions.setdefault((_readers(name), condition), []).append(name)
    for (readers, condition), names in conditions.items():
        config.notes.append(f"{', '.join(names)}: not passed to the image, as {readers} passes "
                            f"{'them' if len(names) > 1 else 'it'} only {condition}")


def _passed_variable(name: str) -> upstream_keys.Variable:
    """The variable of the first upstream whose run.py passes `name`, for a name some upstream passes."""
    variable = upstream_keys.passed_by(name)[0].variable(name)
    if variable is None:  # passed_by lists only upstreams with a variable of that name
        raise LookupError(name)
    return variable


def _readers(name: str) -> str:
    return " and ".join(upstream.label for upstream in upstream_keys.passed_by(name))


def _program_section_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if PROGRAM_SECTION.match(line):
            return number
    return None


def _refuse_deep_statements(text: str, source: str) -> None:
    """Refuse, with its line and column, a statement whose syntax tree would be too deep for Python's parser and
    this module's evaluator (both recurse per level). Read from the tokens, which need no recursion; what does not
    tokenize is left to ast.parse, which says what is wrong."""
    depth = operators = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NEWLINE or (token.type == tokenize.OP and token.string == ";"):
                operators = 0
                continue
            if token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
            elif (token.type == tokenize.OP and token.string not in _FLAT_TOKENS) or (
                    token.type == tokenize.NAME and token.string in _KEYWORD_OPERATORS):
                operators += 1
                depth += token.string in "([{"
            line, column = token.start
            if depth > MAX_NESTING:
                raise ConfigError(f"{source}: line {line}, column {column + 1}: brackets nested more than "
                                  f"{MAX_NESTING} deep; expected plain values and lists")
            if operators > MAX_OPERATORS:
                raise ConfigError(f"{source}: line {line}, column {column + 1}: more than {MAX_OPERATORS} "
                                  "operators and brackets in one statement; expected a config's short sums and "
                                  "products")
    except (tokenize.TokenError, SyntaxError):
        return


class _Evaluator:
    """Evaluates the allowed subset, each value with its size (characters and items, nested lists whole), so
    that a repetition or a product too large is refused before it is computed."""

    def __init__(self, source: str):
        self.source = source
        self.values: dict[str, tuple[Any, int]] = {}
        self.operations = 0
        self.total_size = 0

    def assign(self, name: str, node: ast.expr) -> Any:
        value, size = self.evaluate(node)
        self.total_size += size
        if self.total_size > MAX_TOTAL_SIZE:
            self._refuse(node, f"the file's values would be over {MAX_TOTAL_SIZE:,} characters and list items in "
                               "all; expected a config's few short values")
        self.values[name] = (value, size)
        return value

    def evaluate(self, node: ast.expr) -> tuple[Any, int]:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return self._checked(node, node.value, _size(node.value))
        if isinstance(node, (ast.List, ast.Tuple)):
            items, size = [], 1
            for element in node.elts:
                value, element_size = self.evaluate(element)
                items.append(value)
                size += element_size
            return self._checked(node, items, size)
        if isinstance(node, ast.Name):
            if node.id not in self.values:
                raise ConfigError(f"{self.source}: line {node.lineno}: {node.id} is used before it is assigned")
            return self.values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand, _ = self.evaluate(node.operand)
            if isinstance(operand, (int, float)) and not isinstance(operand, bool):
                self._count(node)
                return self._checked(node, -operand, 1)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            (left, left_size), (right, right_size) = self.evaluate(node.left), self.evaluate(node.right)
            self._count(node)
            size = _result_size(node.op, left, left_size, right, right_size)
            self._checked(node, None, size)  # before computing it
            try:
                value = _OPERATORS[type(node.op)](left, right)
            except (TypeError, ZeroDivisionError) as error:
                raise ConfigError(f"{self.source}: line {node.lineno}: cannot compute this value ({error})") from None
            return self._checked(node, value, size)
        raise ConfigError(f"{self.source}: line {getattr(node, 'lineno', '?')}: {type(node).__name__} is not allowed "
                          f"here; this file is read, never run: use {_ALLOWED}")

    def _count(self, node: ast.expr) -> None:
        self.operations += 1
        if self.operations > MAX_OPERATIONS:
            self._refuse(node, f"more than {MAX_OPERATIONS:,} operations in the file; expected a config's few sums "
                               "and products")

    def _checked(self, node: ast.expr, value: Any, size: int) -> tuple[Any, int]:
        if size > MAX_VALUE_SIZE:
            self._refuse(node, f"this value would be {size:,} characters and list items long; expected at most "
                               f"{MAX_VALUE_SIZE:,}")
        if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
            self._refuse(node, f"this integer would have {value.bit_length():,} bits; expected at most "
                               f"{MAX_INTEGER_BITS} (every number AWS takes fits)")
        if isinstance(value, float) and not math.isfinite(value):
            self._refuse(node, f"this number would be {value} (beyond a 64-bit float); expected a finite number")
        return value, size

    def _refuse(self, node: ast.expr, what: str) -> None:
        raise ConfigError(f"{self.source}: line {node.lineno}, column {node.col_offset + 1}: {what}")


def _size(value: Any) -> int:
    """A scalar's size; a list's is counted as it is built."""
    return max(1, len(value)) if isinstance(value, str) else 1


def _result_size(op: ast.operator, left: Any, left_size: int, right: Any, right_size: int) -> int:
    """The size of `left op right`, from the operands' sizes alone (nothing is computed)."""
    if isinstance(op, ast.Mult):
        for sequence, size, count in ((left, left_size, right), (right, right_size, left)):
            if isinstance(sequence, (str, list)) and isinstance(count, int):
                return max(1, size * max(0, count))
        return 1
    if isinstance(op, ast.Add) and isinstance(left, (str, list)):
        return left_size + right_size
    return 1


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
