"""Stand-ins for D's tests/chaos/invariants.py and audit.py (issue 30) until that branch is merged: the harness
imports theirs when they exist, these otherwise. The lead deletes this file at the merge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.chaos.world import ChaosWorld


@dataclass(frozen=True)
class Violation:
    kind: str
    run: str
    detail: str


def check(world: ChaosWorld) -> list[Violation]:
    return []


def bystander(endpoint: str, region: str, log_dir: Path) -> None:
    pass


class Recorder:
    def __init__(self, path: Path):
        Path(path).touch()

    def observe(self, *args, **kwargs) -> None:
        pass
