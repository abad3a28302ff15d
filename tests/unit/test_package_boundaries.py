"""The folders are the architecture: who may import whom, and what ships where, read from the source itself.

Layers, each importing only those below it (ARCHITECTURE.md draws them):

    chalicelib/model      the run model: settings, names, jobs, the strict JSON reader; nothing else of ours
    chalicelib/aws        the AWS client layer: clients, and a module per service of reads and writes by intent
    chalicelib/runfiles   files the worker writes and the monitor reads (leases, failure records, log lines)
    chalicelib/monitor    observe -> plan -> apply, status, the run record (the Lambda's own)
    app.py                the Lambda's handlers                      (the zip: app.py + chalicelib/)
    worker/               the container's worker                    (the image: worker/ + model, aws, runfiles)
    operations/           what only the CLI does: setup, submit, start-cluster, adoption, triage, the report
    localrun/             local mode and the emulator's patches; never shipped

`chalice package` copies chalicelib/ whole, so every module there must be one the Lambda imports; the worker
image copies the folders worker/Dockerfile names, which must be exactly what the worker imports.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.imports import REPO, closure, imports_of, layers_imported

MODEL, AWS, RUNFILES, MONITOR = "chalicelib.model", "chalicelib.aws", "chalicelib.runfiles", "chalicelib.monitor"
SHIPPED = {MODEL, AWS, RUNFILES, MONITOR}
ALLOWED = {
    "chalicelib/model": {MODEL, "botocore"},
    "chalicelib/aws": {MODEL, AWS, "boto3", "botocore"},
    "chalicelib/runfiles": {MODEL, AWS, RUNFILES, "boto3", "botocore"},
    "chalicelib/monitor": {MODEL, AWS, RUNFILES, MONITOR, "boto3", "botocore"},
    "app.py": SHIPPED | {"chalice", "aws_lambda_powertools"},
    "worker": {MODEL, AWS, RUNFILES, "worker", "boto3", "botocore", "watchtower"},
    # the done check is the worker's (CHECK_IF_DONE); submit asks it the same question before sending
    "operations": SHIPPED | {"operations", "worker", "boto3", "botocore"},
    "localrun": SHIPPED | {"operations", "worker", "localrun", "boto3", "botocore", "moto", "werkzeug"},
}


def files_of(place: str) -> list[Path]:
    path = REPO / place
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def test_every_module_of_chalicelib_is_in_a_layer():
    layered = {path for place in ALLOWED if place.startswith("chalicelib/") for path in files_of(place)}
    assert sorted(str(p.relative_to(REPO)) for p in set((REPO / "chalicelib").rglob("*.py")) - layered) == [
        "chalicelib/__init__.py"]


@pytest.mark.parametrize("place", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(place):
    wrong = {str(path.relative_to(REPO)): sorted(layers_imported(path) - ALLOWED[place]) for path in files_of(place)}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_lambda_imports_every_module_chalicelib_holds():
    """What `chalice package` zips (app.py and chalicelib/ whole) is exactly the handlers' import closure: a
    module the Lambda never imports belongs with the CLI (operations/) or the worker."""
    shipped = {REPO / "app.py", *(REPO / "chalicelib").rglob("*.py")}
    assert sorted(str(p.relative_to(REPO)) for p in shipped ^ closure(REPO / "app.py")) == []


def copied_by_worker_image() -> set[Path]:
    copies = re.findall(r"^COPY (\S+) \S+$", (REPO / "worker" / "Dockerfile").read_text(), re.M)
    found: set[Path] = set()
    for source in copies:
        path = REPO / source
        found.update(path.rglob("*.py") if path.is_dir() else [path] if path.suffix == ".py" else [])
    return found


def test_the_worker_image_copies_exactly_what_the_worker_imports():
    """`python -m worker` is the image's entry point; what it imports is what worker/Dockerfile copies, and the
    build context (worker/Dockerfile.dockerignore) lets through the same folders."""
    needed = closure(REPO / "worker" / "__main__.py")
    assert sorted(str(p.relative_to(REPO)) for p in copied_by_worker_image() ^ needed) == []
    allowed = [line[1:].rstrip("/") for line in (REPO / "worker" / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    copied = re.findall(r"^COPY (\S+) \S+$", (REPO / "worker" / "Dockerfile").read_text(), re.M)
    copied = [source.rstrip("/") for source in copied]
    assert set(allowed) <= set(copied)
    assert [source for source in copied if not any(source == a or source.startswith(a + "/") for a in allowed)] == []


def test_worker_requirements_cover_what_the_worker_imports():
    listed = {line.split("==")[0].strip().lower().replace("-", "_") for line in
              (REPO / "worker" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    needed = {name.split(".")[0] for path in closure(REPO / "worker" / "__main__.py") for name in imports_of(path)}
    assert needed - {"worker", "chalicelib"} <= listed | {"botocore"}  # botocore comes with boto3


def test_an_import_runs_unless_it_is_for_the_type_checker_only(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mypy_boto3_s3 import S3Client\n"
                      "else:\n    import moto\nimport mypy_boto3_sqs\nfrom chalicelib.model import names\n")
    assert layers_imported(module) == {"moto", "mypy_boto3_sqs", MODEL}
