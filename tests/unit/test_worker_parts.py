"""The worker's small parts, without AWS: knobs, the 12-hour cap, the machine's identity, resources, output files."""

from __future__ import annotations

import os
import re

import pytest

from chalicelib.model.errors import ConfigError
from worker.heartbeat import Heartbeat, default_interval, next_visibility
from worker.host import read_instance_id
from worker.options import WorkerOptions
from worker.resources_log import Sample, memory_use
from worker.upload import TransferError, output_files


# ---------------------------------------------------------------- options
def test_worker_knobs_come_from_dsr_environment_variables():
    options = WorkerOptions.from_environment({"DSR_WAIT_SECONDS": "1", "DSR_INSTANCE_ID_FILE": "/host/instance-id",
                                              "DSR_STOP_GRACE_SECONDS": "2.5", "OTHER": "x"})
    assert (options.wait_seconds, options.instance_id_file, options.stop_grace_seconds) == (1, "/host/instance-id", 2.5)
    assert WorkerOptions().instance_id_file == "/etc/dsr/host/instance-id"  # where the task definition mounts it
    assert WorkerOptions.from_environment({}) == WorkerOptions()


@pytest.mark.parametrize("name, value, message", [
    ("DSR_WAIT_SECONDS", "21", "DSR_WAIT_SECONDS: expected a number from 0 to 20, got '21'"),
    ("DSR_RETRY_DELAY_SECONDS", "1.5", "DSR_RETRY_DELAY_SECONDS: expected a whole number of seconds, got '1.5'"),
    ("DSR_RESOURCES_SECONDS", "soon", "DSR_RESOURCES_SECONDS: expected a number, got 'soon'"),
    ("DSR_STOP_GRACE_SECONDS", "-1", "DSR_STOP_GRACE_SECONDS: expected a number >= 0, got '-1'"),
])
def test_a_bad_knob_is_a_clear_error(name, value, message):
    with pytest.raises(ConfigError, match=message):
        WorkerOptions.from_environment({name: value})


# ---------------------------------------------------------------- heartbeat
def test_the_heartbeat_beats_at_a_third_of_the_visibility():
    assert default_interval(600) == 200 and default_interval(1) == pytest.approx(0.33, abs=0.01)


def test_the_heartbeat_never_asks_past_sqs_12_hour_cap():
    assert next_visibility(600, elapsed=0) == 600
    assert next_visibility(600, elapsed=43200 - 100) == 100
    assert next_visibility(600, elapsed=43200) == 0


class _RecordingSqs:
    """Stands in for SQS only to record the timeouts asked for near the cap (12 h cannot pass in a test)."""

    def __init__(self):
        self.timeouts = []

    def change_message_visibility(self, **kwargs):
        self.timeouts.append(kwargs["VisibilityTimeout"])


def test_the_heartbeat_warns_in_the_job_log_as_the_cap_nears_and_stops_at_it():
    lines, now = [], [0.0]
    sqs = _RecordingSqs()
    beat = Heartbeat(sqs, "url", "handle", 600, 200, lines.append, received_at=0.0, clock=lambda: now[0])
    assert beat.beat() and lines == []
    now[0] = 43200 - 1800
    assert beat.beat() and beat.beat()
    assert len(lines) == 1 and "SQS keeps a message hidden at most 12 h" in lines[0] and "in 30 min" in lines[0]
    now[0] = 43200
    assert not beat.beat()
    assert sqs.timeouts == [600, 600, 600]


# ---------------------------------------------------------------- the machine's identity (no metadata service)
def test_the_instance_id_comes_from_the_file_the_hosts_boot_script_wrote(tmp_path, caplog):
    path = tmp_path / "instance-id"
    path.write_text("i-0123456789abcdef0\n")
    assert read_instance_id(str(path)) == "i-0123456789abcdef0"
    assert read_instance_id(str(tmp_path / "missing")) is None  # off EC2
    path.write_text("../../monitors/x")
    assert read_instance_id(str(path)) is None  # never a lease key's path
    assert "not an instance id" in caplog.text


# ---------------------------------------------------------------- resources
def test_a_resource_line_warns_past_90_percent():
    calm = Sample(50, 10.0, 5, 40, 400, 1000, 12)
    assert calm.line() == "resources: disk 50% (10.0 GiB free), inodes 5%, memory 40% (400 of 1000 MiB), cpu 12%"
    assert Sample(95, 1.0, 5, 92, 920, 1000, None).line().startswith("WARNING resources: disk 95%")
    assert Sample(95, 1.0, 5, 92, 920, 1000, None).line().endswith("(disk and memory over 90%)")


def test_memory_is_the_containers_cgroup_limit_when_it_has_one(tmp_path):
    (tmp_path / "memory.current").write_text("536870912\n")
    (tmp_path / "memory.max").write_text("1073741824\n")
    assert memory_use(cgroup_v2=tmp_path, cgroup_v1=tmp_path / "none") == (512, 1024)
    (tmp_path / "memory.max").write_text("max\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048000 kB\nMemAvailable:   1024000 kB\n")
    assert memory_use(cgroup_v2=tmp_path, cgroup_v1=tmp_path / "none", meminfo=meminfo) == (1000, 2000)


# ---------------------------------------------------------------- output files
def test_output_files_follow_links_inside_and_refuse_links_outside(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.txt").write_text("a")
    os.symlink("sub/a.txt", out / "alias.txt")
    os.symlink("sub", out / "sub-link")  # a folder link inside: its files come from the folder itself
    assert [key for key, _ in output_files(out)] == ["alias.txt", "sub/a.txt"]
    os.symlink("/etc", out / "sub" / "etc")
    with pytest.raises(TransferError, match=re.escape("sub/etc is a symlink to /etc, outside {output_dir}")):
        output_files(out)
