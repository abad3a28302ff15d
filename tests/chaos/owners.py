"""Whose is a resource: each resource an audit line names, mapped to the run of the seed it belongs to.

By the names the project derives from each run's settings (chalicelib/model/names.py, Settings' own derived names,
and the record of a DS image mode run's job locations, operations/setup/job_locations.py `record_key`)
and by the `dsr:app` tag AWS holds on it (read from the emulator once, terminated instances and deleted fleets
included: moto keeps them listed), plus what the audit learnt when a launch template or fleet was made (its id and
the tag of its request: once deleted, the emulator no longer lists a launch template).

An owner is a run's APP_NAME, SHARED (the dead-letter queue every run of the seed shares, the bucket itself, the
account-wide names), BYSTANDER (what belongs to no run and must survive: tests/chaos/invariants.py `bystander`), or
nothing: a resource of no run of the seed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.model import names
from chalicelib.model.jobs import output_root
from chalicelib.model.settings import Settings
from operations.setup import job_locations

SHARED = "(shared)"
BYSTANDER = "(bystander)"
BYSTANDER_QUEUE = "chaos-bystander-queue"
BYSTANDER_ALARM = "chaos-bystander-alarm"
# Kinds of resource the owners are known for; an audit line's other kinds (task ARNs, export task ids, IAM names
# setup repairs, tagging ARNs) are not judged.
JUDGED = ("queue", "instance", "fleet", "alarm", "dashboard", "cluster", "service", "task_definition",
          "launch_template", "log_group", "s3")
_FLEET_TAG = "aws:ec2:fleet-id"


@dataclass
class Owners:
    """Resource -> owner tables of one seed (build with `Owners.of`)."""

    settings: dict[str, Settings]
    bucket: str
    dead_letter_queue: str
    instances: dict[str, str] = field(default_factory=dict)
    fleets: dict[str, str] = field(default_factory=dict)
    launch_templates: dict[str, str] = field(default_factory=dict)  # id or name -> owner

    @classmethod
    def of(cls, settings: dict[str, Settings], bucket: str, dead_letter_queue: str, ec2: Any,
           audit_lines: Iterable[dict[str, Any]]) -> Owners:
        owners = cls(settings, bucket, dead_letter_queue)
        for line in audit_lines:
            if line.get("destructive") is False:
                owners._learn_creation(line)
        for fleet in ec2.describe_fleets().get("Fleets", []):
            owners._tagged(owners.fleets, fleet["FleetId"], fleet.get("Tags", []))
        for request in ec2.describe_spot_fleet_requests().get("SpotFleetRequestConfigs", []):
            owners._tagged(owners.fleets, request["SpotFleetRequestId"], request.get("Tags", []))
        for template in ec2.describe_launch_templates().get("LaunchTemplates", []):
            owner = _tag(template.get("Tags", [])) or owners._launch_template_by_name(template["LaunchTemplateName"])
            if owner:
                owners.launch_templates[template["LaunchTemplateId"]] = owner
        for reservation in _pages(ec2, "describe_instances", "Reservations"):
            for instance in reservation["Instances"]:
                tags = instance.get("Tags", [])
                owner = _tag(tags) or owners.fleets.get(next(
                    (tag["Value"] for tag in tags if tag["Key"] == _FLEET_TAG), ""), "")
                if owner:
                    owners.instances[instance["InstanceId"]] = owner
        return owners

    def _learn_creation(self, line: dict[str, Any]) -> None:
        made = line.get("resources", {})
        owner = (made.get("run_tag") or [caller_run(line.get("caller", ""), self.settings) or ""])[0]
        if not owner:
            return
        for fleet in made.get("fleet", []):
            self.fleets[fleet] = owner
        for template in made.get("launch_template", []):
            self.launch_templates[template] = owner

    def _tagged(self, table: dict[str, str], key: str, tags: list[dict[str, str]]) -> None:
        owner = _tag(tags)
        if owner:
            table[key] = owner

    def _launch_template_by_name(self, name: str) -> str | None:
        return next((app for app, s in self.settings.items() if names.launch_template(s) == name), None)

    def of_resource(self, kind: str, value: str) -> set[str]:
        """The owners of one resource (usually one; a cluster several runs name is theirs alike); empty: no run's."""
        apps = self.settings.items()
        if kind == "queue":
            name = value.rstrip("/").rsplit("/", 1)[-1]
            if name == self.dead_letter_queue:
                return {SHARED}
            if name == BYSTANDER_QUEUE:
                return {BYSTANDER}
            return {app for app, s in apps if name == s.SQS_QUEUE_NAME}
        if kind == "instance":
            return _one(self.instances.get(value))
        if kind == "fleet":
            return _one(self.fleets.get(value))
        if kind == "launch_template":
            return _one(self.launch_templates.get(value) or self._launch_template_by_name(value))
        if kind == "alarm":
            return {BYSTANDER} if value == BYSTANDER_ALARM else {app for app in self.settings if run_alarm(app, value)}
        if kind == "dashboard":
            return {app for app, s in apps if names.dashboard(s) == value}
        if kind == "cluster":
            return {app for app, s in apps if value.rsplit("/", 1)[-1] == s.ECS_CLUSTER}
        if kind == "service":
            return {app for app, s in apps if s.service_name == value.rsplit("/", 1)[-1]}
        if kind == "task_definition":
            family = value.rsplit("/", 1)[-1].split(":", 1)[0]
            return {app for app, s in apps if s.task_family == family}
        if kind == "log_group":
            return {app for app, s in apps if value in (s.LOG_GROUP_NAME, s.per_instance_log_group)}
        if kind == "s3":
            return self._of_object(value)
        return set()

    def _of_object(self, value: str) -> set[str]:
        bucket, _, key = value.partition("/")
        if bucket != self.bucket:
            return {app for app, s in self.settings.items() if bucket in s.buckets.values()
                    and key.startswith(output_root(s)) and output_root(s)}
        if not key:
            return {SHARED}
        for app, s in self.settings.items():
            if key in (names.record_key(app), names.summary_key(app), names.earlier_summary_key(app),
                       names.monitor_state_key(app), names.status_key(app), names.claim_key(app),
                       names.ecs_config_key(s), job_locations.record_key(app)) \
                    or key.startswith((names.run_files_prefix(app), names.exported_logs_prefix(s))):
                return {app}
        # outputs: the longest fixed start of a run's OUTPUT_PREFIX the key is under
        roots = sorted(((output_root(s), app) for app, s in self.settings.items() if output_root(s)), reverse=True)
        return next(({app} for root, app in roots if key.startswith(root)), set())


def run_alarm(app_name: str, alarm: str) -> bool:
    """An alarm name the project derives for the run: its two queue alarms, its machines' idle alarms."""
    return alarm in (names.queue_alarm_name("visible", app_name), names.queue_alarm_name("not_visible", app_name)) \
        or names.instance_alarm_pattern(app_name).fullmatch(alarm) is not None


def caller_run(caller: str, settings: dict[str, Settings]) -> str | None:
    """The run whose processes sign with `caller` (the harness's `chaos-<APP_NAME>` key ids)."""
    match = re.fullmatch(r"chaos-(.+)", caller)
    return match.group(1) if match and match.group(1) in settings else None


def _tag(tags: list[dict[str, str]]) -> str | None:
    return next((tag["Value"] for tag in tags or [] if tag.get("Key") == names.RUN_TAG), None)


def _one(owner: str | None) -> set[str]:
    return {owner} if owner else set()


def _pages(client: Any, operation: str, key: str) -> Iterable[Any]:
    for page in client.get_paginator(operation).paginate():
        yield from page.get(key, [])
