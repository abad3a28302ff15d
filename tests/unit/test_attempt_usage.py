"""One attempt's figures (worker/attempt_usage.py): the cgroup files, v2 and v1, as the kernel writes them, and
the rule that calls a kill the OOM killer's; the outcome line's words (chalicelib/runfiles/joblines.py) and their
reading."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from chalicelib.runfiles.joblines import out_of_memory_cause, out_of_memory_text, usage_of, usage_text
from worker.attempt_usage import AttemptUsage, CommandUsage, MemoryCgroup, attempt_usage, wait_for_exit, worker_size_kib

MIB = 2**20


def write(folder, **files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)
    return folder


def v2(folder, oom_kill=0, limit=f"{192 * MIB}", peak=f"{150 * MIB}"):
    files = {"memory_events": f"low 0\nhigh 0\nmax 4\noom 1\noom_kill {oom_kill}\noom_group_kill 0\n",
             "memory_max": f"{limit}\n"}
    if peak is not None:
        files["memory_peak"] = f"{peak}\n"
    return write(folder, **files)


def v1(folder, oom_kill=0, limit="9223372036854771712"):
    return write(folder, memory_oom_control=f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n",
                 memory_limit_in_bytes=f"{limit}\n", memory_max_usage_in_bytes=f"{90 * MIB}\n")


def cgroup_file(tmp_path, text):
    path = tmp_path / "self-cgroup"
    path.write_text(text)
    return path


def test_a_v2_container_with_its_own_namespace_is_read_at_the_mounts_root(tmp_path):
    root = v2(tmp_path / "cg")
    found = MemoryCgroup.find(root, cgroup_file(tmp_path, "0::/\n"))
    assert (found.folder, found.version) == (root, 2)
    assert found.read().oom_kills == 0 and found.read().limit_mib == 192 and found.read().peak_mib == 150


def test_a_hosts_process_is_read_in_its_own_cgroup_and_no_limit_is_none(tmp_path):
    root = tmp_path / "cg"
    own = v2(root / "user.slice" / "session-2.scope", oom_kill=2, limit="max", peak=None)
    found = MemoryCgroup.find(root, cgroup_file(tmp_path, "0::/user.slice/session-2.scope\n"))
    assert found.folder == own
    assert (found.read().oom_kills, found.read().limit_mib, found.read().peak_mib) == (2, None, None)


def test_a_v1_container_reads_oom_control_and_a_huge_limit_means_none(tmp_path):
    root = tmp_path / "cg"
    (root / "unified").mkdir(parents=True)  # a hybrid host: v2 holds no memory controller
    folder = v1(root / "memory", oom_kill=3, limit=f"{192 * MIB}")
    found = MemoryCgroup.find(root, cgroup_file(tmp_path, "4:memory:/docker/0123abc\n0::/\n"))
    assert (found.folder, found.version) == (folder, 1)
    assert (found.read().oom_kills, found.read().limit_mib, found.read().peak_mib) == (3, 192, 90)
    v1(root / "memory", limit="9223372036854771712")
    assert found.read().limit_mib is None


@pytest.mark.parametrize("self_cgroup", ["0::/\n", "", None])
def test_no_cgroup_files_is_none_never_an_error(tmp_path, self_cgroup):
    (tmp_path / "cg" / "memory").mkdir(parents=True)
    path = cgroup_file(tmp_path, self_cgroup) if self_cgroup is not None else tmp_path / "missing"
    assert MemoryCgroup.find(tmp_path / "cg", path) is None


def test_oom_killed_only_when_the_counter_rose_and_the_command_got_sigkill(tmp_path):
    cgroup = MemoryCgroup(v2(tmp_path / "cg", oom_kill=1), 2)
    command = CommandUsage(180.4, 2.5)
    assert attempt_usage(-signal.SIGKILL, command, cgroup, oom_kills_before=0).oom_killed
    assert not attempt_usage(-signal.SIGKILL, command, cgroup, oom_kills_before=1).oom_killed  # a kill -9
    assert not attempt_usage(1, command, cgroup, oom_kills_before=0).oom_killed  # another worker's job's kill
    assert not attempt_usage(-signal.SIGKILL, command, None, None).oom_killed  # no cgroup: cannot tell
    assert not attempt_usage(-signal.SIGKILL, command, MemoryCgroup(tmp_path / "gone", 2), 0).oom_killed


def test_the_limit_said_is_the_cgroups_else_the_memory_setting(tmp_path):
    command = CommandUsage(180.4, 2.5)
    limited = attempt_usage(-9, command, MemoryCgroup(v2(tmp_path / "a", oom_kill=1), 2), 0)
    assert limited.out_of_memory(1024) == "out of memory: peak 180 MiB, limit 192 MiB (MEMORY)"
    unlimited = attempt_usage(-9, command, MemoryCgroup(v2(tmp_path / "b", oom_kill=1, limit="max"), 2), 0)
    assert unlimited.out_of_memory(1024) == "out of memory: peak 180 MiB, limit 1024 MiB (MEMORY)"
    assert limited.text() == "peak memory 180 MiB, cpu 2.50 s, container peak 150 of 192 MiB"
    assert unlimited.text() == "peak memory 180 MiB, cpu 2.50 s"  # a laptop's cgroup peak says nothing of the job
    assert AttemptUsage(CommandUsage(60, 0.01, at_most=True), None, False).text() == (
        "peak memory at most 60 MiB, cpu 0.01 s")
    assert AttemptUsage(None, None, False).text() == ""


def test_wait_for_exit_reaps_the_command_with_its_peak_and_cpu_and_popen_knows_its_code():
    worker_kib = worker_size_kib()  # this test process: the command's figure holds it, so the command is bigger
    held = worker_kib // 1024 + 64
    process = subprocess.Popen([sys.executable, "-c", f"b = bytearray({held} << 20); b[::4096] = b'x' * ({held} * 256)"
                                "\nimport os; os.kill(os.getpid(), 9)"])
    code, usage = wait_for_exit(process, worker_kib)
    assert code == -signal.SIGKILL and process.returncode == code and process.wait() == code
    assert held <= usage.peak_mib < held + 40 and usage.cpu_seconds > 0 and not usage.at_most


def test_a_command_within_the_workers_size_gets_a_bound():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    worker_kib = worker_size_kib()
    code, usage = wait_for_exit(process, worker_kib)
    assert code == 0 and usage.at_most and usage.peak_mib * 1024 <= worker_kib + 2048


def test_the_words_read_back_and_old_lines_have_none():
    text = ("exit code 0; run 3.10 s; total 3.20 s; " + usage_text(512.4, 12.345, 600, 1024))
    assert usage_of(text) == (512.0, 12.35, 600.0, 1024.0)
    assert usage_of("exit code 3 after 0.12 s; total 0.20 s; " + usage_text(40, 0.1, at_most=True)) == (
        40.0, 0.1, None, None)
    assert usage_of("exit code 3 after 0.12 s; total 0.20 s; it will be retried in 10 s") is None
    assert usage_of("") is None
    oom = out_of_memory_text(180.4, 192) + "; exit code -9 after 2.00 s"
    assert oom == "out of memory: peak 180 MiB, limit 192 MiB (MEMORY); exit code -9 after 2.00 s"
    assert out_of_memory_cause(oom) == "out of memory at the limit of 192 MiB (MEMORY)"
    assert out_of_memory_cause("exit code -9 after 2.00 s") is None
