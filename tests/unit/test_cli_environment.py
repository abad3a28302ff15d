"""The README's `python cli.py ...` lines, run by a Python other than the project's: one line saying how, exit 2,
never a traceback (a machine's own moto, older than the pin, failed with a 30-line ImportError)."""

import subprocess
import sys
from pathlib import Path

from cli import environment_problem

REPO = Path(__file__).resolve().parents[2]


def test_a_python_without_the_projects_packages_gets_one_line_saying_how():
    # -S: no site-packages, as a machine's own Python without the project's requirements
    result = subprocess.run([sys.executable, "-S", str(REPO / "cli.py"), "status"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: this Python ({sys.executable}) has no boto3, not the pinned 1.44.8: run the "
                           "commands in the project's environment: 'make install' once, then '. .venv/bin/activate'")


def test_a_package_at_another_version_than_the_pin_is_named(tmp_path):
    (tmp_path / "requirements.txt").write_text("# pins\nboto3==0.0.1  # too old\n")
    assert environment_problem(tmp_path).startswith(f"this Python ({sys.executable}) has boto3 1.44.8, not the "
                                                    "pinned 0.0.1")


def test_the_projects_environment_has_what_the_cli_needs():
    assert environment_problem() is None


def test_chalice_deploys_record_is_not_committed():
    """`chalice deploy` against the emulator leaves the emulator's ARNs in .chalice/deployed/dev.json; a later real
    deploy would read them."""
    assert ".chalice/deployed/" in (REPO / ".gitignore").read_text().splitlines()
