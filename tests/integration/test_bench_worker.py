"""The worker benchmark still runs (a few jobs; the real figures are in bench/README.md)."""

import subprocess
import sys

import pytest

from tests.worker_world import REPO


@pytest.mark.slow
def test_the_worker_benchmark_runs_and_prints_its_overhead_in_ms():
    result = subprocess.run([sys.executable, "bench/bench_worker.py", "--jobs", "20", "--processes", "1"], cwd=REPO,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode in (0, 1), result.stderr
    assert "1 process(es): 20 jobs in" in result.stdout and "ms per job per process" in result.stdout
