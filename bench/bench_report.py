"""How long the run report takes to build for 100,000 jobs on 1,000 machines, and how big the file is
(target: a file a browser opens in seconds; the page's aggregation keeps it to a few thousand shapes).

    python bench/bench_report.py [--jobs N] [--machines M] [--out FILE]

Synthetic job logs (no AWS): each job's stream as the worker writes it ("received: ... machine ... worker",
"started:", an output line, the outcome), 2 workers per machine, durations log-normal around a minute, 2 %
of attempts failing (most retried), 1 % released by a spot interruption and retried, 3 % skipped as done.
What is timed is what `cli.py report` does after the log listing: parse the streams, compute the figures,
render and write the page.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operations.report.data import parse_streams
from operations.report.figures import ReportInput, figures
from operations.report.render import render

RETRIES = 3


def synthetic_streams(jobs: int, machines: int, seed: int = 1) -> dict[str, list[tuple[float, str]]]:
    rng = random.Random(seed)
    slots = [(f"i-{m:017x}", f"ip-10-0-{m // 250}-{m % 250}-{100 + s}") for m in range(machines) for s in range(2)]
    free_at = [0.0] * len(slots)
    streams: dict[str, list[tuple[float, str]]] = {}
    for number in range(jobs):
        job = f"plate{number // 384:04d}-well{number % 384:03d}"
        events = streams.setdefault(job, [])
        for attempt in range(1, RETRIES + 1):
            index = min(range(len(free_at)), key=free_at.__getitem__) if number < len(slots) else number % len(slots)
            machine, worker = slots[index]
            start = free_at[index] + rng.uniform(0.05, 0.5)
            duration = rng.lognormvariate(4.0, 0.6)
            roll = rng.random()
            events.append((start, f"received: message m{number}-{attempt}, attempt {attempt} of {RETRIES}, on "
                                  f"{worker} pid 1; machine {machine} worker {worker}"))
            if roll < 0.03 and attempt == 1:
                end = start + 0.2
                events.append((end, "skipped: already done (s3://bucket/out/ holds 1 or more outputs)"))
                free_at[index] = end
                break
            events.append((start + 0.1, "started: python /app/measure.py"))
            if roll < 0.05:
                end = start + duration
                events += [(end - 0.1, "MemoryError: cannot allocate array"),
                           (end, f"failed: exit code 1 after {duration:.2f} s; total {duration:.2f} s")]
                free_at[index] = end
                continue
            if roll < 0.06:
                end = start + duration / 2
                events.append((end, "released: stopped (spot interruption) after 1 s"))
                free_at[index] = end
                continue
            end = start + duration
            events += [(end - 1, "measured 96 wells"), (end, f"succeeded: exit code 0; run {duration:.2f} s")]
            free_at[index] = end
            break
    return streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--out", type=Path, help="Where to write the page (default: a temporary file).")
    args = parser.parse_args()
    streams = synthetic_streams(args.jobs, args.machines)
    began = time.perf_counter()
    attempts = parse_streams(streams)
    parsed = time.perf_counter()
    data = ReportInput(app_name="Bench", state="finished (synthetic)", settings={"CLUSTER_MACHINES": args.machines},
                       slots_per_machine=2, machine_price=0.1, attempts=attempts)
    fig = figures(data)
    computed = time.perf_counter()
    html = render(data, fig, time.time())
    out = args.out or Path(tempfile.mkdtemp()) / "report.html"
    out.write_text(html, encoding="utf-8")
    written = time.perf_counter()
    print(f"{args.jobs:,} jobs ({len(attempts):,} attempts) on {args.machines:,} machines: report built in "
          f"{written - began:.2f} s (parse {parsed - began:.2f} s, figures {computed - parsed:.2f} s, render and "
          f"write {written - computed:.2f} s); {out.stat().st_size / 1e6:.2f} MB, {fig.timeline.drawn_bars:,} "
          f"timeline shapes in {len(fig.timeline.rows)} rows; {out}")
    for note in fig.timeline.notes:
        print(f"  page says: {note}")


if __name__ == "__main__":
    main()
