"""The worker benchmark still runs side by side (a few jobs; the real figures are in bench/README.md)."""

import subprocess
import sys

import pytest

from tests.worker_world import REPO


def worktrees() -> str:
    return subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout


@pytest.mark.slow
def test_the_worker_benchmark_compares_a_baseline_checkout_with_this_one_and_removes_the_checkout():
    # HEAD as the baseline: a real `git worktree add` of this repository, run beside the working tree
    result = subprocess.run([sys.executable, "bench/bench_worker.py", "--jobs", "20", "--rounds", "1",
                             "--baseline-ref", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: targets missed (HEAD is no baseline)
    lines = result.stdout.splitlines()
    assert any(line.startswith("  baseline round 1: 20 jobs in ") for line in lines), result.stdout
    assert any(line.startswith("  current  round 1: 20 jobs in ") for line in lines), result.stdout
    assert "ms per job" in result.stdout and "requests per job" in result.stdout
    assert any(line.startswith("requests per job in steady state ") and "x better than the baseline" in line
               for line in lines), result.stdout
    assert "bench-worker-baseline-" not in worktrees()
