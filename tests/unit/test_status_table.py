"""`cli.py status` of a finished run: its summary's rows, and a failed count the monitor could not make exact."""

from __future__ import annotations

from chalicelib.monitor.status import finished_status, status_table

SUMMARY = {"app_name": "App", "stop_reason": "drained", "jobs_submitted": 10, "jobs_done": 7, "jobs_failed": 3,
           "jobs_left": 0, "machine_hours": 1.5, "cost_ceiling_usd": 0.75}


def rows(summary: dict) -> dict[str, str]:
    """Each line of the table as name -> value (two spaces or more part them)."""
    lines = status_table(finished_status("App", summary)).splitlines()
    return {name: value.strip() for name, value in (line.split("  ", 1) for line in lines)}


def test_an_exact_failed_count_is_shown_as_it_is_and_the_flag_is_not_a_row():
    shown = rows({**SUMMARY, "jobs_failed_exact": True})
    assert shown["jobs failed"] == "3" and "jobs failed exact" not in shown
    assert rows(SUMMARY)["jobs failed"] == "3"  # a summary written before the flag


def test_a_failed_count_the_busy_dead_letter_queue_left_short_says_it_is_a_floor():
    shown = rows({**SUMMARY, "jobs_failed_exact": False})
    assert shown["jobs failed"] == ("3 at least (the shared dead-letter queue was busy as the run ended: `failed` "
                                    "lists them all)")
