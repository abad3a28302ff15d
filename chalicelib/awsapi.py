"""Typed reads the rest of the code shares: one function per intent, plain values back, "not found" handled
once (Chalice's TypedAWSClient is the model). No raw response dict leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from chalicelib.aws import QUEUE_MISSING, error_code

# AWS's SpotFleetRequestState values in which a fleet still has (or will have) machines; every other state
# (cancelled, cancelled_running, cancelled_terminating, failed) means it is over.
LIVE_FLEET_STATES = ("submitted", "active", "modifying")


@dataclass(frozen=True)
class QueueDepth:
    waiting: int  # visible + delayed: jobs no worker holds yet
    in_flight: int  # received and not deleted: running, or failed and waiting for their retry

    @property
    def empty(self) -> bool:
        return self.waiting == 0 and self.in_flight == 0


def queue_depth(sqs, url: str) -> QueueDepth | None:
    """The queue's approximate counts, or None when the queue no longer exists."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    except ClientError as error:
        if error_code(error) in QUEUE_MISSING:
            return None
        raise
    return QueueDepth(waiting=int(attributes.get("ApproximateNumberOfMessages", 0))
                      + int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
                      in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)))


@dataclass(frozen=True)
class FleetState:
    fleet_id: str
    state: str  # AWS's SpotFleetRequestState
    activity: str  # AWS's ActivityStatus: fulfilled | pending_fulfillment | error | ...
    target: int
    fulfilled: float
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state in LIVE_FLEET_STATES


def fleet_state(ec2, fleet_id: str) -> FleetState | None:
    """The spot fleet request's state, or None when AWS no longer knows it (moto forgets a cancelled one)."""
    try:
        configs = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[fleet_id])["SpotFleetRequestConfigs"]
    except ClientError as error:
        if error_code(error).startswith("InvalidSpotFleetRequestId"):
            return None
        raise
    if not configs:
        return None
    described = configs[0]
    config = described.get("SpotFleetRequestConfig", {})
    return FleetState(fleet_id=fleet_id, state=described.get("SpotFleetRequestState", ""),
                      activity=described.get("ActivityStatus", ""), target=int(config.get("TargetCapacity", 0)),
                      fulfilled=float(config.get("FulfilledCapacity", 0.0)),
                      tags={tag["Key"]: tag["Value"] for tag in described.get("Tags", ())})
