"""Local mode runs the same monitor: it makes each machine's idle alarm, tagged as the run's, and leaves none.

`cli.py local --endpoint` is pointed at the tests' emulator, which runs in this process, so what CloudWatch
was asked to make is read from moto's own backend (through a wrapper that calls it unchanged) and what is left
is read back once the run is over.
"""

from __future__ import annotations

import boto3
from moto.cloudwatch.models import CloudWatchBackend

from tests.e2e.local_world import Run, local_args, processes_marked, run_local, table_value


def test_a_local_run_makes_each_machines_tagged_idle_alarm_and_tears_every_alarm_down(moto_server, tmp_path,
                                                                                        monkeypatch):
    made = []
    put_metric_alarm = CloudWatchBackend.put_metric_alarm

    def recorded(self, name, *args, **kwargs):
        made.append((name, kwargs.get("tags"), kwargs.get("dimensions"), kwargs.get("alarm_actions")))
        return put_metric_alarm(self, name, *args, **kwargs)

    monkeypatch.setattr(CloudWatchBackend, "put_metric_alarm", recorded)
    run = Run(tmp_path, CLUSTER_MACHINES=2)
    result, mark = run_local(local_args(run.jobs("sleep:2", "sleep:2", "ok"), run.config, "--out", str(run.out),
                                     "--endpoint", moto_server), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_value(result.stdout, "done") == "3"

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server)
    machines = {instance["InstanceId"] for reservation in ec2.describe_instances()["Reservations"]
                for instance in reservation["Instances"]}
    idle_alarms = {name: (tags, dimensions, actions) for name, tags, dimensions, actions in made
                   if name.startswith("E2E_i-")}
    assert idle_alarms, "the monitor made the machines' idle alarms"
    for name, (tags, dimensions, actions) in idle_alarms.items():
        instance = name.removeprefix("E2E_")
        assert instance in machines
        assert tags == [{"Key": "dsr:app", "Value": "E2E"}]
        assert dimensions == [{"Name": "InstanceId", "Value": instance}]
        assert actions == ["arn:aws:automate:us-east-1:ec2:terminate"]
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_server)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []  # the queue alarms and every machine's: gone
    # the run's launch template (its machines' metadata options) went with the run too
    assert ec2.describe_launch_templates(Filters=[{"Name": "tag:dsr:app", "Values": ["E2E"]}])["LaunchTemplates"] == []
    assert processes_marked(mark) == []
