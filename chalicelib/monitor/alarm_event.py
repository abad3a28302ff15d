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
        return self._message["AlarmName"]

    @property
    def new_state(self) -> AlarmState:
        return self._message.get("NewStateValue", "")

    @property
    def region(self) -> str:
        return self._message.get("Region", "")

    @property
    def metric_name(self) -> str:
        return self._message["Trigger"].get("MetricName", "")

    @property
    def dimensions(self) -> dict[str, str]:
        # AWS writes these entries with lower-case keys: {"value": ..., "name": ...}
        return {item.get("name") or item.get("Name"): item.get("value") or item.get("Value")
                for item in self._message["Trigger"].get("Dimensions", []) if isinstance(item, dict)}

    @property
    def queue_name(self) -> str | None:
        return self.dimensions.get("QueueName")
