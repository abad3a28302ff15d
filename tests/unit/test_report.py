"""The run report's parsing and aggregation, on hand-made job logs (chalicelib/report)."""

from __future__ import annotations

import json
import re

from chalicelib.model.settings import Settings
from chalicelib.runfiles.joblines import output_line
from operations.report.causes import pattern
from operations.report.data import FAILED, LOST, RELEASED, SKIPPED, SUCCEEDED, UNKNOWN, parse_stream, parse_streams
from operations.report.exported import parse_export
from operations.report.figures import Attempt, Point, ReportInput, figures, log_histogram, merge, timeline
from operations.report.render import render
from operations.report.sizing import MachineSize
from operations.report.sources import shown_settings

NEW = "received: message m{n}, attempt {a} of 3, on host pid 7; machine i-{m} worker host-{w}"
OLD = "received: message m1, attempt 1 of 3, on host pid 7"  # before the machine and worker were logged


def events(*lines_at):
    return [(float(when), line) for when, line in lines_at]


def test_one_stream_holds_each_attempt_with_its_machine_outcome_and_cause():
    attempts = parse_stream("j1", events(
        (100, NEW.format(n=1, a=1, m="a", w=1)), (101, "started: python job.py"), (102, "job output"),
        (103, "failing on purpose"), (105, "failed: exit code 3 after 2.00 s; total 5.00 s; it will be retried"),
        (110, NEW.format(n=1, a=2, m="b", w=2)), (111, "started: python job.py"),
        (112, "released: stopped (spot interruption) after 1.00 s; the job is visible again for another worker"),
        (120, NEW.format(n=2, a=1, m="b", w=2)), (121, "skipped: already done (s3://b/out/ holds 1 or more)"),
        (130, NEW.format(n=3, a=1, m="c", w=3)), (131, "started: x"), (140, "succeeded: exit code 0; run 9 s"),
    ))
    assert [(a.machine, a.slot, a.outcome, a.start, a.end) for a in attempts] == [
        ("i-a", "host-1", FAILED, 100, 105), ("i-b", "host-2", RELEASED, 110, 112),
        ("i-b", "host-2", SKIPPED, 120, 121), ("i-c", "host-3", SUCCEEDED, 130, 140)]
    failed = attempts[0]
    assert failed.exit_code == 3 and failed.last_line == "failing on purpose" and failed.duration == 5
    assert not failed.final_failure  # attempt 1 of 3


def test_an_old_received_line_goes_to_the_unknown_machine_and_a_cut_stream_is_lost():
    attempts = parse_stream("j1", events((1, OLD), (2, "started: x"), (4, "some output")))
    assert [(a.machine, a.slot, a.outcome, a.end) for a in attempts] == [(UNKNOWN, UNKNOWN, LOST, 4)]


def test_overlapping_attempts_each_end_with_the_outcome_their_worker_signed():
    """Two workers in one stream at once (a released job taken at once, a visibility timeout that ran out): the
    released line lands between the second worker's lines (CI's missing 'succeeded' bars)."""
    sign = "; machine i-{m} worker host-{w}"
    attempts = parse_stream("j1", events(
        (100, NEW.format(n=1, a=1, m="a", w=1)), (101, "started: x"), (102, "output of a"),
        (103, NEW.format(n=2, a=1, m="b", w=1)),
        (104, "released: stopped (spot interruption) after 3.00 s; visible again" + sign.format(m="a", w=1)),
        (105, "started: x"), (106, "output of b"),
        (108, "succeeded: exit code 0; run 3 s" + sign.format(m="b", w=1)),
        (110, NEW.format(n=3, a=2, m="c", w=2)), (111, "started: x"),
        (120, NEW.format(n=3, a=3, m="c", w=2)), (121, "failing"),  # the same worker again: the first is lost
        (122, "failed: exit code 1 after 1 s; total 2 s; sent to the dead-letter" + sign.format(m="c", w=2)),
    ))
    assert [(a.machine, a.slot, a.outcome, a.start, a.end) for a in attempts] == [
        ("i-a", "host-1", RELEASED, 100, 104), ("i-b", "host-1", SUCCEEDED, 103, 108),
        ("i-c", "host-2", LOST, 110, 111), ("i-c", "host-2", FAILED, 120, 122)]
    assert attempts[0].reason == "stopped (spot interruption) after 3.00 s; visible again"
    assert attempts[3].reason.endswith("sent to the dead-letter") and attempts[3].last_line == "failing"


def attempt(job, machine="i-1", slot="w1", start=0.0, end=1.0, outcome=SUCCEEDED, number=1, **extra):
    return Attempt(job, machine, slot, start, end, outcome, number, 2, **extra)


def data(attempts, settings=None, **extra):
    return ReportInput(app_name="App", state="finished", settings=settings or {"APP_NAME": "App"}, slots_per_machine=2,
                       machine_price=0.5, attempts=attempts, **extra)


def test_figures_count_jobs_group_failures_and_price_the_run():
    attempts = [attempt("a", end=10), attempt("b", start=0, end=4, slot="w2", outcome=FAILED, exit_code=3,
                                               last_line="boom"),
                attempt("b", start=5, end=9, slot="w2", outcome=FAILED, number=2, exit_code=3, last_line="boom"),
                attempt("c", machine="i-2", end=2, outcome=FAILED, number=2, exit_code=1),
                attempt("d", machine="i-2", start=3, end=3.5, outcome=SKIPPED)]
    fig = figures(data(attempts, summary={"machine_hours": 0.01, "cost_ceiling_usd": 0.005}))
    assert (fig.jobs, fig.jobs_done, fig.jobs_skipped, fig.jobs_failed) == (4, 1, 1, 2)
    assert fig.failed_ids == ["b", "c"]
    groups = [(g.cause, g.attempts, g.final, g.job_ids) for g in fig.failure_groups]
    assert groups == [("ended with: boom", 2, 1, ["b"]), ("exited with code 1", 1, 1, ["c"])]
    assert fig.cost_ceiling == 0.005 and fig.cost_per_job == 0.005  # one job done
    busy = 10 + 4 + 4 + 2 + 0.5
    assert abs(fig.idle_share - (1 - busy / (0.01 * 3600 * 2))) < 1e-9


def test_without_the_monitors_figures_machine_hours_come_from_the_series_or_the_logs():
    fig = figures(data([attempt("a", start=0, end=1800), attempt("b", machine="i-2", start=0, end=3600)]))
    assert fig.machine_hours == 1.5 and "lower bound" in fig.machine_hours_source


def test_many_machines_share_rows_and_many_bars_are_merged_and_said_so():
    many = [attempt(f"j{n}", machine=f"i-{n % 500:03d}", slot="w", start=n, end=n + 0.9) for n in range(30_000)]
    many.append(attempt("bad", machine="i-000", start=5, end=6, outcome=FAILED))
    line = timeline(many)
    assert len(line.rows) == 167 and any("3 machines per row" in note for note in line.notes)
    assert any("merged" in note for note in line.notes)
    outcomes = {bar[2] for row in line.rows for bar in row.bars}
    assert outcomes == {"busy", FAILED}  # the failure still drawn on its own
    assert line.drawn_bars < len(many) / 2  # three machines' bars merged per row


def test_slots_are_rows_until_there_are_too_many():
    few = [attempt("a", slot="w1"), attempt("b", slot="w2")]
    assert [row.label for row in timeline(few).rows] == ["i-1 / w1", "i-1 / w2"]
    assert [row.label for row in timeline(few, max_rows=1).rows] == ["i-1"]


def test_histogram_bins_are_log_scale_and_merge_joins_touching_intervals():
    bins = log_histogram([1.0, 1.1, 10.0, 100.0])
    assert sum(count for _, _, count in bins) == 4 and bins[0][0] == 1.0 and bins[-1][1] > 100
    assert merge([(0, 1), (0.5, 2), (3, 4)]) == [(0, 2), (3, 4)]


def test_the_page_has_a_bar_per_attempt_with_its_outcome_and_escapes_what_jobs_print():
    attempts = parse_streams({"<j>": events((1, NEW.format(n=1, a=3, m="a", w=1)), (2, "<script>x</script>"),
                                            (3, "failed: exit code 2 after 1 s; total 2 s; sent to the dead-letter"))})
    fig = figures(data(attempts))
    html = render(data(attempts), fig, 0.0)
    assert re.findall(r"class='bar o-(\w+)' data-job='([^']*)'", html) == [("failed", "&lt;j&gt;")]
    assert "<script" not in html and "ended with: &lt;script&gt;" in html


def test_a_commands_line_that_looks_like_the_workers_is_marked_and_read_as_output():
    printed = ["failed: 2 of 9 checks", "received: 3 files", "started: step 2", "warning: low disk", "all good"]
    logged = [output_line(line) for line in printed]
    assert logged == ["output: failed: 2 of 9 checks", "output: received: 3 files", "output: started: step 2",
                      "warning: low disk", "all good"]
    attempts = parse_stream("j1", events(
        (1, NEW.format(n=1, a=1, m="a", w=1)), (2, "started: job"), *[(3, line) for line in logged[:3]],
        (4, "exit soon"), (5, output_line("succeeded: nothing")),
        (6, "failed: exit code 1 after 4.00 s; total 5.00 s; it will be retried in 60 s")))
    assert [(a.outcome, a.start, a.end, a.last_line) for a in attempts] == [(FAILED, 1, 6, "succeeded: nothing")]


def test_a_commands_own_warning_is_its_last_line_and_the_workers_warnings_are_not():
    attempts = parse_stream("j1", events(
        (1, NEW.format(n=1, a=1, m="a", w=1)), (2, "started: cargo build"), (3, "warning: unused variable `x`"),
        (4, "warning: could not extend the message's visibility (Throttling); another worker may start this job"),
        (5, "failed: exit code 101 after 3.00 s; total 4.00 s; it will be retried in 60 s")))
    assert [(a.outcome, a.last_line) for a in attempts] == [(FAILED, "warning: unused variable `x`")]


def test_the_workers_inputs_line_is_not_a_failures_last_line_and_a_commands_own_is_marked():
    assert output_line("inputs: 3 plates") == "output: inputs: 3 plates"
    attempts = parse_stream("j1", events(
        (1, NEW.format(n=1, a=1, m="a", w=1)), (2, "inputs: 0 files from s3://b/in/P1/"), (3, "started: job"),
        (4, "failed: exit code 1 after 1.00 s; total 2.00 s; it will be retried in 60 s")))
    assert [(a.outcome, a.last_line) for a in attempts] == [(FAILED, "")]


def test_the_timeline_and_the_series_share_one_time_axis():
    attempts = [attempt("a", start=1060, end=1600), attempt("b", start=1070, end=1200, slot="w2")]
    series = [Point(1000, 1, 5, 0), Point(1060, 1, 3, 2), Point(1600, 0, 0, 0), Point(1720, 0, 0, 0)]
    fig = figures(data(attempts, series=series))
    assert fig.window == (1000, 1720)  # the machine came before its first job and the run ended after the last
    html = render(data(attempts, series=series), fig, 0)
    timeline_svg, series_svg = (re.search(rf"<svg class='{name}'.*?</svg>", html, re.S).group(0)
                                for name in ("timeline", "series"))
    ticks = [re.findall(r"text-anchor='middle'>([^<]+)</text>", svg) for svg in (timeline_svg, series_svg)]
    assert ticks[0] == ticks[1] == ["0.0 s", "2.4 min", "4.8 min", "7.2 min", "9.6 min", "12.0 min"]
    # job a starts 60 s into the 720 s axis: at the same x as the series' second step
    bar_x = float(re.search(r"data-job='a' x='([\d.]+)'", timeline_svg).group(1))
    assert abs(bar_x - (230 + 60 / 720 * (1200 - 230 - 20))) < 0.1


def test_an_s3_export_reads_back_as_the_log_groups_events():
    text = ("2026-11-30T02:19:46.123Z received: message m1, attempt 1 of 3\n"
            "2026-11-30T02:19:47.000Z a line\nwith a break in it\n2026-11-30T02:19:48Z succeeded: exit code 0")
    assert parse_export(text) == [(1796005186.123, "received: message m1, attempt 1 of 3"),
                                  (1796005187.0, "a line\nwith a break in it"),
                                  (1796005188.0, "succeeded: exit code 0")]


SIGN = "; machine i-a worker host-1"


def test_an_outcome_line_gives_the_attempts_peak_memory_and_cpu_and_an_old_one_none():
    attempts = parse_stream("j1", events(
        (100, NEW.format(n=1, a=1, m="a", w=1)), (101, "started: x"), (102, "holding 96 MiB"),
        (103, "failed: out of memory: peak 180 MiB, limit 192 MiB (MEMORY); exit code -9 after 2.00 s; total 2.10 s; "
              "it will be retried in 10 s; peak memory 180 MiB, cpu 1.25 s, container peak 191 of 192 MiB" + SIGN),
        (110, NEW.format(n=1, a=2, m="a", w=1)), (111, "started: x"),
        (112, "succeeded: exit code 0; run 1.00 s; total 1.20 s; peak memory at most 61 MiB, cpu 0.50 s" + SIGN),
        (120, NEW.format(n=1, a=3, m="a", w=1)), (121, "succeeded: exit code 0; run 9 s" + SIGN),  # an older worker
    ))
    assert [(a.peak_memory_mib, a.cpu_seconds, a.container_peak_mib, a.container_limit_mib, a.out_of_memory)
            for a in attempts] == [(180, 1.25, 191, 192, True), (61, 0.5, None, None, False),
                                   (None, None, None, None, False)]
    assert attempts[0].exit_code == -9 and attempts[0].last_line == "holding 96 MiB"


def sized(job, peak, cpu=1.0, outcome=SUCCEEDED, **extra):
    return attempt(job, outcome=outcome, peak_memory_mib=peak, cpu_seconds=cpu, **extra)


M5_LARGE = MachineSize(memory_mib=8192, usable_mib=7700, vcpus=2)
R5_XLARGE = MachineSize(memory_mib=32768, usable_mib=30802, vcpus=4)


def test_the_report_suggests_memory_from_the_highest_peak_and_the_tasks_each_machine_type_holds():
    attempts = [sized("a", 300), sized("a", 410, cpu=4), sized("b", 100), sized("c", 200),
                attempt("d"),  # logged by an older worker
                attempt("e", outcome=SKIPPED)]
    settings = {"MEMORY": 1024, "DOCKER_CORES": 2, "CPU_SHARES": 512}
    fig = figures(data(attempts, machines={"m5.large": M5_LARGE, "r5.xlarge": R5_XLARGE}, settings=settings))
    sizing = fig.sizing
    assert [(p.job_id, p.peak_mib, p.cpu_seconds) for p in sizing.peaks] == [("a", 410, 4), ("c", 200, 1),
                                                                             ("b", 100, 1)]
    assert (sizing.median_mib, sizing.p90_mib, sizing.highest_mib, sizing.unmeasured_jobs) == (200, 410, 410, 1)
    # 410 MiB x DOCKER_CORES 2 x 1.25 = 1025 MiB, rounded up to 256: 1280
    assert sizing.suggested_memory == 1280 and sizing.per_job_mib == 512
    assert sizing.cpu_share == (1 + 4 + 1 + 1) / 4  # CPU seconds over the measured attempts' 4 seconds
    assert [(f.machine_type, f.tasks, f.bound_by) for f in sizing.fits] == [
        ("m5.large", 4, "CPU"),  # 7700 // 1280 = 6 by memory, but 2 vCPUs hold 4 tasks of 512 units
        ("r5.xlarge", 8, "CPU")]
    roomy = figures(data(attempts, machines={"r5.xlarge": R5_XLARGE}, settings={**settings, "CPU_SHARES": 128}))
    assert [(f.tasks, f.bound_by) for f in roomy.sizing.fits] == [(24, "memory")]  # 30802 // 1280

    page = render(data(attempts, settings=settings, machines={"m5.large": M5_LARGE}),
                  figures(data(attempts, settings=settings, machines={"m5.large": M5_LARGE})), 0)
    assert re.findall(r"<rect class='peak' data-job='(\w)' data-mib='(\d+)'", page) == [
        ("a", "410"), ("c", "200"), ("b", "100")]
    assert "<p class='suggestion' data-memory='1280'>Suggested MEMORY: <b>1280 MiB</b>" in page
    assert "against MEMORY 1024 MiB per container (512 MiB for each of its DOCKER_CORES 2 jobs at once)" in page
    assert "CPU time median 1.0 s per job, 175% of their attempts' time (100% is one vCPU" in page
    assert "<tr class='fit' data-type='m5.large' data-tasks='4'>" in page


def test_a_container_peak_above_the_jobs_and_an_oom_kill_raise_the_suggestion_and_say_so():
    oom = ("out of memory: peak 180 MiB, limit 192 MiB (MEMORY); exit code -9 after 2.00 s; total 2.10 s; it will "
           "be retried in 10 s; peak memory 180 MiB, cpu 1.25 s, container peak 191 of 192 MiB")
    attempts = [sized("a", 180, outcome=FAILED, reason=oom, exit_code=-9, last_line="holding 96 MiB",
                      container_peak_mib=191),
                sized("b", 120, outcome=FAILED, number=2, reason=oom.replace("180", "120"), exit_code=-9),
                sized("c", 40, container_peak_mib=260)]
    fig = figures(data(attempts, settings={"MEMORY": 192, "DOCKER_CORES": 1}))
    assert fig.sizing.suggested_memory == 512  # the container's 260 MiB (the workers too) x 1.25 = 325
    assert fig.sizing.out_of_memory == ["a", "b"]
    assert [(g.cause, g.job_ids) for g in fig.failure_groups] == [
        ("ran out of memory at the limit of 192 MiB (MEMORY)", ["a", "b"])]
    assert fig.failure_summary == "all 1 failed job(s) (2 attempts) ran out of memory at the limit of 192 MiB (MEMORY)"
    assert "2 job(s) ran out of memory, so their real peak is higher than logged" in fig.sizing.basis
    page = render(data(attempts), fig, 0)
    assert "<div class='note out-of-memory'>2 job(s) ran out of memory: a, b</div>" in page


def test_a_run_logged_by_older_workers_has_no_memory_figures_and_says_so():
    fig = figures(data([attempt("a"), attempt("b", outcome=FAILED, exit_code=-9)]))
    assert fig.sizing is None
    assert "No job logged its peak memory" in render(data([attempt("a")]), fig, 0)
    # a kill -9 is said as a kill, with its code, and not taken for the OOM killer
    assert [g.cause for g in fig.failure_groups] == ["killed by SIGKILL (exit code -9)"]


# Issue 27, item 6: what a new user read in the report, and what it should have said.
LAST = "that was the last of 1 attempts: the job moves to the dead-letter queue user_DeadMessages"
SIGN = "; machine i-a worker host-1"


def failure_rows(html):
    """(cause as shown, failed attempts, jobs failed for good, job ids) of the Failures table."""
    return [(re.sub(r"<[^>]+>", " | ", cause).strip(" |"), attempts, final, ids) for cause, attempts, final, ids in
            re.findall(r"<tr class='failure-group'><td>(.*?)</td><td class='n'>(\d+)</td><td class='n'>(\d+)</td>"
                       r"<td class='ids'>([^<]*)</td>", html)]


def failing_job(job, *lines, reason):
    return {job: events((1, NEW.format(n=1, a=1, m="a", w=1).replace("of 3", "of 1")), (2, "started: python job.py"),
                        *[(3, line) for line in lines], (8, f"failed: {reason}; {LAST}{SIGN}"))}


def test_a_timed_out_or_killed_attempts_cause_is_the_workers_verdict_not_its_last_line():
    streams = {**failing_job("hung", "hanging...", reason="timed out after 5 s; total 5.02 s; peak memory 9 MiB, "
                                                          "cpu 0.01 s"),
               **failing_job("killed", "working", reason="exit code -9 after 3.10 s; total 3.20 s"),
               **failing_job("upload", "wrote out.csv", reason="exit code 0 but the upload failed: AccessDenied; "
                                                               "total 1.00 s"),
               **failing_job("own", "cannot parse row 3", reason="exit code 2 after 1.00 s; total 1.10 s")}
    attempts = parse_streams(streams)
    html = render(data(attempts), figures(data(attempts)), 0)

    assert sorted(failure_rows(html)) == [
        ("ended with: cannot parse row 3", "1", "1", "own"),  # the command ended by itself: its own last line
        ("exit code 0 but the upload failed: AccessDenied", "1", "1", "upload"),
        ("killed by SIGKILL (exit code -9)", "1", "1", "killed"),
        ("timed out after 5 s", "1", "1", "hung")]
    assert "hanging" not in html.split("<h2>Failures</h2>")[1]


def test_the_failures_headline_names_a_timeout_for_jobs_that_timed_out():
    streams = {**failing_job("a", "hanging...", reason="timed out after 5 s; total 5.02 s"),
               **failing_job("b", "still hanging...", reason="timed out after 5 s; total 5.01 s")}
    attempts = parse_streams(streams)
    html = render(data(attempts), figures(data(attempts)), 0)
    assert "2 job(s) failed every attempt: all 2 failed job(s) (2 attempts) timed out after 5 s.</p>" in html


def test_causes_that_differ_only_in_ids_and_numbers_are_one_row_with_an_example_and_the_count():
    streams = {**failing_job("j04", "cannot open /data/plate-04/img_0004.tif (request 3f2a9c4e)",
                             reason="exit code 3 after 1.00 s; total 1.10 s"),
               **failing_job("j05", "cannot open /data/plate-05/img_0005.tif (request 77b1e0aa)",
                             reason="exit code 3 after 1.00 s; total 1.10 s"),
               **failing_job("j06", "cannot open /data/plate-17/img_0123.tif (request 0d9e8f7a)",
                             reason="exit code 3 after 1.00 s; total 1.10 s"),
               **failing_job("j07", "disk full", reason="exit code 1 after 1.00 s; total 1.10 s")}
    attempts = parse_streams(streams)
    html = render(data(attempts), figures(data(attempts)), 0)

    assert failure_rows(html) == [
        ("ended with: cannot open /data/plate-04/img_0004.tif (request 3f2a9c4e) | one of 3 causes alike but for "
         "their ids and numbers", "3", "3", "j04, j05, j06"),
        ("ended with: disk full", "1", "1", "j07")]
    assert "data-variants='3'" in html


def test_a_causes_pattern_masks_uuids_hex_ids_numbers_and_temporary_folders_only():
    assert pattern("job 6f1c2b9e-1d2a-4c3b-9e8f-0123456789ab failed") == "job <id> failed"
    assert pattern("instance i-0abc12de34f56 gone; commit 9fceb02") == "instance i-<id> gone; commit <id>"
    assert pattern("/tmp/dsr-job-k_xqzwab/input/plate-3/a.tif: 2.5 MB") == (
        "/tmp/dsr-job-<tmp>/input/plate-<n>/a.tif: <n> MB")
    assert pattern("tmpab_cdefg.csv") == "tmp<tmp>.csv"
    assert pattern("deadbeef facade cannot decode") == "deadbeef facade cannot decode"  # words stay words


def test_settings_are_shown_as_the_config_wrote_them(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"APP_NAME": "App", "DOCKERHUB_TAG": "a/b:1", "AWS_BUCKET": "bucket",
                                  "MACHINE_TYPE": ["m5.large", "m5.xlarge"], "CHECK_IF_DONE_BOOL": False,
                                  "CLUSTER_MACHINES": 2, "MACHINE_PRICE": 0.1, "COMMAND": ["python", "job.py"]}))
    settings = Settings.load(config)
    shown = data([attempt("a")], settings=shown_settings(settings), config_source=settings.source)
    html = render(shown, figures(shown), 0)

    assert "<tr><th>MACHINE_TYPE</th><td>[&quot;m5.large&quot;, &quot;m5.xlarge&quot;]</td></tr>" in html
    assert "<tr><th>CHECK_IF_DONE_BOOL</th><td>false</td></tr>" in html
    assert "<tr><th>APP_NAME</th><td>App</td></tr>" in html and "<tr><th>MACHINE_PRICE</th><td>0.1</td></tr>" in html
    assert "(&#x27;" not in html  # no Python tuple
    from_py = data([attempt("a")], settings=shown_settings(settings), config_source="config.py")
    html = render(from_py, figures(from_py), 0)
    assert "<tr><th>MACHINE_TYPE</th><td>[&#x27;m5.large&#x27;, &#x27;m5.xlarge&#x27;]</td></tr>" in html
    assert "<tr><th>CHECK_IF_DONE_BOOL</th><td>False</td></tr>" in html  # DS's config.py: Python, as written


def cost_row(html, name):
    return re.search(rf"data-cost='{name}'><th>[^<]*</th><td class='n'>([^<]*)</td><td>([^<]*)</td>", html).groups()


def test_the_idle_share_counts_the_workers_that_ran_when_the_run_knows_them():
    attempts = [attempt("a", start=0, end=1800), attempt("b", start=1800, end=2700)]  # 0.75 busy hours
    ran = data(attempts, summary={"machine_hours": 1.0}, worker_hours=1.0)  # one worker, though 2 slots configured
    html = render(ran, figures(ran), 0)
    assert cost_row(html, "idle share") == ("25%", "1 - busy / 1.0000 worker-hours (each worker that ran, from its "
                                                    "start to its end)")
    configured = data(attempts, summary={"machine_hours": 1.0})  # AWS: every machine runs its slots
    assert cost_row(render(configured, figures(configured), 0), "idle share") == (
        "62%", "1 - busy / (machine-hours x 2 worker(s) per machine)")


def test_machines_are_drawn_on_their_own_axis_right_of_the_jobs():
    series = [Point(0, 2, 48, 0), Point(60, 2, 40, 8), Point(120, 2, 0, 0)]
    shown = data([], series=series)
    svg = re.search(r"<svg class='series'.*?</svg>", render(shown, figures(shown), 0), re.S).group(0)
    assert re.search(r"class='axis-jobs'[^>]*>48</text>", svg) and re.search(r"class='axis-machines'[^>]*>2</text>",
                                                                              svg)
    machines_y = {float(y) for y in re.findall(r",([\d.]+)", re.search(r"class='line-machines'[^>]*points='([^']*)'",
                                                                       svg).group(1))}
    waiting_y = [float(y) for y in re.findall(r",([\d.]+)", re.search(r"class='line-waiting'[^>]*points='([^']*)'",
                                                                      svg).group(1))]
    assert machines_y == {waiting_y[0]} == {4.0}  # 2 machines at the top of their axis, as 48 jobs are of theirs
    assert "machines (right axis)" in render(shown, figures(shown), 0)


def test_each_bar_says_why_its_attempt_ended_a_release_and_a_timeout_in_the_workers_words():
    sign = "; machine i-{m} worker host-{w}"
    attempts = parse_streams({"j1": events(
        (100, NEW.format(n=1, a=1, m="a", w=1)), (101, "started: x"), (102, "hanging..."),
        (105, "released: stopped (spot interruption) after 3.00 s; the job is visible again for another worker"
              + sign.format(m="a", w=1)),
        (110, NEW.format(n=2, a=2, m="b", w=1)), (111, "started: x"), (112, "hanging..."),
        (115, "failed: timed out after 5 s; total 5.01 s; it will be retried in 1 s" + sign.format(m="b", w=1)))})
    html = render(data(attempts), figures(data(attempts)), 0)
    assert re.findall(r"<title>(j1: [^<]*)</title>", html) == [
        "j1: released (stopped (spot interruption) after 3.00 s), 5.0 s", "j1: failed (timed out after 5 s), 5.0 s"]
