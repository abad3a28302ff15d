"""A fleet's error events, read from its history: where AWS says why a fleet launches nothing.

A fleet that cannot launch stays "active" with no machines; the cause is only in its history (DCP #151, #178).
Two APIs, one per kind of fleet (Amazon EC2 API Reference, DescribeFleetHistory / DescribeSpotFleetRequestHistory):

- an EC2 Fleet ("fleet-...") has EventType "service-error" for its errors, besides "instance-change" and
  "fleet-change";
- a spot fleet ("sfr-...") has EventType "error", and "information" for the events that are problems of one launch
  specification (launchSpecUnusable: e.g. a bid below the Spot price; launchSpecTemporarilyBlacklisted), besides
  "instanceChange" and "fleetRequestChange".

EventSubType and EventDescription say what failed (API_EventInformation.html); chalicelib/monitor/fleet_words.py turns
them into words. EventDescription is AWS's text, which carries what the user gave (a type, an AMI id): untrusted for a
terminal, shown only through chalicelib/model/printable.py.

Neither call has a botocore paginator (`ec2.can_paginate` is False for both): NextToken is followed here, for at
most `max_pages` pages of `page_size` records per event type, oldest first from `since`, so a fleet that has been
failing for days costs a bounded number of calls. AWS keeps EC2 Fleet events 48 hours, and shows them up to 30 s
late.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client

MAX_PAGES = 3
PAGE_SIZE = 1000  # the largest MaxResults both calls take

# Per kind of fleet: the call, its id parameter, and the event types read (each with its own bound).
_EC2_FLEET = ("describe_fleet_history", "FleetId", ("service-error",))
_SPOT_FLEET = ("describe_spot_fleet_request_history", "SpotFleetRequestId", ("error", "information"))
# "information" events that are problems; the others (e.g. a price_update) are not.
PROBLEM_INFORMATION = frozenset({"launchSpecUnusable", "launchSpecTemporarilyBlacklisted", "fleetProgressHalted",
                                 "registerWithLoadBalancersFailed"})


@dataclass(frozen=True)
class FleetError:
    code: str  # EventSubType, e.g. spotInstanceCountLimitExceeded
    description: str  # EventDescription as AWS wrote it: untrusted text
    when: datetime | None
    event_type: str
    instance_id: str | None = None


class FleetHistoryUnavailable(Exception):
    """AWS would not give the fleet's history (no permission, unknown fleet, no endpoint)."""

    def __init__(self, fleet_id: str, reason: str):
        super().__init__(f"could not read the history of fleet {fleet_id}: {reason}")
        self.fleet_id, self.reason = fleet_id, reason


class FleetErrors(list["FleetError"]):
    """The errors found (a list of FleetError, oldest first); `complete` is False when the bound cut the reading."""

    def __init__(self, errors: Iterable[FleetError] = (), complete: bool = True):
        super().__init__(errors)
        self.complete = complete


def fleet_errors(ec2: EC2Client, fleet_id: str, since: datetime, *, max_pages: int = MAX_PAGES,
                 page_size: int = PAGE_SIZE) -> FleetErrors:
    """The error events in the history of `fleet_id` from `since` on, oldest first, for either kind of fleet.

    Raises FleetHistoryUnavailable when AWS refuses the call (the caller shows that as one line and goes on)."""
    operation, id_key, event_types = _EC2_FLEET if fleet_id.startswith("fleet-") else _SPOT_FLEET
    call = getattr(ec2, operation)
    found: list[FleetError] = []
    complete = True
    for event_type in event_types:
        token = None
        for _ in range(max_pages):
            params: dict[str, Any] = {id_key: fleet_id, "StartTime": since, "EventType": event_type,
                                      "MaxResults": page_size}
            if token:
                params["NextToken"] = token
            try:
                page = call(**params)
            except ClientError as error:
                raise FleetHistoryUnavailable(fleet_id, error.response.get("Error", {}).get("Code", "error")) from error
            except BotoCoreError as error:
                raise FleetHistoryUnavailable(fleet_id, type(error).__name__) from error
            for record in page.get("HistoryRecords", ()):
                event = _as_error(record)
                if event is not None:
                    found.append(event)
            token = page.get("NextToken")
            if not token:
                break
        else:
            complete = complete and not token
    found.sort(key=lambda error: error.when.timestamp() if error.when else 0.0)
    return FleetErrors(found, complete)


def _as_error(record: dict[str, Any]) -> FleetError | None:
    information = record.get("EventInformation") or {}
    event_type, code = str(record.get("EventType", "")), str(information.get("EventSubType", "") or "")
    if event_type == "information" and code not in PROBLEM_INFORMATION:
        return None
    return FleetError(code=code or event_type, description=str(information.get("EventDescription", "") or ""),
                      when=record.get("Timestamp"), event_type=event_type,
                      instance_id=information.get("InstanceId"))
