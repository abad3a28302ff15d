"""Packages ship only what they run: who may import whom, read from the source itself.

- chalicelib/ is what `chalice deploy` zips into the monitor Lambda and what the worker image copies: it
  imports only the standard library, the Lambda's requirements (boto3, botocore, powertools) and itself.
- worker/ is the container's code: chalicelib, itself, and its own requirements.
- localrun/ (local mode, the moto patches, the fake metadata server) may import anything above; nothing
  above imports it, so neither the Lambda zip nor the worker image holds it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {
    "chalicelib": {"chalicelib", "boto3", "botocore", "aws_lambda_powertools"},
    "worker": {"worker", "chalicelib", "boto3", "botocore", "watchtower"},
    "localrun": {"localrun", "chalicelib", "worker", "boto3", "botocore", "moto", "werkzeug"},
}


def _typing_only(tree: ast.AST) -> set[ast.AST]:
    """The nodes inside `if TYPE_CHECKING:` blocks: read by mypy (boto3-stubs' client types), never run, so
    neither the Lambda zip nor the worker image needs what they import."""
    return {inner for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) in
            ("TYPE_CHECKING", "typing.TYPE_CHECKING") for part in node.body for inner in ast.walk(part)}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    typing_only = _typing_only(tree)
    for node in ast.walk(tree):
        if node in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_it_may(package):
    wrong = {str(path.relative_to(REPO)): sorted(imported_packages(path) - ALLOWED[package])
             for path in sorted((REPO / package).rglob("*.py"))}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_worker_requirements_cover_what_the_worker_imports():
    listed = {line.split("==")[0].strip().lower().replace("-", "_") for line in
              (REPO / "worker" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    needed = {name for path in (REPO / "worker").rglob("*.py") for name in imported_packages(path)} - {
        "worker", "chalicelib"}
    assert needed <= listed | {"botocore"}  # botocore comes with boto3


def test_an_import_runs_unless_it_is_for_the_type_checker_only(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mypy_boto3_s3 import S3Client\n"
                      "else:\n    import moto\nimport mypy_boto3_sqs\n")
    assert imported_packages(module) == {"moto", "mypy_boto3_sqs"}
