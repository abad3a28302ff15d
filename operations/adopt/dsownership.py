"""What ties a Distributed-Something run's resources to its APP_NAME, read the way DS itself ties them.

DS tags nothing: a monitor file's names prove nothing (anyone can write one). What DS's run.py builds does:
its fleet's user data copies s3://AWS_BUCKET/ecsconfigs/APP_NAME_ecs.config to /etc/ecs/ecs.config (so the
machines join the run's cluster), APP_NAMEService runs the task family APP_NAMETask, whose container polls the
queue in its SQS_QUEUE_URL and logs to LOG_GROUP_NAME (its environment) and, through the awslogs driver, to
LOG_GROUP_NAME_perInstance. Pure functions of what AWS describes; adopt.py asks AWS.
"""

from __future__ import annotations

import binascii
import email
import re
from base64 import b64decode

from chalicelib.aws import region_of_queue_url
from chalicelib.aws.ecs import TaskDefinition


def ecs_config_key(app: str) -> str:
    return f"ecsconfigs/{app}_ecs.config"


def task_family(app: str) -> str:
    return app + "Task"


def loads_ecs_config(user_data: str, app: str) -> bool:
    """Whether base64 user data (DS's: a MIME multipart whose shell script part runs `aws s3 cp
    s3://BUCKET/ecsconfigs/APP_ecs.config /etc/ecs/ecs.config`) names exactly that app's ECS config object:
    `ecsconfigs/Other_ecs.config` or `ecsconfigs/APP_ecs.config.old` is another app's, or none."""
    # the object's URL as one word: nothing of another name before the key or after it
    pattern = re.compile(r"s3://[^/\s'\"]+/" + re.escape(ecs_config_key(app)) + r"(?![^\s'\";|&)])")
    return any(pattern.search(text) for text in _user_data_texts(user_data))


def _user_data_texts(user_data: str) -> list[str]:
    """The decoded user data, and each part of it when it is MIME (cloud-init's multipart, whose parts may be
    base64 or quoted-printable encoded)."""
    try:
        raw = b64decode("".join(user_data.split()), validate=True)
    except (binascii.Error, ValueError):
        return []
    text = raw.decode("utf-8", errors="replace")
    texts = [text]
    message = email.message_from_string(text)
    if message.is_multipart():
        for part in message.walk():
            payload = None if part.is_multipart() else part.get_payload(decode=True)  # a leaf's: its bytes
            if isinstance(payload, bytes) and payload:
                texts.append(payload.decode("utf-8", errors="replace"))
    return texts


def polled_queues(definition: TaskDefinition) -> tuple[str, ...]:
    """The queue URLs the task definition's containers poll (SQS_QUEUE_URL in their environment)."""
    return tuple(dict.fromkeys(container.environment["SQS_QUEUE_URL"] for container in definition.containers
                               if container.environment.get("SQS_QUEUE_URL")))


def logged_groups(definition: TaskDefinition) -> tuple[str, ...]:
    """The log groups the task definition's containers log to: the awslogs driver's group, and the
    LOG_GROUP_NAME the worker in the container writes to. Sorted."""
    groups = {container.log_options["awslogs-group"] for container in definition.containers
              if container.log_driver == "awslogs" and container.log_options.get("awslogs-group")}
    groups.update(container.environment["LOG_GROUP_NAME"] for container in definition.containers
                  if container.environment.get("LOG_GROUP_NAME"))
    return tuple(sorted(groups))


def same_queue(url: str, other: str) -> bool:
    """Whether two queue URLs name one queue: same region, account and name (a trailing slash aside)."""
    return _queue_identity(url) == _queue_identity(other)


def _queue_identity(url: str) -> tuple[str, ...]:
    return (region_of_queue_url(url), *url.rstrip("/").rsplit("/", 2)[-2:])
