"""What one seed of the campaign leaves behind: the interface between the harness (which builds it) and the
invariants (which check it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChaosRun:
    app_name: str
    config_path: Path          # the run's config.json (AWS_BUCKET shared by every run of the seed)
    out_dir: Path              # local mode's --out for this run (its summary.json, outputs and logs)
    jobs: dict[str, str]       # every job ever submitted to it (submit --append included): job_id -> mode
    ds_image_mode: bool
    torn_down_early: bool      # the scenario ran `teardown` on it before its jobs could finish
    # a `redrive` or `submit --append` reached it: jobs it sent after the monitor saw the queue drained wait in the
    # queue the teardown then keeps (chalicelib/monitor/plan.py), for the next start-cluster
    sent_late: bool = False
    # a `redrive` reached it: it took failed jobs off the dead-letter queue (and their records) after the monitor
    # counted them, so the monitor summary's failed count and `cli.py failed` may differ (an append may not do that)
    redriven: bool = False


@dataclass(frozen=True)
class ChaosWorld:
    seed: int
    endpoint: str              # the emulator itself (not the fault proxy): checks read it without faults
    region: str
    bucket: str
    dead_letter_queue: str     # the name every run of the seed shares
    runs: tuple[ChaosRun, ...]
    audit_path: Path           # JSON lines, one per destructive request that reached the emulator (D's recorder)
    log_dir: Path              # everything of this seed: each process's output, the schedule, the violations
