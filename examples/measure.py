"""The example job: statistics of one plate's well measurements (standard library only).

Reads INPUT/wells.csv (columns: well, cell_count, mean_intensity), writes
OUT/summary.json and OUT/wells_flagged.csv. One job per plate.

    python measure.py --plate P01 --input DIR --out DIR
"""

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plate", required=True)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    source = args.input / "wells.csv"
    print(f"plate {args.plate}: reading {source}")
    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        print(f"plate {args.plate}: no wells in {source}", file=sys.stderr)
        return 1
    counts = [int(row["cell_count"]) for row in rows]
    intensity = [float(row["mean_intensity"]) for row in rows]
    mean, spread = statistics.fmean(intensity), statistics.pstdev(intensity)
    # a well is flagged when its intensity is more than two standard deviations from the plate's mean
    flagged = [row for row, value in zip(rows, intensity, strict=True) if spread and abs(value - mean) > 2 * spread]
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"plate": args.plate, "wells": len(rows), "cells": sum(counts),
               "median_cells_per_well": statistics.median(counts), "mean_intensity": round(mean, 3),
               "stdev_intensity": round(spread, 3), "flagged_wells": [row["well"] for row in flagged]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (args.out / "wells_flagged.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["well", "cell_count", "mean_intensity"])
        writer.writeheader()
        writer.writerows(flagged)
    print(f"plate {args.plate}: {len(rows)} wells, {sum(counts)} cells, {len(flagged)} flagged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
