"""Two workers writing one job's log stream at once: each attempt is read back with its own outcome.

A released job is visible to other workers the moment its worker hands it back. A worker that took the copy at
once logged its "received:" line before the first worker had written "released:", and the run report read the
stream as one attempt after another: the first attempt "lost", the released line closing the second, and the
second's "succeeded:" belonging to no attempt (CI's report/summary disagreement). Made deterministic here: the
second worker runs the whole job inside the first worker's SendMessage (the hand-back), before the first goes on.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from operations.report.data import RELEASED, SUCCEEDED, attempts_by_job, parse_stream, read_log_events
from tests.waiting import wait_for
from tests.worker_world import FAST, aws_clients, python, send_jobs, world
from worker.worker import Outcome, Worker


def options(slot: str, instance: str):
    return dataclasses.replace(FAST, worker_slot=slot, instance_id=instance)


def test_a_job_released_and_done_at_once_by_another_worker_reads_back_released_then_succeeded(clients, tmp_path):
    started = tmp_path / "started"
    # Waits for its stop until it has run once (the second run finds `started` and ends at once).
    command = python("import os, pathlib, sys, time\n"
                     "first = not os.path.exists(sys.argv[1])\n"
                     "pathlib.Path(sys.argv[1]).touch()\n"
                     "print('running', flush=True)\n"
                     "time.sleep(30 if first else 0)\n"
                     "pathlib.Path(sys.argv[2], 'out.txt').write_text('x')", str(started), "{output_dir}")
    settings, first, queue_url, _ = world(clients, options("1", "i-first"), COMMAND=command)
    second = Worker(settings, options=options("2", "i-second"), **aws_clients())
    send_jobs(clients["sqs"], queue_url, settings, [{"plate": "P1"}])
    handed_back = []

    def take_the_copy(**_):  # the copy is in the queue: another worker takes it and runs it to its end
        handed_back.append(second.run_once())

    clients["sqs"].meta.events.register("after-call.sqs.SendMessage", take_the_copy)
    stopper = threading.Thread(target=lambda: (wait_for(started.exists, "the command to start"),
                                                first.request_stop("spot interruption notice")))
    stopper.start()
    assert first.run_once() is Outcome.RELEASED
    stopper.join()
    assert handed_back == [Outcome.SUCCEEDED]
    first.close()
    second.close()

    streams = read_log_events(clients["logs"], settings.LOG_GROUP_NAME)
    attempts = parse_stream("P1", streams["P1"])
    assert [(a.machine, a.slot, a.outcome) for a in attempts] == [
        ("i-first", first.worker_id, RELEASED), ("i-second", second.worker_id, SUCCEEDED)]
    assert "spot interruption notice" in attempts[0].reason and "i-first" not in attempts[0].reason
    # local mode's summary classifies jobs by the same attempts
    assert [a.outcome for a in attempts_by_job(streams)["P1"]] == [RELEASED, SUCCEEDED]
    assert Path(started).exists()
