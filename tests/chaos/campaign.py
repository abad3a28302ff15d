"""The campaign: many seeds, a few at a time, each in a process of its own (moto's state is per process, so each
seed's emulator must be too), and one table at the end.

    python -m tests.chaos --seeds 1000 [--first 1] [--jobs 2] [--keep-logs] [--log-root DIR]
    python -m tests.chaos --seed N [--seed M ...] [--jobs 2]   # replay these seeds

A failing seed's log folder is kept and its replay command printed; a passing seed's folder is removed unless
--keep-logs. Exit 1 on any violation.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from tests.chaos.harness import REPO, limit_seconds, run_seed
from tests.chaos.scenario import FAULT_KINDS, scenario

DEFAULT_LOG_ROOT = Path(tempfile.gettempdir()) / "dsr-chaos"
CHECK_SECONDS = 300.0  # a seed's checks and final tick, after its runs
STOP_SECONDS = 120.0  # a seed told to stop kills its processes (local mode's grace) and its emulator


def seed_in_process(seed: int, log_root: Path) -> dict:
    """One seed in a child process; its result as run_seed's JSON (a crash of the harness is a violation)."""
    log_dir = log_root / f"seed-{seed}"
    argv = [sys.executable, "-m", "tests.chaos", "--one", str(seed), "--log-root", str(log_root)]
    began = time.monotonic()
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            _, stderr = child.communicate(timeout=limit_seconds(scenario(seed)) + CHECK_SECONDS)
            problem = None if child.returncode == 0 else (
                f"the harness exited {child.returncode}: {(stderr.strip().splitlines() or [''])[-1]}")
        except subprocess.TimeoutExpired:
            child.terminate()  # SIGTERM: the seed's finally blocks kill what it started (a SIGKILL would orphan it)
            child.communicate(timeout=STOP_SECONDS)
            problem = "the harness itself did not finish in time"
    if problem is None and (log_dir / "result.json").exists():
        return json.loads((log_dir / "result.json").read_text())
    return {"seed": seed, "jobs": scenario(seed).jobs, "faults": {}, "seconds": round(time.monotonic() - began, 1),
            "log_dir": str(log_dir), "violations": [{"kind": "harness-error", "run": "", "detail": problem}]}


def run_campaign(seeds: list[int], jobs: int, log_root: Path, keep_logs: bool, say=click.echo) -> list[dict]:
    log_root.mkdir(parents=True, exist_ok=True)
    results = []
    with ThreadPoolExecutor(jobs) as pool:
        for result in pool.map(lambda seed: seed_in_process(seed, log_root), seeds):
            results.append(result)
            kinds = Counter(violation["kind"] for violation in result["violations"])
            say(f"seed {result['seed']}: {result['jobs']} jobs, {result['seconds']:.0f} s, "
                + (", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "no violation"))
            if not result["violations"] and not keep_logs:
                shutil.rmtree(result["log_dir"], ignore_errors=True)
    return results


def table(results: list[dict], wall_seconds: float) -> str:
    faults: Counter = Counter()
    violations: Counter = Counter()
    for result in results:
        faults.update(result["faults"])
        violations.update(violation["kind"] for violation in result["violations"])
    seconds = [result["seconds"] for result in results]
    kinds = [kind for kind in FAULT_KINDS if faults[kind]] + [kind for kind in sorted(faults) if
                                                              kind not in FAULT_KINDS]
    lines = [
        f"seeds                      {len(results)} ({sum(1 for r in results if r['violations'])} with violations)",
        f"jobs                       {sum(result['jobs'] for result in results)}",
        "faults injected by kind    " + (", ".join(f"{kind} {faults[kind]}" for kind in kinds) or "none"),
        "invariant violations       " + (", ".join(f"{kind} {count}" for kind, count in sorted(violations.items()))
                                         or "none"),
        f"time                       {wall_seconds:.0f} s in all; per seed {sum(seconds) / max(len(seconds), 1):.0f} s "
        f"mean, {max(seconds, default=0):.0f} s max",
    ]
    for result in results:
        if result["violations"]:
            lines.append(f"seed {result['seed']} failed: replay with 'python -m tests.chaos --seed {result['seed']}'; "
                         f"logs kept in {result['log_dir']}")
            lines.extend(f"    {v['kind']} {v['run']}: {v['detail']}" for v in result["violations"][:10])
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--seeds", type=click.IntRange(min=1), default=20, show_default=True, help="How many seeds to run.")
@click.option("--first", type=int, default=1, show_default=True, help="The first seed.")
@click.option("--seed", "replays", type=int, multiple=True, help="Run only this seed (a replay); may be repeated.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds at once.")
@click.option("--keep-logs", is_flag=True, help="Keep the log folders of seeds that passed too.")
@click.option("--log-root", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_LOG_ROOT,
              show_default=True, help="Each seed's logs go to LOG_ROOT/seed-N/.")
@click.option("--one", type=int, hidden=True, help="Run this seed in this process (the campaign's child).")
def main(seeds: int, first: int, replays: tuple[int, ...], jobs: int, keep_logs: bool, log_root: Path,
         one: int | None) -> None:
    if one is not None:
        # a SIGTERM (the campaign's timeout, a CI runner stopping) unwinds run_seed's finally blocks as Ctrl-C does
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        run_seed(one, log_root)
        return
    chosen = list(replays) or list(range(first, first + seeds))
    for seed in replays:
        click.echo(scenario(seed).describe(), nl=False)
    began = time.monotonic()
    results = run_campaign(chosen, jobs, log_root, keep_logs or bool(replays))
    click.echo(table(results, time.monotonic() - began), nl=False)
    sys.exit(1 if any(result["violations"] for result in results) else 0)
