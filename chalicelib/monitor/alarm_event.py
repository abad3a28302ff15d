"""A CloudWatch alarm notification as SNS delivers it: a thin typed wrapper over its JSON.

(powertools' CloudWatchAlarmEvent is for alarms that invoke Lambda directly;
through SNS the payload is this PascalCase document inside the SNS message.)
"""

from __future__ import annotations

import json
from typing import Any, Literal

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


class AlarmNotification:
    def __init__(self, message: dict[str, Any]):
        self._message = message

    @classmethod
    def from_sns_message(cls, text: str) -> AlarmNotification | None:
        """None for anything that is not an alarm notification (a test publish, another service)."""
        try:
            message = json.loads(text)
        except (TypeError, ValueError):
            return None
        if not isinstance(message, dict) or "AlarmName" not in message or not isinstance(message.get("Trigger"), dict):
            return None
        return cls(message)

    @property
    def alarm_name(self) -> str:
        name: str = self._message["AlarmName"]
        return name

    @property
    def new_state(self) -> AlarmState:
        state: AlarmState = self._message.get("NewStateValue", "")
        return state

    @property
    def region(self) -> str:
        region: str = self._message.get("Region", "")
        return region

    @property
    def metric_name(self) -> str:
        name: str = self._message["Trigger"].get("MetricName", "")
        return name

    @property
    def dimensions(self) -> dict[str, str]:
        # AWS writes these entries with lower-case keys: {"value": ..., "name": ...}; one without both names nothing
        found: dict[str, str] = {}
        for item in self._message["Trigger"].get("Dimensions", []):
            if isinstance(item, dict):
                name, value = item.get("name") or item.get("Name"), item.get("value") or item.get("Value")
                if name and value:
                    found[name] = value
        return found

    @property
    def queue_name(self) -> str | None:
        return self.dimensions.get("QueueName")
