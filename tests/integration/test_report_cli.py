"""`cli.py report` against moto: a live run's report, and one line with exit 2 for a run that never started."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli


def test_a_live_run_gets_a_report_before_any_job_ran(started, tmp_path):
    out = tmp_path / "live.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--config", str(started.config_path)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"run report: {out} (")
    html = out.read_text()
    assert "running: a live report" in html and "no job attempt in the logs yet" in html
    assert f"<th>APP_NAME</th><td>{started.settings.APP_NAME}</td>" in html


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
