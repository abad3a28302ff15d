"""Run every benchmark under bench/ (each bench_*.py, then the run simulator, with their defaults), one after
another."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    failed = 0
    for script in [*sorted(HERE.glob("bench_*.py")), HERE / "simulate.py"]:
        print(f"== {script.name}", flush=True)
        failed += subprocess.run([sys.executable, str(script)]).returncode != 0
    sys.exit(1 if failed else 0)
