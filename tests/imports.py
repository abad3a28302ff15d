"""What the project's code imports, read from the source with `ast` (nothing is imported to find out).

`imports_of(path)`: the modules a file imports when it runs (imports under `if TYPE_CHECKING:` are for mypy
only, so neither the Lambda zip nor the worker image needs them), absolute names, relative imports resolved.
`closure(start)`: every module of ours that running `start` imports, following our own modules only.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = ("app", "chalicelib", "worker", "operations", "localrun", "cli")


def module_name(path: Path) -> str:
    if not path.resolve().is_relative_to(REPO):  # a file outside the project: a module of its own
        return path.stem
    parts = list(path.resolve().relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def path_of(module: str) -> Path | None:
    """The file of one of our modules, or None (a name inside a module, or not ours)."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _typing_only(tree: ast.AST) -> set[ast.AST]:
    return {inner for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) in
            ("TYPE_CHECKING", "typing.TYPE_CHECKING") for part in node.body for inner in ast.walk(part)}


def imports_of(path: Path) -> set[str]:
    """Modules (and, for `from X import name`, `X.name` as well: name may be a module) imported at run time."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _typing_only(tree)
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if node in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] not in sys.stdlib_module_names | {"__future__"}}


def our_modules(names: Iterable[str]) -> set[str]:
    """Each name that is one of our modules, with every package above it (importing a.b.c runs a and a.b)."""
    found = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if parts[0] in OURS and path_of(prefix) is not None:
                found.add(prefix)
    return found


def closure(start: Path) -> set[Path]:
    """The files of every module of ours that running `start` imports, `start` included."""
    seen: set[Path] = set()
    todo = [start.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(p.resolve() for p in map(path_of, our_modules({module_name(path), *imports_of(path)})) if p)
    return seen


def layers_imported(path: Path) -> set[str]:
    """What a file imports, each name cut to what the layer rules are written in: a package of chalicelib
    (`chalicelib.monitor`), else a top-level name (`boto3`, `operations`). chalicelib/__init__.py is empty, so
    importing chalicelib itself says nothing."""
    out = set()
    for name in imports_of(path):
        parts = name.split(".")
        if parts[0] != "chalicelib":
            out.add(parts[0])
        elif len(parts) > 1:
            out.add(".".join(parts[:2]))
    return out
