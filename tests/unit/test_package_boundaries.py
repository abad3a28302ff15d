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


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
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
