"""`cli.py report` against moto: a live run's report; a finished run's from its S3 export once its log group is
gone, with the monitor's series; one line with exit 2 for a run that never started or left no logs."""

from __future__ import annotations

import json
import re
from html import escape

from click.testing import CliRunner

from chalicelib import aws as clients
from chalicelib.aws.s3 import read_object
from chalicelib.model.names import record_key
from chalicelib.monitor.reconcile import reconcile
from cli import cli
from tests.integration.world import reconcile_until_gone, the_run
from tests.worker_world import run_workers, script


def test_a_live_run_gets_a_report_before_any_job_ran(started, tmp_path):
    out = tmp_path / "live.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"run report: {out} (")
    html = out.read_text()
    assert "running: a live report" in html and "no job attempt in the logs yet" in html
    assert f"<th>APP_NAME</th><td>{started.settings.APP_NAME}</td>" in html


def test_a_live_runs_report_draws_the_monitors_series_from_its_state(started, tmp_path):
    reconcile(the_run(started))  # the monitor's first check: 2 machines, the 12 jobs waiting
    out = tmp_path / "live.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])

    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Source: the monitor&#x27;s checks: a point whenever" in html
    assert "class='line-waiting'" in html and re.search(r"<svg class='series'.*?>12</text>", html, re.S)


def test_a_run_that_never_started_is_one_line_and_exit_2(aws, started, tmp_path):
    config = json.loads(started.config_path.read_text())
    config["APP_NAME"] = "Nobody"
    path = tmp_path / "nobody.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r.html"), "--config", str(path)])

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: no run named 'Nobody' in s3://{config['AWS_BUCKET']}/monitors/ (neither a run record nor a "
        "summary): expected a run started with start-cluster"]
    assert not (tmp_path / "r.html").exists()


def test_a_finished_run_whose_log_group_is_gone_is_reported_from_its_s3_export(started, tmp_path):
    # Real workers run the 12 jobs (two fail for good, one prints a line that looks like the worker's own),
    # the real monitor tears the run down (its export to S3 included), then CloudWatch's 60 days pass.
    settings = started.settings
    run_workers(started, script("import sys; plate = sys.argv[1]; print('failed: 0 of 3 checks')\n"
                                "if plate in ('P00000', 'P00001'): print('no such file sampl.py'); sys.exit(2)"))
    ticks = reconcile_until_gone(started, limit=12)
    summary = json.loads(read_object(clients.client("s3"), settings.AWS_BUCKET,
                                     f"monitors/finished/{settings.APP_NAME}_summary.json"))
    assert summary["log_exports"][settings.LOG_GROUP_NAME] == "done"
    # the monitor's series: a point at each check whose counts changed, carried into the summary
    series = summary["series"]
    assert len(series) == len({tuple(point[1:]) for point in series}) <= len(ticks)
    assert series[0][1:] == [2, 0, 0] and series[-1][1] == 0  # 2 machines, nothing waiting; none at the end
    clients.client("logs").delete_log_group(logGroupName=settings.LOG_GROUP_NAME)

    out = tmp_path / "finished.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])

    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "finished;" in html and "the monitor&#x27;s checks" in html
    drawn = re.findall(r"<rect class='bar o-([a-z]+)' data-job='([^']*)'", html)
    assert sorted(job for outcome, job in drawn if outcome == "succeeded") == [f"P{n:05d}" for n in range(2, 12)]
    assert sorted({job for outcome, job in drawn if outcome == "failed"}) == ["P00000", "P00001"]
    assert re.search(r"<td>ended with: no such file sampl.py</td>", html)  # the cause, not the look-alike line
    assert re.search(r"data-figure='failed'><b>2</b>", html) and re.search(r"data-figure='done'><b>10</b>", html)


def test_a_run_with_neither_log_group_nor_export_says_so_in_one_line(started, tmp_path):
    settings = started.settings
    run_workers(started, script("print('ok')"))
    clients.client("s3").put_object(  # a summary as a run whose export failed leaves it
        Bucket=settings.AWS_BUCKET, Key=f"monitors/finished/{settings.APP_NAME}_summary.json",
        Body=json.dumps({"app_name": settings.APP_NAME, "stop_reason": "drained", "started_at": 1.7e9,
                         "ended_at": 1.7e9 + 60, "jobs_submitted": 1, "jobs_done": 1, "jobs_failed": 0, "jobs_left": 0,
                         "machine_hours": 0.1, "cost_ceiling_usd": 0.01,
                         "log_exports": {settings.LOG_GROUP_NAME: "failed"},
                         "exported_logs": f"s3://{settings.AWS_BUCKET}/exportedlogs/x/"}).encode())
    clients.client("s3").delete_object(Bucket=settings.AWS_BUCKET, Key=record_key(settings.APP_NAME))
    clients.client("logs").delete_log_group(logGroupName=settings.LOG_GROUP_NAME)

    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r.html"), "--config",
                                      str(started.config_path)])

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: log group {settings.LOG_GROUP_NAME} does not exist in {settings.AWS_REGION} and its export is "
        "'failed': the run report has no job logs to read"]


def test_a_live_runs_report_has_the_jobs_and_machines_status_shows_before_any_job_ran(started, tmp_path):
    """The emulator rehearsal (submit, start-cluster, no job run yet): `status` said 12 jobs on 2 machines, the
    report said 0 jobs and 0 machines (it counted the job logs only)."""
    status = CliRunner().invoke(cli, ["status", "--json", "--config", str(started.config_path)])
    shown = json.loads(status.stdout)  # stderr warns that no monitor is deployed
    out = tmp_path / "live.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])

    assert result.exit_code == 0, result.output
    html = out.read_text()
    tiles = dict(re.findall(r"data-figure='([^']*)'><b>([^<]*)</b>", html))
    assert (tiles["jobs"], tiles["machines"]) == (str(shown["jobs"]["submitted"]), str(len(shown["machines"])))
    assert (tiles["jobs"], tiles["machines"]) == ("12", "2")
    # the settings as the config wrote them: MACHINE_TYPE a JSON list, not a Python tuple
    machine_type = json.loads(started.config_path.read_text())["MACHINE_TYPE"]
    assert f"<tr><th>MACHINE_TYPE</th><td>{escape(json.dumps(machine_type))}</td></tr>" in html
