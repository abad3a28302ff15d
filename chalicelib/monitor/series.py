"""The run over time, as the monitor saw it: machines, jobs waiting and jobs running at its checks.

Kept in MonitorState and carried into the summary at teardown, so a run report (operations/report/) draws what
the monitor observed rather than re-deriving it from the job logs, which know neither the queue nor idle
machines. A point is added only when one of the three numbers changed since the last one (a steady run adds
none, so a converged run still plans nothing), and the series stays bounded: at LIMIT points every other point
goes, the first and the newest kept, so a week-long run keeps its whole shape at a coarser grain.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.model.schema import bounds

LIMIT = 1000  # points; about 25 bytes each in the state object and the summary

# A point: [epoch seconds, machines, jobs waiting, jobs running]
SeriesPoint = list[float]
# A series as the state and the summary store it (schema.py reads both with these bounds)
SERIES_BOUNDS = bounds(max_items=LIMIT, item=bounds(min_items=4, max_items=4))


def with_point(series: Sequence[SeriesPoint], now: float, machines: int, waiting: int,
               running: int) -> list[SeriesPoint] | None:
    """The series with this check added, or None when the numbers are those of its last point."""
    point = [round(now, 2), machines, waiting, running]  # to 10 ms: local mode checks every second
    if series and list(series[-1][1:]) == point[1:]:
        return None
    points = list(series)
    if len(points) >= LIMIT:
        points = [*points[:-1:2], points[-1]]  # the newest stays: the series' last numbers are what holds now
    return [*points, point]
