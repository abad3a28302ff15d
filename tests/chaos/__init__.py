"""A randomized fault campaign: seeded scenarios of several local-mode runs under injected faults (issue 30)."""
